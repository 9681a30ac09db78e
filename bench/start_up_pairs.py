"""Whole-process wall, cpu and peak RSS of the long commands' start-up, this checkout (A) and an older one (B) in
turn: a warm-up each, then RUNS pairs B, A; medians and the median of the pair-by-pair ratios. bench/README.md,
"tune's planning line, explain's refusal, and names and configs checked without torch (k2)".

    BEFORE=/tmp/before RESULTS=/tmp/store TFN_RUN=<a tfn run id there> MMSA_ATSUKO_CACHE=/tmp/cache \\
        python bench/start_up_pairs.py [case ...]

BEFORE: the older checkout (`git archive <commit> | tar -x -C $BEFORE`); OUT: where each side's tune and sweep write
(default /tmp/start-up-pairs). The leaderboard and compare cases read RESULTS, which should hold two models of
several seeds each, COMPARE's (default "tfn late_fusion": the model compared, then its baselines); compare writes
its CSVs there. bench/README.md, "leaderboard and compare start-up (k4)". The download and --help cases read
nothing (download --check an empty data root under OUT); `list` is their control, which imports the model files:
bench/README.md, "Start-up of the read-only commands (k1)".
"""
import os
import statistics
import subprocess
import sys
from pathlib import Path

A, B = str(Path(__file__).resolve().parents[1]), os.environ.get("BEFORE", "/tmp/before")
OUT = os.environ.get("OUT", "/tmp/start-up-pairs")
RUNS = int(os.environ.get("RUNS", "7"))
DATA = ["-d", "mosi", "--synthetic", "--preset", "small", "-s", "1111"]
COMPARED = os.environ.get("COMPARE", "tfn late_fusion").split()     # the model, then its baselines
CASES = {
    "tune_first_line": lambda side: ["bench/first_line.py", "tune", "-m", "tfn", *DATA, "--trials", "1",
                                           "--out", f"{OUT}/tune/{side}"],
    "explain_not_atsuko": lambda side: ["run.py", "explain", "--run", os.environ.get("TFN_RUN", "?"),
                                              "--results", os.environ.get("RESULTS", "results")],
    "sweep_first_line": lambda side: ["bench/first_line.py", "sweep", "-m", "tfn", *DATA,
                                            "--out", f"{OUT}/sweep/{side}"],
    "tune_whole_nothing_left": lambda side: ["run.py", "tune", "-m", "tfn", *DATA, "--trials", "1",
                                                   "--max-epochs", "1", "--out", f"{OUT}/whole/{side}"],
    # RESULTS with two models of several seeds each: the leaderboard runs Welch tests, compare writes its CSVs.
    "leaderboard": lambda side: ["run.py", "leaderboard", "--results", os.environ.get("RESULTS", "results")],
    "leaderboard_paper_no_runs": lambda side: ["run.py", "leaderboard", "--paper", "--results", f"{OUT}/no-runs"],
    "compare": lambda side: ["run.py", "compare", "-m", COMPARED[0], "--against", *COMPARED[1:], "--results",
                             os.environ.get("RESULTS", "results")],
    "compare_refused": lambda side: ["run.py", "compare", "-m", "no_such_model", "--against", *COMPARED[1:],
                                     "--results", os.environ.get("RESULTS", "results")],
    "download_check": lambda side: ["run.py", "download", "--check", "--data-root", f"{OUT}/no-data"],
    "download_help": lambda side: ["run.py", "download", "--help"],
    "extract_help": lambda side: ["run.py", "extract", "--help"],
    "predict_help": lambda side: ["run.py", "predict", "--help"],
    "list": lambda side: ["run.py", "list"],
}


def one(args: list, root: str) -> tuple:
    env = {**os.environ, "PYTHONPATH": root, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(["/usr/bin/time", "-f", "TIME %e %U %S %M", sys.executable, *args], cwd=root, env=env,
                          capture_output=True, text=True)
    wall, user, system, kib = [line for line in done.stderr.splitlines() if line.startswith("TIME ")][-1].split()[1:]
    said = [line for line in done.stderr.splitlines() if line.startswith(("first line", "heavy", "error"))]
    return float(wall), float(user) + float(system), int(kib) / 1024, said


def main(names: list[str]) -> None:
    for name in names or CASES:
        make, rows = CASES[name], {"A": [], "B": []}
        for side, root in (("A", A), ("B", B)):
            print(name, side, "warm-up:", one(make(side), root)[3])
        for _ in range(RUNS):
            for side, root in (("B", B), ("A", A)):
                rows[side].append(one(make(side), root)[:3])
        med = {side: [statistics.median(r[i] for r in rows[side]) for i in range(3)] for side in rows}
        wall = statistics.median(a[0] / b[0] for a, b in zip(rows["A"], rows["B"]))
        cpu = statistics.median(a[1] / b[1] for a, b in zip(rows["A"], rows["B"]))
        print(f"{name}: before {med['B'][0]:.3f} s ({med['B'][2]:.0f} MiB), after {med['A'][0]:.3f} s "
              f"({med['A'][2]:.0f} MiB), after/before wall {wall:.3f} (cpu {cpu:.3f})")


if __name__ == "__main__":
    main(sys.argv[1:])
