"""run.py tune: Optuna on the validation split only, resumable after SIGKILL, best config run on every seed."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from mmsa_atsuko.errors import UsageError  # noqa: E402
from mmsa_atsuko.sweep import LocalBackend  # noqa: E402
from mmsa_atsuko.sweep.tune import read_space, tune  # noqa: E402
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
    assert (tmp_path / "tune" / "tune-tfn-mosi.db").is_file()
    assert not (tmp_path / "runs.jsonl").exists()          # trials leave no run records
    # The same study again: nothing left to search; its best config runs on both seeds, labelled.
    tune("tfn", "mosi", trials=3, out=tmp_path, seeds=[1111, 1112], echo=lines.append, **TINY)
    records = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    best = study.best_trial.params
    assert [r["seed"] for r in records] == [1111, 1112]
    assert all(r["label"] == "tune-tfn-mosi" and r["status"] == "ok" for r in records)
    assert all(r["config"][k] == v for r in records for k, v in best.items())


def test_a_tune_killed_mid_trial_resumes_without_losing_or_repeating_trials(tmp_path):
    command = [sys.executable, str(ROOT / "run.py"), "tune", "-m", "tfn", "-d", "mosi", "--trials", "3",
               "--synthetic", "--preset", "small", "--max-epochs", "2", "-s", "1111", "--out", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    storage = f"sqlite:///{tmp_path / 'tune' / 'tune-tfn-mosi.db'}"
    first = None
    for line in proc.stdout:
        if "trial 0:" in line:
            first = line
            break
    assert first is not None
    deadline = time.time() + 60
    while time.time() < deadline:                       # kill it once trial 1 is running
        before = optuna.load_study(study_name="tune-tfn-mosi", storage=storage).trials
        if len(before) == 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    before = optuna.load_study(study_name="tune-tfn-mosi", storage=storage).trials
    assert [t.state.name for t in before] == ["COMPLETE", "RUNNING"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "trial 1 was running when an earlier tune stopped" in done.stdout
    trials = optuna.load_study(study_name="tune-tfn-mosi", storage=storage).trials
    assert [t.number for t in trials] == list(range(len(trials)))      # no number reused
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 3 and trials[0].value == before[0].value   # trial 0 kept, not rerun
    assert trials[1].state.name == "FAIL" and trials[2].params == before[1].params   # its parameters retried
    records = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert [(r["seed"], r["label"]) for r in records] == [(1111, "tune-tfn-mosi")]


def test_bad_search_spaces_are_usage_errors(tmp_path):
    bad = tmp_path / "space.yaml"
    bad.write_text("learning_rate: {low: 0.1}\n")
    with pytest.raises(UsageError, match="learning_rate must be"):
        read_space("tfn", bad)
    bad.write_text("no_such_key: {choices: [1, 2]}\n")
    with pytest.raises(UsageError, match="not config keys of tfn"):
        tune("tfn", "mosi", trials=1, out=tmp_path / "out", space_file=bad, backend=LocalBackend(), **TINY)
    with pytest.raises(UsageError, match="no search space for mult"):
        read_space("mult")
