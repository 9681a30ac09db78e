"""Statistics behind every table: Welch's unequal-variance test of two rows' values (`welch`), over the cells of
`results.Cell` (a metric's mean ± sample std over seeds, ddof 1, with n). The
leaderboards and comparisons built of them are tables.py's (Table 4: ablation.py).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from ..results import Cell   # results/over_seeds.py, one home: analysis/ reads it too

SIGNIFICANCE = 0.05
MIN_SEEDS = 2               # fewer values than this: never best, never Welch-tested
CI_NAME = "Welch 95%"


@dataclass
class Welch:
    """Welch's unequal-variance comparison of a (this row) against b (the other)."""
    diff: float
    low: float
    high: float
    df: float
    t: float
    p: float


def welch(a, b, confidence: float = 0.95) -> Welch:
    """Difference of means a - b with its Welch confidence interval and two-sided p-value."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    diff = Cell(list(a)).mean - Cell(list(b)).mean if len(a) and len(b) else math.nan
    if len(a) < 2 or len(b) < 2:
        return Welch(diff, math.nan, math.nan, math.nan, math.nan, math.nan)
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        # Both constant: no spread to test against. Decided on the values, since the variance
        # of equal values is not always 0 in floats ([0.7] * 3 gives about 1e-32).
        return Welch(diff, diff, diff, math.nan, math.nan, math.nan)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    # Here, not at the top: scipy.stats costs about 0.9 s to import, and a leaderboard with no two rows of two seeds
    # each tests nothing (bench/README.md, "leaderboard and compare start-up").
    from scipy import stats
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    with warnings.catch_warnings():     # scipy warns when one side is constant; the test still holds
        warnings.simplefilter("ignore", RuntimeWarning)
        test = stats.ttest_ind(a, b, equal_var=False)
    return Welch(diff, diff - half, diff + half, float(df), float(test.statistic), float(test.pvalue))
