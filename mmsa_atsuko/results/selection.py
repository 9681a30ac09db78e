"""Which records stand for a run, whether they can be read, and the metric tables lead with.

Every table and analysis chooses records here (`latest_by_identity`, `ok_records`), one per run
identity (`record.identity`), and reads only those whose fields have their types
(`check_ok_record`).
"""
from __future__ import annotations

import math
import re

from ..config import dataset_facts, dataset_names
from pathlib import Path

from ..errors import DataError, UsageError
from .folder import RUNS_FILE, show
from .record import bad_field, identity
from .store_lines import read_records


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


def find_record(results, run_id: str, records: list[dict] | None = None) -> dict:
    """The `ok` record of `run_id` in `<results>/runs.jsonl` (one-line error when there is none). `records`: that
    store, read already (explain reads it once for its run, the partner it looks for and the partner's record)."""
    return check_ok_record(last_ok_record(results, run_id, records))


def last_ok_record(results, run_id: str, records: list[dict] | None = None) -> dict:
    """`find_record`'s record, its fields unchecked (predict reads only where its folder is): every command that
    takes `--run ID` says an unknown id in these words (robustness said `'nope' is not a run id` instead)."""
    records = read_records(Path(results)) if records is None else records
    if not records:
        raise UsageError(f"no runs recorded in {Path(results) / RUNS_FILE} (give --results DIR)")
    matches = [r for r in records if r.get("run_id") == run_id and r.get("status") == "ok"]
    if not matches:
        raise UsageError(f"unknown run id {run_id!r}: no finished run of that id in {Path(results) / RUNS_FILE}")
    return matches[-1]


def config_labels(pairs) -> dict[tuple[str, str], str]:
    """(model, config hash) -> the name of that config of the model among `pairs` (the runs of one table: one
    dataset, layout and data id): the model alone where it has one config there, else `model@` and the hash's
    first 8 characters. The leaderboard's rows and curves and a sweep's progress lines name a config so."""
    hashes: dict[str, set] = {}
    for model, chash in pairs:
        hashes.setdefault(model, set()).add(chash)
    return {(model, chash): model if len(several) == 1 else f"{model}@{chash[:8]}"
            for model, several in hashes.items() for chash in several}


MAX_CONFIG_DEPTH = 16
# float32's largest: a run's predictions and losses are float32 (a larger loss is inf, which stops the run), so no
# metric it computes is larger. A hand-made 1e308 is nonsense, refused as NaN is: its mean and std overflowed
# (numpy's RuntimeWarnings) and the leaderboard printed "± inf".
MAX_METRIC = 3.4028234663852886e38
_ONE_LINE = re.compile(r"[^\x00-\x1f\x7f]{0,200}")


def check_ok_record(record: dict) -> dict:
    """`record` if the fields that tables and analyses read have their types, else a one-line
    DataError naming the run and the field (a crafted record must not become a traceback)."""
    def bad(field: str, what: str):
        bad_field(record, field, what)

    for field in ("run_id", "model", "dataset", "config_hash", "data"):
        if not isinstance(record.get(field), str) or not 0 < len(record[field]) <= 500:
            bad(field, "a non-empty string")
    if not re.fullmatch(r"[A-Za-z0-9_]{1,64}", record["model"]):
        bad("model", "a model name")
    if record["dataset"] not in dataset_names():         # most likely a dataset of one's own, undeclared here
        raise DataError(f"{RUNS_FILE}: record {show(record['run_id'])} is on dataset {show(record['dataset'])}, "
                        f"declared neither in configs/datasets.yaml nor in a --datasets FILE given: pass the "
                        f"--datasets FILE that declares it (or, if it is no run of yours, remove that line)")
    if not isinstance(record.get("aligned"), bool):
        bad("aligned", "true or false")
    seed = record.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or abs(seed) >= 2 ** 63:
        bad("seed", "an integer")
    metrics = record.get("metrics")
    if not isinstance(metrics, dict) or not all(isinstance(k, str) for k in metrics):
        bad("metrics", "an object of metric name -> number or null")
    for name, value in metrics.items():      # the field that is wrong, named: a hand edit is found by it
        if not _is_table_number(value):
            bad_field(record, f"metrics[{show(name)}]", "a finite number or null", value)
        if abs(value or 0) > MAX_METRIC:
            bad_field(record, f"metrics[{show(name)}]", f"a metric a run computes (at most {MAX_METRIC:.4g} in "
                      f"magnitude) or null", value)
    if not isinstance(record.get("config"), dict) or _depth(record["config"]) > MAX_CONFIG_DEPTH:
        bad("config", f"an object nested at most {MAX_CONFIG_DEPTH} deep")
    # Shown as they are in tables, notes and every analysis CSV row (`run_label`, `code_version`): a newline in one
    # wrote lines of its own into the leaderboard's Markdown, and nothing bounded their length.
    for field in ("label", "package_version", "git_commit", "precision", "device"):
        if record.get(field) is not None and not (isinstance(record[field], str)
                                                  and _ONE_LINE.fullmatch(record[field])):
            bad(field, "a string of one line (at most 200 characters)")
    trial = record.get("tune_trial")
    if "tune_trial" in record and (not isinstance(trial, int) or isinstance(trial, bool) or not 0 <= trial < 2 ** 63):
        bad("tune_trial", "a trial number (an integer, 0 or more)")
    for field, kinds in (("synthetic", (bool,)), ("run_dir", (str,)), ("data_path", (str, type(None))),
                         ("best_epoch", (int,)), ("started_at", (str,)), ("preset", (str, type(None))),
                         ("deterministic", (bool,))):
        # JSON's true and false load as bools, which are ints: one passes only where a bool is meant.
        if field in record and (not isinstance(record[field], kinds)
                                or isinstance(record[field], bool) and bool not in kinds):
            bad(field, " or ".join("null" if k is type(None) else k.__name__ for k in kinds))
    sizes = record.get("split_sizes")
    if "split_sizes" in record and not (isinstance(sizes, dict) and set(sizes) == {"train", "valid", "test"} and all(
            isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2 ** 63 for n in sizes.values())):
        bad("split_sizes", "an object of train, valid and test -> sample count")
    return record


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
