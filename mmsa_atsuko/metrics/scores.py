"""The scores the families share: sklearn's F1, precision and recall with zero_division=0, and MAE with Corr.

F1, precision and recall are sklearn's (`precision_recall_fscore_support`, zero_division=0),
computed here with sklearn's own operations in its order, so the values are bit-identical
(tests/test_metrics.py checks them against sklearn): importing sklearn.metrics cost every
run and every sweep worker about a second at start-up, for three lines of counting. That is
sklearn >= 1.4's F1, 2tp / (true + pred); older sklearn (MIntRec pins 0.24.2) computed
2PR / (P + R), one ulp apart in about 30% of confusion tables, which moves a 4-decimal value
only on an exact 5th-decimal tie. Every metric against its source, line by line: docs/metrics.md.
"""
from __future__ import annotations

import warnings

import numpy as np


def _per_class(true: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True positives, predicted and true counts per class, over the classes in `true` or `pred`
    (sorted, as sklearn's `unique_labels`)."""
    labels = np.union1d(true, pred)
    tp = np.array([np.count_nonzero((true == c) & (pred == c)) for c in labels], dtype=np.int64)
    pred_sum = np.array([np.count_nonzero(pred == c) for c in labels], dtype=np.int64)
    true_sum = np.array([np.count_nonzero(true == c) for c in labels], dtype=np.int64)
    return tp, pred_sum, true_sum


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """sklearn's `_prf_divide` with zero_division=0: a class with a zero denominator scores 0."""
    zero = denominator == 0
    result = np.asarray(numerator, dtype=np.float64) / np.where(zero, 1.0, denominator.astype(np.float64))
    result[zero] = 0.0
    return result


def _average(scores: np.ndarray, average: str, true_sum: np.ndarray) -> float:
    if average == "macro":                                  # sklearn: np.nanmean (no NaN here)
        return float(np.nanmean(scores))
    weights = true_sum.astype(np.float64)                   # "weighted": by support
    return float(np.sum(np.multiply(scores, weights)) / np.sum(weights))


def f1_score(true: np.ndarray, pred: np.ndarray, average: str) -> float:
    """`sklearn.metrics.f1_score(true, pred, average=average, zero_division=0)`; F1 = 2tp / (true + pred)."""
    tp, pred_sum, true_sum = _per_class(true, pred)
    f1 = _divide(2.0 * tp.astype(np.float64), 1.0 * true_sum.astype(np.float64) + pred_sum.astype(np.float64))
    return _average(f1, average, true_sum)


def precision_score(true: np.ndarray, pred: np.ndarray, average: str) -> float:
    tp, pred_sum, true_sum = _per_class(true, pred)
    return _average(_divide(tp, pred_sum), average, true_sum)


def recall_score(true: np.ndarray, pred: np.ndarray, average: str) -> float:
    tp, _, true_sum = _per_class(true, pred)
    return _average(_divide(tp, true_sum), average, true_sum)


def mae_corr(pred: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    mae = float(np.mean(np.absolute(pred - true)))
    # Constant predictions (or labels) have zero variance: Pearson's r is undefined. NumPy gives
    # NaN (and warns) only when its mean of the constant is exact, as it is for the float32 values
    # MMSA passes; a float64 constant like 0.03 averages 1 ulp off and np.corrcoef returns +-2e-17.
    if np.all(pred == pred[0]) or np.all(true == true[0]):
        return mae, float("nan")
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        corr = float(np.corrcoef(pred, true)[0][1])
    return mae, corr
