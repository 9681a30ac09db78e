"""Evaluation metrics, one function per task family, behind one entry point.

    compute_metrics("mosi", y_pred, y_true) -> {"Has0_acc_2": ..., "Corr": ...}

The definitions follow MMSA (`thuiar/MMSA:src/MMSA/utils/metricsTop.py`) for MOSI, MOSEI,
CH-SIMS and CH-SIMS v2, and MIntRec (`thuiar/MIntRec:utils/metrics.py`) for MIntRec, so that
our numbers compare with published tables. Two deliberate differences from those codes:

* values are returned at full precision (MMSA rounds every value to 4 decimals; the results
  store keeps full precision, the MMSA CSV rounds as MMSA does, `results/mmsa_csv.py`, and the
  leaderboard rounds for display);
* degenerate inputs give NaN instead of a crash or a RuntimeWarning: constant predictions
  or labels give NaN `Corr` (MMSA's too for its float32 inputs; for a float64 constant whose
  mean is inexact np.corrcoef would return a +-1e-17 residue), and a split without nonzero
  labels gives NaN `Non0_*` (MMSA raises an IndexError there).

Inputs may be NumPy arrays or torch tensors (any device, any float dtype). Everything is
computed in float64, which is exact for the accuracies and F1 (rounding, clipping and
comparing a float32 number is the same in float64) and for `Corr` (`np.corrcoef` works in
float64 anyway). Only the CH-SIMS class bins depend on the input dtype; see `_sims_bins`.
For float32 inputs `MAE` is the float64 mean, while MMSA averages in float32: the two differ
by float32 round-off (about 1e-7), never in a reported 4th decimal except by a rounding tie.

F1, precision and recall are sklearn's (`precision_recall_fscore_support`, zero_division=0),
computed here with sklearn's own operations in its order, so the values are bit-identical
(tests/test_metrics.py checks them against sklearn): importing sklearn.metrics cost every
run and every sweep worker about a second at start-up, for three lines of counting. That is
sklearn >= 1.4's F1, 2tp / (true + pred); older sklearn (MIntRec pins 0.24.2) computed
2PR / (P + R), one ulp apart in about 30% of confusion tables, which moves a 4-decimal value
only on an exact 5th-decimal tie. Every metric against its source, line by line: docs/metrics.md.
"""
from __future__ import annotations

import sys
import warnings

import numpy as np

from .config import METRIC_KEYS, dataset_facts
from .errors import UsageError

# --------------------------------------------------------------------------------------
# F1, precision, recall: sklearn's, with zero_division=0
# --------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------

# Every key compute_metrics returns, per family, in MMSA's order, is `config.METRIC_KEYS` (imported
# above): it sits beside the datasets table, which checks a dataset's metric set and headline against it.
# The keys MMSA itself returns (and so writes to its CSVs), for an MMSA-compatible writer.
# MIntRec is not an MMSA dataset and has no entry.
MMSA_CSV_KEYS: dict[str, tuple[str, ...]] = {
    "mosi": METRIC_KEYS["mosi"][:8],
    "sims": METRIC_KEYS["sims"],
}

_LOWER_IS_BETTER = frozenset({"MAE", "Loss", "loss"})
_HIGHER_IS_BETTER = frozenset(k for keys in METRIC_KEYS.values() for k in keys) - _LOWER_IS_BETTER


def metric_family(dataset: str) -> str:
    """The metric set of a dataset (configs/datasets.yaml `metrics`): 'mosi' for MOSI and MOSEI,
    'sims' for CH-SIMS and v2, 'mintrec'. Case-insensitive, as MMSA's `getMetics(datasetName.upper())`."""
    return dataset_facts(dataset)["metrics"]


def metric_keys(dataset: str) -> tuple[str, ...]:
    """The keys `compute_metrics(dataset, ...)` returns, in order."""
    return METRIC_KEYS[metric_family(dataset)]


def lower_is_better(metric_name: str) -> bool:
    """True for MAE and Loss; False for accuracies, F1, Corr, precision and recall."""
    if metric_name in _LOWER_IS_BETTER:
        return True
    if metric_name in _HIGHER_IS_BETTER:
        return False
    known = ", ".join(sorted(_LOWER_IS_BETTER | _HIGHER_IS_BETTER))
    raise UsageError(f"unknown metric {metric_name!r}; known metrics: {known}")


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------

def compute_metrics(dataset: str, y_pred, y_true) -> dict[str, float]:
    """All metrics of `dataset`'s family for one whole split, as plain Python floats.

    Regression (mosi, mosei, sims, simsv2): `y_pred`, `y_true` of shape (N,) or (N, 1).
    Classification (mintrec): `y_pred` logits (N, C) or class ids (N,), `y_true` ids (N,).
    """
    family = metric_family(dataset)
    pred = _to_numpy(y_pred, "y_pred")
    true = _to_numpy(y_true, "y_true")
    if family == "mintrec":
        return _classification_metrics(pred, true)
    pred = _flatten_regression(pred, "y_pred")
    true = _flatten_regression(true, "y_true")
    if pred.shape != true.shape:
        raise ValueError(f"y_pred has {pred.shape[0]} values but y_true has {true.shape[0]}")
    if family == "mosi":
        return _mosei_regression(pred, true)
    return _sims_regression(pred, true)


# --------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------

def _to_numpy(x, name: str) -> np.ndarray:
    """A NumPy array in the input's own dtype (float32 stays float32; see `_sims_bins`)."""
    torch = sys.modules.get("torch")  # a tensor can only exist if torch is already imported
    if torch is not None and isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype == torch.bfloat16:  # NumPy has no bfloat16; float32 holds it exactly
            x = x.float()
        x = x.numpy()
    x = np.asarray(x)
    if x.size == 0:
        raise ValueError(f"{name} is empty: metrics need at least one sample")
    if x.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {x.dtype}")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise ValueError(f"{name} has {bad} non-finite value(s) (NaN/inf): did training diverge?")
    return x


def _flatten_regression(x: np.ndarray, name: str) -> np.ndarray:
    # MMSA flattens anything with .view(-1); we accept only (N,) and (N, 1) so that logits
    # passed to a regression dataset by mistake fail loudly.
    if x.ndim == 2 and x.shape[1] == 1:
        return x[:, 0]
    if x.ndim == 1:
        return x
    raise ValueError(f"{name} must have shape (N,) or (N, 1) for regression, got {x.shape}")


def _native_float(x: np.ndarray) -> np.ndarray:
    """`x` in the float dtype NumPy would compare it in against a Python float."""
    return x if x.dtype.kind == "f" else x.astype(np.float64)


# --------------------------------------------------------------------------------------
# MOSI / MOSEI  (metricsTop.py `__eval_mosei_regression`)
# --------------------------------------------------------------------------------------

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


def _mae_corr(pred: np.ndarray, true: np.ndarray) -> tuple[float, float]:
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


def _mosei_regression(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    p = pred.astype(np.float64)  # exact for every input dtype we accept
    y = true.astype(np.float64)

    mae, corr = _mae_corr(p, y)  # on unclipped values, as MMSA

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


# --------------------------------------------------------------------------------------
# CH-SIMS / CH-SIMS v2  (metricsTop.py `__eval_sims_regression`)
# --------------------------------------------------------------------------------------

# Left-open, right-closed bins; the first starts at -1.01 so that -1 is inside it.
SIMS_EDGES_2 = (-1.01, 0.0, 1.01)                    # [-1, 0] (zero is negative), (0, 1]
SIMS_EDGES_3 = (-1.01, -0.1, 0.1, 1.01)              # [-1, -0.1], (-0.1, 0.1], (0.1, 1]
SIMS_EDGES_5 = (-1.01, -0.7, -0.1, 0.1, 0.7, 1.01)


def _sims_bins(x: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """Bin ids of `x` (already clipped to [-1, 1]), with MMSA's loop
    `for i: arr[(x > edges[i]) & (x <= edges[i+1])] = i`.

    Float32 decision: MMSA gets float32 tensors, converts them to float32 NumPy arrays and
    compares them with the Python floats above. NumPy (1.x value-based casting and 2.x NEP 50
    alike) then compares in float32, i.e. against float32(0.1) = 0.100000001..., not 0.1.
    So a float32 prediction equal to float32(0.1) is *neutral* in MMSA (x <= float32(0.1)),
    and float32(-0.7) = -0.69999998... is in the *lowest* 5-class bin, although in float64
    both would fall on the other side. To output what MMSA outputs for the same inputs, we
    round the edges to the dtype of `x` (float16/32/64) and compare in that dtype. Integer
    inputs compare in float64, as NumPy does. Consequence: pass predictions in the dtype the
    model produced; a float32 value upcast to float64 before this call is binned as float64.
    """
    xf = _native_float(x)
    cut = np.asarray(edges, dtype=xf.dtype)
    bins = np.full(xf.shape, -1, dtype=np.int64)  # every clipped value lands in some bin
    for i in range(len(edges) - 1):
        bins[(xf > cut[i]) & (xf <= cut[i + 1])] = i
    return bins


def _sims_regression(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    # Clip first (MAE and Corr use clipped values too). Clipping to +-1 is exact in any
    # float dtype, so clip in the input dtype and bin there.
    pc = np.clip(_native_float(pred), -1.0, 1.0)
    yc = np.clip(_native_float(true), -1.0, 1.0)

    p2, y2 = _sims_bins(pc, SIMS_EDGES_2), _sims_bins(yc, SIMS_EDGES_2)
    p3, y3 = _sims_bins(pc, SIMS_EDGES_3), _sims_bins(yc, SIMS_EDGES_3)
    p5, y5 = _sims_bins(pc, SIMS_EDGES_5), _sims_bins(yc, SIMS_EDGES_5)
    n = len(yc)
    mae, corr = _mae_corr(pc.astype(np.float64), yc.astype(np.float64))

    return {
        "Mult_acc_2": float(np.count_nonzero(p2 == y2) / n),
        "Mult_acc_3": float(np.count_nonzero(p3 == y3) / n),
        "Mult_acc_5": float(np.count_nonzero(p5 == y5) / n),
        "F1_score": f1_score(y2, p2, average="weighted"),
        "MAE": mae,
        "Corr": corr,
    }


# --------------------------------------------------------------------------------------
# MIntRec  (thuiar/MIntRec:utils/metrics.py)
# --------------------------------------------------------------------------------------

def _class_ids(x: np.ndarray, name: str) -> np.ndarray:
    if x.dtype.kind == "f" and not np.all(x == np.round(x)):
        raise ValueError(f"{name} must hold integer class ids, got non-integer floats")
    return x.astype(np.int64)


def _classification_metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
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
