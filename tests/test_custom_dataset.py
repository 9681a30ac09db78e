"""A dataset of your own is one YAML block: run, sweep and leaderboard work on it; a bad block is one line."""
import json

import pytest

from mmsa_atsuko.cli import main
from mmsa_atsuko.config import DATASETS_ENV, dataset_facts, dataset_names
from mmsa_atsuko.data.synthetic import write_synthetic

BLOCK = """\
datasets:
  MyData:
    format: mmsa
    task: regression
    metrics: mosi
    headline: MAE
    language: en
    label_range: [-3.0, 3.0]
    files: {unaligned: MyData/features.pkl}
    config: {key_eval: Loss, pretrained: bert-base-uncased}
"""


@pytest.fixture
def own_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv(DATASETS_ENV, "")          # main() adds to it; monkeypatch restores it afterwards
    declared = tmp_path / "mine.yaml"
    declared.write_text(BLOCK)
    root = tmp_path / "root"
    write_synthetic("mosi", root / "MyData" / "features.pkl", size="small")   # a file in MMSA's exact format
    return declared, root


def test_run_sweep_and_leaderboard_work_on_a_declared_dataset(own_dataset, tmp_path, capsys):
    declared, root = own_dataset
    out = tmp_path / "out"
    common = ["--datasets", str(declared), "-s", "1", "--preset", "small", "--max-epochs", "1", "--out", str(out)]
    assert main(["-m", "tfn", "-d", "mydata", "--data-root", str(root), "--quiet", *common]) == 0
    assert main(["sweep", "-m", "lmf", "-d", "MyData", "--data-root", str(root), *common]) == 0
    records = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert [(r["model"], r["dataset"], r["status"]) for r in records] == [("tfn", "mydata", "ok"),
                                                                           ("lmf", "mydata", "ok")]
    assert set(records[0]["metrics"]) >= {"Has0_acc_2", "Mult_acc_7", "MAE"}       # its metric set: mosi's
    capsys.readouterr()
    assert main(["leaderboard", "--datasets", str(declared), "-d", "mydata", "--results", str(out)]) == 0
    table = capsys.readouterr().out
    assert "mydata" in table and "| tfn" in table and "| lmf" in table
    assert "mydata" in dataset_names("mmsa") and dataset_facts("MYDATA")["headline"] == "MAE"
    assert main(["list", "--datasets", str(declared)]) == 0    # marked as `list --models DIR` marks a model of yours
    listed = capsys.readouterr().out.splitlines()
    assert f"  mydata         regression, en, settings: unaligned  (yours: {declared})" in listed
    assert "  mosi           regression, en, settings: unaligned, aligned" in listed


def test_tfn_on_labels_past_its_output_range_is_refused_before_any_folder(own_dataset, tmp_path, capsys):
    """The check runs where a run starts (api.jobs.prepare_job's call of the model's check_training_data), so a
    run, a sweep or the Python API stops in one line before anything is written, and the override trains."""
    declared, root = own_dataset
    declared.write_text(BLOCK.replace("[-3.0, 3.0]", "[-5.0, 5.0]"))
    out = tmp_path / "out"
    common = ["-m", "tfn", "-d", "mydata", "--datasets", str(declared), "--data-root", str(root), "-s", "1",
              "--preset", "small", "--max-epochs", "1", "--quiet", "--out", str(out)]
    assert main(common) == 2
    err = capsys.readouterr().err
    assert err == ("error: tfn: output_range [-3, 3] cannot reach the labels of mydata (label_range [-5, 5]): "
                   "set -c output_range=[-5,5]\n")
    assert not out.exists()
    assert main([*common, "-c", "output_range=[-5,5]"]) == 0


@pytest.mark.parametrize("change, message", [
    (("    headline: MAE\n", ""), "lacks headline"),
    (("    language: en\n", "    language: en\n    colour: blue\n"), "unknown key(s) colour"),
    # A misspelt required key said only "dataset 'mydata' lacks metrics", where a misspelt optional one was named.
    (("    metrics: mosi\n", "    metric: mosi\n"), "dataset 'mydata': unknown key(s) metric (did you mean metrics?), "
                                                     "and it lacks metrics; known: config, download, files,"),
    (("[-3.0, 3.0]", "[-3.0, 3.0]\n    labl_range: [-3.0, 3.0]"), "unknown key(s) labl_range (did you mean "
                                                                   "label_range?); known:"),
    (("    metrics: mosi\n", "    metrics: imdb\n"), "metrics must be one of mosi, sims, mintrec"),
    (("[-3.0, 3.0]", "[3.0, -3.0]"), "label_range: [low, high], two finite numbers with low < high, got [3.0, -3.0]"),
    (("[-3.0, 3.0]", "[.nan, 3.0]"), "two finite numbers with low < high, got [nan, 3.0]"),
    (("[-3.0, 3.0]", "[-.inf, .inf]"), "two finite numbers with low < high, got [-inf, inf]"),
    (("[-3.0, 3.0]", "[false, true]"), "two finite numbers with low < high, got [False, True]"),
    (("  MyData:\n", "  mosi:\n"), "defines 'mosi' again"),
    # SIMS's metrics clipped these labels to [-1, 1] and reported the MAE of the clipped values.
    (("    metrics: mosi\n", "    metrics: sims\n"), "metrics sims clip labels to [-1, 1] (MAE and Corr too), "
                                                      "but label_range is [-3.0, 3.0]: use metrics: mosi"),
    # An unknown headline trained, a sweep printed "Acc nan" and the leaderboard blamed a --key-metric never given.
    (("    headline: MAE\n", "    headline: Acc\n"), "headline must be a metric of its metric set mosi "
                                                    "(Has0_acc_2, Has0_F1_score, Non0_acc_2, Non0_F1_score, "
                                                    "Mult_acc_5, Mult_acc_7, MAE, Corr, Mult_acc_3), got 'Acc'"),
    (("    headline: MAE\n", "    headline: Mult_acc_2\n"), "got 'Mult_acc_2'"),     # SIMS's, not MOSI's
    # Each of these was accepted: classification stopped in a KeyError traceback ('label_range') at the first run,
    # a regression scored with MIntRec's set in a ValueError one, format mintrec read thuiar/MIntRec's folder
    # (data root/MIntRec) instead of the block's file, and "no" (a non-empty string) asked for unimodal labels.
    (("    task: regression\n", "    task: classification\n    num_classes: 3\n"),
     "dataset 'mydata': format mmsa is read for its regression_labels, so its task must be regression"),
    (("    metrics: mosi\n    headline: MAE\n", "    metrics: mintrec\n    headline: f1\n"),
     "dataset 'mydata': metrics mintrec do not score a regression task: use metrics: mosi or sims"),
    (("    format: mmsa\n", "    format: mintrec\n"), "dataset 'mydata': format mintrec is thuiar/MIntRec's own "
                                                      "folder, read with the mintrec block's facts"),
    (("    language: en\n", "    language: en\n    num_classes: 3\n    label_names: [a, b, c]\n"),
     "dataset 'mydata': num_classes, label_names are read for MIntRec's folder only and would do nothing for an "
     "MMSA feature pickle: remove them"),
    (("    language: en\n", "    language: en\n    unimodal_labels: \"no\"\n"),
     "dataset 'mydata': unimodal_labels must be true or false, got 'no'"),
    (("    language: en\n", "    language: en\n    sha256: {unaligned: abc}\n"),
     "dataset 'mydata': sha256 must map a setting of its files (aligned, unaligned) to that file's SHA-256"),
    (("    language: en\n", f"    language: en\n    sha256: {{aligned: {'0' * 64}}}\n"),   # a file it does not have
     "dataset 'mydata': sha256 must map a setting of its files"),
    # Malformed, real_sizes and real_shapes were taken for absent without a word (config.real_layout: None), so
    # --synthetic-size full and a download said only that the block gives 'no usable' ones.
    (("    language: en\n", "    language: en\n    real_sizes: {train: 10, valid: 4}\n"),
     "dataset 'mydata': real_sizes must give the samples of each split, as real_sizes: {train: 1284, valid: 229, "
     "test: 686}, got {'train': 10, 'valid': 4}"),
    (("    language: en\n", "    language: en\n    real_sizes: {train: 10, valid: 4, test: '6'}\n"),
     "dataset 'mydata': real_sizes must give the samples of each split"),
    (("    language: en\n", "    language: en\n    real_shapes: {unaligned: {text: [3, 768], audio: [5], "
                            "vision: [7, 4]}}\n"),
     "dataset 'mydata': real_shapes must give, for a setting of its files (unaligned), each modality's [padded "
     "length, feature dimension], as real_shapes: {unaligned: {text: [50, 768], audio: [375, 5], vision: [500, 20]}}, "
     "got {'unaligned': {'text': [3, 768], 'audio': [5], 'vision': [7, 4]}}"),
    (("    language: en\n", "    language: en\n    real_shapes: {aligned: {text: [3, 768], audio: [5, 2], "
                            "vision: [7, 4]}}\n"),                                # a file it does not have
     "dataset 'mydata': real_shapes must give, for a setting of its files (unaligned)"),
    (("    language: en\n", "    language: en\n    download: drive\n"),
     "dataset 'mydata': download must be mmsa-drive (its files are in MMSA's published folder) or absent, got 'drive'"),
])
def test_a_bad_block_is_one_line(own_dataset, change, message, capsys):
    declared, root = own_dataset
    declared.write_text(BLOCK.replace(*change))
    assert main(["list", "--datasets", str(declared)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_an_unknown_dataset_is_named_with_close_ones(capsys):
    assert main(["-m", "tfn", "-d", "mosei2", "--synthetic"]) == 2
    assert "Did you mean mosei" in capsys.readouterr().err


def test_an_unknown_dataset_says_how_python_declares_one_and_that_way_works(own_dataset):
    """mmsa_atsuko.run has no --datasets: the line said only `--datasets FILE`. What it now says, done, works."""
    from mmsa_atsuko.errors import UsageError
    declared, _ = own_dataset
    with pytest.raises(UsageError) as err:
        dataset_facts("mydata")
    assert str(err.value).endswith("(your own: a block in a --datasets FILE; from Python, "
                                   "os.environ['MMSA_ATSUKO_DATASETS'] = FILE)")
    import os
    os.environ["MMSA_ATSUKO_DATASETS"] = str(declared)      # as the line says; the fixture's monkeypatch restores it
    assert dataset_facts("mydata")["label_range"] == [-3.0, 3.0]


def test_a_missing_file_of_your_own_dataset_says_where_it_goes(own_dataset, tmp_path, capsys):
    """The advice was MMSA's: `run.py download mydata` and --synthetic, which both refuse a dataset of your own."""
    declared, _ = own_dataset
    empty_root = tmp_path / "empty"
    assert main(["-m", "tfn", "-d", "mydata", "--datasets", str(declared), "--data-root", str(empty_root),
                 "-s", "1", "--preset", "small", "--out", str(tmp_path / "out"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "download" not in err and "--synthetic" not in err, err
    assert (f"mydata unaligned features not found at {empty_root / 'MyData' / 'features.pkl'} (the data root "
            f"given): put the file there, or give --data-root DIR, the folder its `files:` entry is under") in err


def test_a_bad_config_key_of_your_own_dataset_names_your_file(own_dataset, tmp_path, capsys):
    """The line blamed `datasets.yaml mydata.config`, a file that has no mydata."""
    declared, root = own_dataset
    declared.write_text(BLOCK.replace("key_eval: Loss,", "key_eval: Loss, colour: blue,"))
    assert main(["-m", "tfn", "-d", "mydata", "--datasets", str(declared), "--data-root", str(root), "-s", "1",
                 "--preset", "small", "--quiet", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {declared} mydata.config: unknown config key 'colour'") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_download_of_a_dataset_of_your_own_without_its_real_layout_says_what_to_write(own_dataset, tmp_path, capsys):
    """`download: mmsa-drive` on a block of your own without real_sizes/real_shapes: `run.py download mydata` said
    the block gives 'no usable real_sizes and real_shapes', not what they are, and nothing before it did."""
    declared, _ = own_dataset
    declared.write_text(BLOCK.replace("    language: en\n", "    language: en\n    download: mmsa-drive\n"))
    line = ("error: dataset 'mydata': download: mmsa-drive needs real_sizes and real_shapes of its unaligned file (a "
            "download's size cap, and without a published sha256 its check, come from them): add real_sizes: {train: "
            "N, valid: N, test: N} and real_shapes: {unaligned: {text: [L, D], audio: [L, D], vision: [L, D]}} (padded "
            "length, feature dimension), or remove download: MMSA's folder holds mosi, mosei, sims and simsv2 only\n")
    for command in (["download", "mydata", "--data-root", str(tmp_path / "root2")], ["list"]):
        assert main([*command, "--datasets", str(declared)]) == 2
        assert capsys.readouterr().err == line
    assert not (tmp_path / "root2").exists()
    declared.write_text(BLOCK.replace("    language: en\n", "    language: en\n    download: mmsa-drive\n"
                                      "    real_sizes: {train: 10, valid: 4, test: 6}\n    real_shapes: {unaligned: "
                                      "{text: [3, 768], audio: [5, 2], vision: [7, 4]}}\n"))
    assert main(["list", "--datasets", str(declared)]) == 0                  # written so, the block is taken


@pytest.mark.parametrize("entry, says", [
    ("../MyData/features.pkl", "leaves the data root ('..')"),
    ("MyData/../../features.pkl", "leaves the data root ('..')"),
    ("MyData\\\\features.pkl", "holds a backslash (write '/' between folders)"),
    ("MyData/feat\\0ures.pkl", "holds a NUL byte"),
    # `run.py download` and its --check stopped in an OSError (ENAMETOOLONG) traceback
    ("MyData/" + "f" * 256 + ".pkl", "holds a name longer than 255 bytes, which no file system takes"),
    ("ab/" * 400 + "f.pkl", "is longer than 1024 characters"),
])
def test_a_files_entry_that_leaves_the_data_root_or_names_no_file_is_one_line(own_dataset, entry, says, capsys):
    """`..` read a file beside the data root and a download wrote there; a NUL byte stopped the first look at the
    file in a ValueError traceback; a backslash is a separator on Windows only."""
    declared, _ = own_dataset
    declared.write_text(BLOCK.replace("{unaligned: MyData/features.pkl}", f'{{unaligned: "{entry}"}}'))
    assert main(["list", "--datasets", str(declared)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "dataset 'mydata': files: unaligned" in err and says in err, err


def test_an_absolute_files_entry_reads_that_file(own_dataset, monkeypatch):
    """A file of your own named by its absolute path is read where it is (as --feature-path reads one)."""
    from mmsa_atsuko.data.mmsa_format import load_dataset
    declared, root = own_dataset
    declared.write_text(BLOCK.replace("MyData/features.pkl", str(root / "MyData" / "features.pkl")))
    monkeypatch.setenv(DATASETS_ENV, str(declared))
    assert load_dataset("mydata", data_root=root / "elsewhere").spec.split_sizes["train"] > 0


def test_a_datasets_file_or_models_folder_whose_path_holds_the_separator_is_one_line(own_dataset, tmp_path, capsys,
                                                                                    monkeypatch):
    """$MMSA_ATSUKO_DATASETS and $MMSA_ATSUKO_MODELS are os.pathsep-separated: an existing 'a:b.yaml' was read as
    'a' ("not found") and 'b.yaml', whatever b.yaml held."""
    import os
    monkeypatch.setenv("MMSA_ATSUKO_MODELS", "")          # main() adds to it; monkeypatch restores it afterwards
    declared, _ = own_dataset
    split = tmp_path / f"mine{os.pathsep}b.yaml"
    declared.rename(split)
    (tmp_path / "b.yaml").write_text("datasets: {}\n")
    assert main(["list", "--datasets", str(split)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{split} holds {os.pathsep!r}, which separates the paths" in err, err
    folder = tmp_path / f"models{os.pathsep}x"
    folder.mkdir()
    assert main(["list", "--models", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{folder} holds {os.pathsep!r}" in err and "MMSA_ATSUKO_MODELS" in err, err


def test_a_split_that_no_corr_can_score_is_named_with_why(own_dataset, tmp_path, capsys, caplog, monkeypatch):
    """A test split of 1 sample printed Corr `nan` in the run's table with no word of why: one line says it (and for
    a split of one label), and the run is scored still (its MAE is defined)."""
    import pickle

    import torch

    from mmsa_atsuko.api import jobs
    from tests.conftest import make_dataset
    monkeypatch.setattr(jobs, "_CORR_WARNED", set(), raising=False)     # what earlier tests in this process said
    declared, root = own_dataset
    path = root / "MyData" / "features.pkl"
    with open(path, "rb") as f:
        data = pickle.load(f)
    del data["__synthetic__"]       # a file of one's own: its stamp no longer holds for the cut content
    data["test"] = {key: value[:1] for key, value in data["test"].items()}
    with open(path, "wb") as f:
        pickle.dump(data, f)
    assert main(["-m", "tfn", "-d", "mydata", "--datasets", str(declared), "--data-root", str(root), "-s", "1",
                 "--preset", "small", "--max-epochs", "1", "--quiet", "--out", str(tmp_path / "out")]) == 0
    line = ("mydata: its test split has 1 sample, so its Corr (Pearson's r, of 2 or more samples with different "
            "labels) will read nan in every run; give the split more samples")
    assert [r.getMessage() for r in caplog.records if "Corr" in r.getMessage()] == [line]
    record = json.loads((tmp_path / "out" / "runs.jsonl").read_text())
    assert record["metrics"]["Corr"] is None and record["metrics"]["MAE"] > 0
    caplog.clear()
    from mmsa_atsuko.api.jobs import warn_of_undefined_corr
    one_label = make_dataset(n=(8, 3, 4))
    one_label.valid.tensors["label"] = torch.full((3,), 0.5)
    warn_of_undefined_corr(one_label)
    warn_of_undefined_corr(make_dataset(n=(8, 3, 4)))             # splits of different labels: no line
    assert [r.getMessage() for r in caplog.records] == [
        "mosi: its valid split has one label for all its 3 samples (0.5), so its Corr (Pearson's r, of 2 or more "
        "samples with different labels) will read nan in every run; give the split more samples"]


def test_the_undefined_corr_line_is_said_once_per_process_and_never_in_a_sweep_worker(caplog, monkeypatch):
    """`sweep -m tfn lmf -d mydata -s 1 2 --jobs 2` printed the line 3 times (its plan, then each worker), and
    `sensitivity --values 0.1 0.2 0.3` 3 times (each value's jobs load the data again): once per process per
    (dataset, data id, split), and a sweep's workers say none of it, their driver having said it when it planned."""
    import dataclasses
    import logging

    import torch

    from mmsa_atsuko.api import jobs
    from mmsa_atsuko.sweep import execute
    from tests.conftest import make_dataset
    monkeypatch.setattr(jobs, "_CORR_WARNED", set(), raising=False)
    monkeypatch.setattr(jobs, "_IN_SWEEP_WORKER", {"quiet": False}, raising=False)

    def one_label(source="synthetic:test-fixture"):
        data = make_dataset(n=(8, 3, 4))
        data.valid.tensors["label"] = torch.full((3,), 0.5)
        data.spec = dataclasses.replace(data.spec, source=source)
        return data

    for _ in range(3):              # the same data loaded again, as each value of a sensitivity sweep loads it
        jobs.warn_of_undefined_corr(one_label())
    jobs.warn_of_undefined_corr(one_label("synthetic:other"))       # other data of the same name: its own line
    said = [r.getMessage() for r in caplog.records if "Corr" in r.getMessage()]
    assert len(said) == 2 and all(line.startswith("mosi: its valid split has one label") for line in said), said
    caplog.clear()
    monkeypatch.setattr(jobs, "_CORR_WARNED", set(), raising=False)
    monkeypatch.setattr(logging.getLogger(), "handlers", [])     # worker_logging's console handler, not kept
    monkeypatch.setattr(logging.getLogger("mmsa_atsuko"), "level", logging.getLogger("mmsa_atsuko").level)
    execute.worker_logging()        # what each sweep worker (local or Ray) runs as it starts
    jobs.warn_of_undefined_corr(one_label())
    assert not [r for r in caplog.records if "Corr" in r.getMessage()]
