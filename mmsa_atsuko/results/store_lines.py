"""Reading the store, `<out>/runs.jsonl`: its lines, which of them hold a run, and the bounds a store is read to.

Every command reads the store through `read_records`: a line that holds no run record (`record.not_a_run`) is skipped
with one warning per read, and a killed writer's fragment (see `store`'s docstring) silently. Appending, keeping a
record the store cannot take and recovering it are `store`'s.
"""
from __future__ import annotations

import json
import logging
import math
import os
import stat
from pathlib import Path

from ..atomic import wrong_kind
from ..errors import DataError
from .folder import RUNS_FILE, refuse_a_file_as_results
from .record import not_a_run

log = logging.getLogger("mmsa_atsuko")

MAX_KEPT_RECORD = 1 << 24         # a kept record.json larger than this is not one the toolkit wrote


def parse_record(raw: bytes) -> dict | None:
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
    line without its newline that is not JSON, see `store`'s docstring), are skipped without one."""
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
            record = None if line is None else parse_record(line)
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
