"""A tune of N trials against a sweep of the same N configurations (issue 18's 1.2x target).

    python bench/bench_tune.py [--trials 20] [--jobs 2] [--max-epochs 8] [--repeats 1]

Small TFN on small synthetic MOSI, seed 1111, `--jobs` worker processes (one torch thread each).
tune: `run.py tune -m tfn -d mosi --trials N --jobs J` without the best config's final runs
(timed to the end of the search). sweep: the N configurations the tune tried (read from its
study), as a sweep file of N experiments, `run.py sweep FILE --jobs J`. Both as subprocesses
into fresh folders, alternating; prints each wall time and the ratio tune / sweep.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMMON = ["--synthetic", "--preset", "small", "-s", "1111"]


def timed(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "run.py"), *command], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def tried_configs(out: Path) -> list[dict]:
    import optuna
    study = optuna.load_study(study_name="tune-tfn-mosi", storage=f"sqlite:///{out / 'tune' / 'tune-tfn-mosi.db'}")
    return [t.params for t in study.trials]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--max-epochs", type=int, default=8)
    p.add_argument("--repeats", type=int, default=1)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-tune-"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MMSA_ATSUKO_CACHE": str(work / "cache"), "HF_HUB_OFFLINE": "1"}
    timed(["-m", "tfn", "-d", "mosi", *COMMON, "--max-epochs", "1", "--out", str(work / "warm")], env)  # data
    tunes, sweeps = [], []
    for r in range(args.repeats):
        out = work / f"tune{r}"
        # --seeds 1111 and a final run: the search, plus one recorded run of the best config.
        tunes.append(timed(["tune", "-m", "tfn", "-d", "mosi", "--trials", str(args.trials), "--jobs", str(args.jobs),
                            "--devices", "cpu", "--max-epochs", str(args.max_epochs), *COMMON, "--out", str(out)], env))
        configs = tried_configs(out)
        sweep_file = work / f"sweep{r}.yaml"
        sweep_file.write_text(yaml.safe_dump({"seeds": [1111], "synthetic": True, "preset": "small",
                                              "max_epochs": args.max_epochs, "experiments": [
            {"name": f"trial{i}", "models": "tfn", "datasets": "mosi", "config": c} for i, c in enumerate(configs)]}))
        sweeps.append(timed(["sweep", str(sweep_file), "--jobs", str(args.jobs), "--devices", "cpu",
                             "--out", str(work / f"sweep{r}")], env))
        print(f"repeat {r + 1}: tune {tunes[-1]:.1f}s, sweep {sweeps[-1]:.1f}s, ratio {tunes[-1] / sweeps[-1]:.2f}",
              flush=True)
    print(f"median: tune {statistics.median(tunes):.1f}s, sweep of the same {args.trials} configs "
          f"{statistics.median(sweeps):.1f}s, ratio {statistics.median(tunes) / statistics.median(sweeps):.2f}")


if __name__ == "__main__":
    main()
