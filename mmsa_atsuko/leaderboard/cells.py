"""What one cell of a printed table reads: display units, numbers, `--paper`'s Has0/Non0 pairs, column
headers and the Welch text.

Shared by every text renderer (render.py: Markdown, LaTeX, the terminal comparison) and by verify, which
compares in the paper's units. Display units: accuracies, F1, precision and recall in %, MAE/Corr/Loss as
stored. The CSV (csv_table.py) keeps the stored units instead.
"""
from __future__ import annotations

import math

from ..metrics.names import lower_is_better, table_order
from ..results import Cell, StoredCell
from .stats import MIN_SEEDS, SIGNIFICANCE
from .tables import Row

RAW_METRICS = frozenset({"MAE", "Corr", "Loss", "loss"})      # shown as stored, not in %


def to_display(metric: str, value: float) -> float:
    return value if metric in RAW_METRICS else value * 100


def units_text(metrics) -> str:
    """The units sentence of a table showing `metrics`."""
    raw = sorted(RAW_METRICS & set(metrics))
    return "accuracies/F1 in %" + (f", {', '.join(raw)} as is" if raw else "")


def fixed_text(value: float, places: int, signed: bool = False) -> str:
    """`value` to `places` decimals (with its sign: `signed`); a value that rounds to zero reads 0.00 (+0.00), never
    -0.00, which claims a sign the shown digits do not have."""
    value = value if round(value, places) != 0 else 0.0
    return f"{value:+.{places}f}" if signed else f"{value:.{places}f}"


def places_of(metric: str) -> int:
    """Decimals a cell of `metric` is printed to: 4 for those shown as stored (MAE, Corr, Loss), 2 for a %."""
    return 4 if metric in RAW_METRICS else 2


def number_text(metric: str, value: float) -> str:
    if value is None or math.isnan(value):
        return "–"
    return fixed_text(to_display(metric, value), places_of(metric))


def signed_text(metric: str, value: float) -> str:
    """A difference in display units, with its sign."""
    if math.isnan(value):
        return "–"
    return fixed_text(to_display(metric, value), places_of(metric), signed=True)


def cell_text(metric: str, cell: Cell | StoredCell, row_n: int, pm: str) -> str:
    return cell.text(lambda value: number_text(metric, value), pm, of=row_n)


# `--paper`: MOSI/MOSEI's binary accuracy and F1 as one "Has0/Non0" cell each, as the Self-MM and MISA
# papers print them ("Acc-2 a/b": a = negative/non-negative, b = negative/positive: the Has0 and Non0
# forms of thuiar/MMSA:src/MMSA/utils/metricsTop.py).
PAIRS = {"Has0_acc_2": ("Acc-2", "Non0_acc_2"), "Has0_F1_score": ("F1", "Non0_F1_score")}
PAIRED = {second: first for first, (_, second) in PAIRS.items()}


def column_groups(metrics, paper: bool) -> list[tuple[str, ...]]:
    """The table's columns as groups of metrics, in `table_order`: one metric, or with `paper` a (Has0, Non0) pair
    wherever the table has either half."""
    metrics = table_order(metrics)
    if not paper:
        return [(m,) for m in metrics]
    columns = []
    for m in metrics:
        first = PAIRED.get(m, m)
        pair = (first, PAIRS[first][1]) if first in PAIRS else (m,)
        if pair not in columns:
            columns.append(pair)
    return columns


def arrow_of(metric: str) -> str:
    return "↓" if lower_is_better(metric) else "↑"


def column_name(column: tuple[str, ...], arrow: bool = True) -> str:
    if len(column) == 2:
        return f"{PAIRS[column[0]][0]} (Has0/Non0){' ' + arrow_of(column[0]) if arrow else ''}"
    return f"{column[0]}{' ' + arrow_of(column[0]) if arrow else ''}"


def column_cell(column: tuple[str, ...], cells: dict, row_n: int, best, bold) -> str:
    """A column's cell: `bold(text)` where best; a pair reads "83.10/84.90 ± 0.52/0.61", each half
    bold on its own."""
    if len(column) == 1:
        m = column[0]
        text = cell_text(m, cells[m], row_n, " ± ")
        return bold(text) if m in best else text
    if not any(cells[m].n for m in column):
        return "–"
    means = [bold(number_text(m, cells[m].mean)) if m in best else number_text(m, cells[m].mean) for m in column]
    text = f"{'/'.join(means)} ± {'/'.join(number_text(m, cells[m].std) for m in column)}"
    counts = {cells[m].n for m in column}
    return text if counts == {row_n} else f"{text} (n={'/'.join(str(cells[m].n) for m in column)})"


def welch_text(row: Row, key_metric: str) -> str:
    """A row's Welch t-test on the key metric, for its last column."""
    if row.test is None:
        return "not tested (n<2)" if row.cells[key_metric].n < MIN_SEEDS else "–"
    if math.isnan(row.test.p):
        return f"vs {row.against}: no spread"
    mark = " †" if row.test.p < SIGNIFICANCE else ""
    return f"vs {row.against}: p={row.test.p:#.3g}{mark}"     # 0.170, not 0.17 beside 0.484
