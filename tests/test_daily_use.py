"""What a new user meets first: entry points, the command overview, MMSA's typing habits, the run table."""
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from mmsa_atsuko.cli import COMMAND_HELP, COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, module=False):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    entry = ["-m", "mmsa_atsuko"] if module else [str(ROOT / "run.py")]
    return subprocess.run([sys.executable, *entry, *args], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=600)


def test_overview_lists_every_command_once():
    assert set(COMMAND_HELP) - {"(no command)"} == set(COMMANDS)
    done = cli("--help")
    assert done.returncode == 0
    listed = done.stdout.split("commands (run.py COMMAND --help for each):\n")[1].splitlines()
    for name in COMMANDS:
        assert sum(line.split()[:1] == [name] for line in listed) == 1, name


def test_no_arguments_prints_the_overview_and_fails(capsys):
    assert main([]) == 2
    assert "sensitivity" in capsys.readouterr().err
    assert main(["help"]) == 0
    assert "tsne" in capsys.readouterr().out


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    """MMSA's habits: -s given twice, names in upper case; through `python -m mmsa_atsuko`."""
    out = tmp_path_factory.mktemp("daily")
    done = cli("-m", "TFN", "-d", "Sims", "-s", "7", "-s", "8", "--synthetic", "--preset", "small",
               "--max-epochs", "2", "--quiet", "--out", str(out), module=True)
    return done, out


def test_repeated_seeds_and_any_case_names(two_seeds):
    done, out = two_seeds
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert [(r["model"], r["dataset"], r["seed"]) for r in records] == [("tfn", "sims", 7), ("tfn", "sims", 8)]


def test_run_table_ends_with_mean_and_sample_std(two_seeds):
    done, out = two_seeds
    records = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    lines = done.stdout.splitlines()
    header = next(line for line in lines if line.startswith("model"))
    assert lines[lines.index(header) - 1] == ("sims (synthetic data): test metrics of the best-valid epoch "
                                               "(mean ± std: sample std, ddof 1, over seeds)")
    summary = next(line for line in lines if line.startswith("tfn") and "mean ± std" in line)
    # The epoch column is the best-valid epoch, named as the record names it (it read "epoch": epochs run?).
    assert header.split()[:3] == ["model", "seed", "best_epoch"]
    rows = [line.split() for line in lines if line.startswith("tfn") and "mean" not in line]
    assert [(int(r[1]), int(r[2])) for r in rows] == [(r["seed"], r["best_epoch"]) for r in records]
    cells = dict(zip(header.split()[3:], summary.split()[4:]))    # "tfn mean ± std" then the cells
    for key in ("MAE", "Corr", "Mult_acc_2"):
        values = [r["metrics"][key] for r in records]
        assert cells[key] == f"{statistics.fmean(values):.4f}±{statistics.stdev(values):.4f}"


def test_run_table_names_a_stress_recipe(tmp_path, capsys):
    """`-d mosi --synthetic --synthetic-recipe corrupt` printed 'mosi (synthetic data): ...', as the standard
    recipe's table reads (found in a user's trial)."""
    from mmsa_atsuko.leaderboard.end_table import print_table
    record = {"run_id": "r", "model": "atsuko", "dataset": "mosi", "aligned": False, "seed": 1111, "synthetic": True,
              "best_epoch": 1, "metrics": {"MAE": 0.5}}
    for data, label in (("synthetic:corrupt-s2-mosi-small-unaligned-seed0-v2", "synthetic data, corrupt recipe"),
                        ("synthetic:mosi-small-unaligned-seed0-v2", "synthetic data")):
        print_table([{**record, "data": data}], tmp_path, set())
        lines = capsys.readouterr().out.splitlines()
        assert lines[1] == (f"mosi ({label}): test metrics of the best-valid epoch "
                            "(mean ± std: sample std, ddof 1, over seeds)")


def test_quiet_run_prints_no_loading_bars(tmp_path):
    done = cli("-m", "misa", "-d", "sims", "-s", "1", "--synthetic", "--preset", "small", "--max-epochs", "1",
               "--quiet", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "Loading weights" not in done.stdout


@pytest.mark.parametrize("argv, message", [
    (["-m", "tfn", "-d", "sims", "--synthetic", "--feature-path", "x.pkl"], "--synthetic generates its own"),
    (["-m", "tfnn", "-d", "sims", "--synthetic"], "Did you mean tfn"),
    (["-m", "tfn", "-d", "simz", "--synthetic"], "Did you mean sims"),
])
def test_bad_requests_are_one_line(argv, message, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_console_command_is_run_py():
    """`pip install` puts `mmsa-atsuko` beside the interpreter; it is the same command as run.py."""
    command = Path(sys.executable).with_name("mmsa-atsuko")
    assert command.is_file(), "reinstall the package (pip install -e .) to get the console command"
    done = subprocess.run([str(command), "list"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == cli("list").stdout


def test_a_sweep_takes_names_in_any_case_and_refuses_synthetic_with_a_file(tmp_path, capsys):
    from mmsa_atsuko.sweep import expand
    (_, setting, seeds), = expand(models=["TFN"], datasets=["SIMS"], seeds=[1])
    assert (setting.model, setting.dataset, seeds) == ("tfn", "sims", [1])
    sweep_file = tmp_path / "s.yaml"
    sweep_file.write_text("experiments:\n  - models: [LMF]\n    datasets: [Mosi]\n")
    (_, setting, _), = expand(sweep_file, seeds=[1])
    assert (setting.model, setting.dataset) == ("lmf", "mosi")
    assert main(["sweep", "-m", "tfn", "-d", "sims", "--synthetic", "--feature-path", "x.pkl",
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "--synthetic generates its own" in err and err.count("\n") == 1
    sweep_file.write_text("synthetic: true\nexperiments:\n  - models: [tfn]\n    datasets: [sims]\n")
    assert main(["sweep", str(sweep_file), "--feature-path", "x.pkl", "--out", str(tmp_path / "out")]) == 2
    assert "drop --feature-path" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
