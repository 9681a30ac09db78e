"""Sweeps: expansion, resume after SIGKILL, failed runs, the sweep lock, the Ray backend, CLI errors."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import KILL_THE_SWEEP_AFTER_EPOCH_1, SPOILS, die_before_last_pt_of_epoch, spoil_resumable_folder
from mmsa_atsuko.data.conditions import make_condition
from mmsa_atsuko.errors import DataError, MissingDataError, ToolkitError, UsageError
from mmsa_atsuko.results import identity, latest_by_identity, read_records
from mmsa_atsuko.sweep import LocalBackend, SweepLock, expand, sweep

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(synthetic=True, preset="small")


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def store_lines(out):
    path = Path(out) / "runs.jsonl"
    return path.read_bytes() if path.exists() else b""


def test_expand_file_filters_and_precedence(tmp_path):
    f = write(tmp_path / "s.yaml", """
seeds: [1, 2]
preset: small
config: {learning_rate: 0.01}
experiments:
  - {name: a, models: [tfn, lmf], datasets: [mosi], aligned: [false, true], config: {batch_size: 8}}
  - {name: b, models: tfn, datasets: [sims], seeds: [7], max_epochs: 2}
""")
    got = [(name, s.model, s.dataset, s.aligned, tuple(seeds), s.preset, s.max_epochs, s.overrides)
           for name, s, seeds in expand(f)]
    both = (("learning_rate", 0.01), ("batch_size", 8))
    assert got == [
        ("a", "tfn", "mosi", False, (1, 2), "small", None, both), ("a", "lmf", "mosi", False, (1, 2), "small", None, both),
        ("a", "tfn", "mosi", True, (1, 2), "small", None, both), ("a", "lmf", "mosi", True, (1, 2), "small", None, both),
        ("b", "tfn", "sims", False, (7,), "small", 2, (("learning_rate", 0.01),)),
    ]
    # the command line filters a file and wins over it
    got = [(s.model, s.dataset, s.aligned, tuple(seeds), s.max_epochs, s.overrides[-1])
           for _, s, seeds in expand(f, models=["tfn"], aligned=True, seeds=[5], max_epochs=3, config=["lr_x=1"])]
    assert got == [("tfn", "mosi", True, (5,), 3, ("lr_x", 1))]
    with pytest.raises(UsageError, match="has no models mult"):
        expand(f, models=["mult"])


@pytest.mark.parametrize("text, message", [
    ("experiments: [{models: [tfn], datasets: [sims], aligned: true}]", "sims has no aligned setting"),
    ("experiments: [{modelz: [tfn], datasets: [sims]}]", "unknown key(s) modelz"),
    ("seed: [1]\nexperiments: [{models: [tfn], datasets: [sims]}]", "unknown key(s) seed"),
    ("experiments: [{models: [tfn], datasets: [simz]}]", "unknown dataset 'simz'"),
    ("experiments: []", "'experiments' must be a non-empty list"),
    ("experiments: [{models: [tfn], datasets: [sims], seeds: [a]}]", "bad.yaml experiment 1: seeds must be integers"),
    # A file's config is blamed on the file, never on the command line's -c.
    ("experiments: [{name: e, models: [tfn], datasets: [sims], config: {nonsense: 1}}]",
     "bad.yaml experiment 'e': config, for tfn: unknown config key 'nonsense'"),
    ("config: {learning_rate: .nan}\nexperiments: [{name: e, models: [tfn], datasets: [sims]}]",
     "bad.yaml: config, for tfn: learning_rate must be a finite number, got nan"),
    ("config: {lambda_ent: 0.5}\nexperiments: [{name: e, models: [atsuko, tfn], datasets: [sims]}]",
     "bad.yaml: config, for tfn: unknown config key 'lambda_ent'"),
    # A TypeError traceback when the data was looked for (after the plan), and a ValueError one for the NUL byte.
    ("data_root: 5\nexperiments: [{models: [tfn], datasets: [mosi]}]",
     "bad.yaml: data_root must be the path of a folder (a non-empty string without a NUL byte), got '5'"),
    ("data_root: [a, b]\nexperiments: [{models: [tfn], datasets: [mosi]}]", "data_root must be the path of a folder"),
    ('data_root: "/tmp/\\0x"\nexperiments: [{models: [tfn], datasets: [mosi]}]',
     "data_root must be the path of a folder (a non-empty string without a NUL byte), got '/tmp/\\x00x'"),
])
def test_bad_sweep_files_are_one_line_usage_errors(tmp_path, text, message):
    with pytest.raises(UsageError) as error:
        expand(write(tmp_path / "bad.yaml", text))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_latest_by_identity_prefers_ok_then_the_latest_failure():
    base = {"model": "tfn", "dataset": "mosi", "aligned": False, "seed": 1, "config_hash": "h", "data": "d"}
    runs = [dict(base, run_id="f1", status="failed"), dict(base, run_id="ok", status="ok"),
            dict(base, run_id="f2", status="failed"), dict(base, seed=2, run_id="g1", status="failed"),
            dict(base, seed=2, run_id="g2", status="failed"), {"run_id": "not a run"}]
    chosen = {key[3]: r["run_id"] for key, r in latest_by_identity(runs).items()}
    assert chosen == {1: "ok", 2: "g2"}


def _children(pid):
    """Live (non-zombie) processes whose parent is `pid`, with their command lines."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found[int(entry.name)] = cmd
    return found


def _alive(pid):
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_claiming_a_partial_folder_renamed_away_meanwhile_leaves_nothing(tmp_path, monkeypatch):
    # A worker lists `.X.partial`; another renames it to its final name just before the first takes its
    # lock. FileLock made the folder again, holding only its lock file, and no later start removed it
    # (a CI run of the test below found one such folder).
    from filelock import FileLock

    from mmsa_atsuko.run_folders import claim
    runs = tmp_path / "runs"
    listed = runs / ".tfn-mosi-s1-20261206T040109-baf67b.partial"
    listed.mkdir(parents=True)
    (listed / "run.json").write_text("{}")
    acquire = FileLock.acquire

    def renamed_first(lock, *args, **kwargs):        # the other process's rename, at the worst moment
        if listed.exists():
            listed.rename(runs / listed.name[1:-len(".partial")])
        return acquire(lock, *args, **kwargs)
    monkeypatch.setattr(FileLock, "acquire", renamed_first)
    assert claim(listed) is None
    assert sorted(p.name for p in runs.iterdir()) == [listed.name[1:-len(".partial")]]
    monkeypatch.undo()
    # A folder that stays where it was listed is claimed as before, an old empty one included.
    for name in (".lmf-mosi-s1-20261206T040109-ef375f.partial", ".b.partial"):
        (runs / name).mkdir()
        lock = claim(runs / name)
        assert lock is not None and lock.is_locked
        lock.release()


def test_a_dead_workers_folder_is_renamed_under_its_lock_while_run_py_looks_for_leftovers(tmp_path, monkeypatch):
    """The driver renames a dead worker's `.partial` folder to `.failed`; a run.py of the same identity starting at
    that moment looks for its leftovers. Before, the rename took no lock: run.py removed the folder between the
    driver's look and its rename, and the driver stopped on FileNotFoundError (a traceback). Now run.py finds the
    folder held, leaves it, and the driver keeps it as `.failed`."""
    import threading
    from datetime import datetime, timezone

    from mmsa_atsuko import run_folders
    from mmsa_atsuko.sweep.execute import failure
    from mmsa_atsuko.sweep.plan import PlannedRun
    from mmsa_atsuko.sweep.sweep_file import Setting
    monkeypatch.setattr(run_folders.dead, "LOOK_HOLD_S", 0.2)   # where take_leftovers reads it
    run = PlannedRun(Setting("tfn", "mosi", False, preset="small"), seed=1, config_hash="c0ffee",
                     data_id="synthetic:standard")
    run_id = "tfn-mosi-s1-20261207T000000-abcdef"
    work = run_folders.partial_dir(tmp_path, run_id)
    work.mkdir(parents=True)
    (work / "run.json").write_text(json.dumps({"identity": list(run.identity)}))
    (work / "train.log").write_text("epoch 1\n")
    errors, real_rename = [], Path.rename

    def look_for_leftovers():            # what run.py of this identity does as it starts, without --resume
        try:
            run_folders.take_leftovers(tmp_path, run.identity, resume=False)
        except Exception as error:
            errors.append(error)

    def rename_once_run_py_looked(self, target):
        if self == work:                 # the driver's rename, paused until run.py's look is over
            other = threading.Thread(target=look_for_leftovers)
            other.start()
            other.join(timeout=30)
        return real_rename(self, target)
    monkeypatch.setattr(Path, "rename", rename_once_run_py_looked)
    record = failure(run, run_id, tmp_path, "cpu", "worker process died (exit code -9)", datetime.now(timezone.utc),
                     1.0, worker_died=True)
    failed = tmp_path / "runs" / f"{run_id}.failed"
    assert record["status"] == "failed" and errors == [] and not work.exists()
    assert sorted(p.name for p in failed.iterdir()) == ["error.txt", "run.json", "train.log"]
    assert (failed / "train.log").read_text() == "epoch 1\n"


def test_a_dead_workers_folder_removed_by_run_py_first_is_one_log_line(tmp_path, monkeypatch, caplog):
    """run.py of the same identity removed the folder between the driver's look at it and its rename: the driver
    says so in one line and keeps error.txt alone (before: FileNotFoundError, a traceback)."""
    from datetime import datetime, timezone

    from mmsa_atsuko import run_folders
    from mmsa_atsuko.sweep.execute import failure
    from mmsa_atsuko.sweep.plan import PlannedRun
    from mmsa_atsuko.sweep.sweep_file import Setting
    run = PlannedRun(Setting("tfn", "mosi", False, preset="small"), seed=1, config_hash="c0ffee",
                     data_id="synthetic:standard")
    run_id = "tfn-mosi-s1-20261207T000000-abcdef"
    work = run_folders.partial_dir(tmp_path, run_id)
    work.mkdir(parents=True)
    (work / "train.log").write_text("epoch 1\n")
    real_exists = Path.exists

    def removed_after_the_look(self, *args, **kwargs):
        found = real_exists(self, *args, **kwargs)
        if self == work and found:
            run_folders.remove(work)
        return found
    monkeypatch.setattr(Path, "exists", removed_after_the_look)
    record = failure(run, run_id, tmp_path, "cpu", "worker process died (exit code -9)", datetime.now(timezone.utc),
                     1.0, worker_died=True)
    failed = tmp_path / "runs" / f"{run_id}.failed"
    assert record["status"] == "failed" and [p.name for p in failed.iterdir()] == ["error.txt"]
    assert [r.getMessage() for r in caplog.records] == [
        f"{work} was taken by another process before it could become {failed}, which holds error.txt alone"]


def test_a_failed_runs_exit_code_is_its_exceptions_class_not_its_name(tmp_path):
    """A failed run's record says the code its error exits with (`exit_code`), decided where the exception was
    caught; the command's line takes it from there. Before, the kind was found again by the type name in the
    record's text, so a user's own exception class named ModelContractError (no UsageError) exited 2."""
    from datetime import datetime, timezone
    from types import SimpleNamespace

    from mmsa_atsuko.errors import ModelContractError
    from mmsa_atsuko.sweep.driver import Summary
    from mmsa_atsuko.sweep.execute import failure
    from mmsa_atsuko.sweep.packed import failed_runs_error
    from mmsa_atsuko.sweep.plan import PlannedRun
    from mmsa_atsuko.sweep.sweep_file import Setting

    class UsersModelContractError(Exception):        # a user's model file's own class, of the toolkit's name
        pass
    UsersModelContractError.__name__ = "ModelContractError"
    run = PlannedRun(Setting("tfn", "mosi", False, preset="small"), seed=1, config_hash="c0ffee",
                     data_id="synthetic:standard")

    def failed_with(error, n):
        record = failure(run, f"tfn-mosi-s1-20261207T000000-00000{n}", tmp_path, "cpu", error,
                         datetime.now(timezone.utc), 1.0)
        raised = failed_runs_error(Summary(SimpleNamespace(runs=[run]), [record], 0.0), tmp_path, "")
        return record, raised

    users, raised = failed_with(UsersModelContractError("my check"), 1)
    assert users["error"] == "ModelContractError: my check"          # the same text as the toolkit's would be
    assert users["exit_code"] == 1 and type(raised) is ToolkitError and raised.exit_code == 1
    toolkits, raised = failed_with(ModelContractError("tfn.forward: pred is (16, 1)"), 2)
    assert toolkits["exit_code"] == 2 and isinstance(raised, UsageError) and raised.exit_code == 2
    died, raised = failed_with("worker process died (exit code -9)", 3)
    assert died["exit_code"] == 1 and raised.exit_code == 1
    # A record of an older toolkit's worker names no exit_code: 1, whatever its text says.
    del toolkits["exit_code"]
    older = failed_runs_error(Summary(SimpleNamespace(runs=[run]), [toolkits], 0.0), tmp_path, "")
    assert type(older) is ToolkitError and "ModelContractError: tfn.forward" in str(older)


def test_the_plan_line_counts_cut_short_runs_locking_only_the_planned_runs_folders(tmp_path, monkeypatch):
    """`cut_short` (the plan line's count of runs cut short) locks only the dead folders that name a run of the
    plan; before, it locked every dead folder of the results folder, other runs' too, each for a moment."""
    from types import SimpleNamespace

    from mmsa_atsuko import run_folders
    from mmsa_atsuko.sweep.plan_lines import cut_short
    from mmsa_atsuko.sweep.plan import PlannedRun
    from mmsa_atsuko.sweep.sweep_file import Setting
    planned, other, not_cut = (PlannedRun(Setting("tfn", "mosi", False, preset="small"), seed=seed, config_hash="c0ffee",
                                          data_id="synthetic:standard") for seed in (1, 2, 3))
    folders = {}
    for run, last_pt in ((planned, True), (other, True), (not_cut, False)):
        folders[run.seed] = folder = run_folders.partial_dir(tmp_path, f"tfn-mosi-s{run.seed}-20261207T000000-abcdef")
        folder.mkdir(parents=True)
        (folder / "run.json").write_text(json.dumps({"identity": list(run.identity)}))
        if last_pt:
            (folder / "last.pt").write_bytes(b"state")
    claimed, real_claim = [], run_folders.claim
    monkeypatch.setattr(run_folders.dead, "claim",      # where resume_points (unfinished_runs) calls it
                        lambda folder, wait=0.0: claimed.append(folder) or real_claim(folder, wait))
    line = cut_short(SimpleNamespace(todo=[planned, not_cut]), tmp_path, resume=True)
    assert line == ", 1 of them cut short earlier, to continue from their last finished epoch (--resume)"
    assert sorted(claimed) == sorted([folders[1], folders[3]])        # seed 2's folder is another run's
    claimed.clear()
    assert cut_short(SimpleNamespace(todo=[]), tmp_path, resume=True) == "" and claimed == []


def test_killed_sweep_resumes_with_every_run_recorded_once(tmp_path):
    out = tmp_path / "out"
    lists = ["-m", "tfn", "lmf", "-d", "mosi", "sims", "-s", "1", "2"]
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "sweep", *lists, "--synthetic", "--preset",
                             "small", "--jobs", "2", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    deadline = time.time() + 90
    # Kill once two runs are recorded and another is half-way (its work folder exists).
    while store_lines(out).count(b"\n") < 2 or not list((out / "runs").glob(".*.partial")):
        assert proc.poll() is None, f"sweep ended before it could be killed: {proc.stderr.read().decode()}"
        assert time.time() < deadline
        time.sleep(0.01)
    workers = [pid for pid, cmd in _children(proc.pid).items() if "spawn_main" in cmd]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    before = store_lines(out)
    n_before = before.count(b"\n")
    assert 2 <= n_before < 8 and len(workers) == 2
    deadline = time.time() + 20
    while any(_alive(pid) for pid in workers):          # workers die with their driver
        assert time.time() < deadline, "sweep workers outlived the killed driver"
        time.sleep(0.05)

    lines = []
    summary = sweep(None, out=out, models=["tfn", "lmf"], datasets=["mosi", "sims"], seeds=[1, 2],
                    echo=lines.append, **SMALL)
    after = store_lines(out)
    assert after.startswith(before)                    # nothing recorded was rewritten
    records = [json.loads(line) for line in after.splitlines()]
    ids = [identity(r) for r in records]
    assert len(ids) == len(set(ids)) == 8               # every run exactly once
    assert {(i[0], i[1], i[3]) for i in ids} == {(m, d, s) for m in ("tfn", "lmf") for d in ("mosi", "sims")
                                                 for s in (1, 2)}
    assert all(r["status"] == "ok" and Path(r["run_dir"]).name == r["run_id"] for r in records)
    assert summary.plan.done == n_before and len(summary.records) == 8 - n_before
    # the killed runs' work folders went when they started again (20 kills used to leave 22)
    assert not list((out / "runs").glob(".*.partial"))
    # The killed sweep generated both: the line says they are cached (it said 'generated on its first use' again).
    assert lines[0] == ("planning the sweep: reading the configs of 4 settings and the data of mosi synthetic "
                        "(cached), sims synthetic (cached)")
    assert f"{n_before} already recorded" in lines[1] and "ETA" in lines[2]
    # resuming again runs nothing
    again = sweep(None, out=out, models=["tfn", "lmf"], datasets=["mosi", "sims"], seeds=[1, 2],
                  echo=lambda _: None, **SMALL)
    assert again.records == [] and store_lines(out) == after


def test_failed_run_is_recorded_skipped_and_retried(tmp_path):
    f = write(tmp_path / "s.yaml", """
synthetic: true
preset: small
seeds: [3]
experiments:
  - {name: fine, models: [tfn], datasets: [mosi]}
  - {name: again, models: [tfn], datasets: [mosi]}
  - {name: diverges, models: [lmf], datasets: [mosi], config: {learning_rate: 1.0e+30}}
""")
    out = tmp_path / "out"
    summary = sweep(f, out=out, echo=lambda _: None)
    assert len(summary.plan.runs) == 2                  # the repeated experiment is the same run
    (ok,) = [r for r in summary.records if r["status"] == "ok"]
    (failed,) = summary.failed
    assert ok["model"] == "tfn" and failed["model"] == "lmf" and failed["config"]["learning_rate"] == 1e30
    assert failed["error"].startswith("TrainingError: non-finite training loss at epoch 1, step ")
    assert failed["run_dir"].endswith(".failed") and "Traceback" in (out / failed["run_dir"] / "error.txt").read_text()
    assert not list((out / "runs").glob(".*.partial"))
    assert read_records(out) == summary.records

    lines = []
    dry = sweep(f, out=out, dry_run=True, echo=lines.append)
    assert (dry.done, dry.failed_skipped, dry.todo) == (1, 1, [])
    assert "1 failed before and skipped" in lines[1]
    skipped = sweep(f, out=out, echo=lambda _: None)
    assert skipped.records == []

    retried = sweep(f, out=out, retry_failed=True, echo=lambda _: None)
    assert [r["model"] for r in retried.records] == ["lmf"] and retried.plan.retried == 1
    records = read_records(out)
    assert [r["status"] for r in records] == ["ok", "failed", "failed"]     # one record per failure
    assert latest_by_identity(records)[identity(failed)]["run_id"] == retried.records[0]["run_id"]


def test_missing_data_is_named_all_at_once_and_nothing_runs(tmp_path):
    from mmsa_atsuko.data import load_dataset
    from mmsa_atsuko.data.synthetic import ensure_synthetic

    # A data root holding MOSI (unaligned) only; SIMS and aligned MOSI are not there.
    mosi_pkl, _ = ensure_synthetic("mosi", tmp_path / "gen", size="small", aligned=False)
    root = mosi_pkl.parents[2]
    lists = dict(models=["tfn", "lmf"], datasets=["sims", "mosi"], seeds=[1, 2], data_root=str(root))
    out = tmp_path / "out"

    with pytest.raises(MissingDataError) as error:
        load_dataset("sims", data_root=str(root))
    assert (error.value.what, error.value.path) == ("sims unaligned features", str(root / "SIMS/Processed/unaligned_39.pkl"))
    (root / "SIMS/Processed/unaligned_39.pkl").mkdir(parents=True)      # there, but not a file:
    with pytest.raises(DataError, match="is a folder, not a file") as error:  # a plain DataError
        load_dataset("sims", data_root=str(root))
    assert not isinstance(error.value, MissingDataError)
    (root / "SIMS/Processed/unaligned_39.pkl").rmdir()

    lines = []
    # The dry run lists what it could plan (MOSI, 2 models x 2 seeds), then names what is missing: what it was
    # asked to find, so it says so and succeeds (the sweep itself stops, below).
    dry = sweep(None, out=out, dry_run=True, echo=lines.append, **lists)
    assert len(dry.todo) == 4 and len(dry.missing) == 1
    assert lines[0] == "planning the sweep: reading the configs of 4 settings and the data of sims, mosi"
    assert "4 runs (2 settings of model, data and config, x seeds) and 4 more (2 settings) whose data is missing" in lines[1]
    assert lines[1].endswith(", 4 would run, were it not for the missing data (below):")
    assert sorted(line.split()[0] for line in lines[2:6]) == ["lmf", "lmf", "tfn", "tfn"]
    assert all(" mosi seed " in line for line in lines[2:6])
    assert len(lines) == 7 and lines[6].startswith("the sweep would stop before its first run: 1 data file(s)")
    assert f"sims unaligned features at {root / 'SIMS/Processed/unaligned_39.pkl'} (4 runs)" in lines[6]

    with pytest.raises(DataError) as error:     # the sweep itself: nothing runs, one line names every missing file
        sweep(None, out=out, echo=lambda _: None, **lists)
    message = str(error.value)
    assert "\n" not in message and message.startswith("nothing ran: 1 data file(s)")
    assert f"sims unaligned features at {root / 'SIMS/Processed/unaligned_39.pkl'} (4 runs)" in message

    with pytest.raises(DataError) as error:
        sweep(None, out=out, echo=lambda _: None, **{**lists, "datasets": ["mosi", "mosei"], "aligned": True})
    message = str(error.value)
    for name in ("MOSI", "MOSEI"):
        assert f"{name.lower()} aligned features at {root / name / 'Processed/aligned_50.pkl'} (4 runs)" in message
    assert not out.exists() or read_records(out) == [] and not (out / "runs").exists()


def test_a_synthetic_run_is_the_same_run_whichever_cache_holds_its_data(tmp_path, monkeypatch):
    """The synthetic BERT is named 'synthetic:<recipe>/...' in the config, not by its absolute
    path: moving the cache must not make a recorded sweep run everything again."""
    from mmsa_atsuko.models.common.bert import resolve_bert_path

    lists = dict(models=["tfn"], datasets=["sims"], seeds=[1], **SMALL)
    monkeypatch.setenv("MMSA_ATSUKO_CACHE", str(tmp_path / "cache-a"))
    first = sweep(None, out=tmp_path / "out", echo=lambda _: None, **lists)
    (record,) = first.records
    assert record["config"]["pretrained"] == "synthetic:sims-small-unaligned-seed0-v2/bert-synthetic-cn"
    assert resolve_bert_path(record["config"]["pretrained"]) == str(
        tmp_path / "cache-a/synthetic/sims-small-unaligned-seed0-v2/bert-synthetic-cn")
    monkeypatch.setenv("MMSA_ATSUKO_CACHE", str(tmp_path / "cache-b"))
    again = sweep(None, out=tmp_path / "out", echo=lambda _: None, **lists)
    assert (again.plan.done, again.records) == (1, [])
    with pytest.raises(UsageError, match="is not in the cache at .*cache-c.*run with --synthetic"):
        monkeypatch.setenv("MMSA_ATSUKO_CACHE", str(tmp_path / "cache-c"))
        resolve_bert_path(record["config"]["pretrained"])


def test_one_sweep_at_a_time_per_results_folder(tmp_path):
    with SweepLock(tmp_path):
        with pytest.raises(ToolkitError, match="another sweep is writing to"):
            sweep(None, out=tmp_path, models=["tfn"], datasets=["mosi"], seeds=[1], echo=lambda _: None, **SMALL)
    assert read_records(tmp_path) == []


def test_ray_backend_runs_for_real(tmp_path):
    if os.environ.get("MMSA_ATSUKO_REQUIRE_RAY") != "1":
        pytest.importorskip("ray", reason="the [ray] extra is not installed")
    from mmsa_atsuko.sweep import RayBackend
    lists = dict(models=["tfn"], datasets=["mosi"], seeds=[1, 2], **SMALL)
    local = sweep(None, out=tmp_path / "local", backend=LocalBackend(), echo=lambda _: None, **lists)
    # one CPU (so one torch thread) per run, like this process: the same sums in the same order
    backend = RayBackend(cpus_per_run=1)
    remote = sweep(None, out=tmp_path / "ray", backend=backend, echo=lambda _: None, **lists)
    by_seed = {r["seed"]: r for r in read_records(tmp_path / "ray")}
    assert sorted(by_seed) == [1, 2]
    assert all(r["status"] == "ok" for r in by_seed.values()), [r.get("error") for r in by_seed.values()]
    for r in local.records:                             # the same training, run in a Ray worker
        assert by_seed[r["seed"]]["metrics"] == r["metrics"]
        assert by_seed[r["seed"]]["config_hash"] == r["config_hash"]
        assert by_seed[r["seed"]]["data"] == r["data"]
    assert len(remote.records) == 2 and all((tmp_path / "ray" / r["run_dir"]).is_dir() for r in remote.records)


class _FakeRay:
    """Just what RayBackend calls, with a cluster of `resources`: tasks finish in submission order and
    return their run id; records how many were in flight at most and what was cancelled."""

    def __init__(self, resources):
        self.resources, self.in_flight, self.most_in_flight, self.cancelled = resources, [], 0, []

    def is_initialized(self):
        return True

    def cluster_resources(self):
        return self.resources

    def remote(self, function):
        fake = self

        class Task:
            def options(self, **_):
                return self

            def remote(self, run, run_id, *_):
                fake.in_flight.append(run_id)
                fake.most_in_flight = max(fake.most_in_flight, len(fake.in_flight))
                return run_id
        return Task()

    def wait(self, refs, num_returns):
        return [refs[0]], refs[1:]

    def get(self, ref):
        self.in_flight.remove(ref)
        return {"run_id": ref}

    def cancel(self, ref, force):
        self.cancelled.append((ref, force))


def test_ray_queues_a_sweep_whole_and_pulls_a_tunes_trials_by_free_slot(monkeypatch):
    from mmsa_atsuko.sweep import RayBackend
    # A head node with no CPU for tasks and no GPU yet (an autoscaling cluster before it scales):
    # one slot, and no error; the sweep's five runs are all queued, so the autoscaler sees them.
    fake = _FakeRay({"CPU": 0.0})
    monkeypatch.setitem(sys.modules, "ray", fake)
    backend = RayBackend(gpus_per_run=1)
    assert backend.slots() == 1
    got = []
    backend.run([(None, f"run{i}") for i in range(5)], "out", lambda r: got.append(r["run_id"]))
    assert got == [f"run{i}" for i in range(5)] and fake.most_in_flight == 5
    # A tune's trials (an iterator): at most slots() in flight, here 4 CPUs / 2 per run.
    fake = _FakeRay({"CPU": 4.0})
    monkeypatch.setitem(sys.modules, "ray", fake)
    RayBackend(cpus_per_run=2).run(iter([(None, f"trial{i}") for i in range(5)]), "out", lambda r: None)
    assert fake.most_in_flight == 2
    # A driver that stops mid-way (Ctrl-C, a full disk) cancels what is still in flight.
    backend = RayBackend()

    def stop(record):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        backend.run([(None, f"run{i}") for i in range(3)], "out", stop)
    backend.close()
    assert fake.cancelled == [("run1", True), ("run2", True)] and backend.pending == {}


def test_a_dry_run_of_a_sweep_whose_data_is_all_missing_says_so_and_succeeds(tmp_path, capsys):
    """The user trial: `sweep configs/sweeps/paper.yaml --dry-run` without data printed '... 0 would run:' with
    nothing after the colon, then 'error: nothing ran: ...' and exit 1, for a dry run that was asked to run nothing."""
    from mmsa_atsuko.cli import main
    out = tmp_path / "o"
    code = main(["sweep", str(ROOT / "configs/sweeps/paper.yaml"), "--dry-run", "--data-root", str(tmp_path / "none"),
                 "--out", str(out)])
    captured = capsys.readouterr()
    assert (code, captured.err) == (0, "")
    lines = captured.out.splitlines()
    # #8: the settings counted alike in both lines, each once ('56 settings' then '54 settings': two settings are in
    # two experiments each, Table 1's Atsuko row being Table 4's full row).
    assert len(lines) == 3 and lines[0].startswith("planning the sweep: reading the configs of 54 settings and ")
    assert lines[1].startswith("sweep: 0 runs (0 settings of model, data and config, x seeds) and 270 more "
                               "(54 settings)")
    assert lines[1].endswith(", 0 would run")
    assert lines[2].startswith("the sweep would stop before its first run: 7 data file(s) this sweep needs are not "
                               f"there: mosi aligned features at {tmp_path / 'none/MOSI/Processed/aligned_50.pkl'} "
                               "(50 runs), ")
    assert not out.exists()


def _main(argv, capsys):
    from mmsa_atsuko.cli import main
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("argv, code, message", [
    (["sweep"], 2, "give a sweep file or both"),
    (["sweep", "-m", "tfn", "-d", "mosi", "--backend", "ray", "--jobs", "2"], 2, "--jobs and --devices are for --backend local"),
    (["sweep", "-m", "tfn", "-d", "mosi", "--gpus-per-run", "1"], 2, "--gpus-per-run only apply to --backend ray"),
    (["sweep", "-m", "tfn", "-d", "mosi", "--jobs", "0"], 2, "--jobs must be at least 1"),
    (["sweep", "-m", "tfn", "-d", "mosi", "--devices", "tpu"], 2, "--device 'tpu' is not"),
    (["sweep", "-m", "tfn", "-d", "sims", "--aligned"], 2, "sims has no aligned setting"),
    (["sweep", "missing.yaml"], 2, "missing.yaml not found"),
    # Checked while planning, so a bad value is one error, not a failed record per run.
    (["sweep", "-m", "tfn", "-d", "mosi", "--synthetic", "-c", "key_eval=bogus"], 2, "command-line override -c: key_eval must be a metric of mosi"),
    (["sweep", "-m", "tfn", "-d", "mosi", "--synthetic", "-s", "1", "1"], 2, "seed 1 is given twice"),
    (["sweep", "-m", "tfn", "-d", "mosi", "--synthetic", "-c", "learning_rate=1e-3", "-c", "learning_rate=2e-3"], 2,
     "-c learning_rate is given twice (0.001 and 0.002); give it once"),
    (["leaderboard", "--format", "xls"], 2, "invalid choice: 'xls'"),
    (["compare", "-m", "atsuko"], 2, "required: --against"),
])
def test_sweep_and_table_command_errors_are_one_line(tmp_path, capsys, argv, code, message):
    got, lines = _main([*argv, *(["--out", str(tmp_path / "o")] if argv[0] == "sweep" else [])], capsys)
    assert got == code and len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "o").exists()


def test_a_c_key_of_some_models_of_the_sweep_says_where_such_a_key_goes(tmp_path, capsys):
    """`-m tfn atsuko -c use_sbn=false`: refused (-c sets every model, and tfn has no use_sbn), in a line that named
    only tfn's keys, not where a key of atsuko alone is given. A key no model has keeps the refusal alone."""
    argv = ["sweep", "-m", "tfn", "atsuko", "-d", "mosi", "--synthetic", "--dry-run", "--out", str(tmp_path / "o")]
    got, lines = _main([*argv, "-c", "use_sbn=false"], capsys)
    assert got == 2 and len(lines) == 1, lines
    assert lines[0].endswith("command-line override -c: unknown config key 'use_sbn'; tfn's keys are the common: "
                             "block of configs/tfn.yaml and the defaults of configs/datasets.yaml; -c sets a key for "
                             "every model of the sweep, and use_sbn is a key of atsuko only: a key for some models "
                             "goes in a sweep file's per-experiment config: (an experiment of models: [atsuko] with "
                             "config: {use_sbn: ...}; docs/sweeps.md)"), lines
    got, lines = _main([*argv, "-c", "no_such_key=1"], capsys)
    assert got == 2 and len(lines) == 1 and "-c sets a key" not in lines[0] and "no_such_key" in lines[0], lines
    assert not (tmp_path / "o").exists()


def test_more_jobs_than_runs_or_cores_is_said_in_one_line():
    """`--jobs 8` with 2 runs, or 8 runs on 2 cores, printed `8 worker processes` and nothing else, as if 8 runs
    trained side by side at full speed. With fewer runs than N only as many workers start, and the plan line's
    description says so; the line after it is left to runs at once that share fewer cores."""
    from mmsa_atsuko.sweep.local import LocalBackend
    cpu = LocalBackend(8, "cpu", threads=1)
    assert cpu.describe(2).startswith("local, 2 worker processes (as many as the runs to do; --jobs 8), 1 torch ")
    assert cpu.describe(1).startswith("local, 1 worker process (as many")
    assert cpu.describe(8).startswith("local, 8 worker processes, ") and cpu.describe() == cpu.describe(9)
    assert cpu.jobs_note(2, cores=16) == ""        # the description said it: 2 workers start
    assert cpu.jobs_note(8, cores=2) == ("--jobs 8: the 8 runs at once share 2 CPU core(s), each slower than "
                                         "alone; --jobs 2 keeps one run per core")
    assert cpu.jobs_note(4, cores=2) == ("--jobs 8: the 4 runs at once share 2 CPU core(s), each slower than "
                                         "alone; --jobs 2 keeps one run per core")
    assert LocalBackend(2, "cpu", threads=1).jobs_note(5, cores=2) == ""        # as many at once as cores
    assert cpu.jobs_note(8, cores=8) == cpu.jobs_note(0, cores=2) == ""      # as asked; nothing to run
    assert LocalBackend(1, "cpu").jobs_note(5, cores=2) == LocalBackend("auto", "cpu").jobs_note(1, cores=2) == ""


class _ThreadWorker:
    """`local._Worker` serving its tasks in a thread of this process (`worker_side.serve`, the real `execute`): the test
    counts the workers the backend starts, each of which, a spawned process, costs seconds of start-up."""
    started: list = []

    def __init__(self, ctx, index, device, threads, forced):
        import multiprocessing
        import threading

        from mmsa_atsuko.sweep.execute import execute
        from mmsa_atsuko.sweep.worker_side import serve as _serve
        self.index, self.device, self.task, self.since = index, device, None, time.time()
        self.conn, child = multiprocessing.Pipe()
        self.thread = threading.Thread(target=_serve, args=(child, device, execute), daemon=True)
        self.thread.start()
        _ThreadWorker.started.append(index)

    def give(self, task):
        self.task, self.since = task, time.time()
        self.conn.send(task)

    def stop(self):
        self.conn.send(None)
        self.thread.join()
        self.conn.close()


def test_jobs_n_starts_no_more_workers_than_runs_to_do(tmp_path, monkeypatch):
    """`--jobs 4` with 2 runs to do started 4 worker processes, 2 of which waited idle; and a sweep started again
    with 1 run left of 3 started 4 as well. Now min(N, runs to do) start."""
    monkeypatch.setattr("mmsa_atsuko.sweep.local._Worker", _ThreadWorker)
    monkeypatch.setattr(_ThreadWorker, "started", [])
    lists = dict(models=["tfn"], datasets=["mosi"], synthetic=True, preset="small", max_epochs=1)
    lines = []
    summary = sweep(None, out=tmp_path, backend=LocalBackend(4, "cpu", threads=1), echo=lines.append, seeds=[1, 2],
                    **lists)
    assert len(_ThreadWorker.started) == 2 and [r["status"] for r in summary.records] == ["ok", "ok"], lines
    assert "2 to run (local, 2 worker processes (as many as the runs to do; --jobs 4), " in lines[1], lines
    _ThreadWorker.started.clear()
    summary = sweep(None, out=tmp_path, backend=LocalBackend(4, "cpu", threads=1), echo=lines.append,
                    seeds=[1, 2, 3], **lists)
    assert len(_ThreadWorker.started) == 1 and [r["seed"] for r in summary.records] == [3]


def test_a_sweep_file_that_is_a_folder_or_binary_is_one_line(tmp_path, capsys):
    """`run.py sweep configs/sweeps` (a folder) and a binary file were tracebacks from open() and the decoder."""
    (tmp_path / "binary.yaml").write_bytes(bytes(range(200, 256)) * 4)
    for path, message in ((tmp_path, "is a folder, not a file; give a YAML file in it"),
                          (tmp_path / "binary.yaml", "is not UTF-8 text")):
        got, lines = _main(["sweep", str(path), "--dry-run", "--out", str(tmp_path / "o")], capsys)
        assert got == 2 and len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("text, message", [
    ("experiments:\n  - {name: a, models: [tfn], datasets: [mosi], config: {learning_rate: -1}}\n",
     "SWEEP experiment 'a': config, for tfn: learning_rate must be positive, got -1.0"),
    ("config: {key_eval: Acc_9}\nexperiments:\n  - {name: a, models: [tfn], datasets: [mosi]}\n",
     "SWEEP: config, for tfn: key_eval must be a metric of mosi"),
    ("max_epochs: 0\nexperiments:\n  - {name: a, models: [tfn], datasets: [mosi]}\n",
     "SWEEP: max_epochs must be at least 1, got 0"),
    ("experiments:\n  - {name: a, models: [tfn], datasets: [mosi], max_epochs: 2.5}\n",
     "SWEEP experiment 'a': max_epochs must be an int like 100, got 2.5"),
])
def test_a_trainer_value_in_a_sweep_file_is_blamed_on_the_file(tmp_path, capsys, text, message):
    """The trainer's keys were `any` to the loader and checked on the whole config later, so a sweep
    file's learning_rate: -1 or max_epochs: 0 came out with no word of where it was written."""
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(text)
    got, lines = _main(["sweep", str(sweep), "--synthetic", "--out", str(tmp_path / "o")], capsys)
    assert got == 2 and len(lines) == 1 and message.replace("SWEEP", str(sweep)) in lines[0], lines
    assert not (tmp_path / "o").exists()


def test_ray_backend_without_ray_installed_is_one_clear_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)       # import ray -> ImportError
    got, lines = _main(["sweep", "-m", "tfn", "-d", "mosi", "--backend", "ray", "--out", str(tmp_path)], capsys)
    assert got == 1 and lines == ['error: the ray backend needs Ray: pip install -e ".[ray]"']


@pytest.mark.parametrize("extra, code, message", [
    (["--gpus-per-run", "-1"], 2, "error: --gpus-per-run must be >= 0 and --cpus-per-run > 0"),
    (["--cpus-per-run", "0"], 2, "error: --gpus-per-run must be >= 0 and --cpus-per-run > 0"),
    (["--no-ray"], 1, 'error: the ray backend needs Ray: pip install -e ".[ray]"'),
])
def test_a_ray_backend_that_cannot_be_is_one_line_before_the_planning_line(tmp_path, capsys, monkeypatch, extra,
                                                                           code, message):
    """Checked with the local backend's options, before the sweep plans: the line came after 'planning the
    sweep: ...' on stdout (partial output), from RayBackend, made after the planning line."""
    if extra == ["--no-ray"]:
        monkeypatch.setitem(sys.modules, "ray", None)       # import ray -> ImportError
        extra = []
    from mmsa_atsuko.cli import main
    got = main(["sweep", "-m", "tfn", "-d", "mosi", "-s", "1111", "--synthetic", "--preset", "small", "--backend",
                "ray", *extra, "--out", str(tmp_path / "o")])
    captured = capsys.readouterr()
    assert (got, captured.out, captured.err.splitlines()) == (code, "", [message])
    assert not (tmp_path / "o").exists()


def test_a_ray_that_is_found_but_does_not_import_is_one_line_when_the_backend_starts(monkeypatch):
    """check_ray_backend looks for Ray without importing it; an install whose import fails (a dependency missing)
    is the same one line when the backend starts, as it was when RayBackend imported Ray on its making."""
    from mmsa_atsuko.sweep import RayBackend
    backend = RayBackend()                                # Ray is installed (MMSA_ATSUKO_REQUIRE_RAY)
    monkeypatch.setitem(sys.modules, "ray", None)         # import ray -> ImportError
    with pytest.raises(ToolkitError, match=r'^the ray backend needs Ray: pip install -e "\.\[ray\]" \(ModuleNotFoundError: import of ray'):
        backend.start()


def test_an_unknown_save_checkpoint_is_refused_before_the_planning_line(tmp_path):
    lines = []
    with pytest.raises(UsageError, match=r"^--save-checkpoint must be one of best, none, got 'bogus'$"):
        sweep(out=tmp_path / "o", models=["tfn"], datasets=["mosi"], seeds=[1], synthetic=True, preset="small",
              save_checkpoint="bogus", echo=lines.append)
    assert lines == [] and not (tmp_path / "o").exists()


def test_leaderboard_and_compare_on_an_empty_store_fail_in_one_line(tmp_path, capsys):
    for argv in (["leaderboard", "--results", str(tmp_path)],
                 ["compare", "-m", "atsuko", "--against", "tfn", "--results", str(tmp_path)]):
        got, lines = _main(argv, capsys)
        assert got == 2 and len(lines) == 1 and "no ok runs" in lines[0]


def test_table_commands_given_the_store_file_as_results_name_its_folder(tmp_path, capsys):
    """`--results results/runs.jsonl` (the file, not its folder) read as an empty store at
    results/runs.jsonl/runs.jsonl: "no ok runs" in a path that cannot exist. Now one line naming the folder."""
    store = tmp_path / "runs.jsonl"
    store.write_text("")
    for argv in (["leaderboard"], ["compare", "-m", "atsuko", "--against", "tfn"], ["verify"], ["tsne", "-d", "mosi"],
                 ["robustness", "--run", "x"]):
        got, lines = _main([*argv, "--results", str(store)], capsys)
        assert got == 2 and len(lines) == 1 and f"{store} is a file, not a folder; give its folder, --results " \
            f"{tmp_path}" in lines[0], (argv, lines)
        assert "runs.jsonl/runs.jsonl" not in lines[0]


def test_a_sweep_with_failed_runs_exits_1_until_they_are_retried(tmp_path, capsys):
    argv = ["sweep", "-m", "lmf", "-d", "mosi", "-s", "3", "--synthetic", "--preset", "small",
            "-c", "learning_rate=1e30", "--out", str(tmp_path)]             # diverges: a failed run
    for attempt in ("first", "again, with the failure skipped"):
        code, lines = _main(argv, capsys)
        assert code == 1 and "1 run(s) of this sweep have failed" in lines[-1], (attempt, lines)
    assert [r["status"] for r in read_records(tmp_path)] == ["failed"]


def test_save_checkpoint_none_in_a_sweep_is_not_part_of_the_run_identity(tmp_path):
    lists = dict(models=["tfn"], datasets=["mosi"], seeds=[1], max_epochs=2, **SMALL)
    summary = sweep(None, out=tmp_path, save_checkpoint="none", echo=lambda _: None, **lists)
    (record,) = summary.records
    assert record["status"] == "ok" and record["checkpoint"] == "none"
    assert (tmp_path / record["run_dir"] / "history.json").is_file() and not (tmp_path / record["run_dir"] / "best.pt").exists()
    again = sweep(None, out=tmp_path, save_checkpoint="best", echo=lambda _: None, **lists)
    assert (again.plan.done, again.records) == (1, [])


def test_a_finished_sweep_with_workers_leaks_no_semaphores(tmp_path):
    """Workers are asked to exit and cleaned up, not killed: a killed worker leaves its
    semaphores to the resource tracker, which warns of them when the sweep ends."""
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "sweep", "-m", "tfn", "-d", "mosi", "-s", "1", "2",
                           "--synthetic", "--preset", "small", "--max-epochs", "1", "--jobs", "2",
                           "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "leaked semaphore" not in proc.stderr and "resource_tracker" not in proc.stderr, proc.stderr
    assert [r["status"] for r in read_records(tmp_path)] == ["ok", "ok"]


def test_a_sweep_interrupted_with_busy_workers_leaks_no_semaphores(tmp_path):
    """Ctrl-C (SIGINT to the terminal's whole process group) kills the busy workers; tqdm's
    multiprocessing lock in each was left to the resource tracker, which then warned of "2 leaked
    semaphore objects" under the "interrupted" line."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "sweep", "-m", "mult", "-d", "mosi", "-s", "1", "2",
                             "--synthetic", "--preset", "small", "--max-epochs", "500", "-c", "early_stop=500",
                             "--jobs", "2", "--out", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, start_new_session=True)
    try:
        deadline = time.time() + 120
        while len([p for p in (tmp_path / "runs").glob(".*.partial") if (p / "history.json").is_file()]) < 2:
            assert time.time() < deadline and proc.poll() is None, "both workers never finished a first epoch"
            time.sleep(0.1)
        time.sleep(0.5)                                   # both are training, each past its first epoch
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130 and err.splitlines()[0] == (
        "interrupted: finished runs are recorded; the same command again skips them and runs the rest, each run "
        "that was training from its first epoch, or with --resume from its last finished epoch"), (out, err)
    assert "leaked semaphore" not in err and "resource_tracker" not in err, err
    assert not (tmp_path / "runs.jsonl").exists() or read_records(tmp_path) == []


def test_ctrl_c_while_a_worker_starts_is_ignored_by_the_worker(capfd):
    """Ctrl-C in the seconds after `sweep --jobs 2` started (the workers importing torch, before they ignore
    SIGINT) printed a KeyboardInterrupt traceback from each worker under the driver's 'interrupted'. A worker
    now starts with SIGINT ignored: one signalled at once still imports, takes its stop and exits 0."""
    import multiprocessing

    from mmsa_atsuko.sweep import local
    before = signal.getsignal(signal.SIGINT)
    worker = local._Worker(multiprocessing.get_context("spawn"), 0, "cpu", 1, False)
    try:
        os.kill(worker.proc.pid, signal.SIGINT)           # as the terminal's Ctrl-C reaches the whole group
    finally:
        worker.stop(wait=120)
    assert signal.getsignal(signal.SIGINT) is before      # the driver's own Ctrl-C handling is back
    assert worker.proc.exitcode == 0
    assert "Traceback" not in capfd.readouterr().err


WATCHED_WORKER = """
import multiprocessing, os, time
from mmsa_atsuko import parent_death
from mmsa_atsuko.sweep import worker_side

def worker(parent_pid):
    parent_death.kill_on_parent_death = lambda: False     # as where there is no prctl
    worker_side.die_with_parent(parent_pid)
    print("watching", flush=True)
    time.sleep(60)

if __name__ == "__main__":
    child = multiprocessing.get_context("spawn").Process(target=worker, args=(os.getpid(),), daemon=True)
    child.start()
    print(child.pid, flush=True)
    time.sleep(60)
"""


def test_without_prctl_a_worker_still_dies_with_its_driver(tmp_path):
    script = write(tmp_path / "driver.py", WATCHED_WORKER)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        worker = int(proc.stdout.readline())
        assert proc.stdout.readline() == "watching\n"
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    deadline = time.time() + 20
    while _alive(worker):
        assert time.time() < deadline, "the worker outlived its driver"
        time.sleep(0.05)


def test_a_progress_line_on_synthetic_data_says_synthetic():
    """`sweep -m tfn -d mosi --synthetic` printed 'ok      tfn mosi seed 1111: MAE 1.2663', a number that reads
    as MOSI's; every table labels synthetic data, and the progress line now does too (real data: no word)."""
    from mmsa_atsuko.sweep import SweepProgress
    lines = []
    progress = SweepProgress(2, {}, echo=lines.append)        # a run the sweep names no config of: its model
    base = {"status": "ok", "model": "tfn", "dataset": "mosi", "seed": 1111, "wall_time_s": 0.25,
            "metrics": {"MAE": 1.26634}}
    progress({**base, "run_id": "a", "aligned": False, "synthetic": True,
              "condition": make_condition(0.3).as_dict()})
    progress({**base, "run_id": "b", "aligned": True, "synthetic": False})
    assert lines == [
        "[1/2] ok      tfn mosi synthetic [missing_rate=0.3] seed 1111: test MAE 1.2663 (0.2s) | 1/2 done, 0 failed, "
        "elapsed 0:00:00, ETA 0:00:00",
        "[2/2] ok      tfn mosi aligned seed 1111: test MAE 1.2663 (0.2s) | 2/2 done, 0 failed, elapsed 0:00:00, "
        "ETA 0:00:00"]


def test_a_progress_line_on_a_stress_recipe_names_the_recipe():
    """A stress sweep (`--synthetic-recipe corrupt`, or a file mixing recipes) printed 'tfn mosi synthetic seed 1'
    for every recipe's run: the runs could not be told apart. The recipe comes from the record's data id, failed
    records included; the standard recipe adds nothing."""
    from mmsa_atsuko.sweep import SweepProgress
    lines = []
    progress = SweepProgress(3, {}, echo=lines.append)
    base = {"model": "tfn", "dataset": "mosi", "aligned": False, "seed": 1, "synthetic": True, "wall_time_s": 0.25}
    progress({**base, "run_id": "a", "status": "ok", "metrics": {"MAE": 0.5},
              "data": "synthetic:corrupt-s2-mosi-small-unaligned-seed0-v2"})
    progress({**base, "run_id": "b", "status": "failed", "error": "boom",
              "data": "synthetic:bands-s1-mosi-small-unaligned-seed0-v2"})
    progress({**base, "run_id": "c", "status": "ok", "metrics": {"MAE": 0.5},
              "data": "synthetic:mosi-small-unaligned-seed0-v2"})
    assert [line.split(" (0.2s)")[0] for line in lines] == [
        "[1/3] ok      tfn mosi synthetic (corrupt recipe) seed 1: test MAE 0.5000",
        "[2/3] FAILED  tfn mosi synthetic (bands recipe) seed 1: boom",
        "[3/3] ok      tfn mosi synthetic seed 1: test MAE 0.5000"]


def test_progress_names_the_config_where_the_sweep_holds_several_of_one_model(tmp_path):
    """Two configs of tfn on MOSI each read `ok tfn mosi seed 1: MAE ...`: which line was which config? A model
    with several configs in one table is named as the leaderboard names its rows (tfn@<hash>), one with a
    single config there (lmf on MOSI, tfn on SIMS) keeps its plain name."""
    import re

    from mmsa_atsuko.leaderboard.tables import build_tables
    f = write(tmp_path / "s.yaml", """
synthetic: true
preset: small
max_epochs: 1
seeds: [1]
experiments:
  - {name: as-shipped, models: [tfn, lmf], datasets: [mosi]}
  - {name: narrow, models: [tfn], datasets: [mosi], config: {post_fusion_dim: 8}}
  - {name: other-table, models: [tfn], datasets: [sims]}
""")
    lines = []
    summary = sweep(f, out=tmp_path / "o", echo=lines.append)
    named = sorted(re.search(r"\] ok +(.+?): test MAE ", line).group(1) for line in lines if "] ok " in line)
    tfn_mosi = sorted(r["config_hash"] for r in summary.records if (r["model"], r["dataset"]) == ("tfn", "mosi"))
    assert len(set(tfn_mosi)) == 2
    assert named == sorted(["lmf mosi synthetic seed 1", "tfn sims synthetic seed 1"]
                           + [f"tfn@{h[:8]} mosi synthetic seed 1" for h in tfn_mosi])
    (mosi,) = [t for t in build_tables(summary.records) if t.dataset == "mosi"]
    assert {row.label for row in mosi.rows} == {"lmf"} | {f"tfn@{h[:8]}" for h in tfn_mosi}


def test_ctrl_c_in_a_sweep_keeps_finished_runs_and_the_same_command_trains_the_cut_run_from_its_start(
        tmp_path, capsys, caplog, monkeypatch):
    """A researcher's Ctrl-C during the paper's sweep: the run that finished is recorded, the one that was training
    leaves its .partial folder, and the line says what the same command will do with each (before, it did not say
    the run cut short starts again from epoch 1). The same command then skips the first and trains the second anew."""
    from mmsa_atsuko.training import trainer
    real, starts = trainer.save_training_state, []

    def save(path, model, optimizer, scheduler, generator, device, at, *args):
        starts.append(at)
        if starts.count(1) == 2 and at == 2:          # the second run, after its second epoch
            raise KeyboardInterrupt
        return real(path, model, optimizer, scheduler, generator, device, at, *args)
    monkeypatch.setattr(trainer, "save_training_state", save)
    argv = ["sweep", "-m", "tfn", "-d", "mosi", "-s", "1111", "1112", "--synthetic", "--preset", "small",
            "--max-epochs", "3", "--out", str(tmp_path)]
    code, err = _main(argv, capsys)
    assert code == 130 and err[-1] == ("interrupted: finished runs are recorded; the same command again skips them "
                                       "and runs the rest, each run that was training from its first epoch, or "
                                       "with --resume from its last finished epoch")
    assert [r["seed"] for r in read_records(tmp_path)] == [1111]
    (partial,) = (tmp_path / "runs").glob(".*.partial")
    assert (partial / "last.pt").exists()            # epoch 1 was kept there, and is not continued
    monkeypatch.setattr(trainer, "save_training_state", real)
    from mmsa_atsuko.cli import main
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "1 already recorded" in out and f"removed {partial}, left unfinished" in caplog.text
    assert "1 to run, 1 of them cut short earlier, to start again from their first epoch (--resume continues them)" in out
    assert "(--resume continues such a run from its last finished epoch instead)" in caplog.text
    assert [r["seed"] for r in read_records(tmp_path)] == [1111, 1112] and not partial.exists()
    (second,) = [r for r in read_records(tmp_path) if r["seed"] == 1112]
    log = (tmp_path / second["run_dir"] / "train.log").read_text()
    assert "resumed" not in log and log.count(" epoch 1 ") == 1 and second.get("earlier_attempts") is None


SWEEP_TO_CUT = ["-m", "tfn", "-d", "mosi", "-s", "1111", "1112", "--synthetic", "--preset", "small", "--max-epochs",
                "3", "-c", "early_stop=10"]


def _by_identity(out):
    return {identity(r): r for r in read_records(out)}


def _same_runs(resumed_out, whole_out):
    """Every run of `resumed_out` ended exactly as the same run of `whole_out`: metrics, model selection, history."""
    resumed, whole = _by_identity(resumed_out), _by_identity(whole_out)
    assert resumed.keys() == whole.keys() and len(whole) == 2
    for key, record in resumed.items():
        for field in ("metrics", "valid_metrics", "best_epoch", "epochs_run"):
            assert repr(record[field]) == repr(whole[key][field]), (key, field)     # repr round-trips every float
        assert ((resumed_out / record["run_dir"] / "history.json").read_text()
                == (whole_out / whole[key]["run_dir"] / "history.json").read_text())


def test_sweep_resume_continues_the_run_cut_short_and_ends_as_the_uninterrupted_sweep(tmp_path, capsys, caplog,
                                                                                      monkeypatch):
    """Before: a sweep could not continue a run's epochs; the run that was training when a 270-run sweep stopped
    trained again from epoch 1. With --resume the same command continues it in its folder, under its run_id, from
    its last finished epoch, and every run ends bit for bit as in a sweep never cut short (CPU, 1 thread)."""
    from mmsa_atsuko.cli import main
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main(["sweep", *SWEEP_TO_CUT, "--out", str(whole)]) == 0
    capsys.readouterr()
    die_before_last_pt_of_epoch(monkeypatch, 2)              # the first run, with epoch 1's last.pt written
    code, err = _main(["sweep", *SWEEP_TO_CUT, "--out", str(cut)], capsys)
    monkeypatch.undo()
    assert code == 130 and err[-1] == ("interrupted: finished runs are recorded; the same command again skips them "
                                       "and runs the rest, each run that was training from its first epoch, or "
                                       "with --resume from its last finished epoch")
    (partial,) = (cut / "runs").glob(".*.partial")
    assert not (cut / "runs.jsonl").exists()

    assert main(["sweep", *SWEEP_TO_CUT, "--out", str(cut), "--resume"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "2 to run, 1 of them cut short earlier, to continue from their last finished epoch (--resume)" in lines[1]
    (line,) = [line for line in lines if "seed 1111:" in line]
    assert "s, resumed)" in line
    _same_runs(cut, whole)
    (first,) = [r for r in read_records(cut) if r["seed"] == 1111]
    assert first["run_id"] == partial.name[1:-len(".partial")]                 # continued in place
    assert len(first["earlier_attempts"]) == 1
    log = (cut / first["run_dir"] / "train.log").read_text()
    assert log.count("resumed after epoch 1 ") == 1 and log.count("INFO epoch 1 ") == 1     # not trained again
    assert not list((cut / "runs").glob(".*")) and "removed" not in caplog.text


def test_sweep_resume_with_worker_processes_continues_what_a_killed_sweep_left(tmp_path, capsys):
    """`--jobs 2`: the driver and its workers killed (SIGKILL, no Ctrl-C handling) while seed 1112 was in epoch 2;
    `sweep --jobs 2 --resume` continues that run in a worker from epoch 1's state, and both runs end bit for bit as
    in a sweep never cut short (CPU, 1 torch thread per run either way)."""
    from mmsa_atsuko.cli import main
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main(["sweep", *SWEEP_TO_CUT, "--out", str(whole)]) == 0
    capsys.readouterr()
    hook = tmp_path / "hook"
    write(hook.mkdir() or hook / "sitecustomize.py", KILL_THE_SWEEP_AFTER_EPOCH_1)
    argv = [sys.executable, str(ROOT / "run.py"), "sweep", *SWEEP_TO_CUT, "--jobs", "2", "--out", str(cut)]
    killed = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=300,
                            env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(hook), str(ROOT)])))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (partial,) = [p for p in (cut / "runs").glob(".*.partial") if "-s1112-" in p.name]
    assert [h["epoch"] for h in json.loads((partial / "history.json").read_text())] == [1, 2]   # 2 not in last.pt
    from mmsa_atsuko.run_folders import unfinished_runs
    deadline = time.time() + 30
    while partial not in list(unfinished_runs(cut)):      # its worker, killed with the driver, still held its lock
        assert time.time() < deadline, "the killed sweep's worker outlived its driver"
        time.sleep(0.05)

    resumed = subprocess.run([*argv, "--resume"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "cut short earlier, to continue from their last finished epoch (--resume)" in resumed.stdout
    # the started line names the folder the resumed run works in, not one under this call's fresh run_id
    assert f"started tfn mosi seed 1112 on cpu: its epochs go to {partial / 'train.log'}\n" in resumed.stdout
    _same_runs(cut, whole)
    (second,) = [r for r in read_records(cut) if r["seed"] == 1112]
    assert second["run_id"] == partial.name[1:-len(".partial")], resumed.stderr
    assert len(second["earlier_attempts"]) == 1
    assert "resumed after epoch 1 " in (cut / second["run_dir"] / "train.log").read_text()
    assert not list((cut / "runs").glob(".*"))


@pytest.mark.parametrize("spoil", SPOILS)
def test_a_folder_sweep_resume_may_not_continue_is_one_line_and_the_run_trains_afresh(tmp_path, caplog,
                                                                                      monkeypatch, spoil):
    """Every check of `run.py --resume` holds in a sweep: a last.pt that is not this run's state, or a link planted
    in the folder, is refused. run.py stops there in one line; a sweep, unattended, says that line in a warning,
    leaves the folder as it was and trains the run afresh under a new run_id (ending as an uninterrupted run)."""
    kw = dict(models=["tfn"], datasets=["mosi"], seeds=[1111], max_epochs=2, echo=lambda _: None, **SMALL)
    (whole,) = sweep(out=tmp_path / "whole", **kw).records
    out = tmp_path / "cut"
    die_before_last_pt_of_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        sweep(out=out, **kw)
    monkeypatch.undo()
    (partial,) = (out / "runs").glob(".*.partial")
    victim = tmp_path / "victim.txt"
    why = spoil_resumable_folder(partial, spoil, victim) + (
        " (DataError); remove the run's folder" if spoil == "garbage last.pt" else ": it is not a folder this "
        "toolkit left; remove it")
    with caplog.at_level("WARNING", logger="mmsa_atsuko"):
        (record,) = sweep(out=out, resume=True, **kw).records
    (line,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert line.startswith(f"not resumed: {why}") and line.endswith(
        f"; the sweep leaves that folder and trains this run afresh as {record['run_id']}")
    assert record["status"] == "ok" and record["run_id"] not in partial.name and "earlier_attempts" not in record
    assert repr(record["metrics"]) == repr(whole["metrics"]) and record["epochs_run"] == 2
    assert partial.is_dir() and victim.read_text() == "precious\n"


def test_a_resumed_run_that_fails_after_its_worker_was_killed_is_one_failed_record(tmp_path):
    """A worker killed under --resume left `<run_id>.failed` holding error.txt alone and kept `.<run_id>.partial`;
    the resumed attempt, under the same run_id, then failed in the ordinary way (a NaN loss, an out-of-memory):
    renaming its folder onto the existing .failed raised OSError (ENOTEMPTY) from inside the failure handler, so the
    worker raised instead of giving a failed record. Now the folder, with the new error.txt, takes its place."""
    import json
    from datetime import datetime, timezone

    from mmsa_atsuko.sweep.execute import failure
    from mmsa_atsuko.sweep import Setting
    from mmsa_atsuko.sweep.plan import PlannedRun

    run_id = "tfn-mosi-s1112-20260101T000000-0a1b2c"
    runs = tmp_path / "runs"
    partial, failed_dir = runs / f".{run_id}.partial", runs / f"{run_id}.failed"
    partial.mkdir(parents=True)
    (partial / "run.json").write_text(json.dumps({"identity": []}))
    (partial / "history.json").write_text("[]")
    failed_dir.mkdir()
    (failed_dir / "error.txt").write_text("worker process died (exit code -9)\n")
    run = PlannedRun(Setting("tfn", "mosi", False), 1112, "0" * 12, "synthetic:mosi-small", resume=True)
    record = failure(run, run_id, tmp_path, "cpu", RuntimeError("loss is NaN"), datetime.now(timezone.utc), 1.0)
    assert record["status"] == "failed" and record["error"] == "RuntimeError: loss is NaN"
    assert not partial.exists() and sorted(p.name for p in failed_dir.iterdir()) == [
        "error.txt", "history.json", "run.json"]
    assert "RuntimeError: loss is NaN" in (failed_dir / "error.txt").read_text()


def test_a_run_whose_worker_was_killed_keeps_its_epochs_for_retry_failed_resume(tmp_path, capsys):
    """A worker killed alone (the OOM killer) is a failed run; its .partial folder became .failed, so even
    --retry-failed trained it from epoch 1. Under --resume the folder is kept, the record's error says how to go on,
    and `--retry-failed --resume` continues it, ending as in a sweep never cut short."""
    from mmsa_atsuko.cli import main
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main(["sweep", *SWEEP_TO_CUT, "--out", str(whole)]) == 0
    capsys.readouterr()
    hook = tmp_path / "hook"
    write(hook.mkdir() or hook / "sitecustomize.py", KILL_THE_SWEEP_AFTER_EPOCH_1)
    argv = [sys.executable, str(ROOT / "run.py"), "sweep", *SWEEP_TO_CUT, "--jobs", "2", "--out", str(cut), "--resume"]
    killed = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=300,
                            env=dict(os.environ, KILL="worker", PYTHONPATH=os.pathsep.join([str(hook), str(ROOT)])))
    assert killed.returncode == 1, killed.stderr
    (failed,) = [r for r in read_records(cut) if r["status"] == "failed"]
    assert failed["seed"] == 1112 and failed["error"] == (
        f"worker process died (exit code -{int(signal.SIGKILL)}); its folder is kept: --retry-failed --resume "
        f"continues it from its last finished epoch")
    (partial,) = (cut / "runs").glob(".*.partial")
    assert partial.name == f".{failed['run_id']}.partial" and (partial / "last.pt").is_file()

    resumed = subprocess.run([*argv, "--retry-failed"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    _same_runs(cut, whole)
    (second,) = [r for r in read_records(cut) if r["seed"] == 1112 and r["status"] == "ok"]
    assert second["run_id"] == failed["run_id"] and len(second["earlier_attempts"]) == 1


@pytest.mark.parametrize("dataset", ["mosi", "mintrec"])
def test_the_planning_line_says_when_the_synthetic_data_is_cached(tmp_path, monkeypatch, dataset):
    """#9: 'planning the sweep: ... (generated on its first use in a cache folder)' was printed when the cache held
    the data already. A sweep's first call in a fresh cache folder generates it; the next finds it there. Synthetic
    MIntRec's line said 'generated on its first use' every time: its cache was not looked at before torch."""
    monkeypatch.setenv("MMSA_ATSUKO_CACHE", str(tmp_path / "cache"))
    head = f"planning the sweep: reading the configs of 1 setting and the data of {dataset} synthetic"
    for said in (" (generated on its first use in a cache folder)", " (cached)"):
        lines = []
        sweep(None, out=tmp_path / "out", dry_run=True, echo=lines.append, models=["tfn"], datasets=[dataset],
              seeds=[1], **SMALL)
        assert lines[0] == head + said
    assert list((tmp_path / "cache" / "synthetic").iterdir())           # the data went where the line looked


def test_a_dry_run_lists_every_setting_that_cannot_train_and_the_sweep_refuses_naming_how_many(tmp_path, capsys):
    """`sweep FILE --dry-run` stopped at the first setting that cannot train (here grad_accum_rule mmsa with more
    grad_accum than small synthetic MOSI's 6 train batches: no parameter would ever change) and named only it. A dry
    run lists each (model, data, experiment, why) and exits 2; the sweep refuses in one line, before any run folder,
    saying how many."""
    from mmsa_atsuko.cli import main
    f = write(tmp_path / "s.yaml", """
synthetic: true
preset: small
max_epochs: 1
seeds: [1]
experiments:
  - {name: fine, models: [tfn], datasets: [mosi]}
  - {name: never steps, models: [tfn, lmf], datasets: [mosi], config: {grad_accum_rule: mmsa, grad_accum: 7}}
  - {name: one sample left, models: [tfn], datasets: [mosi], config: {batch_size: 95}}
""")
    out = tmp_path / "o"
    code = main(["sweep", str(f), "--dry-run", "--out", str(out)])
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert code == 2 and captured.err.strip() == ("error: 3 setting(s) of this sweep cannot train (listed above); "
                                                  "nothing would run"), captured.err
    # '1 would run:' and then 'the sweep would run nothing' read as a contradiction
    assert lines[1].startswith("sweep: 1 run (1 setting of") and lines[1].endswith(
        "1 would run, were it not for the settings that cannot train (below):"), lines
    assert lines[2].startswith("  tfn mosi seed 1") and lines[2].endswith("[fine]"), lines
    assert lines[3] == "3 setting(s) cannot train, so the sweep would run nothing:"
    assert lines[4].startswith("  tfn mosi [never steps]: grad_accum_rule mmsa drops each epoch's last partial group")
    assert "the train split's 96 samples make 6 batch(es) of 16, fewer than grad_accum 7" in lines[4]
    assert lines[5].startswith("  lmf mosi [never steps]: grad_accum_rule mmsa drops"), lines
    assert lines[6].startswith("  tfn mosi [one sample left]: the train split has 96 samples, so batch_size 95"), lines
    assert len(lines) == 7 and not out.exists()
    code, err = _main(["sweep", str(f), "--out", str(out)], capsys)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: nothing ran: 3 settings of this sweep cannot train: tfn mosi [never steps]: "
                             "grad_accum_rule mmsa drops"), err
    assert "; lmf mosi [never steps]: " in err[0] and "; tfn mosi [one sample left]: " in err[0], err
    assert not (out / "runs").exists() and not store_lines(out)
    from mmsa_atsuko.sweep.plan import plan, unfit_error
    assert str(unfit_error(plan(expand(f), out), shown=1)).endswith(
        "; and 2 more (run.py sweep ... --dry-run lists every one)")


def test_a_dry_runs_plan_line_says_what_would_stop_the_runs_it_lists():
    """'2 would run:' read as the truth beside 'the sweep would stop before its first run' (missing data) or 'would
    run nothing' (settings that cannot train): the line says what holds its runs back."""
    from mmsa_atsuko.sweep.plan import Plan
    from mmsa_atsuko.sweep.plan_lines import held_back
    missing = {("mosei features", "/data/MOSEI/Processed/unaligned_50.pkl"): {("key", 1)}}
    unfit = [("fine", None, "why")]
    assert held_back(Plan([], [], 0, 0, 0)) == ""
    assert held_back(Plan([], [], 0, 0, 0, missing)) == ", were it not for the missing data (below)"
    assert held_back(Plan([], [], 0, 0, 0, missing, unfit=unfit)) == (
        ", were it not for the missing data and the settings that cannot train (below)")


def test_the_workers_started_while_planning_are_guessed_from_records_of_the_same_config_and_data_kind(tmp_path):
    """`likely_todo` counted a run as recorded wherever the store held one of its model, data and seed, whatever its
    config and data: a rerun with -c, or real data after a --synthetic smoke test, guessed 0 runs to do, and no worker
    started beside the planning. It guesses high now: a record counts only of the same config and kind of data."""
    from mmsa_atsuko.sweep.todo_guess import likely_todo
    out = tmp_path / "out"
    sweep(None, out=out, echo=lambda line: None, models=["tfn"], datasets=["mosi"], seeds=[1], max_epochs=1, **SMALL)

    def guess(seeds=(1, 2), **changed):
        return likely_todo(expand(None, **{**dict(models=["tfn"], datasets=["mosi"], seeds=list(seeds),
                                                  max_epochs=1, **SMALL), **changed}), out, retry_failed=False)
    assert guess() == 1                              # seed 1 is recorded, seed 2 is not
    assert guess(models=["TFN"]) == 1                # recorded as tfn
    assert guess(config=["learning_rate=0.5"]) == 2  # another config of seed 1
    assert guess(max_epochs=2) == 2
    assert guess(synthetic=False) == 2               # real data, after a --synthetic smoke test
    assert guess(synthetic_recipe="corrupt") == 2    # another synthetic recipe


def test_a_sweep_in_process_says_where_each_runs_epochs_go(tmp_path):
    """In process (--jobs 1) a run's epochs go to its train.log alone, as a worker's do, and the sweep said nothing
    from its plan line to the run's end: it names that train.log as the run starts, the folder the record ends in."""
    lines = []
    summary = sweep(None, out=tmp_path, backend=LocalBackend(1, "cpu", threads=1, echo=lines.append),
                    echo=lines.append, models=["tfn"], datasets=["mosi"], synthetic=True, preset="small",
                    max_epochs=2, seeds=[1])
    (record,) = summary.records
    started = [line for line in lines if line.startswith("started ")]
    assert started == [f"started tfn mosi seed 1 on cpu: its epochs go to "
                       f"{tmp_path / 'runs' / ('.' + record['run_id'] + '.partial') / 'train.log'}"], lines
    log = (tmp_path / "runs" / record["run_id"] / "train.log").read_text()
    assert "epoch 2" in log.lower(), log[-500:]
