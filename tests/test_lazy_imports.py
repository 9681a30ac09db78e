"""What a command imports before it needs it: the bookkeeping commands (results, clean, leaderboard) never import
torch, and a sweep's planning line comes before torch (2-4 s of a cold start; bench/README.md, "Start-up of the
long commands"). Each check runs in a fresh interpreter, since this one has torch already."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmsa_atsuko.metrics.names import metric_keys
from mmsa_atsuko.results import append_record

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "pandas", "scipy", "sklearn", "matplotlib", "optuna", "transformers", "av", "ray")

PROBE = """
import json, sys
HEAVY = {heavy!r}
def loaded():
    return sorted(m for m in HEAVY if m in sys.modules)
{body}
print("PROBE " + json.dumps(result))
"""


def probe(body: str, tmp_path: Path) -> dict:
    """Run `body` in a fresh interpreter in this checkout; it sets `result`, which comes back. `loaded()`
    names the heavy modules imported so far."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
           "MMSA_ATSUKO_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY, body=body)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("PROBE ")]
    assert done.returncode == 0 and lines, done.stdout + done.stderr
    return json.loads(lines[-1][len("PROBE "):])


def first_line(argv: list[str], tmp_path: Path) -> dict:
    """The command line's sweep or tune `argv`, stopped at its first printed line: that line, and what was imported
    by then."""
    return probe(f"""
import os
import mmsa_atsuko.cli.sweep as command
from mmsa_atsuko.cli import main

def first_line(line):
    print("PROBE " + json.dumps({{"line": line, "loaded": loaded()}}), flush=True)
    os._exit(0)

command.echo = first_line
main({argv!r})
result = "never printed a line"
""", tmp_path)


def test_the_sweep_package_and_the_bookkeeping_modules_import_no_torch(tmp_path):
    got = probe("""
import mmsa_atsuko.cli, mmsa_atsuko.sweep, mmsa_atsuko.sweep.driver, mmsa_atsuko.sweep.local, mmsa_atsuko.sweep.plan
import mmsa_atsuko.results, mmsa_atsuko.run_folders, mmsa_atsuko.leaderboard, mmsa_atsuko.models.atsuko
import mmsa_atsuko.training.hardware, mmsa_atsuko.training.seed
before = loaded()
# the package's old names still import from it, each the thing it was (plan the function, not its module)
from mmsa_atsuko.sweep import LocalBackend, Plan, plan, run_packed, sweep
from mmsa_atsuko.models.atsuko import ATSUKO_FAMILY
result = {"before": before, "plan": type(plan).__name__, "family": list(ATSUKO_FAMILY)}
from mmsa_atsuko.sweep import RayBackend
from mmsa_atsuko.models.atsuko import Atsuko
result.update(ray=RayBackend.__name__, atsuko=Atsuko.__name__, after=loaded())
""", tmp_path)
    assert "torch" not in got["before"], got
    assert got["plan"] == "function"
    assert got["family"] == ["atsuko", "atsuko_base", "atsuko_sbn", "atsuko_mcm"]
    assert (got["ray"], got["atsuko"]) == ("RayBackend", "Atsuko")
    assert "torch" in got["after"]           # the names that need it still bring it


def test_help_and_the_bookkeeping_commands_never_import_torch(tmp_path):
    store = tmp_path / "store"
    # Two of the Atsuko family with different switches: the leaderboard builds its Table 4 ablation, which asks
    # which models are Atsuko's (an import of the model package, and torch, before models/atsuko/family.py).
    for model, sbn, mcm in (("atsuko", True, True), ("atsuko_base", False, False)):
        append_record(store, {"run_id": f"{model}-1", "status": "ok", "model": model, "dataset": "mosi",
                              "aligned": False, "seed": 1, "synthetic": True,
                              "metrics": {k: 0.9 if sbn else 0.5 for k in metric_keys("mosi")}, "config_hash": f"c-{model}",
                              "config": {"use_sbn": sbn, "use_mcm": mcm}, "data": "synthetic:mosi-small-unaligned",
                              "started_at": "2026-01-01T00:00:01+00:00"})
    got = probe(f"""
import contextlib, io
from mmsa_atsuko.cli import main
result = {{}}
for command in ("sweep", "tune", "results", "leaderboard", "clean", "compare", "verify"):
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main([command, "--help"])
        except SystemExit:
            pass
result["help"] = loaded()
for argv in (["results", "--recover"], ["clean"], ["leaderboard", "--format", "md"]):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main([*argv, "--results", {str(store)!r}])
    result[argv[0]] = {{"rc": rc, "text": out.getvalue(), "loaded": loaded()}}
""", tmp_path)
    assert "torch" not in got["help"]
    assert got["results"]["rc"] == 0 and got["results"]["text"].startswith("0 record(s) folded into")
    assert got["clean"]["rc"] == 0 and got["clean"]["text"].startswith("removed 0 unfinished run folder(s)")
    assert got["leaderboard"]["rc"] == 0 and "### Ablation (Table 4 layout)" in got["leaderboard"]["text"]
    for command in ("results", "clean", "leaderboard"):
        assert "torch" not in got[command]["loaded"], (command, got[command]["loaded"])
    assert "pandas" not in got["clean"]["loaded"]



def test_download_and_the_help_of_extract_and_predict_never_import_torch(tmp_path):
    # data/spec.py and data/mmsa_checks.py imported torch at their top, and download (its commands module) and the
    # --max-clip-seconds default of extract and predict (data/extract/media.py) import them: 2 s of torch for a
    # listing of the data root or a help text (bench/README.md, "Start-up of the read-only commands (k1)").
    root = tmp_path / "empty root"
    root.mkdir()
    got = probe(f"""
import contextlib, io, runpy
result = {{}}
for argv in (["download", "--check", "--data-root", {str(root)!r}], ["download", "--help"], ["extract", "--help"],
             ["predict", "--help"]):
    sys.argv = ["run.py", *argv]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            runpy.run_path("run.py", run_name="__main__")
        except SystemExit as e:
            rc = e.code
    result[" ".join(argv[:2])] = {{"rc": rc, "text": out.getvalue(), "loaded": loaded()}}
""", tmp_path)
    check = got["download --check"]
    assert check["rc"] == 0 and check["text"].startswith(f"data root {root} (--data-root)\n"), check
    assert f"  mosi     unaligned  missing   {root / 'MOSI/Processed/unaligned_50.pkl'}" in check["text"], check
    for command in ("download --help", "extract --help", "predict --help"):
        assert got[command]["rc"] == 0 and got[command]["text"].startswith(f"usage: run.py {command.split()[0]}")
    for command, seen in got.items():
        assert "torch" not in seen["loaded"], (command, seen["loaded"])
    # and no pandas (about 1 s) once both --help ran: the extract package imported its pipeline, and
    # DEFAULT_SPLIT's module pandas, at once
    assert "pandas" not in got["predict --help"]["loaded"], got["predict --help"]["loaded"]


def _two_models(store: Path, seeds_maes: dict) -> None:
    """Runs of models a and b on synthetic MOSI, every metric of a seed at its MAE: {model: [MAE per seed]}."""
    for model, maes in seeds_maes.items():
        for seed, mae in enumerate(maes, 1):
            append_record(store, {"run_id": f"{model}-{seed}", "status": "ok", "model": model, "dataset": "mosi",
                                  "aligned": False, "seed": seed, "synthetic": True,
                                  "metrics": {k: mae for k in metric_keys("mosi")}, "config_hash": f"c-{model}",
                                  "config": {}, "data": "synthetic:mosi-small-unaligned",
                                  "started_at": f"2026-01-01T00:00:0{seed}+00:00"})


def test_leaderboard_and_compare_import_scipy_for_a_welch_test_only_and_pandas_for_a_csv_only(tmp_path):
    # scipy.stats (about 0.9 s) and pandas (about 0.35 s) were imported with the leaderboard package, before any
    # table: bench/README.md, "leaderboard and compare start-up".
    _two_models(tmp_path / "one_seed", {"a": [0.5], "b": [0.9]})
    # a: MAE 0.5, 0.7; b: 0.9, 1.1. Each variance 0.02, so t = -0.4 / sqrt(0.02 / 2 + 0.02 / 2) = -2 sqrt(2) on
    # df = 2, where the two-sided p is 1 - |t| / sqrt(t^2 + 2) = 1 - 2 / sqrt(5) = 0.1056.
    _two_models(tmp_path / "two_seeds", {"a": [0.5, 0.7], "b": [0.9, 1.1]})
    got = probe(f"""
import contextlib, io
from mmsa_atsuko.cli import main
result = {{}}
for name, store, argv in (("untested", "one_seed", ["leaderboard"]),
                          ("refused", "two_seeds", ["compare", "-m", "aa", "--against", "b"]),
                          ("tested", "two_seeds", ["leaderboard"]),
                          ("csv", "two_seeds", ["leaderboard", "--format", "csv"]),
                          ("compare", "one_seed", ["compare", "-m", "a", "--against", "b"])):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([*argv, "--results", {str(tmp_path)!r} + "/" + store])
    result[name] = {{"rc": rc, "text": out.getvalue(), "err": err.getvalue(), "loaded": loaded()}}
""", tmp_path)
    assert [got[name]["rc"] for name in got] == [0, 2, 0, 0, 0], got
    assert "| a | 1 |" in got["untested"]["text"] and "not tested (n<2)" in got["untested"]["text"]
    assert not {"pandas", "scipy"} & set(got["untested"]["loaded"]), got["untested"]["loaded"]
    # A misspelt -m is refused from the records, before the tables' Welch tests.
    assert got["refused"]["err"] == (f"error: no ok runs of aa in {tmp_path / 'two_seeds' / 'runs.jsonl'} (aa: did you "
                                     f"mean a?); models with runs: a, b\n")
    assert not {"pandas", "scipy"} & set(got["refused"]["loaded"]), got["refused"]["loaded"]
    assert "| vs b: p=0.106 |" in got["tested"]["text"], got["tested"]["text"]
    assert "scipy" in got["tested"]["loaded"] and "pandas" not in got["tested"]["loaded"], got["tested"]["loaded"]
    assert got["csv"]["text"].startswith("table,dataset,aligned,") and "pandas" in got["csv"]["loaded"]
    assert (tmp_path / "one_seed" / "comparison_a_mosi-synthetic.csv").is_file()

def test_a_sweeps_planning_line_comes_before_torch(tmp_path):
    # The command line's sweep, stopped at its first line: what was imported by then. --jobs not given: the default
    # is read from the devices (torch), which the backend's maker reads after the line.
    got = first_line(["sweep", "-m", "tfn", "-d", "mosi", "--synthetic", "--preset", "small", "-s", "1111",
                      "--out", str(tmp_path / "out")], tmp_path)
    assert got["line"].startswith("planning the sweep: reading the configs of 1 setting and the data of mosi")
    assert "torch" not in got["loaded"], got
    assert not (tmp_path / "out").exists()       # nothing written before it


def test_explain_refuses_a_run_of_another_model_from_its_record_before_torch(tmp_path):
    # The record alone says the run is not Atsuko's: explain loaded the run (torch) and matplotlib before saying so.
    store = tmp_path / "store"
    append_record(store, {"run_id": "tfn-sims-s1111-20260101T000001-abcdef", "status": "ok", "model": "tfn",
                          "dataset": "sims", "aligned": False, "seed": 1111, "synthetic": True,
                          "metrics": {k: 0.5 for k in metric_keys("sims")}, "config_hash": "c-tfn", "config": {},
                          "data": "synthetic:sims-small-unaligned", "started_at": "2026-01-01T00:00:01+00:00"})
    got = probe(f"""
import contextlib, io
from mmsa_atsuko.cli import main
err = io.StringIO()
with contextlib.redirect_stderr(err):
    rc = main(["explain", "--run", "tfn-sims-s1111-20260101T000001-abcdef", "--results", {str(store)!r}])
result = {{"rc": rc, "err": err.getvalue(), "loaded": loaded()}}
""", tmp_path)
    assert (got["rc"], got["err"]) == (2, "error: explain reads Atsuko's routers; run "
                                          "tfn-sims-s1111-20260101T000001-abcdef is model 'tfn', not atsuko\n")
    assert not {"torch", "matplotlib", "pandas"} & set(got["loaded"]), got["loaded"]


def test_a_tunes_planning_line_comes_before_torch_and_pandas(tmp_path):
    # As the sweep's: the tune read its data (for the study's data id) before its first line, so torch came first.
    got = first_line(["tune", "-m", "TFN", "-d", "mosi", "--synthetic", "--preset", "small", "--trials", "1", "-s",
                      "1111", "--out", str(tmp_path / "out")], tmp_path)
    assert got["line"] == ("[tune-tfn-mosi] planning the tune: reading the config of tfn, its search space "
                           "configs/tune/tfn.yaml and the data of mosi synthetic (generated on its first use in a "
                           "cache folder)")
    assert not {"torch", "pandas"} & set(got["loaded"]), got


UNKNOWN = "error: unknown model 'nosuch'. Known models: atsuko,"
BAD_KEY = "error: command-line override -c: unknown config key 'no_such_key'; tfn's keys are"


@pytest.mark.parametrize("argv, said, torch_free", [
    (["sweep", "-m", "tfn", "nosuch"], UNKNOWN, False), (["tune", "--trials", "1", "-m", "nosuch"], UNKNOWN, False),
    (["sweep", "-m", "tfn", "-c", "no_such_key=1"], BAD_KEY, True),
    (["tune", "--trials", "1", "-m", "tfn", "-c", "no_such_key=1"], BAD_KEY, True)])
def test_an_unknown_model_or_config_key_is_one_line_before_the_planning_line(tmp_path, argv, said, torch_free):
    # The registry imports the model files (torch): names and configs were checked after a sweep's planning line.
    # A known model's config is checked from its file's source, before torch; an unknown name asks the registry.
    got = probe(f"""
import contextlib, io
import mmsa_atsuko.cli.sweep as command
from mmsa_atsuko.cli import main
lines = []
command.echo = lines.append
err = io.StringIO()
with contextlib.redirect_stderr(err):
    rc = main([*{argv!r}, "-d", "mosi", "--synthetic", "--out", {str(tmp_path / "out")!r}])
result = {{"rc": rc, "lines": lines, "err": err.getvalue(), "loaded": loaded()}}
""", tmp_path)
    assert got["lines"] == [] and got["rc"] == 2, got
    assert got["err"].startswith(said) and got["err"].count("\n") == 1, got
    assert not torch_free or not {"torch", "pandas"} & set(got["loaded"]), got
    assert not (tmp_path / "out").exists()
