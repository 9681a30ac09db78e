"""What a sweep costs over running the same runs by hand, and what --jobs 2 buys on 2 cores.

    python bench/bench_sweep.py overhead [--seeds 5] [--repeats 5]
    python bench/bench_sweep.py jobs [--seeds 5] [--repeats 2]

overhead: small TFN on small synthetic MOSI and SIMS, `--seeds` seeds each, in this process
  (one torch thread), timed as `mmsa_atsuko.run(...)` (by hand: the library call a plain
  `run.py -m tfn -d mosi sims` makes) and as `sweep(...)` (in process), alternating, each
  into a fresh results folder. Prints the median wall time of each, the sweep's extra
  seconds per run and that as a % of the by-hand time.
jobs: `run.py sweep -m tfn lmf -d mosi sims --synthetic --preset small` as a subprocess with
  --jobs 1 (torch's default threads, and again with OMP_NUM_THREADS=1) and --jobs 2 (each
  worker 1 thread), alternating; median whole-command wall time, and the steady rate from
  the first finished run to the last (read from the progress lines as they come).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def overhead(seeds: int, repeats: int, work: Path) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch
    torch.set_num_threads(1)
    import mmsa_atsuko
    from mmsa_atsuko.sweep import sweep

    os.environ["MMSA_ATSUKO_CACHE"] = str(work / "cache")
    lists = dict(synthetic=True, preset="small")
    seed_list = list(range(1, seeds + 1))
    n_runs = 2 * seeds
    mmsa_atsuko.run("tfn", ["mosi", "sims"], seeds=[1], out=work / "warm", quiet=True, **lists)  # data + imports

    hand, swept, train_hand, train_swept = [], [], [], []
    for i in range(repeats):
        for kind in (("hand", "sweep") if i % 2 == 0 else ("sweep", "hand")):
            out = work / f"{kind}{i}"
            start = time.perf_counter()
            if kind == "hand":
                records = mmsa_atsuko.run("tfn", ["mosi", "sims"], seeds=seed_list, out=out, quiet=True, **lists)
            else:
                records = sweep(None, out=out, models=["tfn"], datasets=["mosi", "sims"], seeds=seed_list,
                                echo=lambda _: None, **lists).records
            wall = time.perf_counter() - start
            assert len(records) == n_runs and all(r["status"] == "ok" for r in records)
            (hand if kind == "hand" else swept).append(wall)
            (train_hand if kind == "hand" else train_swept).append(sum(r["wall_time_s"] for r in records))
    h, s = statistics.median(hand), statistics.median(swept)
    print(f"overhead: TFN small, synthetic small mosi+sims x {seeds} seeds = {n_runs} runs, 1 torch thread, "
          f"{repeats} repeats (median)")
    print(f"  by hand (mmsa_atsuko.run): {h:.3f} s  ({h / n_runs * 1000:.1f} ms/run; training {statistics.median(train_hand):.3f} s)")
    print(f"  sweep (in process):        {s:.3f} s  ({s / n_runs * 1000:.1f} ms/run; training {statistics.median(train_swept):.3f} s)")
    print(f"  sweep overhead: {(s - h) / n_runs * 1000:+.1f} ms/run = {(s / h - 1) * 100:+.1f}% "
          f"(all: hand {', '.join(f'{x:.2f}' for x in hand)}; sweep {', '.join(f'{x:.2f}' for x in swept)})")


def _timed_sweep(cmd, env):
    """Run a sweep command; (whole wall time, times at which each run's progress line came)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    finished = [time.perf_counter() - start for line in proc.stdout if line.startswith("[")]
    if proc.wait() != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return time.perf_counter() - start, finished


def jobs(seeds: int, repeats: int, work: Path) -> None:
    base_env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    base_env["MMSA_ATSUKO_CACHE"] = str(work / "cache")
    lists = ["-m", "tfn", "lmf", "-d", "mosi", "sims", "-s", *map(str, range(1, seeds + 1)),
             "--synthetic", "--preset", "small"]
    n_runs = 4 * seeds
    variants = {"--jobs 1 (torch default threads)": (["--jobs", "1"], {}),
                "--jobs 1, OMP_NUM_THREADS=1": (["--jobs", "1"], {"OMP_NUM_THREADS": "1"}),
                "--jobs 2 (1 thread per worker)": (["--jobs", "2"], {})}
    subprocess.run([sys.executable, str(ROOT / "run.py"), "sweep", *lists, "-s", "1", "--out", str(work / "warm")],
                   env=base_env, check=True, capture_output=True)       # writes the synthetic data once
    walls = {name: [] for name in variants}
    steady = {name: [] for name in variants}
    for i in range(repeats):
        for k, (name, (args, env)) in enumerate(variants.items()):
            cmd = [sys.executable, str(ROOT / "run.py"), "sweep", *lists, *args, "--out", str(work / f"{i}-{k}")]
            wall, finished = _timed_sweep(cmd, {**base_env, **env})
            walls[name].append(wall)
            # runs per second between the first and the last finished run: startup excluded
            steady[name].append((len(finished) - 1) / (finished[-1] - finished[0]))
    print(f"jobs: tfn+lmf small x synthetic small mosi+sims x {seeds} seeds = {n_runs} runs per command, "
          f"{os.cpu_count()} CPUs, median of {repeats}; 'whole' is the command's wall time (imports, "
          f"planning and worker start included), 'steady' the rate from the first finished run to the last")
    base = statistics.median(walls["--jobs 1 (torch default threads)"])
    base_steady = statistics.median(steady["--jobs 1, OMP_NUM_THREADS=1"])
    for name in variants:
        t, r = statistics.median(walls[name]), statistics.median(steady[name])
        print(f"  {name:<34} whole {t:6.2f} s = {n_runs / t * 60:6.1f} runs/min (x{base / t:.2f} vs default --jobs 1)"
              f" | steady {r * 60:6.1f} runs/min (x{r / base_steady:.2f} vs 1-thread --jobs 1)"
              f" | whole: {', '.join(f'{x:.1f}' for x in walls[name])}")
    print(f"  load average after the bench: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=("overhead", "jobs"))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=None)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as work:
        if args.what == "overhead":
            overhead(args.seeds, args.repeats or 5, Path(work))
        else:
            jobs(args.seeds, args.repeats or 2, Path(work))


if __name__ == "__main__":
    main()
