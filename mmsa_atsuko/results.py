"""The results store: one JSON line per finished run in `<out>/runs.jsonl`.

Records are only ever appended, each with a single `write` under an exclusive `flock`, so two
processes writing at once never interleave. A single write is not atomic against SIGKILL:
Linux stops a write at a page boundary when a fatal signal arrives, so a writer killed
mid-record can leave a fragment without its newline. Readers skip such a fragment, and the
next append, which holds the lock and so knows the fragment's writer is dead, cuts it off
first: the file goes back to whole lines. A last line that lacks only its newline (a file
merged or edited by hand, or a writer killed just before it) is a whole record, not a
fragment: readers read it and the next append completes the line. A proper prefix of a JSON
object is never itself one, so the two cannot be confused. Metrics are stored at full
precision; tables are built later.

Also writes MMSA-compatible aggregate rows to `<out>/normal/<dataset>.csv` (reference/mmsa.md
3.4): one row per (model, dataset) call, cells "(mean, std)" x100 with population std,
rounded to 2 decimals, MAE/Corr/Loss x100 too, exactly as MMSA does.
"""
from __future__ import annotations

import csv
import fcntl
import json
import math
import os
from pathlib import Path

import numpy as np

from .errors import UsageError
from .metrics import METRIC_KEYS, MMSA_CSV_KEYS, metric_family

RUNS_FILE = "runs.jsonl"


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


def append_record(out_dir: Path, record: dict) -> None:
    """Append one record as one line, atomically with respect to kills and other writers."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(json_safe(record), sort_keys=False, allow_nan=False) + "\n").encode()
    fd = os.open(out_dir / RUNS_FILE, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            end = _end_of_last_line(fd, size)
            if _parse_record(os.pread(fd, size - end, end)) is not None:
                os.write(fd, b"\n")           # a whole record that lost only its newline: keep it
            else:
                os.ftruncate(fd, end)         # a killed writer's fragment
        written = os.write(fd, line)
        if written != len(line):
            raise OSError(f"short write to {out_dir / RUNS_FILE} ({written}/{len(line)} bytes)")
        os.fsync(fd)
    finally:
        os.close(fd)


def _end_of_last_line(fd: int, size: int, block: int = 1 << 16) -> int:
    """The offset just past the file's last newline (0 if it has none), read backwards."""
    end = size
    while end > 0:
        start = max(0, end - block)
        newline = os.pread(fd, end - start, start).rfind(b"\n")
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
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(os.dup(fd), "r+", newline="", encoding="utf-8") as f:
            header = f.readline()
            f.seek(0, os.SEEK_END)
            writer = csv.writer(f)
            if not header:
                writer.writerow(columns)
            elif next(csv.reader([header])) != columns:
                raise ValueError(f"{path} has columns {header.strip()}, expected {','.join(columns)}")
            writer.writerow(row)
    finally:
        os.close(fd)
    return path
