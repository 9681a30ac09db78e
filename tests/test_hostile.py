"""Issue 20: the toolkit attacked as a hostile file and as an unlucky user would.

Every case runs the command line (in process through `cli.main`, or as a subprocess where a
traceback must be ruled out end to end) and asserts: one line on stderr, a non-zero exit, nothing
written outside the results folder (a victim folder beside it is snapshotted) and no record lost.
The hostile pickles of the feature loader have their own suite (safe_pickle/'s tests).
"""
import errno
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_dataset, write_run_folder

import mmsa_atsuko
from mmsa_atsuko import results as store
from mmsa_atsuko.cli import main
from mmsa_atsuko.config import CONFIG_DIR, DATASETS_ENV, DEFAULT_CHECKS, load_config, read_yaml
from mmsa_atsuko.registry import list_models

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--synthetic", "--preset", "small", "--max-epochs", "1", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A results folder holding one finished tfn run (synthetic MOSI, one epoch)."""
    out = tmp_path_factory.mktemp("trained") / "results"
    (record,) = mmsa_atsuko.run("tfn", "mosi", seeds=[1111], synthetic=True, preset="small", max_epochs=1,
                                out=out, quiet=True)
    return out, record


@pytest.fixture
def results(trained, tmp_path):
    """A private copy of the trained results folder, and its one record."""
    out = tmp_path / "results"
    shutil.copytree(trained[0], out)
    return out, dict(trained[1])


@pytest.fixture
def victim(tmp_path):
    """A folder beside the results folder that no command may change."""
    folder = tmp_path / "victim"
    folder.mkdir()
    (folder / "victim.txt").write_text("precious\n")
    before = snapshot(folder)
    yield folder
    assert snapshot(folder) == before, "something was written outside the results folder"


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
            for p in sorted(folder.rglob("*"))}


def cli(capsys, *argv) -> tuple[int, str]:
    """Exit code and stderr of `run.py argv` run in process."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def assert_one_line(code: int, err: str, *needles: str) -> None:
    assert code != 0, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def write_store(out: Path, *lines) -> None:
    """runs.jsonl holding exactly these lines (dicts are dumped; strings written as they are)."""
    with open(out / "runs.jsonl", "w", encoding="utf-8") as f:
        for line in lines:
            f.write((line if isinstance(line, str) else json.dumps(line)) + "\n")


def atsuko_like(record: dict) -> dict:
    """`record` as if it were an Atsuko run (tsne reads only those)."""
    return {**record, "model": "atsuko", "config": {**record["config"], "use_sbn": True, "use_mcm": True}}


# ------------------------------------------------------------------------------------------
# crafted records: leaderboard, compare, tsne, robustness
# ------------------------------------------------------------------------------------------
def commands(record):
    return {"leaderboard": ["leaderboard"], "compare": ["compare", "-m", "tfn", "--against", "lmf"],
            "tsne": ["tsne", "-d", "mosi"], "robustness": ["robustness", "--run", record["run_id"]]}


WRONG_TYPES = {                    # field -> a value of the wrong type or an absurd one
    "metrics": "x",
    "metrics.MAE": "0.5",
    "metrics.huge": 10 ** 400,     # parses, but no float holds it: formatting it raised OverflowError
    "seed": "1111",
    "seed.huge": 10 ** 30,
    "aligned": "no",
    "best_epoch": True,            # JSON true is a Python int subclass: accepted before, shown as "True"
    "config": ["not", "a", "mapping"],
    "config.deep": "deep",
    "dataset": "../../victim",
    "model": {"a": 1},
}


def crafted(record: dict, case: str) -> dict:
    field, _, kind = case.partition(".")
    value = WRONG_TYPES[case]
    if field == "metrics" and kind:
        return {**record, "metrics": {**record["metrics"], "MAE": value}}
    if case == "config.deep":
        deep = {}
        for _ in range(100):
            deep = {"x": deep}
        return {**record, "config": {**record["config"], "nested": deep}}
    return {**record, field: value}


@pytest.mark.parametrize("case", [case for case in WRONG_TYPES if case != "dataset"])
def test_a_record_of_wrong_types_is_skipped_with_the_warning(results, victim, capsys, caplog, case):
    """Such a line is no run: the store's reader skips it (every command reads through it; leaderboard, compare and
    verify are tests/test_store_stranger.py's), and the run beside it is shown. Before: one error line, no table."""
    import logging
    out, record = results
    write_store(out, record, crafted(record, case))
    with caplog.at_level(logging.WARNING, logger="mmsa_atsuko"):
        code, err = cli(capsys, "leaderboard", "--results", out)
    assert code == 0 and "Traceback" not in err
    (warning,) = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert f"skipped 1 line(s) that hold no run record, the first line 2 (its {case.partition('.')[0]}" in warning
    assert "\n" not in warning


@pytest.mark.parametrize("command", ["leaderboard", "compare", "tsne", "robustness"])
def test_a_record_of_an_undeclared_dataset_is_one_line(results, victim, capsys, command):
    # Any string may name a dataset of one's own: the advice is its --datasets FILE, not skipping a good record.
    out, record = results
    bad = crafted(atsuko_like(record) if command == "tsne" else record, "dataset")
    write_store(out, record, bad)
    code, err = cli(capsys, *commands(record)[command], "--results", out)
    assert_one_line(code, err, "is on dataset '../../victim', declared neither", "remove that line")


def test_a_record_of_an_undeclared_dataset_asks_for_its_datasets_file(results, capsys):
    # A run on a dataset of one's own, read without the --datasets FILE that declares it: the
    # advice is to pass that file, not to delete a good record.
    out, record = results
    write_store(out, record, {**record, "run_id": "tfn-mydata-s1-20260101T000000-abcdef", "dataset": "my-data"})
    code, err = cli(capsys, "leaderboard", "--results", out)
    assert_one_line(code, err, "record 'tfn-mydata-s1-20260101T000000-abcdef' is on dataset 'my-data', declared "
                    "neither in configs/datasets.yaml nor in a --datasets FILE given: pass the --datasets FILE")


UNREADABLE = {
    "lacks-fields": json.dumps({"run_id": "tfn-mosi-s1-20260101T000000-abcdef", "status": "ok"}),
    "deeply-nested": '{"run_id": "x", "config": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "huge-integer": '{"run_id": "x", "seed": ' + "9" * 5000 + "}",
    "not-an-object": "[1, 2, 3]",
    "garbage": "\x00\xff{{{",
}


@pytest.mark.parametrize("case", list(UNREADABLE))
@pytest.mark.parametrize("command", ["leaderboard", "compare", "tsne", "robustness"])
def test_a_store_of_lines_that_are_no_run_is_one_line(results, victim, capsys, command, case):
    """A line that is not a run (no identity, unparseable, too deep or too long a number) is
    skipped like a torn fragment; a store of nothing else has no runs, said in one line."""
    out, record = results
    write_store(out, UNREADABLE[case])
    code, err = cli(capsys, *commands(record)[command], "--results", out)
    assert_one_line(code, err)


@pytest.mark.parametrize("line", [{"status": "failed", "note": "hand-written"}, {"run_id": ["x"], "status": "ok"}])
def test_run_trains_beside_a_line_without_a_run_id(tmp_path, capsys, line):
    # The store's readers pass over such a line; run, which reads the store to tell what it
    # appended, must too (it raised KeyError / TypeError before training).
    out = tmp_path / "results"
    out.mkdir()
    write_store(out, line)
    code = main(["-m", "tfn", "-d", "sims", "--synthetic", "--preset", "small", "--max-epochs", "1", "-s", "1",
                 "--quiet", "--out", str(out)])
    assert code == 0 and "1 record(s) appended" in capsys.readouterr().out


def test_a_crafted_record_is_skipped_in_one_line_end_to_end(results, victim):
    """As a subprocess: no traceback anywhere, one warning line naming the metric, the run beside it shown."""
    out, record = results
    write_store(out, record, crafted(record, "metrics.huge"))
    done = subprocess.run([sys.executable, "run.py", "leaderboard", "--results", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "Traceback" not in done.stderr and "| tfn | 1 |" in done.stdout
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    # The metric is named: "metrics must be an object ..., got a JSON object" named neither it nor its value.
    assert "(its metrics['MAE'] is a huge integer, not a finite number or null" in done.stderr


# ------------------------------------------------------------------------------------------
# paths derived from records; symbolic links
# ------------------------------------------------------------------------------------------
def test_a_run_id_that_climbs_out_is_refused(results, victim, capsys):
    out, record = results
    evil = {**record, "run_id": "../../victim", "run_dir": "../../victim"}
    write_store(out, record, evil)
    code, err = cli(capsys, "robustness", "--run", "../../victim", "--results", out)
    assert_one_line(code, err, "is not a run id")
    assert code == 2                     # typed by the user: a usage error, as explain's unknown run id (was 1)
    assert not (out / "analysis").exists()


def test_a_run_dir_naming_another_folder_is_refused(results, victim, capsys, tmp_path):
    out, record = results
    planted = tmp_path / "planted"
    shutil.copytree(out / record["run_dir"], planted)           # a best.pt there too
    before = snapshot(planted)
    write_store(out, {**record, "run_dir": str(planted)})
    code, err = cli(capsys, "robustness", "--run", record["run_id"], "--results", out)
    assert_one_line(code, err, "is not the run's folder")
    assert snapshot(planted) == before


def test_a_copied_results_folder_reads_its_own_runs(results, victim, capsys, tmp_path):
    """--results COPY reads COPY's run folders, even from a record that stored the original's
    absolute path (records of older versions), and writes under COPY/analysis."""
    out, record = results
    write_store(out, {**record, "run_dir": str(victim / "runs" / record["run_id"])})   # an old absolute run_dir
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (out / record["run_dir"] / "best.pt").write_bytes(b"the original is broken")
    original = snapshot(out)
    code, err = cli(capsys, "robustness", "--run", record["run_id"], "--results", copy)
    assert code == 0, err
    assert (copy / "analysis" / f"robustness_{record['run_id']}.csv").is_file()
    assert snapshot(out) == original


@pytest.mark.parametrize("planted", ["analysis", "analysis-file", "run-folder"])
def test_a_planted_symlink_is_never_followed(results, victim, capsys, planted, tmp_path):
    out, record = results
    elsewhere = tmp_path / "elsewhere"
    if planted == "analysis":                 # the analysis folder itself points at the victim
        (out / "analysis").symlink_to(victim, target_is_directory=True)
    elif planted == "analysis-file":          # one output file points at the victim's file
        (out / "analysis").mkdir()
        (out / "analysis" / f"robustness_{record['run_id']}.png").symlink_to(victim / "victim.txt")
    else:                                     # the run's folder points at a copy in the victim
        shutil.copytree(out / record["run_dir"], elsewhere)
        shutil.rmtree(out / record["run_dir"])
        (out / record["run_dir"]).symlink_to(elsewhere, target_is_directory=True)
    before = snapshot(tmp_path / "elsewhere") if planted == "run-folder" else None
    code, err = cli(capsys, "robustness", "--run", record["run_id"], "--results", out)
    assert_one_line(code, err)
    assert "symbolic link" in err or "outside the results folder" in err, err
    if before is not None:
        assert snapshot(elsewhere) == before


@pytest.mark.parametrize("entry", ["runs.jsonl", "runs"])
def test_training_refuses_a_store_entry_that_is_a_symlink(tmp_path, victim, capsys, entry):
    out = tmp_path / "results"
    out.mkdir()
    (out / entry).symlink_to(victim / "victim.txt" if entry == "runs.jsonl" else victim)
    code, err = cli(capsys, "-m", "tfn", "-d", "mosi", "-s", "1", *TINY, "--out", out)
    assert_one_line(code, err, "symbolic link")


def test_the_store_is_never_appended_through_a_symlink(tmp_path, victim):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "runs.jsonl").symlink_to(victim / "victim.txt")
    with pytest.raises(mmsa_atsuko.errors.DataError, match="symbolic link"):
        store.append_record(tmp_path / "results", {"run_id": "x"})


# ------------------------------------------------------------------------------------------
# a bad best.pt
# ------------------------------------------------------------------------------------------
class Payload:
    """A pickle that runs a command when loaded without weights_only."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


@pytest.mark.parametrize("kind", ["garbage", "code", "empty", "wrong-weights", "truncated"])
def test_a_bad_checkpoint_is_one_line_and_runs_no_code(results, victim, capsys, kind):
    out, record = results
    best = out / record["run_dir"] / "best.pt"
    if kind == "garbage":
        best.write_bytes(os.urandom(4096))
    elif kind == "code":
        best.write_bytes(pickle.dumps({"weights": Payload(victim / "pwned")}))
    elif kind == "empty":
        best.write_bytes(b"")
    elif kind == "wrong-weights":
        torch.save({"not.a.layer": torch.zeros(3)}, best)
    else:
        best.write_bytes(best.read_bytes()[:200])
    code, err = cli(capsys, "robustness", "--run", record["run_id"], "--results", out)
    # Three values are fewer than the record's sizes: refused before the model is built, naming the record.
    assert_one_line(code, err, *(["the record does not describe these weights"] if kind == "wrong-weights"
                                 else ["is not the weights of run"]))
    assert not (victim / "pwned").exists()


@pytest.mark.parametrize("content", [b"", b"garbage" * 100, pickle.dumps(Payload("/nonexistent/pwned"))],
                         ids=["empty", "garbage", "code"])
def test_a_bad_last_pt_is_one_line_on_resume(tmp_path, content):
    from mmsa_atsuko.errors import DataError
    from mmsa_atsuko.training.training_state import load_training_state
    (tmp_path / "last.pt").write_bytes(content)
    with pytest.raises(DataError, match="is not a training state this toolkit wrote"):
        load_training_state(tmp_path / "last.pt", None, None, None, None, "cpu")


def test_a_checkpoint_with_code_is_one_line_end_to_end(results, victim):
    out, record = results
    (out / record["run_dir"] / "best.pt").write_bytes(pickle.dumps(Payload(victim / "pwned")))
    done = subprocess.run([sys.executable, "run.py", "robustness", "--run", record["run_id"], "--results", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert len(done.stderr.strip().splitlines()) == 1 and not (victim / "pwned").exists()


# ------------------------------------------------------------------------------------------
# the store: unwritable, read-only, a full disk, concurrent writers
# ------------------------------------------------------------------------------------------
def deny_write(monkeypatch, *paths):
    """os.access says these paths are not writable (tests run as root, where chmod denies nothing)."""
    denied = {os.path.abspath(p) for p in paths}
    real = os.access

    def access(path, mode, *args, **kwargs):
        if mode & os.W_OK and os.path.abspath(path) in denied:
            return False
        return real(path, mode, *args, **kwargs)
    monkeypatch.setattr(os, "access", access)


@pytest.mark.parametrize("what", ["runs.jsonl", "runs.jsonl.lock", "folder"])
def test_an_unwritable_store_stops_before_training(results, victim, capsys, monkeypatch, what):
    out, _ = results
    (out / "runs.jsonl.lock").touch()
    deny_write(monkeypatch, out if what == "folder" else out / what)
    before = snapshot(out)
    code, err = cli(capsys, "-m", "tfn", "-d", "mosi", "-s", "2", *TINY, "--out", out)
    assert_one_line(code, err, "not writable")
    assert snapshot(out) == before                  # nothing trained, nothing written
    code, err = cli(capsys, "sweep", "-m", "tfn", "-d", "mosi", "-s", "2", *TINY[:-1], "--out", out)
    assert_one_line(code, err, "not writable")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes through any permission")
def test_a_read_only_results_folder_for_real(results, capsys):
    out, _ = results
    os.chmod(out, 0o555)
    try:
        code, err = cli(capsys, "-m", "tfn", "-d", "mosi", "-s", "2", *TINY, "--out", out)
    finally:
        os.chmod(out, 0o755)
    assert_one_line(code, err, "not writable")


def full_disk(monkeypatch):
    def append(path, line):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr("mmsa_atsuko.results.store._append_locked", append)     # where append_record finds it


def test_a_full_disk_keeps_the_record_and_recover_folds_it_in_once(tmp_path, victim, capsys, monkeypatch):
    out = tmp_path / "results"
    with monkeypatch.context() as m:
        full_disk(m)
        code, err = cli(capsys, "-m", "tfn", "-d", "mosi", "-s", "1", *TINY, "--out", out)
    assert_one_line(code, err, "No space left on device", "record.json", "results --recover")
    assert not (out / "runs.jsonl").exists() or store.read_records(out) == []
    (kept,) = (out / "runs").glob("*/record.json")
    record = json.loads(kept.read_text())
    assert record["status"] == "ok" and record["run_dir"] == f"runs/{record['run_id']}"

    code, _ = cli(capsys, "results", "--recover", "--results", out)
    assert code == 0 and [r["run_id"] for r in store.read_records(out)] == [record["run_id"]]
    assert not kept.exists()
    assert cli(capsys, "results", "--recover", "--results", out)[0] == 0           # again: nothing twice
    assert store.read_records(out) == [record]
    # The run is recorded: running it again trains nothing.
    assert main(["-m", "tfn", "-d", "mosi", "-s", "1", *TINY, "--out", str(out)]) == 0
    assert len(store.read_records(out)) == 1


def test_a_sweep_on_a_full_disk_stops_and_the_next_sweep_folds_the_record_in(tmp_path, victim, capsys, monkeypatch):
    out = tmp_path / "results"
    argv = ["sweep", "-m", "tfn", "-d", "mosi", "-s", "1", "2", *TINY[:-1], "--out", out]
    with monkeypatch.context() as m:
        full_disk(m)
        code, err = cli(capsys, *argv)
    assert_one_line(code, err, "record.json")
    kept = list((out / "runs").glob("*/record.json"))
    assert len(kept) == 1                                   # the sweep stopped at its first lost append
    code, _ = cli(capsys, *argv)
    assert code == 0 and not list((out / "runs").glob("*/record.json"))
    records = store.read_records(out)
    assert sorted(r["seed"] for r in records) == [1, 2] and len({r["run_id"] for r in records}) == 2


def test_recover_is_exactly_once_when_a_run_is_already_in_the_store(results, capsys):
    """A recovery killed between its append and removing the file: the next one only removes it."""
    out, record = results
    kept = out / record["run_dir"] / "record.json"
    kept.write_text(json.dumps(record))
    assert store.recover(out) == [] and not kept.exists()
    assert store.read_records(out) == [record]


def test_a_kept_record_of_another_folder_is_left_alone(results, caplog):
    out, record = results
    kept = out / record["run_dir"] / "record.json"
    kept.write_text(json.dumps({**record, "run_id": "lmf-mosi-s1-20260101T000000-abcdef",
                                "run_dir": "runs/lmf-mosi-s1-20260101T000000-abcdef"}))
    assert store.recover(out) == [] and kept.exists() and len(store.read_records(out)) == 1
    assert "is not the record of run folder" in caplog.text


RECOVER = """
import sys
from mmsa_atsuko.results import recover
print(len(recover(sys.argv[1])))
"""


def test_two_concurrent_recoveries_append_each_record_once(results):
    out, record = results
    ids = []
    for i in range(20):
        run_id = f"tfn-mosi-s{i}-20260101T000000-{i:06x}"
        (out / "runs" / run_id).mkdir()
        (out / "runs" / run_id / "record.json").write_text(
            json.dumps({**record, "run_id": run_id, "seed": i, "run_dir": f"runs/{run_id}"}))
        ids.append(run_id)
    procs = [subprocess.Popen([sys.executable, "-c", RECOVER, str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    counts = [int(p.communicate(timeout=120)[0]) for p in procs]
    assert sum(counts) == 20
    assert sorted(r["run_id"] for r in store.read_records(out)) == sorted([record["run_id"], *ids])
    assert not list((out / "runs").glob("*/record.json"))


def test_a_recovery_that_waited_for_the_lock_warns_of_no_file_the_other_folded_in(results, monkeypatch, caplog):
    """Two recoveries at once (a sweep starting beside `results --recover`): the one that waited for the store's
    lock had listed the kept files before it, found each gone and warned 'not the record of run folder' of it."""
    import contextlib

    from mmsa_atsuko.results import folder
    out, record = results
    run_id = "tfn-mosi-s7-20260101T000000-000007"
    (out / "runs" / run_id).mkdir()
    (out / "runs" / run_id / "record.json").write_text(
        json.dumps({**record, "run_id": run_id, "seed": 7, "run_dir": f"runs/{run_id}"}))
    asked, by_the_other = [], []

    @contextlib.contextmanager
    def the_other_recovery_first(path):
        asked.append(path)
        if len(asked) == 1:                  # the other process took the lock first and folded the file in
            by_the_other.extend(store.recover(out))
        with folder.store_lock(path) as lock:
            yield lock
    monkeypatch.setattr("mmsa_atsuko.results.store.store_lock", the_other_recovery_first)
    with caplog.at_level("WARNING", logger="mmsa_atsuko"):
        assert store.recover(out) == []
    assert [r["run_id"] for r in by_the_other] == [run_id] and len(asked) == 2
    assert "is not the record of run folder" not in caplog.text, caplog.text
    assert sorted(r["run_id"] for r in store.read_records(out)) == sorted([record["run_id"], run_id])


def test_run_dir_is_stored_relative_and_resolved_inside_the_results_folder(results):
    out, record = results
    assert record["run_dir"] == f"runs/{record['run_id']}"
    assert store.run_path(out, record) == out / "runs" / record["run_id"]
    old = {**record, "run_dir": f"/somewhere/else/runs/{record['run_id']}"}
    assert store.run_path(out, old) == out / "runs" / record["run_id"]      # only its last component


@pytest.mark.parametrize("run_id", ["../x", "a/b", "..", "tfn-mosi-s1-20260101T000000-abcdef/..",
                                    "tfn-mosi-s1-20260101T000000-ABCDEF", "", None, 7])
def test_run_ids_are_checked(run_id):
    with pytest.raises(mmsa_atsuko.errors.DataError, match="is not a run id"):
        store.check_run_id(run_id)


def test_the_run_ids_the_toolkit_makes_pass_the_check():
    from mmsa_atsuko.api.one_run import new_run_id
    for model in list_models():
        for aligned in (False, True):
            assert store.check_run_id(new_run_id(model, "simsv2", aligned, 1111)) 


# ------------------------------------------------------------------------------------------
# config values checked for meaning
# ------------------------------------------------------------------------------------------
MEANINGLESS = [
    ("tfn", "hidden_dims=[1,2]", "hidden_dims must have 3 values"),
    ("tfn", "dropouts=[0.3,2.0,0.3,0.5]", "dropouts[1] must be in [0, 1)"),
    ("tfn", "output_range=[3,-3]", "output_range must be increasing"),
    ("tfn", "text_out=-5", "text_out must be at least 1, got -5"),
    ("tfn", "temporal_mean=middle", "temporal_mean must be one of padded, valid"),
    ("lmf", "rank=0", "rank must be at least 1"),
    ("misa", "dropout=1.0", "dropout must be in [0, 1)"),
    ("mult", "positions=somewhere", "positions must be one of none, table, from_input"),
    ("self_mm", "H=-1", "H must be positive"),
    ("atsuko", "router_temperature=0", "router_temperature must be positive"),
    ("atsuko", "band_mask_rate=1.5", "band_mask_rate must be in [0, 1)"),
    ("atsuko", "lambda_comp=-0.1", "lambda_comp must be 0 or more"),
    ("emoe", "dst_feature_dim_nheads=[0,8]", "dst_feature_dim_nheads[0] must be at least 1"),
    ("self_mm", "learning_rate_bert=0", "learning_rate_bert must be positive"),
    ("self_mm", "weight_decay_audio=-1", "weight_decay_audio must be 0 or more"),
    ("mult", "scheduler_factor=1.5", "command-line override -c: scheduler_factor must be between 0 and 1"),
    ("tfn", "grad_accum=0", "command-line override -c: grad_accum must be at least 1, got 0"),
]


@pytest.mark.parametrize("model, override, message", MEANINGLESS)
def test_a_meaningless_value_is_one_line_naming_the_key(tmp_path, capsys, model, override, message):
    code, err = cli(capsys, "-m", model, "-d", "mosi", "-s", "1", *TINY, "-c", override, "--out", tmp_path / "r")
    assert_one_line(code, err, message)
    assert not (tmp_path / "r").exists()


def test_every_key_of_every_model_yaml_has_a_check():
    """A new key needs a `checks:` line in its YAML unless its name follows DEFAULT_CHECKS (bools need none)."""
    import fnmatch
    datasets = read_yaml(CONFIG_DIR / "datasets.yaml")
    missing = []
    for path in sorted(CONFIG_DIR.glob("*.yaml")):
        data = read_yaml(path)
        declared = data.get("defaults") if path.name == "datasets.yaml" else data.get("common")
        checks = {**(datasets.get("checks") or {}), **(data.get("checks") or {})}
        nullable = data.get("nullable") or {}
        for key, default in (declared or {}).items():
            if isinstance(default, bool) or nullable.get(key) == "bool" or key in checks:
                continue
            if not any(fnmatch.fnmatchcase(key, pattern) for pattern, _ in DEFAULT_CHECKS):
                missing.append(f"{path.name}: {key}")
    assert missing == []


# ------------------------------------------------------------------------------------------
# hostile YAML files: a sweep file, a --datasets FILE (config/yaml_files.py bounds them all)
# ------------------------------------------------------------------------------------------
SWEEP_BODY = "synthetic: true\npreset: small\nseeds: [1]\n"


def alias_bomb(levels: int) -> str:
    """Anchors a0..a<levels-1>, each a list of nine of the one before: 9**levels strings once expanded."""
    lines = ["  - &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"  - &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines)


HOSTILE_YAML = {   # case -> (sweep file text, what the line says); before, each ran or was a traceback
    # 9**6 = 531,441 names once expanded: the dry run printed them all (9**8 took 50 s and 1.2 GB)
    "alias-bomb": ("description:\n" + alias_bomb(6) + "\n" + SWEEP_BODY
                   + "experiments: [{name: *a5, models: [tfn], datasets: [mosi]}]\n",
                   "holds over 100,000 values once its aliases are expanded (the value at line 7)"),   # a5: 9**6
    "alias-loop": (SWEEP_BODY + "experiments: [{name: &n [*n], models: [tfn], datasets: [mosi]}]\n",
                   "the alias at line 4 names a value that holds it (a loop)"),
    # within libyaml's 1000 levels, beyond what copy.deepcopy recurses through: RecursionError
    "deep": ("experiments: " + "[" * 999 + "]" * 999 + "\n", "nests over 64 levels deep (the value at line 1); settings nest a few"),
    # Python refuses to read an integer of over 4300 digits: ValueError from PyYAML's int()
    "long-integer": ("seeds: [" + "9" * 5000 + "]\nexperiments: [{models: [tfn], datasets: [mosi]}]\n",
                     "line 1 holds an integer of 5000 characters"),
    "over-1-MiB": (SWEEP_BODY + "experiments: [{models: [tfn], datasets: [mosi]}]\n"
                   + ("#" + "x" * 1023 + "\n") * 1024, "is over 1 MiB"),
    # PyYAML keeps the last of a key given twice: this ran seeds 2 and 3 only, without a word
    "key-twice": (SWEEP_BODY + "seeds: [2, 3]\nexperiments: [{models: [tfn], datasets: [mosi]}]\n",
                  ": line 4 gives 'seeds' again (first at line 3); give it once"),
    "key-twice-in-an-experiment": (SWEEP_BODY + "experiments:\n  - models: [tfn]\n    datasets: [mosi]\n"
                                   "    models: [lmf]\n",
                                   ": line 7 gives 'models' again (first at line 5); give it once"),
}


@pytest.mark.parametrize("case", list(HOSTILE_YAML))
def test_a_hostile_sweep_file_is_one_line(tmp_path, capsys, case):
    text, says = HOSTILE_YAML[case]
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    code, err = cli(capsys, "sweep", path, "--dry-run", "--out", tmp_path / "o")
    assert_one_line(code, err, f"config file {path}", says)
    assert code == 2 and not (tmp_path / "o").exists()


def test_a_hostile_datasets_file_is_one_line(results, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv(DATASETS_ENV, "")          # main() adds the file to it; monkeypatch restores it afterwards
    path = tmp_path / "mine.yaml"
    path.write_text("datasets:\n  mine:\n    notes:\n" + alias_bomb(7).replace("  - ", "      - ") + "\n")
    code, err = cli(capsys, "leaderboard", "--datasets", path, "--results", results[0])
    assert_one_line(code, err, f"config file {path} holds over 100,000 values")


def test_a_datasets_file_that_is_a_pipe_or_a_device_says_what_it_is(results, capsys, tmp_path, monkeypatch):
    """A named pipe or a link to /dev/zero given as --datasets FILE was 'no such file', though it is there."""
    monkeypatch.setenv(DATASETS_ENV, "")
    pipe, zero = tmp_path / "mine.yaml", tmp_path / "zero.yaml"
    os.mkfifo(pipe)
    zero.symlink_to("/dev/zero")
    code, err = cli(capsys, "leaderboard", "--datasets", pipe, "--results", results[0])
    assert code == 2 and err.strip() == f"error: --datasets {pipe} is a pipe, not a file"
    code, err = cli(capsys, "leaderboard", "--datasets", zero, "--results", results[0])
    assert code == 2 and err.strip() == f"error: --datasets {zero} is a device, not a file"
    code, err = cli(capsys, "leaderboard", "--datasets", tmp_path / "none.yaml", "--results", results[0])
    assert code == 2 and err.strip() == f"error: --datasets {tmp_path / 'none.yaml'}: no such file"


def test_a_dataset_given_twice_in_a_datasets_file_is_one_line(results, capsys, tmp_path, monkeypatch):
    """The second `mine:` block replaced the first without a word."""
    monkeypatch.setenv(DATASETS_ENV, "")
    mosi = json.dumps(read_yaml(CONFIG_DIR / "datasets.yaml")["datasets"]["mosi"])   # JSON is YAML, on one line
    path = tmp_path / "mine.yaml"
    path.write_text(f"# two of mine\ndatasets:\n  mine: {mosi}\n  other: {mosi}\n  mine: {mosi}\n")
    code, err = cli(capsys, "leaderboard", "--datasets", path, "--results", results[0])
    assert code == 2 and err.strip() == f"error: config file {path}: line 5 gives 'mine' again (first at line 3); give it once"


@pytest.mark.parametrize("text, got", [("- a\n- b\n", "a list"), ("hello\n", "a str"), ("42\n", "a int")])
def test_a_datasets_file_that_is_no_mapping_is_one_line(results, capsys, tmp_path, monkeypatch, text, got):
    """It was an AttributeError traceback ('list' object has no attribute 'get')."""
    monkeypatch.setenv(DATASETS_ENV, "")
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    code, err = cli(capsys, "leaderboard", "--datasets", path, "--results", results[0])
    assert_one_line(code, err, f"config file {path} must be a mapping of key: value, got {got}")


def test_a_model_yaml_that_is_no_mapping_is_one_line(tmp_path, capsys, forgetful_registry):
    """A model's YAML holding the string 'hello' was read as the unknown blocks ['e', 'h', 'l', 'o']. In process,
    with a registry that forgets the model folder afterwards (a run.py process here was seconds of imports)."""
    from conftest import FIXTURES
    (tmp_path / "models").mkdir()
    shutil.copy(FIXTURES / "latefuse.py", tmp_path / "models")
    (tmp_path / "models" / "latefuse.yaml").write_text("hello\n")
    code, err = cli(capsys, "-m", "latefuse", "-d", "mosi", *TINY, "--models", tmp_path / "models",
                    "--out", tmp_path / "r")
    assert code == 2 and err.strip() == (
        f"error: config file {tmp_path / 'models' / 'latefuse.yaml'} must be a mapping of key: value, got a str")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("block, value, got", [("common", [1], "list"), ("nullable", 3, "int"), ("checks", "x", "str"),
                                               ("presets", [1], "list")])
def test_a_model_yaml_whose_blocks_are_no_mappings_is_one_line(tmp_path, capsys, forgetful_registry, block, value,
                                                               got):
    """`common: [1]`, `nullable: 3`, `checks: x` were AttributeError tracebacks ('list' object has no
    attribute 'items'), `presets: [1]` a TypeError from the line naming the presets. In process, as above."""
    from conftest import FIXTURES
    (tmp_path / "models").mkdir()
    shutil.copy(FIXTURES / "latefuse.py", tmp_path / "models")
    model_yaml = tmp_path / "models" / "latefuse.yaml"
    model_yaml.write_text(json.dumps({**read_yaml(FIXTURES / "latefuse.yaml"), block: value}))   # JSON is YAML
    code, err = cli(capsys, "-m", "latefuse", "-d", "mosi", *TINY, "--models", tmp_path / "models",
                    "--out", tmp_path / "r")
    assert code == 2 and err.strip() == (
        f"error: {model_yaml}: its {block} block must be a mapping of key: value, got {got}"), err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("override, says", [
    ("batch_size=" + "9" * 5000, "-c batch_size: line 1 holds an integer of 5000 characters"),   # was ValueError
    ("learning_rate=" + "[" * 100_000, "learning_rate must be a float like 0.001, got '[[["),    # was RecursionError
    ("hidden_dims=" + "[" * 999 + "]" * 999, "-c hidden_dims nests over 64 levels deep"),        # was RecursionError
    ("hidden_dims=&a [1, *a, 3]", "-c hidden_dims: the alias at line 1 names a value that holds it"),
    ("output_range={low: 1, low: 2}", "-c output_range: line 1, column 10 gives 'low' again (first at line 1, column 2)"),
])
def test_a_hostile_override_value_is_one_line(tmp_path, capsys, override, says):
    code, err = cli(capsys, "sweep", "-m", "tfn", "-d", "mosi", "-s", "1", "--synthetic", "--preset", "small",
                    "--dry-run", "--out", tmp_path / "o", "-c", override)
    assert_one_line(code, err, says)
    assert code == 2 and not (tmp_path / "o").exists()


def test_a_sweep_file_that_is_a_named_pipe_is_refused_at_once(tmp_path):
    """open() of a pipe waits for a writer: the sweep hung for good."""
    os.mkfifo(tmp_path / "sweep.yaml")
    done = subprocess.run([sys.executable, "run.py", "sweep", str(tmp_path / "sweep.yaml"), "--dry-run",
                           "--out", str(tmp_path / "o")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (f"error: config file {tmp_path / 'sweep.yaml'} is a pipe, not a file; "
                                   "give a YAML file")


def test_a_config_file_that_is_a_device_says_so(tmp_path):
    """A link to /dev/null was 'not a regular file', where every other file's message says 'is a device'."""
    (tmp_path / "sweep.yaml").symlink_to("/dev/null")
    with pytest.raises(mmsa_atsuko.errors.UsageError) as info:
        read_yaml(tmp_path / "sweep.yaml")
    assert str(info.value) == f"config file {tmp_path / 'sweep.yaml'} is a device, not a file; give a YAML file"


def test_yaml_aliases_within_bounds_still_work(tmp_path, capsys):
    """An anchor used a few times (a merge key) is what aliases are for: the bounds leave it be."""
    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP_BODY + "description: &b {models: [tfn], datasets: [mosi]}\n"
                    + "experiments: [{<<: *b, name: one}, {<<: *b, name: two, seeds: [2]}]\n")
    code, err = cli(capsys, "sweep", path, "--dry-run", "--out", tmp_path / "o")
    assert code == 0, err


# ------------------------------------------------------------------------------------------
# a shared results folder's .partial folders: every run reads their run.json
# ------------------------------------------------------------------------------------------
def limit_memory():
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


@pytest.mark.parametrize("planted", ["deep", "link-to-dev-zero", "named-pipe"])
def test_a_hostile_run_json_of_another_folder_is_left_alone(results, victim, tmp_path, planted):
    """Each start of a run reads the run.json of every .partial folder, to find its own leftovers. Before,
    100,000 nested '[' were a RecursionError traceback, a link to /dev/zero read 3.3 GB into a MemoryError
    and a named pipe blocked the run for good. Such a folder is no run's: left for `clean`, the run trains."""
    out, _ = results
    folder = out / "runs" / ".tfn-mosi-s1-20260101T000000-abcdef.partial"
    folder.mkdir()
    if planted == "deep":
        (folder / "run.json").write_text('{"identity": ' + "[" * 100_000 + "]" * 100_000 + "}")
    elif planted == "link-to-dev-zero":
        (folder / "run.json").symlink_to("/dev/zero")
    else:
        os.mkfifo(folder / "run.json")
    done = subprocess.run([sys.executable, "run.py", "-m", "tfn", "-d", "mosi", "-s", "1112", *TINY, "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, preexec_fn=limit_memory)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "1 record(s) appended" in done.stdout and sorted(os.listdir(folder)) == ["run.json"]


# ------------------------------------------------------------------------------------------
# a shared results folder's runs.jsonl: one huge line, a pipe or a device in its place
# ------------------------------------------------------------------------------------------
def test_a_store_line_over_16_mib_is_passed_over_unread(results):
    """A line past MAX_KEPT_RECORD (16 MiB) is no record the toolkit wrote: it is skipped a chunk at a time.
    Before, it was read and parsed whole (a 1.5 GB line took 4.8 GB, and a MemoryError under 4 GB)."""
    import tracemalloc
    out, record = results
    huge = json.dumps({**record, "run_id": "tfn-mosi-s2-20260101T000000-abcdef", "pad": "x" * (48 << 20)})
    write_store(out, record, huge, {**record, "run_id": "tfn-mosi-s3-20260101T000000-abcdef"})
    tracemalloc.start()
    try:
        found = [r["run_id"] for r in store.read_records(out)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found == [record["run_id"], "tfn-mosi-s3-20260101T000000-abcdef"]
    assert peak < 40 << 20, peak          # two 16 MiB chunks; the 48 MiB line read whole is 48 MiB of bytes and as much of text


TOO_LARGE = "more than a store of runs may hold (64 MiB and 100,000 lines, some 20,000 runs): move it away, or " \
            "split its runs over several results folders"


@pytest.mark.parametrize("command", [["leaderboard", "--results"], ["-m", "tfn", "-d", "mosi", "-s", "1", *TINY, "--out"]])
def test_a_store_of_more_than_100_000_lines_is_one_line_before_any_work(results, victim, capsys, command):
    """Before: 5 million lines of `{}` took the leaderboard 17 s and 550 MB to say 'no ok runs', 5 million of
    garbage 48 s, and 1 million small valid records ran it past 8 minutes and 3 GB; every run and sweep on
    the folder reads the store too. 100,001 lines of 3 bytes are refused: no run's line is that short."""
    out, record = results
    write_store(out, record, *["{}"] * 100_000)
    before = snapshot(out)
    code, err = cli(capsys, *command, out)
    assert_one_line(code, err, f"error: {out / 'runs.jsonl'} holds more than 100,000 lines, {TOO_LARGE}")
    assert code == 1 and snapshot(out) == before          # `run` trained nothing


def test_a_store_of_100_000_lines_is_read(results, capsys):
    out, record = results
    write_store(out, *["{}"] * 99_999, record)
    capsys.readouterr()
    assert main(["leaderboard", "--results", str(out)]) == 0
    assert "| tfn | 1 |" in capsys.readouterr().out


def test_a_store_over_64_mib_is_refused_unread(results, victim, capsys):
    """Its size alone refuses it ("is 65 MiB", said before a line is read): its record, then a hole (no disk)."""
    out, record = results
    with open(out / "runs.jsonl", "r+b") as f:
        f.truncate((64 << 20) + 1)
    code, err = cli(capsys, "leaderboard", "--results", out)
    assert_one_line(code, err, f"error: {out / 'runs.jsonl'} is 65 MiB, {TOO_LARGE}")


def test_a_store_that_grows_past_64_mib_while_it_is_read_is_one_line(results, capsys, monkeypatch):
    """A store that someone appends to while it is read: its size when opened is no bound. Here it is 0
    when opened, then a line over 16 MiB (skipped unparsed) and two records make 64 MiB and 1 byte."""
    out, record = results
    line = json.dumps(record)
    pad = (64 << 20) + 1 - 2 * (len(line) + 1) - 1
    write_store(out, line, "x" * pad, line)
    real_fstat = os.fstat

    def fstat_when_empty(fd):
        info = real_fstat(fd)
        return os.stat_result((*info[:6], 0, *info[7:]))
    monkeypatch.setattr(os, "fstat", fstat_when_empty)
    code, err = cli(capsys, "leaderboard", "--results", out)
    assert_one_line(code, err, f"error: {out / 'runs.jsonl'} grew past 64 MiB while it was read, {TOO_LARGE}")


def test_a_run_never_grows_the_store_past_the_bounds_its_readers_hold(results, capsys):
    """A store of exactly 100,000 lines is read; before, a run appended the 100,001st and every command after,
    `run` and the leaderboard included, refused the store the toolkit had grown itself. Now the record is kept
    in its run folder, as on a full disk, and the store stays as it was, readable."""
    out, record = results
    write_store(out, *["{}"] * 99_999, record)
    before = (out / "runs.jsonl").read_bytes()
    code, err = cli(capsys, "-m", "tfn", "-d", "mosi", "-s", "2", *TINY, "--out", out)
    assert_one_line(code, err, f"{out / 'runs.jsonl'} holds 100,000 lines, and another would take it past 100,000",
                    "record.json: move the store away (the next append starts a new one), then run")
    assert (out / "runs.jsonl").read_bytes() == before
    (kept,) = (out / "runs").glob("*/record.json")
    assert json.loads(kept.read_text())["seed"] == 2
    assert cli(capsys, "leaderboard", "--results", out)[0] == 0


def test_an_append_fills_the_store_to_64_mib_and_not_one_byte_past(results):
    """Whole lines of 64 MiB less one record's bytes take that record (a store of exactly 64 MiB is read),
    and refuse the next: the reader refuses 64 MiB and one byte."""
    from mmsa_atsuko.results import append_record, read_records
    from mmsa_atsuko.results.store import StoreFull
    out, record = results
    line = json.dumps(record)                      # the store's line of it, as the first append wrote it
    assert (out / "runs.jsonl").read_text() == line + "\n"
    pad = (64 << 20) - 2 * (len(line) + 1) - 1     # a line over 16 MiB, passed over unread, and its newline
    write_store(out, line, "x" * pad)
    append_record(out, record)
    assert (out / "runs.jsonl").stat().st_size == 64 << 20 and len(read_records(out)) == 2
    with pytest.raises(StoreFull, match="holds 64 MiB of runs, and another would take it past 64 MiB"):
        append_record(out, record)
    assert (out / "runs.jsonl").stat().st_size == 64 << 20


@pytest.mark.parametrize("planted", ["named-pipe", "link-to-dev-zero"])
def test_a_store_that_is_no_regular_file_is_one_line(results, tmp_path, planted):
    """A named pipe blocked the leaderboard for good; a link to /dev/zero read 3.6 GB into a MemoryError."""
    out, _ = results
    (out / "runs.jsonl").unlink()
    os.mkfifo(out / "runs.jsonl") if planted == "named-pipe" else (out / "runs.jsonl").symlink_to("/dev/zero")
    done = subprocess.run([sys.executable, "run.py", "leaderboard", "--results", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, preexec_fn=limit_memory)
    assert done.returncode == 1 and done.stderr.strip() == (
        f"error: {out / 'runs.jsonl'} is not a regular file, and the store is a file of JSON lines: "
        "move it away, or choose another --results"), done.stderr[-2000:]


# ------------------------------------------------------------------------------------------
# leaderboard -o: a link, a device, a full disk
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["link", "device", "full-disk"])
def test_leaderboard_output_is_written_whole_and_never_through_a_link(results, victim, capsys, tmp_path,
                                                                      monkeypatch, case):
    """-o through a link rewrote the file it points at (here the victim's); -o /dev/full was an OSError
    traceback, and so was a full disk, after a partial write."""
    out, _ = results
    output = {"link": tmp_path / "table.md", "device": Path("/dev/full"), "full-disk": tmp_path / "table.md"}[case]
    if case == "link":
        output.symlink_to(victim / "victim.txt")
        says = f"-o {output} is a symbolic link"
    elif case == "device":
        if not output.exists():
            pytest.skip("no /dev/full here")
        says = "-o /dev/full is no regular file"
    else:
        def no_space(self, *args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")
        monkeypatch.setattr(Path, "write_bytes", no_space)
        says = f"-o {output} could not be written (No space left on device); choose another -o"
    code, err = cli(capsys, "leaderboard", "--results", out, "-o", output)
    assert_one_line(code, err, says)
    if case == "full-disk":
        assert sorted(os.listdir(tmp_path)) == ["results", "victim"]


# ------------------------------------------------------------------------------------------
# training: a non-finite loss, a last batch of one
# ------------------------------------------------------------------------------------------
def test_a_non_finite_loss_stops_the_run_in_one_line_naming_epoch_and_step(tmp_path, victim, capsys):
    out = tmp_path / "results"
    code, err = cli(capsys, "-m", "lmf", "-d", "mosi", "-s", "1", *TINY, "-c", "learning_rate=1e30", "--out", out)
    assert_one_line(code, err, "non-finite training loss at epoch 1, step ")
    assert store.read_records(out) == []           # `run` records finished runs only; the sweep records a failure


def test_a_last_batch_of_one_is_refused_before_training_for_batchnorm_models(tmp_path, capsys):
    from mmsa_atsuko.cache import synthetic_cache_dir
    from mmsa_atsuko.data import load_dataset
    from mmsa_atsuko.data.synthetic import ensure_synthetic
    path, _ = ensure_synthetic("mosi", synthetic_cache_dir(), size="small", aligned=False)
    n = len(load_dataset("mosi", feature_path=path).train)
    code, err = cli(capsys, "-m", "tfn", "-d", "mosi", "-s", "1", *TINY, "-c", f"batch_size={n - 1}",
                    "--out", tmp_path / "r")
    assert_one_line(code, err, f"the train split has {n} samples", f"batch_size {n - 1}")
    assert not list((tmp_path / "r").glob("runs/*"))


def test_an_mmsa_accumulation_that_would_never_step_is_refused_before_any_run_folder(tmp_path, capsys):
    """Small synthetic MOSI's train split is 6 batches of 16 (recipes.SMALL_SPLIT_SIZES): grad_accum 7 under MMSA's
    rule, which drops an epoch's last partial group, would train nothing and report the initial weights."""
    code, err = cli(capsys, "-m", "tfn", "-d", "mosi", "-s", "1", *TINY, "-c", "grad_accum_rule=mmsa",
                    "-c", "grad_accum=7", "--out", tmp_path / "r")
    assert_one_line(code, err, "tfn on mosi: grad_accum_rule mmsa drops",
                    "the train split's 96 samples make 6 batch(es) of 16, fewer than grad_accum 7",
                    "set its grad_accum to 6 or less")
    assert not list((tmp_path / "r").glob("runs/*"))


# ------------------------------------------------------------------------------------------
# hostile feature files
# ------------------------------------------------------------------------------------------
def test_features_of_1e30_are_warned_with_counts(tmp_path, caplog):
    from mmsa_atsuko.data import load_dataset
    from mmsa_atsuko.data.synthetic import write_synthetic
    path = write_synthetic("mosi", tmp_path / "mosi.pkl")
    with open(path, "rb") as f:
        data = pickle.load(f)                   # our own file: the plain unpickler is fine here
    data["train"]["audio"][0, 0, :3] = 1e30
    data["test"]["vision"][1, 0, 0] = -2e6
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=4)
    with caplog.at_level("WARNING", logger="mmsa_atsuko"):
        load_dataset("mosi", feature_path=path)
    warnings = [r.getMessage() for r in caplog.records if "above 1e+06" in r.getMessage()]
    assert len(warnings) == 2
    assert "train audio: 3 feature values" in warnings[0] and "largest 1e+30" in warnings[0]
    assert "test vision: 1 feature values" in warnings[1]


@pytest.mark.parametrize("value", [-1e300, 1e300])
def test_float64_features_past_float32_are_one_line(tmp_path, capsys, value):
    """A finite float64 past float32's range cast to -inf (then zeroed as a silent frame, and logged as
    one) or +inf (reported as a +inf the file does not hold)."""
    def change(split):
        split["audio"] = split["audio"].astype(np.float64)
        split["audio"][0, 0, 0] = value
    path = changed_copy(tmp_path, change)
    code, err = cli(capsys, "-m", "tfn", "-d", "mosi", "--feature-path", path, "-s", "1", "--preset", "small",
                    "--max-epochs", "1", "--quiet", "--out", tmp_path / "results")
    assert_one_line(code, err, f"{path}: split 'train', key 'audio': expected values float32 holds (at most "
                               f"3.403e+38 in magnitude), found 1 larger, first in sample 0")
    assert not (tmp_path / "results").exists()


def synthetic_mosi() -> tuple[Path, Path, dict]:
    """(the synthetic MOSI file, its BERT folder, that BERT's config.json)."""
    from mmsa_atsuko.cache import synthetic_cache_dir
    from mmsa_atsuko.data.synthetic import ensure_synthetic
    path, bert = ensure_synthetic("mosi", synthetic_cache_dir(), size="small", aligned=False)
    return Path(path), Path(bert), json.loads((Path(bert) / "config.json").read_text())


def changed_copy(tmp_path, change) -> Path:
    """A copy of the synthetic MOSI file with `change(split)` done to every split."""
    with open(synthetic_mosi()[0], "rb") as f:
        data = pickle.load(f)                   # our own file: the plain unpickler is fine here
    del data["__synthetic__"]                   # no longer the generator's content
    for split in ("train", "valid", "test"):
        change(data[split])
    with open(tmp_path / "ids.pkl", "wb") as f:
        pickle.dump(data, f, protocol=4)
    return tmp_path / "ids.pkl"


def set_id(row: int, value: int):
    """A change: the 4th token of the first sample gets `value` in row `row` of text_bert (0 ids, 2 segments)."""
    def change(split):
        split["text_bert"][0, row, 3] = value
    return change


def pad_text_to(length: int):
    """A change: text and text_bert padded with zeros to `length` tokens (every text stays as short)."""
    def change(split):
        short = split["text_bert"].shape[2]
        bert = np.zeros((*split["text_bert"].shape[:2], length), np.float32)
        bert[:, :, :short] = split["text_bert"]
        text = np.zeros((len(bert), length, split["text"].shape[2]), np.float32)
        text[:, :short] = split["text"]
        split["text_bert"], split["text"] = bert, text
    return change


NOT_MADE_FOR_IT = ": the file was not made for this BERT; give -c pretrained= the BERT it was made with"
BERT_IDS = {   # BERT's config.json -> (a change of every split, the model and its overrides, the line, its fix)
    "token_id": lambda b: (set_id(0, b["vocab_size"]), "self_mm", [],
                           f"text_bert holds token id {b['vocab_size']}, past the vocabulary of {b['vocab_size']} tokens",
                           NOT_MADE_FOR_IT),
    "segment_id": lambda b: (set_id(2, 2), "misa", [],
                             f"text_bert holds segment id 2, past the {b['type_vocab_size']} segment types",
                             NOT_MADE_FOR_IT),
    # No BERT of the family has more positions: the fix is shorter texts, or a model that reads no padding.
    "padded_past_positions": lambda b: (pad_text_to(b["max_position_embeddings"] + 1), "mult", ["use_bert=true"],
                                        f"text_bert is padded to {b['max_position_embeddings'] + 1} tokens, past the "
                                        f"{b['max_position_embeddings']} positions",
                                        f": make the file with at most {b['max_position_embeddings']} tokens per text "
                                        f"(extract --text-len {b['max_position_embeddings']} or less); or train "
                                        f"self_mm or misa, which read only the real tokens"),
}


@pytest.mark.parametrize("case", list(BERT_IDS))
def test_bert_ids_past_the_berts_tables_are_one_line_before_any_folder(tmp_path, victim, capsys, case):
    """A file's text_bert was checked to be whole and non-negative, never against the BERT that reads
    it: an IndexError (RuntimeError for positions) traceback from the first batch, a .partial folder left."""
    _, bert, facts = synthetic_mosi()
    change, model, overrides, line, fix = BERT_IDS[case](facts)
    path = changed_copy(tmp_path, change)
    out = tmp_path / "results"
    code, err = cli(capsys, "-m", model, "-d", "mosi", "--feature-path", path, "-s", "1", "--preset", "small",
                    "--max-epochs", "1", "--quiet", "-c", f"pretrained={bert}",
                    *[a for o in overrides for a in ("-c", o)], "--out", out)
    assert_one_line(code, err, f"{path}: split 'train': {line} of the BERT {bert}{fix}")
    assert not out.exists()


def test_a_model_that_trims_its_text_still_trains_on_a_file_padded_past_berts_positions(tmp_path, capsys):
    """Self-MM and MISA cut every batch to its longest text before BERT reads it: only real tokens need
    positions, so a file padded past them (its texts short) trains as before."""
    _, bert, facts = synthetic_mosi()
    path = changed_copy(tmp_path, pad_text_to(facts["max_position_embeddings"] + 1))
    code, err = cli(capsys, "-m", "self_mm", "-d", "mosi", "--feature-path", path, "-s", "1", "--preset", "small",
                    "--max-epochs", "1", "--quiet", "-c", f"pretrained={bert}", "--out", tmp_path / "results")
    assert code == 0, err
    assert len(store.read_records(tmp_path / "results")) == 1


def test_predict_refuses_segment_ids_past_the_runs_bert_in_one_line(tmp_path, capsys):
    """predict checked token ids against the card's vocabulary, never segment ids: IndexError traceback."""
    (record,) = mmsa_atsuko.run("self_mm", "mosi", seeds=[1111], synthetic=True, preset="small", max_epochs=1,
                                out=tmp_path / "results", quiet=True)
    _, _, facts = synthetic_mosi()
    path = changed_copy(tmp_path, set_id(2, 5))
    code, err = cli(capsys, "predict", "--run", record["run_id"], "--results", tmp_path / "results",
                    "--features", path, "--out", tmp_path / "pred")
    assert_one_line(code, err, f"{path}: split 'train': text_bert holds segment id 5, past the "
                               f"{facts['type_vocab_size']} segment types of the BERT",
                    "which the run reads: the features were not made for its BERT")
    assert not (tmp_path / "pred").exists()


def test_a_mintrec_field_over_128_kib_is_one_line(tmp_path, capsys):
    from mmsa_atsuko.data.synthetic import write_synthetic
    folder = write_synthetic("mintrec", tmp_path / "MIntRec")
    lines = (folder / "train.tsv").read_text(encoding="utf-8").splitlines()
    season, episode, clip, _text, label = lines[1].split("\t")
    lines[1] = "\t".join([season, episode, clip, "x" * (200 * 1024), label])
    (folder / "train.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, err = cli(capsys, "-m", "tfn", "-d", "mintrec", "--feature-path", folder, "-s", "1", "--preset", "small",
                    "--max-epochs", "1", "--quiet", "-c", f"pretrained={folder / 'bert-synthetic-en'}",
                    "--out", tmp_path / "r")
    assert_one_line(code, err, "train.tsv", "line 2")


# ------------------------------------------------------------------------------------------
# predict: a run folder from anywhere (model.json), an output folder with things planted in it
# ------------------------------------------------------------------------------------------
def edit_card(run_dir: Path, change=None, text: str | None = None) -> None:
    """Rewrite run_dir/model.json: `change(card)` on the parsed card, or `text` as it is."""
    path = run_dir / "model.json"
    if text is None:
        card = json.loads(path.read_text())
        change(card)
        text = json.dumps(card)
    path.write_text(text)


def predict(capsys, run_dir, record, out, *extra) -> tuple[int, str]:
    return cli(capsys, "predict", "--checkpoint", run_dir, "--features", record["data_path"], "--out", out, *extra)


@pytest.fixture
def never_built_for_real(monkeypatch):
    """The build_model of predict and load_run (training/checked_model.py), refusing any build off
    the meta device. Before, the model a card or record described was built first: 4.6 GB and 20 s
    for the 'larger' card below, 8.5 TB tried for 'terabytes'; this way a regression fails here
    without allocating any of it."""
    from mmsa_atsuko.registry import build_model as real

    def guarded(*args, **kwargs):
        if torch.empty(0).device.type != "meta":
            raise AssertionError("the model the card describes was built before it was compared with best.pt")
        return real(*args, **kwargs)

    # Where predict and load_run build: raising=True, so a rename there fails this guard instead of voiding it.
    monkeypatch.setattr("mmsa_atsuko.training.checked_model.build_model", guarded)


@pytest.mark.parametrize("entry", ["predictions.csv", "predictions.json", "features.pkl", "features.skipped.txt"])
def test_predict_never_writes_through_a_planted_link(results, victim, capsys, tmp_path, entry):
    out, record = results
    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / entry).symlink_to(victim / "victim.txt")
    if entry.startswith("predictions."):
        code, err = predict(capsys, out / record["run_dir"], record, pred)
    else:                                    # what --videos writes before it predicts
        (tmp_path / "videos").mkdir()
        (tmp_path / "transcripts.csv").write_text("id,text\na,hello\n")
        code, err = cli(capsys, "predict", "--checkpoint", out / record["run_dir"], "--videos", tmp_path / "videos",
                        "--transcripts", tmp_path / "transcripts.csv", "--out", pred)
    assert_one_line(code, err, f"{pred / entry} is a symbolic link")


@pytest.mark.parametrize("where", ["a file", "a folder at predictions.csv"])
def test_predict_refuses_an_output_it_cannot_write_before_any_work(results, capsys, tmp_path, monkeypatch, where):
    """--out naming a file was a FileExistsError traceback, once every prediction was computed."""
    import mmsa_atsuko.predict.checkpoint as predict_module
    out, record = results
    target = tmp_path / "afile"
    if where == "a file":
        target.write_text("mine\n")
    else:
        (target / "predictions.csv").mkdir(parents=True)
    monkeypatch.setattr(predict_module, "load_checkpoint", lambda *_: pytest.fail("--out was checked after loading"))
    code, err = predict(capsys, out / record["run_dir"], record, target)
    assert_one_line(code, err, "is a file, not a folder" if where == "a file" else "is a folder where the toolkit "
                    "writes a file")


def test_predictions_are_written_whole_and_beside_what_is_there(results, capsys, tmp_path):
    out, record = results
    code, err = predict(capsys, out / record["run_dir"], record, tmp_path / "pred")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "pred").iterdir()) == ["predictions.csv", "predictions.json"]  # no temporary


CARD_SIZES = {   # config changes that size another model, and the line
    "larger": ({"post_fusion_dim": 4000, "hidden_dims": [64, 64, 64], "text_out": 64},
               "in the model the card describes"),
    "terabytes": ({"hidden_dims": [128, 128, 128], "text_out": 128, "post_fusion_dim": 10 ** 6},
                  "post_fusion_dim is 1000000, more than the"),
    "huge_integer": ({"post_fusion_dim": 10 ** 40}, "post_fusion_dim is a huge integer, more than the"),
}


@pytest.mark.parametrize("case", list(CARD_SIZES))
def test_a_card_sizing_another_model_is_refused_before_it_is_built(results, capsys, tmp_path, never_built_for_real,
                                                                    case):
    out, record = results
    change, needle = CARD_SIZES[case]
    edit_card(out / record["run_dir"], lambda card: card["config"].update(change))
    code, err = predict(capsys, out / record["run_dir"], record, tmp_path / "pred")
    assert_one_line(code, err, needle)
    assert not (tmp_path / "pred").exists()


def repeat_values(run_dir: Path, change: dict, shared: int) -> None:
    """Size the card's model by `change` and write a best.pt of exactly its tensor shapes, each float
    tensor a stride-0 view of one value: of a storage of its own (`shared` 0), or of one storage of
    `shared` values that all of them share. torch.save keeps the strides, so the file stays a few KB
    whatever the shapes say. BatchNorm's step counts (int64 scalars) get a storage each."""
    from easydict import EasyDict

    from mmsa_atsuko.registry import build_model
    from mmsa_atsuko.training.model_card import spec_from_card
    edit_card(run_dir, lambda card: card["config"].update(change))
    card = json.loads((run_dir / "model.json").read_text())
    with torch.device("meta"):
        shapes = build_model(card["model"], EasyDict(card["config"]), spec_from_card(card)).state_dict()
    storage = torch.zeros(shared)

    def view(t):
        if t.dtype != torch.float32:
            return torch.zeros(t.shape, dtype=t.dtype)
        return (storage if shared else torch.zeros(1))[:1].expand(t.shape)
    torch.save({k: view(t) for k, t in shapes.items()}, run_dir / "best.pt")
    assert (run_dir / "best.pt").stat().st_size < 64 << 10


REPEATED = {   # -> the card's change, how many values best.pt stores, the line
    # 34 tensors in tfn's state dict, each a storage of one value; 40000 widths ask 6.7 GB
    "stride_0": ({"post_fusion_dim": 40_000}, 0, "post_fusion_dim is 40000, more than the 34 values of its best.pt"),
    # every width within the values stored (1000 shared, and 2 BatchNorm step counts), but (1000 + 1) ** 3
    # inputs to the fusion layer: 16 GB
    "one_storage": ({"hidden_dims": [1000, 1000, 1000], "text_out": 1000, "post_fusion_dim": 4}, 1000,
                    "beside the 1,002 that"),
}


@pytest.mark.parametrize("case", list(REPEATED))
def test_a_best_pt_whose_tensors_repeat_their_values_is_refused_before_it_is_built(results, capsys, tmp_path,
                                                                                   never_built_for_real, case):
    """A tensor's shape is no measure of what best.pt holds: its numel summed over stride-0 views let a
    10 KB file pass every size check, and predict built the model its card described (6.7 GB, 30 s)."""
    out, record = results
    change, shared, needle = REPEATED[case]
    repeat_values(out / record["run_dir"], change, shared)
    code, err = predict(capsys, out / record["run_dir"], record, tmp_path / "pred")
    assert_one_line(code, err, needle)
    assert not (tmp_path / "pred").exists()


RECORD_SIZES = {   # a runs.jsonl record whose config sizes another model, and the line
    "larger": ({"post_fusion_dim": 4000, "hidden_dims": [64, 64, 64], "text_out": 64},
               "in the model the record describes"),
    "terabytes": ({"hidden_dims": [128, 128, 128], "text_out": 128, "post_fusion_dim": 10 ** 6},
                  "post_fusion_dim is 1000000, more than the"),
    "huge_integer": ({"post_fusion_dim": 10 ** 40}, "post_fusion_dim is a huge integer, more than the"),
    "meaningless": ({"text_out": -5}, "config: text_out must be at least 1, got -5"),
}


@pytest.mark.parametrize("command", ["explain", "robustness"])
@pytest.mark.parametrize("case", list(RECORD_SIZES))
def test_a_record_sizing_another_model_is_refused_before_it_is_built(results, capsys, never_built_for_real,
                                                                      command, case):
    """load_run (explain, robustness, tsne) built the model a runs.jsonl record's config describes,
    then loaded best.pt: post_fusion_dim 1000000 tried terabytes. It goes through predict's checks now. explain
    refuses this record (a tfn run) from its model's name, before it reads the config or loads anything."""
    out, record = results
    change, needle = RECORD_SIZES[case]
    if command == "explain":
        needle = "is model 'tfn', not atsuko"
    lines = (out / "runs.jsonl").read_text().splitlines()
    edited = [json.loads(line) for line in lines]
    for r in edited:
        if r.get("run_id") == record["run_id"]:
            r["config"].update(change)
    (out / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in edited))
    extra = {"explain": ["--out", str(out / "explained")], "robustness": []}[command]
    code, err = cli(capsys, command, "--run", record["run_id"], "--results", out, *extra)
    assert_one_line(code, err, f"run {record['run_id']}", needle)
    assert len(err) < 600


CARD_VALUES = {   # config values that pass no check of a training run's config, and the line
    "text_out=-5": ({"text_out": -5}, "config: text_out must be at least 1, got -5"),
    "dropouts[1]=2": ({"dropouts": [0.3, 2.0, 0.3, 0.5]}, "config: dropouts[1] must be in [0, 1)"),
    "text_out=abc": ({"text_out": "abc"}, "config: text_out must be an int"),
    "batch_size=0": ({"batch_size": 0}, "config: batch_size must be at least 1, got 0"),
    "batch_size=-1": ({"batch_size": -1}, "config: batch_size must be at least 1, got -1"),
    "eval_batch_size=0": ({"eval_batch_size": 0}, "config: eval_batch_size must be null or at least 1, got 0"),
    "output_range": ({"output_range": [3.0, -3.0]}, "config: output_range must be increasing"),
    "unknown_key": ({"evil": 1}, "config: unknown config key 'evil'"),
    "long_string": ({"temporal_mean": "x" * 100_000}, "config: temporal_mean must be one of padded, valid"),
}


@pytest.mark.parametrize("case", list(CARD_VALUES))
def test_a_card_of_meaningless_values_is_one_line(results, capsys, tmp_path, never_built_for_real, case):
    out, record = results
    change, needle = CARD_VALUES[case]
    edit_card(out / record["run_dir"], lambda card: card["config"].update(change))
    code, err = predict(capsys, out / record["run_dir"], record, tmp_path / "pred")
    assert_one_line(code, err, "model.json " + needle)
    assert len(err) < 600


def _set(path: str, value):
    def change(card):
        *parents, last = path.split(".")
        for key in parents:
            card = card[key]
        card[last] = value
    return change


UNREAD_SOURCE = "model_source must be null or a model source record (path, sha256, files), got"
MALFORMED = {   # -> (a change of the card, or its whole text), the line
    "no_spec": (lambda card: card.pop("spec"), "has no spec"),
    "spec_extra_key": (_set("spec.evil", 1), "spec has an unknown field 'evil'"),
    "spec_wrong_type": (_set("spec.num_classes", "1"), "spec.num_classes must be a positive integer"),
    "config_key_missing": (lambda card: card["config"].pop("text_out"), "lacks the tfn key(s) text_out"),
    "config_not_a_mapping": (_set("config", [1]), "config must be an object"),
    "dims_disagree": (_set("feature_dims.audio", 6), "feature_dims and spec.feature_dims differ"),
    "model_traversal": (_set("model", "../../x"), "unknown model '../../x'"),
    "model_source_files": (_set("model_source", {"path": "m.py", "sha256": "a", "files": {"m.py": 1}}), UNREAD_SOURCE),
    # strings, but no sha256 (what predict compares with today's files): user_models.source.recorded_files reads none
    "model_source_short_digests": (_set("model_source", {"path": "m.py", "sha256": "a" * 10,
                                                         "files": {"m.py": "b" * 10}}), UNREAD_SOURCE),
    "model_source_upper_hex": (_set("model_source", {"path": "m.py", "sha256": "A" * 64, "files": {"m.py": "A" * 64}}),
                               UNREAD_SOURCE),
    "model_source_no_files": (_set("model_source", {"path": "m.py", "sha256": "a" * 64, "files": {}}), UNREAD_SOURCE),
    "a_list": ("[1]", "holds a JSON array, not a JSON object"),
    "deep_nesting": ("[" * 200_000, "nests deeper than a JSON reader goes"),
    "huge_integer": ('{"card_version": 1' + "0" * 5000 + "}", "is not valid JSON"),
    "oversized": (_set("data", "x" * (2 << 20)), "is larger than 1024 KiB"),
    "not_utf8": (b'{"card_version": 1, "model": "\xff"}', "is not valid JSON"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_card_is_one_line(results, capsys, tmp_path, case):
    out, record = results
    change, needle = MALFORMED[case]
    run_dir = out / record["run_dir"]
    if isinstance(change, bytes):
        (run_dir / "model.json").write_bytes(change)
    else:
        edit_card(run_dir, *((None, change) if isinstance(change, str) else (change,)))
    code, err = predict(capsys, run_dir, record, tmp_path / "pred")
    assert_one_line(code, err, f"{run_dir / 'model.json'}", needle)
    assert len(err) < 600 and not (tmp_path / "pred").exists()


def test_a_card_of_a_thousand_layers_stops_its_build_early(tmp_path, capsys, never_built_for_real):
    """MulT's layer count sizes no tensor of the weights: on the meta device the build costs nothing
    per value but a Python object per module, so it is stopped once it registers far more tensors
    than best.pt holds (here 20,000 layers in each of 6 stacks: minutes and gigabytes)."""
    data = make_dataset()
    run_dir = tmp_path / "run"
    write_run_folder(run_dir, "mult", data, load_config("mult", "mosi", preset="small"))
    tensors = len(torch.load(run_dir / "best.pt", weights_only=True))
    edit_card(run_dir, _set("config.nlevels", 20_000))
    code, err = cli(capsys, "predict", "--checkpoint", run_dir, "--features", tmp_path / "none.pkl",
                    "--out", tmp_path / "pred")
    assert_one_line(code, err, "more than", f"best.pt holds {tensors} tensors")


# ------------------------------------------------------------------------------------------
# a BERT a config or model.json names
# ------------------------------------------------------------------------------------------
def test_a_synthetic_bert_name_stays_inside_the_cache(tmp_path, monkeypatch):
    """`synthetic:` names a folder of the synthetic cache; `..` climbed out of it."""
    from mmsa_atsuko.models.common.bert import resolve_bert_path
    monkeypatch.setenv("MMSA_ATSUKO_CACHE", str(tmp_path / "cache"))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "config.json").write_text("{}")
    (outside / "model.safetensors").write_bytes(b"")
    (tmp_path / "cache" / "synthetic").mkdir(parents=True)
    with pytest.raises(mmsa_atsuko.errors.UsageError, match="leads outside the synthetic cache"):
        resolve_bert_path("synthetic:../../outside")
    (tmp_path / "cache" / "synthetic" / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(mmsa_atsuko.errors.UsageError, match="leads outside the synthetic cache"):
        resolve_bert_path("synthetic:link")


def test_a_bert_folder_with_code_of_its_own_is_refused_without_asking(tmp_path, tiny_bert, monkeypatch):
    """A config.json whose auto_map names the folder's own Python: transformers, unless told
    trust_remote_code=False, asks on the terminal whether to run it (and runs it on a 'y')."""
    from mmsa_atsuko.data.extract.text import encode_texts
    folder = tmp_path / "bert"
    shutil.copytree(tiny_bert, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="ownmodel", auto_map={"AutoConfig": "own.OwnConfig", "AutoTokenizer": ["own.Own", None]})
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "own.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').close()\n")
    asked = []
    monkeypatch.setattr("builtins.input", lambda prompt="": asked.append(prompt) or "n")
    with pytest.raises(mmsa_atsuko.errors.DataError, match="has no tokenizer transformers can load"):
        encode_texts(["hello"], str(folder), 8)
    assert asked == [] and not (tmp_path / "ran").exists()
