"""predictions_test.csv: a run's per-sample test outputs, and the layout of every per-sample CSV made from them."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..results import open_new


PREDICTIONS_FLOAT_FORMAT = "%.9g"      # 9 significant digits round-trip float32


def write_predictions(path: Path, test, spec) -> None:
    """predictions_test.csv (`predictions_frame`). Floats are written to 9 significant digits, which
    round-trips float32 exactly: the metrics can be recomputed from the file to the last digit."""
    with open_new(path, "w", newline="", encoding="utf-8") as f:      # never through a planted link
        predictions_frame(test, spec.task).to_csv(f, index=False, float_format=PREDICTIONS_FLOAT_FORMAT)


def predictions_frame(test, task: str) -> pd.DataFrame:
    """id, label, pred per sample (+ logit_<c> for classification, + the model's exports, such as Atsuko's
    modality_weight_L/V/A): one row per sample, the layout of predictions_test.csv and of every per-sample
    CSV made from it (explain's modality_weights.csv). `test`: the trainer's `evaluate(..., collect=True)`.
    predict's predictions.csv orders its columns otherwise (id, split, pred, label): both orders are kept, as readers
    may read them by position (docs/outputs.md says why they differ)."""
    columns = {"id": test.ids, "label": test.label}
    if task == "classification":
        columns["pred"] = test.pred.argmax(axis=1)
        columns.update({f"logit_{c}": test.pred[:, c] for c in range(test.pred.shape[1])})
    else:
        columns["pred"] = test.pred
    for name, values in test.export.items():
        values = values.reshape(len(test.ids), -1)
        if values.shape[1] == 1:
            columns[name] = values[:, 0]
        else:
            columns.update({f"{name}_{j}": values[:, j] for j in range(values.shape[1])})
    return pd.DataFrame(columns)
