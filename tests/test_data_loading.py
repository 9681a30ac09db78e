"""The MMSA feature-pickle loader, on small files written here in MMSA's exact layout.

`mmsa_data` builds what MMSA's README describes (thuiar/MMSA:README.md): per split `raw_text`,
`text` (N, L, 768) float32 zero-padded, `text_bert` (N, 3, L) float32 ids/mask/segments with
[CLS]=101 and [SEP]=102, `audio`/`vision` float32 with -inf frames in audio, their lengths,
`id` 'video$_$clip', `annotations`, `classification_labels`, `regression_labels` (and the
unimodal labels for SIMS). Expected values come from how the helper built the data, never
from the loader.
"""
import collections
import gc
import hashlib
import importlib
import json
import logging
import os
import pathlib
import pickle
import time
import warnings
import weakref

import numpy as np
import pytest
import torch

from mmsa_atsuko.data import (Dataset, DatasetSpec, Split, dataset_names, load_dataset,
                              resolve_feature_path)
from mmsa_atsuko import safe_pickle
from mmsa_atsuko.data.stamp import STAMP_KEY
from mmsa_atsuko.data.synthetic import write_synthetic
from mmsa_atsuko.errors import DataError, UsageError

SIZES = {"train": 10, "valid": 4, "test": 5}
L, LA, LV, DA, DV = 8, 12, 10, 7, 3          # deliberately not MOSI's real dims (5, 20)


def mmsa_split(rng, n, *, split, L=L, La=LA, Lv=LV, Da=DA, Dv=DV, sims=False, text_dim=768):
    """One split as MMSA stores it, plus the truth the loader should recover."""
    text_len = rng.integers(3, L + 1, n)            # includes [CLS] and [SEP]
    audio_len = rng.integers(1, La + 1, n)
    vision_len = rng.integers(1, Lv + 1, n)
    steps = np.arange(L)[None, :]
    text_mask = (steps < text_len[:, None]).astype(np.float32)
    ids = rng.integers(1000, 5000, (n, L)).astype(np.float32)
    ids[:, 0] = 101
    ids[np.arange(n), text_len - 1] = 102
    text_bert = np.stack([ids * text_mask, text_mask, np.zeros_like(text_mask)], axis=1)
    # Real rows are never all zero (nonzero offset); padding rows are exactly zero.
    text = (rng.standard_normal((n, L, text_dim)) + 5).astype(np.float32) * text_mask[..., None]
    audio = rng.standard_normal((n, La, Da)).astype(np.float32)
    audio *= (np.arange(La)[None, :] < audio_len[:, None])[..., None]
    audio[:, 0, 0] = -np.inf                        # silent frames: log-energy of zero
    audio[::2, 0, 1] = -np.inf
    vision = rng.standard_normal((n, Lv, Dv)).astype(np.float32)
    vision *= (np.arange(Lv)[None, :] < vision_len[:, None])[..., None]
    hi = 1.0 if sims else 3.0
    labels = np.round(rng.uniform(-hi, hi, n), 1).astype(np.float32)
    labels[0] = -hi                                 # the range's ends are valid labels
    data = {
        "raw_text": [f"words of clip {i}" for i in range(n)],
        "audio": audio, "vision": vision, "text": text, "text_bert": text_bert,
        "audio_lengths": audio_len, "vision_lengths": vision_len,
        "id": np.array([f"{split}vid{i // 2}$_${i % 2}" for i in range(n)], dtype=object),
        "annotations": np.array(["Positive" if x > 0 else "Negative" for x in labels]),
        "classification_labels": (labels > 0).astype(np.float32),
        "regression_labels": labels,
    }
    if sims:
        for m in "TAV":
            data[f"regression_labels_{m}"] = np.round(rng.uniform(-1, 1, n), 1).astype(np.float32)
    return data, {"text_lengths": text_len}


def mmsa_data(seed=0, **kw):
    rng = np.random.default_rng(seed)
    data, truth = {}, {}
    for split, n in SIZES.items():
        data[split], truth[split] = mmsa_split(rng, n, split=split, **kw)
    return data, truth


def write(path, obj, protocol=4):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return path


def data_error(path, dataset="mosi", **kw):
    with pytest.raises(DataError) as info:
        load_dataset(dataset, feature_path=path, **kw)
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    return message


# -- a good file ----------------------------------------------------------------------------

def test_mmsa_file_loads_into_the_dataset_contract(tmp_path):
    data, truth = mmsa_data()
    path = write(tmp_path / "unaligned_50.pkl", data)
    ds = load_dataset("mosi", feature_path=path)

    assert isinstance(ds, Dataset) and isinstance(ds.spec, DatasetSpec)
    spec = ds.spec
    assert (spec.name, spec.task, spec.num_classes) == ("mosi", "regression", 1)
    assert spec.label_range == (-3.0, 3.0)
    assert (spec.language, spec.key_metric, spec.aligned) == ("en", "Loss", False)
    assert spec.feature_dims == {"text": 768, "audio": DA, "vision": DV}     # from the data
    assert spec.seq_lens == {"text": L, "audio": LA, "vision": LV}
    assert spec.has_text_bert and spec.has_text_features and not spec.unimodal_labels
    assert spec.split_sizes == SIZES and not spec.synthetic and spec.path == str(path)

    for name, split in ds.splits().items():
        src, t = data[name], split.tensors
        assert isinstance(split, Split) and split.name == name and len(split) == SIZES[name]
        assert split.ids == list(src["id"])
        assert t["text"].dtype == torch.float32 and torch.equal(t["text"], torch.tensor(src["text"]))
        assert t["text_bert"].dtype == torch.int64
        assert torch.equal(t["text_bert"], torch.tensor(src["text_bert"].astype(np.int64)))
        assert torch.equal(t["text_bert"][:, 0, 0], torch.full((SIZES[name],), 101))
        audio = np.where(np.isneginf(src["audio"]), 0, src["audio"])
        assert t["audio"].dtype == torch.float32 and torch.equal(t["audio"], torch.tensor(audio))
        assert torch.equal(t["vision"], torch.tensor(src["vision"]))
        for m, lengths in (("text", truth[name]["text_lengths"]), ("audio", src["audio_lengths"]),
                           ("vision", src["vision_lengths"])):
            assert t[f"{m}_lengths"].dtype == torch.int64
            assert t[f"{m}_lengths"].tolist() == lengths.tolist()
            mask = t[f"{m}_mask"]
            assert mask.dtype == torch.bool and mask.shape == (SIZES[name], spec.seq_lens[m])
            assert mask.sum(1).tolist() == lengths.tolist() and mask[:, 0].all()
        assert t["label"].dtype == torch.float32 and t["label"].shape == (SIZES[name],)
        assert t["label"].tolist() == src["regression_labels"].tolist()
        assert not {"raw_text", "annotations", "classification_labels", "label_T"} & set(t)

    batch = ds.valid.batch(torch.tensor([2, 0]))
    assert batch["id"] == [data["valid"]["id"][2], data["valid"]["id"][0]]
    assert batch["audio"].shape == (2, LA, DA)


def test_sha256_source_is_the_hash_of_the_file(tmp_path):
    path = write(tmp_path / "f.pkl", mmsa_data()[0])
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert load_dataset("mosi", feature_path=path).spec.source == f"sha256:{expected}"

    hasher = hashlib.sha256()
    safe_pickle.load(path, hasher=hasher)
    assert hasher.hexdigest() == expected


def test_remembered_sha256_is_reused_only_for_the_unchanged_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MMSA_ATSUKO_CACHE", str(tmp_path / "cache"))
    path = write(tmp_path / "f.pkl", mmsa_data(seed=1)[0])
    first = load_dataset("mosi", feature_path=path).spec.source
    hashed = []
    real = safe_pickle.load_hashing
    monkeypatch.setattr(safe_pickle, "load_hashing", lambda *a, **k: hashed.append(1) or real(*a, **k))
    assert load_dataset("mosi", feature_path=path).spec.source == first and hashed == []
    # rewritten with other content (new size/mtime/inode): hashed again, and the new digest is right
    path.unlink()
    write(path, mmsa_data(seed=2)[0])
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert load_dataset("mosi", feature_path=path).spec.source == f"sha256:{expected}" != first
    assert hashed == [1]


def test_an_edit_in_place_that_restores_mtime_is_hashed_again(tmp_path, monkeypatch):
    monkeypatch.setenv("MMSA_ATSUKO_CACHE", str(tmp_path / "cache"))
    data, _ = mmsa_data(seed=1)
    path = write(tmp_path / "f.pkl", data)
    first = load_dataset("mosi", feature_path=path).spec.source
    assert first == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    before = os.stat(path)
    time.sleep(0.05)                     # ctime ticks at least every few ms
    # Same size, same inode, mtime put back: only ctime tells the file changed.
    data["test"]["regression_labels"][0] = 0.5
    with open(path, "r+b") as f:
        f.write(pickle.dumps(data, protocol=4))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    second = load_dataset("mosi", feature_path=path).spec.source
    assert second == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest() != first


def test_sha256_of_is_remembered_per_version_of_the_file(tmp_path, monkeypatch):
    from mmsa_atsuko import cache
    monkeypatch.setenv("MMSA_ATSUKO_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "f.bin"
    path.write_bytes(b"a" * 100)
    assert cache.sha256_of(path) == hashlib.sha256(b"a" * 100).hexdigest()
    hashed = []
    real = hashlib.file_digest
    monkeypatch.setattr(cache.hashlib, "file_digest", lambda *a: hashed.append(1) or real(*a))
    assert cache.sha256_of(path) == hashlib.sha256(b"a" * 100).hexdigest() and hashed == []
    before = os.stat(path)
    time.sleep(0.05)
    with open(path, "r+b") as f:                          # same size, same inode...
        f.write(b"b")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))    # ...and the old mtime
    assert cache.sha256_of(path) == hashlib.sha256(b"b" + b"a" * 99).hexdigest() and hashed == [1]


def test_two_writers_remembering_at_once_keep_both_entries(tmp_path, monkeypatch):
    """Writer A reads the hashes file, then pauses; writer B (a thread: filelock's flock locks contend across
    threads as across processes) remembers another file meanwhile. Without a lock B's
    entry was written and then lost under A's rewrite of what it had read (the file hashed again next time)."""
    import threading
    from mmsa_atsuko import cache
    monkeypatch.setenv("MMSA_ATSUKO_CACHE", str(tmp_path / "cache"))
    first, second = tmp_path / "a.bin", tmp_path / "b.bin"
    first.write_bytes(b"a")
    second.write_bytes(b"b")
    a_has_read, b_done = threading.Event(), threading.Event()
    real_read = cache._read_entries
    reads_by_a = []

    def read_then_pause():
        entries = real_read()
        if threading.current_thread().name == "A":
            reads_by_a.append(1)
        if len(reads_by_a) == 2 and not a_has_read.is_set():
            # A's second read is `remember`'s (the first is `remembered`'s look before hashing)
            a_has_read.set()
            b_done.wait(timeout=3)         # B finishes here unless it waits for A's lock; then A goes on at 3 s
        return entries

    monkeypatch.setattr(cache, "_read_entries", read_then_pause)
    a = threading.Thread(target=cache.sha256_of, args=(first,), name="A")
    a.start()
    assert a_has_read.wait(timeout=30)
    b = threading.Thread(target=lambda: (cache.sha256_of(second), b_done.set()), name="B")
    b.start()
    a.join()
    b.join()
    monkeypatch.setattr(cache, "_read_entries", real_read)
    stored = json.loads((tmp_path / "cache" / "sha256.json").read_text())
    assert {key: entry["facts"]["sha256"] for key, entry in stored.items()} == {
        str(first.resolve()): hashlib.sha256(b"a").hexdigest(), str(second.resolve()): hashlib.sha256(b"b").hexdigest()}


@pytest.mark.parametrize("protocol", [4, 5])
def test_sha256_of_big_arrays_and_trailing_bytes(tmp_path, protocol):
    # Payloads over 1 MiB are hashed on the worker thread (protocol 5 through readinto), and
    # the -inf in audio may only be zeroed after the hash has read them.
    data, _ = mmsa_data(La=2000, Da=50)
    assert data["train"]["audio"].nbytes > 2 << 20
    path = write(tmp_path / "big.pkl", data, protocol)
    with open(path, "ab") as f:
        f.write(b"trailing bytes are part of the file")
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    ds = load_dataset("mosi", feature_path=path)
    assert ds.spec.source == f"sha256:{expected}"
    assert not torch.isinf(ds.train.tensors["audio"]).any()


def test_neginf_becomes_zero_and_is_logged_once_per_modality(tmp_path, caplog):
    data, _ = mmsa_data()
    data["valid"]["vision"][1, 0, :] = -np.inf
    expected = {m: sum(int(np.isneginf(data[s][m]).sum()) for s in SIZES) for m in ("audio", "vision")}
    assert expected["audio"] > 0 and expected["vision"] == DV
    path = write(tmp_path / "f.pkl", data)

    with caplog.at_level(logging.INFO, logger="mmsa_atsuko"):
        ds = load_dataset("mosi", feature_path=path)
    for m in ("audio", "vision"):
        records = [r.getMessage() for r in caplog.records
                   if r.name == "mmsa_atsuko" and f" in {m} " in r.getMessage()]
        assert len(records) == 1, records
        assert f"replaced {expected[m]} -inf" in records[0]
        for s in SIZES:
            assert not torch.isinf(ds.splits()[s].tensors[m]).any()
    assert ds.valid.tensors["vision"][1, 0].tolist() == [0.0] * DV


def test_float_text_bert_is_cast_to_int64_only_when_integral(tmp_path):
    data, _ = mmsa_data()
    path = write(tmp_path / "ok.pkl", data)
    bert = load_dataset("mosi", feature_path=path).test.tensors["text_bert"]
    assert bert.dtype == torch.int64
    assert bert.tolist() == data["test"]["text_bert"].astype(int).tolist()

    data["train"]["text_bert"][3, 0, 1] = 2000.5
    message = data_error(write(tmp_path / "bad.pkl", data))
    assert "split 'train', key 'text_bert'" in message and "sample 3" in message


def test_text_lengths_from_nonzero_rows_and_text_dim_from_data_without_text_bert(tmp_path):
    data, truth = mmsa_data(text_dim=300)       # e.g. GloVe features, not BERT
    for split in data.values():
        del split["text_bert"]
    ds = load_dataset("mosi", feature_path=write(tmp_path / "f.pkl", data))
    assert ds.spec.feature_dims["text"] == 300 and ds.spec.seq_lens["text"] == L
    assert not ds.spec.has_text_bert and "text_bert" not in ds.train.tensors
    for s in SIZES:
        assert ds.splits()[s].tensors["text_lengths"].tolist() == truth[s]["text_lengths"].tolist()


def test_text_bert_alone_gives_bert_hidden_size(tmp_path):
    data, _ = mmsa_data()
    for split in data.values():
        del split["text"]
    ds = load_dataset("mosi", feature_path=write(tmp_path / "f.pkl", data))
    assert ds.spec.feature_dims["text"] == 768 and not ds.spec.has_text_features
    assert "text" not in ds.train.tensors and ds.spec.seq_lens["text"] == L


def test_dims_and_lengths_come_from_the_data_not_the_config(tmp_path):
    data, _ = mmsa_data(L=5, La=9, Lv=4, Da=11, Dv=2)
    ds = load_dataset("mosi", feature_path=write(tmp_path / "f.pkl", data))
    assert ds.spec.feature_dims == {"text": 768, "audio": 11, "vision": 2}
    assert ds.spec.seq_lens == {"text": 5, "audio": 9, "vision": 4}


def test_aligned_file_without_lengths_uses_text_lengths(tmp_path):
    data, truth = mmsa_data(La=L, Lv=L)
    for split in data.values():
        del split["audio_lengths"], split["vision_lengths"]
    write(tmp_path / "root" / "MOSI" / "Processed" / "aligned_50.pkl", data)
    ds = load_dataset("mosi", aligned=True, data_root=tmp_path / "root")
    assert ds.spec.aligned and ds.spec.seq_lens == {"text": L, "audio": L, "vision": L}
    for s in SIZES:
        t = ds.splits()[s].tensors
        expected = truth[s]["text_lengths"].tolist()
        assert t["audio_lengths"].tolist() == t["vision_lengths"].tolist() == expected
        assert torch.equal(t["audio_mask"], t["text_mask"])

    # Unaligned, the same file lacks required keys.
    message = data_error(tmp_path / "root" / "MOSI" / "Processed" / "aligned_50.pkl")
    assert "split 'train', key 'audio_lengths'" in message


def test_sims_unimodal_labels(tmp_path):
    data, _ = mmsa_data(sims=True)
    ds = load_dataset("sims", feature_path=write(tmp_path / "f.pkl", data))
    assert ds.spec.unimodal_labels and ds.spec.language == "cn" and ds.spec.label_range == (-1.0, 1.0)
    for key in ("label_T", "label_A", "label_V"):
        assert ds.test.tensors[key].dtype == torch.float32
        assert ds.test.tensors[key].tolist() == data["test"][f"regression_labels_{key[-1]}"].tolist()

    del data["valid"]["regression_labels_A"]
    message = data_error(write(tmp_path / "g.pkl", data), "sims")
    assert "split 'valid', key 'regression_labels_A'" in message


def test_labels_stored_as_column_and_tiny_overshoot_are_accepted(tmp_path):
    data, _ = mmsa_data()
    data["train"]["regression_labels"] = data["train"]["regression_labels"].reshape(-1, 1)
    data["train"]["regression_labels"][1] = 3.0000005       # float32 noise at the range's end
    ds = load_dataset("mosi", feature_path=write(tmp_path / "f.pkl", data))
    assert ds.train.tensors["label"].shape == (SIZES["train"],)
    assert ds.train.tensors["label"][1].item() == pytest.approx(3.0, abs=1e-6)


def test_loaded_data_is_freed_as_soon_as_it_is_dropped(tmp_path):
    """No reference cycle may keep a multi-GB dataset alive until the next gc run."""
    ds = load_dataset("mosi", feature_path=write(tmp_path / "f.pkl", mmsa_data()[0]))
    gc.disable()
    try:
        audio = weakref.ref(ds.train.tensors["audio"])
        del ds
        assert audio() is None
    finally:
        gc.enable()


def test_synthetic_looking_ids_do_not_make_a_file_synthetic(tmp_path):
    data, _ = mmsa_data()
    for s, split in data.items():
        split["id"] = np.array([f"synthetic:mosi-small-unaligned-seed0$_${i:05d}" for i in range(SIZES[s])])
    path = write(tmp_path / "f.pkl", data)
    spec = load_dataset("mosi", feature_path=path).spec
    assert not spec.synthetic and spec.source == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_generated_file_is_named_by_its_recipe_until_edited(tmp_path, monkeypatch):
    monkeypatch.setenv("MMSA_ATSUKO_CACHE", str(tmp_path / "cache"))
    path = write_synthetic("mosi", tmp_path / "syn.pkl", size="small", seed=3)
    for _ in range(2):                                   # computed, then remembered
        spec = load_dataset("mosi", feature_path=path).spec
        assert spec.synthetic and spec.source == "synthetic:mosi-small-unaligned-seed3-v2"

    # One label changed, the stamp kept: a real file now, named by its sha256.
    with open(path, "rb") as f:
        data = pickle.load(f)
    assert set(data) == {STAMP_KEY, "train", "valid", "test"}
    data["test"]["regression_labels"][0] += 0.5
    edited = write(tmp_path / "edited.pkl", data)
    spec = load_dataset("mosi", feature_path=edited).spec
    assert not spec.synthetic and spec.source == "sha256:" + hashlib.sha256(edited.read_bytes()).hexdigest()

    # So is one whose stamp names another recipe, and one without a stamp.
    data["test"]["regression_labels"][0] -= 0.5
    data[STAMP_KEY] = dict(data[STAMP_KEY], recipe="sims-small-unaligned-seed0-v2")
    assert not load_dataset("mosi", feature_path=write(tmp_path / "other.pkl", data)).spec.synthetic
    del data[STAMP_KEY]
    assert not load_dataset("mosi", feature_path=write(tmp_path / "bare.pkl", data)).spec.synthetic


# -- pickle formats -------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_pickles_of_every_protocol_load(tmp_path, protocol):
    data, _ = mmsa_data()
    data["train"]["extra"] = [np.float32(1.5), np.int64(-3), np.array([], np.float32), 2 + 1j, b"",
                              bytearray(b"ab"), {1, 2}, frozenset({3}), collections.OrderedDict(a=1),
                              np.array(["a", "bc"]), None, True]
    path = write(tmp_path / "f.pkl", data, protocol)
    back = safe_pickle.load(path)
    assert back["train"]["extra"][:5] == [1.5, -3, back["train"]["extra"][2], 2 + 1j, b""]
    assert back["train"]["extra"][5:9] == [bytearray(b"ab"), {1, 2}, frozenset({3}), {"a": 1}]
    assert back["train"]["extra"][9].tolist() == ["a", "bc"] and back["train"]["extra"][10:] == [None, True]
    np.testing.assert_array_equal(back["test"]["audio"], data["test"]["audio"])
    ds = load_dataset("mosi", feature_path=path)
    assert torch.equal(ds.train.tensors["vision"], torch.tensor(data["train"]["vision"]))


def test_pickle_written_by_numpy_1_loads(tmp_path):
    """MMSA's files name numpy.core.multiarray; numpy 2 renamed it numpy._core."""
    data, _ = mmsa_data()
    old = pickle.dumps(data, protocol=2).replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    assert b"numpy._core" not in old and b"cnumpy.core.multiarray\n_reconstruct\n" in old
    path = tmp_path / "numpy1.pkl"
    path.write_bytes(old)
    with warnings.catch_warnings():
        warnings.simplefilter("error")              # and without numpy.core's DeprecationWarning
        ds = load_dataset("mosi", feature_path=path)
    assert torch.equal(ds.valid.tensors["text"], torch.tensor(data["valid"]["text"]))


class _TouchOnLoad:
    """Unpickling this creates `marker`: a stand-in for any code a hostile file runs."""

    def __init__(self, marker):
        self.marker = pathlib.Path(marker)

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def test_hostile_pickle_is_refused_and_runs_nothing(tmp_path):
    payload = pickle.dumps(_TouchOnLoad(tmp_path / "proof"))
    pickle.loads(payload)
    assert (tmp_path / "proof").exists()            # the payload works when trusted...

    data, _ = mmsa_data()
    data["train"]["raw_text"][0] = _TouchOnLoad(tmp_path / "marker")
    path = write(tmp_path / "hostile.pkl", data)
    message = data_error(path)
    assert not (tmp_path / "marker").exists()       # ...and does nothing here
    assert message.startswith("refused to unpickle pathlib.Path.touch from ")
    assert "numpy arrays" in message


@pytest.mark.parametrize("module, name", [("os", "system"), ("builtins", "eval"), ("builtins", "getattr"),
                                          ("numpy", "load"), ("_codecs", "decode"), ("posix", "system")])
def test_any_other_global_is_refused(tmp_path, module, name):
    path = tmp_path / "evil.pkl"
    payload = f"c{module}\n{name}\n(S'touch {tmp_path / 'marker'}'\ntR.".encode()
    path.write_bytes(b"\x80\x02" + payload)          # PROTO 2: past the header check, to the unpickler's own
    with pytest.raises(DataError, match=f"refused to unpickle {module}.{name} from {path}"):
        safe_pickle.load(path)
    path.write_bytes(payload)                         # protocol 0, as written: no feature file is
    with pytest.raises(DataError, match=r"is not a pickle \(a feature file opens with byte 0x80\)"):
        safe_pickle.load(path)
    assert not (tmp_path / "marker").exists()


class _ForgedDtype:
    """A dtype whose pickled flags deny the object field it has: numpy then builds object
    pointers from raw file bytes (zeros here, so a trusting load only yields None)."""

    def __reduce__(self):
        return np.dtype, ("V8", False, True), (3, "|", None, ("a",), {"a": (np.dtype("O"), 0)}, 8, 1, 0)


class _FromBuffer:
    def __init__(self, dtype):
        self.dtype = dtype

    def __reduce__(self):
        core = "numpy._core" if np.__version__ >= "2" else "numpy.core"
        numeric = importlib.import_module(f"{core}.numeric")
        return numeric._frombuffer, (b"\0" * 8, self.dtype, (1,), "C")


class _NdarrayCall:
    def __reduce__(self):
        return np.ndarray, ((1,), np.dtype("O"), b"\0" * 8)


@pytest.mark.parametrize("payload, refused", [(_FromBuffer(_ForgedDtype()), "a numpy dtype state"),
                                              (_NdarrayCall(), "a call of numpy.ndarray")])
def test_numpy_calls_that_read_pointers_from_the_file_are_refused(tmp_path, payload, refused):
    blob = pickle.dumps(payload, protocol=2)
    trusted = pickle.loads(blob)
    assert trusted.dtype.fields or trusted.dtype == object   # pointers taken from the file's bytes
    path = tmp_path / "forged.pkl"
    path.write_bytes(blob)
    with pytest.raises(DataError, match=f"refused to unpickle {refused}"):
        safe_pickle.load(path)


def test_codecs_encode_is_limited_to_latin1(tmp_path):
    path = tmp_path / "f.pkl"
    path.write_bytes(b"\x80\x02c_codecs\nencode\n(Vabc\nVrot13\ntR.")
    with pytest.raises(DataError, match="truncated or corrupt"):
        safe_pickle.load(path)


def test_truncated_file(tmp_path):
    path = write(tmp_path / "f.pkl", mmsa_data()[0])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    message = data_error(path)
    # The same advice whichever command read it: a file of one's own videos is re-extracted.
    assert "is truncated or corrupt" in message and message.endswith(": re-download or re-extract it")


@pytest.mark.parametrize("content", [b"<html>Google Drive quota exceeded</html>", b"id,text,label\nutt00,hi,1.0\n",
                                     b"\x00\x00\x00\x18ftypisom", b""])
def test_not_a_pickle(tmp_path, content):
    """A CSV or a video given as a feature file read as opcodes: 'refused to unpickle id,text,label...',
    'truncated or corrupt (KeyError: 0)'. It is now said to be no pickle (or empty)."""
    path = tmp_path / "f.pkl"
    path.write_bytes(content)
    what = "empty" if not content else "not a pickle (a feature file opens with byte 0x80)"
    assert data_error(path) == (f"{path} is {what}: give the .pkl that MMSA publishes or that `run.py extract` "
                                f"wrote")


# -- paths ----------------------------------------------------------------------------------

def test_data_root_from_argument_env_or_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MMSA_DATA_ROOT", raising=False)
    rel = pathlib.Path("MOSI", "Processed", "unaligned_50.pkl")
    assert resolve_feature_path("mosi") == tmp_path / "home" / "MMSA" / "datasets" / rel
    assert resolve_feature_path("sims", False, tmp_path) == tmp_path / "SIMS/Processed/unaligned_39.pkl"
    assert resolve_feature_path("simsv2", data_root=tmp_path) == tmp_path / "SIMSv2/Processed/sims_unaligned.pkl"
    assert resolve_feature_path("mosei", True, tmp_path) == tmp_path / "MOSEI/Processed/aligned_50.pkl"

    env_file = write(tmp_path / "env" / rel, mmsa_data(seed=1)[0])
    arg_file = write(tmp_path / "arg" / rel, mmsa_data(seed=2)[0])
    monkeypatch.setenv("MMSA_DATA_ROOT", str(tmp_path / "env"))
    assert load_dataset("mosi").spec.path == str(env_file)
    assert load_dataset("mosi", data_root=tmp_path / "arg").spec.path == str(arg_file)
    assert resolve_feature_path("mosi", False, tmp_path / "arg", "/x/y.pkl") == pathlib.Path("/x/y.pkl")


def test_a_feature_file_whose_path_holds_a_line_break_is_one_line(tmp_path):
    """A path comes from the file system and may hold a newline. mmsa_format made its own lines one line
    (`data_error`), but not the unpickler's, which quote the path too: the line the CLI printed broke there."""
    path = tmp_path / "a\nb" / "features.pkl"
    path.parent.mkdir()
    path.write_bytes(b"id,text,label\n")
    with pytest.raises(DataError) as info:
        load_dataset("mosi", feature_path=path)
    assert str(info.value) == (f"{tmp_path}/a b/features.pkl is not a pickle (a feature file opens with byte 0x80): "
                               f"give the .pkl that MMSA publishes or that `run.py extract` wrote")


def test_missing_file_says_where_and_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MMSA_DATA_ROOT", str(tmp_path))
    with pytest.raises(DataError) as info:
        load_dataset("mosei")
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "MOSEI" / "Processed" / "unaligned_50.pkl") in message
    assert "MMSA_DATA_ROOT" in message and "--synthetic" in message
    assert "python run.py download mosei" in message
    assert info.value.exit_code == 1

    message = data_error(tmp_path / "nowhere.pkl")
    assert "not found" in message and "--synthetic" in message


@pytest.mark.parametrize("dataset", ["sims", "simsv2"])
def test_aligned_request_for_unaligned_only_dataset_is_a_usage_error(tmp_path, dataset):
    for call in (lambda: resolve_feature_path(dataset, True),
                 lambda: load_dataset(dataset, aligned=True, data_root=tmp_path)):
        with pytest.raises(UsageError) as info:
            call()
        assert info.value.exit_code == 2 and "\n" not in str(info.value) and "aligned" in str(info.value)


def test_unknown_dataset_is_a_usage_error():
    assert dataset_names() == ("mosi", "mosei", "sims", "simsv2", "mintrec")
    with pytest.raises(UsageError, match="Did you mean mosi, mosei"):
        load_dataset("mosii")


# -- bad contents: one test per failure, each one line naming file, split and key -----------

def bad_file(tmp_path, change, **kw):
    data, _ = mmsa_data(**kw)
    change(data)
    return write(tmp_path / "bad.pkl", data)


def test_missing_split(tmp_path):
    message = data_error(bad_file(tmp_path, lambda d: d.pop("valid")))
    assert "split 'valid' is missing" in message and "found train, test" in message


def test_missing_key(tmp_path):
    message = data_error(bad_file(tmp_path, lambda d: d["test"].pop("vision")))
    assert "split 'test', key 'vision': expected this key" in message


def test_missing_text(tmp_path):
    def change(d):
        del d["train"]["text"], d["train"]["text_bert"]
    assert "split 'train', key 'text'" in data_error(bad_file(tmp_path, change))


def test_sample_count_mismatch(tmp_path):
    def change(d):
        d["valid"]["audio"] = d["valid"]["audio"][:-1]
    message = data_error(bad_file(tmp_path, change))
    assert f"split 'valid', key 'audio': expected {SIZES['valid']} samples" in message
    assert f"found {SIZES['valid'] - 1}" in message


def test_wrong_rank(tmp_path):
    def change(d):
        d["test"]["vision"] = d["test"]["vision"][:, 0, :]
    message = data_error(bad_file(tmp_path, change))
    assert "split 'test', key 'vision': expected a 3-D array" in message
    assert f"found shape ({SIZES['test']}, {DV})" in message


def test_text_bert_without_three_rows(tmp_path):
    def change(d):
        d["train"]["text_bert"] = d["train"]["text_bert"][:, :2]
    message = data_error(bad_file(tmp_path, change))
    assert "split 'train', key 'text_bert': expected shape (N, 3, L)" in message


def test_feature_dim_differs_across_splits(tmp_path):
    def change(d):
        d["valid"]["audio"] = np.concatenate([d["valid"]["audio"], d["valid"]["audio"][..., :1]], axis=2)
    message = data_error(bad_file(tmp_path, change))
    assert f"split 'valid', key 'audio': expected feature dim {DA} as in train" in message
    assert f"found feature dim {DA + 1}" in message


def test_padded_length_differs_across_splits(tmp_path):
    def change(d):
        d["test"]["vision"] = d["test"]["vision"][:, :-1]
        d["test"]["vision_lengths"] = np.minimum(d["test"]["vision_lengths"], LV - 1)
    message = data_error(bad_file(tmp_path, change))
    assert f"split 'test', key 'vision': expected padded length {LV} as in train" in message


def test_text_inputs_differ_across_splits(tmp_path):
    message = data_error(bad_file(tmp_path, lambda d: d["valid"].pop("text")))
    assert "split 'valid', key 'text': expected text keys text, text_bert as in train" in message
    assert message.endswith("found text_bert")


def test_length_longer_than_the_sequence(tmp_path):
    def change(d):
        d["train"]["audio_lengths"][3] = LA + 1
    message = data_error(bad_file(tmp_path, change))
    assert f"split 'train', key 'audio_lengths': expected lengths in [0, {LA}]" in message
    assert f"sample 3 (id 'trainvid1$_$1') = {LA + 1}" in message


def test_negative_length(tmp_path):
    def change(d):
        d["valid"]["vision_lengths"][0] = -1
    assert "split 'valid', key 'vision_lengths'" in data_error(bad_file(tmp_path, change))


def test_label_out_of_range(tmp_path):
    def change(d):
        d["test"]["regression_labels"][2] = 3.5
    message = data_error(bad_file(tmp_path, change))
    assert "split 'test', key 'regression_labels': expected labels in [-3, 3]" in message
    assert "sample 2 (id 'testvid1$_$0') = 3.5" in message


def test_nan_in_features(tmp_path):
    def change(d):
        d["valid"]["vision"][1, 0, 0] = np.nan
        d["valid"]["vision"][3, 2, 1] = np.nan
    message = data_error(bad_file(tmp_path, change))
    assert "split 'valid', key 'vision': expected no NaN, found 2 NaN, first in sample 1" in message


def test_nan_in_labels_and_inf_in_text(tmp_path):
    def nan_label(d):
        d["train"]["regression_labels"][4] = np.nan
    message = data_error(bad_file(tmp_path, nan_label))
    assert "split 'train', key 'regression_labels': expected no NaN, found 1 NaN" in message

    def inf_text(d):
        d["test"]["text"][0, 0, 0] = np.inf
    message = data_error(bad_file(tmp_path, inf_text))
    assert "split 'test', key 'text': expected no +inf, found 1 +inf" in message


def test_non_numeric_array(tmp_path):
    def change(d):
        d["train"]["audio"] = d["train"]["audio"].astype(object)
    assert "split 'train', key 'audio': expected a numeric" in data_error(bad_file(tmp_path, change))


def test_a_file_without_unimodal_labels_read_as_sims_asks_whether_it_is_another_datasets(tmp_path):
    # A MOSI-style file (extract writes those) given as CH-SIMS, whose files carry label_T/A/V.
    path = write(tmp_path / "f.pkl", mmsa_data()[0])
    message = data_error(path, dataset="sims")
    assert "key 'regression_labels_T': expected this key (this dataset's files carry unimodal labels T/A/V)" in message
    assert message.endswith("is it a file of another dataset? (extract writes them only from label_T/A/V "
                            "columns: train its files without them with -d mosi, or declare a dataset without "
                            "unimodal_labels in a --datasets FILE)")


def test_an_id_a_spreadsheet_would_run_as_a_formula_is_refused_by_run_py_and_real_ids_load(tmp_path, capsys):
    """A feature pickle's ids reached predictions_test.csv and predict's predictions.csv unchecked, where a
    spreadsheet runs '=HYPERLINK(...)' as a formula; extract's transcripts alone refused such an id. The ids of
    MMSA's own files still load: MOSI's and MOSEI's YouTube ids, which may start with '-' or '_', and SIMS's."""
    from mmsa_atsuko.cli import main
    data, _ = mmsa_data()
    data["test"]["id"][2] = '=HYPERLINK("x")'
    path = write(tmp_path / "f.pkl", data)
    expected = (f"{path}: split 'test', key 'id', sample 2 has the id '=HYPERLINK(\"x\")', which starts with '=': a "
                f"spreadsheet would run it as a formula in the CSVs that list ids, such as predictions.csv; give the "
                f"sample another id in the file so that it starts with a letter or a digit (after '-' only letters, "
                f"digits and _.$- are fine, as in MOSI's ids)")
    assert data_error(path) == expected
    code = main(["-m", "tfn", "-d", "mosi", "--feature-path", str(path), "--out", str(tmp_path / "results"),
                 "--quiet"])
    assert (code, capsys.readouterr().err) == (1, f"error: {expected}\n")
    assert not (tmp_path / "results").exists()

    data["test"]["id"][2] = "-2+3+cmd|' /C calc'!A0"
    assert "sample 2 has the id \"-2+3+cmd|' /C calc'!A0\", which starts with '-' and holds '+'" in data_error(
        write(tmp_path / "g.pkl", data))
    real = ["-3g5yACwYnA$_$1", "--qXJuDtHPw$_$12", "_0efYOjQYRc$_$3", "03bSnISJMiM$_$10", "zhSJXgS0Fo0$_$2"]
    data["test"]["id"] = np.array(real, dtype=object)
    assert load_dataset("mosi", feature_path=write(tmp_path / "h.pkl", data)).test.ids == real
    sims, _ = mmsa_data(sims=True)
    sims["test"]["id"] = np.array([f"video_{v:04d}$_${c:04d}" for v, c in ((1, 1), (1, 2), (7, 1), (7, 2), (9, 3))],
                                  dtype=object)
    loaded = load_dataset("sims", feature_path=write(tmp_path / "s.pkl", sims)).test.ids
    assert loaded == ["video_0001$_$0001", "video_0001$_$0002", "video_0007$_$0001", "video_0007$_$0002",
                      "video_0009$_$0003"]


def test_a_split_without_labels_counts_its_samples_by_its_ids(tmp_path):
    """A file for predict may hold no sentiment labels: its ids give N, and a key of another count was said to differ
    from 'regression_labels', a key that split does not hold."""
    from mmsa_atsuko.data.mmsa_format import load_for_prediction
    data, _ = mmsa_data()
    del data["test"]["regression_labels"]
    data["test"]["vision"] = data["test"]["vision"][:-1]
    path = write(tmp_path / "f.pkl", data)
    with pytest.raises(DataError) as info:
        load_for_prediction("mosi", path, split="test")
    assert str(info.value) == (f"{path}: split 'test', key 'vision': expected {SIZES['test']} samples like 'id', "
                               f"found {SIZES['test'] - 1}")


def test_a_feature_file_that_is_a_pipe_or_a_device_says_what_it_is(tmp_path):
    """A named pipe or a link to /dev/zero at a feature file's place was 'not found', though it is there."""
    path = tmp_path / "mosi.pkl"
    os.mkfifo(path)
    with pytest.raises(DataError, match=f"^mosi unaligned features is a pipe, not a file at {path} ") as info:
        load_dataset("mosi", feature_path=str(path))
    assert type(info.value) is DataError                   # there, so no MissingDataError: no download fixes it
    path.unlink()
    path.symlink_to("/dev/zero")
    with pytest.raises(DataError, match=f"^mosi unaligned features is a device, not a file at {path} "):
        load_dataset("mosi", feature_path=str(path))
