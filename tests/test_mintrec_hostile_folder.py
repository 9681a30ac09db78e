"""A MIntRec folder from a stranger: what in it may change what is loaded, and what the loader writes there.

- A text-feature cache shipped in the folder (`text_features/bert-<key>.safetensors`, the key computable by
  anyone from the public BERT and the folder's own TSVs) stood in for the BERT's features, under the same
  data id. It is never read; the cache is the user's own cache folder.
- synthetic.json's `max_seq_lens` set the padded lengths of any folder: -1 or 0 ended in a traceback, 10**12
  in a huge allocation, 3 cut every text of data still named real. They count only where the generator's
  stamp holds, and then within datasets.yaml's lengths.
- `text_features` a link to a folder outside: the cache was written through it. Nothing is written in the
  data folder now.

Expected values come from transformers' BertModel and hashlib, never from the loader.
"""
import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from mmsa_atsuko.cache import cache_dir
from mmsa_atsuko.data import load_dataset
from mmsa_atsuko.data import synthetic_mintrec as smt
from mmsa_atsuko.data.mintrec import dataset as mintrec_dataset, load_mintrec, text as mintrec_text
from mmsa_atsuko.errors import DataError

FIVE_FILES = ("train.tsv", "dev.tsv", "test.tsv", "video_data/video_feats.pkl", "audio_data/audio_feats.pkl")
REAL_LENS = {"text": 30, "audio": 480, "vision": 230}      # datasets.yaml's mintrec max_seq_lens


@pytest.fixture(scope="module")
def synthetic_folder(tmp_path_factory):
    return smt.write_synthetic_mintrec(tmp_path_factory.mktemp("syn") / "MIntRec", size="small", seed=0)


@pytest.fixture
def folder(synthetic_folder, tmp_path):
    """A fresh copy of the small synthetic folder; its tiny BERT is kept outside it, as a downloaded BERT is."""
    copy = shutil.copytree(synthetic_folder, tmp_path / "MIntRec")
    shutil.move(copy / "bert-synthetic-en", tmp_path / "bert-synthetic-en")
    return copy


def bert_of(folder):
    return str(folder.parent / "bert-synthetic-en")


def load(folder, **kw):
    return load_mintrec(feature_path=folder, pretrained=bert_of(folder), **kw)


def real_source(folder):
    digests = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in FIVE_FILES}
    return "sha256:" + hashlib.sha256("".join(f"{n} {digests[n]}\n" for n in sorted(digests)).encode()).hexdigest()


def bert_features(bert, text_bert):
    from transformers import BertModel
    model = BertModel.from_pretrained(bert, add_pooling_layer=False).eval()
    with torch.no_grad():
        hidden = model(input_ids=text_bert[:, 0], attention_mask=text_bert[:, 1],
                       token_type_ids=text_bert[:, 2]).last_hidden_state
    return hidden * text_bert[:, 1, :, None]


def tree_of(folder):
    """Every path under the folder (links not followed) with its kind, size and mtime."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            st = path.lstat()
            out[str(path.relative_to(folder))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def set_marker(folder, change):
    marker = json.loads((folder / "synthetic.json").read_text())
    change(marker)
    (folder / "synthetic.json").write_text(json.dumps(marker))


# ------------------------------------------------------------------------------ H1: a planted text cache

def test_a_text_feature_cache_shipped_in_the_folder_is_never_read(folder, monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("MMSA_ATSUKO_CACHE", str(tmp_path / "cache"))
    bare = load(folder, with_text_features=False)
    text_bert = {s: getattr(bare, s).tensors["text_bert"].numpy() for s in ("train", "valid", "test")}
    hidden = json.loads((Path(bert_of(folder)) / "config.json").read_text())["hidden_size"]
    # What a stranger can compute: the key from the public BERT and the folder's own token ids.
    key = mintrec_text.text_feature_key(bert_of(folder), text_bert)
    planted = {s: torch.full((len(ids), ids.shape[2], hidden), 7.0) for s, ids in text_bert.items()}
    (folder / "text_features").mkdir()
    save_file(planted, str(folder / "text_features" / f"bert-{key[:24]}.safetensors"))

    with caplog.at_level(logging.INFO, logger="mmsa_atsuko"):
        data = load(folder)
    for split in ("train", "test"):
        tb = getattr(data, split).tensors["text_bert"]
        torch.testing.assert_close(getattr(data, split).tensors["text"], bert_features(bert_of(folder), tb),
                                   atol=1e-5, rtol=1e-5)
    ignored = [r.getMessage() for r in caplog.records if "ignoring" in r.getMessage()]
    assert len(ignored) == 1 and str(folder / "text_features") in ignored[0]
    assert data.spec.source == "synthetic:mintrec-small-unaligned-seed0-v1"


def test_the_users_own_cache_is_kept_across_runs_and_per_bert(folder, monkeypatch, tmp_path):
    from mmsa_atsuko.data.tiny_bert import write_tiny_bert
    monkeypatch.setenv("MMSA_ATSUKO_CACHE", str(tmp_path / "cache"))
    first = load(folder)
    cached = sorted((tmp_path / "cache" / "mintrec_text_features").glob("*.safetensors"))
    assert len(cached) == 1 and cache_dir() == tmp_path / "cache"

    def must_not_run(*args):
        raise AssertionError("recomputed although cached")

    with monkeypatch.context() as m:
        m.setattr(mintrec_text, "_compute_text_features", must_not_run)
        again = load(folder)
    torch.testing.assert_close(again.train.tensors["text"], first.train.tensors["text"], rtol=0, atol=0)
    # Another BERT with the same vocabulary: a second file, other features for the same token ids.
    other = write_tiny_bert(tmp_path / "other-bert", seed=1)
    third = load_dataset("mintrec", feature_path=folder, pretrained=str(other))
    assert len(list((tmp_path / "cache" / "mintrec_text_features").glob("*.safetensors"))) == 2
    assert not torch.allclose(third.train.tensors["text"], first.train.tensors["text"])
    assert torch.equal(third.train.tensors["text_bert"], first.train.tensors["text_bert"])
    assert not (folder / "text_features").exists()


# ------------------------------------------------------------------------------ L3: no write in the data folder

def test_nothing_is_written_in_the_data_folder_not_even_through_a_link(folder, monkeypatch, tmp_path):
    monkeypatch.setenv("MMSA_ATSUKO_CACHE", str(tmp_path / "cache"))
    outside = tmp_path / "outside"
    outside.mkdir()
    (folder / "text_features").symlink_to(outside)
    before = tree_of(folder)
    load(folder)
    assert tree_of(folder) == before and list(outside.iterdir()) == []
    assert len(list((tmp_path / "cache" / "mintrec_text_features").glob("*.safetensors"))) == 1


# ------------------------------------------------------------------------------ H3: synthetic.json's lengths

@pytest.mark.parametrize("lengths", [{"text": 3}, {"text": -1}, {"text": 0}, {"text": 10 ** 12}, {"audio": 10 ** 12}])
@pytest.mark.parametrize("stamp", ["removed", "of other files"])
def test_lengths_of_a_marker_whose_stamp_does_not_hold_are_ignored(folder, lengths, stamp, caplog):
    def change(marker):
        marker["max_seq_lens"].update(lengths)
        if stamp == "removed":
            del marker["stamp"]
        else:
            marker["stamp"]["content_sha256"] = "0" * 64
    set_marker(folder, change)
    with caplog.at_level(logging.WARNING, logger="mmsa_atsuko"):
        data = load(folder, with_text_features=False)
    assert data.spec.seq_lens == REAL_LENS and not data.spec.synthetic
    assert data.spec.source == real_source(folder)          # the five files only: the marker sets nothing
    assert data.train.tensors["text_bert"].shape[2] == 30 and data.train.tensors["audio"].shape[1] == 480
    assert data.train.tensors["text_lengths"].max() > 3     # no text cut to the marker's length
    warned = [r.getMessage() for r in caplog.records if "synthetic.json" in r.getMessage()]
    assert len(warned) == 1 and "real data" in warned[0]


@pytest.mark.parametrize("lengths", [{"text": -1}, {"text": 0}, {"text": 10 ** 12},
                                     {"vision": 10 ** 12}, {"audio": 0}, {"text": "16"}, {"vision": True},
                                     {"text": 16.0}])
def test_a_stamped_marker_with_lengths_out_of_bounds_is_one_line(folder, lengths):
    # The stamp covers the five data files, not synthetic.json: its lengths can be edited with the stamp intact.
    set_marker(folder, lambda marker: marker["max_seq_lens"].update(lengths))
    with pytest.raises(DataError) as info:
        load(folder, with_text_features=False)
    message = str(info.value)
    assert "\n" not in message and "synthetic.json" in message and "text 2-30, audio 1-480, vision 1-230" in message


def test_the_bounds_of_a_stamped_markers_lengths_are_inclusive(folder):
    set_marker(folder, lambda marker: marker["max_seq_lens"].update({"text": 2, "audio": 480}))
    data = load(folder, with_text_features=False)
    assert data.spec.synthetic and data.spec.seq_lens == {"text": 2, "audio": 480, "vision": 20}
    assert (data.train.tensors["text_lengths"] == 2).all()              # [CLS] [SEP]
    for text_length in (1, 31):
        set_marker(folder, lambda marker: marker["max_seq_lens"].update({"text": text_length}))
        with pytest.raises(DataError, match="text 2-30"):
            load(folder, with_text_features=False)


def test_files_changed_between_the_stamp_check_and_the_read_are_one_line(folder, monkeypatch):
    real_read = mintrec_dataset.read_feature_file

    def read_then_changed(folder, modality, rows, max_len):
        frames, digest = real_read(folder, modality, rows, max_len)
        return frames, hashlib.sha256(b"other bytes").hexdigest()

    monkeypatch.setattr(mintrec_dataset, "read_feature_file", read_then_changed)
    with pytest.raises(DataError, match="changed while they were read") as info:
        load(folder, with_text_features=False)
    assert "\n" not in str(info.value)


def test_a_marker_that_is_no_json_object_leaves_real_data(folder):
    (folder / "synthetic.json").write_bytes(b"[1, 2")
    data = load(folder, with_text_features=False)
    assert not data.spec.synthetic and data.spec.seq_lens == REAL_LENS
    assert [len(data.train), len(data.valid), len(data.test)] == [160, 60, 60]


def test_a_full_disk_while_caching_the_text_features_is_a_warning(folder, monkeypatch, tmp_path, caplog):
    """safetensors' writer raises its own SafetensorError for an I/O error, no OSError: a disk that filled while the
    cache was written was a traceback (`ulimit -f 300` before a MIntRec run), where an unwritable cache is a
    warning. The features are used, and nothing is left in the cache."""
    import safetensors.torch
    from safetensors import SafetensorError

    def full_disk(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\0" * 100)
        raise SafetensorError("Error while serializing: I/O error: File too large (os error 27)")

    monkeypatch.setenv("MMSA_ATSUKO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    with caplog.at_level(logging.WARNING, logger="mmsa_atsuko"):
        data = load(folder)
    assert data.train.tensors["text"].shape[0] == len(data.train)
    cache = tmp_path / "cache" / "mintrec_text_features"
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"cannot cache the text features in {cache} (SafetensorError: Error while serializing: I/O error: File too large "
        f"(os error 27)): they will be computed again next time"]
    assert list(cache.iterdir()) == []


def test_the_berts_config_is_read_by_the_one_bounded_reader(folder):
    """MIntRec's loader read config.json again itself for the text width (json.load, unbounded, no checks):
    `"hidden_size": "abc"` was a ValueError traceback there. It is bert_config's line now, before any pickle."""
    config = Path(bert_of(folder)) / "config.json"
    config.write_text(json.dumps(dict(json.loads(config.read_text()), hidden_size="abc")))
    with pytest.raises(DataError, match=re.escape(f"{config}: hidden_size is 'abc', not a whole number from 1 to")):
        load(folder)
