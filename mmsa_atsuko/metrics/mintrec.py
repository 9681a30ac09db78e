"""MIntRec: thuiar/MIntRec's `utils/metrics.py`, accuracy and macro F1, precision and recall."""
from __future__ import annotations

import numpy as np

from .scores import f1_score, precision_score, recall_score


def _class_ids(x: np.ndarray, name: str) -> np.ndarray:
    if x.dtype.kind == "f" and not np.all(x == np.round(x)):
        raise ValueError(f"{name} must hold integer class ids, got non-integer floats")
    return x.astype(np.int64)


def classification_metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    # MIntRec takes softmax(logits).max(dim=1) indices; softmax is monotonic, so this is the
    # argmax of the logits (ties, which only float32 softmax saturation could create, aside).
    if pred.ndim == 2 and pred.shape[1] == 1:
        # One column is a column of class ids (as y_true may be), not logits of one class,
        # whose argmax would silently make every prediction class 0.
        pred = pred[:, 0]
    elif pred.ndim == 2:
        pred = np.argmax(pred, axis=1)
    elif pred.ndim != 1:
        raise ValueError(f"y_pred must be logits (N, C) or class ids (N,), got shape {pred.shape}")
    if true.ndim == 2 and true.shape[1] == 1:
        true = true[:, 0]
    if true.ndim != 1:
        raise ValueError(f"y_true must be class ids of shape (N,), got {true.shape}")
    pred = _class_ids(pred, "y_pred")
    true = _class_ids(true, "y_true")
    if pred.shape != true.shape:
        raise ValueError(f"y_pred has {pred.shape[0]} samples but y_true has {true.shape[0]}")

    # Like MIntRec we pass no `labels`: the macro average runs over the classes present in
    # y_true or y_pred, so a class absent from both does not count as a 0. A class that is
    # never predicted has precision 0 and a predicted class absent from y_true has recall 0:
    # sklearn's default zero_division='warn' gives 0; we pass 0 for the same value, silently.
    return {
        "acc": float(np.count_nonzero(pred == true) / len(true)),
        "f1": f1_score(true, pred, average="macro"),
        "precision": precision_score(true, pred, average="macro"),
        "recall": recall_score(true, pred, average="macro"),
    }
