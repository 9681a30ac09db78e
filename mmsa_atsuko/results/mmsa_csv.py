"""MMSA-compatible aggregate rows, `<out>/normal/<dataset>.csv`.

Written as MMSA writes them (thuiar/MMSA:src/MMSA/run.py, `MMSA_run`): one row per (model, dataset) call, cells
"(mean, std)" x100 with population std, rounded to 2 decimals, MAE/Corr/Loss x100 too, exactly
as MMSA does. Appended under the file's lock and never through a symbolic link, as the store is.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from ..data.synthetic_stress import STANDARD, recipe_of
from ..metrics import METRIC_KEYS, MMSA_CSV_KEYS, metric_family
from ..atomic import open_append
from .folder import store_lock


def mmsa_cell(values) -> str:
    """MMSA's cell: str((round(mean*100, 2), round(std*100, 2))) with the population std."""
    arr = np.asarray(values, dtype=np.float64)
    return str((round(float(np.mean(arr)) * 100, 2), round(float(np.std(arr)) * 100, 2)))


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
    row = [model] + [mmsa_cell([m[k] for m in per_seed_metrics]) for k in columns[1:]]
    with store_lock(path), os.fdopen(open_append(path), "a+", newline="", encoding="utf-8") as f:
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
