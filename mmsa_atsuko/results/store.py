"""The store, `<out>/runs.jsonl`: appending, reading, and keeping what cannot be appended.

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
"""
from __future__ import annotations

import errno
import json
import logging
import math
import os
from pathlib import Path

import numpy as np

from ..atomic import open_append, open_new, read_small_file
from ..errors import DataError, ToolkitError
from ..lock_files import shared_mode
from .folder import RECORD_FILE, RUNS_FILE, run_path, store_lock
from .store_lines import (MAX_KEPT_RECORD, MAX_STORE_BYTES, MAX_STORE_LINES, not_a_run, parse_record, read_records,
                          run_ids)

log = logging.getLogger("mmsa_atsuko")


def json_safe(value):
    """NaN/inf are not JSON; store them as null (a NaN Corr of a constant predictor). numpy scalars
    (bool_ included) and arrays become Python values, so a record never fails to serialise."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        return json_safe(value.item())
    return value


def append_record(out_dir: Path, record: dict) -> None:
    """Append one record as one line, atomically with respect to kills and other writers."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / RUNS_FILE
    with store_lock(path):
        _append_locked(path, _line(record))


def _line(record: dict) -> bytes:
    return (json.dumps(json_safe(record), sort_keys=False, allow_nan=False) + "\n").encode()


def _append_locked(path: Path, line: bytes) -> None:
    """The append itself; the caller holds the store's lock. Never through a symbolic link."""
    fd = open_append(path, shared_mode(path.parent))
    try:
        mend_last_line(fd, lambda last: parse_record(last) is not None)
        _check_room(fd, path, len(line))
        written = os.write(fd, line)
        if written != len(line):
            raise OSError(errno.ENOSPC, f"short write to {path} ({written}/{len(line)} bytes)")
        os.fsync(fd)
    finally:
        os.close(fd)


def mend_last_line(fd: int, is_whole, ending: bytes = b"\n") -> None:
    """Before an append to a file of lines (`fd`, opened O_APPEND, its lock held, so a writer that left its last
    line without a newline is dead): a last line `is_whole` accepts (its bytes; one that lost only its newline, as
    a hand edit leaves it) gets `ending` (after a carriage return, only the newline); any other is a killed writer's
    fragment and is cut off. Either way the next line starts a line of its own instead of being joined onto the last
    one."""
    size = os.fstat(fd).st_size
    if not size or _read_at(fd, 1, size - 1) == b"\n":
        return
    end = _end_of_last_line(fd, size)
    last = _read_at(fd, size - end, end)
    if is_whole(last):
        os.write(fd, b"\n" if last.endswith(b"\r") else ending)
    else:
        os.ftruncate(fd, end)


class StoreFull(DataError):
    """An append that would take the store past the bounds its readers hold it to (MAX_STORE_BYTES, MAX_STORE_LINES)."""


def _check_room(fd: int, path: Path, size: int) -> None:
    """StoreFull unless a line of `size` bytes fits in the store (`fd`, its lines whole): a store the toolkit grew
    past its bounds would be refused by every command after, its own included."""
    stored = os.fstat(fd).st_size
    if stored + size > MAX_STORE_BYTES:
        raise StoreFull(f"{path} holds {math.ceil(stored / (1 << 20))} MiB of runs, and another would take it past "
                        f"{MAX_STORE_BYTES >> 20} MiB, more than a store may hold")
    # fewer bytes than MAX_STORE_LINES hold fewer lines: the count is read only for a store that may be full
    if stored >= MAX_STORE_LINES and _newlines(fd, stored) >= MAX_STORE_LINES:
        raise StoreFull(f"{path} holds {MAX_STORE_LINES:,} lines, and another would take it past "
                        f"{MAX_STORE_LINES:,}, more than a store may hold")


def _newlines(fd: int, size: int, block: int = 1 << 20) -> int:
    return sum(_read_at(fd, min(block, size - start), start).count(b"\n") for start in range(0, size, block))


class RecordNotAppended(ToolkitError):
    """A finished run whose record could not be appended; the record is kept in its folder."""


def append_or_keep(out_dir: Path, record: dict) -> None:
    """`append_record`, and when the store cannot take it (unwritable, full disk) the record is
    kept as `record.json` in the run's folder and a one-line RecordNotAppended is raised:
    `run.py results --recover`, or the next run or sweep, folds it into the store."""
    try:
        append_record(out_dir, record)
        return
    except (OSError, DataError) as e:          # DataError: the store became a symbolic link, or is full
        why = getattr(e, "strerror", None) or str(e)
        remedy = "move the store away (the next append starts a new one)" if isinstance(e, StoreFull) \
            else "free space or fix permissions"
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
                            f"its record is kept in {keep}: {remedy}, then run "
                            f"`python run.py results --recover --results {out_dir}`")


def recover(out_dir) -> list[dict]:
    """Fold every kept `runs/*/record.json` into the store, exactly once: a record whose run_id the
    store already holds (a recovery killed between its append and its cleanup) is not appended
    again; each file is removed once its record is in the store. Returns the records appended.
    The file is the run's truth: a store line of its run_id that readers skip (`not_a_run`: forged, or of wrong
    types) holds no run, so it neither blocks the record nor makes it a second one, and a file that holds no run
    record itself is left, with a warning, never appended as a line every reader would skip.
    A file this user may not remove (its run folder is another user's, in a shared results folder) is left,
    with one warning when its record is appended: the store holds its run_id, so no later call appends it
    again, and a user who may write its folder removes it at their next recovery."""
    out_dir = Path(out_dir)
    if not _kept_records(out_dir):
        return []
    path = out_dir / RUNS_FILE
    appended = []
    with store_lock(path):
        stored = run_ids(read_records(out_dir))       # of the lines that hold a run: a skipped one blocks nothing
        # Listed again under the lock: a recovery that held it meanwhile (a sweep and `results --recover` started
        # together) folded in and removed what the list before it named, each then warned of as no record.
        for file in _kept_records(out_dir):
            record = _read_kept(file)
            if record is None:
                continue
            fresh = record["run_id"] not in stored
            if fresh:
                _append_locked(path, _line(record))
                stored.add(record["run_id"])
                appended.append(record)
            try:
                file.unlink()
            except OSError as e:
                if fresh:
                    log.warning("%s: its record is now in %s, but this user may not remove the file (%s); it is "
                                "left for a user who may write %s, and never appended again", file, path,
                                e.strerror or e, file.parent)
    return appended


def _kept_records(out_dir: Path) -> list[Path]:
    return sorted((out_dir / "runs").glob(f"*/{RECORD_FILE}")) if (out_dir / "runs").is_dir() else []


def _read_kept(file: Path) -> dict | None:
    """The record in a kept record.json, or None (with a warning) for one that is not a record of its folder, or
    that holds no run record: appended, it would be a line every reader skips (`not_a_run`), and the file, the
    run's only record, removed."""
    try:
        # a named pipe there blocked every run, sweep and recovery for good
        record = parse_record(read_small_file(file, MAX_KEPT_RECORD))
        if record is None or run_path(file.parent.parent.parent, record).name != file.parent.name:
            raise ValueError
    except (OSError, ValueError, DataError):
        log.warning("%s is not the record of run folder %s; left as it is", file, file.parent.name)
        return None
    why = not_a_run(record)
    if why is not None:
        log.warning("%s holds no run record (%s); left as it is: fix it, then recover again", file, why)
        return None
    return record


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
