"""MOSI and MOSEI: MMSA's `metricsTop.py` `__eval_mosei_regression`."""
from __future__ import annotations

import numpy as np

from ..config import METRIC_KEYS
from .scores import f1_score, mae_corr


def _mult_acc(pred: np.ndarray, true: np.ndarray, bound: float) -> float:
    # Clip to [-bound, bound] and round to the nearest integer class. np.round rounds half to
    # even (0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> -0.0 == 0), exactly as MMSA does.
    p = np.round(np.clip(pred, -bound, bound))
    t = np.round(np.clip(true, -bound, bound))
    return float(np.count_nonzero(p == t) / len(t))


def _binary(pred_bin: np.ndarray, true_bin: np.ndarray) -> tuple[float, float]:
    """Accuracy and weighted F1 of two boolean vectors.

    f1_score(true, pred) in this order (MMSA fixed the swapped order in commit cb5e0bd).
    zero_division=0 gives the value of sklearn's default 'warn' without the warning.
    """
    acc = float(np.count_nonzero(pred_bin == true_bin) / len(true_bin))
    f1 = f1_score(true_bin, pred_bin, average="weighted")
    return acc, f1


def mosei_regression(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    p = pred.astype(np.float64)  # exact for every input dtype we accept
    y = true.astype(np.float64)

    mae, corr = mae_corr(p, y)  # on unclipped values, as MMSA

    # Non0: drop samples whose label is exactly 0, then negative vs positive (> 0).
    nonzero = y != 0
    if np.any(nonzero):
        non0_acc, non0_f1 = _binary(p[nonzero] > 0, y[nonzero] > 0)
    else:
        non0_acc = non0_f1 = float("nan")

    # Has0: keep every sample, negative vs non-negative (>= 0: zero counts as positive).
    has0_acc, has0_f1 = _binary(p >= 0, y >= 0)

    out = {
        "Has0_acc_2": has0_acc,
        "Has0_F1_score": has0_f1,
        "Non0_acc_2": non0_acc,
        "Non0_F1_score": non0_f1,
        "Mult_acc_5": _mult_acc(p, y, 2.0),
        "Mult_acc_7": _mult_acc(p, y, 3.0),
        "MAE": mae,
        "Corr": corr,
        "Mult_acc_3": _mult_acc(p, y, 1.0),
    }
    return {k: out[k] for k in METRIC_KEYS["mosi"]}
