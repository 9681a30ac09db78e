"""MMSA-compatible aggregate rows, `<out>/normal/<dataset>.csv`.

Written as MMSA writes them (thuiar/MMSA:src/MMSA/run.py, `MMSA_run`): one row per (model, dataset) call, cells
"(mean, std)" x100 with population std, rounded to 2 decimals, MAE/Corr/Loss x100 too, exactly
as MMSA does. Appended under the file's lock and never through a symbolic link, as the store is.

MMSA averages the values its metrics returned, which are rounded to 4 decimals per seed
(metricsTop.py `round(x, 4)`, the trainers' `round(eval_loss, 4)`), and its `round(mean*100, 2)`
rounds an np.float64, i.e. NumPy's way (scale by 10**n, rint half to even, scale back), not
Python's correctly rounded one: round(np.float64(67.895), 2) is 67.9, round(67.895, 2) 67.89.
The records keep full precision, so both steps are done here (`mmsa_seed_value`, `mmsa_cell`).
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from ..data.synthetic_stress import STANDARD, recipe_of
from ..metrics import METRIC_KEYS, MMSA_CSV_KEYS, metric_family
from ..atomic import open_append
from ..errors import DataError
from .folder import store_lock


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


def mmsa_csv_name(dataset: str, synthetic: bool, data: str | None = None) -> str:
    """`<dataset>.csv`; synthetic data's `<dataset>-synthetic.csv`, a stress recipe's `<dataset>-synthetic-<recipe>.csv`
    (`data`: the runs' data id). A row names only its model: `--synthetic-recipe corrupt` rows sat among the
    standard recipe's, the same model name on numbers of other data."""
    if not synthetic:
        return f"{dataset}.csv"
    recipe = recipe_of(data)
    return f"{dataset}-synthetic.csv" if recipe == STANDARD else f"{dataset}-synthetic-{recipe}.csv"


def append_mmsa_csv(out_dir: Path, dataset: str, model: str, per_seed_metrics: list[dict],
                    synthetic: bool, data: str | None = None) -> Path:
    """Append one MMSA-style row to `mmsa_csv_name(dataset, synthetic, data)`."""
    family = metric_family(dataset)
    # MIntRec is not an MMSA dataset: its row has MIntRec's metrics (acc, f1, precision, recall).
    columns = ["Model", *MMSA_CSV_KEYS.get(family, METRIC_KEYS[family]), "Loss"]
    folder = Path(out_dir) / "normal"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / mmsa_csv_name(dataset, synthetic, data)
    row = [model] + [mmsa_cell([mmsa_seed_value(family, k, m[k]) for m in per_seed_metrics]) for k in columns[1:]]
    with store_lock(path), os.fdopen(open_append(path), "a+", newline="", encoding="utf-8") as f:
        f.seek(0)
        header = f.readline()
        f.seek(0, os.SEEK_END)                # "a+" writes at the end anyway; this drops the read buffer
        writer = csv.writer(f)
        if not header:
            writer.writerow(columns)
        elif next(csv.reader([header])) != columns:
            # A file of the user's (or an older layout) at our name: one line, not a traceback after the runs.
            raise DataError(f"{path} has columns {header.strip()[:200]}, not MMSA's {','.join(columns)}: its row for "
                            f"{model} was not written (the runs are recorded in runs.jsonl); move the file away and "
                            f"the next training call starts a new one")
        writer.writerow(row)
    return path
