"""SIGKILL a sweep's whole process group at random moments, restart it, and check nothing is lost or doubled.

    nice -n 10 python bench/bench_kill_sweep.py [--kills 20] [--rng-seed 0] [--seeds 1111 ... 1125]

Each attempt starts `run.py sweep -m tfn lmf -d mosi --synthetic -s <seeds> --max-epochs 2 --out OUT`
in its own process group, with `--jobs 1` or `--jobs 2` (drawn), and SIGKILLs the group (the driver,
its workers, the resource tracker) at a moment drawn from a seeded RNG, after one of three anchors:
the start (imports, recovering kept records, planning, writing the synthetic data into a fresh
cache), the plan line (workers starting, the first run), or the 1st-3rd progress line of the
attempt (a run training, its folder renamed, its record appended, the next one starting). Under
load a run takes seconds, so kills timed from the start alone would rarely reach a record's
append. An attempt that finishes before its moment uses up no kill; if it finished the whole
sweep, that store is checked and the kills go on in a new one. After `--kills` kills the same
command runs to the end, once more to show it has nothing left to run, and each store is checked:

- every planned run (model x seed) has exactly one record, and it is `ok` (lost, duplicated
  identity, duplicated run_id, failed);
- every record's run folder is there; no torn line is left in runs.jsonl;
- no lock blocks (`.sweep.lock`, `runs.jsonl.lock`, taken with timeout 0);
- what killed runs left in `<out>/runs`: `.partial` folders (resumable by `run.py ... --resume`,
  removed by `run.py clean`), half-made `.partial.new` folders, finished folders without a record;
- `run.py leaderboard --results OUT` exits 0 and counts every seed of every model.

Prints one summary line (counts summed over the stores); exits 1 if anything was lost, doubled,
failed or blocked.
"""
import argparse
import collections
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from filelock import FileLock, Timeout  # noqa: E402

from mmsa_atsuko.results import RUNS_FILE, identity, read_records  # noqa: E402

MODELS = ("tfn", "lmf")                 # the two fastest models: kills land in every phase of a run
# anchor -> (share of the kills, window in seconds after it that the moment is drawn from)
ANCHORS = {
    "start": (0.2, 6.0),                # imports and planning take about 5 s on this machine
    "plan": (0.2, 4.0),                 # workers (--jobs 2) spend ~5 s importing; in process a run starts
    "progress": (0.6, 1.0),             # one tfn run takes ~1 s in process, lmf ~0.1 s
}


def command(seeds, jobs: int, out: Path, max_epochs: int) -> list[str]:
    return [sys.executable, str(ROOT / "run.py"), "sweep", "-m", *MODELS, "-d", "mosi", "--synthetic",
            "-s", *map(str, seeds), "--max-epochs", str(max_epochs), "--jobs", str(jobs), "--out", str(out)]


class Attempt:
    """One start of the sweep in its own process group; its stdout lines are read as they come."""

    def __init__(self, argv, env):
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        self.lines: list[str] = []
        self.planned_at = None          # when the plan line ("sweep: N runs ...") arrived
        self.progress_at: list[float] = []   # when each progress line ("[k/N] ...") arrived
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("sweep:") and self.planned_at is None:
                self.planned_at = time.monotonic()
            elif line.startswith("["):
                self.progress_at.append(time.monotonic())
            self.lines.append(line.rstrip("\n"))

    def anchor(self, name: str, nth: int):
        if name == "start":
            return self.started
        if name == "plan":
            return self.planned_at
        return self.progress_at[nth - 1] if len(self.progress_at) >= nth else None

    def kill_at(self, anchor: str, nth: int, delay: float) -> bool:
        """SIGKILL the group `delay` s after `anchor` (the `nth` progress line); False if it ended first."""
        while self.proc.poll() is None:
            anchor_time = self.anchor(anchor, nth)
            if anchor_time is not None and time.monotonic() >= anchor_time + delay:
                group = self.proc.pid           # start_new_session: the group id is the driver's pid
                self.workers = len(group_members(group)) - 1
                os.killpg(group, signal.SIGKILL)
                self.wait_group_gone(group)
                return True
            time.sleep(0.005)
        self.finish()
        return False

    def wait_group_gone(self, group: int, limit: float = 30.0) -> None:
        """A worker that outlived the kill would be a second writer beside the restarted sweep."""
        self.finish()
        deadline = time.monotonic() + limit
        while group_members(group):
            if time.monotonic() > deadline:
                sys.exit(f"processes of group {group} outlived its SIGKILL: {group_members(group)}")
            time.sleep(0.05)

    def finish(self) -> int:
        code = self.proc.wait()
        self.reader.join()
        self.proc.stdout.close()
        return code


def group_members(group: int) -> list[int]:
    """Live (non-zombie) processes of process group `group`, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == group and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def lock_blocks(path: Path) -> bool:
    try:
        FileLock(path).acquire(timeout=0)
    except Timeout:
        return True
    return False


def check_store(out: Path, seeds, leaderboard: subprocess.CompletedProcess) -> dict:
    """Counts of everything that could have gone wrong in `out` (see the module docstring)."""
    records = read_records(out)
    raw_lines = (out / RUNS_FILE).read_bytes().split(b"\n") if (out / RUNS_FILE).exists() else []
    torn = sum(1 for line in raw_lines if line.strip()) - len(records)
    planned = {(m, "mosi", s) for m in MODELS for s in seeds}
    by_run = collections.Counter((r["model"], r["dataset"], r["seed"]) for r in records)
    by_identity = collections.Counter(identity(r) for r in records)
    by_run_id = collections.Counter(r["run_id"] for r in records)
    ok = {(r["model"], r["dataset"], r["seed"]) for r in records if r.get("status") == "ok"}
    runs = out / "runs"
    recorded_ids = set(by_run_id)
    finished = [p for p in runs.iterdir() if not p.name.startswith(".") and not p.name.endswith(".failed")]
    counts = {
        "planned": len(planned), "records": len(records), "ok": len(ok & planned),
        "lost": len(planned - ok),
        "duplicated": sum(n - 1 for n in by_run.values() if n > 1),
        "dup_identity": sum(n - 1 for n in by_identity.values() if n > 1),
        "dup_run_id": sum(n - 1 for n in by_run_id.values() if n > 1),
        "failed": sum(r.get("status") != "ok" for r in records),
        "missing_folder": sum(not (runs / r["run_id"]).is_dir() for r in records if r.get("status") == "ok"),
        "torn_lines": torn,
        "blocking_locks": sum(lock_blocks(out / name) for name in (".sweep.lock", RUNS_FILE + ".lock")),
        "partial": len(list(runs.glob(".*.partial"))),
        "partial_new": len(list(runs.glob(".*.partial.new"))),
        "orphan_folders": sum(p.name not in recorded_ids for p in finished),
        "kept_record_json": len(list(runs.glob("*/record.json"))),
        "leaderboard_rc": leaderboard.returncode,
    }
    # The leaderboard's table must count every seed of each model (its `n` column).
    rows = [line for line in leaderboard.stdout.splitlines() if line.startswith(tuple(f"| {m} |" for m in MODELS))]
    counts["leaderboard_n_ok"] = len(rows) == len(MODELS) and all(
        row.split("|")[2].strip() == str(len(seeds)) for row in rows)
    return counts


def finish_round(out: Path, seeds, max_epochs: int, env) -> dict:
    """Run the sweep to its end, once more (it must find nothing to run), then check the store."""
    final = Attempt(command(seeds, 1, out, max_epochs), env)
    final_rc = final.finish()
    again = Attempt(command(seeds, 1, out, max_epochs), env)
    again_rc = again.finish()
    leaderboard = subprocess.run([sys.executable, str(ROOT / "run.py"), "leaderboard", "--results", str(out)],
                                 cwd=ROOT, env=env, capture_output=True, text=True)
    counts = check_store(out, seeds, leaderboard)
    counts.update(final_rc=final_rc, rerun_rc=again_rc,
                  rerun_ran=int(not any(" 0 to run " in line for line in again.lines)))
    bad = [k for k in BAD if counts[k]] + ([] if counts["leaderboard_n_ok"] else ["leaderboard_n_ok"])
    if bad:
        print(f"{out}: {', '.join(bad)}\n" + "\n".join(final.lines[-5:] + again.lines[-3:]
                                                      + leaderboard.stderr.splitlines()[-3:]), flush=True)
    return counts


# Counts that must be 0 (the rest describe what killed runs left behind).
BAD = ("lost", "duplicated", "dup_identity", "dup_run_id", "failed", "missing_folder", "torn_lines",
       "blocking_locks", "leaderboard_rc", "final_rc", "rerun_rc", "rerun_ran")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--rng-seed", type=int, default=0, help="seeds the kill moments and the --jobs draws")
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(1111, 1126)))
    p.add_argument("--max-epochs", type=int, default=2)
    p.add_argument("--work", type=Path, help="folder for the results and the synthetic cache (default: a temp dir)")
    args = p.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-kill-"))
    # A fresh synthetic cache, so that early kills also land while the data files are written.
    env = dict(os.environ, MMSA_ATSUKO_CACHE=str(work / "cache"), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    rng = random.Random(args.rng_seed)
    kills, anchors = collections.Counter(), collections.Counter()
    totals = collections.Counter()
    workers_killed = finished_early = 0
    rounds = 1
    out = work / "out1"
    start = time.monotonic()
    while sum(kills.values()) < args.kills:
        jobs = rng.choice((1, 2))
        anchor = rng.choices(list(ANCHORS), weights=[share for share, _ in ANCHORS.values()])[0]
        nth = rng.randint(1, 3)
        delay = rng.uniform(0, ANCHORS[anchor][1])
        attempt = Attempt(command(args.seeds, jobs, out, args.max_epochs), env)
        if attempt.kill_at(anchor, nth, delay):
            anchors[anchor] += 1
            kills[f"jobs{jobs}"] += 1
            workers_killed += attempt.workers if jobs == 2 else 0
            partial = len(list((out / "runs").glob(".*.partial"))) if (out / "runs").is_dir() else 0
            where = f"progress line {nth}" if anchor == "progress" else anchor
            print(f"kill {sum(kills.values()):>2}: {out.name}, --jobs {jobs}, {where} +{delay:.2f}s, "
                  f"{attempt.workers} other process(es) in the group, {len(read_records(out))} records stored, "
                  f"{partial} .partial folder(s)", flush=True)
            continue
        finished_early += 1
        print(f"attempt ended before its kill (--jobs {jobs}, exit {attempt.proc.returncode}): "
              f"{attempt.lines[-1] if attempt.lines else ''}", flush=True)
        # Kills left but nothing left to kill (or the sweep failed): check this store, go on in a new one.
        totals.update(finish_round(out, args.seeds, args.max_epochs, env))
        rounds += 1
        out = work / f"out{rounds}"
    totals.update(finish_round(out, args.seeds, args.max_epochs, env))
    bad = any(totals[k] for k in BAD) or totals["leaderboard_n_ok"] != rounds
    print(f"kill-sweep: {sum(kills.values())} SIGKILLs ({kills['jobs1']} with --jobs 1, {kills['jobs2']} with --jobs 2, "
          f"{workers_killed} worker/tracker processes killed with them; after the start {anchors['start']}, the plan "
          f"line {anchors['plan']}, a progress line {anchors['progress']}), {finished_early} attempt(s) ended before "
          f"their kill; {rounds} store(s): "
          + ", ".join(f"{k} {v}" for k, v in totals.items() if k != "leaderboard_n_ok")
          + f"; leaderboards right {totals['leaderboard_n_ok']}/{rounds}; {time.monotonic() - start:.0f} s; "
          f"{'FAIL' if bad else 'OK'}; stores in {work}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
