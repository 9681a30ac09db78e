"""Sweeps: models x datasets x aligned flags x seeds, resumable, run locally or on Ray.

    python run.py sweep configs/sweeps/paper.yaml
    python run.py sweep -m tfn lmf -d mosi sims -s 1111 1112 --synthetic --preset small --jobs 2

A run is identified by (model, dataset, aligned, seed, config hash, data id), where the data
id is the record's `data` field (`sha256:<hex>` of the feature file or `synthetic:<recipe>`).
Planning resolves every (model, dataset) pair with `api._prepare`, the same code a plain
run uses, so the config hash and data id are known before anything trains, and any error
in the request (unknown name, bad override, missing file) stops the sweep before it starts.

Planning goes on past a data file that is not there, so that one error names every missing
file (a dry run lists the runs it could plan first); nothing runs while one is missing.

Resume. The results store (`<out>/runs.jsonl`) is append-only; readers skip the fragment a
writer killed mid-record may leave, and the next append cuts it off. A run whose identity
already has an `ok` record is skipped; a run that failed is recorded once per failure with status `failed` and
its error, and is skipped too unless `retry_failed`. Runs whose record never landed run
again, so a killed sweep started again ends with every run recorded exactly once. Only the
sweep's driver writes the store, whatever the backend, and only one sweep at a time may
write a results folder (`<out>/.sweep.lock`).

Backends:
- local, in process (`jobs=1`), or `jobs=N` worker processes (spawn); worker k gets device
  `devices[k % len(devices)]`, and a worker dies with its driver, so no orphan keeps running
  (or training a run that the resumed sweep starts again);
- ray: each run is one Ray task with `num_cpus`/`num_gpus` per run; results come back to
  the driver. With several hosts, `--out` should be on storage every host sees (run
  folders are written by the worker that trains the run).
"""
from __future__ import annotations

import ctypes
import fcntl
import json
import logging
import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from multiprocessing.connection import wait as wait_for
from pathlib import Path

from . import __version__
from .errors import DataError, MissingDataError, ToolkitError, UsageError

log = logging.getLogger("mmsa_atsuko")

SWEEP_LOCK = ".sweep.lock"
TOP_KEYS = {"description", "seeds", "synthetic", "synthetic_size", "preset", "max_epochs", "config",
            "data_root", "experiments"}
EXPERIMENT_KEYS = {"name", "models", "datasets", "aligned", "seeds", "preset", "max_epochs", "config"}


# --------------------------------------------------------------------------------------
# What to run
# --------------------------------------------------------------------------------------

@dataclass
class Setting:
    """Everything `api._prepare` needs for one (model, dataset, aligned flag), seeds aside."""
    model: str
    dataset: str
    aligned: bool
    preset: str | None = None
    overrides: tuple = ()            # ((key, value), ...), applied after the model's YAML
    max_epochs: int | None = None
    synthetic: bool = False
    synthetic_size: str = "small"
    data_root: str | None = None
    feature_path: str | None = None

    def data_key(self) -> tuple:
        """Settings with the same data key read the same data file."""
        return (self.dataset, self.aligned, self.synthetic, self.synthetic_size, self.data_root,
                self.feature_path)

    def cache_key(self) -> str:
        return json.dumps([self.model, self.dataset, self.aligned, self.preset, list(self.overrides),
                           self.max_epochs, self.synthetic, self.synthetic_size, self.data_root,
                           self.feature_path], default=str)


@dataclass
class PlannedRun:
    setting: Setting
    seed: int
    config_hash: str
    data: str                        # data id: 'sha256:...' or 'synthetic:<recipe>'
    config: dict = field(repr=False, default_factory=dict)
    experiment: str = ""

    @property
    def identity(self) -> tuple:
        s = self.setting
        return (s.model, s.dataset, s.aligned, self.seed, self.config_hash, self.data)

    def describe(self) -> str:
        s = self.setting
        return f"{s.model} {s.dataset}{' aligned' if s.aligned else ''} seed {self.seed}"


def identity(record: dict) -> tuple | None:
    """The run identity of a store record, or None for a record that is not a run."""
    try:
        return (record["model"], record["dataset"], bool(record["aligned"]), int(record["seed"]),
                record["config_hash"], record["data"])
    except (KeyError, TypeError, ValueError):
        return None


def latest_by_identity(records: list[dict]) -> dict[tuple, dict]:
    """identity -> the record that stands for it: the latest `ok` one, else the latest failure."""
    chosen: dict[tuple, dict] = {}
    for record in records:                      # the store is in append order: later wins
        key = identity(record)
        if key is None:
            continue
        previous = chosen.get(key)
        if previous is None or record.get("status") == "ok" or previous.get("status") != "ok":
            chosen[key] = record
    return chosen


def ok_records(records: list[dict]) -> list[dict]:
    """One `ok` record per run identity (the latest), in store order; failures dropped."""
    chosen = {id(r) for r in latest_by_identity(records).values() if r.get("status") == "ok"}
    return [r for r in records if id(r) in chosen]


# --------------------------------------------------------------------------------------
# Sweep files and command-line lists -> settings
# --------------------------------------------------------------------------------------

def _as_list(value, what: str, where: str) -> list:
    if isinstance(value, (str, int, bool)):
        return [value]
    if not isinstance(value, list) or not value:
        raise UsageError(f"{where}: {what} must be a name or a non-empty list, got {value!r}")
    return value


def _check_keys(mapping, allowed: set, where: str) -> None:
    if not isinstance(mapping, dict):
        raise UsageError(f"{where} must be a mapping, got {type(mapping).__name__}")
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; "
                         f"allowed: {', '.join(sorted(allowed))}")


def _overrides(mapping, where: str) -> list[tuple]:
    if mapping is None:
        return []
    if not isinstance(mapping, dict):
        raise UsageError(f"{where}: config must be a mapping of key: value")
    return list(mapping.items())


def _seeds(value, where: str) -> list[int]:
    from .training.seed import check_seeds
    seeds = _as_list(value, "seeds", where)
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise UsageError(f"{where}: seeds must be integers, got {seeds!r}")
    return check_seeds(seeds, where)


def expand(file=None, *, models=None, datasets=None, seeds=None, aligned=False, synthetic=False,
           synthetic_size=None, preset=None, max_epochs=None, config=(), data_root=None,
           feature_path=None) -> list[tuple[str, Setting, list[int]]]:
    """(experiment name, setting, seeds) for a sweep file and/or command-line lists.

    Without a file, `models` x `datasets` at one aligned flag. With a file, its experiments;
    `models`/`datasets` then keep only those names and `aligned=True` only aligned runs.
    Command-line values win over an experiment's, which win over the file's top level.
    """
    from .config import datasets_table, parse_override
    from .training.seed import DEFAULT_SEEDS, check_seeds

    cli_overrides = [o if isinstance(o, tuple) else parse_override(o) for o in config]
    if file is None:
        if not models or not datasets:
            raise UsageError("give a sweep file or both -m/--model and -d/--dataset")
        top = {"experiments": [{"name": "command line", "models": list(models), "datasets": list(datasets),
                                "aligned": [bool(aligned)]}]}
        where_file = "command line"
    else:
        from .config import read_yaml
        top = read_yaml(Path(file))
        where_file = str(file)
    _check_keys(top, TOP_KEYS, where_file)
    experiments = top.get("experiments")
    if not isinstance(experiments, list) or not experiments:
        raise UsageError(f"{where_file}: 'experiments' must be a non-empty list")
    table = datasets_table()

    out = []
    names_seen = {"models": set(), "datasets": set()}
    for i, exp in enumerate(experiments):
        where = f"{where_file} experiment {i + 1}"
        _check_keys(exp, EXPERIMENT_KEYS, where)
        name = str(exp.get("name", f"#{i + 1}"))
        where = f"{where_file} experiment {name!r}"
        exp_models = [str(m) for m in _as_list(exp.get("models"), "models", where)]
        exp_datasets = [str(d) for d in _as_list(exp.get("datasets"), "datasets", where)]
        flags = _as_list(exp.get("aligned", False), "aligned", where)
        if not all(isinstance(f, bool) for f in flags):
            raise UsageError(f"{where}: aligned must be true, false or a list of them, got {flags!r}")
        names_seen["models"].update(exp_models)
        names_seen["datasets"].update(exp_datasets)
        if file is not None:
            exp_models = [m for m in exp_models if not models or m in models]
            exp_datasets = [d for d in exp_datasets if not datasets or d in datasets]
            flags = [f for f in flags if f or not aligned]
        exp_seeds = check_seeds(seeds, "command line") if seeds else _seeds(exp.get("seeds", top.get("seeds", list(DEFAULT_SEEDS))), where)
        exp_overrides = tuple(_overrides(top.get("config"), where_file) + _overrides(exp.get("config"), where)
                              + cli_overrides)
        for dataset in exp_datasets:
            if dataset not in table:
                raise UsageError(f"{where}: unknown dataset {dataset!r}; known: {', '.join(table)}")
            for flag in flags:
                if ("aligned" if flag else "unaligned") not in table[dataset]["files"]:
                    raise UsageError(f"{where}: {dataset} has no {'aligned' if flag else 'unaligned'} setting")
                for model in exp_models:
                    out.append((name, Setting(
                        model=model, dataset=dataset, aligned=flag,
                        preset=preset or exp.get("preset", top.get("preset")),
                        overrides=exp_overrides,
                        max_epochs=max_epochs if max_epochs is not None else exp.get("max_epochs", top.get("max_epochs")),
                        synthetic=bool(synthetic or top.get("synthetic", False)),
                        synthetic_size=synthetic_size or top.get("synthetic_size", "small"),
                        data_root=data_root or top.get("data_root"),
                        feature_path=feature_path), exp_seeds))
    if file is not None:
        for what, asked in (("models", models), ("datasets", datasets)):
            missing = sorted(set(asked or ()) - names_seen[what])
            if missing:
                raise UsageError(f"{where_file} has no {what} {', '.join(missing)}; it has "
                                 f"{', '.join(sorted(names_seen[what]))}")
    if not out:
        raise UsageError(f"{where_file}: nothing to run after filtering")
    if feature_path is not None and len({s.dataset for _, s, _ in out}) > 1:
        raise UsageError("--feature-path names one file, so give exactly one dataset")
    return out


# --------------------------------------------------------------------------------------
# Planning: resolve every pair, compare with the store
# --------------------------------------------------------------------------------------

@dataclass
class Plan:
    runs: list[PlannedRun]            # every distinct run of the sweep, in order
    todo: list[PlannedRun]            # the ones to run now
    done: int                         # already recorded ok
    failed_skipped: int               # failed before and not retried
    retried: int                      # failed before and run again
    missing: dict[tuple, set] = field(default_factory=dict)   # (what, path) -> runs it holds up


# Prepared jobs, grouped by data file. A process leaving one data file for another drops the
# one it leaves (MOSEI alone is several GB); planning for the in-process backend keeps them
# all, as `api.run` does, so that running does not load every file a second time.
_CACHE: dict = {"current": None, "groups": {}}


def prepare(setting: Setting, *, keep_others: bool = False):
    """`api._prepare` for one setting, cached per process (see `_CACHE`)."""
    from . import api
    key = setting.data_key()
    if _CACHE["current"] != key:
        if not keep_others:
            _CACHE["groups"].pop(_CACHE["current"], None)
        _CACHE["current"] = key
    group = _CACHE["groups"].setdefault(key, {"loaded": {}, "jobs": {}})
    job_key = setting.cache_key()
    if job_key not in group["jobs"]:
        group["jobs"][job_key] = api._prepare(
            setting.model, setting.dataset, aligned=setting.aligned, data_root=setting.data_root,
            feature_path=setting.feature_path, synthetic=setting.synthetic,
            synthetic_size=setting.synthetic_size, preset=setting.preset, overrides=list(setting.overrides),
            max_epochs=setting.max_epochs, loaded=group["loaded"])
    return group["jobs"][job_key]


def release() -> None:
    _CACHE.update(current=None, groups={})


def plan(expanded, out, *, retry_failed=False, keep_data=False) -> Plan:
    """Resolve each setting (one data file at a time) and split its runs into done and to-do.

    `keep_data` keeps every prepared job in this process for running them here next."""
    from .config import config_hash
    from .results import read_records

    if not expanded:
        raise UsageError("nothing to run")
    order = {key: i for i, key in enumerate(dict.fromkeys(s.data_key() for _, s, _ in expanded))}
    runs, seen, missing = [], set(), {}
    for name, setting, seeds in sorted(expanded, key=lambda e: order[e[1].data_key()]):
        try:
            job = prepare(setting, keep_others=keep_data)
        except MissingDataError as error:
            # Go on, so that one report names every file the sweep needs and lacks.
            missing.setdefault((error.what, error.path), set()).update((setting.cache_key(), s) for s in seeds)
            continue
        chash, data = config_hash(job.config), job.data.spec.source
        for seed in seeds:
            run = PlannedRun(setting, seed, chash, data, dict(job.config), name)
            if run.identity not in seen:            # e.g. Table 1's Atsuko row is Table 4's full row
                seen.add(run.identity)
                runs.append(run)
    if keep_data:
        _CACHE["current"] = None       # running starts on the first file and drops none yet
    else:
        release()
    recorded = latest_by_identity(read_records(Path(out)))
    todo, done, failed_skipped, retried = [], 0, 0, 0
    for run in runs:
        status = recorded.get(run.identity, {}).get("status")
        if status == "ok":
            done += 1
        elif status is not None and not retry_failed:
            failed_skipped += 1
        else:
            retried += status is not None
            todo.append(run)
    return Plan(runs, todo, done, failed_skipped, retried, missing)


def _missing_data_error(sweep_plan: Plan) -> DataError:
    files = ", ".join(f"{what} at {path} ({len(runs)} runs)" for (what, path), runs in sweep_plan.missing.items())
    return DataError(f"nothing ran: {len(sweep_plan.missing)} data file(s) this sweep needs are not there: {files}. "
                     f"`python run.py download --check` shows what the data root holds and `python run.py "
                     f"download NAME [--aligned]` fetches a file; or set --data-root, or run with --synthetic")


# --------------------------------------------------------------------------------------
# Running one run (in the driver, a worker process or a Ray task)
# --------------------------------------------------------------------------------------

def execute(run: PlannedRun, run_id: str, out: str, device: str) -> dict:
    """Train one planned run and return its record (never appends: the driver does)."""
    from . import api
    from .config import config_hash
    from .training.seed import resolve_device
    started = datetime.now(timezone.utc)
    clock = time.time()
    try:
        job = prepare(run.setting)
        got = (config_hash(job.config), job.data.spec.source)
        if got != (run.config_hash, run.data):
            raise ToolkitError(f"the config or data changed since the sweep was planned: planned "
                               f"{run.config_hash} on {run.data}, found {got[0]} on {got[1]}")
        return api.train_one(job, run.seed, resolve_device(device), Path(out), True, run_id=run_id)
    except Exception as error:               # a failed run is a result; the sweep goes on
        return failure_record(run, run_id, out, device, error, started, time.time() - clock)


def failure_record(run: PlannedRun, run_id: str, out, device: str, error, started: datetime,
                   wall: float) -> dict:
    """The record of a failed run (`error`: the exception, or a message); its work folder, with
    the traceback in error.txt, becomes `runs/<run_id>.failed`."""
    from . import api
    is_exception = isinstance(error, BaseException)
    message = " ".join(f"{type(error).__name__}: {error}".split()) if is_exception else str(error)
    work = api.partial_dir(Path(out), run_id)
    failed_dir = work.parent / f"{run_id}.failed"
    failed_dir.parent.mkdir(parents=True, exist_ok=True)
    if work.exists():
        work.rename(failed_dir)
    else:
        failed_dir.mkdir(exist_ok=True)
    details = "".join(traceback.format_exception(type(error), error, error.__traceback__)) if is_exception else message
    (failed_dir / "error.txt").write_text(details + "\n", encoding="utf-8")
    s = run.setting
    return {
        "run_id": run_id, "status": "failed", "error": message,
        "model": s.model, "dataset": s.dataset, "aligned": s.aligned, "seed": run.seed,
        "synthetic": run.data.startswith("synthetic:"), "preset": s.preset,
        "metrics": {}, "wall_time_s": wall, "device": str(device),
        "config_hash": run.config_hash, "config": run.config, "data": run.data,
        "package_version": __version__, "git_commit": api.git_commit(),
        "started_at": started.isoformat(timespec="seconds"), "run_dir": str(failed_dir),
    }


# --------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------

def parse_devices(text: str) -> list[str]:
    """'auto' (every visible GPU, else the CPU) | 'cpu' | 'cuda:0,cuda:1' -> checked device names."""
    from .training.seed import resolve_device
    devices = [d.strip() for d in str(text).split(",") if d.strip()]
    if not devices:
        raise UsageError("--devices is empty; use auto, cpu or a list like cuda:0,cuda:1")
    if devices == ["auto"]:
        import torch
        if torch.cuda.is_available():
            return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return [str(resolve_device(d)) for d in devices]


class LocalBackend:
    """In process for jobs=1, else `jobs` spawned worker processes; devices round-robin."""

    def __init__(self, jobs: int = 1, devices: str = "auto"):
        if jobs < 1:
            raise UsageError(f"--jobs must be at least 1, got {jobs}")
        self.jobs = jobs
        self.devices = parse_devices(devices)
        self.threads = max(1, (os.cpu_count() or 1) // jobs)
        self.workers: list[_Worker] = []
        self.in_process = jobs == 1

    def describe(self) -> str:
        where = ", ".join(self.devices)
        return f"local, {'in process' if self.jobs == 1 else f'{self.jobs} worker processes'}, on {where}"

    def start(self) -> None:
        """Start the workers now, so that their imports overlap the driver's planning."""
        if self.jobs > 1 and not self.workers:
            ctx = multiprocessing.get_context("spawn")
            self.workers = [_Worker(ctx, k, self.devices[k % len(self.devices)], self.threads)
                            for k in range(self.jobs)]

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers = []

    def run(self, runs, out, on_result) -> None:
        if self.jobs == 1:
            for i, (run, run_id) in enumerate(runs):
                on_result(execute(run, run_id, str(out), self.devices[i % len(self.devices)]))
            return
        self.start()
        queue = deque((run, run_id, str(out)) for run, run_id in runs)
        for worker in self.workers:
            if queue:
                worker.give(queue.popleft())
        while any(w.task for w in self.workers):
            busy = {w.conn: w for w in self.workers if w.task}
            for conn in wait_for(list(busy)):
                worker = busy[conn]
                run, run_id, _ = worker.task
                try:
                    record = conn.recv()
                except (EOFError, OSError):          # killed (OOM killer, segfault): its run failed
                    worker.proc.join(5)
                    record = failure_record(run, run_id, out, worker.device,
                                            f"worker process died (exit code {worker.proc.exitcode})",
                                            datetime.now(timezone.utc), time.time() - worker.since)
                    worker.stop()
                    worker = _Worker(worker.ctx, worker.index, worker.device, self.threads)
                    self.workers[worker.index] = worker
                worker.task = None
                on_result(record)
                if queue:
                    worker.give(queue.popleft())


class _Worker:
    def __init__(self, ctx, index: int, device: str, threads: int):
        self.ctx, self.index, self.device, self.task, self.since = ctx, index, device, None, time.time()
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, device, threads, os.getpid()),
                                name=f"sweep-worker-{index}", daemon=True)
        self.proc.start()
        child.close()                  # so that a dead worker reads as EOF here

    def give(self, task) -> None:
        self.task, self.since = task, time.time()
        try:
            self.conn.send(task)
        except OSError:
            pass                       # died while idle: the driver reads EOF and records it

    def stop(self) -> None:
        """Idle workers hold nothing worth a clean exit (records are the driver's), so kill."""
        self.proc.kill()
        self.proc.join()
        self.conn.close()


def _die_with_parent(parent_pid: int) -> None:
    """Linux: get SIGKILL when the driver dies, so a killed sweep leaves no worker training."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:                    # the driver died before prctl
        os._exit(1)


def _worker_logging() -> None:
    """Run details go to each run's train.log; the console gets warnings only."""
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING)
    logging.getLogger().addHandler(console)
    log.setLevel(logging.INFO)


def _worker_main(conn, device: str, threads: int, parent_pid: int) -> None:
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)      # Ctrl-C is the driver's to handle
    import torch
    from . import api  # (the heavy imports, done while the driver plans)
    api.git_commit()                                  # the code version this worker imported
    if "OMP_NUM_THREADS" not in os.environ:           # N workers share the cores instead of fighting
        torch.set_num_threads(threads)
    _worker_logging()
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        run, run_id, out = task
        conn.send(execute(run, run_id, out, device))


class RayBackend:
    """One Ray task per run; the driver gathers records and is the only writer of the store."""

    def __init__(self, address: str | None = None, gpus_per_run: float = 0.0, cpus_per_run: float = 1.0):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ToolkitError('the ray backend needs Ray: pip install -e ".[ray]"') from None
        if gpus_per_run < 0 or cpus_per_run <= 0:
            raise UsageError("--gpus-per-run must be >= 0 and --cpus-per-run > 0")
        self.address, self.gpus, self.cpus = address, gpus_per_run, cpus_per_run
        self.in_process = False

    def describe(self) -> str:
        where = f"cluster at {self.address}" if self.address else "a local Ray instance"
        return f"ray, {where}, {self.cpus:g} CPU and {self.gpus:g} GPU per run"

    def start(self) -> None:
        """Connect to (or start) Ray now, while the driver plans."""
        import ray
        if ray.is_initialized():
            return
        # Workers see the driver's data and cache locations, so that they resolve the same
        # configs and data ids as the plan (checked again in `execute`).
        env = {k: os.environ[k] for k in ("MMSA_ATSUKO_CACHE", "MMSA_DATA_ROOT", "HF_HUB_OFFLINE",
                                          "TRANSFORMERS_OFFLINE", "HF_HOME") if k in os.environ}
        ray.init(address=self.address, include_dashboard=False, log_to_driver=True,
                 runtime_env={"env_vars": env} if env else None)
        self.started_here = True

    def close(self) -> None:
        import ray
        if getattr(self, "started_here", False):
            ray.shutdown()
            self.started_here = False

    def run(self, runs, out, on_result) -> None:
        import ray
        self.start()
        task = ray.remote(_ray_task).options(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=0)
        device = "cuda" if self.gpus > 0 else "cpu"
        threads = max(1, int(self.cpus))
        pending = {task.remote(run, run_id, str(Path(out).resolve()), device, threads): (run, run_id)
                   for run, run_id in runs}
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            run, run_id = pending.pop(ref)
            try:
                record = ray.get(ref)
            except Exception as error:                # the worker itself died (OOM, segfault)
                record = failure_record(run, run_id, out, device, error, datetime.now(timezone.utc), 0.0)
            on_result(record)


def _ray_task(run: PlannedRun, run_id: str, out: str, device: str, threads: int) -> dict:
    # The run's CPU allotment, set explicitly: results must not depend on what the worker
    # inherited (float sums over 1 and 2 threads differ in the last bits).
    import torch
    torch.set_num_threads(threads)
    if not log.handlers:
        _worker_logging()
    return execute(run, run_id, out, device)


# --------------------------------------------------------------------------------------
# The driver
# --------------------------------------------------------------------------------------

@dataclass
class Summary:
    plan: Plan
    records: list[dict]
    seconds: float

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.records if r.get("status") != "ok"]


class Progress:
    """One line per finished run, with the overall count and the time left at the current pace."""

    def __init__(self, total: int, echo=print):
        self.total, self.finished, self.failed, self.echo = total, 0, 0, echo
        self.start = time.time()

    def __call__(self, record: dict) -> None:
        from .leaderboard import headline_metric
        self.finished += 1
        elapsed = time.time() - self.start
        eta = elapsed / self.finished * (self.total - self.finished)
        what = f"{record['model']} {record['dataset']}{' aligned' if record['aligned'] else ''} seed {record['seed']}"
        if record.get("status") == "ok":
            key = headline_metric(record["dataset"])
            value = record["metrics"].get(key)
            result = f"ok      {what}: {key} {'nan' if value is None else f'{value:.4f}'}"
        else:
            self.failed += 1
            result = f"FAILED  {what}: {record.get('error', '?')}"
        width = len(str(self.total))
        self.echo(f"[{self.finished:>{width}}/{self.total}] {result} ({record.get('wall_time_s', 0):.1f}s)"
                  f" | {self.finished}/{self.total} done, {self.failed} failed, "
                  f"elapsed {_clock(elapsed)}, ETA {_clock(eta)}")


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class _SweepLock:
    """One sweep at a time per results folder (two would both run what neither has recorded)."""

    def __init__(self, out: Path):
        self.path = Path(out) / SWEEP_LOCK

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise ToolkitError(f"another sweep is writing to {self.path.parent} (lock {self.path}); "
                               f"wait for it or use another --out") from None
        return self

    def __exit__(self, *exc):
        os.close(self.fd)            # closing drops the lock; a killed process drops it too


def run_plan(sweep_plan: Plan, out, backend, echo=print) -> Summary:
    """Run what the plan has to do; append each record as it arrives (hold the sweep lock)."""
    from . import api
    from .results import append_record
    out = Path(out)
    records = []
    start = time.time()
    progress = Progress(len(sweep_plan.todo), echo)

    def on_result(record: dict) -> None:
        append_record(out, record)
        records.append(record)
        progress(record)

    tasks = [(r, api.new_run_id(r.setting.model, r.setting.dataset, r.setting.aligned, r.seed))
             for r in sweep_plan.todo]
    if tasks:
        backend.run(tasks, out, on_result)
    return Summary(sweep_plan, records, time.time() - start)


def sweep(file=None, *, out="results", dry_run=False, retry_failed=False, backend=None, echo=print,
          **lists) -> Summary | Plan:
    """Plan and run a sweep (see the module docstring); `lists` go to `expand`.

    Returns the `Plan` for a dry run, else a `Summary` of what ran.
    """
    from .api import git_commit, resolve_config
    from .results import check_output_folder
    git_commit()                       # the code version this driver runs, read before anything trains
    backend = backend or LocalBackend()
    expanded = expand(file, **lists)
    check_output_folder(out)
    for _, setting, _ in expanded:     # a bad value stops the sweep before it takes its folder's lock
        resolve_config(setting.model, setting.dataset, preset=setting.preset, overrides=setting.overrides,
                       max_epochs=setting.max_epochs)
    if dry_run:
        return _dry_run(expanded, out, retry_failed, echo)
    with _SweepLock(out):
        backend.start()
        try:
            sweep_plan = plan(expanded, out, retry_failed=retry_failed, keep_data=getattr(backend, "in_process", False))
            if sweep_plan.missing:
                raise _missing_data_error(sweep_plan)
            echo(_plan_line(sweep_plan, expanded, retry_failed)
                 + f"{len(sweep_plan.todo)} to run ({backend.describe()})")
            summary = run_plan(sweep_plan, out, backend, echo)
        finally:
            backend.close()
            release()
    ok = len(summary.records) - len(summary.failed)
    echo(f"sweep finished in {_clock(summary.seconds)}: {len(summary.records)} ran ({ok} ok, "
         f"{len(summary.failed)} failed); records in {Path(out) / 'runs.jsonl'}")
    return summary


def _dry_run(expanded, out, retry_failed, echo) -> Plan:
    sweep_plan = plan(expanded, out, retry_failed=retry_failed)
    echo(_plan_line(sweep_plan, expanded, retry_failed) + f"{len(sweep_plan.todo)} would run:")
    for run in sweep_plan.todo:
        echo(f"  {run.describe():<38} config {run.config_hash}  data {run.data}  [{run.experiment}]")
    if sweep_plan.missing:
        raise _missing_data_error(sweep_plan)
    return sweep_plan


def _plan_line(sweep_plan: Plan, expanded, retry_failed: bool) -> str:
    n_settings = len({(s.model, s.dataset, s.aligned) for _, s, _ in expanded})
    held_up = sum(map(len, sweep_plan.missing.values()))
    head = (f"sweep: {len(sweep_plan.runs)} runs ({n_settings} model/dataset settings x seeds)"
            f"{f' and {held_up} more whose data is missing' if held_up else ''}: "
            f"{sweep_plan.done} already recorded, ")
    if retry_failed:
        return head + f"{sweep_plan.retried} failed before and retried, "
    return head + f"{sweep_plan.failed_skipped} failed before and skipped (--retry-failed reruns them), "
