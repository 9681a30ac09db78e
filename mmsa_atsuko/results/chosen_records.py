"""Which records stand for a run, whether they can be read, and the metric tables lead with.

Every table and analysis chooses records here (`latest_by_identity`, `ok_records`), one per run
identity (`record.identity`), from the store's lines that hold a run (`store_lines.not_a_run`: fields of the
types the toolkit writes), and reads only those of a model name and a declared dataset (`check_ok_record`).
"""
from __future__ import annotations

import re
from pathlib import Path

from ..config import dataset_facts, dataset_names
from ..errors import DataError, UsageError
from .folder import RUNS_FILE, show
from .record import bad_field, identity
from .store_lines import not_a_run, read_records


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
    """One `ok` record per run identity (the latest), in store order; failures dropped. An `ok` record that
    `check_ok_record` refuses (a dataset no --datasets FILE declares) is a DataError."""
    chosen = {id(r) for r in latest_by_identity(records).values() if r.get("status") == "ok"}
    return [check_ok_record(r) for r in records if id(r) in chosen]


def find_record(results, run_id: str, records: list[dict] | None = None) -> dict:
    """The `ok` record of `run_id` in `<results>/runs.jsonl` (one-line error when there is none). `records`: that
    store, read already (explain reads it once for its run, the partner it looks for and the partner's record)."""
    return check_ok_record(last_ok_record(results, run_id, records))


def last_ok_record(results, run_id: str, records: list[dict] | None = None) -> dict:
    """`find_record`'s record, its fields unchecked (predict reads only where its folder is): every command that
    takes `--run ID` says an unknown id in these words, from this one place."""
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


def check_ok_record(record: dict) -> dict:
    """`record` if it is a run every table and analysis can read, else a one-line DataError naming the run and what
    is wrong. A store line of wrong types never reaches here (the store's reader skips it, `store_lines.not_a_run`):
    this holds a record built in memory to the same rule (mmsa_csv), and adds what tables alone need: a model name of
    one token, and a dataset declared (by configs/datasets.yaml or the --datasets FILE given, which the command,
    not the line, decides)."""
    why = not_a_run(record)             # of an `ok` record: metrics and config are required
    if why is not None:
        run = record.get("run_id")
        raise DataError(f"{RUNS_FILE}: record {show(run) if isinstance(run, str) else '(no run_id)'} is no run record: "
                        f"{why}; remove or fix that line")
    if not re.fullmatch(r"[A-Za-z0-9_]{1,64}", record["model"]):
        bad_field(record, "model", "a model name")
    if record["dataset"] not in dataset_names():         # most likely a dataset of one's own, undeclared here
        raise DataError(f"{RUNS_FILE}: record {show(record['run_id'])} is on dataset {show(record['dataset'])}, "
                        f"declared neither in configs/datasets.yaml nor in a --datasets FILE given: pass the "
                        f"--datasets FILE that declares it (or, if it is no run of yours, remove that line)")
    return record


def headline_metric(dataset: str) -> str:
    """The metric tables test and figures plot (configs/datasets.yaml `headline`): MAE, macro-F1 for MIntRec."""
    return dataset_facts(dataset)["headline"]
