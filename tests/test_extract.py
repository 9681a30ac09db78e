"""run.py extract: videos + transcripts -> an MMSA-format pickle the loader reads (issue 19)."""
import hashlib
import pickle
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from clip_fakes import (kill_self, killed_on_clip03, killed_on_clip03_last, no_audio_for_v07, no_space,
                        segv_on_clip03, sigint_to_self)
from media_fixtures import BROKEN, CLIPS, GHOST, NO_FACE, require_extract, set_mkv_duration, write_corpus

from mmsa_atsuko.cli import main
from mmsa_atsuko.data import load_dataset
from mmsa_atsuko.data.extract import EXTRACTOR_KEY, NO_FACE_KEY, ExtractConfig, extract, skipped_report_path
from mmsa_atsuko.data.extract.feature_cache import CacheShape, cache_folder
from mmsa_atsuko.data.extract.transcripts import assign_splits, read_transcripts
from mmsa_atsuko.data.tiny_bert import CLS_ID, SEP_ID, synthetic_vocab, write_tiny_bert
from mmsa_atsuko.errors import DataError, UsageError

SMALL = ExtractConfig(text_len=12, audio_len=40, vision_len=15)
SMALL_CACHE = CacheShape(25, 40, 15)       # what a cache file of SMALL holds at most: opensmile's 25 columns
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


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """A user cache of the test's own, where extract keeps its cache files: the corpus's clips are extracted afresh."""
    monkeypatch.setenv("MMSA_ATSUKO_CACHE", str(tmp_path / "user-cache"))
    return cache_folder()


def _cache_of(video) -> list:
    """The cache files of the video at `video` (one per media setting), as feature_cache.cache_file names them."""
    where = hashlib.sha256(str(Path(video).resolve()).encode()).hexdigest()[:16]
    return sorted(cache_folder().glob(f"{Path(video).stem}-{where}-*.npz"))


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
    cache = _cache_of(corpus["videos"] / "clip05.mp4")
    assert len(cache) == 1
    cache[0].unlink()                                        # as if killed before clip05 was done
    lines = []
    third = extract(corpus["videos"], corpus["transcripts"], corpus["out"], bert=corpus["bert"], config=SMALL,
                    echo=lines.append)
    assert (third.extracted, third.cached) == (1, len(CLIPS) - 1)
    # Said before the progress, which counts only the videos to extract (predict --videos prints no summary):
    # clip05 and broken.mp4, a video whose failure is never cached, are the two to extract.
    assert lines[0] == f"{len(CLIPS) - 1} of the {len(CLIPS) + 1} videos taken from extract's cache, 2 to extract"
    assert lines[1].startswith("extract: 1/2 videos")
    after = _raw(corpus["out"])
    for key in ("audio", "vision", "text", "text_bert"):
        assert np.array_equal(before["valid"][key], after["valid"][key])


def test_an_empty_or_truncated_cache_file_is_extracted_again_and_rewritten(corpus):
    """An empty cache file (np.load: EOFError) and one cut in half (zipfile.BadZipFile), as a full disk or a copy
    cut short leaves them: both are not cached, so their clips are extracted again and the files rewritten whole,
    and the features are those of the first call. Before, each was a traceback (neither error was caught)."""
    from mmsa_atsuko.data.extract.feature_cache import cached_features, is_cached
    before = _raw(corpus["out"])
    (empty,), (cut,) = (_cache_of(corpus["videos"] / f"{clip}.mp4") for clip in ("clip05", "clip06"))
    empty.write_bytes(b"")
    cut.write_bytes(cut.read_bytes()[:cut.stat().st_size // 2])
    for path, clip in ((empty, "clip05"), (cut, "clip06")):
        video = corpus["videos"] / f"{clip}.mp4"
        assert not is_cached(path, video, SMALL_CACHE) and cached_features(path, video, SMALL_CACHE) is None
    again = extract(corpus["videos"], corpus["transcripts"], corpus["out"], bert=corpus["bert"], config=SMALL,
                    echo=lambda _: None)
    assert (again.extracted, again.cached) == (2, len(CLIPS) - 2)
    for path, clip in ((empty, "clip05"), (cut, "clip06")):
        assert is_cached(path, corpus["videos"] / f"{clip}.mp4", SMALL_CACHE)
    after = _raw(corpus["out"])
    for split in ("train", "valid", "test"):
        for key in ("audio", "vision"):
            assert np.array_equal(before[split][key], after[split][key])


def test_a_cache_file_without_the_clip_length_is_not_counted_as_cached(tmp_path):
    """is_cached compared the stamp alone, cached_features also needed every feature: a cache file from before
    the clip's length was stored was extracted again, yet counted as cached in the line of a dead worker."""
    from mmsa_atsuko.data.extract.feature_cache import cached_features, file_stamp, is_cached
    video, cache = tmp_path / "v.mp4", tmp_path / "v.npz"
    video.write_bytes(b"a clip")
    features = {"audio": np.ones((3, 25), np.float32), "vision": np.ones((2, 74), np.float32)}
    np.savez(cache, stamp=file_stamp(video), **features)
    assert not is_cached(cache, video, SMALL_CACHE) and cached_features(cache, video, SMALL_CACHE) is None
    np.savez(cache, stamp=file_stamp(video), seconds=np.float64(1.5), **features)
    assert is_cached(cache, video, SMALL_CACHE) and cached_features(cache, video, SMALL_CACHE)["seconds"] == 1.5


def _saved(array) -> bytes:
    """`array` as np.save writes it."""
    import io
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _npy_declaring(shape) -> bytes:
    """A .npy file's bytes whose header declares float64 `shape` and holds no data."""
    header = f"{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()


def test_a_planted_cache_file_of_another_make_is_not_cached_and_raises_nothing(tmp_path):
    """A .npy under a cache file's name, a "seconds" of two numbers (or none, or complex) raised TypeError out of
    cached_features/is_cached (a traceback), a damaged compressed member zlib.error, a member whose header declares
    petabytes MemoryError: each is a file this module did not write, so not cached (extracted again). is_cached
    read no feature, so it counted the last two as cached; it checks what cached_features checks now."""
    import io
    import zipfile
    from mmsa_atsuko.data.extract.feature_cache import cached_features, file_stamp, is_cached
    video, cache = tmp_path / "v.mp4", tmp_path / "v.npz"
    video.write_bytes(b"a clip")
    features = {"stamp": file_stamp(video), "audio": np.ones((3, 25), np.float32),
                "vision": np.ones((2, 74), np.float32), "seconds": np.float64(1.5)}

    def npz(**changed):
        buffer = io.BytesIO()
        np.savez(buffer, **{**features, **changed})
        return buffer.getvalue()

    compressed = io.BytesIO()
    np.savez_compressed(compressed, **{**features, "audio": np.zeros((40, 25), np.float32)})
    damaged = bytearray(compressed.getvalue())
    start = damaged.index(b"audio.npy") + 80
    damaged[start:start + 40] = bytes(b ^ 0x55 for b in damaged[start:start + 40])
    with zipfile.ZipFile(huge := io.BytesIO(), "w") as z:
        for key, value in features.items():
            z.writestr(f"{key}.npy", _npy_declaring((10 ** 15,)) if key == "audio" else _saved(value))
    planted = {"npy": _saved(np.zeros(3)), "two seconds": npz(seconds=np.zeros(2)),
               "no seconds": npz(seconds=np.zeros(0)), "complex seconds": npz(seconds=np.complex128(1j)),
               "damaged compressed": bytes(damaged), "petabytes declared": huge.getvalue()}
    for what, content in planted.items():
        cache.write_bytes(content)
        assert (is_cached(cache, video, SMALL_CACHE), cached_features(cache, video, SMALL_CACHE)) == (False, None), what
    cache.write_bytes(npz())
    assert is_cached(cache, video, SMALL_CACHE) and cached_features(cache, video, SMALL_CACHE)["seconds"] == 1.5


def test_no_rows_past_the_padded_lengths_are_computed_or_cached_and_the_file_is_the_same(corpus, tmp_path,
                                                                                       fresh_cache):
    """A clip's features were computed and cached at its full length (~3.3 MB for 10 minutes), then cut to the
    padded lengths. A 3 s clip under SMALL's 40 audio rows (1.6 s) and 15 vision rows (1.5 s at 10 fps): the
    faces of 15 frames are described, not 30, the cache file holds 40 and 15 rows, and the features are the first
    rows of those of the whole clip, as the file had them."""
    from media_fixtures import write_video

    from mmsa_atsuko.data.extract import frame_features, media
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "long3s.mp4", seconds=3.0)
    (tmp_path / "t.csv").write_text("id,text,label\nlong3s,w001,1.0\n")
    calls = []
    _, rows, seconds = media.decode(videos / "long3s.mp4", 10.0, _counting_faces(calls), max_rows=15)
    assert len(calls) == len(rows) == 15 and 3.0 <= seconds < 3.1       # the whole clip is still decoded
    whole = frame_features.video_features(videos / "long3s.mp4", "opensmile", 10.0)
    assert (len(whole["audio"]), len(whole["vision"])) == (74, 30)       # 3 s: 74 whole eGeMAPS frames
    out = tmp_path / "f.pkl"
    extract(videos, tmp_path / "t.csv", out, bert=corpus["bert"], config=SMALL, echo=lambda _: None)
    (cache,) = fresh_cache.glob("long3s-*.npz")
    with np.load(cache) as saved:
        assert saved["audio"].shape == (40, 25) and saved["vision"].shape == (15, media.VISION_DIM)
        assert float(saved["seconds"]) == whole["seconds"]
    split = _raw(out)["train"]
    assert np.array_equal(split["audio"][0], whole["audio"][:40]) and np.array_equal(split["vision"][0],
                                                                                     whole["vision"][:15])
    assert (split["audio_lengths"], split["vision_lengths"]) == ([40], [15])


def test_two_jobs_give_the_same_file_as_one(corpus, fresh_cache):
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
    assert "no-such-bert does not exist; check the path, or set --bert /path/to/bert" in err and "-c pretrained" not in err
    assert not (corpus["root"] / "x.pkl").exists()


def test_cli_writes_the_file_and_says_how_to_train(corpus, capsys):
    out = corpus["root"] / "cli" / "features.pkl"
    code = extract_cli(corpus, out)
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
    code = extract_cli(corpus, out, transcripts)
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


def test_a_transcripts_path_holding_a_line_break_gives_one_line(tmp_path):
    """Its lines quote the CSV's path as it is, and a path may hold a newline: the line the CLI printed broke there."""
    path = tmp_path / "a\nb.csv"
    path.write_text("id,label\na,1\n")
    with pytest.raises(DataError) as info:
        read_transcripts(path)
    assert str(info.value) == (f"{tmp_path}/a b.csv: no 'text' column (columns: id, label); expected id, text, "
                               f"label and optionally split")


def test_transcript_errors_are_one_line(tmp_path):
    cases = {"id,label\na,1\n": "no 'text' column", "id,text\na,x\na,y\n": "appears more than once",
             "id,text,label\na,x,high\n": "is not a number", "id,text,split\na,x,holdout\n": "not train, valid or test",
             "id,text,label\na,x,1\n,y,2\n": r"line 3 \(text 'y'\) has an empty id",
             # finite as float64, inf as the float32 the file stores (3.4e38 is float32's largest)
             "id,text,label\na,x,1\nb,y,1e39\n": r"column 'label' row of id 'b' is 1e\+39, past what a float32",
             "id,text,label,label_A\na,x,1,-4e38\n": r"column 'label_A' row of id 'a' is -4e\+38,"}
    for i, (content, message) in enumerate(cases.items()):
        path = tmp_path / f"t{i}.csv"
        path.write_text(content)
        with pytest.raises(DataError, match=message):
            read_transcripts(path)
    path = tmp_path / "excel.csv"        # the CSVs a spreadsheet writes where a comma is the decimal sign
    path.write_bytes(b"id;text;label\na;cafe;1,5\nb;caf\xe9;2\n")
    with pytest.raises(DataError, match=r"line 3 is not UTF-8 text \(byte b'\\xe9'\): save the file as UTF-8"):
        read_transcripts(path)
    path.write_bytes(b"id;text;label\na;cafe;1,5\n")
    with pytest.raises(DataError, match=r"its header 'id;text;label' is one column: separate the columns with commas"):
        read_transcripts(path)
    path = tmp_path / "long-id.csv"      # an id no file name can hold (255 bytes less '.mp4'), quoted by every line
    accent = "\u00e9"                     # two bytes in UTF-8
    path.write_text(f"id,text\n{'v' * 251},x\n{accent * 126},y\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 3 has an id of 252 bytes \(starting '\u00e9{40}'\), longer than a video's"):
        read_transcripts(path)
    path = tmp_path / "long.csv"         # a text's length is bounded: the tokenizer reads it whole
    path.write_text(f"id,text\na,{'w' * 20_000}\nb,{'w' * 20_001}\n")
    with pytest.raises(DataError, match=r"the text of id 'b' is 20,001 characters, over the 20,000 of one utterance"):
        read_transcripts(path)
    path.write_text(f"id,text\na,{'w' * 20_000}\n")
    assert read_transcripts(path).text.str.len().tolist() == [20_000]
    path = tmp_path / "split.csv"
    path.write_text("id,text,split\na,x,dev\n")
    assert read_transcripts(path).split.tolist() == ["valid"]                # MIntRec's name for valid
    with pytest.raises(UsageError, match="has a split column"):
        read_transcripts(path, {"train": 1.0, "valid": 0.0, "test": 0.0})


def test_an_id_a_spreadsheet_would_run_as_a_formula_is_refused_and_a_dash_is_not(tmp_path):
    """Ids reach predictions.csv as they are: '=HYPERLINK(...)' or '+cmd|...' in its first column is a formula to a
    spreadsheet that opens it (CSV injection). '-' starts MOSI's YouTube ids and stays allowed before letters, digits
    and _.$- (MMSA's 'video$_$clip'); '-HYPERLINK(...)' or '-2+3+cmd|...' were accepted, and ran as formulas."""
    import csv
    refused = {"=1+2": "starts with '='", "+cmd": "starts with '+'", "@SUM(A1)": "starts with '@'",
               "\tx": "starts with '\\t'", "\rx": "starts with '\\r'",
               '-HYPERLINK("http://x.example/?"&A1)': "starts with '-' and holds '('",
               "-2+3+cmd|' -c calc'!A0": "starts with '-' and holds '+'", "-a b": "starts with '-' and holds ' '",
               "-caf\u00e9": "starts with '-' and holds '\u00e9'"}
    for i, (video_id, which) in enumerate(refused.items()):
        path = tmp_path / f"f{i}.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([["id", "text"], ["ok1", "a"], [video_id, "b"]])
        with pytest.raises(DataError) as error:
            read_transcripts(path)
        assert str(error.value) == (f"{path}: line 3 has the id {video_id!r}, which {which}: a spreadsheet would "
                                    f"run it as a formula in the CSVs that list ids, such as predictions.csv; rename "
                                    f"the video and its id so that it starts with a letter or a digit (after '-' only "
                                    f"letters, digits and _.$- are fine, as in MOSI's ids)")
    path = tmp_path / "mosi.csv"
    path.write_text("id,text\n-3g5yACwYnA_1,a\nok=+@,b\n-_9.mp4-x,c\n-3g5yACwYnA$_$2,d\n")
    assert read_transcripts(path).id.tolist() == ["-3g5yACwYnA_1", "ok=+@", "-_9.mp4-x", "-3g5yACwYnA$_$2"]


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


# -- limits on a clip: a video file is hostile until proven otherwise -------------------------------

def _counting_faces(calls: list):
    """A vision_features for media.decode that records each frame it is given."""
    from mmsa_atsuko.data.extract import media

    def features(gray):
        calls.append(gray.shape)
        return np.zeros(media.VISION_DIM, np.float32)
    return features


def test_set_mkv_duration_rewrites_the_header_whatever_other_bytes_match_its_id(tmp_path):
    """The helper searched the file for Duration's id (44 89) and asserted it was found once: the random
    SegmentUID and CRC-32s the muxer writes held those bytes in about 1 file in 1,400 (7 of 10,000), and
    test_a_huge_first_timestamp_does_not_hang_decode failed. Here the SegmentUID holds them for sure."""
    require_extract()
    import av
    from media_fixtures import _ebml_child, write_video
    clip = tmp_path / "uid.mkv"
    write_video(clip, seconds=0.4)
    data = bytearray(clip.read_bytes())
    header, size = _ebml_child(data, 0, len(data), 0x1A45DFA3)
    segment, size = _ebml_child(data, header + size, len(data), 0x18538067)
    info, size = _ebml_child(data, segment, segment + size, 0x1549A966)
    uid, uid_size = _ebml_child(data, info, info + size, 0x73A4)          # SegmentUID, 16 random bytes
    data[uid:uid + 2] = b"\x44\x89"
    clip.write_bytes(bytes(data))
    set_mkv_duration(clip, 7250.0)
    with av.open(str(clip)) as container:
        assert container.duration == 7_250_000
    assert clip.read_bytes()[uid:uid + 2] == b"\x44\x89"


def test_a_clip_over_the_duration_limit_is_refused_by_its_header_or_while_decoding(tmp_path):
    require_extract()
    import av
    from media_fixtures import write_video

    from mmsa_atsuko.data.extract import media
    clip = tmp_path / "clip.mp4"
    write_video(clip, seconds=1.2)
    # AAC codes whole frames of 1024 samples: 1.2 s (19200 samples) decodes to 19 frames, 19456 samples.
    decoded = 19 * 1024 / 16000
    calls = []
    with pytest.raises(media.VideoError) as error:       # the header's 1.2 s: refused before any frame
        media.decode(clip, 10.0, _counting_faces(calls), max_seconds=1.0)
    assert str(error.value) == ("longer than the 1 s limit of a clip (its header declares 1.2 s): cut it into "
                                "utterances, or raise --max-clip-seconds")
    assert calls == []
    # Under the header's 1.2 s but not the decoded audio's 1.216 s: refused while decoding.
    with pytest.raises(media.VideoError, match=r"^longer than the 1\.21 s limit of a clip \(its audio runs past it\)"):
        media.decode(clip, 10.0, _counting_faces([]), max_seconds=1.21)
    samples, rows, seconds = media.decode(clip, 10.0, _counting_faces([]), max_seconds=1.22)     # just under
    assert len(samples) == 19 * 1024 and seconds == decoded and len(rows) == 12

    # A header that lies: 3 s of video declared as 0.5 s. Decoding stops once past the limit.
    lying = tmp_path / "lying.mkv"
    write_video(lying, seconds=3.0)
    set_mkv_duration(lying, 500.0)
    with av.open(str(lying)) as container:
        assert container.duration == 500_000 and all(s.duration is None for s in container.streams)
    calls = []
    with pytest.raises(media.VideoError, match=r"^longer than the 1 s limit of a clip \(its (audio|video) runs past"):
        media.decode(lying, 10.0, _counting_faces(calls), max_seconds=1.0)
    assert 0 < len(calls) <= 11            # frames at 0, 0.1, ..., 1.0 s at most; the whole clip has 30
    _, rows, seconds = media.decode(lying, 10.0, _counting_faces([]), max_seconds=3.1)
    assert len(rows) == 30 and 3.0 < seconds < 3.1        # its decoded length, not the header's 0.5 s


def _write_frames_at_one_timestamp(path, frames: int) -> None:
    """A Matroska clip of 1 s of audio and `frames` 64x64 video frames that all carry timestamp 0."""
    import av
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=25)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        audio = container.add_stream("aac", rate=16000)
        audio.layout = "mono"
        for i in range(frames + 1):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24") if i < frames else None
            if frame is not None:
                frame.pts = i
            for packet in video.encode(frame):
                packet.pts = packet.dts = 0
                container.mux(packet)
        for start in range(0, 16000, 1024):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
            frame.sample_rate, frame.pts = 16000, start
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)


def test_frames_that_do_not_move_the_clock_are_limited_by_the_frame_rate(tmp_path):
    """Every frame is decoded, sampled or not: 2000 frames at one timestamp (a 55 KB file; a few MB
    hold millions) never reached the duration limit, so decoding went on as long as the file."""
    require_extract()
    from media_fixtures import write_video

    from mmsa_atsuko.data.extract import media
    stuck = tmp_path / "stuck.mkv"
    _write_frames_at_one_timestamp(stuck, 2000)
    calls = []
    with pytest.raises(media.VideoError) as error:
        media.decode(stuck, 10.0, _counting_faces(calls))
    # The frame after 240 (the limit a second, and 0.00 s of timeline plus one second's worth) is refused.
    assert str(error.value) == ("241 video frames in 0.00 s of its timeline, over the limit of 240 frames a second: "
                                "re-encode it at a normal rate with fresh timestamps, e.g. ffmpeg -i IN -r 30 OUT")
    assert len(calls) == 1                        # the one frame sampled at 0 s
    _write_frames_at_one_timestamp(stuck, 240)    # at the limit: decoded, one vision row
    assert len(media.decode(stuck, 10.0, _counting_faces([]))[1]) == 1

    fast = tmp_path / "fast.mp4"                  # 1000 frames a second: frame k at k ms
    write_video(fast, seconds=1.0, size=(64, 64), fps=1000)
    with pytest.raises(media.VideoError, match=r"^316 video frames in 0\.32 s of its timeline, over the limit of 240"):
        media.decode(fast, 10.0, _counting_faces([]))


def test_frames_over_the_pixel_limit_are_refused_before_decoding_or_when_they_grow(tmp_path, monkeypatch):
    require_extract()
    import av
    from media_fixtures import write_video

    from mmsa_atsuko.data.extract import media
    # The size the header declares is checked before any frame is decoded.
    h264, mpeg4 = tmp_path / "h264.mp4", tmp_path / "mpeg4.mp4"
    write_video(h264, size=(160, 120), codec="libx264")
    write_video(mpeg4, size=(160, 120))
    monkeypatch.setattr(media, "MAX_PIXELS", 160 * 120 - 1)
    calls = []
    for clip in (h264, mpeg4):
        with pytest.raises(media.VideoError, match=r"^frames of 160x120 pixels, over the limit of 19,199 pixels a "
                                                   r"frame \(4K fits\): scale the video down first"):
            media.decode(clip, 10.0, _counting_faces(calls))
    assert calls == []
    monkeypatch.setattr(media, "MAX_PIXELS", 160 * 120)
    assert len(media.decode(h264, 10.0, _counting_faces(calls))[1]) == 12
    assert len(media.decode(mpeg4, 10.0, _counting_faces(calls))[1]) == 12

    # A stream whose header says 64x48 and whose frames grow half way (MPEG-TS files join byte by
    # byte): a frame over our limit is refused once decoded; one over FFmpeg's is not even allocated.
    small = tmp_path / "small.ts"
    write_video(small, size=(64, 48), seconds=0.6)
    monkeypatch.setattr(media, "MAX_PIXELS", 64 * 48)
    monkeypatch.setattr(media, "DECODER_MAX_PIXELS", 400_000)      # 1280x720 is 921,600
    for size, message in (((80, 60), "^frames of 80x60 pixels, over the limit of 3,072"),
                          ((1280, 720), "^cannot decode")):
        large, joined = tmp_path / f"large{size[0]}.ts", tmp_path / f"grows{size[0]}.ts"
        write_video(large, size=size, seconds=0.6, face=False)
        joined.write_bytes(small.read_bytes() + large.read_bytes())
        with av.open(str(joined)) as container:
            context = container.streams.video[0].codec_context
            assert (context.width, context.height) == (64, 48)
        calls = []
        with pytest.raises(media.VideoError, match=message):
            media.decode(joined, 10.0, _counting_faces(calls))
        assert calls and set(calls) == {(48, 64)}       # the first half's frames only

    # A declared size over FFmpeg's limit: H.264's parser reads it from the stream before any frame
    # is decoded; for MPEG-4 part 2 the probe reports 0x0, and decode reads the size from its VOL header.
    monkeypatch.setattr(media, "MAX_PIXELS", 200_000)
    write_video(h264, size=(1280, 720), seconds=0.4, face=False, codec="libx264")
    write_video(mpeg4, size=(1280, 720), seconds=0.4, face=False)
    calls = []
    for clip in (h264, mpeg4):
        with pytest.raises(media.VideoError, match=r"^frames of 1280x720 pixels, over the limit of 200,000 pixels"):
            media.decode(clip, 10.0, _counting_faces(calls))
    assert calls == []
    # Where no VOL header can be read, the decoder refuses the frame unallocated.
    read_vol = media.vol_frame_size
    monkeypatch.setattr(media, "vol_frame_size", lambda extradata: None)
    with pytest.raises(media.VideoError, match=r"^cannot decode: .*; its frame size was unknown after probing: "
                                               r"it may be far over the limit of 200,000 pixels a frame"):
        media.decode(mpeg4, 10.0, _counting_faces(calls))
    assert calls == []
    monkeypatch.setattr(media, "vol_frame_size", read_vol)
    monkeypatch.setattr(media, "MAX_PIXELS", 1280 * 720)
    monkeypatch.setattr(media, "DECODER_MAX_PIXELS", 2 * 1280 * 720)
    assert len(media.decode(mpeg4, 10.0, _counting_faces(calls))[1]) == 4



def test_a_dci_4k_clip_at_30_fps_of_the_allowed_length_passes_the_pixel_budget(tmp_path):
    """README: 4K fits, and a clip at or under 4K30 of allowed length always passes. The budget was UHD's
    3840x2160 at 30 fps: 2 s of DCI 4K (4096x2160) at 30 fps, 60 frames (530,841,600 pixels), was skipped
    under a limit of 2.06 s (UHD's budget 512,593,920), by its header (H.264) or while decoding (MPEG-4
    part 2). 2.06 s, not 2: the AAC track runs to 2.048 s (whole frames of 1024 samples)."""
    require_extract()
    from media_fixtures import write_video

    from mmsa_atsuko.data.extract import media
    for codec in ("mpeg4", "libx264"):
        clip = tmp_path / f"dci-{codec}.mp4"
        write_video(clip, size=(4096, 2160), fps=30, seconds=2.0, face=False, codec=codec)
        assert len(media.decode(clip, 30.0, _counting_faces([]), max_seconds=2.06)[1]) == 60
    # Frames at 0, 1/30, ..., S span S seconds: 30*S + 1 of them are a clip of allowed length.
    assert media.pixel_budget(1.0) == 4096 * 2160 * 31
    assert media.pixel_budget(600.0) == 4096 * 2160 * 18001


def test_a_clip_over_the_decoded_pixel_budget_is_refused_by_its_header_or_while_decoding(tmp_path, monkeypatch):
    """4K at 240 fps passes the frame-size and frame-rate limits, yet 5 s of it (163 KB) took 9 s and 529 MB to
    decode. The budget is --max-clip-seconds of 4K30 plus a frame; lowered here to 64x64 at 30 fps, 3 s of it and a
    frame: 372,736 pixels."""
    require_extract()
    from media_fixtures import write_video

    from mmsa_atsuko.data.extract import media
    monkeypatch.setattr(media, "DECODED_PIXELS_PER_SECOND", 64 * 64 * 30)
    monkeypatch.setattr(media, "BUDGET_FRAME_PIXELS", 64 * 64)
    within, declared, undeclared = tmp_path / "within.mp4", tmp_path / "declared.mp4", tmp_path / "undeclared.ts"
    write_video(within, size=(64, 64), fps=30, seconds=2.0, face=False)       # 60 frames: 245,760 pixels
    # H.264's parser reads the frame size before any frame is decoded (MPEG-4 part 2 its VOL header, as above).
    write_video(declared, size=(64, 64), fps=60, seconds=2.0, face=False, codec="libx264")   # 120 frames: 491,520
    write_video(undeclared, size=(64, 64), fps=60, seconds=2.0, face=False)   # MPEG-TS declares no frame count
    assert len(media.decode(within, 1000.0, _counting_faces([]), max_seconds=3.0)[1]) == 60
    calls = []
    with pytest.raises(media.VideoError) as error:
        media.decode(declared, 1000.0, _counting_faces(calls), max_seconds=3.0)
    assert str(error.value) == ("491,520 pixels to decode (its header declares 120 frames of 64x64), over the budget "
                                "of 3 s of 4K at 30 fps (372,736): scale it down and lower its frame rate first, e.g. "
                                "ffmpeg -i IN -vf scale=1280:-2 -r 30 OUT, or raise --max-clip-seconds")
    assert calls == []
    matroska = tmp_path / "declared.mkv"        # declares no frame count: its duration times its rate
    write_video(matroska, size=(64, 64), fps=60, seconds=2.0, face=False, codec="libx264")
    with pytest.raises(media.VideoError, match=r"^\d{3},\d{3} pixels to decode \(its header declares 2\.\d s at 60 fps "
                                               r"of 64x64\), over the budget of 3 s"):
        media.decode(matroska, 1000.0, _counting_faces(calls), max_seconds=3.0)
    assert calls == []
    # The 92nd frame takes it to 376,832 pixels: decoding stops there, after 91 frames were sampled.
    with pytest.raises(media.VideoError, match=r"^376,832 pixels to decode \(92 frames decoded so far\), over the "
                                               r"budget of 3 s of 4K at 30 fps \(372,736\)"):
        media.decode(undeclared, 1000.0, _counting_faces(calls), max_seconds=3.0)
    assert len(calls) == 91
    # The same knob --max-clip-seconds sets: 4 s of budget (495,616 pixels) takes both whole.
    assert len(media.decode(declared, 1000.0, _counting_faces([]), max_seconds=4.0)[1]) == 120
    assert len(media.decode(undeclared, 1000.0, _counting_faces([]), max_seconds=4.0)[1]) == 120

def test_an_mpeg4_part_2_mp4_is_refused_by_the_size_its_vol_header_declares(tmp_path, monkeypatch):
    """MPEG-4 part 2 in MP4 reported 0x0 before decoding, so the decoded-pixel budget counted only while decoding:
    91 frames were decoded and sampled before the clip was refused. Its VOL header (the stream's extradata) says
    64x64, so the 120 frames MP4 declares are refused before any is decoded. The budget as in the test above."""
    require_extract()
    from media_fixtures import write_video

    from mmsa_atsuko.data.extract import media
    monkeypatch.setattr(media, "DECODED_PIXELS_PER_SECOND", 64 * 64 * 30)
    monkeypatch.setattr(media, "BUDGET_FRAME_PIXELS", 64 * 64)
    clip = tmp_path / "mpeg4.mp4"
    write_video(clip, size=(64, 64), fps=60, seconds=2.0, face=False)       # 120 frames: 491,520 pixels
    calls = []
    with pytest.raises(media.VideoError) as error:
        media.decode(clip, 1000.0, _counting_faces(calls), max_seconds=3.0)
    assert str(error.value).startswith("491,520 pixels to decode (its header declares 120 frames of 64x64), over "
                                       "the budget of 3 s of 4K at 30 fps (372,736)")
    assert calls == []
    assert len(media.decode(clip, 1000.0, _counting_faces([]), max_seconds=4.0)[1]) == 120


def test_an_mpeg4_part_2_mp4_whose_vol_is_in_band_is_refused_by_the_size_its_first_packet_declares(tmp_path,
                                                                                                 monkeypatch):
    """Without a global header the VOL is in-band, in the first video packet. FFmpeg's probe copies it into the
    extradata when it reads that packet, but it stops after 5 s of analysis: video starting at 6 s, after the audio,
    kept MP4's 0x0 and an empty extradata, so the budget (lowered to 2,000 pixels a second and no frame: 20,000 for
    10 s) counted only while decoding, and 6 frames were decoded and sampled. The first packet's VOL says 64x48,
    read before that packet is decoded: the 10 frames MP4 declares (30,720 pixels) are refused with no frame
    decoded (at 1000 fps each decoded frame is sampled). A size over MAX_PIXELS was FFmpeg's 'cannot decode'."""
    require_extract()
    import av
    from media_fixtures import write_video

    from mmsa_atsuko.data.extract import media
    clip = tmp_path / "late.mp4"
    write_video(clip, size=(64, 48), fps=25, seconds=6.4, video_start=6.0, face=False, in_band=True)
    with av.open(str(clip), container_options={"codec_whitelist": media._probe_decoders()}) as container:
        video = container.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height, video.frames) == (0, 0, 10)
        assert not video.codec_context.extradata
        assert media.vol_frame_size(bytes(next(container.demux(video)))) == (64, 48)
    monkeypatch.setattr(media, "DECODED_PIXELS_PER_SECOND", 2000)
    monkeypatch.setattr(media, "BUDGET_FRAME_PIXELS", 0)
    calls = []
    with pytest.raises(media.VideoError) as error:
        media.decode(clip, 1000.0, _counting_faces(calls), max_seconds=10.0)
    assert str(error.value).startswith("30,720 pixels to decode (its header declares 10 frames of 64x48), over the "
                                       "budget of 10 s of 4K at 30 fps (20,000)")
    assert calls == []
    assert len(media.decode(clip, 1000.0, _counting_faces(calls), max_seconds=16.0)[1]) == 10    # 32,000
    monkeypatch.setattr(media, "MAX_PIXELS", 1000)
    monkeypatch.setattr(media, "DECODER_MAX_PIXELS", 2000)
    calls = []
    with pytest.raises(media.VideoError, match=r"^frames of 64x48 pixels, over the limit of 1,000 pixels a frame"):
        media.decode(clip, 1000.0, _counting_faces(calls), max_seconds=16.0)
    assert calls == []


def _vol(*fields) -> bytes:
    """A VOL start code and the (value, bits) fields after it, padded to whole bytes."""
    value, bits = 0, 0
    for field, width in fields:
        value, bits = value << width | field, bits + width
    return b"\x00\x00\x01\x20" + (value << (-bits % 8)).to_bytes((bits + 7) // 8, "big")


def test_the_vol_header_is_read_past_each_optional_field():
    """ISO/IEC 14496-2 6.2.3, each optional field present: layer identifier, extended pixel aspect, VBV parameters,
    a fixed VOP rate (an increment of 15 bits for a resolution of 30000). Not rectangular, or cut short: None."""
    from mmsa_atsuko.data.extract.mpeg4_vol import vol_frame_size

    def header(shape=0, cut=0):
        fields = [(0, 1), (1, 8), (1, 1), (2, 4), (1, 3), (0xF, 4), (10, 8), (11, 8), (1, 1), (1, 2), (1, 1),
                  (1, 1), ((1 << 79) - 1, 79), (shape, 2), (1, 1), (30000, 16), (1, 1), (1, 1), (1001, 15),
                  (1, 1), (4000, 13), (1, 1), (3000, 13), (1, 1)]
        return b"\x00\x00\x01\xb0\x01" + _vol(*fields[:len(fields) - cut])
    assert vol_frame_size(header()) == (4000, 3000)
    assert vol_frame_size(header(shape=2)) is None             # binary only: no size
    assert vol_frame_size(header(cut=2)) is None               # the height is missing
    plain = _vol((0, 1), (1, 8), (0, 1), (1, 4), (0, 1), (0, 2), (1, 1), (25, 16), (1, 1), (0, 1), (1, 1),
                 (176, 13), (1, 1), (144, 13), (1, 1))
    assert vol_frame_size(plain) == (176, 144)
    # In a packet the decoder looks for the VOL before the first VOP start code only: after it, a picture's bytes.
    vop = b"\x00\x00\x01\xb6\x10\x60"
    assert vol_frame_size(plain + vop) == (176, 144) and vol_frame_size(vop + plain) is None
    assert vol_frame_size(None) is None and vol_frame_size(b"\x00\x00\x01\xb0\x01") is None


# Run in a fresh process. Peak RSS is reset to the RSS of the moment before each step (Linux's
# clear_refs), so that memory the imports freed cannot hide what the step touches.
PROBE_MEMORY = """
import re, sys
import av, numpy as np
from mmsa_atsuko.data.extract import media

def status(key):
    with open("/proc/self/status") as f:
        return int(re.search(key + r":\\s+(\\d+)", f.read()).group(1)) // 1024       # MB

def reset():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return status("VmRSS")

start = reset()
try:
    media.decode(sys.argv[1], 10.0, lambda gray: np.zeros(media.VISION_DIM, np.float32))
except media.VideoError as e:
    print(e)
decode_mb = status("VmHWM") - start
start = reset()
with av.open(sys.argv[1], options={"max_pixels": str(media.DECODER_MAX_PIXELS)}):   # decode's open before
    pass
print(decode_mb, status("VmHWM") - start)
"""


def test_an_flv_declaring_a_giant_frame_is_skipped_without_allocating_it(tmp_path):
    """FLV makes its streams while probing, so the probe's decoder never had our max_pixels: a 16 KB
    file declaring 16000x16000 took 200 MB in av.open alone. A frame of 256 MP is 384 MB in yuv420p."""
    require_extract()
    import subprocess
    import sys
    from media_fixtures import write_flv_declaring
    giant = tmp_path / "giant.flv"
    write_flv_declaring(giant, 16000, 16000)
    done = subprocess.run([sys.executable, "-c", PROBE_MEMORY, str(giant)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], check=True)
    reason, sizes = done.stdout.strip().splitlines()
    decode_mb, ffmpeg_probe_mb = map(int, sizes.split())
    assert ffmpeg_probe_mb > 150, "the file no longer makes FFmpeg's probe allocate its frame: test nothing"
    assert decode_mb < 50, (decode_mb, ffmpeg_probe_mb)
    assert reason.startswith("cannot decode: ") and reason.endswith(
        "its frame size was unknown after probing: it may be far over the limit of 16,777,216 pixels a frame "
        "(4K fits)"), reason
    # The rewrite declaring the real size decodes as the FLV it was made from: the header is all it changed.
    from media_fixtures import write_video

    from mmsa_atsuko.data.extract import media
    write_flv_declaring(tmp_path / "rewritten.flv", 160, 120)
    write_video(tmp_path / "plain.flv", codec="flv")
    rewritten, plain = (media.decode(tmp_path / name, 10.0, _counting_faces([])) for name in ("rewritten.flv", "plain.flv"))
    assert all(np.array_equal(a, b) for a, b in zip(rewritten, plain)) and len(plain[1]) > 10

def test_a_huge_first_timestamp_does_not_hang_decode(tmp_path):
    """1.5 KB of Matroska whose timestamps start at 1e9 s: stepping the 1/fps sampling grid up to
    it from 0 took 1e10 steps."""
    require_extract()
    import signal

    import av

    from mmsa_atsuko.data.extract import media
    path = tmp_path / "late.mkv"
    shift = 10 ** 9
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=25)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        audio = container.add_stream("aac", rate=16000)
        audio.layout = "mono"

        def mux(packets):
            for packet in packets:
                if packet.pts is not None:
                    packet.pts += int(shift / packet.time_base)
                    packet.dts += int(shift / packet.time_base)
                container.mux(packet)
        for i in range(25):                                   # 1 s at 25 fps
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 40, np.uint8), format="rgb24")
            frame.pts = i
            mux(video.encode(frame))
        mux(video.encode())
        sound = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.float32), format="flt", layout="mono")
        sound.sample_rate, sound.pts = 16000, 0
        mux(audio.encode(sound))
        mux(audio.encode())
    set_mkv_duration(path, 1064.0)                           # what the header of a 1 s clip says

    def hung(*_):
        raise TimeoutError("decode ran 60 s on a 1 s clip")
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        _, rows, seconds = media.decode(path, 10.0, _counting_faces([]))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert len(rows) == 10 and seconds < 1.1                # frames at 0, 0.12, 0.2, ..., 0.92 s after the first


def test_a_long_clip_is_skipped_and_reported_and_a_cached_one_too(corpus, capsys, tmp_path):
    from media_fixtures import write_video
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "long.mp4", seconds=1.2)
    write_video(videos / "short.mp4", seconds=0.6, tone=330.0)
    transcripts = tmp_path / "t.csv"
    pd.DataFrame({"id": ["long", "short"], "text": ["w001", "w002"], "label": [1.0, -1.0],
                  "split": ["test", "test"]}).to_csv(transcripts, index=False)
    out = tmp_path / "out" / "features.pkl"
    code = main(["extract", "--videos", str(videos), "--transcripts", str(transcripts), "--out", str(out),
                 "--bert", str(corpus["bert"]), "--text-len", "12", "--audio-len", "40", "--vision-len", "15",
                 "--jobs", "2", "--max-clip-seconds", "1"])
    printed = capsys.readouterr().out
    reason = ("longer than the 1 s limit of a clip (its header declares 1.2 s): cut it into utterances, "
              "or raise --max-clip-seconds")
    assert code == 0 and f"skipped long: {reason}" in printed
    assert skipped_report_path(out).read_text().splitlines() == [f"long: {reason}"]
    assert _raw(out)["test"]["id"] == ["short"]
    # A limit over its 1.216 s of decoded audio takes it; short comes from the cache.
    result = extract(videos, transcripts, out, bert=corpus["bert"], config=SMALL, max_clip_seconds=1.25,
                     echo=lambda _: None)
    assert (result.extracted, result.cached, result.skipped) == (1, 1, [])
    assert sorted(_raw(out)["test"]["id"]) == ["long", "short"]
    # Back to 1 s: long is in the cache now, and is skipped as a fresh extraction would skip it.
    result = extract(videos, transcripts, out, bert=corpus["bert"], config=SMALL, max_clip_seconds=1.0,
                     echo=lambda _: None)
    assert (result.extracted, result.cached) == (0, 1)
    assert result.skipped == ["long: longer than the 1 s limit of a clip (1.2 s): cut it into utterances, "
                              "or raise --max-clip-seconds"]
    assert _raw(out)["test"]["id"] == ["short"]


def test_cli_fps_must_be_a_positive_finite_number(tmp_path, capsys):
    # nan passed the old `fps <= 0` check, and then every clip was skipped as "cannot decode".
    for bad in ("0", "-1", "nan", "inf"):
        code = main(["extract", "--videos", str(tmp_path), "--transcripts", str(tmp_path / "t.csv"),
                     "--out", str(tmp_path / "x.pkl"), "--fps", bad])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1, (bad, err)
        assert "--fps must be a positive number of frames per second, got" in err, (bad, err)
    assert not (tmp_path / "x.pkl").exists()


def test_cli_a_seed_numpy_cannot_take_is_one_line_before_any_work(tmp_path, capsys):
    """--seed -1 was numpy's traceback at the --split shuffle, once every clip had been extracted."""
    for bad in ("-1", str(2 ** 32)):
        code = main(["extract", "--videos", str(tmp_path), "--transcripts", str(tmp_path / "t.csv"),
                     "--out", str(tmp_path / "x.pkl"), "--seed", bad])
        err = capsys.readouterr().err
        assert (code, err) == (2, f"error: --seed: seed {bad} is out of range; a seed is 0 to 2**32 - 1 "
                                  f"(numpy's limit)\n"), (bad, err)
    assert not (tmp_path / "x.pkl").exists()


def test_cli_max_clip_seconds_must_be_a_positive_finite_number(tmp_path, capsys):
    for bad in ("0", "-5", "nan", "inf", "1e999"):
        code = main(["extract", "--videos", str(tmp_path), "--transcripts", str(tmp_path / "t.csv"),
                     "--out", str(tmp_path / "x.pkl"), "--max-clip-seconds", bad])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1, (bad, err)
        assert "--max-clip-seconds must be a positive number of seconds, got" in err, (bad, err)
    with pytest.raises(SystemExit) as exit_:                 # argparse's own error, through the one-line parser
        main(["extract", "--videos", str(tmp_path), "--transcripts", str(tmp_path / "t.csv"),
              "--out", str(tmp_path / "x.pkl"), "--max-clip-seconds", "ten"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.strip() == ("run.py extract: error: argument --max-clip-seconds: invalid "
                                                     "float value: 'ten' (see --help)")
    assert not (tmp_path / "x.pkl").exists()


def extract_cli(corpus, out, transcripts=None) -> int:
    """`run.py extract` of the corpus into `out`, at the tests' small lengths."""
    return main(["extract", "--videos", str(corpus["videos"]), "--transcripts", str(transcripts or corpus["transcripts"]),
                 "--out", str(out), "--bert", str(corpus["bert"]), "--text-len", "12", "--audio-len", "40",
                 "--vision-len", "15"])


def test_extract_refuses_a_planted_link_beside_its_output_before_any_work(corpus, capsys, tmp_path):
    """The skipped list was replaced, not followed; it is refused as predict --videos refuses it, before minutes
    of extraction. (A link at `<out>.cache`, which was followed, is ignored now: test_extract_cache.py.)"""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "victim.txt").write_text("precious\n")
    out = tmp_path / "out" / "features.pkl"
    out.parent.mkdir()
    link = skipped_report_path(out)
    link.symlink_to(victim / "victim.txt")
    code = extract_cli(corpus, out)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert f"{link} is a symbolic link" in err
    assert sorted(p.name for p in victim.iterdir()) == ["victim.txt"]
    assert (victim / "victim.txt").read_text() == "precious\n" and not out.exists() and link.is_symlink()


def test_extract_refuses_a_folder_as_out_before_any_work(corpus, capsys, tmp_path):
    """--out naming a folder extracted every clip, then ended in a traceback at the final rename."""
    out = tmp_path / "features"
    out.mkdir()
    code = extract_cli(corpus, out)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert f"--out {out} is a folder; give the feature file to write, e.g. {out / 'features.pkl'}" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features"] and not any(out.iterdir())


def test_extract_refuses_an_out_under_a_file_before_any_work(corpus, capsys, tmp_path):
    """--out under a path that is a file extracted nothing and ended in NotADirectoryError at the
    cache's mkdir; it is one line now, the one every results folder gives (`atomic.check_folder`)."""
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine\n")
    out = blocker / "run" / "features.pkl"
    code = extract_cli(corpus, out)
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == (f"error: output folder {out.parent}: {blocker} is a file, not a folder; "
                                         f"choose another --out"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"] and blocker.read_text() == "mine\n"


@pytest.mark.parametrize("case", ["link", "pipe", "proc"])
def test_extract_refuses_an_out_that_is_no_regular_file_and_says_a_failed_write_in_one_line(corpus, capsys,
                                                                                           tmp_path, case):
    """--out at a link, a named pipe or a device node was replaced by the pickle after every clip was extracted
    (as root, --out /dev/full would replace the machine's /dev/full), and --out /proc/version was a
    FileNotFoundError traceback at the cache's mkdir; now one line, and nothing written."""
    import os
    out = tmp_path / "features.pkl"
    if case == "link":
        (tmp_path / "victim.txt").write_text("precious\n")
        out.symlink_to(tmp_path / "victim.txt")
        says = f"error: --out {out} is a symbolic link; give the name of a file to write, or of a new one"
    elif case == "pipe":
        os.mkfifo(out)
        says = f"error: --out {out} is no regular file; give the name of a file to write, or of a new one"
    else:
        if not Path("/proc/version").is_file():
            pytest.skip("no /proc here")
        out = Path("/proc/version")
        says = "error: --out /proc/version could not be written (No such file or directory); choose another --out"
    before = sorted(p.name for p in tmp_path.iterdir())
    code = extract_cli(corpus, out)
    assert code != 0 and capsys.readouterr().err.strip() == says
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert case != "link" or (tmp_path / "victim.txt").read_text() == "precious\n"


@pytest.mark.parametrize("case", ["pipe", "huge"])
def test_transcripts_that_are_no_regular_file_or_huge_are_one_line(tmp_path, case):
    """A named pipe was called 'not found', and a 3 GB CSV was read whole by pandas: 3.4 GB and a MemoryError
    traceback under ulimit -v 4 GB. Now one line each, before reading (a sparse file here, so it is quick)."""
    import os
    from mmsa_atsuko.data.extract.transcripts import MAX_BYTES
    path = tmp_path / "transcripts.csv"
    if case == "pipe":
        os.mkfifo(path)
        says = f"transcripts {path} is no regular file: give a CSV with id, text, label and split columns"
    else:
        with open(path, "wb") as f:
            f.truncate(MAX_BYTES + 1)
        says = f"transcripts {path} is over 256 MiB, far more than a transcript CSV holds; give the CSV meant"
    with pytest.raises(DataError) as caught:
        read_transcripts(path)
    assert str(caught.value) == says


def test_a_file_with_an_empty_split_is_not_offered_for_training(corpus, capsys):
    """Two labelled clips at the default ratios leave valid empty: extract warned that the file cannot
    be trained on, then printed the command to train on it anyway."""
    transcripts = corpus["root"] / "two-clips.csv"
    transcripts.write_text("id,text,label\nclip00,w001,1.0\nclip01,w002,-1.0\n")
    out = corpus["root"] / "two" / "features.pkl"
    code = extract_cli(corpus, out, transcripts)
    printed = capsys.readouterr().out
    assert code == 0 and out.is_file()
    assert "warning: no sample in valid: the file can be predicted on, not trained on" in printed
    assert "train on it with" not in printed and "note:" not in printed


def test_a_file_as_videos_or_a_folder_as_transcripts_is_named_as_such(corpus):
    """Both were reported as 'not found', though the path was there."""
    with pytest.raises(DataError, match=r"video folder .*clip00.mp4 is a file, not a folder: give the folder"):
        extract(corpus["videos"] / "clip00.mp4", corpus["transcripts"], corpus["root"] / "v.pkl", bert=corpus["bert"])
    with pytest.raises(DataError, match=r"transcripts .*videos is a folder: give a CSV"):
        read_transcripts(corpus["videos"])
    assert not (corpus["root"] / "v.pkl").exists()


def test_an_empty_video_is_skipped_as_empty(tmp_path):
    """A 0-byte clip was skipped as 'cannot decode: InvalidDataError: [Errno 1094995529] Invalid data ...'."""
    require_extract()
    from mmsa_atsuko.data.extract import media
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(media.VideoError, match=r"^empty file \(0 bytes\)$"):
        media.decode(empty, 10.0, None)


def test_videos_skipped_for_one_reason_are_printed_as_one_line_and_listed_each(tmp_path):
    """predict --videos with a transcript CSV for 2 of 14 clips printed twelve 'no row in the transcripts'
    lines, which buried the one clip that failed (a user's trial)."""
    from mmsa_atsuko.data.extract.report import write_report
    skipped = {f"v{i:02d}": "no row in the transcripts" for i in range(12)}
    skipped.update({"bad": "cannot decode: OSError: x", "w1": "no audio stream", "w2": "no audio stream"})
    printed = []
    path = write_report(tmp_path / "features.pkl", skipped, printed.append)
    assert printed == ["skipped bad: cannot decode: OSError: x",
                       "skipped 12 videos (v00, v01, v02, ...): no row in the transcripts",
                       "skipped w1: no audio stream", "skipped w2: no audio stream",
                       f"15 skipped; the list is in {path}"]
    assert path.read_text().splitlines() == [f"{i}: {r}" for i, r in sorted(skipped.items())]


def test_an_id_a_terminal_would_act_on_is_one_line_of_the_skipped_list(tmp_path):
    """A transcript row's id is read from a CSV that may come from anywhere: an id holding a newline and an
    escape sequence was printed as two lines, the second one coloured red, and took two lines of the list."""
    from mmsa_atsuko.data.extract.report import write_report
    hostile = "a\nb\x1b[31mred"
    printed = []
    path = write_report(tmp_path / "features.pkl", {hostile: "no video file"}, printed.append, {hostile})
    shown = "a\\nb\\x1b[31mred"           # as Python writes those characters escaped
    assert printed == [f"skipped {shown}: no video file", f"1 skipped; the list is in {path}"]
    assert path.read_text().splitlines() == [f"{shown}: no video file"]


def test_an_id_with_a_space_at_either_end_is_shown_quoted(corpus, tmp_path):
    """A CSV's 'clip00 ' was printed as "skipped clip00 : no video file in ...", beside "clip00.mp4 has no row":
    the space that kept them apart was invisible. Quoted as Python quotes a string, it shows."""
    transcripts = tmp_path / "spaced.csv"
    transcripts.write_text("id,text\nclip00 ,w001\n clip01,w002\n")
    printed = []
    with pytest.raises(DataError, match="could be extracted"):
        extract(corpus["videos"], transcripts, tmp_path / "s.pkl", bert=corpus["bert"], config=SMALL,
                echo=printed.append)
    reason = f"no video file in {corpus['videos']} named after the id (id.mp4, id.mkv, ...)"
    assert f"skipped 'clip00 ': {reason}" in printed and f"skipped ' clip01': {reason}" in printed
    listed = (tmp_path / "s.skipped.txt").read_text().splitlines()
    assert f"'clip00 ': {reason}" in listed and f"' clip01': {reason}" in listed
    assert "clip00: no row in the transcripts" in listed          # the video, its id without a space: unquoted

def test_transcript_rows_without_a_video_are_printed_as_one_line(corpus, tmp_path):
    """Their reason named each id ('no video file named talk0.* in new'), so no two were alike and a CSV
    of a whole study against a folder of three new clips printed a line per row (a user's trial). The
    grouped line counted the rows as 'videos', which they are not: they are rows that have none."""
    transcripts = tmp_path / "ghosts.csv"
    transcripts.write_text("id,text\n" + "".join(f"ghost{i},w00{i}\n" for i in range(4)))
    printed = []
    with pytest.raises(DataError, match="could be extracted"):
        extract(corpus["videos"], transcripts, tmp_path / "g.pkl", bert=corpus["bert"], config=SMALL,
                echo=printed.append)
    clips = sorted([*CLIPS, BROKEN])          # the corpus' videos, none of which has a row here
    assert printed == [f"skipped {len(clips)} videos ({', '.join(clips[:3])}, ...): no row in the transcripts",
                       f"skipped 4 transcript rows (ghost0, ghost1, ghost2, ...): no video file in {corpus['videos']} named "
                       f"after the id (id.mp4, id.mkv, ...)",
                       f"{4 + len(clips)} skipped; the list is in {tmp_path / 'g.skipped.txt'}"]


def test_a_video_with_a_long_name_is_extracted(corpus, tmp_path, fresh_cache):
    """A clip named after its 240-character title made a cache file name of 270 bytes, past the 255 a file
    name may have, and extraction failed as '--out ... could not be written (File name too long)'."""
    import shutil
    videos, transcripts = tmp_path / "videos", tmp_path / "long.csv"
    videos.mkdir()
    ids = ["v" * 240, "\u00e9" * 120]          # 240 ASCII letters; 120 letters of two bytes each
    for video_id in ids:
        shutil.copy(corpus["videos"] / "clip00.mp4", videos / f"{video_id}.mp4")
    transcripts.write_text("id,text,label\n" + "".join(f"{i},w001,1.0\n" for i in ids), encoding="utf-8")
    out = tmp_path / "long.pkl"
    result = extract(videos, transcripts, out, bert=corpus["bert"], config=SMALL, split="train=1,valid=0,test=0",
                     echo=lambda _: None)
    assert result.skipped == [] and sorted(_raw(out)["train"]["id"]) == sorted(ids)
    names = [p.name for p in fresh_cache.iterdir()]
    assert len(names) == 2 and all(len(name.encode()) < 200 for name in names)


def test_a_video_whose_name_is_not_utf8_is_skipped_and_the_rest_extracted(corpus, tmp_path):
    """A clip from an archive named in Latin-1 (b'caf\\xe9.mp4') ended extraction in a UnicodeEncodeError
    traceback from pandas' string column, however many other clips there were."""
    import os
    import shutil
    videos, transcripts = tmp_path / "videos", tmp_path / "t.csv"
    videos.mkdir()
    shutil.copy(corpus["videos"] / "clip00.mp4", videos / "clip00.mp4")
    shutil.copy(corpus["videos"] / "clip01.mp4", os.path.join(os.fsencode(videos), b"caf\xe9.mp4"))
    transcripts.write_text("id,text,label\nclip00,w001,1.0\n", encoding="utf-8")
    out = tmp_path / "t.pkl"
    result = extract(videos, transcripts, out, bert=corpus["bert"], config=SMALL, split="train=1,valid=0,test=0",
                     echo=lambda _: None)
    reason = "caf\\xe9: its file name is not UTF-8, so no transcript row can name it: rename it"
    assert result.skipped == [reason] and _raw(out)["train"]["id"] == ["clip00"]
    assert skipped_report_path(out).read_text(encoding="utf-8").splitlines() == [reason]


def test_a_video_name_that_is_no_regular_file_is_skipped_saying_what_it_is(corpus, tmp_path):
    """A named pipe or a link to nothing named as a row's video was skipped as 'no video file in ... named after
    the id', with the file right there; it is never opened either (a named pipe blocks its reader)."""
    import os
    import shutil
    videos, transcripts = tmp_path / "videos", tmp_path / "t.csv"
    videos.mkdir()
    shutil.copy(corpus["videos"] / "clip00.mp4", videos / "clip00.mp4")
    os.mkfifo(videos / "pipe.mp4")
    (videos / "gone.mkv").symlink_to(tmp_path / "nowhere.mkv")
    transcripts.write_text("id,text,label\nclip00,w001,1.0\npipe,w002,1.0\ngone,w003,1.0\n")
    out = tmp_path / "t.pkl"
    result = extract(videos, transcripts, out, bert=corpus["bert"], config=SMALL, split="train=1,valid=0,test=0",
                     echo=lambda _: None)
    assert result.skipped == ["gone: gone.mkv is a link to nothing",
                              "pipe: pipe.mp4 is no regular file (a named pipe, a device or a folder): put the video "
                              "file itself there"]
    assert _raw(out)["train"]["id"] == ["clip00"]


def test_a_worker_that_dies_is_one_line_and_what_it_finished_is_kept(corpus, tmp_path, monkeypatch, fresh_cache):
    """A worker killed while it decoded (the kernel's OOM killer, a decoder crashing on a hostile file) ended
    `extract --jobs 2` in a BrokenProcessPool traceback."""
    from mmsa_atsuko.data.extract import clip_workers
    real = clip_workers.extract_one
    monkeypatch.setattr(clip_workers, "extract_one", killed_on_clip03)      # it kills that clip's worker alone
    out = tmp_path / "f.pkl"
    with pytest.raises(DataError, match=r"^a worker process died while extracting videos \(killed by the system when "
                                        r"memory ran out, or crashed by a damaged video\); \d of the 9 videos to "
                                        r"extract are cached: run the same command again to go on$"):
        extract(corpus["videos"], corpus["transcripts"], out, bert=corpus["bert"], config=SMALL, jobs=2,
                echo=lambda _: None)
    assert not out.exists()
    monkeypatch.setattr(clip_workers, "extract_one", real)
    result = extract(corpus["videos"], corpus["transcripts"], out, bert=corpus["bert"], config=SMALL, jobs=2,
                     echo=lambda _: None)
    assert result.extracted + result.cached == len(CLIPS)


def test_under_one_job_a_clip_that_crashes_its_process_is_skipped_by_name_and_the_run_goes_on(corpus, tmp_path,
                                                                                               monkeypatch,
                                                                                               fresh_cache):
    """Under --jobs 1 the clips were extracted in the calling process: a decoder's segfault on one damaged
    clip ended the whole extraction (and this test's process) without naming the clip. Each clip is now
    extracted in a worker process, reused from clip to clip: clip03's crash skips clip03, a fresh worker
    takes the next clip, and the features of the rest are those of the first call."""
    from mmsa_atsuko.data.extract import clip_workers
    started = []

    class CountedWorker(clip_workers.ClipWorker):
        def __init__(self, *args):
            super().__init__(*args)
            started.append(self.process.pid)

    monkeypatch.setattr(clip_workers, "extract_one", segv_on_clip03)        # clip03 (NO_FACE) crashes its worker
    monkeypatch.setattr(clip_workers, "ClipWorker", CountedWorker)
    out = tmp_path / "f.pkl"
    result = extract(corpus["videos"], corpus["transcripts"], out, bert=corpus["bert"], config=SMALL, jobs=1,
                     echo=lambda _: None)
    assert f"{NO_FACE}: its extraction process was killed by SIGSEGV (a decoder crashing on a damaged file, or the " \
           f"system killing it when memory ran out): check that it plays, or re-encode it, e.g. ffmpeg -i IN -c:v " \
           f"libx264 -c:a aac OUT" in result.skipped
    assert result.extracted == len(CLIPS) - 1 and len(started) == 2 == len(set(started))   # one worker, then one more
    before, after = _raw(corpus["out"]), _raw(out)
    keep = [i for i, clip in enumerate(before["train"]["id"]) if clip != NO_FACE]
    assert after["train"]["id"] == [before["train"]["id"][i] for i in keep]
    assert np.array_equal(after["train"]["audio"], before["train"]["audio"][keep])
    assert np.array_equal(after["valid"]["vision"], before["valid"]["vision"])


def test_under_one_job_an_error_of_the_worker_is_raised_in_the_caller_as_in_process(tmp_path, monkeypatch):
    """A cache file that cannot be written (a full disk) raised OSError in the calling process, which extract turns
    into one line; in the worker it would end the worker, and each clip would be skipped as a crash."""
    from mmsa_atsuko.data.extract import clip_workers, videos
    monkeypatch.setattr(clip_workers, "extract_one", no_space)
    todo = [("v0", tmp_path / "v0.mp4", tmp_path / "v0.npz")]
    with pytest.raises(OSError) as error:
        videos.run_videos(todo, "opensmile", 10.0, 1, 600.0, echo=lambda _: None)
    assert (error.value.errno, error.value.filename) == (28, str(tmp_path / "v0.npz"))


def test_a_worker_that_dies_counts_the_videos_cached_not_those_skipped(corpus, tmp_path, monkeypatch, fresh_cache):
    """The line counted the results read before the pool broke: the corrupt video (skipped, not cached) was
    counted, and a video cached but whose result was not yet read was not. clip03's worker dies only once
    the other 7 clips' cache files exist and the corrupt one has been tried, so 7 is the count."""
    from mmsa_atsuko.data.extract import clip_workers
    monkeypatch.setattr(clip_workers, "extract_one", killed_on_clip03_last)
    with pytest.raises(DataError, match=rf"; {len(CLIPS) - 1} of the {len(CLIPS) + 1} videos to extract are cached: "):
        extract(corpus["videos"], corpus["transcripts"], tmp_path / "f.pkl", bert=corpus["bert"], config=SMALL,
                jobs=2, echo=lambda _: None)


def test_a_worker_that_dies_while_videos_are_queued_is_one_line(tmp_path, monkeypatch):
    """The loop handing the videos to the pool was outside the handling: a worker that died before the last
    was queued (thousands of clips) escaped as a BrokenProcessPool traceback. Here the pool waits for the first
    video's worker to die before it takes the second, so the break comes while queueing."""
    from concurrent.futures import ProcessPoolExecutor
    from mmsa_atsuko.data.extract import clip_workers, videos

    class FirstVideoFirst(ProcessPoolExecutor):
        def submit(self, *args, **kwargs):
            future = super().submit(*args, **kwargs)
            if not hasattr(self, "first"):
                self.first = future
                future.exception(timeout=60)      # BrokenProcessPool, once its worker is gone
            return future

    monkeypatch.setattr(clip_workers, "worker_pool",
                        lambda jobs, _: FirstVideoFirst(jobs, mp_context=clip_workers.start_context()))
    monkeypatch.setattr(clip_workers, "extract_one", kill_self)
    todo = [(f"v{i}", tmp_path / f"v{i}.mp4", tmp_path / f"v{i}.npz") for i in range(3)]
    with pytest.raises(DataError, match=r"^a worker process died while extracting videos .*; 0 of the 3 videos to "
                                        r"extract are cached: run the same command again to go on$"):
        videos.run_videos(todo, "librosa", 1.0, 2, 10.0, echo=lambda _: None)


@pytest.mark.parametrize("jobs", [1, 2])
def test_every_worker_ignores_ctrl_c_mid_clip(tmp_path, monkeypatch, jobs):
    """Ctrl-C reaches the whole process group: a --jobs 2 worker took it as a KeyboardInterrupt (the --jobs 1 one
    ignored it), which inside openSMILE's callback dropped an audio frame of the clip it extracted."""
    from mmsa_atsuko.data.extract import clip_workers, videos
    monkeypatch.setattr(clip_workers, "extract_one", sigint_to_self)
    todo = [(f"v{i}", tmp_path / f"v{i}.mp4", tmp_path / f"v{i}.npz") for i in range(3)]
    assert videos.run_videos(todo, "librosa", 1.0, jobs, 10.0, echo=lambda _: None) == {}


def test_a_clip_whose_library_swallowed_an_error_is_not_cached(tmp_path, monkeypatch, capfd):
    """openSMILE calls back into Python through ctypes, which prints an error raised there ("Exception ignored on
    calling ctypes callback function") and goes on: the clip came back one audio frame short, and was cached as
    if whole. Its extraction did not end normally: it is not cached, and is skipped in one line."""
    import ctypes

    from mmsa_atsuko.data.extract import clip_workers, frame_features
    callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)

    def interrupted(_):
        raise KeyboardInterrupt

    def features_of_a_library_that_swallows(*_, **__):
        callback_type(interrupted)(0)           # through C, as openSMILE's frame callback
        return {"audio": np.zeros((249, 25), np.float32), "vision": np.zeros((15, 74), np.float32),
                "seconds": np.float64(10.0)}

    monkeypatch.setattr(frame_features, "video_features", features_of_a_library_that_swallows)
    video, cache = tmp_path / "v.mp4", tmp_path / "v.npz"
    video.write_bytes(b"a video")
    reason = clip_workers.extract_one(str(video), str(cache), "opensmile", 10.0, 600.0)
    assert reason == ("feature extraction failed: a feature library ignored an error raised in its callback "
                      "(KeyboardInterrupt), so its features may be incomplete: run the same command again")
    assert list(tmp_path.iterdir()) == [video]          # no cache file, nor a temporary one
    assert capfd.readouterr().err == ""                 # no "Exception ignored" traceback


CTRL_C_DRIVER = """
import sys
import clip_fakes
from mmsa_atsuko.cli import main
from mmsa_atsuko.data.extract import clip_workers
clip_workers.extract_one = clip_fakes.started_then_wait_for_go
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("jobs", [1, 2])
def test_ctrl_c_stops_extract_keeping_only_whole_clips_and_the_rerun_gives_the_clean_file(corpus, tmp_path,
                                                                                           monkeypatch, jobs):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) on `extract --jobs 2` went on extracting every
    clip submitted to the pool, silently, before it stopped. The clips being extracted may end (each is cached
    whole); no other may start, but those a pool's workers had taken already (at most one queued past each
    worker). The rerun then takes the cached clips, and the file is that of an extraction never interrupted."""
    import os
    import signal
    import subprocess
    import sys
    markers, user_cache, out = tmp_path / "markers", tmp_path / "user-cache", tmp_path / "out" / "f.pkl"
    markers.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "MMSA_ATSUKO_CACHE": str(user_cache),
           "CLIP_MARKERS": str(markers)}
    command = [sys.executable, "-c", CTRL_C_DRIVER, "extract", "--videos", str(corpus["videos"]), "--transcripts",
               str(corpus["transcripts"]), "--out", str(out), "--bert", str(corpus["bert"]), "--jobs", str(jobs),
               "--text-len", "12", "--audio-len", "40", "--vision-len", "15"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                             start_new_session=True)           # its own process group, the test's not in it
    try:
        for _ in range(6000):          # each worker has taken a clip (60 s at most)
            if len(list(markers.glob("started-*"))) >= jobs or child.poll() is not None:
                break
            time.sleep(0.01)
        os.killpg(child.pid, signal.SIGINT)
        (markers / "go").touch()       # the clips being extracted go on, and no other would wait
        _, stderr = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
    lines = stderr.splitlines()
    cached = sorted((user_cache / "extract_features").glob("*.npz"))
    assert child.returncode == 130 and lines == [
        f"interrupted: {len(cached)} of the {len(CLIPS) + 1} videos are in extract's cache; the same command again "
        f"goes on from them"], stderr
    assert not out.exists()
    started = len(list(markers.glob("started-*")))
    assert jobs <= started <= (1 if jobs == 1 else 2 * jobs + 1) < len(CLIPS)
    assert len(cached) <= started
    for path in cached:        # each whole: as the corpus's clean extraction cached it
        with np.load(path) as got, np.load(cache_folder() / path.name) as clean:
            assert all(np.array_equal(got[key], clean[key]) for key in clean.files)
    monkeypatch.setenv("MMSA_ATSUKO_CACHE", str(user_cache))
    result = extract(corpus["videos"], corpus["transcripts"], out, bert=corpus["bert"], config=SMALL, jobs=jobs,
                     echo=lambda _: None)
    assert result.cached == len(cached)
    before, after = _raw(corpus["out"]), _raw(out)
    for split in ("train", "valid", "test"):
        for key in ("id", "audio", "vision", "text_bert"):
            assert np.array_equal(np.asarray(after[split][key]), np.asarray(before[split][key]))


SLOW_PRELOAD_DRIVER = """
import sys
import clip_fakes
from mmsa_atsuko.cli import main
from mmsa_atsuko.data.extract import clip_workers
clip_workers.FORKSERVER_PRELOAD = clip_workers.FORKSERVER_PRELOAD + ["slow_preload"]
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="the fork server starts with Ctrl-C blocked")
@pytest.mark.parametrize("jobs", [1, 2])
def test_ctrl_c_while_the_workers_fork_server_starts_is_one_line(corpus, tmp_path, jobs):
    """The fork server imports the extraction libraries (a second or more) before it ignores Ctrl-C: a Ctrl-C then
    printed its KeyboardInterrupt traceback under the CLI's line. It now starts with Ctrl-C blocked, as Python's
    resource tracker does, and so do the workers it forks, until each ignores it."""
    import os
    import subprocess
    import sys
    markers = tmp_path / "markers"
    markers.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "MMSA_ATSUKO_CACHE": str(tmp_path / "user-cache"),
           "CLIP_MARKERS": str(markers)}
    command = [sys.executable, "-c", SLOW_PRELOAD_DRIVER, "extract", "--videos", str(corpus["videos"]),
               "--transcripts", str(corpus["transcripts"]), "--out", str(tmp_path / "f.pkl"), "--bert",
               str(corpus["bert"]), "--jobs", str(jobs), "--text-len", "12", "--audio-len", "40", "--vision-len", "15"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                             start_new_session=True)
    try:
        for _ in range(6000):          # the fork server is importing the libraries (60 s at most)
            if (markers / "preloading").exists() or child.poll() is not None:
                break
            time.sleep(0.01)
        os.killpg(child.pid, signal.SIGINT)
        (markers / "go").touch()
        _, stderr = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
    assert child.returncode == 130 and stderr.splitlines() == [
        f"interrupted: 0 of the {len(CLIPS) + 1} videos are in extract's cache; the same command again goes on "
        f"from them"], stderr


def test_ctrl_c_while_clips_are_extracted_counts_those_cached_and_says_the_command_goes_on(corpus, tmp_path,
                                                                                           monkeypatch, capsys,
                                                                                           fresh_cache):
    """Extract's Ctrl-C line said 'interrupted' alone, where a dead worker's line says how many clips are cached
    and that the same command goes on from them. Three clips are extracted, then Ctrl-C comes."""
    from mmsa_atsuko.data.extract import clip_features, clip_workers

    def three_then_ctrl_c(todo, backend, fps, jobs, max_seconds, echo, rows):
        for _, video, cache in todo[:3]:
            assert clip_workers.extract_one(str(video), str(cache), backend, fps, max_seconds, rows) is None
        raise KeyboardInterrupt
    monkeypatch.setattr(clip_features, "run_videos", three_then_ctrl_c)
    argv = ["extract", "--videos", str(corpus["videos"]), "--transcripts", str(corpus["transcripts"]), "--out",
            str(tmp_path / "f.pkl"), "--bert", str(corpus["bert"]), "--text-len", "12", "--audio-len", "40",
            "--vision-len", "15"]
    assert main(argv) == 130
    assert capsys.readouterr().err == (f"interrupted: 3 of the {len(CLIPS) + 1} videos are in extract's cache; the "
                                       f"same command again goes on from them\n")
    assert len(list(fresh_cache.glob("*.npz"))) == 3


@pytest.mark.parametrize("command", ["extract", "predict"])
def test_the_ctrl_c_line_of_extract_and_predict_says_what_is_kept(monkeypatch, capsys, command):
    """predict --videos extracts its clips as extract does: its Ctrl-C line is extract's, the count of clips
    cached. A Ctrl-C before or after the clips (BERT's encoding) still says that extract's cache keeps them."""
    import mmsa_atsuko.cli as cli
    from mmsa_atsuko.errors import Interrupted

    def interrupted(*_):
        raise Interrupted("4 of the 9 videos are in extract's cache; the same command again goes on from them")
    monkeypatch.setitem(cli.COMMANDS, command, interrupted)
    assert cli.main([command]) == 130
    assert capsys.readouterr().err == ("interrupted: 4 of the 9 videos are in extract's cache; the same command "
                                       "again goes on from them\n")

    def plain(*_):
        raise KeyboardInterrupt
    monkeypatch.setitem(cli.COMMANDS, "extract", plain)
    assert cli.main(["extract"]) == 130
    assert capsys.readouterr().err == ("interrupted: the videos extracted so far are in extract's cache; the same "
                                       "command again goes on from them\n")


def test_a_bert_folder_given_relative_is_recorded_as_an_absolute_path(corpus, tmp_path, monkeypatch):
    """predict --videos extracts again with the BERT the file records: recorded as typed, `--bert bert`
    was looked up in predict's working folder, and not found from any other (a user's trial)."""
    transcripts = tmp_path / "one.csv"
    transcripts.write_text("id,text,label\nclip00,w001,1.0\n")
    monkeypatch.chdir(corpus["bert"].parent)
    out = tmp_path / "one.pkl"
    extract(corpus["videos"], transcripts, out, bert=corpus["bert"].name, config=SMALL, split="train=1,valid=0,test=0",
            echo=lambda _: None)
    assert _raw(out)[EXTRACTOR_KEY]["bert"] == str(corpus["bert"].resolve())


def test_without_a_terminal_extraction_prints_a_line_each_tenth_of_the_videos(monkeypatch, capsys):
    """tqdm draws nothing where stderr is no terminal (a log, nohup): 20 clips were extracted in silence."""
    from mmsa_atsuko.data.extract import clip_workers, videos
    monkeypatch.setattr(clip_workers, "extract_one", no_audio_for_v07)
    todo = [(f"v{i:02d}", f"v{i:02d}", "cache") for i in range(23)]
    lines = []
    assert videos.run_videos(todo, "opensmile", 10.0, 1, 600.0, lines.append) == {"v07": "no audio stream"}
    assert capsys.readouterr().err == ""     # pytest's captured stderr is no terminal: no bar, and no line there
    # 23 videos: a line every 3 (the tenth, rounded up), and one at the end.
    assert [line.split(",")[0] for line in lines] == [f"extract: {n}/23 videos" for n in (3, 6, 9, 12, 15, 18, 21, 23)]
    assert all(line.endswith(" s") for line in lines)


def test_bert_encoding_reports_its_progress_a_batch_at_a_time(corpus, tmp_path):
    """After the videos' progress, extract encoded every transcript with BERT in silence: minutes with a
    real BERT on a CPU. Without a terminal it now prints a line each tenth of the texts, as for the videos."""
    from mmsa_atsuko.progress import Progress
    from mmsa_atsuko.data.extract.text import ENCODE_BATCH, encode_texts
    batches = []
    text_bert, _ = encode_texts(["w001 w002"] * 70, str(corpus["bert"]), 8, progress=batches.append)
    assert ENCODE_BATCH == 32 and batches == [32, 32, 6] and len(text_bert) == 70
    lines = []
    progress = Progress(70, lines.append, what="texts encoded by BERT", unit="text")
    for count in batches:           # a tenth is 7 texts: each batch passes at least one
        progress.update(count)
    assert [line.split(",")[0] for line in lines] == [f"extract: {n}/70 texts encoded by BERT" for n in (32, 64, 70)]
    # Through extract, every good clip from the cache: the broken one, never cached, is tried again (the
    # videos' line), then the 8 texts the CSV keeps (5/2/1) are encoded (the texts' line, after it).
    out = tmp_path / "again.pkl"
    printed = []
    result = extract(corpus["videos"], corpus["transcripts"], out, bert=corpus["bert"], config=SMALL,
                     echo=printed.append)
    assert result.extracted == 0 and sum(result.counts.values()) == 8
    assert [line.split(",")[0] for line in printed if line.startswith("extract:")] == [
        "extract: 1/1 videos", "extract: 8/8 texts encoded by BERT"], printed


def test_a_clip_without_audio_or_video_is_skipped_saying_what_to_do(tmp_path):
    """'no audio stream' said what was missing, not that every sample needs audio, nor how to give it."""
    require_extract()
    import shutil
    import subprocess
    from media_fixtures import write_video

    from mmsa_atsuko.data.extract import media
    silent, sound = tmp_path / "silent.mp4", tmp_path / "sound.m4a"
    write_video(silent, streams="video")
    write_video(sound, streams="audio")
    with pytest.raises(media.VideoError) as error:
        media.decode(silent, 10.0, _counting_faces([]))
    advice = str(error.value)
    assert advice.startswith("no audio stream: give the clip a silent track, e.g. ffmpeg -i IN "), advice
    with pytest.raises(media.VideoError, match=r"^no video stream: every sample needs frames"):
        media.decode(sound, 10.0, _counting_faces([]))
    if shutil.which("ffmpeg"):      # the advice as written makes a clip that decodes
        fixed = tmp_path / "fixed.mp4"
        command = advice.split("e.g. ")[1].replace("IN", str(silent)).replace("OUT", str(fixed)).split()
        subprocess.run(command, check=True, capture_output=True)
        assert len(media.decode(fixed, 10.0, _counting_faces([]))[1]) == 12
