"""MMSA-compatible aggregate rows, `<out>/normal/<dataset>.csv`.

Written as MMSA writes them (thuiar/MMSA:src/MMSA/run.py, `MMSA_run`): one row per (model, dataset) call, cells
"(mean, std)" x100 with population std, rounded to 2 decimals, MAE/Corr/Loss x100 too, exactly
as MMSA does. Appended under the file's lock and never through a symbolic link, as the store is, and after the
store's repair of a last line without its newline (`store.mend_last_line`: a whole row is completed, a fragment cut).

MMSA's row names only its model, so aligned and unaligned runs, two configs or two selection rules were
identical rows. MMSA's columns come first, unchanged (a reader that picks them by name or takes the first
columns still works), and TRACE_COLUMNS follow: what tells such rows apart and names the runs. A file that
has MMSA's columns only keeps them (an older file of ours, or one MMSA itself appends to: its
`df.loc[len(df)] = res` refuses a file with more columns), so one file never holds two headers.

MMSA averages the values its metrics returned, which are rounded to 4 decimals per seed
(metricsTop.py `round(x, 4)`, the trainers' `round(eval_loss, 4)`), and its `round(mean*100, 2)`
rounds an np.float64, i.e. NumPy's way (scale by 10**n, rint half to even, scale back), not
Python's correctly rounded one: round(np.float64(67.895), 2) is 67.9, round(67.895, 2) 67.89.
The records keep full precision, so both steps are done here (`mmsa_seed_value`, `mmsa_cell`).
The Loss cell is the test Loss as the run's `valid_loss` made it: MMSA's mean of batch means with
`valid_loss: mmsa` (paper.yaml), the per-sample mean under the default `exact`.
"""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np

from ..data.conditions import condition_of, label_suffix
from ..data.stamp import data_kind
from ..data.synthetic_stress import STANDARD, recipe_kind_of
from ..metrics.names import MMSA_CSV_KEYS, metric_family
from ..atomic import NOFOLLOW, open_append
from ..config import METRIC_KEYS
from ..errors import DataError, UsageError
from ..lock_files import make_shared_folder, shared_mode
from .folder import store_lock
from .how_ran import how_ran_cell, how_ran_cells
from .record import code_versions, model_selection
from .chosen_records import check_ok_record
from .store import json_safe, mend_last_line


def mmsa_seed_value(family: str, key: str, value) -> float:
    """One seed's value as MMSA holds it: metricsTop.py returns round(x, 4) of np.float64 values
    (NumPy's rounding; sklearn's accuracy and F1 were np.float64 too before sklearn 1.6), the trainers
    round(eval_loss, 4) of a Python float. MIntRec (`family` 'mintrec') does not round its results."""
    if family == "mintrec":
        return float(value)
    if key == "Loss":
        return round(float(value), 4)
    return float(round(np.float64(value), 4))


def mmsa_cell(values) -> str:
    """MMSA's cell: str((round(mean*100, 2), round(std*100, 2))) with the population std, the mean
    and std being np.float64 (so NumPy's rounding). `values`: per seed, as `mmsa_seed_value` gives them."""
    arr = np.asarray(values, dtype=np.float64)
    return str((float(round(np.mean(arr) * 100, 2)), float(round(np.std(arr) * 100, 2))))


def mmsa_csv_name(dataset: str, synthetic: bool, data_id: str | None = None, aligned: bool = False,
                  split_sizes: dict | None = None) -> str:
    """`<dataset>.csv`; synthetic data's `<dataset>-synthetic.csv`, a stress recipe's `<dataset>-synthetic-<recipe>.csv`
    (`data_id`: the runs' data id); a file other than the one whose sha256 MMSA publishes for the dataset and setting
    (`data.stamp.data_kind` 'not published': your own videos extracted, an edited copy) `<dataset>-not-published-<the
    first 12 hex digits of its sha256>.csv`, and, where MMSA publishes none, a file whose `split_sizes` (the record's)
    are not the real file's (data_kind 'not real': a SIMS v2 subset) `<dataset>-not-real-<12 hex digits>.csv`, as the
    leaderboard heads their tables. A row names only its model (and a file MMSA wrote, or one of ours from
    before the trace columns, keeps MMSA's columns only, the data id's among those it lacks): a run on your own videos
    under -d mosi sat among real MOSI runs, the same model name on numbers of other data, so such data get a file of
    their own, one per file, as synthetic data do, rather than a column."""
    kind = "synthetic" if synthetic else data_kind(data_id, dataset, aligned, split_sizes)
    return f"{dataset}{data_name_suffix(kind, data_id)}.csv"


def data_name_suffix(kind: str, data_id) -> str:
    """What a file of runs on `data_id`, whose `data.stamp.data_kind` word is `kind`, holds after its dataset's name:
    '-synthetic' or '-synthetic-<recipe>', '-not-published-<hex>' or '-not-real-<hex>' (the first 12 hex digits of
    the data's sha256), '' for the real file or a dataset of your own. normal/'s CSVs (`mmsa_csv_name`) and
    `leaderboard --figures`' curves are named by it, so a figure of your own mosi-format data is no published one's."""
    if kind == "synthetic":
        recipe = recipe_kind_of(data_id)
        return "-synthetic" if recipe == STANDARD else f"-synthetic-{recipe}"
    if kind in ("not published", "not real"):
        digits = "".join(c for c in str(data_id).removeprefix("sha256:") if c.isascii() and c.isalnum())[:12]
        return f"-{kind.replace(' ', '-')}-{digits}"      # a hand-made record's id is no path
    return ""


# What traces a row to the runs it averages, after MMSA's columns (see the module docstring): the setting and
# protocol condition the Model cell does not name, how the best epoch was chosen, the config, the seeds and their
# run ids (in the same order), the data id and the code (`code_versions`, the leaderboard's `code`); then how the
# seeds ran: the `--preset` (empty for the full config), precision, kernels and device (`how_ran.how_ran_cells`, as
# the leaderboard's CSV says them). Without these a `--precision bf16` row was the fp32 row's twin. They come last, so
# a file of the columns before them (`EARLIER_TRACE_COLUMNS`) keeps its header, as an MMSA-only file does.
EARLIER_TRACE_COLUMNS = ("aligned", "condition", "model_selection", "config_hash", "seeds", "run_ids", "data", "code")
# run_*, as the leaderboard CSV names them: MIntRec has a metric column `precision`, which a bare name replaced.
TRACE_COLUMNS = (*EARLIER_TRACE_COLUMNS, "run_preset", "run_precision", "run_kernels", "run_device")


# A row is a model's seeds on one setting, about 1 KB with its trace: 64 MiB (runs.jsonl's bound) is tens of
# thousands of rows. MMSA's header is some 200 characters; a first line past this is no header of ours or MMSA's.
MAX_CSV_BYTES = 64 << 20
MAX_HEADER_CHARS = 1 << 16


def mmsa_columns(dataset: str) -> list[str]:
    """MMSA's columns for `dataset`: Model, the metrics MMSA's trainer returns, Loss. MIntRec is not an MMSA
    dataset: its row has MIntRec's metrics (acc, f1, precision, recall)."""
    family = metric_family(dataset)
    return ["Model", *MMSA_CSV_KEYS.get(family, METRIC_KEYS[family]), "Loss"]


def mmsa_row(records: list[dict]) -> dict:
    """The row of one (model, dataset, setting, condition) over its seeds' ok records: MMSA's cells, then
    TRACE_COLUMNS. The Model cell names a protocol condition as `model [missing_rate=0.3]`, as the tables do."""
    for record in records:    # a recorded seed's line may be hand-made: one line, no traceback. Checked as the
        check_ok_record(json_safe(record))   # store holds it: a run's own undefined Corr is NaN here, null there
    # In one order whatever the call's (`-s 2 1`, a run taken from another process): the same runs are one row, to
    # the last digit of the mean (np.mean sums in order), which `append_mmsa_csv` writes once.
    records = sorted(records, key=lambda r: (r["seed"], r["run_id"]))
    first = records[0]
    family, condition = metric_family(first["dataset"]), condition_of(first).key()
    row = {"Model": first["model"] + label_suffix(condition)}
    for key in mmsa_columns(first["dataset"])[1:]:
        row[key] = mmsa_cell([mmsa_seed_value(family, key, r["metrics"][key]) for r in records])
    return row | {
        "aligned": str(bool(first["aligned"])), "condition": condition,
        "model_selection": "; ".join(sorted({model_selection(r) for r in records})),
        "config_hash": " ".join(sorted({r["config_hash"] for r in records})),
        "seeds": " ".join(str(r["seed"]) for r in records), "run_ids": " ".join(r["run_id"] for r in records),
        "data": " ".join(sorted({r["data"] for r in records})), "code": code_versions(records),
        "run_preset": how_ran_cell([r.get("preset") or "" for r in records]), **how_ran_cells(records)}


def _whole_row(line: bytes, cells: int) -> bool:
    """Whether `line` (a last line without its newline) is a whole row of `cells` cells: a killed write's fragment
    is cut short inside a cell or before the last one (a row cut inside its last unquoted cell reads as whole)."""
    try:
        rows = list(csv.reader([line.decode("utf-8")], strict=True))
    except (UnicodeDecodeError, csv.Error):           # a multi-byte character or a quoted cell cut in two
        return False
    return len(rows) == 1 and len(rows[0]) == cells


def _has_row(f, row: dict, columns: list[str]) -> bool:
    """Whether the file `f` (read from its start, bounded by MAX_CSV_BYTES) holds `row` already: the same cells,
    its run ids included. Only asked of a file with the trace columns: MMSA's alone name no runs, and a --rerun's
    row may repeat another's numbers to the digit."""
    f.seek(0)
    found = any(line == [str(row[c]) for c in columns] for line in csv.reader(f))
    f.seek(0, os.SEEK_END)
    return found


def mmsa_csv_path(out_dir: Path, records: list[dict]) -> Path:
    """Where the row of `records` (one model's ok records on one dataset and setting, `append_mmsa_csv`) goes:
    `<out_dir>/normal/mmsa_csv_name(...)`. A planned run's record-to-be (`dataset`, `synthetic`, `data`, `aligned`,
    `split_sizes`, as `ok_record` writes them) names it as well, before any run trains."""
    first = records[0]
    sizes = next((r["split_sizes"] for r in records if r.get("split_sizes") is not None), None)
    return Path(out_dir) / "normal" / mmsa_csv_name(first["dataset"], first["synthetic"], first["data"],
                                                    bool(first["aligned"]), sizes)


def read_mmsa_header(f, path: Path, dataset: str, refused) -> list[str] | None:
    """The columns of the MMSA CSV `path`, open as the text file `f` (at its start), when they are ours or MMSA's
    for `dataset` (`mmsa_columns`, with TRACE_COLUMNS or EARLIER_TRACE_COLUMNS after them or not); None for an empty
    file. Anything else is `refused(what the file is)`, an exception to raise: the one wording of the lines that
    refuse such a file, at a call's planning (`check_mmsa_csv`) and at its append alike. Bounded, as runs.jsonl is:
    a file at our name may be anything (unbounded, a 2 GB line read whole; bytes that are no UTF-8, a traceback)."""
    mmsa = mmsa_columns(dataset)
    size = os.fstat(f.fileno()).st_size
    if size > MAX_CSV_BYTES:
        raise refused(f"is {math.ceil(size / (1 << 20))} MiB, more than a file of MMSA rows may hold "
                      f"({MAX_CSV_BYTES >> 20} MiB)")
    try:
        header = f.readline(MAX_HEADER_CHARS)
    except UnicodeDecodeError:
        raise refused("is no UTF-8 text, not a CSV of MMSA's columns") from None
    if not header:
        return None
    found = next(csv.reader([header]))
    if found not in (mmsa + list(TRACE_COLUMNS), mmsa + list(EARLIER_TRACE_COLUMNS), mmsa):
        # A file of the user's (or a layout of another version) at our name: one line, not a traceback
        # after the runs, and never a second header in the file.
        raise refused(f"has columns {header.strip()[:200]}, not MMSA's {','.join(mmsa)} (with or without "
                      f"{','.join(TRACE_COLUMNS)} after them)")
    return found


def check_mmsa_csv(path: Path, dataset: str) -> None:
    """UsageError (exit 2, as for an output folder that cannot be written) unless the MMSA CSV `path`, where a
    training call will append rows of `dataset`, is missing or takes them (`read_mmsa_header`): run before any run
    trains (`api.pipeline`), as the append after each model's seeds found it too late, the first model trained and
    recorded and the call stopped there. A symbolic link at `path` is left to the append's own line."""
    try:
        fd = os.open(path, os.O_RDONLY | NOFOLLOW)
    except OSError:            # missing (the append makes it), a link, or unreadable: the append says which
        return
    with os.fdopen(fd, encoding="utf-8", newline="") as f:
        read_mmsa_header(f, path, dataset, lambda problem: UsageError(
            f"{path} {problem}: nothing was trained, as this call's rows could not go there; move the file away "
            f"and the call starts a new one"))


def append_mmsa_csv(out_dir: Path, records: list[dict], *, echo=print, told: set | None = None) -> Path:
    """Append the row of `records` (one model's ok records on one dataset, setting and condition, one per seed)
    to `mmsa_csv_path(out_dir, records)`: MMSA's columns, then TRACE_COLUMNS.

    A file that has MMSA's columns only (written before the trace columns, or by MMSA, whose `MMSA_run` cannot
    append to a file with more columns) keeps them: the row goes in without its trace, and `echo` says so once
    per file (`told`: the files already named in this call); so does a file of `EARLIER_TRACE_COLUMNS`, whose rows
    go in without the columns after them. A file with other columns is refused in one line (`read_mmsa_header`)."""
    first = records[0]
    mmsa = mmsa_columns(first["dataset"])
    columns, earlier = mmsa + list(TRACE_COLUMNS), mmsa + list(EARLIER_TRACE_COLUMNS)
    row = mmsa_row(records)                   # first: it checks the records, whose sizes name the file
    path = mmsa_csv_path(out_dir, records)
    make_shared_folder(path.parent)
    not_written = (f"its row for {row['Model']} was not written (the runs are recorded in runs.jsonl); move the "
                   f"file away and the next training call starts a new one")
    with (store_lock(path),
          os.fdopen(open_append(path, shared_mode(path.parent)), "a+", newline="", encoding="utf-8") as f):
        # Read up to MAX_CSV_BYTES: its header, its last line for mend_last_line, and its rows for one with run ids,
        # which a row is not written twice to.
        f.seek(0)
        found = read_mmsa_header(f, path, first["dataset"], lambda problem: DataError(f"{path} {problem}: "
                                                                                      f"{not_written}"))
        f.seek(0, os.SEEK_END)                # "a+" writes at the end anyway; this drops the read buffer
        writer = csv.writer(f)
        if found is None:
            found = columns
            writer.writerow(columns)
        elif found in (columns, earlier) and _has_row(f, row, found):
            return path    # two run.py's that trained the same runs between them: each wrote this row, once is right
        else:    # a last row without its newline (a hand edit, a killed write) would have this row joined onto it
            mend_last_line(f.fileno(), lambda last: _whole_row(last, len(found)), b"\r\n")
            f.seek(0, os.SEEK_END)
        writer.writerow([row[c] for c in found])
    told = set() if told is None else told
    if found == mmsa and path not in told:
        told.add(path)
        echo(f"{path} has MMSA's columns only: this call's rows there ({row['Model']} first) go in without "
             f"{','.join(TRACE_COLUMNS)} (runs.jsonl has them); move the file away for rows that trace to their runs")
    elif found == earlier and path not in told:
        told.add(path)
        lacking = ",".join(TRACE_COLUMNS[len(EARLIER_TRACE_COLUMNS):])
        echo(f"{path} has the trace columns of an earlier version: this call's rows there ({row['Model']} first) go "
             f"in without {lacking} (runs.jsonl has them); move the file away for rows that say how their seeds ran")
    return path


def mmsa_row_key(record: dict) -> tuple:
    """What one MMSA row covers: a model on a dataset and layout under one protocol condition (`api.run`'s job).
    Without the condition, `--missing-rate 0 0.3 --jobs 2` averaged both rates into one row labelled as plain."""
    return record["model"], record["dataset"], record["aligned"], condition_of(record).key()


def append_mmsa_rows(out_dir: Path, records: list[dict], trained: list[dict], *, echo=print,
                     told: set | None = None) -> None:
    """The MMSA rows of a training call, as run.py writes them in process and with --jobs: one per
    (`mmsa_row_key`) group of `records` (every seed of the call, recorded ones included, as the tables count them)
    that holds a run the call trained (`trained`), in the order of each group's first record. `told` as for
    `append_mmsa_csv`, shared by the rows."""
    if not trained:                  # nothing trained: no row, and the recorded ones are not read
        return
    trained_keys = {mmsa_row_key(record) for record in trained}
    groups: dict[tuple, list[dict]] = {}
    for record in records:
        groups.setdefault(mmsa_row_key(record), []).append(record)
    told = set() if told is None else told
    for key, group in groups.items():
        if key in trained_keys:
            append_mmsa_csv(Path(out_dir), group, echo=echo, told=told)
