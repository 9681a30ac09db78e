"""A metric's mean ± sample std over seeds (ddof=1), as every table and figure of ours reads it: the one home.

Here, in results/, the lowest layer that reads run records, so that the leaderboard (layer 6) and the analyses
(layer 5: the sensitivity figure) compute one cell the same way from the same runs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class Cell:
    values: list[float]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def constant(self) -> bool:
        return self.n > 0 and np.ptp(self.values) == 0

    # Equal values have that value as mean and 0 as std exactly (summing them in floats does not
    # give it: [0.7] * 3 has np.mean 0.6999999999999998 and std 1.4e-16), and math.fsum is
    # exactly rounded, so a mean does not depend on the seeds' order and equal rows tie exactly.
    @property
    def mean(self) -> float:
        if self.constant:
            return float(self.values[0])
        return math.fsum(self.values) / self.n if self.values else math.nan

    @property
    def std(self) -> float:
        if self.n < 2:
            return math.nan
        return 0.0 if self.constant else float(np.std(self.values, ddof=1))

    @classmethod
    def of(cls, records: list[dict], metric: str) -> "Cell":
        """`metric` over the runs of `records` that have a finite value of it: a record from before a metric existed
        lacks it, and a run whose value is undefined (the Corr of constant predictions) has NaN in memory and null in
        the store; either way that seed has no value, and run.py's end table, the leaderboard and the sensitivity
        figure read it alike."""
        values = [float(value) for r in records if (value := r["metrics"].get(metric)) is not None]
        return cls([value for value in values if math.isfinite(value)])

    def text(self, number=lambda value: f"{value:.4f}", pm: str = " ± ", of: int | None = None) -> str:
        """The cell as every table of ours prints it: mean ± std, each through `number`, "–" for a NaN (the std of
        one value: no spread to show, not a spread of 0) and alone for no values; "(n=k)" after it when `of`, the
        row's seed count, is more than the cell's values (a metric some seeds lack). The leaderboard's cells
        (cells.py), compare's table (through StoredCell), run.py's end table and the bench scripts' tables call it."""
        if not self.n:
            return "–"
        mean, std = ("–" if math.isnan(v) else number(v) for v in (self.mean, self.std))
        return f"{mean}{pm}{std}" + ("" if of is None or self.n == of else f" (n={self.n})")


@dataclass(frozen=True)
class StoredCell:
    """A cell known by its stored n, mean and std alone (a `comparison_rows` row, which its CSV is), printed by
    `Cell.text` itself."""
    n: int
    mean: float
    std: float
    text = Cell.text
