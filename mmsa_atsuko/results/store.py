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
import stat
from pathlib import Path

import numpy as np

from ..atomic import open_append, open_new, read_small_file, wrong_kind
from ..errors import DataError, ToolkitError
from ..lock_files import shared_mode
from .folder import RECORD_FILE, RUNS_FILE, refuse_a_file_as_results, run_path, store_lock
from .record import not_a_run

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
        mend_last_line(fd, lambda last: _parse_record(last) is not None)
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


MAX_KEPT_RECORD = 1 << 24         # a kept record.json larger than this is not one the toolkit wrote


def recover(out_dir) -> list[dict]:
    """Fold every kept `runs/*/record.json` into the store, exactly once: a record whose run_id the
    store already holds (a recovery killed between its append and its cleanup) is not appended
    again; each file is removed once its record is in the store. Returns the records appended.
    A file this user may not remove (its run folder is another user's, in a shared results folder) is left,
    with one warning when its record is appended: the store holds its run_id, so no later call appends it
    again, and a user who may write its folder removes it at their next recovery."""
    out_dir = Path(out_dir)
    if not _kept_records(out_dir):
        return []
    path = out_dir / RUNS_FILE
    appended = []
    with store_lock(path):
        stored = run_ids(read_records(out_dir))
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
    """The record in a kept record.json, or None (with a warning) for one that is not a record of its folder."""
    try:
        # a named pipe there blocked every run, sweep and recovery for good
        record = _parse_record(read_small_file(file, MAX_KEPT_RECORD))
        if record is None or run_path(file.parent.parent.parent, record).name != file.parent.name:
            raise ValueError
    except (OSError, ValueError, DataError):
        log.warning("%s is not the record of run folder %s; left as it is", file, file.parent.name)
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


def _parse_record(raw: bytes) -> dict | None:
    """The record on one line, or None for a blank line, a fragment or anything but an object."""
    try:
        record = json.loads(raw)
    # ValueError: a JSON error, or an integer of more digits than Python converts;
    # RecursionError: nesting deeper than the parser's stack.
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return record if isinstance(record, dict) else None


# A store the toolkit wrote holds one line of 1.5-4 KB per run (a paper's sweep: thousands of runs, a few MiB).
# The bounds leave room for some 20,000 runs, several sweeps in one folder, and cap what a store from
# elsewhere costs. Unbounded, 5 million lines of `{}`, `[]` or garbage took 17-48 s, 200,000 real records
# (420 MB) 2.3 GB and 2.5 minutes of leaderboard, 1 million small valid ones over 8 minutes. A line read as
# Python objects takes up to ~26 times its bytes (`{}`s nested in a record): the bytes bound the memory
# (64 MiB of such lines: 1.7 GB); every line is parsed: the lines bound the time of lines too short to be
# runs (100,000 small valid records: under a minute of leaderboard).
MAX_STORE_BYTES = 64 << 20
MAX_STORE_LINES = 100_000


def run_ids(records) -> set[str]:
    """The run ids of `records`, as a set: a hand-written line's `run_id` may be a list (unhashable) or missing, and
    is no run's id."""
    return {r["run_id"] for r in records if isinstance(r.get("run_id"), str)}


def read_records(out_dir: Path) -> list[dict]:
    """All run records of the store, in append order. A store past MAX_STORE_BYTES or MAX_STORE_LINES, or no
    regular file, is one line before any of it is used. A line that holds no run record (`record.not_a_run`: not
    JSON, no object, longer than MAX_KEPT_RECORD, or an object that is no run of this toolkit's) is skipped, and
    one warning per read counts them and names the first; a blank line, and a killed writer's fragment (a last
    line without its newline that is not JSON, see the module docstring), are skipped without one."""
    path = Path(out_dir) / RUNS_FILE
    refuse_a_file_as_results(out_dir)   # `--results results/runs.jsonl` read as "no runs in .../runs.jsonl/runs.jsonl"
    if not path.exists():
        return []
    # O_NONBLOCK: a named pipe in the store's place blocked open() (the leaderboard hung for good)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    info = os.fstat(fd)
    if stat.S_ISDIR(info.st_mode):               # fdopen raised IsADirectoryError, a traceback in every reader
        os.close(fd)
        raise wrong_kind(out_dir, path, "file", "results folder", "--results")
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(info.st_mode):
            raise DataError(f"{path} is not a regular file, and the store is a file of JSON lines: "
                            "move it away, or choose another --results")
        if info.st_size > MAX_STORE_BYTES:              # refused unread
            raise _too_large(path, f"is {math.ceil(info.st_size / (1 << 20))} MiB")
        records, skipped = [], []                       # skipped: (line number, why) of each line passed over
        for number, line in enumerate(_lines(f, path), start=1):
            record = None if line is None else _parse_record(line)
            why = not_a_run(record) if record is not None else None
            if record is not None and why is None:
                records.append(record)
            elif why is not None:
                skipped.append((number, why))
            elif line is None:
                skipped.append((number, "it is longer than any record"))
            elif line.strip() and line.endswith(b"\n"):  # silent: a blank line, and a last one cut off (a fragment)
                skipped.append((number, "it is no JSON object"))
    if skipped:
        _warn_skipped(path, skipped)
    return records


_WARNED: set[tuple[str, str]] = set()


def _warn_skipped(path: Path, skipped: list[tuple[int, str]]) -> None:
    """One warning for the lines a read of `path` skipped, with their count and the first; the same warning of the
    same store is given once per process (a run reads its store several times)."""
    (first, why), more = skipped[0], len(skipped) - 1
    message = (f"{path}: skipped {len(skipped)} line(s) that hold no run record, the first line {first} ({why})"
               + (f" and {more} more" if more else "") + "; fix or remove them")
    if (str(path), message) not in _WARNED:
        _WARNED.add((str(path), message))
        log.warning("%s", message)


def _too_large(path: Path, why: str) -> DataError:
    return DataError(f"{path} {why}, more than a store of runs may hold ({MAX_STORE_BYTES >> 20} MiB and "
                     f"{MAX_STORE_LINES:,} lines, some 20,000 runs): move it away, or split its runs over "
                     f"several results folders")


def _lines(f, path: Path):
    """The file's lines; a line longer than MAX_KEPT_RECORD is passed over unread, as no record the toolkit
    wrote (a single line of 1.5 GB took 4.8 GB to read and parse, and a MemoryError under 4 GB), and yields
    None in its place. Counted as read, so a file that grows past the store's bounds while it is read is
    refused too."""
    read = lines = 0
    while line := f.readline(MAX_KEPT_RECORD + 1):
        read, lines = read + len(line), lines + 1
        if lines > MAX_STORE_LINES:
            raise _too_large(path, f"holds more than {MAX_STORE_LINES:,} lines")
        whole = len(line) <= MAX_KEPT_RECORD or line.endswith(b"\n")
        if not whole:                                 # the rest of the line, a chunk at a time
            while read <= MAX_STORE_BYTES and not line.endswith(b"\n") and (line := f.readline(1 << 20)):
                read += len(line)
        if read > MAX_STORE_BYTES:
            raise _too_large(path, f"grew past {MAX_STORE_BYTES >> 20} MiB while it was read")
        yield line if whole else None
