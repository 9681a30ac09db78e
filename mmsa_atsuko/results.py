"""The results store and the one owner of run records.

A run record is built here (`ok_record`, `failed_record`), identified here (`identity`:
model, dataset, aligned flag, seed, config hash, data id) and chosen here (`latest_by_identity`,
`ok_records`): `run`, `sweep` and the tables all see runs the same way.

The store is one JSON line per finished run in `<out>/runs.jsonl`. Records are only ever
appended, each with a single `write` of the file opened O_APPEND while holding an exclusive
lock (`runs.jsonl.lock`, a `filelock.FileLock`), so two processes writing at once never
interleave. A single write is not atomic against SIGKILL: Linux stops a write at a page
boundary when a fatal signal arrives, so a writer killed mid-record can leave a fragment
without its newline. Readers skip such a fragment, and the next append, which holds the lock
and so knows the fragment's writer is dead, cuts it off first: the file goes back to whole
lines. A last line that lacks only its newline (a file merged or edited by hand, or a writer
killed just before it) is a whole record, not a fragment: readers read it and the next append
completes the line. A proper prefix of a JSON object is never itself one, so the two cannot be
confused. Metrics are stored at full precision; tables are built later.

Also writes MMSA-compatible aggregate rows to `<out>/normal/<dataset>.csv` (reference/mmsa.md
3.4): one row per (model, dataset) call, cells "(mean, std)" x100 with population std,
rounded to 2 decimals, MAE/Corr/Loss x100 too, exactly as MMSA does.
"""
from __future__ import annotations

import csv
import json
import math
import os
import platform
from datetime import datetime
from pathlib import Path

import numpy as np
from filelock import FileLock

from .config import config_hash
from .errors import UsageError
from .metrics import METRIC_KEYS, MMSA_CSV_KEYS, metric_family
from .version import __version__

RUNS_FILE = "runs.jsonl"
HEADLINE = {"mosi": "MAE", "sims": "MAE", "mintrec": "f1"}     # per metric family


def check_output_folder(out_dir, what: str = "results folder") -> Path:
    """Raise UsageError (one line) unless `out_dir` is, or can be created as, a folder this
    process may write. Creates nothing: a request that fails later must leave no trace."""
    out_dir = Path(out_dir)
    probe = out_dir
    while not probe.exists():              # the nearest ancestor that exists is where mkdir starts
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"{what} {out_dir}: {probe} is a file, not a folder; choose another --out")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {out_dir}: {probe} is not writable by this user; choose another --out")
    return out_dir


def json_safe(value):
    """NaN/inf are not JSON; store them as null (a NaN Corr of a constant predictor)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return json_safe(value.item())
    return value


def ok_record(run_id: str, *, model: str, seed: int, preset, config: dict, spec, result, device,
              started: datetime, wall_time_s: float, run_dir, git_commit, checkpoint: str,
              torch_threads: int, torch_version: str, routing: dict | None = None) -> dict:
    """The record of a finished run: `spec` is its DatasetSpec, `result` the trainer's FitResult.
    `routing`: what the routers did over the test samples (models/atsuko/diagnostics.py), for
    models that route; absent otherwise."""
    return {
        "run_id": run_id, "status": "ok",
        "model": model, "dataset": spec.name, "aligned": spec.aligned, "seed": seed,
        "synthetic": spec.synthetic, "preset": preset,
        "metrics": result.test.metrics, "valid_metrics": result.valid,
        "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
        "wall_time_s": wall_time_s, "device": str(device),
        # CPU float sums over 1 and 2 threads differ in the last bits: part of what made the numbers.
        "torch_threads": torch_threads,
        "config_hash": config_hash(config), "config": dict(config),
        "data": spec.source, "data_path": spec.path,
        "package_version": __version__, "git_commit": git_commit,
        "torch_version": torch_version, "python": platform.python_version(),
        "started_at": started.isoformat(timespec="seconds"),
        "run_dir": str(run_dir), "checkpoint": checkpoint,
        **({"routing": routing} if routing is not None else {}),
    }


def failed_record(run_id: str, *, model: str, dataset: str, aligned: bool, seed: int, preset, config: dict,
                  data: str, error: str, device, started: datetime, wall_time_s: float, run_dir, git_commit,
                  checkpoint: str) -> dict:
    """The record of a run that raised or whose process died (`error`: one line)."""
    return {
        "run_id": run_id, "status": "failed", "error": error,
        "model": model, "dataset": dataset, "aligned": aligned, "seed": seed,
        "synthetic": data.startswith("synthetic:"), "preset": preset,
        "metrics": {}, "wall_time_s": wall_time_s, "device": str(device),
        "config_hash": config_hash(config), "config": dict(config), "data": data,
        "package_version": __version__, "git_commit": git_commit,
        "started_at": started.isoformat(timespec="seconds"), "run_dir": str(run_dir), "checkpoint": checkpoint,
    }


def run_identity(model: str, dataset: str, aligned: bool, seed: int, config_hash: str, data: str) -> tuple:
    """What makes two runs the same run: the same training on the same data (the data id is
    `sha256:<hex>` of the feature file or `synthetic:<recipe>`)."""
    return (model, dataset, bool(aligned), int(seed), config_hash, data)


def identity(record: dict) -> tuple | None:
    """The run identity of a store record, or None for a record that is not a run."""
    try:
        return run_identity(record["model"], record["dataset"], record["aligned"], record["seed"],
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


def headline_metric(dataset: str) -> str:
    """The metric a run is summed up by (progress lines, significance tests): MAE, or macro-F1 for MIntRec."""
    return HEADLINE[metric_family(dataset)]


def _lock(path: Path) -> FileLock:
    """The exclusive lock of one store file; a separate `<name>.lock` file, since a lock on
    the data file itself is not portable. A killed holder's lock is dropped by the OS."""
    return FileLock(f"{path}.lock")


def append_record(out_dir: Path, record: dict) -> None:
    """Append one record as one line, atomically with respect to kills and other writers."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(json_safe(record), sort_keys=False, allow_nan=False) + "\n").encode()
    path = out_dir / RUNS_FILE
    with _lock(path):
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and _read_at(fd, 1, size - 1) != b"\n":
                end = _end_of_last_line(fd, size)
                if _parse_record(_read_at(fd, size - end, end)) is not None:
                    os.write(fd, b"\n")           # a whole record that lost only its newline: keep it
                else:
                    os.ftruncate(fd, end)         # a killed writer's fragment
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"short write to {path} ({written}/{len(line)} bytes)")
            os.fsync(fd)
        finally:
            os.close(fd)


def _read_at(fd: int, size: int, offset: int) -> bytes:
    """`os.pread`, on every system (it is Unix-only); appends ignore the position it moves."""
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, size)


def _end_of_last_line(fd: int, size: int, block: int = 1 << 16) -> int:
    """The offset just past the file's last newline (0 if it has none), read backwards."""
    end = size
    while end > 0:
        start = max(0, end - block)
        newline = _read_at(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        end = start
    return 0


def _parse_record(raw: bytes) -> dict | None:
    """The record on one line, or None for a blank line, a fragment or anything but an object."""
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


def read_records(out_dir: Path) -> list[dict]:
    """All complete records; a torn final fragment is ignored (see the module docstring)."""
    path = Path(out_dir) / RUNS_FILE
    if not path.exists():
        return []
    with open(path, "rb") as f:
        return [record for record in map(_parse_record, f) if record is not None]


def mmsa_cell(values) -> str:
    """MMSA's cell: str((round(mean*100, 2), round(std*100, 2))) with the population std."""
    arr = np.asarray(values, dtype=np.float64)
    return str((round(float(np.mean(arr)) * 100, 2), round(float(np.std(arr)) * 100, 2)))


def append_mmsa_csv(out_dir: Path, dataset: str, model: str, per_seed_metrics: list[dict],
                    synthetic: bool) -> Path:
    """Append one MMSA-style row; synthetic results go to `<dataset>-synthetic.csv`."""
    family = metric_family(dataset)
    # MIntRec is not an MMSA dataset: its row has MIntRec's metrics (acc, f1, precision, recall).
    columns = ["Model", *MMSA_CSV_KEYS.get(family, METRIC_KEYS[family]), "Loss"]
    folder = Path(out_dir) / "normal"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (f"{dataset}-synthetic.csv" if synthetic else f"{dataset}.csv")
    row = [model] + [mmsa_cell([m[k] for m in per_seed_metrics]) for k in columns[1:]]
    with _lock(path), open(path, "a+", newline="", encoding="utf-8") as f:
        f.seek(0)
        header = f.readline()
        f.seek(0, os.SEEK_END)                # "a+" writes at the end anyway; this drops the read buffer
        writer = csv.writer(f)
        if not header:
            writer.writerow(columns)
        elif next(csv.reader([header])) != columns:
            raise ValueError(f"{path} has columns {header.strip()}, expected {','.join(columns)}")
        writer.writerow(row)
    return path
