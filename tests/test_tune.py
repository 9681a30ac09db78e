"""run.py tune: Optuna on the validation split only, resumable after SIGKILL, best config run on every seed."""
import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from mmsa_atsuko.errors import UsageError  # noqa: E402
from mmsa_atsuko.sweep import LocalBackend  # noqa: E402
from mmsa_atsuko.sweep.tune import tune  # noqa: E402
from mmsa_atsuko.sweep.tune_space import read_space  # noqa: E402
from mmsa_atsuko.training import trainer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(synthetic=True, preset="small", max_epochs=2)


def test_the_search_never_evaluates_the_test_split_and_the_best_config_runs_on_every_seed(tmp_path, monkeypatch):
    evaluated = []
    real = trainer.evaluate

    def spy(model, split, *args, **kwargs):
        evaluated.append(split.name)
        return real(model, split, *args, **kwargs)

    monkeypatch.setattr(trainer, "evaluate", spy)
    lines = []
    study = tune("tfn", "mosi", trials=3, out=tmp_path, seeds=[1111, 1112], echo=lines.append,
                 final_runs=False, **TINY)
    assert len(study.trials) == 3 and all(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)
    assert "valid" in evaluated and "test" not in evaluated
    assert "3/3 trials done" in lines[-2] and "best" in lines[-2]
    assert lines[0].startswith("[tune-tfn-mosi] planning the tune: reading the config of tfn, its search space ")
    assert "; selecting on valid Loss of synthetic data (min), seed 1111" in lines[1]     # labelled, as tables are
    assert lines[-1].startswith(f"[tune-tfn-mosi] best: trial {study.best_trial.number}, valid Loss of synthetic data ")
    assert (tmp_path / "tune" / "tune-tfn-mosi.db").is_file()
    assert not (tmp_path / "runs.jsonl").exists()          # trials leave no run records
    # The same study again: nothing left to search; its best config runs on both seeds, labelled.
    tune("tfn", "mosi", trials=3, out=tmp_path, seeds=[1111, 1112], echo=lines.append, **TINY)
    records = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    best = study.best_trial.params
    assert [r["seed"] for r in records] == [1111, 1112]
    assert all(r["label"] == "tune-tfn-mosi" and r["status"] == "ok" for r in records)
    assert all(r["config"][k] == v for r in records for k, v in best.items())
    # Which trial's config they ran, as Optuna names a trial (study, number); the leaderboard says so of the row.
    number = study.best_trial.number
    assert [r["tune_trial"] for r in records] == [number, number]
    from mmsa_atsuko.leaderboard import leaderboard
    assert f"\n- tfn: runs labelled tune-tfn-mosi trial {number}\n" in leaderboard(tmp_path, fmt="md")


# Installed in the tune's process through PYTHONPATH: once trial 1 has reported its first epoch, the process kills
# itself, as `kill -9` would. The test polled the study for trial 1 and killed the tune from outside; a poll slowed
# by a busy machine missed trial 1's second or so of training, and the tune ended all 3 trials before the kill.
KILL_THE_TUNE_IN_TRIAL_1 = """
import os, signal
import mmsa_atsuko.api.one_run as one_run
import mmsa_atsuko.sweep.execute as execute
real_run_trial, real_fit = execute.run_trial, one_run.fit          # a trial trains through one_run.train_model

def fit(*args, on_epoch, **kwargs):
    def report(entry):
        on_epoch(entry)                           # the epoch's value reaches the study: trial 1 is mid-way
        os.kill(os.getpid(), signal.SIGKILL)
    return real_fit(*args, on_epoch=report, **kwargs)

def run_trial(run, device, on_start=None):
    if run.trial["number"] == 1:
        one_run.fit = fit
    return real_run_trial(run, device, on_start)

execute.run_trial = run_trial
"""


def test_a_tune_killed_mid_trial_resumes_without_losing_or_repeating_trials(tmp_path):
    command = [sys.executable, str(ROOT / "run.py"), "tune", "-m", "tfn", "-d", "mosi", "--trials", "3",
               "--synthetic", "--preset", "small", "--max-epochs", "2", "-s", "1111", "--out", str(tmp_path / "out")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILL_THE_TUNE_IN_TRIAL_1)
    killed = subprocess.run(command, capture_output=True, text=True, timeout=600,
                            env={**env, "PYTHONPATH": os.pathsep.join([str(hook), str(ROOT)])})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert "trial 0:" in killed.stdout and "trial 1:" not in killed.stdout
    storage = f"sqlite:///{tmp_path / 'out' / 'tune' / 'tune-tfn-mosi.db'}"
    before = optuna.load_study(study_name="tune-tfn-mosi", storage=storage).trials
    assert [t.state.name for t in before] == ["COMPLETE", "RUNNING"]
    assert list(before[1].intermediate_values) == [1]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "trial 1 was running when an earlier tune stopped" in done.stdout
    trials = optuna.load_study(study_name="tune-tfn-mosi", storage=storage).trials
    assert [t.number for t in trials] == list(range(len(trials)))      # no number reused
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 3 and trials[0].value == before[0].value   # trial 0 kept, not rerun
    assert trials[1].state.name == "FAIL" and trials[2].params == before[1].params   # its parameters retried
    records = [json.loads(line) for line in (tmp_path / "out" / "runs.jsonl").read_text().splitlines()]
    assert [(r["seed"], r["label"]) for r in records] == [(1111, "tune-tfn-mosi")]


def test_bad_search_spaces_are_usage_errors(tmp_path):
    bad = tmp_path / "space.yaml"
    bad.write_text("learning_rate: {low: 0.1}\n")
    with pytest.raises(UsageError, match="learning_rate must be"):
        read_space("tfn", bad)
    bad.write_text("no_such_key: {choices: [1, 2]}\n")
    with pytest.raises(UsageError) as err:
        tune("tfn", "mosi", trials=1, out=tmp_path / "out", space_file=bad, backend=LocalBackend(), **TINY)
    assert str(err.value) == (f"{bad}: unknown config key 'no_such_key'; tfn's keys are the common: block of "
                              "configs/tfn.yaml and the defaults of configs/datasets.yaml")
    with pytest.raises(UsageError, match="no search space for mult"):
        read_space("mult")
    with pytest.raises(UsageError) as err:        # it said "... does not exist; write one or pass --space FILE"
        read_space("tfn", tmp_path / "nope.yaml")
    assert str(err.value) == (f"--space {tmp_path / 'nope.yaml'} does not exist: give a YAML file of config key -> "
                              "{low, high[, log]} or {choices: [...]}, one line each (README, Tuning)")


def test_a_model_of_your_own_without_a_space_is_told_to_pass_one_not_to_write_into_the_checkout(tmp_path, monkeypatch):
    """It named configs/tune/<model>.yaml inside the checkout, where a model kept outside it has no business."""
    import shutil

    from conftest import FIXTURES
    from mmsa_atsuko import registry
    from mmsa_atsuko.user_models import discovery
    for suffix in (".py", ".yaml"):
        shutil.copy(FIXTURES / f"latefuse{suffix}", tmp_path)
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_IMPORT_ERRORS", dict(registry._IMPORT_ERRORS))
    monkeypatch.setattr(discovery, "_USER_MODELS", {})
    monkeypatch.setattr(discovery, "_USER_FILES", {})
    for name in ("_user_done", "_USER_DIGESTS"):
        monkeypatch.setattr(discovery, name, dict(getattr(discovery, name)))
    monkeypatch.setenv(discovery.MODELS_ENV, str(tmp_path))
    module = discovery.USER_PACKAGE + ".latefuse"
    try:
        with pytest.raises(UsageError) as err:
            tune("latefuse", "mosi", trials=1, out=tmp_path / "out", backend=LocalBackend(), **TINY)
    finally:
        sys.modules.pop(module, None)          # this test's import of the folder, forgotten as the registry's state
    assert str(err.value) == (f"no search space for latefuse, a model of your own ({tmp_path / 'latefuse.py'}): pass "
                              "--space FILE, a YAML file of config key -> {low, high[, log]} or {choices: [...]}, "
                              "one line each (README, Tuning)")
    assert not (tmp_path / "out").exists()


def test_every_run_option_reaches_the_trials_and_the_final_runs(tmp_path):
    # A stress recipe and a protocol condition: the trial trains on them, the final runs are recorded
    # under them (condition in the identity, recipe in the data id), and the study is named by them.
    lines = []
    study = tune("tfn", "mosi", trials=1, out=tmp_path, seeds=[1111], echo=lines.append,
                 synthetic_recipe="corrupt", missing_rates=[0.25], save_checkpoint="none", **TINY)
    assert study.study_name == "tune-tfn-mosi-corrupt-missing_rate0.25"
    (record,) = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert record["condition"]["missing_rate"] == 0.25 and record["data"].startswith("synthetic:corrupt")
    assert record["label"] == study.study_name and record["status"] == "ok"
    assert not (tmp_path / record["run_dir"] / "best.pt").exists()          # --save-checkpoint none
    assert study.user_attrs["search"]["condition"] == "missing_rate=0.25"


@pytest.mark.parametrize("name", ["a/b", "../outside", ".hidden", "x\ny", "x" * 101])
def test_a_study_name_that_is_no_file_name_is_one_line_before_any_work(tmp_path, name):
    """The name is the study's file, <out>/tune/<name>.db, and its runs' label: `a/b` was sqlite's traceback
    after the results folder was made, `../outside` a database outside it."""
    with pytest.raises(UsageError, match=r"^--study .* is no study name: give one of letters, digits"):
        tune("tfn", "mosi", trials=1, out=tmp_path / "results", study_name=name, **TINY)
    assert list(tmp_path.iterdir()) == []


def test_a_default_study_name_too_long_is_one_line_that_says_to_give_one(tmp_path, monkeypatch):
    """A --datasets name of 64 letters, aligned and under a protocol condition, made the default name
    (tune-<model>-<dataset>-aligned-<condition>) over 100 characters, and the line blamed a --study never given."""
    import yaml
    name = "d" * 64
    block = {"format": "mmsa", "task": "regression", "metrics": "mosi", "headline": "MAE", "language": "en",
             "label_range": [-3.0, 3.0], "files": {"unaligned": "D/u.pkl", "aligned": "D/a.pkl"}, "config": {}}
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump({"datasets": {name: block}}))
    monkeypatch.setenv("MMSA_ATSUKO_DATASETS", str(tmp_path / "mine.yaml"))
    with pytest.raises(UsageError, match=r"^the study's default name tune-tfn-ddd.*\.\.\. is longer than 100 "
                                         r"characters: give it a shorter one with --study NAME$"):
        tune("tfn", name, trials=1, out=tmp_path / "results", synthetic=False, preset="small", max_epochs=1,
             aligned=True, missing_rates=[0.25], drop_modality="T")      # ...-aligned-missing_rate0.25-dropT
    assert not (tmp_path / "results").exists()


def test_a_tune_names_one_setting_and_a_study_resumes_only_the_search_it_began(tmp_path):
    with pytest.raises(UsageError, match="a tune searches one setting, and these options name 2"):
        tune("tfn", "mosi", trials=1, out=tmp_path, missing_rates=[0.0, 0.5], **TINY)
    tune("tfn", "mosi", trials=1, out=tmp_path, study_name="s", final_runs=False, echo=lambda _: None, **TINY)
    with pytest.raises(UsageError, match=r"study s in .* searched with other config_hash.*--study NAME"):
        tune("tfn", "mosi", trials=2, out=tmp_path, study_name="s", final_runs=False,
             **{**TINY, "max_epochs": 3})
    with pytest.raises(UsageError, match="searched with other trial_seed"):
        tune("tfn", "mosi", trials=2, out=tmp_path, study_name="s", seeds=[7], final_runs=False, **TINY)
    assert len(optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'tune' / 's.db'}").trials) == 1


def test_a_study_resumes_only_on_the_data_it_searched_even_at_the_same_path(tmp_path, monkeypatch):
    """The facts named the data by its paths: another file at the same path (or $MMSA_DATA_ROOT pointing
    elsewhere) resumed the study, and its best was chosen among trials scored on two files."""
    from mmsa_atsuko.data.synthetic import write_synthetic
    feature_file = tmp_path / "data" / "mosi.pkl"
    kw = dict(out=tmp_path, study_name="s", final_runs=False, echo=lambda _: None, feature_path=str(feature_file),
              preset="small", max_epochs=1)
    write_synthetic("mosi", feature_file, seed=0)
    tune("tfn", "mosi", trials=1, **kw)
    write_synthetic("mosi", feature_file, seed=1)                  # another file where the first one was
    with pytest.raises(UsageError, match=r"searched with other data \(data: 'synthetic:mosi-small-unaligned-seed0-"):
        tune("tfn", "mosi", trials=2, **kw)
    write_synthetic("mosi", feature_file, seed=0)                  # the first file again: the study goes on
    tune("tfn", "mosi", trials=2, **kw)
    assert len(optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'tune' / 's.db'}").trials) == 2
    with open(feature_file, "rb") as f:
        data = pickle.load(f)                        # our own file: the plain unpickler is fine here
    del data["__synthetic__"]                        # now a file of real data, as far as the toolkit can tell
    with open(feature_file, "wb") as f:
        pickle.dump(data, f, protocol=4)
    lines = []
    tune("tfn", "mosi", trials=1, **{**kw, "study_name": "real", "echo": lines.append})
    assert lines[1].endswith("selecting on valid Loss (min), seed 1111") and "synthetic" not in "".join(lines)


def test_a_study_locked_past_the_busy_timeout_stops_in_one_line_and_the_same_command_resumes_it(tmp_path,
                                                                                                 monkeypatch):
    """Another connection holds the study's write lock ("BEGIN EXCLUSIVE") past the busy timeout while the driver
    tells a trial's result: before, SQLite's "database is locked" after 5 s was a traceback (Optuna's
    StorageInternalError); now one ToolkitError line says the study is kept, a start while it is still held says
    the same (before: "not an SQLite database ...: remove it"), and once it is free the same call goes on."""
    import sqlite3

    from mmsa_atsuko.errors import ToolkitError
    from mmsa_atsuko.sweep import execute, study_file
    monkeypatch.setattr(study_file, "STUDY_BUSY_S", 0.5)
    db = tmp_path / "tune" / "s.db"
    holders, real_trial = [], execute.run_trial

    def trained_then_locked(run, device, on_start=None):
        outcome = real_trial(run, device, on_start)
        if not holders:
            holders.append(sqlite3.connect(db, isolation_level=None))
            holders[0].execute("BEGIN EXCLUSIVE")      # held until the test lets it go, far past 0.5 s
        return outcome
    monkeypatch.setattr(execute, "run_trial", trained_then_locked)
    call = dict(trials=2, out=tmp_path, study_name="s", final_runs=False, echo=lambda _: None, **TINY)
    for _ in range(2):                  # told while locked; then started again while it still is
        with pytest.raises(ToolkitError) as stopped:
            tune("tfn", "mosi", backend=LocalBackend(jobs=1), **call)
        line = str(stopped.value)
        assert type(stopped.value) is ToolkitError and "\n" not in line, line
        assert line.startswith(f"{db} stayed locked by another process") and "database is locked" in line, line
        assert line.endswith("the study is kept: run the same command again to resume it"), line
    holders[0].rollback()
    holders[0].close()
    monkeypatch.setattr(execute, "run_trial", real_trial)
    lines = []
    study = tune("tfn", "mosi", backend=LocalBackend(jobs=1), **{**call, "echo": lines.append})
    assert "trial 0 was running when an earlier tune stopped: its parameters run again as a new trial" in lines[1]
    states = [(t.number, t.state.name, t.user_attrs.get("interrupted", False)) for t in study.trials]
    assert states[0] == (0, "FAIL", True) and len(states) == 3, states        # 0 retried: two trials count
    assert all(state in ("COMPLETE", "PRUNED") and not interrupted for _, state, interrupted in states[1:]), states


def test_a_trial_that_meets_the_study_locked_fails_saying_so_in_plain_words(tmp_path, monkeypatch):
    """Another connection holds the study's write lock ("BEGIN EXCLUSIVE") past the busy timeout while a trial
    reports its first epoch: the trial fails, and its line says the study database was locked by another writer
    and what to do; before, it quoted Optuna's StorageInternalError ("... invalid data in the commit ...").
    The lock is let go before the driver tells the result, so the tune goes on to its second trial."""
    import sqlite3

    import optuna

    from mmsa_atsuko.sweep import execute, study_file
    monkeypatch.setattr(study_file, "STUDY_BUSY_S", 0.5)
    db = tmp_path / "tune" / "s.db"
    holders, real_trial, real_report = [], execute.run_trial, optuna.trial.Trial.report

    def report_once_locked(trial, value, step):
        if not holders:
            holders.append(sqlite3.connect(db, isolation_level=None))
            holders[0].execute("BEGIN EXCLUSIVE")          # held until the trial has ended
        return real_report(trial, value, step)

    def trial_then_unlocked(run, device, on_start=None):
        try:
            return real_trial(run, device, on_start)
        finally:
            if holders and holders[0].in_transaction:
                holders[0].rollback()
    monkeypatch.setattr(optuna.trial.Trial, "report", report_once_locked)
    monkeypatch.setattr(execute, "run_trial", trial_then_unlocked)
    lines = []
    study = tune("tfn", "mosi", trials=2, out=tmp_path, study_name="s", final_runs=False, echo=lines.append,
                 backend=LocalBackend(jobs=1), **TINY)
    holders[0].close()
    (line,) = [line for line in lines if line.startswith("[s] trial 0: ")]
    assert line.startswith(f"[s] trial 0: FAILED: the study database {db} was locked by another writer for over "
                           f"0.5 s (database is locked), so this trial could not use it; ") and \
        "StorageInternalError" not in line and "invalid data" not in line, line
    assert "close what holds it (an open sqlite3 shell, another process) and run the same command again" in line, line
    assert [t.state.name for t in study.trials][0] == "FAIL" and len(study.trials) == 2


def test_a_study_locked_for_longer_than_sqlites_default_wait_is_waited_for(tmp_path, monkeypatch):
    """SQLite's own busy timeout is 5 s: a lock held 6 s while the driver tells a result stopped the tune. Ours
    (STUDY_BUSY_S, a minute) waits for it, and the tune ends with both trials told."""
    import sqlite3
    import threading
    import time

    from mmsa_atsuko.sweep import execute
    db, real_trial, released = tmp_path / "tune" / "s.db", execute.run_trial, []
    locked = threading.Event()

    def hold_for_6_s():
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        locked.set()
        time.sleep(6)
        holder.rollback()
        holder.close()
        released.append(True)

    def trained_then_locked(run, device, on_start=None):
        outcome = real_trial(run, device, on_start)
        if run.trial["number"] == 0:
            threading.Thread(target=hold_for_6_s).start()
            locked.wait(timeout=30)
        return outcome
    monkeypatch.setattr(execute, "run_trial", trained_then_locked)
    study = tune("tfn", "mosi", trials=2, out=tmp_path, study_name="s", final_runs=False, echo=lambda _: None,
                 backend=LocalBackend(jobs=1), **TINY)
    assert released == [True] and [t.state.name in ("COMPLETE", "PRUNED") for t in study.trials] == [True, True]


def test_tune_options_that_name_the_other_backend_are_one_line(tmp_path, capsys):
    from mmsa_atsuko.cli import main
    for argv, expected in (
            (["--backend", "ray", "--jobs", "2"], "--jobs and --devices are for --backend local"),
            (["--cpus-per-run", "1"], "--cpus-per-run only apply to --backend ray")):
        code = main(["tune", "-m", "tfn", "-d", "mosi", "--trials", "1", "--synthetic", "--out", str(tmp_path),
                     *argv])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and err == [f"error: {expected}" + err[0].split(expected, 1)[1]], err
    assert not (tmp_path / "tune").exists()


def test_trials_on_ray_are_asked_as_slots_free_and_score_as_in_process(tmp_path):
    if os.environ.get("MMSA_ATSUKO_REQUIRE_RAY") != "1":
        pytest.importorskip("ray", reason="the [ray] extra is not installed")
    import ray

    from mmsa_atsuko.sweep import RayBackend
    local = tune("tfn", "mosi", trials=3, out=tmp_path / "local", final_runs=False, echo=lambda _: None, **TINY)
    ray.init(num_cpus=2, include_dashboard=False)          # two slots of one CPU, whatever the machine has
    try:
        remote = tune("tfn", "mosi", trials=3, out=tmp_path / "ray", backend=RayBackend(cpus_per_run=1),
                      final_runs=False, echo=lambda _: None, **TINY)
    finally:
        ray.shutdown()
    ours, theirs = remote.get_trials(deepcopy=False), local.get_trials(deepcopy=False)
    assert [t.number for t in ours] == [0, 1, 2] and all(t.state.name in ("COMPLETE", "PRUNED") for t in ours)
    # The same seeded proposals, trained the same way in a Ray worker (one torch thread, as here).
    assert [t.params for t in ours] == [t.params for t in theirs]
    assert [t.value for t in ours[:2]] == [t.value for t in theirs[:2]]
    # Two slots: trials 0 and 1 ran together; trial 2 was asked only after one of them was told.
    assert ours[1].datetime_start < ours[0].datetime_complete
    assert ours[2].datetime_start >= min(ours[0].datetime_complete, ours[1].datetime_complete)


class _FirstWorkerDies(LocalBackend):
    """In process, except that the first trial's worker 'dies': the backend reports it as the local and
    Ray backends do, through `execute.failure`. Records what the tune tells it to expect."""

    def __init__(self):
        super().__init__(jobs=1)
        self.started, self.expected = [], []

    def start(self, runs=1 << 30):
        self.started.append(runs)

    def run(self, runs, out, on_result, expected=None):
        from datetime import datetime, timezone

        from mmsa_atsuko.sweep.execute import execute, failure
        self.expected.append(expected)
        for i, (run, run_id) in enumerate(runs):
            if i == 0:
                on_result(failure(run, run_id, out, "cpu", "worker process died (exit code -9)",
                                  datetime.now(timezone.utc), 1.5))
            else:
                on_result(execute(run, run_id, str(out), "cpu"))


def test_a_trial_whose_worker_died_fails_and_its_parameters_leave_no_folder(tmp_path):
    lines, backend = [], _FirstWorkerDies()
    study = tune("tfn", "mosi", trials=2, out=tmp_path, echo=lines.append, final_runs=False, backend=backend, **TINY)
    states = [t.state.name for t in study.trials]
    # The failed trial counts toward --trials, as in Optuna's optimize(n_trials=...).
    assert states[0] == "FAIL" and len(states) == 2 and states[1] in ("COMPLETE", "PRUNED")
    assert any("trial 0: FAILED: worker process died (exit code -9) (1.5s) | 1/2 trials done" in line
               for line in lines), lines
    assert "1 of this call's 2 trials failed" in lines[-2], lines
    assert not (tmp_path / "runs").exists()          # a trial has no run folder, failed or not
    assert backend.started == [2] and backend.expected == [2]     # what --jobs auto sizes by


def test_jobs_auto_starts_no_more_workers_than_runs(monkeypatch):
    sizes = []
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    monkeypatch.setattr(LocalBackend, "_resize", lambda self, size: sizes.append(size))
    backend = LocalBackend(jobs="auto", devices="cpu", threads=1)
    backend.start(1)          # one run: it trains in process, no worker
    backend.start(3)
    backend.start(1 << 30)
    assert sizes == [3, 8]


def test_a_study_begun_without_a_record_of_some_options_adopts_them_with_a_warning(tmp_path):
    tune("tfn", "mosi", trials=1, out=tmp_path, study_name="s", final_runs=False, echo=lambda _: None, **TINY)
    storage = f"sqlite:///{tmp_path / 'tune' / 's.db'}"
    study = optuna.load_study(study_name="s", storage=storage)
    older = {k: v for k, v in study.user_attrs["search"].items() if k not in ("precision", "deterministic")}
    study.set_user_attr("search", older)          # as a tune before this one stored them
    lines = []
    tune("tfn", "mosi", trials=2, out=tmp_path, study_name="s", final_runs=False, echo=lines.append, **TINY)
    assert any("no record of their precision, deterministic; they count as searched with these" in line
               for line in lines), lines
    assert optuna.load_study(study_name="s", storage=storage).user_attrs["search"]["precision"] == "fp32"
    with pytest.raises(UsageError, match="searched with other precision"):
        tune("tfn", "mosi", trials=3, out=tmp_path, study_name="s", final_runs=False, precision="bf16", **TINY)


class _Runaway(BaseException):
    """Raised by the guard below: not an Exception, so that no `except Exception` takes it for a failed trial."""


def _guard_trials(monkeypatch, limit: int) -> list:
    """Let at most `limit` trials start (a tune that never ends fails the test instead of hanging it)."""
    from mmsa_atsuko.sweep import execute
    started, real = [], execute.run_trial

    def guarded(run, device, on_start=None):
        started.append(run.trial["number"])
        if len(started) > limit:
            raise _Runaway(f"trial {len(started)} started; at most {limit} expected")
        return real(run, device, on_start)

    monkeypatch.setattr(execute, "run_trial", guarded)
    return started


def _cli_tune(tmp_path, capsys, *argv):
    from mmsa_atsuko.cli import main
    code = main(["tune", "-m", "tfn", "-d", "mosi", "--synthetic", "--preset", "small", "--max-epochs", "1",
                 "-s", "1111", *argv])
    out, err = capsys.readouterr()
    return code, out, err.strip().splitlines()


@pytest.mark.parametrize("entry, expected", [
    ("post_fusion_dim: {choices: [16, 0]}",
     "post_fusion_dim must be at least 1, got 0 (a choice of post_fusion_dim): drop it from the choices"),
    ("post_fusion_dim: {low: 8.0, high: 32.0}",
     "post_fusion_dim is an int, but its bounds 8.0, 32.0 are not both integers, so the search would propose "
     "fractions: write both as integers (8, not 8.0)"),
    ("post_fusion_dim: {low: 0, high: 16}",
     "post_fusion_dim must be at least 1, got 0 (the low bound of post_fusion_dim's range): narrow the range"),
    ("batch_size: {choices: [16, 0]}",          # refused by the trainer's check, not the config's
     "batch_size must be at least 1, got 0 (a choice of batch_size): drop it from the choices"),
    ("learning_rate: {low: 0, high: 1}",
     "learning_rate is a float, but integer bounds 0, 1 search whole numbers only: write them as floats (0.0, 1.0)"),
    ("weight_decay: {low: 0.0, high: 0.1, log: true}", "weight_decay: a log range needs low > 0, got 0.0"),
    # YAML 1.1 reads 1e-4 as a string: the sweep file's line (a bound was read as 1e-4, a choice told to go)
    ("learning_rate: {low: 1e-4, high: 1.0e-2, log: true}",
     "learning_rate must be a float like 0.001, got '1e-4'; write 1.0e-4 (YAML 1.1 reads 1e-4 as a string) (the low "
     "bound of learning_rate's range)"),
    ("learning_rate: {choices: [1.0e-3, 1e-4]}",
     "learning_rate must be a float like 0.001, got '1e-4'; write 1.0e-4 (YAML 1.1 reads 1e-4 as a string) (a choice "
     "of learning_rate)"),
    ("post_fusion_dim: {low: 8, high: '32'}",
     "post_fusion_dim must be an int like 64, got '32'; write it without quotes (the high bound of post_fusion_dim's "
     "range)"),
])
def test_a_space_value_the_config_refuses_is_one_line_before_any_trial_or_storage(tmp_path, capsys, monkeypatch,
                                                                                  entry, expected):
    started = _guard_trials(monkeypatch, 0)
    space = tmp_path / "space.yaml"
    space.write_text(entry + "\n")
    code, out, err = _cli_tune(tmp_path, capsys, "--trials", "2", "--space", str(space), "--out", str(tmp_path / "o"))
    assert (code, err, out) == (2, [f"error: {space}: {expected}"], ""), err
    assert started == [] and not (tmp_path / "o").exists()        # no study, no storage file


def test_a_study_whose_space_stored_a_bound_as_a_string_resumes_on_the_space_file_that_spells_it(tmp_path):
    """A tune before the space file's bounds were held to a YAML file's spelling read `low: 1e-4` as 0.0001 and
    stored the string '1e-4' in its search record; the file that now passes says 1.0e-4, and resuming the study on
    it said "searched with other space", a study no space file could resume."""
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}\n")
    call = dict(out=tmp_path, study_name="s", seeds=[1111], final_runs=False, echo=lambda _: None, space_file=space,
                synthetic=True, preset="small", max_epochs=1)
    study = tune("tfn", "mosi", trials=1, **call)
    search = study.user_attrs["search"]
    study.set_user_attr("search", {**search, "space": {"learning_rate": {"low": "1e-4", "high": 0.01, "log": True}}})
    assert len(tune("tfn", "mosi", trials=2, **call).trials) == 2
    space.write_text("learning_rate: {low: 2.0e-4, high: 1.0e-2, log: true}\n")       # another space is still refused
    with pytest.raises(UsageError, match="searched with other space"):
        tune("tfn", "mosi", trials=3, **call)


def test_failed_trials_count_toward_trials_and_a_call_whose_first_five_fail_stops(tmp_path, capsys, monkeypatch):
    # A failure the space check cannot see: training itself raises (as a CUDA error would).
    from mmsa_atsuko.api import one_run          # a trial trains through one_run.train_model
    real_fit = one_run.fit

    def broken_fit(*args, **kwargs):
        raise RuntimeError("CUDA error: device-side assert triggered")

    monkeypatch.setattr(one_run, "fit", broken_fit)
    started = _guard_trials(monkeypatch, 30)
    code, out, err = _cli_tune(tmp_path, capsys, "--trials", "3", "--out", str(tmp_path / "few"))
    assert code == 1 and len(err) == 1 and "3/3 trials done" in out
    assert err[0].startswith("error: [tune-tfn-mosi] all 3 trials of this call failed, so the tune stops"), err
    assert err[0].endswith("the last error: RuntimeError: CUDA error: device-side assert triggered"), err
    storage = f"sqlite:///{tmp_path / 'few' / 'tune' / 'tune-tfn-mosi.db'}"
    assert [t.state.name for t in optuna.load_study(study_name="tune-tfn-mosi", storage=storage).trials] == ["FAIL"] * 3

    started.clear()
    code, out, err = _cli_tune(tmp_path, capsys, "--trials", "20", "--out", str(tmp_path / "many"))
    assert code == 1 and len(err) == 1 and len(started) == 5, (started, err)
    assert "the first 5 trials of this call all failed" in err[0] and "(15 trials left)" in err[0], err
    # Resumed once fixed: the stored failures count, so 2 more trials make 7.
    monkeypatch.setattr(one_run, "fit", real_fit)
    lines = []
    study = tune("tfn", "mosi", trials=7, out=tmp_path / "many", seeds=[1111], final_runs=False, echo=lines.append,
                 synthetic=True, preset="small", max_epochs=1)
    assert "5/7 trials done before this call" in lines[1]          # after the planning line
    assert [t.state.name for t in study.trials][:5] == ["FAIL"] * 5 and len(study.trials) == 7
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials[5:])


def test_failures_after_a_finished_trial_count_but_do_not_stop_the_tune(tmp_path, monkeypatch):
    # Failures that depend on the proposed values (one trial already trained): the tune goes on to --trials.
    from mmsa_atsuko.api import one_run          # a trial trains through one_run.train_model
    real_fit, calls = one_run.fit, []

    def fit_once(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("CUDA out of memory")
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(one_run, "fit", fit_once)
    _guard_trials(monkeypatch, 30)
    lines = []
    study = tune("tfn", "mosi", trials=7, out=tmp_path, seeds=[1111], final_runs=False, echo=lines.append,
                 synthetic=True, preset="small", max_epochs=1)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] + ["FAIL"] * 6
    assert "6 of this call's 7 trials failed" in lines[-2] and "best:" in lines[-1], lines


def test_a_trial_cut_short_is_promised_a_rerun_only_where_this_call_has_room_for_it(tmp_path, monkeypatch):
    """Before: after a kill at trial 9 of --trials 40, a call with --trials 8 said trial 9's parameters "run again
    as a new trial" and "9/8 trials done before this call", and ran nothing. Here 2 trials ended and trials 2 and
    3 were running when the tune died: --trials 2 runs none and says so; --trials 3 runs 2's parameters, not 3's;
    --trials 4 runs 3's, queued two calls before."""
    from mmsa_atsuko.sweep.tune_space import suggest
    started = _guard_trials(monkeypatch, 4)
    call = dict(out=tmp_path, study_name="s", seeds=[1111], final_runs=False, synthetic=True, preset="small",
                max_epochs=1)
    tune("tfn", "mosi", trials=2, echo=lambda _: None, **call)
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'tune' / 's.db'}")
    cut = [suggest(study.ask(), read_space("tfn")) for _ in range(2)]       # trials 2 and 3, left RUNNING
    runs = []
    for trials in (2, 3, 4):
        lines, before = [], len(started)
        tune("tfn", "mosi", trials=trials, echo=lines.append, **call)
        said = [line.split("] ", 1)[1].split("; storage")[0] for line in lines
                if "was running" in line or "before this call" in line]
        runs.append((len(started) - before, said))
    assert runs[0] == (0, [
        "trial 2 was running when an earlier tune stopped: it does not count, and its parameters are kept to run "
        "again as a new trial, which --trials 2 leaves no room for: give --trials 3 or more",
        "trial 3 was running when an earlier tune stopped: it does not count, and its parameters are kept to run "
        "again as a new trial, which --trials 2 leaves no room for: give --trials 4 or more",
        "2 trials done before this call, --trials 2: no trial to run (give --trials 3 or more to search on)"]), runs
    assert runs[1:] == [(1, ["2/3 trials done before this call"]), (1, ["3/4 trials done before this call"])], runs
    trials = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'tune' / 's.db'}").trials
    assert [(t.number, t.state.name, t.user_attrs.get("interrupted", False)) for t in trials[2:4]] == \
        [(2, "FAIL", True), (3, "FAIL", True)]
    assert [t.params for t in trials[4:]] == cut and len(trials) == 6      # run in the order they were cut


def test_a_trial_value_the_config_refuses_is_blamed_on_the_space_file(tmp_path, capsys, monkeypatch):
    # As if the space check missed a value: the trial's error names the space file, not -c.
    import mmsa_atsuko.sweep.tune as tune_module
    monkeypatch.setattr(tune_module, "check_space", lambda *args: None)
    _guard_trials(monkeypatch, 30)
    space = tmp_path / "space.yaml"
    space.write_text("post_fusion_dim: {low: 8.0, high: 32.0}\n")
    code, out, err = _cli_tune(tmp_path, capsys, "--trials", "2", "--space", str(space), "--out", str(tmp_path / "o"))
    failed = [line for line in out.splitlines() if "FAILED" in line]
    assert code == 1 and len(failed) == 2 and len(err) == 1, (out, err)
    assert all(f"FAILED: UsageError: {space}: post_fusion_dim must be an int like 64, got " in line for line in failed)
    assert "command-line override" not in out + err[0]


TUNE_TO_CUT = ["tune", "-m", "tfn", "-d", "mosi", "--trials", "1", "-s", "1111", "1112", "--synthetic", "--preset",
               "small", "--max-epochs", "2"]


def test_tune_resume_continues_a_final_run_cut_short_and_ends_as_an_uninterrupted_tune(tmp_path, capsys,
                                                                                        monkeypatch):
    """Before: tune offered no --resume, and its final run cut short trained again from epoch 1. With --resume the
    same command continues it in its folder, under its run_id, from its last finished epoch (through sweep's
    mechanism), and both final runs end bit for bit as in a tune never cut short (CPU, 1 thread)."""
    from conftest import die_before_last_pt_of_epoch
    from mmsa_atsuko.cli import main
    from mmsa_atsuko.results import read_records
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main([*TUNE_TO_CUT, "--out", str(whole)]) == 0
    die_before_last_pt_of_epoch(monkeypatch, 2)            # trials write no last.pt: the first final run is cut
    assert main([*TUNE_TO_CUT, "--out", str(cut)]) == 130
    monkeypatch.undo()
    (partial,) = (cut / "runs").glob(".*.partial")
    assert "-s1111-" in partial.name and not (cut / "runs.jsonl").exists()
    capsys.readouterr()

    assert main([*TUNE_TO_CUT, "--out", str(cut), "--resume"]) == 0
    out = capsys.readouterr().out
    assert "2 to run, 1 of them cut short earlier, to continue from their last finished epoch (--resume)" in out
    uncut = {r["seed"]: r for r in read_records(whole)}
    resumed = {r["seed"]: r for r in read_records(cut)}
    assert sorted(resumed) == [1111, 1112] and all(r["status"] == "ok" for r in resumed.values())
    for seed in (1111, 1112):
        for key in ("metrics", "valid_metrics", "best_epoch", "epochs_run", "config", "tune_trial"):
            assert repr(resumed[seed][key]) == repr(uncut[seed][key]), (seed, key)   # repr round-trips every float
    first = resumed[1111]
    assert first["run_id"] == partial.name[1:-len(".partial")] and len(first["earlier_attempts"]) == 1
    log = (cut / first["run_dir"] / "train.log").read_text()
    assert log.count("resumed after epoch 1 ") == 1 and log.count("INFO epoch 1 ") == 1     # not trained again
    assert not list((cut / "runs").glob(".*"))


def test_a_final_run_that_failed_runs_again_on_the_next_tune(tmp_path, capsys, monkeypatch):
    """tune offers no --retry-failed: a final run recorded failed was skipped by every later tune, whose plan line
    named --retry-failed, which tune refuses. It runs again, as run.py runs a failed seed again. The tune that
    recorded it failed exits 1 (it exited 0, its final runs' summary ignored)."""
    from mmsa_atsuko.cli import main
    from mmsa_atsuko.results import read_records
    real = trainer.save_training_state

    def fail_seed_1112(path, *args):
        if "-s1112-" in str(path):
            raise RuntimeError("a crash of seed 1112")
        return real(path, *args)

    monkeypatch.setattr(trainer, "save_training_state", fail_seed_1112)
    capsys.readouterr()
    # A tune whose final run failed exits 1 in one line, as run.py of several seeds and sweep do; before, 0.
    assert main([*TUNE_TO_CUT, "--out", str(tmp_path)]) == 1
    monkeypatch.undo()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: [tune-tfn-mosi] final runs of the best config: 1 run(s) "
                                               "failed, e.g. tfn mosi seed 1112: RuntimeError: a crash of seed 1112"), err
    assert f"(records in {tmp_path / 'runs.jsonl'}; the same command runs them again)" in err[0], err
    assert [(r["seed"], r["status"]) for r in read_records(tmp_path)] == [(1111, "ok"), (1112, "failed")]
    assert main([*TUNE_TO_CUT, "--out", str(tmp_path)]) == 0
    (plan,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("sweep: ")]
    assert "1 already recorded, 1 failed before and retried, 1 to run" in plan
    assert [(r["seed"], r["status"]) for r in read_records(tmp_path)][2:] == [(1112, "ok")]


@pytest.mark.parametrize("entry, config, expected", [
    ("key_eval: {choices: [Loss, Corr]}", [],
     "key_eval cannot be searched: it is the valid metric every trial is scored on, and scores of different metrics "
     "cannot be compared; set it for the whole study with -c instead (now key_eval=Loss), or tune one study per "
     "value"),
    ("valid_loss: {choices: [exact, mmsa]}", [],
     "valid_loss cannot be searched: it is how valid's Loss is computed, which the trials are scored on with "
     "key_eval Loss (and the plateau scheduler steps on), not a setting of the model; set it for the whole study "
     "with -c instead (now valid_loss=exact), or tune one study per value"),
    ("eval_batch_size: {choices: [16, 64]}", ["-c", "valid_loss=mmsa"],
     "eval_batch_size cannot be searched with valid_loss mmsa and key_eval Loss: MMSA's Loss is a mean of batch "
     "means, so the valid batch size changes the score a trial gets, not the model; drop it from the space, or "
     "search with -c valid_loss=exact"),
])
def test_a_space_that_searches_what_the_trials_are_scored_on_is_one_line_before_any_trial(
        tmp_path, capsys, monkeypatch, entry, config, expected):
    """`key_eval: {choices: [Loss, Corr]}` was accepted: trials scored themselves on Corr (0.32) or Loss (1.26), every
    progress line said "valid Loss", and the minimising study picked the Corr trial as its best."""
    started = _guard_trials(monkeypatch, 0)
    space = tmp_path / "space.yaml"
    space.write_text(entry + "\n")
    code, out, err = _cli_tune(tmp_path, capsys, "--trials", "2", "--space", str(space), "--out", str(tmp_path / "o"),
                               *config)
    assert (code, err, out) == (2, [f"error: {space}: {expected}"], ""), err
    assert started == [] and not (tmp_path / "o").exists()


def test_eval_batch_size_may_be_searched_where_it_does_not_change_the_score(tmp_path):
    """Under the default valid_loss exact the Loss is a per-sample mean: the valid batch size leaves it alone."""
    space = tmp_path / "space.yaml"
    space.write_text("eval_batch_size: {choices: [16, 64]}\n")
    study = tune("tfn", "mosi", trials=1, out=tmp_path / "o", space_file=space, seeds=[1111], final_runs=False,
                 echo=lambda _: None, **TINY)
    assert len(study.trials) == 1


@pytest.mark.parametrize("value", ["-1", str(2 ** 32)])
def test_a_tune_seed_numpy_cannot_take_is_one_line_before_any_file(tmp_path, capsys, monkeypatch, value):
    """It was numpy's "Seed must be between 0 and 2**32 - 1" traceback, leaving tune/<study>.db and .sweep.lock."""
    started = _guard_trials(monkeypatch, 0)
    code, out, err = _cli_tune(tmp_path, capsys, "--trials", "1", "--tune-seed", value, "--out", str(tmp_path / "o"))
    assert (code, out, err) == (2, "", [f"error: --tune-seed: seed {value} is out of range; a seed is 0 to 2**32 - 1 "
                                        f"(numpy's limit)"])
    assert started == [] and not (tmp_path / "o").exists()


def test_the_largest_tune_seed_resumes(tmp_path):
    """The sampler of a resumed study is seeded with --tune-seed plus the trials stored: past numpy's range at the
    top of it, a traceback on the second call."""
    call = dict(out=tmp_path, seed=2 ** 32 - 1, seeds=[1111], final_runs=False, echo=lambda _: None, **TINY)
    tune("tfn", "mosi", trials=1, **call)
    assert len(tune("tfn", "mosi", trials=2, **call).trials) == 2


def test_a_misspelt_space_key_names_the_space_file_and_the_closest_known_key(tmp_path, capsys, monkeypatch):
    """It said "search space keys learning_rat are not config keys of tfn": no file, no hint, where `-c` has one."""
    started = _guard_trials(monkeypatch, 0)
    space = tmp_path / "sp.yaml"
    space.write_text("post_fusion_dim: {choices: [16, 32]}\nlearning_rat: {low: 1.0e-4, high: 1.0e-2}\n")
    code, out, err = _cli_tune(tmp_path, capsys, "--trials", "2", "--space", str(space), "--out", str(tmp_path / "o"))
    assert (code, out, err) == (2, "", [f"error: {space}: unknown config key 'learning_rat'; closest known: "
                                        f"learning_rate"])
    assert started == [] and not (tmp_path / "o").exists()
