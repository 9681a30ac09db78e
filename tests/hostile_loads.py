"""Hostile files loaded one by one in a child process, each load's time and peak memory measured.

Shared by tests/test_hostile_pickles.py (`safe_pickle.load`) and tests/test_hostile_checkpoints.py
(`safe_checkpoint.load_weights`). The child, not pytest, loads them, so that a limit that regresses
fails the tests (the child is killed or its results are missing) instead of hanging or crashing
pytest. Each file must be refused in one line and under 200 MB of extra memory (tracemalloc's peak: the
same figure on any machine). Its time is only a hang guard, far above any bounded load (each is well
under a second), so that a busy machine never fails it: speed itself is measured in bench/bench_hostile.py.
"""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HANG_SECONDS, MEGABYTES = 30.0, 200

# argv: the loader as module.function, then the paths. Each path is announced before it is loaded, so that
# a child that dies names the file it died on.
CHILD = r"""
import importlib, json, sys, time, tracemalloc
from mmsa_atsuko.errors import DataError
module, _, function = sys.argv[1].rpartition(".")
load = getattr(importlib.import_module(module), function)
for path in sys.argv[2:]:
    print(json.dumps({"started": path}), flush=True)
    result = {"path": path}
    for measure in ("seconds", "peak_mb"):
        if measure == "peak_mb":
            tracemalloc.start()
        start = time.perf_counter()
        try:
            load(path)
            result["error"] = None
        except DataError as e:
            result["error"] = str(e)
        except BaseException as e:
            result["error"], result["raised"] = None, type(e).__name__
        if measure == "seconds":
            result["seconds"] = time.perf_counter() - start
        else:
            result["peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
    print(json.dumps(result), flush=True)
"""


def load_each_in_a_child(loader: str, paths) -> tuple[dict, list, subprocess.CompletedProcess]:
    """`loader` ('mmsa_atsuko.safe_pickle.load') run on each path: (results by file stem, the stems
    started in order, the finished child)."""
    proc = subprocess.run([sys.executable, "-c", CHILD, loader, *map(str, paths)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    out = {Path(r["path"]).stem: r for r in lines if "started" not in r}
    started = [Path(r["started"]).stem for r in lines if "started" in r]
    return out, started, proc


def assert_refused_small_and_in_one_line(loaded, name: str, file_name: str, expected: str) -> None:
    """The file `name` (written as `file_name`) was refused with a one-line DataError naming it and saying
    `expected`, under MEGABYTES and without hanging."""
    out, started, proc = loaded
    assert name in out, (f"the child died while loading {started[-1]!r} (exit {proc.returncode}): "
                         f"{proc.stderr[-2000:]}")
    result = out[name]
    assert result["error"] is not None, f"{name} loaded, or raised {result.get('raised')} instead of a DataError"
    message = result["error"]
    assert "\n" not in message and file_name in message and len(message) < 600, message
    assert expected in message, message
    assert result["seconds"] < HANG_SECONDS, (name, result["seconds"])
    assert result["peak_mb"] < MEGABYTES, (name, result["peak_mb"])
