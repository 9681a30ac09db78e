"""Reading the store, `<out>/runs.jsonl`: its lines, which of them hold a run, and the bounds a store is read to.

Every command reads the store through `read_records`: a line that holds no run record (`not_a_run`) is skipped
with one warning per read, and a killed writer's fragment (see `store`'s docstring) silently. Appending, keeping a
record the store cannot take and recovering it are `store`'s.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import stat
from pathlib import Path

from ..atomic import wrong_kind
from ..config import PRESET_NAME
from ..data.conditions import stored_condition_fault
from ..data.stamp import is_recipe_name, recipe_name_of
from ..errors import DataError
from .folder import RUNS_FILE, refuse_a_file_as_results, show
from .record import IDENTITY_FIELDS, is_seed

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
    regular file, is one line before any of it is used. A line that holds no run record (`not_a_run`: not
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


# The forms the toolkit writes of fields a table prints as they are (a heading, a note, a CSV cell), and of the
# run identity: a forged `data` of "sha256:abc\\n\\n### mosi ..." would write a Markdown heading into the leaderboard.
SHA256_DATA_ID = re.compile(r"sha256:[0-9a-f]{64}")      # a feature file's, a MIntRec folder's digest
# config.config_hash writes sha256's first 12 hex digits; a hand-made store's names of configs ('h-1', 'c-tfn')
# are read too: the form keeps what a table prints of it to one token.
CONFIG_HASH = re.compile(r"[A-Za-z0-9_-]{1,64}")


def not_a_run(record: dict) -> str | None:
    """Why a store line's object is no run record of this toolkit's, or None: it lacks a run id or a field of the
    identity, its `data`, `config_hash`, `preset` or `condition` is of no form the toolkit writes, or a field a
    reader reads is of no type it writes (`field_fault`). The store's reader skips such a line with a warning
    (`read_records`): a stranger's line stops no command."""
    if not isinstance(record.get("run_id"), str):
        return "it has no run_id string"
    missing = [field for field in IDENTITY_FIELDS if field not in record]
    if missing:
        return f"it has no {', '.join(missing)}"
    data_id = record["data"]
    if not (isinstance(data_id, str) and (SHA256_DATA_ID.fullmatch(data_id)
                                          or is_recipe_name(recipe_name_of(data_id)))):
        return f"its data {show(record['data'])} is neither sha256:<64 hex digits> nor synthetic:<recipe>"
    if not isinstance(record["config_hash"], str) or not CONFIG_HASH.fullmatch(record["config_hash"]):
        return f"its config_hash {show(record['config_hash'])} is no config hash (letters, digits, _ and -)"
    preset = record.get("preset")
    if preset is not None and not (isinstance(preset, str) and PRESET_NAME.fullmatch(preset)):
        return f"its preset {show(preset)} is no preset name"        # a key of its model's YAML: the name's form
    fault = stored_condition_fault(record.get("condition"))
    if fault is not None:
        return f"its condition {show(record['condition'])} is not {fault}"
    return field_fault(record)


MAX_CONFIG_DEPTH = 16
# float32's largest: a run's predictions and losses are float32 (a larger loss is inf, which stops the run), so no
# metric it computes is larger. A hand-made 1e308 is nonsense, refused as NaN is: its mean and std overflowed
# (numpy's RuntimeWarnings) and the leaderboard printed "± inf".
MAX_METRIC = 3.4028234663852886e38
_ONE_LINE = re.compile(r"[^\x00-\x1f\x7f]{0,200}")
# Fields read where present, and the types the toolkit writes them in. JSON's true and false load as bools, which are
# ints: one passes only where a bool is meant.
_TYPED = (("synthetic", (bool,)), ("run_dir", (str,)), ("data_path", (str, type(None))), ("best_epoch", (int,)),
          ("started_at", (str,)), ("deterministic", (bool,)))


def field_fault(record: dict) -> str | None:
    """Why a field that the tables, compare, verify or the analyses read is of no type the toolkit writes it in (a
    metric that is text or a list, a seed "3", a config that is a list, a start time that is a number), or None.
    `metrics` and `config` are required of an `ok` record, which every table reads them from."""
    for field in ("run_id", "model", "dataset"):
        if not isinstance(record[field], str) or not 0 < len(record[field]) <= 500:
            return _not(field, record[field], "a non-empty string (at most 500 characters)")
    if not isinstance(record["aligned"], bool):
        return _not("aligned", record["aligned"], "true or false")
    if not is_seed(record["seed"]):
        return _not("seed", record["seed"], "an integer")
    ok = record.get("status") == "ok"
    if ok or "metrics" in record:
        metrics = record.get("metrics")
        if not isinstance(metrics, dict):
            return _not("metrics", metrics, "an object of metric name -> number or null")
        for name, value in metrics.items():          # the metric that is wrong, named: a hand edit is found by it
            if not _is_table_number(value) or abs(value or 0) > MAX_METRIC:
                return _not(f"metrics[{show(name)}]", value, f"a finite number or null of at most {MAX_METRIC:.4g} "
                            f"in magnitude, as a run computes")
    if (ok or "config" in record) and (not isinstance(record.get("config"), dict)
                                      or _depth(record["config"]) > MAX_CONFIG_DEPTH):
        return _not("config", record.get("config"), f"an object nested at most {MAX_CONFIG_DEPTH} deep")
    # Shown as they are in tables, notes and every analysis CSV row (`run_label`, `code_version`): a newline in one
    # wrote lines of its own into the leaderboard's Markdown, and nothing bounded their length.
    for field in ("label", "package_version", "git_commit", "precision", "device"):
        value = record.get(field)
        if value is not None and not (isinstance(value, str) and _ONE_LINE.fullmatch(value)):
            return _not(field, value, "a string of one line (at most 200 characters)")
    trial = record.get("tune_trial")
    if "tune_trial" in record and (not isinstance(trial, int) or isinstance(trial, bool) or not 0 <= trial < 2 ** 63):
        return _not("tune_trial", trial, "a trial number (an integer, 0 or more)")
    for field, kinds in _TYPED:
        if field in record and (not isinstance(record[field], kinds)
                                or isinstance(record[field], bool) and bool not in kinds):
            return _not(field, record[field], " or ".join("null" if k is type(None) else k.__name__ for k in kinds))
    if "trainer_overrides" in record and not _is_trainer_overrides(record["trainer_overrides"]):
        return _not("trainer_overrides", record["trainer_overrides"],
                    "an object of trainer key -> {value, preset}, each a number, a string of one line, true, false "
                    "or null")
    sizes = record.get("split_sizes")
    if "split_sizes" in record and not (isinstance(sizes, dict) and set(sizes) == {"train", "valid", "test"} and all(
            isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2 ** 63 for n in sizes.values())):
        return _not("split_sizes", sizes, "an object of train, valid and test -> sample count")
    return None


_CONFIG_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_SCALAR = (type(None), bool, int, float, str)


def _is_trainer_overrides(value) -> bool:
    """Whether a record's `trainer_overrides` is of the form `ok_record` writes: {key: {"value", "preset"}} of trainer
    keys (at most 64 of them), each value a scalar a trainer key takes, a string one line (the tables print them)."""
    return isinstance(value, dict) and len(value) <= 64 and all(
        isinstance(key, str) and _CONFIG_KEY.fullmatch(key) and isinstance(pair, dict)
        and set(pair) == {"value", "preset"}
        and all(isinstance(v, _SCALAR) and (not isinstance(v, str) or _ONE_LINE.fullmatch(v)) for v in pair.values())
        for key, pair in value.items())


def _not(field: str, value, what: str) -> str:
    """Why a line holds no run: its `field` holds `value`, not `what`."""
    return f"its {field} is {show(value)}, not {what}"


def _is_table_number(value) -> bool:
    """null, or a number a table can format: finite, and an int no larger than a float holds exactly."""
    if value is None:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) <= 2 ** 53
    return isinstance(value, float) and math.isfinite(value)


def _depth(value) -> int:
    """How deep JSON containers nest in `value` (iterative: a deep value must not exhaust the stack). Only containers
    are stacked: every line of a store is checked, and a config's values are mostly numbers and strings."""
    if not isinstance(value, (dict, list)):
        return 0
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_CONFIG_DEPTH:
            return depth
        stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item)
                     if isinstance(v, (dict, list)))
    return deepest
