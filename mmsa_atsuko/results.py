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

No run is lost: a record the store cannot take (a full disk, an unwritable file) is kept as
`record.json` in its run's folder (`append_or_keep`) and folded in exactly once by `recover`
(`run.py results --recover`, and every `run` and `sweep` as it starts).

Everything stays inside the results folder named on the command line: a record names its run's
folder relative to it (`run_dir: runs/<run_id>`), and `run_path` finds the folder from the run id
alone (checked against RUN_ID), inside that folder, whatever a record says; the store, the CSVs
and the analysis outputs are never written through a symbolic link (O_NOFOLLOW, `open_new`).
A record whose fields have the wrong types is a one-line DataError (`identity`, `check_ok_record`).

Also writes MMSA-compatible aggregate rows to `<out>/normal/<dataset>.csv` (reference/mmsa.md
3.4): one row per (model, dataset) call, cells "(mean, std)" x100 with population std,
rounded to 2 decimals, MAE/Corr/Loss x100 too, exactly as MMSA does.
"""
from __future__ import annotations

import csv
import errno
import json
import logging
import math
import os
import platform
import re
from datetime import datetime
from pathlib import Path, PurePosixPath

import numpy as np
from filelock import FileLock

from .config import config_hash, dataset_facts, dataset_names
from .data.conditions import PLAIN, condition_of
from .errors import DataError, ToolkitError, UsageError
from .metrics import METRIC_KEYS, MMSA_CSV_KEYS, metric_family
from .version import __version__

log = logging.getLogger("mmsa_atsuko")

RUNS_FILE = "runs.jsonl"
RECORD_FILE = "record.json"      # a finished run's record that could not be appended, kept in its folder
ANALYSIS_DIR = "analysis"        # where analysis commands write by default
# What `api.new_run_id` makes: model-dataset[-aligned]-s<seed>-<UTC time>-<6 hex>. No dot and no
# separator can appear, so a run id is always one path component inside `<results>/runs`.
RUN_ID = re.compile(r"[A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*-s-?[0-9]+-[0-9]{8}T[0-9]{6}-[0-9a-f]{6}")
# Entries of a results folder that the toolkit writes through: a planted symlink would send the writes elsewhere.
STORE_ENTRIES = (RUNS_FILE, RUNS_FILE + ".lock", "runs", "normal", ANALYSIS_DIR)
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)     # absent on Windows, where a plain user cannot make symlinks


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
    if probe == out_dir:
        for name in STORE_ENTRIES:
            entry = out_dir / name
            if entry.is_symlink():
                raise UsageError(f"{what} {out_dir}: {entry} is a symbolic link; the toolkit writes only inside "
                                 f"the results folder (replace it with a real {'file' if '.' in name else 'folder'})")
            if entry.is_file() and not os.access(entry, os.W_OK):
                raise UsageError(f"{what} {out_dir}: {entry} is not writable by this user; fix its permissions "
                                 f"or choose another --out")
    return out_dir


def show(value, limit: int = 60) -> str:
    """A short repr of a value read from a file, for an error line (never a huge string)."""
    if isinstance(value, (dict, list)):
        return f"a JSON {'object' if isinstance(value, dict) else 'array'}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10 ** 18:
        return "a huge integer"
    text = repr(value[:limit + 1] if isinstance(value, str) else value)
    return text if len(text) <= limit else text[:limit] + "..."


def check_run_id(run_id) -> str:
    """`run_id` if it is one `api.new_run_id` could have made, else a one-line DataError."""
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        raise DataError(f"{show(run_id)} is not a run id (expected one like tfn-mosi-s1111-20260101T120000-0a1b2c)")
    return run_id


def relative_run_dir(run_dir) -> str:
    """How a record names its run's folder: `runs/<folder name>`, relative to the results folder, so a
    copied or moved results folder still finds its runs."""
    return f"runs/{Path(run_dir).name}"


def inside(results, *parts) -> Path:
    """`<results>/<parts>`, refused (DataError) unless it resolves inside `results`: a part that is
    `..`, absolute, or a symbolic link pointing elsewhere would lead outside."""
    root = Path(results)
    path = root.joinpath(*parts)
    real_root, real = os.path.realpath(root), os.path.realpath(path)
    if os.path.commonpath([real_root, real]) != real_root or any(
            p in ("", ".", "..") or "/" in p or "\\" in p for p in map(str, parts)):
        raise DataError(f"{path} leads outside the results folder {root}; refusing to use it")
    return path


def run_path(results, record: dict) -> Path:
    """The folder of `record`'s run inside `results`, the folder named on the command line: only the
    last component of the stored `run_dir` counts (older records stored an absolute path), and it
    must be the run's id (or `<id>.failed`), so no record can lead anywhere else."""
    run_id = check_run_id(record.get("run_id"))
    stored = record.get("run_dir")
    name = PurePosixPath(stored.replace("\\", "/")).name if isinstance(stored, str) and stored else run_id
    if name not in (run_id, f"{run_id}.failed"):
        raise DataError(f"run {run_id}: its run_dir {show(stored)} is not the run's folder")
    return inside(results, "runs", name)


def analysis_dir(results) -> Path:
    """`<results>/analysis`, where analysis commands write unless given --out (created)."""
    folder = inside(results, ANALYSIS_DIR)
    if folder.is_symlink():
        raise DataError(f"{folder} is a symbolic link; the toolkit writes only inside the results folder")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def open_new(path, mode: str = "w", **kwargs):
    """`open(path, mode)` for writing ("w" or "wb", truncating) that never follows a symbolic link
    at `path`: a planted link makes it fail with a one-line DataError instead of writing its target."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | NOFOLLOW, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP or Path(path).is_symlink():
            raise DataError(f"{path} is a symbolic link; refusing to write through it") from None
        raise
    return os.fdopen(fd, mode, **kwargs)


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
              torch_threads: int, torch_version: str, device_name: str, peak_memory_mb: float,
              precision: str, deterministic: bool, label: str | None = None,
              routing: dict | None = None) -> dict:
    """The record of a finished run: `spec` is its DatasetSpec, `result` the trainer's FitResult.
    `peak_memory_mb`: the GPU's max_memory_allocated on CUDA, the process's peak RSS on the CPU.
    `label` (a tune's study name) is stored when given. `routing`: what the routers did over the
    test samples (models/atsuko/diagnostics.py), for models that route; absent otherwise."""
    return {
        "run_id": run_id, "status": "ok",
        "model": model, "dataset": spec.name, "aligned": spec.aligned, "seed": seed,
        "synthetic": spec.synthetic, "preset": preset,
        "metrics": result.test.metrics, "valid_metrics": result.valid,
        "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
        "wall_time_s": wall_time_s, "device": str(device),
        # CPU float sums over 1 and 2 threads differ in the last bits: part of what made the numbers.
        "torch_threads": torch_threads,
        "device_name": device_name, "peak_memory_mb": peak_memory_mb, "precision": precision,
        "deterministic": deterministic, "steps_per_s": result.steps_per_s,
        "config_hash": config_hash(config), "config": dict(config),
        "data": spec.source, "data_path": spec.path, "extractor": spec.extractor,
        "package_version": __version__, "git_commit": git_commit,
        "torch_version": torch_version, "python": platform.python_version(),
        "started_at": started.isoformat(timespec="seconds"),
        "run_dir": relative_run_dir(run_dir), "checkpoint": checkpoint, "condition": spec.condition.as_dict(),
    } | ({"label": label} if label else {}) | ({"routing": routing} if routing is not None else {})


def failed_record(run_id: str, *, model: str, dataset: str, aligned: bool, seed: int, preset, config: dict,
                  data: str, error: str, device, started: datetime, wall_time_s: float, run_dir, git_commit,
                  checkpoint: str, condition=PLAIN) -> dict:
    """The record of a run that raised or whose process died (`error`: one line)."""
    return {
        "run_id": run_id, "status": "failed", "error": error,
        "model": model, "dataset": dataset, "aligned": aligned, "seed": seed,
        "synthetic": data.startswith("synthetic:"), "preset": preset,
        "metrics": {}, "wall_time_s": wall_time_s, "device": str(device),
        "config_hash": config_hash(config), "config": dict(config), "data": data,
        "package_version": __version__, "git_commit": git_commit,
        "started_at": started.isoformat(timespec="seconds"), "run_dir": relative_run_dir(run_dir),
        "checkpoint": checkpoint, "condition": condition.as_dict(),
    }


def run_identity(model: str, dataset: str, aligned: bool, seed: int, config_hash: str, data: str,
                 condition: str = "") -> tuple:
    """What makes two runs the same run: the same training on the same data (the data id is
    `sha256:<hex>` of the feature file or `synthetic:<recipe>`) under the same protocol condition
    (`Condition.key()`, "" for the plain one). The plain condition adds nothing to the tuple, so
    records and run folders made before conditions existed keep their identity."""
    return (model, dataset, bool(aligned), int(seed), config_hash, data) + ((condition,) if condition else ())


IDENTITY_FIELDS = ("model", "dataset", "aligned", "seed", "config_hash", "data")


def identity(record: dict) -> tuple | None:
    """The run identity of a store record, or None for a record that is not a run (it lacks a
    field); an identity field of the wrong type is a DataError (a crafted or hand-edited line)."""
    if not all(field in record for field in IDENTITY_FIELDS):
        return None
    for field in ("model", "dataset", "config_hash", "data"):
        if not isinstance(record[field], str):
            _bad(record, field, "a string")
    if not isinstance(record["aligned"], bool):
        _bad(record, "aligned", "true or false")
    if not isinstance(record["seed"], int) or isinstance(record["seed"], bool) or abs(record["seed"]) >= 2 ** 63:
        _bad(record, "seed", "an integer")
    try:
        condition = condition_of(record).key()
    except (TypeError, ValueError):
        _bad(record, "condition", "a mapping of missing_rate, drop_modality and modalities")
    return run_identity(*(record[field] for field in IDENTITY_FIELDS), condition)


def _bad(record: dict, field: str, what: str):
    run = record.get("run_id")
    raise DataError(f"{RUNS_FILE}: record {show(run) if isinstance(run, str) else '(no run_id)'}: "
                    f"{field} must be {what}, got {show(record.get(field))}; remove or fix that line")


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
    """One `ok` record per run identity (the latest), in store order; failures dropped. An `ok`
    record whose fields have the wrong types (a hand-made or hostile line) is a DataError."""
    chosen = {id(r) for r in latest_by_identity(records).values() if r.get("status") == "ok"}
    return [check_ok_record(r) for r in records if id(r) in chosen]


MAX_CONFIG_DEPTH = 16


def check_ok_record(record: dict) -> dict:
    """`record` if the fields that tables and analyses read have their types, else a one-line
    DataError naming the run and the field (a crafted record must not become a traceback)."""
    def bad(field: str, what: str):
        _bad(record, field, what)

    for field in ("run_id", "model", "dataset", "config_hash", "data"):
        if not isinstance(record.get(field), str) or not 0 < len(record[field]) <= 500:
            bad(field, "a non-empty string")
    if not re.fullmatch(r"[A-Za-z0-9_]{1,64}", record["model"]):
        bad("model", "a model name")
    if record["dataset"] not in dataset_names():
        bad("dataset", f"one of {', '.join(dataset_names())} (or of a --datasets FILE)")
    if not isinstance(record.get("aligned"), bool):
        bad("aligned", "true or false")
    seed = record.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or abs(seed) >= 2 ** 63:
        bad("seed", "an integer")
    metrics = record.get("metrics")
    if not isinstance(metrics, dict) or not all(isinstance(k, str) and _is_number(v) for k, v in metrics.items()):
        bad("metrics", "an object of metric name -> number or null")
    if not isinstance(record.get("config"), dict) or _depth(record["config"]) > MAX_CONFIG_DEPTH:
        bad("config", f"an object nested at most {MAX_CONFIG_DEPTH} deep")
    for field, kinds in (("synthetic", (bool,)), ("run_dir", (str,)), ("data_path", (str, type(None))),
                         ("best_epoch", (int,)), ("started_at", (str,)), ("preset", (str, type(None)))):
        if field in record and not isinstance(record[field], kinds):
            bad(field, " or ".join("null" if k is type(None) else k.__name__ for k in kinds))
    return record


def _is_number(value) -> bool:
    """null, or a number a table can format: finite, and an int no larger than a float holds exactly."""
    if value is None:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) <= 2 ** 53
    return isinstance(value, float) and math.isfinite(value)


def _depth(value) -> int:
    """How deep JSON containers nest in `value` (iterative: a deep value must not exhaust the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if depth > MAX_CONFIG_DEPTH:
                return depth
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def headline_metric(dataset: str) -> str:
    """The metric tables test and figures plot (configs/datasets.yaml `headline`): MAE, macro-F1 for MIntRec."""
    return dataset_facts(dataset)["headline"]


def _lock(path: Path) -> FileLock:
    """The exclusive lock of one store file; a separate `<name>.lock` file, since a lock on
    the data file itself is not portable. A killed holder's lock is dropped by the OS."""
    return FileLock(f"{path}.lock")


def append_record(out_dir: Path, record: dict) -> None:
    """Append one record as one line, atomically with respect to kills and other writers."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / RUNS_FILE
    with _lock(path):
        _append_locked(path, _line(record))


def _line(record: dict) -> bytes:
    return (json.dumps(json_safe(record), sort_keys=False, allow_nan=False) + "\n").encode()


def _append_locked(path: Path, line: bytes) -> None:
    """The append itself; the caller holds the store's lock. Never through a symbolic link."""
    fd = _open_append(path)
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
            raise OSError(errno.ENOSPC, f"short write to {path} ({written}/{len(line)} bytes)")
        os.fsync(fd)
    finally:
        os.close(fd)


class RecordNotAppended(ToolkitError):
    """A finished run whose record could not be appended; the record is kept in its folder."""


def append_or_keep(out_dir: Path, record: dict) -> None:
    """`append_record`, and when the store cannot take it (unwritable, full disk) the record is
    kept as `record.json` in the run's folder and a one-line RecordNotAppended is raised:
    `run.py results --recover`, or the next run or sweep, folds it into the store."""
    try:
        append_record(out_dir, record)
        return
    except (OSError, DataError) as e:          # DataError: the store became a symbolic link
        why = getattr(e, "strerror", None) or str(e)
    folder = run_path(out_dir, record)
    try:
        keep = folder / RECORD_FILE
        with open_new(keep, "wb") as f:
            f.write(_line(record))
            f.flush()
            os.fsync(f.fileno())
    except (OSError, DataError) as e:
        raise RecordNotAppended(f"could not append run {record['run_id']} to {Path(out_dir) / RUNS_FILE} ({why}) "
                                f"nor keep it in {folder} ({getattr(e, 'strerror', None) or e}); "
                                f"its outputs are in {folder}") from None
    raise RecordNotAppended(f"could not append run {record['run_id']} to {Path(out_dir) / RUNS_FILE} ({why}); "
                            f"its record is kept in {keep}: free space or fix permissions, then run "
                            f"`python run.py results --recover --results {out_dir}`")


MAX_KEPT_RECORD = 1 << 24         # a kept record.json larger than this is not one the toolkit wrote


def recover(out_dir) -> list[dict]:
    """Fold every kept `runs/*/record.json` into the store, exactly once: a record whose run_id the
    store already holds (a recovery killed between its append and its cleanup) is not appended
    again; each file is removed once its record is in the store. Returns the records appended."""
    out_dir = Path(out_dir)
    kept = sorted((out_dir / "runs").glob(f"*/{RECORD_FILE}")) if (out_dir / "runs").is_dir() else []
    if not kept:
        return []
    path = out_dir / RUNS_FILE
    appended = []
    with _lock(path):
        stored = {r.get("run_id") for r in read_records(out_dir)}
        for file in kept:
            record = _read_kept(file)
            if record is None:
                continue
            if record["run_id"] not in stored:
                _append_locked(path, _line(record))
                stored.add(record["run_id"])
                appended.append(record)
            file.unlink()
    return appended


def _read_kept(file: Path) -> dict | None:
    """The record in a kept record.json, or None (with a warning) for one that is not a record of its folder."""
    try:
        if file.is_symlink() or file.stat().st_size > MAX_KEPT_RECORD:
            raise ValueError
        record = _parse_record(file.read_bytes())
        if record is None or run_path(file.parent.parent.parent, record).name != file.parent.name:
            raise ValueError
    except (OSError, ValueError, DataError):
        log.warning("%s is not the record of run folder %s; left as it is", file, file.parent.name)
        return None
    return record


def _open_append(path: Path) -> int:
    """A file descriptor for appending to `path`, never through a symbolic link."""
    try:
        return os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | NOFOLLOW, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise DataError(f"{path} is a symbolic link; the toolkit writes only inside the results folder") from None
        raise


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
    # ValueError: a JSON error, or an integer of more digits than Python converts;
    # RecursionError: nesting deeper than the parser's stack.
    except (ValueError, UnicodeDecodeError, RecursionError):
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
    with _lock(path), os.fdopen(_open_append(path), "a+", newline="", encoding="utf-8") as f:
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
