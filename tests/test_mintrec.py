"""MIntRec in thuiar/MIntRec's own layout: the loader on folders written here, its errors,
the cached BERT text features, synthetic MIntRec, and a CLI run on it.

`write_folder` writes what MIntRec ships (thuiar/MIntRec's data/base.py and run.py): train/dev/test.tsv
with the header `season episode clip text label`, `video_data/video_feats.pkl` (key -> list of
(1, D) arrays, or a (T, D) array) and `audio_data/audio_feats.pkl` (key -> (T, D) array),
pickled with the standard pickle as MIntRec's tools do. Expected values come from the data
written here, the vocab file and transformers' own BertModel, never from the loader.
"""
import csv
import hashlib
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mmsa_atsuko.data import dataset_names, load_dataset, resolve_feature_path
from mmsa_atsuko.data.mintrec import tables as mintrec_tables
from mmsa_atsuko.data import synthetic_mintrec as smt
from mmsa_atsuko.errors import DataError, UsageError
from mmsa_atsuko.results import code_version

INTENTS = ['Complain', 'Praise', 'Apologise', 'Thank', 'Criticize', 'Agree', 'Taunt', 'Flaunt', 'Joke', 'Oppose',
           'Comfort', 'Care', 'Inform', 'Advise', 'Arrange', 'Introduce', 'Leave', 'Prevent', 'Greet', 'Ask for help']
DV, DA = 4, 6                       # not MIntRec's 256/768: dims must come from the data
LONG_TEXT = " ".join(f"w{i:03d}" for i in range(40))          # 40 words, one token each


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    """A tiny BERT with a real vocab.txt (the synthetic one: [CLS]=101, words w000..w255)."""
    from mmsa_atsuko.data.tiny_bert import write_tiny_bert
    return write_tiny_bert(tmp_path_factory.mktemp("bert") / "bert", seed=0)


def vocab_ids(bert):
    return {tok: i for i, tok in enumerate((Path(bert) / "vocab.txt").read_text().splitlines())}


def sample_rows():
    """(split, season, episode, clip, text, label) rows: every kind of text and label edge."""
    return [
        ("train", "S05", "E16", "329", "w001 w002 pos3a", "Complain"),
        ("train", "S05", "E16", "330", LONG_TEXT, "Ask for help"),
        ("train", "S01", "E02", "7", "W010 zzz", "Inform"),               # upper case; a word not in the vocab
        ("train", "S01", "E02", "8", "w200", "Praise"),
        ("valid", "S02", "E01", "1", "w003 w004", "Apologise"),
        ("valid", "S02", "E01", "2", "neg1a", "Greet"),
        ("test", "S03", "E09", "11", "w005", "Comfort"),
        ("test", "S03", "E09", "12", "w006 w007 w008", "Joke"),
        ("test", "S03", "E09", "13", "pos8d", "Complain"),
    ]


def sample_features(rows, rng):
    """Video: alternate MIntRec's list-of-(1, D) form and plain (T, D) arrays, one clip longer
    than 230 frames; audio (T, D) arrays, one longer than 480 frames."""
    video, audio = {}, {}
    for i, (_, season, episode, clip, _, _) in enumerate(rows):
        key = f"{season}_{episode}_{clip}"
        tv = 233 if i == 1 else 3 + i
        ta = 485 if i == 2 else 5 + 2 * i
        frames = rng.standard_normal((tv, DV)).astype(np.float32)
        video[key] = [f[None, :] for f in frames] if i % 2 == 0 else frames
        audio[key] = rng.standard_normal((ta, DA)).astype(np.float32)
    return video, audio


def write_folder(folder, rows, video, audio, *, header=("season", "episode", "clip", "text", "label")):
    folder = Path(folder)
    (folder / "video_data").mkdir(parents=True, exist_ok=True)
    (folder / "audio_data").mkdir(parents=True, exist_ok=True)
    for split, name in (("train", "train.tsv"), ("valid", "dev.tsv"), ("test", "test.tsv")):
        with open(folder / name, "w", newline="") as f:
            w = csv.writer(f, delimiter="\t", lineterminator="\n")
            w.writerow(header)
            w.writerows(r[1:] for r in rows if r[0] == split)
    with open(folder / "video_data" / "video_feats.pkl", "wb") as f:
        pickle.dump(video, f)
    with open(folder / "audio_data" / "audio_feats.pkl", "wb") as f:
        pickle.dump(audio, f)
    return folder


@pytest.fixture(scope="module")
def native(tmp_path_factory, bert):
    rows = sample_rows()
    video, audio = sample_features(rows, np.random.default_rng(0))
    folder = write_folder(tmp_path_factory.mktemp("data") / "MIntRec", rows, video, audio)
    return folder, rows, video, audio, load_dataset("mintrec", feature_path=folder, pretrained=str(bert))


def as_frames(value):
    return np.concatenate(value, axis=0) if isinstance(value, list) else value


# ------------------------------------------------------------------------------ loading

def test_spec(native):
    folder, rows, *_, data = native
    spec = data.spec
    assert (spec.name, spec.task, spec.num_classes, spec.label_range) == ("mintrec", "classification", 20, None)
    assert spec.label_names == tuple(INTENTS)
    assert spec.key_metric == "f1" and not spec.aligned and spec.language == "en"
    assert spec.seq_lens == {"text": 30, "audio": 480, "vision": 230}
    assert spec.feature_dims == {"text": 768, "audio": DA, "vision": DV}
    assert spec.has_text_bert and spec.has_text_features and not spec.synthetic
    assert spec.split_sizes == {"train": 4, "valid": 2, "test": 3}
    names = ["audio_data/audio_feats.pkl", "dev.tsv", "test.tsv", "train.tsv", "video_data/video_feats.pkl"]
    combined = "".join(f"{n} {hashlib.sha256((folder / n).read_bytes()).hexdigest()}\n" for n in names)
    assert spec.source == "sha256:" + hashlib.sha256(combined.encode()).hexdigest()


def test_ids_labels_and_dev_is_valid(native):
    _, rows, *_, data = native
    for split in ("train", "valid", "test"):
        mine = [r for r in rows if r[0] == split]
        assert getattr(data, split).ids == [f"{r[1]}_{r[2]}_{r[3]}" for r in mine]
        labels = getattr(data, split).tensors["label"]
        assert labels.dtype == torch.int64
        assert labels.tolist() == [INTENTS.index(r[5]) for r in mine]
    assert data.train.tensors["label"].tolist() == [0, 19, 12, 1]


@pytest.mark.parametrize("modality, store, padded", [("vision", 2, 230), ("audio", 3, 480)])
def test_frames_padded_cut_and_masked(native, modality, store, padded):
    _, rows, *_, data = native
    values = native[store]
    for split in ("train", "valid", "test"):
        tensors = getattr(data, split).tensors
        for i, key in enumerate(getattr(data, split).ids):
            frames = as_frames(values[key])
            n = min(len(frames), padded)
            assert tensors[f"{modality}_lengths"][i] == n
            got = tensors[modality][i].numpy()
            np.testing.assert_array_equal(got[:n], frames[:n])          # the FIRST `padded` frames
            assert not got[n:].any()
            assert tensors[f"{modality}_mask"][i].tolist() == [True] * n + [False] * (padded - n)
    long_key = "S05_E16_330" if modality == "vision" else "S01_E02_7"
    assert len(as_frames(values[long_key])) > padded                   # the data did exercise the cut


def test_text_bert_is_mintrecs_tokenization(native, bert):
    _, rows, *_, data = native
    vocab = vocab_ids(bert)
    ids = data.train.tensors["text_bert"]
    assert ids.shape == (4, 3, 30) and ids.dtype == torch.int64
    # [CLS] w001 w002 pos3a [SEP], then zeros
    first = [101, vocab["w001"], vocab["w002"], vocab["pos3a"], 102]
    assert ids[0, 0].tolist() == first + [0] * 25
    assert ids[0, 1].tolist() == [1] * 5 + [0] * 25 and not ids[0, 2].any()
    # 40 words cut to 28 tokens between [CLS] and [SEP]: exactly 30, no padding
    assert ids[1, 0].tolist() == [101] + [vocab[f"w{i:03d}"] for i in range(28)] + [102]
    assert ids[1, 1].sum() == 30
    # lower-cased (bert-base-uncased style) and an unknown word -> [UNK]
    assert ids[2, 0, :4].tolist() == [101, vocab["w010"], vocab["[UNK]"], 102]
    assert data.train.tensors["text_lengths"].tolist() == [5, 30, 4, 3]
    assert data.train.tensors["text_mask"].sum(1).tolist() == [5, 30, 4, 3]


def test_text_features_are_frozen_berts_last_hidden_state_masked(native, bert):
    from transformers import BertModel
    *_, data = native
    model = BertModel.from_pretrained(str(bert), add_pooling_layer=False).eval()
    for split in ("train", "test"):
        tb = getattr(data, split).tensors["text_bert"]
        with torch.no_grad():
            hidden = model(input_ids=tb[:, 0], attention_mask=tb[:, 1], token_type_ids=tb[:, 2]).last_hidden_state
        expected = hidden * tb[:, 1, :, None]
        text = getattr(data, split).tensors["text"]
        assert text.shape == (len(tb), 30, 768) and text.dtype == torch.float32
        torch.testing.assert_close(text, expected, atol=1e-5, rtol=1e-5)
        assert not text[tb[:, 1] == 0].any()                            # padding is exactly 0


def test_folder_resolution_and_dispatch(native, bert, tmp_path):
    folder = native[0]
    assert "mintrec" in dataset_names()
    assert resolve_feature_path("mintrec", data_root=folder.parent) == folder          # root holding MIntRec/
    assert resolve_feature_path("mintrec", data_root=folder) == folder                 # the folder itself
    data = load_dataset("mintrec", data_root=folder.parent, pretrained=str(bert))
    assert data.spec.path == str(folder) and len(data.test) == 3
    with pytest.raises(UsageError, match="no aligned setting"):
        load_dataset("mintrec", aligned=True, feature_path=folder, pretrained=str(bert))
    with pytest.raises(DataError, match="not found") as info:
        load_dataset("mintrec", data_root=tmp_path, pretrained=str(bert))
    assert "--synthetic" in str(info.value) and "\n" not in str(info.value)


# ------------------------------------------------------------------------------ errors

def broken(tmp_path, bert, *, rows=None, change=None, **kw):
    rows = rows or sample_rows()
    video, audio = sample_features(rows, np.random.default_rng(1))
    if change:
        change(video, audio)
    folder = write_folder(tmp_path / "MIntRec", rows, video, audio, **kw)
    with pytest.raises((DataError, UsageError)) as info:
        load_dataset("mintrec", feature_path=folder, pretrained=str(bert))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_folder_whose_path_holds_a_line_break_gives_one_line(tmp_path, bert):
    """The folder's path may hold a newline. The package's own lines were made one line (`one_line_error`), but
    not the unpickler's, which quote a feature file's path: the line the CLI printed broke there."""
    rows = sample_rows()
    folder = write_folder(tmp_path / "Min\nTRec", rows, *sample_features(rows, np.random.default_rng(1)))
    (folder / "audio_data" / "audio_feats.pkl").write_bytes(b"season,episode\n")
    with pytest.raises(DataError) as info:
        load_dataset("mintrec", feature_path=folder, pretrained=str(bert))
    assert str(info.value) == (f"{tmp_path}/Min TRec/audio_data/audio_feats.pkl is not a pickle (a feature file "
                               f"opens with byte 0x80): give the .pkl that MMSA publishes or that `run.py extract` "
                               f"wrote")


def test_keys_missing_from_a_feature_file_are_counted_and_named(tmp_path, bert):
    def drop(video, audio):
        for key in ("S05_E16_329", "S02_E01_2", "S03_E09_13"):
            del video[key]
    message = broken(tmp_path, bert, change=drop)
    assert "video_feats.pkl" in message and "3 keys" in message
    for key, tsv in (("S05_E16_329", "train.tsv"), ("S02_E01_2", "dev.tsv"), ("S03_E09_13", "test.tsv")):
        assert f"{key} ({tsv})" in message


def test_many_missing_keys_are_counted_and_the_first_named(tmp_path, bert):
    message = broken(tmp_path, bert, change=lambda video, audio: audio.clear())
    assert "audio_feats.pkl" in message and "9 keys" in message and "and 4 more" in message
    assert "S05_E16_329 (train.tsv)" in message


def test_unknown_labels_are_counted_and_named(tmp_path, bert):
    rows = sample_rows()
    rows[3] = rows[3][:5] + ("Praize",)
    rows[6] = rows[6][:5] + ("Apologize",)                       # the README's spelling, not the code's
    message = broken(tmp_path, bert, rows=rows)
    assert "2 rows" in message and "train.tsv line 5 'Praize'" in message and "test.tsv line 2 'Apologize'" in message
    assert "did you mean 'Praise'" in message and "Ask for help" in message


@pytest.mark.parametrize("change, expected", [
    (lambda v, a: a.__setitem__("S02_E01_1", np.full((4, DA), np.nan, np.float32)),
     "split 'valid', key 'S02_E01_1': expected finite values, found NaN"),
    (lambda v, a: a.__setitem__("S03_E09_12", np.ones((4, DA + 1), np.float32)),
     f"split 'test', key 'S03_E09_12': expected {DA} features per frame"),
    (lambda v, a: v.__setitem__("S01_E02_8", [np.ones((1, DV)), np.ones((1, DV + 2))]),
     "key 'S01_E02_8': expected a (T, D) array or a list of (1, D) arrays"),
    (lambda v, a: v.__setitem__("S01_E02_8", []), "an empty list"),
    (lambda v, a: v.__setitem__("S01_E02_8", "frames"), "found a str"),
])
def test_bad_frames_name_file_split_and_key(tmp_path, bert, change, expected):
    message = broken(tmp_path, bert, change=change)
    assert expected in message


def test_bad_layout_header_and_duplicates(tmp_path, bert):
    assert "expected the header season episode clip text label" in broken(
        tmp_path / "a", bert, header=("season", "episode", "clip", "utterance", "label"))
    rows = sample_rows()
    rows[4] = ("valid",) + rows[0][1:]                            # a train clip again in dev
    assert "key 'S05_E16_329' appears twice (train.tsv line 2 and dev.tsv line 2)" in broken(tmp_path / "b", bert,
                                                                                           rows=rows)
    folder = write_folder(tmp_path / "c" / "MIntRec", sample_rows(), *sample_features(sample_rows(),
                                                                                      np.random.default_rng(0)))
    (folder / "dev.tsv").unlink()
    (folder / "audio_data" / "audio_feats.pkl").unlink()
    with pytest.raises(DataError, match="lacks dev.tsv, audio_data/audio_feats.pkl"):
        load_dataset("mintrec", feature_path=folder, pretrained=str(bert))


def test_a_key_a_spreadsheet_would_run_as_a_formula_is_refused_by_run_py(tmp_path, bert, capsys):
    """A clip's key (season_episode_clip) is its id in predictions_test.csv and predictions.csv: a season
    '=HYPERLINK("x")' made a formula there for a spreadsheet that opens the file. Read with quoting off, as MIntRec
    reads it, the cell is the text as it stands. MIntRec's own keys ('S05_E16_329', the other tests' folders) load."""
    from mmsa_atsuko.cli import main
    rows = sample_rows()
    folder = write_folder(tmp_path / "MIntRec", rows, *sample_features(rows, np.random.default_rng(0)))
    (folder / "test.tsv").write_text('season\tepisode\tclip\ttext\tlabel\nS03\tE09\t11\tw005\tComfort\n'
                                     '=HYPERLINK("x")\tE09\t12\tw006\tJoke\n')
    expected = (f"{folder / 'test.tsv'}: split 'test', line 3 has the id '=HYPERLINK(\"x\")_E09_12', which starts with "
                f"'=': a spreadsheet would run it as a formula in the CSVs that list ids, such as predictions.csv; "
                f"change its season, episode or clip (the id is season_episode_clip) so that it starts with a letter "
                f"or a digit (after '-' only letters, digits and _.$- are fine, as in MOSI's ids)")
    with pytest.raises(DataError) as info:
        load_dataset("mintrec", feature_path=folder, pretrained=str(bert))
    assert str(info.value) == expected
    code = main(["-m", "tfn", "-d", "mintrec", "--feature-path", str(folder), "-c", f"pretrained={bert}",
                 "--out", str(tmp_path / "results"), "--quiet"])
    assert (code, capsys.readouterr().err) == (1, f"error: {expected}\n")
    assert not (tmp_path / "results").exists()


def test_a_stub_vocabulary_is_refused(native, tmp_path, bert):
    import shutil
    stub = tmp_path / "no-vocab"
    shutil.copytree(bert, stub)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        (stub / name).unlink(missing_ok=True)
    with pytest.raises(UsageError) as info:
        load_dataset("mintrec", feature_path=native[0], pretrained=str(stub))
    assert "has only 5 tokens" in str(info.value) and "\n" not in str(info.value)


def test_pickles_go_through_the_restricted_unpickler(tmp_path, bert):
    class Evil:
        def __reduce__(self):
            # os.system, not print: once Ray is imported (the sweep tests), builtins.print is
            # Ray's safe_print and pickles under that name.
            return (os.system, ("echo owned",))
    message = broken(tmp_path, bert, change=lambda v, a: a.__setitem__("S01_E02_8", Evil()))
    assert f"refused to unpickle {os.system.__module__}.system" in message and "audio_feats.pkl" in message


# ------------------------------------------------------------------------------ synthetic

@pytest.fixture(scope="module")
def small_synthetic(tmp_path_factory):
    return smt.write_synthetic_mintrec(tmp_path_factory.mktemp("syn") / "MIntRec", size="small", seed=0)


def read_tsv(path):
    return pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, dtype=str)


def test_synthetic_layout_sizes_and_class_balance(small_synthetic):
    folder = small_synthetic
    real = {"train": [172, 127, 82, 74, 70, 35, 38, 32, 31, 31, 52, 57, 170, 73, 66, 63, 51, 43, 36, 31],
            "valid": [57, 43, 27, 25, 24, 12, 12, 10, 10, 10, 18, 19, 57, 24, 22, 21, 17, 15, 12, 10],
            "test": [57, 43, 27, 25, 23, 12, 12, 10, 10, 10, 18, 19, 57, 25, 22, 21, 17, 15, 12, 10]}
    full = smt.class_counts("full")
    assert {s: full[s].tolist() for s in full} == real and [sum(real[s]) for s in real] == [1334, 445, 445]
    for split, tsv, n in (("train", "train.tsv", 160), ("valid", "dev.tsv", 60), ("test", "test.tsv", 60)):
        frame = read_tsv(folder / tsv)
        assert list(frame.columns) == ["season", "episode", "clip", "text", "label"] and len(frame) == n
        counts = frame["label"].value_counts().reindex(INTENTS).fillna(0).astype(int).to_numpy()
        quota = np.array(real[split]) / sum(real[split]) * n
        assert counts.min() >= 1 and np.abs(counts - quota).max() < 1.5
        assert frame["season"].str.startswith("synthetic:mintrec-small-unaligned-seed0-v1:").all()
    with open(folder / "video_data" / "video_feats.pkl", "rb") as f:
        video = pickle.load(f)
    with open(folder / "audio_data" / "audio_feats.pkl", "rb") as f:
        audio = pickle.load(f)
    key = next(iter(video))
    assert isinstance(video[key], list) and video[key][0].shape == (1, 256) and video[key][0].dtype == np.float32
    assert audio[key].ndim == 2 and audio[key].shape[1] == 768
    assert json.loads((folder / "synthetic.json").read_text())["max_seq_lens"] == {"text": 16, "audio": 24,
                                                                                   "vision": 20}


def test_synthetic_loads_offline_with_its_own_bert(small_synthetic):
    data = load_dataset("mintrec", feature_path=small_synthetic, pretrained=str(small_synthetic / "bert-synthetic-en"))
    assert data.spec.synthetic and data.spec.source == "synthetic:mintrec-small-unaligned-seed0-v1"
    assert data.spec.seq_lens == {"text": 16, "audio": 24, "vision": 20}
    assert data.spec.split_sizes == {"train": 160, "valid": 60, "test": 60}
    unk = 100
    assert (data.train.tensors["text_bert"][:, 0] != unk).all()      # the vocab covers every word


def test_synthetic_name_needs_the_stamp_to_hold(small_synthetic, tmp_path):
    import shutil
    bert = str(small_synthetic / "bert-synthetic-en")

    def source(folder):
        spec = load_dataset("mintrec", feature_path=folder, pretrained=bert).spec
        # The five data files only: a marker whose stamp does not hold sets nothing, not even the lengths.
        digests = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
                   for name in ("train.tsv", "dev.tsv", "test.tsv", "video_data/video_feats.pkl",
                                "audio_data/audio_feats.pkl")}
        combined = "".join(f"{name} {digests[name]}\n" for name in sorted(digests))
        assert spec.seq_lens == {"text": 30, "audio": 480, "vision": 230}
        return spec.synthetic, spec.source, "sha256:" + hashlib.sha256(combined.encode()).hexdigest()

    # One label edited in test.tsv: the seasons still read 'synthetic:...', yet it is real data now.
    edited = shutil.copytree(small_synthetic, tmp_path / "edited")
    lines = (edited / "test.tsv").read_text().splitlines()
    fields = lines[1].split("\t")
    fields[4] = "Praise" if fields[4] != "Praise" else "Complain"
    (edited / "test.tsv").write_text("\n".join([lines[0], "\t".join(fields), *lines[2:]]) + "\n")
    synthetic, got, expected = source(edited)
    assert not synthetic and got == expected

    # The stamp removed from synthetic.json (what an older generator wrote): real data too.
    bare = shutil.copytree(small_synthetic, tmp_path / "bare")
    marker = json.loads((bare / "synthetic.json").read_text())
    del marker["stamp"]
    (bare / "synthetic.json").write_text(json.dumps(marker))
    synthetic, got, expected = source(bare)
    assert not synthetic and got == expected


def test_synthetic_signal_is_planted_in_every_modality(small_synthetic):
    """Nearest-centroid on frame means (audio, vision) and cue-word votes (text), fitted on
    train and scored on train+dev+test together, are far above chance (1/20) and below 1:
    each modality shows the true intent only part of the time."""
    folder = small_synthetic
    frames = {}
    for modality, rel in (("audio", "audio_data/audio_feats.pkl"), ("vision", "video_data/video_feats.pkl")):
        with open(folder / rel, "rb") as f:
            frames[modality] = pickle.load(f)
    tsv = {s: read_tsv(folder / n) for s, n in (("train", "train.tsv"), ("dev", "dev.tsv"), ("test", "test.tsv"))}
    keys = {s: (t["season"] + "_" + t["episode"] + "_" + t["clip"]).tolist() for s, t in tsv.items()}
    y = {s: t["label"].map(INTENTS.index).to_numpy() for s, t in tsv.items()}
    for modality, values in frames.items():
        mean = {s: np.stack([as_frames(values[k]).mean(0) for k in keys[s]]) for s in keys}
        centroids = np.stack([mean["train"][y["train"] == c].mean(0) for c in range(20)])
        held_out = np.concatenate([mean["dev"], mean["test"]])
        pred = np.argmin(((held_out[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
        acc = (pred == np.concatenate([y["dev"], y["test"]])).mean()
        assert 0.35 < acc < 0.85, (modality, acc)
    # Text: the intent whose cue words (w000-w003 -> 0, w004-w007 -> 1, ...) occur most.
    texts = pd.concat([tsv["train"], tsv["dev"], tsv["test"]])
    votes = [np.bincount([int(w[1:]) // 4 for w in text.split() if int(w[1:]) < 80], minlength=20)
             for text in texts["text"]]
    hits = [v.max() > 0 and INTENTS[int(v.argmax())] == label for v, label in zip(votes, texts["label"])]
    assert 0.5 < np.mean(hits) < 0.9


def test_synthetic_is_deterministic(small_synthetic, tmp_path):
    again = smt.write_synthetic_mintrec(tmp_path / "MIntRec", size="small", seed=0)
    for rel in ("train.tsv", "dev.tsv", "test.tsv", "video_data/video_feats.pkl", "audio_data/audio_feats.pkl"):
        assert (again / rel).read_bytes() == (small_synthetic / rel).read_bytes(), rel
    other = smt.make_synthetic_mintrec("small", seed=1)
    assert other["rows"]["train"] != smt.make_synthetic_mintrec("small", seed=0)["rows"]["train"]


# ------------------------------------------------------------------------------ models

@pytest.fixture(scope="module")
def small_data(small_synthetic):
    return load_dataset("mintrec", feature_path=small_synthetic, pretrained=str(small_synthetic / "bert-synthetic-en"))


def classification_models():
    from mmsa_atsuko.registry import get_model_class, list_models
    return [m for m in list_models() if "classification" in get_model_class(m).registry_meta.get("tasks", ())]


@pytest.mark.parametrize("model_name", classification_models())
def test_every_classification_model_takes_a_training_step_on_mintrec(small_data, small_synthetic, model_name):
    from mmsa_atsuko.config import load_config
    from mmsa_atsuko.registry import build_model
    torch.manual_seed(0)
    config = load_config(model_name, "mintrec", preset="small",
                         overrides=[("pretrained", str(small_synthetic / "bert-synthetic-en"))])
    assert config.key_eval == "f1"
    model = build_model(model_name, config, small_data.spec)
    if hasattr(model, "on_fit_start"):               # the trainer's hook (Atsuko calibrates, Self-MM sizes buffers)
        model.on_fit_start(small_data.train)
    model.train()
    batch = small_data.train.batch(torch.arange(8))
    outputs = model(batch)
    assert outputs["pred"].shape == (8, 20)
    loss = model.loss(outputs, batch)["total"]
    loss.backward()
    assert torch.isfinite(loss)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


# ------------------------------------------------------------------------------ end to end

def test_cli_tfn_on_small_synthetic_mintrec(tmp_path, capsys):
    from mmsa_atsuko.cli import main
    from mmsa_atsuko.metrics import compute_metrics
    out = tmp_path / "results"
    assert main(["-m", "tfn", "-d", "mintrec", "--synthetic", "--preset", "small", "-s", "1111",
                 "--quiet", "--out", str(out)]) == 0
    assert "mintrec (synthetic data)" in capsys.readouterr().out
    (record,) = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert (record["model"], record["dataset"], record["seed"], record["synthetic"]) == ("tfn", "mintrec", 1111, True)
    assert record["data"] == "synthetic:mintrec-small-unaligned-seed0-v1"
    assert record["config"]["key_eval"] == "f1"
    assert set(record["metrics"]) >= {"acc", "f1", "precision", "recall", "Loss"}

    preds = pd.read_csv(out / record["run_dir"] / "predictions_test.csv", dtype={"id": str})
    logits = preds[[f"logit_{c}" for c in range(20)]].to_numpy()
    assert len(preds) == 60 and preds["id"].str.startswith("synthetic:").all()
    assert (preds["pred"].to_numpy() == logits.argmax(1)).all()
    again = compute_metrics("mintrec", logits, preds["label"].to_numpy())
    for key in ("acc", "f1", "precision", "recall"):
        assert again[key] == pytest.approx(record["metrics"][key], abs=1e-9)
    header = (out / "normal" / "mintrec-synthetic.csv").read_text().splitlines()[0]
    assert header == ("Model,acc,f1,precision,recall,Loss,aligned,condition,model_selection,config_hash,seeds,"
                      "run_ids,data,code,run_preset,run_precision,run_kernels,run_device")
    row = (out / "normal" / "mintrec-synthetic.csv").read_text().splitlines()[1]
    # the metric `precision` keeps its cell: a trace column named `precision` once wrote "fp32" over it
    cells = next(csv.reader([row]))
    mean, std = map(float, cells[3].strip("()").split(","))
    assert abs(mean - 100 * record["metrics"]["precision"]) < 0.01 and std == 0.0
    assert row.endswith(f",False,,valid f1,{record['config_hash']},1111,{record['run_id']},{record['data']},"
                        f"{code_version(record)},small,fp32,deterministic,cpu")


def test_cli_regression_only_model_fails_with_one_line(tmp_path, capsys):
    from mmsa_atsuko.cli import main
    code = main(["-m", "self_mm", "-d", "mintrec", "--synthetic", "--preset", "small", "-s", "1111",
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "self_mm" in err[0] and "regression only" in err[0] and "classification" in err[0]
    assert not (tmp_path / "out").exists()


def test_a_tsv_over_the_size_bound_is_one_line_read_no_further(small_synthetic, tmp_path):
    """train.tsv was read whole: a 3 GB file took 3.4 GB and ended in a MemoryError traceback under
    ulimit -v 4 GB; now the read stops past MAX_TSV_BYTES with one line (a sparse file here, so it is quick)."""
    import shutil
    folder = tmp_path / "MIntRec"
    shutil.copytree(small_synthetic, folder)
    with open(folder / "train.tsv", "r+b") as f:
        f.truncate(mintrec_tables.MAX_TSV_BYTES + 1)
    with pytest.raises(DataError) as caught:
        mintrec_tables.read_tsv(folder / "train.tsv", "train")
    assert str(caught.value) == (f"{folder / 'train.tsv'}: split 'train': over 64 MiB, far more than a MIntRec TSV "
                                 "holds; give the folder of the real TSV files")
