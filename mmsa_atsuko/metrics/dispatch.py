"""`compute_metrics(dataset, y_pred, y_true)`: the inputs checked, then handed to their family's module."""
from __future__ import annotations

import sys

import numpy as np

from .mintrec import classification_metrics
from .mosi import mosei_regression
from .names import metric_family
from .sims import sims_regression


def compute_metrics(dataset: str, y_pred, y_true) -> dict[str, float]:
    """All metrics of `dataset`'s family for one whole split, as plain Python floats.

    Regression (mosi, mosei, sims, simsv2): `y_pred`, `y_true` of shape (N,) or (N, 1).
    Classification (mintrec): `y_pred` logits (N, C) or class ids (N,), `y_true` ids (N,).
    """
    family = metric_family(dataset)
    pred = _to_numpy(y_pred, "y_pred")
    true = _to_numpy(y_true, "y_true")
    if family == "mintrec":
        return classification_metrics(pred, true)
    pred = _flatten_regression(pred, "y_pred")
    true = _flatten_regression(true, "y_true")
    if pred.shape != true.shape:
        raise ValueError(f"y_pred has {pred.shape[0]} values but y_true has {true.shape[0]}")
    if family == "mosi":
        return mosei_regression(pred, true)
    return sims_regression(pred, true)


# --------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------

def _to_numpy(x, name: str) -> np.ndarray:
    """A NumPy array in the input's own dtype (float32 stays float32; see `sims._sims_bins`)."""
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
