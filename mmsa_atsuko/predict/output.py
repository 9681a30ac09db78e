"""What `run.py predict` writes in `--out`, checked before any work, and written whole.

`predictions.csv`: id, split, pred, and label where the file has labels; for classification `pred` is
the class index, with `class_name` and `probability`. Beside it, `predictions.json` names the run (id,
folder, model, the data it trained on), the feature file (path, sha256) the predictions came from and the
code that made them (`git_commit`), and with --videos the videos folder, the transcript CSV (path, sha256)
and how many videos or rows were skipped (listed in `features.skipped.txt`), so that a copied folder of
predictions still says.

A run folder may come from anywhere. Before any work, `--out` must be a folder this user can write whose
`predictions.csv`, `predictions.json` (and, with --videos, `features.pkl` and
`features.skipped.txt`) is no symbolic link (`check_output`); predictions.csv is written whole through a
fresh temporary file (`write_predictions`).
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from ..api.predictions_csv import PREDICTIONS_FLOAT_FORMAT
from ..atomic import replace_with
from ..cache import sha256_of
from ..code_version import git_commit
from ..data.extract import skipped_report_path
from ..results import check_output_folder, open_new
from ..version import __version__

PREDICTIONS = "predictions.csv"
PROVENANCE = "predictions.json"     # which run, model and feature file made predictions.csv
FEATURES = "features.pkl"           # what --videos extracts into
# What predict writes in --out: the predictions, and with --videos what extract writes beside its output.
OUTPUT_ENTRIES = (PREDICTIONS, PROVENANCE, FEATURES, skipped_report_path(Path(FEATURES)).name)


def check_output(out) -> Path:
    """`out` as a Path, or a one-line UsageError before any work: a file where the folder goes, a
    folder this user cannot write, or a symbolic link (or a folder) where predict writes a file."""
    return check_output_folder(out, "output folder", OUTPUT_ENTRIES)


def provenance_of(folder, card: dict, features, data_id: str | None, table: pd.DataFrame) -> dict:
    """What predictions.json says: the run (its folder, model and the data it trained on) and the feature
    file (path, sha256 and data id) behind predictions.csv, and how many samples of each split it holds.
    `features_data` is the data id as `trained_on` gives the run's: predictions on generated data say so."""
    features = Path(features).resolve()
    sha256 = sha256_of(features) if features.is_file() else None
    return {"run_id": Path(folder).resolve().name, "run_folder": str(Path(folder).resolve()), "model": card["model"],
            "dataset": card["dataset"], "trained_on": card.get("data"), "features": str(features),
            "features_sha256": sha256, "features_data": data_id or f"sha256:{sha256}",
            "samples": {name: int(n) for name, n in table.split.value_counts(sort=False).items()},
            "package_version": __version__, "git_commit": git_commit(),
            "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def write_predictions(out: Path, table: pd.DataFrame, said: dict) -> Path:
    """Write `table` to `<out>/predictions.csv` and `said` to predictions.json beside it; return the csv's path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / PREDICTIONS
    # Written first: a predictions.csv is never beside the provenance of another call's.
    provenance = json.dumps(said, indent=1, ensure_ascii=False) + "\n"

    def write_provenance(tmp: Path) -> None:
        with open_new(tmp, "w", encoding="utf-8") as f:
            f.write(provenance)

    def write(tmp: Path) -> None:
        with open_new(tmp, "w", newline="", encoding="utf-8") as f:
            table.to_csv(f, index=False, float_format=PREDICTIONS_FLOAT_FORMAT)

    path.unlink(missing_ok=True)
    replace_with(out / PROVENANCE, write_provenance)
    replace_with(path, write)      # whole or not at all, and a link planted since the check is replaced, not followed
    return path
