"""Leaderboards and comparisons built from run records, of stats.py's cells and Welch tests (Table 4: ablation.py).

Every table is built from one `ok` record per run identity (`results.ok_records`):

- one leaderboard per (dataset, aligned flag, data id). Synthetic and real data have
  different data ids, so they never share a table;
- rows are models; a model with runs under several config hashes gets one row per hash,
  labelled `model@hash`, with the config keys that differ in the table's notes; a run under a
  protocol condition (missing rate, dropped modality, modality subset) is in a row of its own,
  labelled `model [condition]`;
- cells are mean ± sample standard deviation (ddof=1) over seeds, with n; the best mean of
  each column is marked, lower being better for MAE/Loss and higher for the rest;
- significance: each row gets a Welch t-test (`scipy.stats.ttest_ind(equal_var=False)`)
  over seeds against the best *other* model under the same condition on the table's key metric
  (MAE for the regression datasets, macro-F1 for MIntRec, or `--key-metric`);
- a cell over one seed has no spread to judge it by: it is never best, and a row with one
  seed on the key metric is neither tested nor tested against;
- the notes under each table (configs, run labels, seeds, model selection, code versions) are notes.py's.
"""
from __future__ import annotations

import math
from dataclasses import KW_ONLY, dataclass, field

from ..data.conditions import condition_of, label_suffix
from ..data.stamp import is_synthetic
from ..errors import UsageError
from ..metrics.names import lower_is_better, metric_keys, table_order
from ..results import Cell, config_labels, headline_metric, ok_records
from .notes import HOW_RAN, how_ran_note, preset_note, seeds_note, table_notes
from .real_data import kind_of, kind_text_of, not_real_data, not_real_note
from .stats import CI_NAME, MIN_SEEDS, Welch, welch


# --------------------------------------------------------------------------------------
# Leaderboard tables
# --------------------------------------------------------------------------------------

@dataclass
class Row:
    model: str
    config_hash: str
    label: str
    records: list[dict]
    cells: dict[str, Cell]
    best: set = field(default_factory=set)
    against: str | None = None          # label of the best other model on the key metric
    test: Welch | None = None
    condition: str = ""                 # `Condition.key()` of its runs; "" for the plain condition

    @property
    def n(self) -> int:
        """Seeds (one record per seed) in this row."""
        return len(self.records)

    @property
    def few_seeds(self) -> bool:
        """Fewer seeds than MIN_SEEDS: the notes name it as never bold nor tested, and leave it out of the seed
        comparison."""
        return self.n < MIN_SEEDS


@dataclass
class RunTable:
    """What every table of runs has, a leaderboard (`Table`) and a missing-rate table (`curves.CurveTable`): the
    dataset, layout and data id its runs are on, what that data is called, and the notes under it. Built
    positionally as (dataset, aligned, data_id, <the table's own fields>); notes and not_real by keyword."""
    dataset: str
    aligned: bool
    data_id: str
    _: KW_ONLY
    notes: list[str] = field(default_factory=list)
    not_real: str = ""                  # why a real data id is not the dataset's real file (real_data.py), or ""

    @property
    def synthetic(self) -> bool:
        return is_synthetic(self.data_id)

    def kind(self) -> str:
        """What its CSV rows' `data_kind` says (real_data.kind_of)."""
        return kind_of(self.dataset, self.aligned, self.data_id, self.not_real)

    def kind_text(self) -> str:
        """What its title says its rows were run on (real_data.kind_text_of)."""
        return kind_text_of(self.dataset, self.aligned, self.data_id, self.not_real)


@dataclass
class Table(RunTable):
    metrics: tuple[str, ...]
    key_metric: str
    rows: list[Row]

    def title(self) -> str:
        setting = "aligned" if self.aligned else "unaligned"
        return f"{self.dataset}, {setting}: {self.kind_text()} ({self.data_id})"


def _better(metric: str, a: float, b: float) -> bool:
    return a < b if lower_is_better(metric) else a > b


def _best_value(metric: str, values) -> float:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return math.nan
    return min(finite) if lower_is_better(metric) else max(finite)


def _sort_key(metric: str, mean: float):
    if math.isnan(mean):
        return math.inf
    return mean if lower_is_better(metric) else -mean


def best_cells(metric: str, cells: dict) -> set:
    """Keys of the cells (over at least MIN_SEEDS values) with the best mean; ties all win. None in a column of one
    cell: bold marks a best among rows, and a table of one row bolded every cell."""
    if len(cells) < 2:
        return set()
    eligible = {key: cell for key, cell in cells.items() if cell.n >= MIN_SEEDS}
    value = _best_value(metric, [cell.mean for cell in eligible.values()])
    return {key for key, cell in eligible.items() if cell.mean == value}


def build_tables(records: list[dict], datasets=None, key_metric: str | None = None) -> list[Table]:
    """One leaderboard per (dataset, aligned, data id) from `ok` records (deduplicated first)."""
    groups: dict[tuple, list[dict]] = {}
    for r in ok_records(records):
        if datasets and r["dataset"] not in datasets:
            continue
        groups.setdefault((r["dataset"], bool(r["aligned"]), r["data"]), []).append(r)
    order = {"mosi": 0, "mosei": 1, "sims": 2, "simsv2": 3, "mintrec": 4}
    unreal = not_real_data(records)
    tables = []
    for (dataset, aligned, data_id), group in sorted(groups.items(), key=lambda kv: (
            is_synthetic(kv[0][2]), order.get(kv[0][0], 9), kv[0][0], kv[0][1], kv[0][2])):
        metrics = metric_keys(dataset)
        key = key_metric or headline_metric(dataset)
        if key not in metrics:
            having = sorted({d for d, _, _ in groups if key in metric_keys(d)})
            only = f", or show only {' '.join(having)} (-d {' '.join(having)})" if having and not datasets else ""
            raise UsageError(f"--key-metric {key} is not a metric of {dataset}; choose one of {', '.join(metrics)}"
                             f"{only}")
        by_row: dict[tuple, list[dict]] = {}
        for r in group:
            by_row.setdefault((r["model"], r["config_hash"], condition_of(r).key()), []).append(r)
        hashes: dict[str, list[str]] = {}
        for model, chash, _ in by_row:
            hashes.setdefault(model, [])
            if chash not in hashes[model]:
                hashes[model].append(chash)
        labels = config_labels((model, chash) for model, chash, _ in by_row)
        rows = []
        for (model, chash, condition), rs in by_row.items():
            label = labels[model, chash] + label_suffix(condition)
            cells = {m: Cell.of(rs, m) for m in metrics}
            rows.append(Row(model, chash, label, rs, cells, condition=condition))
        rows.sort(key=lambda row: (_sort_key(key, row.cells[key].mean), row.label))
        table = Table(dataset, aligned, data_id, metrics, key, rows,
                      not_real=unreal.get((dataset, aligned, data_id), ""))
        for m in metrics:
            # Best within a condition, as the Welch tests below: a row at missing rate 0.3 is not better
            # or worse than a plain one, it is measured on other data.
            for condition in {row.condition for row in rows}:
                group = {i: row.cells[m] for i, row in enumerate(rows) if row.condition == condition}
                for i in best_cells(m, group):
                    rows[i].best.add(m)
        tested = [row for row in rows if row.cells[key].n >= MIN_SEEDS]
        for row in tested:
            # Under the same condition only: a plain row tested against another model's row at missing rate 0.3
            # (or the reverse) compares data conditions, not models.
            others = [o for o in tested if o.model != row.model and o.condition == row.condition]
            if others:
                other = others[0]
                for o in others[1:]:
                    if _better(key, o.cells[key].mean, other.cells[key].mean):
                        other = o
                row.against, row.test = other.label, welch(row.cells[key].values, other.cells[key].values)
        table.notes = table_notes(rows, [model for model, model_hashes in hashes.items() if len(model_hashes) > 1])
        table.notes[:0] = not_real_note(table.not_real)
        tables.append(table)
    return tables


# --------------------------------------------------------------------------------------
# Comparisons (`compare`)
# --------------------------------------------------------------------------------------

def latest_configs(rows: list[Row], position: dict[int, int]) -> dict[str, Row]:
    """model -> its row, among `rows`, under the config of its most recent record (`started_at`; on a
    tie, the record stored later; `position` maps id(record) to its place in the store)."""
    latest: dict[str, tuple] = {}
    for row in rows:
        stamp = max((r.get("started_at") or "", position[id(r)]) for r in row.records)
        if row.model not in latest or stamp > latest[row.model][0]:
            latest[row.model] = (stamp, row)
    return {model: row for model, (_, row) in latest.items()}


def comparison_rows(table: Table, mine: list[Row], baselines: list[Row]) -> list[dict]:
    """Per (row of mine, baseline row, metric): both cells, mine minus baseline with its Welch
    95% CI and p-value. Stored units (fractions), full precision."""
    rows = []
    for mine_row in mine:
        for base_row in baselines:
            for m in table_order(table.metrics):       # the leaderboard's column order
                a, b = mine_row.cells[m], base_row.cells[m]
                w = welch(a.values, b.values)
                better = "" if math.isnan(w.diff) or w.diff == 0 else _better(m, a.mean, b.mean)
                rows.append({
                    "dataset": table.dataset, "aligned": table.aligned, "data": table.data_id,
                    "data_kind": table.kind(), "metric": m,
                    "higher_is_better": not lower_is_better(m),
                    "model": mine_row.label, "model_config_hash": mine_row.config_hash,
                    "model_n": a.n, "model_mean": a.mean, "model_std": a.std,
                    "baseline": base_row.label, "baseline_config_hash": base_row.config_hash,
                    "baseline_n": b.n, "baseline_mean": b.mean, "baseline_std": b.std,
                    "diff": w.diff, "ci_low": w.low, "ci_high": w.high, "ci": CI_NAME, "df": w.df,
                    "p_value": w.p, "model_better": better,
                    # the leaderboard's notes on the pair: means over different seeds (tfn on 1111-1114, lmf on
                    # 1111-1112 said nothing of it); a small preset is a plumbing check, not the models; a bf16 or
                    # nondeterministic side gives other numbers for the same seeds
                    "seeds_note": "; ".join(n for n in seeds_note([mine_row, base_row])
                                            if not n.endswith(" in every row")),
                    "preset_note": "; ".join(preset_note([mine_row, base_row])),
                    **{f"{kind}_note": how_ran_note([mine_row, base_row], kind) for kind in HOW_RAN}})
    return rows
