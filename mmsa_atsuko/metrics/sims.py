"""CH-SIMS and CH-SIMS v2: MMSA's `metricsTop.py` `__eval_sims_regression`."""
from __future__ import annotations

import numpy as np

from .scores import f1_score, mae_corr

# Left-open, right-closed bins; the first starts at -1.01 so that -1 is inside it.
SIMS_EDGES_2 = (-1.01, 0.0, 1.01)                    # [-1, 0] (zero is negative), (0, 1]
SIMS_EDGES_3 = (-1.01, -0.1, 0.1, 1.01)              # [-1, -0.1], (-0.1, 0.1], (0.1, 1]
SIMS_EDGES_5 = (-1.01, -0.7, -0.1, 0.1, 0.7, 1.01)


def _native_float(x: np.ndarray) -> np.ndarray:
    """`x` in the float dtype NumPy would compare it in against a Python float."""
    return x if x.dtype.kind == "f" else x.astype(np.float64)


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


def sims_regression(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    # Clip first (MAE and Corr use clipped values too). Clipping to +-1 is exact in any
    # float dtype, so clip in the input dtype and bin there.
    pc = np.clip(_native_float(pred), -1.0, 1.0)
    yc = np.clip(_native_float(true), -1.0, 1.0)

    p2, y2 = _sims_bins(pc, SIMS_EDGES_2), _sims_bins(yc, SIMS_EDGES_2)
    p3, y3 = _sims_bins(pc, SIMS_EDGES_3), _sims_bins(yc, SIMS_EDGES_3)
    p5, y5 = _sims_bins(pc, SIMS_EDGES_5), _sims_bins(yc, SIMS_EDGES_5)
    n = len(yc)
    mae, corr = mae_corr(pc.astype(np.float64), yc.astype(np.float64))

    return {
        "Mult_acc_2": float(np.count_nonzero(p2 == y2) / n),
        "Mult_acc_3": float(np.count_nonzero(p3 == y3) / n),
        "Mult_acc_5": float(np.count_nonzero(p5 == y5) / n),
        "F1_score": f1_score(y2, p2, average="weighted"),
        "MAE": mae,
        "Corr": corr,
    }
