"""Names and sizes a hostile file declares, as the toolkit turns them into paths and allocations (k15's findings)."""
import json
import os
import re
import shutil
import struct

import numpy as np
import pytest

from test_hostile import assert_one_line, cli
from mmsa_atsuko.config import CONFIG_DIR, DATASETS_ENV, read_yaml
from mmsa_atsuko.data.synthetic import ensure_synthetic


def tree(folder) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, ds, fs in os.walk(folder) for f in ds + fs)


@pytest.mark.parametrize("name", ["../../../../../../../../../../{victim}/escaped", "a/b", "..", ".hidden", "mine.v2",
                                  "x" * 65])
def test_a_dataset_name_that_is_no_file_name_is_one_line_before_any_folder(capsys, tmp_path, monkeypatch,
                                                                            synthetic_cache, name):
    """A `--datasets` file naming its dataset `../../../x` made the run folder `runs/.tfn-../../../x-s1111-...`: the
    run trained and wrote best.pt, model.json and the predictions outside the results folder, then a traceback."""
    monkeypatch.setenv(DATASETS_ENV, "")          # main() adds the file to it; monkeypatch restores it afterwards
    victim = tmp_path / "victim"
    victim.mkdir()
    name = name.format(victim=str(victim).lstrip("/"))
    mosi = dict(read_yaml(CONFIG_DIR / "datasets.yaml")["datasets"]["mosi"])
    block = {k: mosi[k] for k in ("format", "task", "metrics", "headline", "language", "label_range", "config")}
    pkl, _ = ensure_synthetic("mosi", synthetic_cache)       # a real file: the old code trained on it
    block["files"] = {"unaligned": pkl.name}
    path = tmp_path / "mine.yaml"
    path.write_text(json.dumps({"datasets": {name: block}}))      # JSON is YAML
    out = tmp_path / "out"
    code, err = cli(capsys, "-m", "tfn", "-d", name, "--datasets", path, "--data-root", pkl.parent, "-s", "1111",
                    "--max-epochs", "1", "--out", out, "--quiet")
    assert_one_line(code, err, f"dataset file {path}: dataset name", "is not a name")
    assert not out.exists() and tree(victim) == []


def test_the_toolkits_dataset_names_pass_the_check():
    from mmsa_atsuko.config.datasets import DATASET_NAME
    names = read_yaml(CONFIG_DIR / "datasets.yaml")["datasets"]
    assert names and all(DATASET_NAME.fullmatch(name) for name in names)


# ------------------------------------------------------------------------------------------ sparse files

def sparse(path, head: bytes, size: int, tail: bytes = b"") -> None:
    """`head`, then a hole up to `size` bytes (less `tail`), then `tail`: a few KB on disk, `size` declared."""
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size - len(tail))
        f.seek(size - len(tail))
        f.write(tail)


@pytest.fixture
def holes_seen(tmp_path):
    """Skip where the filesystem keeps no holes (then a 'sparse' file is written whole, and no hostile file fits)."""
    probe = tmp_path / "probe"
    sparse(probe, b"x", 128 << 20)
    if os.stat(probe).st_blocks * 512 > 1 << 20:
        pytest.skip("this filesystem writes holes out")
    probe.unlink()


def test_a_sparse_feature_file_is_one_line_before_its_length_fields_are_read(capsys, tmp_path, holes_seen):
    """A pickle's head (PROTO 4, BINBYTES8 of 128 MiB), then a hole: 8 KB on disk. Every budget is in proportion
    to the declared size, so the one length field read 128 MiB of zeros (8 GB took 77 s and 8.7 GB of memory,
    100 GB exhausts the machine), and only then was the file found to hold no splits."""
    size = 128 << 20
    path = tmp_path / "features.pkl"
    sparse(path, b"\x80\x04\x8e" + struct.pack("<Q", size - 12), size, b".")
    code, err = cli(capsys, "-m", "tfn", "-d", "sims", "--feature-path", path, "-s", "1111", "--out", tmp_path / "o")
    assert_one_line(code, err, f"{path} is a sparse file", f"of its {size:,} bytes are holes of 64 MiB or more")
    assert not (tmp_path / "o").exists()


def test_a_sparse_best_pt_is_one_line_before_it_is_read_whole(capsys, tmp_path, holes_seen, synthetic_cache):
    """best.pt is read whole into memory before its zip is checked: a 20 GB hole took 20 GB (4 GB: 4.5 GB RSS)."""
    from mmsa_atsuko.data.synthetic import ensure_synthetic
    pkl, _ = ensure_synthetic("sims", synthetic_cache)
    out = tmp_path / "o"
    assert cli(capsys, "-m", "tfn", "-d", "sims", "--feature-path", pkl, "-s", "1111", "--max-epochs", "1",
               "--preset", "small", "--out", out, "--quiet")[0] == 0
    (run,) = (out / "runs").iterdir()
    best = run / "best.pt"
    head = best.read_bytes()
    sparse(best, head, 256 << 20)
    code, err = cli(capsys, "predict", "--checkpoint", run, "--features", pkl, "--out", tmp_path / "p")
    assert_one_line(code, err, f"cannot read {best} (a sparse file")
    assert not (tmp_path / "p").exists()


def test_a_sparse_safetensors_is_one_line(tmp_path, holes_seen, synthetic_cache):
    """A header declaring one tensor that covers a hole of 256 MiB: safetensors checks the offsets against the
    file's size, which the hole fakes, and copied the zeros into memory (30 GB: the machine's)."""
    from mmsa_atsuko.data.synthetic import ensure_synthetic
    from mmsa_atsuko.errors import DataError
    from mmsa_atsuko.models.common.bert_weights import load_bert
    _, bert = ensure_synthetic("sims", synthetic_cache)
    folder = tmp_path / "bert"
    folder.mkdir()
    shutil.copy(bert / "config.json", folder)
    values = 64 << 20
    header = json.dumps({"embeddings.word_embeddings.weight": {"dtype": "F32", "shape": [values],
                                                               "data_offsets": [0, 4 * values]}}).encode()
    header += b" " * (-len(header) % 8)
    sparse(folder / "model.safetensors", struct.pack("<Q", len(header)) + header, 8 + len(header) + 4 * values)
    with pytest.raises(DataError, match=r"^cannot read .*model\.safetensors \(a sparse file: at least "):
        load_bert(folder)


def test_holes_below_half_a_file_are_read(tmp_path, holes_seen):
    """A filesystem stores runs of zeros as holes (ZFS compression, `cp --sparse=always`): a feature file's
    padding may come back sparse, and is read as the zeros it is."""
    from mmsa_atsuko.atomic import HOLE_FLOOR, sparse_problem
    path = tmp_path / "padded"
    with open(path, "wb") as f:
        f.write(os.urandom(1 << 20) * (HOLE_FLOOR // (1 << 20) + 1))     # data, then a hole of HOLE_FLOOR
        f.truncate(f.tell() + HOLE_FLOOR)
    with open(path, "rb") as f:
        head = f.read(1)             # a buffered read: the file's own position is past what it read ahead
        f.seek(0)
        assert sparse_problem(f.fileno(), os.fstat(f.fileno()).st_size) is None
        assert f.read(1 << 20) == head + open(path, "rb").read(1 << 20)[1:]     # the reader reads on as it was
    with open(path, "ab") as f:
        f.truncate(os.path.getsize(path) + (2 << 20))       # now the holes are just over half
    with open(path, "rb") as f:
        assert "a sparse file" in sparse_problem(f.fileno(), os.fstat(f.fileno()).st_size)


def test_a_padded_file_copied_sparse_is_read_however_much_of_it_is_holes(tmp_path, holes_seen):
    """`cp --sparse=always` of a feature file whose samples are mostly zero padding: 80 MiB of which each 64 KiB
    holds 4 KiB of features and 60 KiB of padding, kept as 1,280 holes, 94% of the file. A review found such a
    (179 MB) pickle refused as "never written"; holes of one sample's padding each are not what a truncate makes."""
    from mmsa_atsuko.atomic import sparse_problem
    path = tmp_path / "padded-copy"
    with open(path, "wb") as f:
        for block in range(80 * 16):
            f.seek(block * (64 << 10))
            f.write(os.urandom(4 << 10))
        f.truncate(80 << 20)
    with open(path, "rb") as f:
        assert sparse_problem(f.fileno(), os.fstat(f.fileno()).st_size) is None


def test_a_sparse_file_is_never_hashed(tmp_path, holes_seen, synthetic_cache):
    """A stamped MIntRec folder's five files are hashed before they are read (to see whether the stamp holds): a
    1 TB hole at video_feats.pkl read a terabyte of zeros through sha256 (about 12 minutes) before any check."""
    from mmsa_atsuko.cache import sha256_of
    from mmsa_atsuko.data.synthetic import ensure_synthetic
    from mmsa_atsuko.data import load_dataset
    from mmsa_atsuko.errors import DataError
    folder, _ = ensure_synthetic("mintrec", synthetic_cache)
    copy = tmp_path / "MIntRec"
    shutil.copytree(folder, copy)
    feats = copy / "video_data" / "video_feats.pkl"
    sparse(feats, feats.read_bytes()[:4096], 256 << 20)
    with pytest.raises(DataError, match=r" is a sparse file: at least "):
        sha256_of(feats)
    with pytest.raises(DataError, match=rf"^{feats} is a sparse file: at least "):
        load_dataset("mintrec", feature_path=copy, pretrained=str(copy / "bert-synthetic-en"))


def test_predicts_features_and_tunes_space_say_a_pipe_or_a_device_is_one(capsys, tmp_path):
    """A named pipe or a link to /dev/zero given as `predict --features` was "not found", as `tune --space` "does not
    exist", though each is there (as --datasets said before it was fixed)."""
    pipe, zero = tmp_path / "fifo.pkl", tmp_path / "zero.pkl"
    os.mkfifo(pipe)
    zero.symlink_to("/dev/zero")
    from mmsa_atsuko.data.mmsa_format import load_for_prediction
    from mmsa_atsuko.errors import DataError
    for path, what in ((pipe, "a pipe"), (zero, "a device")):
        with pytest.raises(DataError, match=rf"^feature file {path} is {what}, not a file$"):
            load_for_prediction("sims", path)
        code, err = cli(capsys, "tune", "-m", "tfn", "-d", "sims", "--synthetic", "--trials", "1", "--space", path,
                        "--out", tmp_path / "o")
        assert_one_line(code, err, f"--space {path} is {what}, not a file: give a YAML file")
    code, err = cli(capsys, "tune", "-m", "tfn", "-d", "sims", "--synthetic", "--trials", "1", "--space",
                    tmp_path / "none.yaml", "--out", tmp_path / "o")
    assert_one_line(code, err, f"--space {tmp_path / 'none.yaml'} does not exist: give a YAML file")
    assert not (tmp_path / "o").exists()


def test_download_check_reports_a_sparse_file_as_bad_and_goes_on(tmp_path, holes_seen):
    """`download --check` hashes each file MMSA publishes a sha256 for: a sparse one is reported, and the others
    still are, rather than a terabyte of holes hashed (before) or the whole report stopped at it."""
    from mmsa_atsuko.data.download import check
    path = tmp_path / "MOSI" / "Processed" / "unaligned_50.pkl"
    path.parent.mkdir(parents=True)
    sparse(path, b"\x80\x04\x8e" + struct.pack("<Q", 128 << 20), (128 << 20) + 12, b".")
    states = {(s.dataset, s.setting): s for s in check(tmp_path)}
    assert states["mosi", "unaligned"].state == "bad"
    assert states["mosi", "unaligned"].detail.startswith("a sparse file: at least ")
    assert states["mosei", "unaligned"].state == "missing"


@pytest.mark.parametrize("record, says", [
    ({"name": 5, "version": float("nan"), "config_hash": "h"}, "name and config_hash must be strings"),
    ({"name": "x", "version": True, "config_hash": "h"}, "version a string or a whole number"),
    ({"name": "x", "version": 1, "config_hash": "h", "config": [1, 2]}, "config must be a mapping"),
    ({"name": "x", "version": 1, "config_hash": "h", "labels": "yes"}, "labels true or false"),
    ({"name": "x", "version": 1, "config_hash": "h", "config": {"fps": float("inf")}}, "no plain JSON record"),
    ({"name": "x", "version": 1, "config_hash": "h", "bert": "b" * 100_000}, "over the 65,536"),
])
def test_an_extractor_record_extract_never_writes_is_one_line(tmp_path, synthetic_cache, record, says):
    """A feature file's `meta/extractor` was taken as it was: the run trained, wrote it into model.json, and
    predict then refused the run's own card ("not a model.json this toolkit wrote; train the run again", which
    cannot help), or, for an infinity, recorded null where the file said otherwise."""
    import pickle
    from mmsa_atsuko import safe_pickle
    from mmsa_atsuko.data import load_dataset
    from mmsa_atsuko.data.mmsa_format import EXTRACTOR_KEY
    from mmsa_atsuko.data.synthetic import ensure_synthetic
    from mmsa_atsuko.errors import DataError
    pkl, _ = ensure_synthetic("sims", synthetic_cache)
    data = safe_pickle.load(pkl)
    path = tmp_path / "features.pkl"
    path.write_bytes(pickle.dumps({**data, EXTRACTOR_KEY: record}, protocol=4))
    with pytest.raises(DataError, match=rf"^{path}: key '{EXTRACTOR_KEY}': .*{says}"):
        load_dataset("sims", feature_path=path)
    good = {"name": "x", "version": 1, "config_hash": "h", "config": {"fps": 10, "text": {"tokenizer": None}},
            "bert": "/b", "labels": True, "libraries": {"av": np.float32(1)}}    # libraries: never carried
    path.write_bytes(pickle.dumps({**data, EXTRACTOR_KEY: good}, protocol=4))
    assert load_dataset("sims", feature_path=path).spec.extractor == {k: v for k, v in good.items() if k != "libraries"}


@pytest.mark.parametrize("lengths, says", [
    ({"audio_len": 10 ** 8}, "--audio-len 100,000,000 is more audio frames than a clip of at most 600 s holds "
                             "(15,001)"),
    ({"vision_len": 6002}, "--vision-len 6,002 is more vision frames than a clip of at most 600 s holds (6,001)"),
    ({"text_len": 10 ** 8}, "--text-len 100,000,000 is more tokens than the BERT"),
])
def test_padded_lengths_past_what_a_clip_holds_are_one_line_before_any_work(tmp_path, synthetic_cache, lengths,
                                                                           says):
    """The file is (clips, length, dim), made whole in memory: a length of 10^8 (which a model.json from anywhere
    gives `predict --videos`, bounded only by its best.pt's values) asked 10 GB a clip."""
    from mmsa_atsuko.data.extract import ExtractConfig, extract
    from mmsa_atsuko.data.synthetic import ensure_synthetic
    from mmsa_atsuko.errors import UsageError
    _, bert = ensure_synthetic("mosi", synthetic_cache)
    videos = tmp_path / "videos"
    videos.mkdir()
    (tmp_path / "t.csv").write_text("id,text,label\na,hello,0.5\n")
    config = ExtractConfig(**{"text_len": 12, "audio_len": 40, "vision_len": 15, **lengths})
    with pytest.raises(UsageError, match="^" + re.escape(says)):
        extract(videos, tmp_path / "t.csv", tmp_path / "out.pkl", bert=str(bert), config=config)
    assert sorted(os.listdir(tmp_path)) == ["t.csv", "videos"]


def test_predict_videos_refuses_a_cards_lengths_past_what_a_clip_holds(capsys, tmp_path):
    """The lengths come from the run's model.json: the line says whose they are."""
    from mmsa_atsuko.data.extract import ExtractConfig
    from mmsa_atsuko.errors import UsageError
    from mmsa_atsuko.predict.videos import extract_with_provenance
    settings = {**ExtractConfig(text_len=12, audio_len=10 ** 6, vision_len=15).__dict__}
    card = {"extractor": {"config": settings, "bert": None}, "seq_lens": {"text": 12, "audio": 10 ** 6, "vision": 15}}
    with pytest.raises(UsageError, match=rf"^the run's extractor settings \({tmp_path / 'model.json'}\): --audio-len "
                                         r"1,000,000 is more audio frames than a clip of at most 600 s holds"):
        extract_with_provenance(tmp_path, tmp_path / "videos", tmp_path / "t.csv", tmp_path / "out",
                                loaded=(card, None))


def test_a_config_sizing_a_model_past_this_machines_memory_is_one_line_before_any_folder(capsys, tmp_path):
    """`-c post_fusion_dim=1000000` (as a sweep file or preset from anywhere may set it) asked TFN for 4.4 TB in one
    tensor: a RuntimeError traceback after the run folder was made, left behind as a .partial folder."""
    out = tmp_path / "o"
    code, err = cli(capsys, "-m", "tfn", "-d", "sims", "--synthetic", "-s", "1111", "-c", "post_fusion_dim=1000000",
                    "--out", out)
    assert_one_line(code, err, "the tfn this config describes has ", "GiB of weights alone", "check its sizes")
    assert not out.exists()


def test_a_config_of_layers_past_any_model_stops_its_build_early(capsys, tmp_path, monkeypatch):
    """MulT's `nlevels` has no upper bound: millions of levels were built one after another, for hours."""
    from mmsa_atsuko.api import jobs
    monkeypatch.setattr(jobs, "MAX_MODULES", 1000)      # 40 levels of MulT register far more; its default, 279
    out = tmp_path / "o"
    code, err = cli(capsys, "-m", "mult", "-d", "sims", "--synthetic", "-s", "1111", "-c", "nlevels=40", "--out", out)
    assert_one_line(code, err, "the mult this config describes has more than 1,000 ")
    assert not out.exists()
    code, err = cli(capsys, "-m", "mult", "-d", "sims", "--synthetic", "--preset", "small", "-s", "1111",
                    "--max-epochs", "1", "--out", out, "--quiet")
    assert code == 0, err


def test_the_module_budget_holds_when_a_constructor_wraps_its_stop(monkeypatch):
    """A model of your own may catch what its build raises and raise its own error: the fallback after the meta
    build (a real build, without a budget) then built the hours-long model after all."""
    import torch
    from mmsa_atsuko.api import jobs
    from mmsa_atsuko.errors import UsageError
    monkeypatch.setattr(jobs, "MAX_MODULES", 3)
    with pytest.raises(UsageError, match=r"^the mine this config describes has more than 3 tensors "):
        with torch.device("meta"), jobs._module_budget("mine"):
            try:
                torch.nn.Sequential(*[torch.nn.Linear(1, 1) for _ in range(10)])
            except Exception as e:
                raise ValueError("my model's own wrapping") from e


@pytest.mark.parametrize("saved_as", ["float16 weights", "config dtype", "config torch_dtype"])
def test_a_bert_saved_in_half_precision_is_built_in_float32_with_its_values(tmp_path, synthetic_cache, saved_as):
    """transformers 5 builds a BERT in its weights' or config.json's dtype: a folder saved in float16 gave a
    half-precision encoder under a float32 model, and training stopped at its first step in a traceback (mat1 and
    mat2 must have the same dtype). Its values are exact in float32."""
    import torch
    from safetensors.torch import load_file, save_file
    from mmsa_atsuko.data.synthetic import ensure_synthetic
    from mmsa_atsuko.models.common.bert_weights import load_bert
    _, bert = ensure_synthetic("sims", synthetic_cache)
    folder = tmp_path / "bert"
    shutil.copytree(bert, folder)
    weights = load_file(str(folder / "model.safetensors"))
    if saved_as == "float16 weights":
        weights = {k: v.half() for k, v in weights.items()}
        save_file(weights, str(folder / "model.safetensors"))
    else:
        config = json.loads((folder / "config.json").read_text())
        config[saved_as.split()[-1]] = "float16"
        (folder / "config.json").write_text(json.dumps(config))
    model, _ = load_bert(folder)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    name = "embeddings.word_embeddings.weight"
    assert torch.equal(model.state_dict()[name], weights[name].float())
