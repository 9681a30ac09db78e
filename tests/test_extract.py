"""run.py extract: videos + transcripts -> an MMSA-format pickle the loader reads (issue 19)."""
import hashlib
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from media_fixtures import BROKEN, CLIPS, GHOST, NO_FACE, require_extract, write_corpus

from mmsa_atsuko.cli import main
from mmsa_atsuko.data import load_dataset
from mmsa_atsuko.data.extract import EXTRACTOR_KEY, NO_FACE_KEY, ExtractConfig, extract, skipped_report_path
from mmsa_atsuko.data.extract.transcripts import assign_splits, read_transcripts
from mmsa_atsuko.data.synthetic import CLS_ID, SEP_ID, synthetic_vocab, write_tiny_bert
from mmsa_atsuko.errors import DataError, UsageError

SMALL = ExtractConfig(text_len=12, audio_len=40, vision_len=15)
F0_SEMITONES = 10      # eGeMAPS LLD column F0semitoneFrom27.5Hz_sma3nz


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    require_extract()
    root = tmp_path_factory.mktemp("extract")
    videos, transcripts = write_corpus(root)
    bert = write_tiny_bert(root / "bert")
    out = root / "out" / "features.pkl"
    result = extract(videos, transcripts, out, bert=bert, config=SMALL, echo=lambda _: None)
    return {"root": root, "videos": videos, "transcripts": transcripts, "bert": bert, "out": out, "result": result}


def _raw(path):
    with open(path, "rb") as f:
        return pickle.load(f)


def test_the_loader_reads_the_file_with_real_dims_splits_and_extractor(corpus):
    data = load_dataset("mosi", feature_path=corpus["out"])
    spec = data.spec
    assert spec.feature_dims == {"text": 768, "audio": 25, "vision": 74}
    assert spec.seq_lens == {"text": 12, "audio": 40, "vision": 15}
    assert spec.split_sizes == {"train": 5, "valid": 2, "test": 1}       # the CSV's split column
    assert data.train.ids == ["clip00", "clip01", "clip02", "clip03", "clip04"]
    assert spec.source == "sha256:" + hashlib.sha256(corpus["out"].read_bytes()).hexdigest()
    meta = _raw(corpus["out"])[EXTRACTOR_KEY]
    assert spec.extractor["config_hash"] == meta["config_hash"] and meta["name"] == "mmsa_atsuko.extract"
    assert not spec.aligned
    labels = {clip: row[2] for clip, row in CLIPS.items()}
    assert data.train.tensors["label"].tolist() == [labels[i] for i in data.train.ids]


def test_text_holds_bert_ids_in_mmsa_layout_and_the_last_layer(corpus):
    from transformers import BertModel
    split = _raw(corpus["out"])["train"]
    vocab = synthetic_vocab("en")
    words = CLIPS["clip00"][4].split()
    ids = [CLS_ID, *(vocab.index(w) for w in words), SEP_ID]
    bert = split["text_bert"]
    assert bert.shape == (5, 3, 12) and bert.dtype == np.float32           # MMSA stores the ids as float
    assert bert[0, 0, :len(ids)].tolist() == ids and not bert[0, 0, len(ids):].any()
    assert bert[0, 1].tolist() == [1] * len(ids) + [0] * (12 - len(ids)) and not bert[0, 2].any()
    model = BertModel.from_pretrained(corpus["bert"], add_pooling_layer=False).eval()
    with torch.no_grad():
        hidden = model(input_ids=torch.tensor(bert[:1, 0]).long(),
                       attention_mask=torch.tensor(bert[:1, 1]).long()).last_hidden_state[0]
    text = split["text"][0]
    assert np.allclose(text[:len(ids)], hidden[:len(ids)].numpy(), atol=1e-5)
    assert not text[len(ids):].any()                                         # zero past the mask


def test_audio_pitch_and_frame_counts_follow_the_clips(corpus):
    split = _raw(corpus["out"])["train"]
    for i, clip in enumerate(split["id"]):
        tone = CLIPS[clip][1]
        n = split["audio_lengths"][i]
        assert 28 <= n <= 30                                  # 1.2 s at 25 frames/s
        assert not split["audio"][i, n:].any()
        f0 = split["audio"][i, :n, F0_SEMITONES]
        voiced = f0[f0 > 0]
        assert len(voiced) > n // 2
        assert np.median(voiced) == pytest.approx(12 * np.log2(tone / 27.5), abs=0.5)
    assert split["vision_lengths"] == [12] * 5                # 1.2 s sampled at 10 frames/s


def test_a_video_without_a_face_gives_zero_rows_and_counts_them(corpus):
    split = _raw(corpus["out"])["train"]
    counts = dict(zip(split["id"], split[NO_FACE_KEY].tolist()))
    assert counts == {clip: (12 if clip == NO_FACE else 0) for clip in split["id"]}
    row = split["id"].index(NO_FACE)
    assert not split["vision"][row].any()
    faces = split["vision"][split["id"].index("clip00"), :12]
    assert (faces[:, 0] == 1).all()                                          # presence
    assert np.allclose(faces[:, 1:3], 0.5, atol=0.1)                         # centred, swaying a little


def test_unreadable_or_missing_videos_are_reported_not_dropped(corpus):
    lines = skipped_report_path(corpus["out"]).read_text().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{BROKEN}: cannot decode") and lines[1].startswith(f"{GHOST}: no video file")
    assert corpus["result"].skipped == lines
    ids = {i for s in ("train", "valid", "test") for i in _raw(corpus["out"])[s]["id"]}
    assert ids == set(CLIPS)


def test_a_second_call_resumes_from_the_cache(corpus):
    before = _raw(corpus["out"])
    again = extract(corpus["videos"], corpus["transcripts"], corpus["out"], bert=corpus["bert"], config=SMALL,
                    echo=lambda _: None)
    assert (again.extracted, again.cached) == (0, len(CLIPS))
    cache = sorted(corpus["out"].with_name("features.pkl.cache").glob("clip05-*.npz"))
    assert len(cache) == 1
    cache[0].unlink()                                        # as if killed before clip05 was done
    third = extract(corpus["videos"], corpus["transcripts"], corpus["out"], bert=corpus["bert"], config=SMALL,
                    echo=lambda _: None)
    assert (third.extracted, third.cached) == (1, len(CLIPS) - 1)
    after = _raw(corpus["out"])
    for key in ("audio", "vision", "text", "text_bert"):
        assert np.array_equal(before["valid"][key], after["valid"][key])


def test_two_jobs_give_the_same_file_as_one(corpus):
    out = corpus["root"] / "jobs2" / "features.pkl"
    result = extract(corpus["videos"], corpus["transcripts"], out, bert=corpus["bert"], config=SMALL, jobs=2,
                     echo=lambda _: None)
    assert result.extracted == len(CLIPS)
    one, two = _raw(corpus["out"]), _raw(out)
    for split in ("train", "valid", "test"):
        for key in ("audio", "vision", NO_FACE_KEY):
            assert np.array_equal(one[split][key], two[split][key])
    assert one[EXTRACTOR_KEY]["config_hash"] == two[EXTRACTOR_KEY]["config_hash"]


def test_cli_needs_bert_and_says_what_to_pass(corpus, capsys):
    code = main(["extract", "--videos", str(corpus["videos"]), "--transcripts", str(corpus["transcripts"]),
                 "--out", str(corpus["root"] / "x.pkl")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--bert PATH" in err
    # A BERT it cannot find: the advice names extract's own option, not run's -c pretrained=.
    code = main(["extract", "--videos", str(corpus["videos"]), "--transcripts", str(corpus["transcripts"]),
                 "--out", str(corpus["root"] / "x.pkl"), "--bert", str(corpus["root"] / "no-such-bert")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "does not exist; set --bert /path/to/no-such-bert" in err and "-c pretrained" not in err
    assert not (corpus["root"] / "x.pkl").exists()


def test_cli_writes_the_file_and_says_how_to_train(corpus, capsys):
    out = corpus["root"] / "cli" / "features.pkl"
    code = main(["extract", "--videos", str(corpus["videos"]), "--transcripts", str(corpus["transcripts"]),
                 "--out", str(out), "--bert", str(corpus["bert"]), "--text-len", "12", "--audio-len", "40",
                 "--vision-len", "15"])
    printed = capsys.readouterr().out
    assert code == 0 and out.is_file()
    assert f"skipped {BROKEN}: cannot decode" in printed
    assert f"-d mosi --feature-path {out}" in printed


def test_labels_no_dataset_takes_are_said_at_extract_time(corpus, capsys):
    import pandas as pd
    table = pd.read_csv(corpus["transcripts"])
    table["label"] = table["label"] * 5 + 9           # beyond MOSI's -3..3 and CH-SIMS's -1..1
    transcripts = corpus["root"] / "transcripts-wide.csv"
    table.to_csv(transcripts, index=False)
    out = corpus["root"] / "wide" / "features.pkl"
    code = main(["extract", "--videos", str(corpus["videos"]), "--transcripts", str(transcripts), "--out", str(out),
                 "--bert", str(corpus["bert"]), "--text-len", "12", "--audio-len", "40", "--vision-len", "15"])
    printed = capsys.readouterr().out
    assert code == 0 and out.is_file() and "python run.py -m MODEL -d" not in printed
    kept = table[table.id.isin(_raw(out)["train"]["id"] + _raw(out)["valid"]["id"] + _raw(out)["test"]["id"])]
    (note,) = [line for line in printed.splitlines() if line.startswith("note:")]
    assert note.startswith(f"note: its labels ({kept.label.min():g} to {kept.label.max():g}) fit no built-in dataset")


def test_a_file_without_labels_goes_to_test_and_cannot_be_trained_on(corpus):
    videos, transcripts = write_corpus(corpus["root"], labels=False, splits=False)
    out = corpus["root"] / "unlabelled" / "features.pkl"
    extract(videos, transcripts, out, bert=corpus["bert"], config=SMALL, echo=lambda _: None)
    raw = _raw(out)
    assert [k for k in ("train", "valid", "test") if k in raw] == ["test"]
    assert sorted(raw["test"]["id"]) == sorted(CLIPS) and raw[EXTRACTOR_KEY]["labels"] is False
    with pytest.raises(DataError, match="extracted without labels"):
        load_dataset("mosi", feature_path=out)


def test_transcript_errors_are_one_line(tmp_path):
    cases = {"id,label\na,1\n": "no 'text' column", "id,text\na,x\na,y\n": "appears more than once",
             "id,text,label\na,x,high\n": "is not a number", "id,text,split\na,x,holdout\n": "not train, valid or test"}
    for i, (content, message) in enumerate(cases.items()):
        path = tmp_path / f"t{i}.csv"
        path.write_text(content)
        with pytest.raises(DataError, match=message):
            read_transcripts(path)
    path = tmp_path / "split.csv"
    path.write_text("id,text,split\na,x,dev\n")
    assert read_transcripts(path).split.tolist() == ["valid"]                # MIntRec's name for valid
    with pytest.raises(UsageError, match="has a split column"):
        read_transcripts(path, {"train": 1.0, "valid": 0.0, "test": 0.0})


def test_split_ratios_are_seeded_and_exact():
    table = pd.DataFrame({"id": [f"v{i}" for i in range(20)], "text": "x", "label": 0.0})
    first = assign_splits(table, {"train": 0.7, "valid": 0.15, "test": 0.15}, seed=3)
    assert first.value_counts().to_dict() == {"train": 14, "valid": 3, "test": 3}
    assert first.equals(assign_splits(table, None, seed=3))                  # the default ratios
    assert not first.equals(assign_splits(table, None, seed=4))
    assert set(assign_splits(table.drop(columns="label"), None, seed=3)) == {"test"}


def test_the_core_install_imports_no_extraction_library():
    import subprocess
    import sys
    code = ("import sys, mmsa_atsuko.cli, mmsa_atsuko.data.extract, mmsa_atsuko.predict, mmsa_atsuko.api; "
            "print(sorted({'av', 'cv2', 'opensmile', 'librosa'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_without_the_extra_extract_says_what_to_install(tmp_path, monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "av" else real(name, *a))
    with pytest.raises(UsageError, match=r"extraction needs av: pip install -c constraints.txt -e \"\.\[extract\]\""):
        extract(tmp_path, tmp_path / "t.csv", tmp_path / "out.pkl", bert="unused")


def test_the_loader_keeps_the_extractor_record_and_checks_its_shape(tmp_path):
    from mmsa_atsuko.data.synthetic import make_synthetic
    data = make_synthetic("mosi")
    record = {"name": "x", "version": "3", "config_hash": "abc", "config": {"fps": 5}, "libraries": {"av": "1"}}
    for i, meta in enumerate([record, "not a dict", {"name": "x"}]):
        path = tmp_path / f"f{i}.pkl"
        with open(path, "wb") as f:
            pickle.dump({**data, EXTRACTOR_KEY: meta}, f)
        if i == 0:
            # What run records and model.json carry: the record without its library versions.
            assert load_dataset("mosi", feature_path=path).spec.extractor == {k: v for k, v in record.items()
                                                                              if k != "libraries"}
        else:
            with pytest.raises(DataError, match="meta/extractor'.*name, version and config_hash"):
                load_dataset("mosi", feature_path=path)
    plain = tmp_path / "plain.pkl"
    with open(plain, "wb") as f:
        pickle.dump(data, f)
    assert load_dataset("mosi", feature_path=plain).spec.extractor is None
