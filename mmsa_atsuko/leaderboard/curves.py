"""`leaderboard --by missing_rate`: each model's metric against the missing rate, with its area.

One curve per (dataset, aligned flag, data id) and row: a row is a model under one config
hash, one dropped modality and one modality subset (rows as in the leaderboard), and its points
are the missing rates it has runs at. A point is the mean ± sample std (ddof=1) over seeds of
the key metric (MAE, macro-F1 for MIntRec, or --key-metric).

AUC: the trapezoid rule over the row's rates applied to the point means, divided by the span of
those rates (max - min). The normalisation makes it the curve's average height, in the metric's
own unit (an AUC of MAE is an MAE), so it reads like a cell of the leaderboard; rows compare
only over the same rates (a note says when rows have different ones). Fewer than two rates: no AUC.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..data.conditions import condition_of, label_suffix
from ..data.stamp import is_synthetic
from ..metrics.names import lower_is_better, metric_keys
from ..errors import UsageError
from ..results import config_labels, headline_metric, ok_records
from .cells import RAW_METRICS, number_text
from .render import markdown_table
from .notes import curve_notes
from .real_data import not_real_data, not_real_note
from .stats import MIN_SEEDS, Cell
from .tables import RunTable

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Curve:
    label: str
    model: str
    config_hash: str
    cells: dict[float, Cell]            # missing rate -> the metric over seeds
    records: list[dict] = field(default_factory=list)      # the runs of every rate, for the notes (notes.curve_notes)

    @property
    def rates(self) -> list[float]:
        return sorted(self.cells)

    @property
    def few_seeds(self) -> bool:
        """A rate over fewer than MIN_SEEDS seeds (notes.seeds_note leaves such rows out of its comparison)."""
        return any(cell.n < MIN_SEEDS for cell in self.cells.values())

    @property
    def auc(self) -> float:
        return auc([self.cells[r].mean for r in self.rates], self.rates)


@dataclass
class CurveTable(RunTable):
    metric: str
    curves: list[Curve]

    @property
    def rates(self) -> list[float]:
        return sorted({r for c in self.curves for r in c.cells})

    def title(self, kind: bool = True) -> str:
        """The table's heading; `kind=False` leaves out whether the data are synthetic, for a figure,
        which tags its own title (`plots.common.tagged_title`)."""
        data = self.data_id
        if kind:
            data = f"{self.kind_text()} ({self.data_id})"
        return (f"{self.dataset}, {'aligned' if self.aligned else 'unaligned'}: {data}, {self.metric} against the "
                f"missing rate")


def auc(values, rates) -> float:
    """Trapezoid area under `values` over the sorted `rates`, divided by their span (see above)."""
    if len(rates) < 2 or any(math.isnan(v) for v in values):
        return math.nan
    area = math.fsum((rates[i + 1] - rates[i]) * (values[i] + values[i + 1]) / 2 for i in range(len(rates) - 1))
    return area / (rates[-1] - rates[0])


def missing_rate_tables(records: list[dict], datasets=None, key_metric=None) -> list[CurveTable]:
    groups: dict[tuple, dict[tuple, dict[float, list[float]]]] = {}
    runs: dict[tuple, list[dict]] = {}          # (table, row) -> the row's records, every rate's
    for r in ok_records(records):
        if datasets and r["dataset"] not in datasets:
            continue
        metric = key_metric or headline_metric(r["dataset"])
        if metric not in metric_keys(r["dataset"]):
            raise UsageError(f"--key-metric {metric} is not a metric of {r['dataset']}; choose one of "
                             f"{', '.join(metric_keys(r['dataset']))}")
        value = r["metrics"].get(metric)
        if value is None:
            continue
        c = condition_of(r)
        rest = ",".join(p for p in c.key().split(",") if p and not p.startswith("missing_rate="))
        row = (r["model"], r["config_hash"], rest)
        table = groups.setdefault((r["dataset"], bool(r["aligned"]), r["data"], metric), {})
        table.setdefault(row, {}).setdefault(c.missing_rate, []).append(float(value))
        runs.setdefault((r["dataset"], bool(r["aligned"]), r["data"], metric, row), []).append(r)
    tables, unreal = [], not_real_data(records)
    for (dataset, aligned, data_id, metric), rows in sorted(groups.items(), key=lambda kv: (
            is_synthetic(kv[0][2]), kv[0][0], kv[0][1], kv[0][2])):
        labels = config_labels((model, chash) for model, chash, _ in rows)
        curves = []
        for (model, chash, rest), points in rows.items():
            label = labels[model, chash] + label_suffix(rest)
            curves.append(Curve(label, model, chash, {rate: Cell(v) for rate, v in points.items()},
                                runs[dataset, aligned, data_id, metric, (model, chash, rest)]))
        sign = 1 if lower_is_better(metric) else -1
        curves.sort(key=lambda c: (math.isnan(c.auc), sign * c.auc if not math.isnan(c.auc) else 0, c.label))
        table = CurveTable(dataset, aligned, data_id, metric, curves,
                           not_real=unreal.get((dataset, aligned, data_id), ""))
        table.notes += not_real_note(table.not_real)        # the first note, as its title says it
        if len({tuple(c.rates) for c in curves if len(c.rates) > 1}) > 1:
            table.notes.append("rows have runs at different rates: compare AUCs only between rows with the same rates")
        table.notes += curve_notes(curves)
        tables.append(table)
    return tables


def render_curves_markdown(tables: list[CurveTable]) -> str:
    """Numbers in the leaderboard's display units (cells.number_text): a point or an AUC reads like the
    leaderboard's cell of the same metric (F1 65.62 in both, not 0.6562 here); the CSV keeps stored units."""
    parts = []
    for t in tables:
        header = ["model"] + [f"{r:g}" for r in t.rates] + ["AUC"]
        lines = []
        for c in t.curves:
            cells = []
            for r in t.rates:
                cell = c.cells.get(r)
                cells.append("–" if cell is None else
                             f"{cell.text(lambda value: number_text(t.metric, value))} (n={cell.n})")
            lines.append([c.label] + cells + [number_text(t.metric, c.auc)])
        arrow = "lower" if lower_is_better(t.metric) else "higher"
        unit = "" if t.metric in RAW_METRICS else " in %"
        parts.append(f"### {t.title()}\n\nTest {t.metric}{unit} ({arrow} is better), mean ± sample std (ddof=1) over "
                     f"seeds at each missing rate (columns). AUC: trapezoid over the row's rates, divided by "
                     f"their span (the curve's mean height, in {t.metric}).\n\n" + markdown_table(header, lines)
                     + "".join(f"\n\n- {note}" for note in t.notes))
    return "\n\n".join(parts) + "\n"


def curves_frame(tables: list[CurveTable]) -> pd.DataFrame:
    """One line per (table, row, rate): the numbers behind the table and the figure."""
    import pandas as pd     # here: the Markdown curves need none of it (about 0.35 s to import)
    rows = []
    for t in tables:
        for c in t.curves:
            for r in c.rates:
                cell = c.cells[r]
                rows.append({"dataset": t.dataset, "aligned": t.aligned, "data": t.data_id,
                             "data_kind": t.kind(), "metric": t.metric,
                             "model": c.label, "config_hash": c.config_hash, "missing_rate": r, "n": cell.n,
                             "mean": cell.mean, "std": cell.std, "auc": c.auc})
    return pd.DataFrame(rows)
