"""Tables from the results store: leaderboards, the Table 4 ablation, comparisons.

    python run.py leaderboard --results results -d mosi --format md --paper
    python run.py compare -m atsuko --against tfn lmf -d mosi

Every table is built from one `ok` record per run identity (`sweep.ok_records`):

- one leaderboard per (dataset, aligned flag, data id). Synthetic and real data have
  different data ids, so they never share a table, and every title says which it is;
- rows are models; a model with runs under several config hashes gets one row per hash,
  labelled `model@hash` with the config keys that differ listed under the table;
- cells are mean ± sample standard deviation (ddof=1) over seeds, with n; the best mean of
  each column is marked, lower being better for MAE/Loss and higher for the rest;
- significance: each row gets a Welch t-test (`scipy.stats.ttest_ind(equal_var=False)`)
  over seeds against the best *other* model on the table's key metric (MAE for the
  regression datasets, macro-F1 for MIntRec, or `--key-metric`);
- the published rows of the seed paper (atsuko_spec.md §16) come in separate blocks,
  always labelled published, never as ours.

Display units: accuracies, F1, precision and recall in %, MAE/Corr/Loss as stored. The CSV
keeps the stored units (fractions) at full precision, and published rows are converted to
them too.
"""
from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import UsageError
from .metrics import lower_is_better, metric_family, metric_keys

RAW_METRICS = frozenset({"MAE", "Corr", "Loss", "loss"})      # shown as stored, not in %
HEADLINE = {"mosi": "MAE", "sims": "MAE", "mintrec": "f1"}
SIGNIFICANCE = 0.05
# Table 4 row order, (use_sbn, use_mcm)
ABLATION_ROWS = ((False, False), (True, False), (False, True), (True, True))

# The paper's columns per metric family, with our metric names. Acc2/F1 on MOSI/MOSEI are
# the non-zero (Non0) form: EMOE's metricsTop returns only that one and Atsuko inherits
# EMOE's trainer (reference/emoe_mintrec.md 1.7); the paper itself does not say.
PAPER_COLUMNS = {
    "mosi": (("Acc7", "Mult_acc_7"), ("Acc2", "Non0_acc_2"), ("F1", "Non0_F1_score"), ("MAE", "MAE")),
    "sims": (("Acc5", "Mult_acc_5"), ("Acc3", "Mult_acc_3"), ("Acc2", "Mult_acc_2"), ("F1", "F1_score")),
    "mintrec": (("Acc", "acc"), ("F1", "f1"), ("P", "precision"), ("R", "recall")),
}
PAPER_NAMES = {"TFN": "tfn", "LMF": "lmf", "MulT": "mult", "MISA": "misa", "Self-MM": "self_mm",
               "EMOE": "emoe", "Atsuko": "atsuko"}


def headline_metric(dataset: str) -> str:
    """The key metric for significance tests and progress lines: MAE, or macro-F1 for MIntRec."""
    return HEADLINE[metric_family(dataset)]


def to_display(metric: str, value: float) -> float:
    return value if metric in RAW_METRICS else value * 100


# --------------------------------------------------------------------------------------
# Published numbers (atsuko_spec.md §16), kept as printed there and parsed once
# --------------------------------------------------------------------------------------

_TABLE1 = """
EF-LSTM    | 33.7 75.3 75.2 1.386 | 47.4 78.2 77.9 0.620 || 31.0 73.6 74.5 1.420 | 46.3 76.1 75.9 0.594
LF-DNN     | 31.5 78.4 78.3 0.972 | 51.7 83.5 83.1 0.568 || 32.5 78.2 78.3 0.987 | 52.3 83.7 83.2 0.561
TFN        | 31.9 78.8 78.9 0.953 | 50.9 80.4 80.7 0.574 || 35.3 76.5 76.6 0.995 | 50.2 84.2 84.0 0.573
LMF        | 36.9 78.7 78.7 0.931 | 52.3 84.7 84.5 0.564 || 31.1 79.1 79.1 0.963 | 51.9 83.8 83.9 0.565
MFN        | 35.6 78.4 78.4 0.964 | 50.8 84.0 84.0 0.574 || 34.7 80.0 80.1 0.971 | 51.3 83.2 83.3 0.567
Graph-MFN  | 31.5 78.1 78.1 0.970 | 51.6 84.6 84.5 0.553 || 34.4 79.4 79.2 0.930 | 51.8 84.2 84.2 0.568
MulT       | 35.1 80.0 80.1 0.936 | 52.3 82.7 82.8 0.572 || 33.2 80.3 80.3 0.933 | 53.2 84.0 84.0 0.556
MISA       | 41.8 84.2 84.2 0.754 | 52.3 85.3 85.1 0.543 || 43.6 83.8 83.9 0.742 | 51.0 84.8 84.8 0.557
Self-MM    | 45.3 84.9 84.9 0.738 | 53.2 84.5 84.3 0.540 || 45.7 83.4 83.6 0.724 | 52.9 85.3 84.8 0.535
MMIM       | 45.8 84.6 84.5 0.717 | 50.1 83.6 83.5 0.580 || 45.9 83.4 83.4 0.777 | 52.6 81.5 81.3 0.578
DMD        | 46.2 83.2 83.2 0.721 | 52.4 84.8 84.7 0.546 || 46.7 84.0 84.0 0.721 | 53.1 84.7 84.7 0.536
EMOE       | 47.7 85.4 85.4 0.710 | 54.1 85.3 85.3 0.536 || 47.8 85.4 85.3 0.697 | 53.9 85.5 85.5 0.530
Atsuko     | 48.7 86.3 86.2 0.696 | 54.4 85.6 85.7 0.530 || 49.4 86.0 85.9 0.691 | 54.5 85.7 85.6 0.530
"""
_TABLE2 = """
TFN     39.30 65.12 78.38 78.62 65.36 | 52.55 72.21 80.14 80.14 71.26
LMF     40.53 64.68 77.77 77.88 65.19 | 47.79 64.90 74.18 73.88 65.19
Self-MM 41.53 65.47 80.04 80.44 66.87 | 52.77 72.61 79.69 76.76 70.46
BBFN    40.92 61.05 78.12 77.88 64.49 | 53.29 74.47 78.53 78.41 71.18
CENet   33.92 62.58 77.90 77.53 63.66 | 53.04 73.10 79.56 79.63 71.33
EMOE    42.23 65.43 79.64 79.69 66.75 | 53.71 71.08 80.85 80.76 71.60
Atsuko  44.42 66.74 80.41 80.21 67.95 | 54.16 72.15 81.17 81.12 72.15
"""
_TABLE3 = """
MAG-BERT 70.34/68.19/68.31/69.36
MulT 72.58/69.36/70.73/69.47
MISA 72.36/70.57/71.24/70.41
EMOE 72.58/70.73/72.08/70.86
Atsuko 74.16/71.22/72.93/70.86
"""
_TABLE4 = """
- - | 46.0 83.5 83.5 0.716 | 52.3 83.8 83.7 0.558
✓ - | 47.1 85.5 85.5 0.701 | 53.0 85.1 85.2 0.548
- ✓ | 46.9 85.4 85.3 0.700 | 53.8 85.2 85.1 0.535
✓ ✓ | 48.7 86.3 86.2 0.696 | 54.4 85.6 85.7 0.530
"""


def _numbers(text: str) -> list[str]:
    """Values as printed in the paper (kept as text so that 31.0 stays 31.0 on display)."""
    return text.replace("/", " ").split()


def _published() -> dict[tuple, tuple[str, list[tuple[str, list[float]]]]]:
    """(dataset, aligned or None) -> (source, [(paper method, printed values in PAPER_COLUMNS order)])."""
    tables: dict[tuple, tuple[str, list]] = {}

    def add(key, source, name, values):
        tables.setdefault(key, (source, []))[1].append((name, values))

    for line in _TABLE1.strip().splitlines():
        name, rest = line.split("|", 1)
        aligned_part, unaligned_part = rest.split("||")
        for aligned, part in ((True, aligned_part), (False, unaligned_part)):
            mosi, mosei = part.split("|")
            add(("mosi", aligned), "Table 1", name.strip(), _numbers(mosi))
            add(("mosei", aligned), "Table 1", name.strip(), _numbers(mosei))
    for line in _TABLE2.strip().splitlines():
        left, right = line.split("|")
        name, *sims = left.split()
        add(("sims", False), "Table 2", name, _numbers(" ".join(sims))[:4])
        add(("simsv2", False), "Table 2", name, _numbers(right)[:4])     # Avg (5th) is derived
    for line in _TABLE3.strip().splitlines():
        name, values = line.rsplit(" ", 1)
        add(("mintrec", None), "Table 3", name, _numbers(values))
    return tables


def _published_ablation() -> list[tuple[tuple[bool, bool], dict[str, list[str]]]]:
    rows = []
    for line in _TABLE4.strip().splitlines():
        flags, mosi, mosei = line.split("|")
        sbn, mcm = (f == "✓" for f in flags.split())
        rows.append(((sbn, mcm), {"mosi": _numbers(mosi), "mosei": _numbers(mosei)}))
    return rows


PUBLISHED = _published()
PUBLISHED_ABLATION = _published_ablation()


# --------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------

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
    from scipy import stats
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
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    with warnings.catch_warnings():     # scipy warns when one side is constant; the test still holds
        warnings.simplefilter("ignore", RuntimeWarning)
        test = stats.ttest_ind(a, b, equal_var=False)
    return Welch(diff, diff - half, diff + half, float(df), float(test.statistic), float(test.pvalue))


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


@dataclass
class Table:
    dataset: str
    aligned: bool
    data: str
    metrics: tuple[str, ...]
    key_metric: str
    rows: list[Row]
    notes: list[str] = field(default_factory=list)

    @property
    def synthetic(self) -> bool:
        return self.data.startswith("synthetic:")

    def title(self) -> str:
        kind = "synthetic data" if self.synthetic else "real data"
        return f"{self.dataset}, {'aligned' if self.aligned else 'unaligned'}: {kind} ({self.data})"


def _better(metric: str, a: float, b: float) -> bool:
    return a < b if lower_is_better(metric) else a > b


def _best_value(metric: str, values) -> float:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return math.nan
    return min(finite) if lower_is_better(metric) else max(finite)


def _config_notes(model: str, rows: list[Row]) -> list[str]:
    """For a model with several configs: the keys whose values differ, per row."""
    configs = [r.records[-1].get("config") or {} for r in rows]
    keys = sorted({k for c in configs for k in c if len({repr(x.get(k)) for x in configs}) > 1})
    notes = []
    for row, config in zip(rows, configs):
        diff = ", ".join(f"{k}={config.get(k)!r}" for k in keys) or "same stored config"
        notes.append(f"{row.label}: {diff}")
    return notes


def build_tables(records: list[dict], datasets=None, key_metric: str | None = None) -> list[Table]:
    """One leaderboard per (dataset, aligned, data id) from `ok` records (deduplicated first)."""
    from .sweep import ok_records
    groups: dict[tuple, list[dict]] = {}
    for r in ok_records(records):
        if datasets and r["dataset"] not in datasets:
            continue
        groups.setdefault((r["dataset"], bool(r["aligned"]), r["data"]), []).append(r)
    order = {"mosi": 0, "mosei": 1, "sims": 2, "simsv2": 3, "mintrec": 4}
    tables = []
    for (dataset, aligned, data), group in sorted(groups.items(), key=lambda kv: (
            kv[0][2].startswith("synthetic:"), order.get(kv[0][0], 9), kv[0][0], kv[0][1], kv[0][2])):
        metrics = metric_keys(dataset)
        key = key_metric or headline_metric(dataset)
        if key not in metrics:
            raise UsageError(f"--key-metric {key} is not a metric of {dataset}; choose one of {', '.join(metrics)}")
        by_row: dict[tuple, list[dict]] = {}
        for r in group:
            by_row.setdefault((r["model"], r["config_hash"]), []).append(r)
        hashes: dict[str, list[str]] = {}
        for model, chash in by_row:
            hashes.setdefault(model, []).append(chash)
        rows = []
        for (model, chash), rs in by_row.items():
            label = model if len(hashes[model]) == 1 else f"{model}@{chash[:8]}"
            cells = {m: Cell([float(r["metrics"][m]) for r in rs if r["metrics"].get(m) is not None])
                     for m in metrics}
            rows.append(Row(model, chash, label, rs, cells))
        rows.sort(key=lambda row: (_sort_key(key, row.cells[key].mean), row.label))
        table = Table(dataset, aligned, data, metrics, key, rows)
        for m in metrics:
            best = _best_value(m, [row.cells[m].mean for row in rows])
            for row in rows:
                if row.cells[m].mean == best:
                    row.best.add(m)
        for row in rows:
            others = [o for o in rows if o.model != row.model and o.cells[key].n]
            if others:
                other = others[0]
                for o in others[1:]:
                    if _better(key, o.cells[key].mean, other.cells[key].mean):
                        other = o
                row.against, row.test = other.label, welch(row.cells[key].values, other.cells[key].values)
        for model, model_hashes in hashes.items():
            if len(model_hashes) > 1:
                table.notes += _config_notes(model, [row for row in rows if row.model == model])
        tables.append(table)
    return tables


def _sort_key(metric: str, mean: float):
    if math.isnan(mean):
        return math.inf
    return mean if lower_is_better(metric) else -mean


# --------------------------------------------------------------------------------------
# Ablation (Table 4 layout) and published blocks
# --------------------------------------------------------------------------------------

@dataclass
class Ablation:
    aligned: bool
    synthetic: bool
    groups: list[Table]                   # one per dataset/data id, side by side
    rows: list[tuple[bool, bool]]
    chosen: dict[tuple, Row]              # (group index, flags) -> row
    notes: list[str] = field(default_factory=list)


def _flags(row: Row) -> tuple[bool, bool]:
    config = row.records[-1].get("config") or {}
    return bool(config.get("use_sbn")), bool(config.get("use_mcm"))


def build_ablations(tables: list[Table]) -> list[Ablation]:
    """Table 4 from the Atsuko family (flags read from each run's config), per aligned/data kind."""
    from .models.atsuko import ATSUKO_FAMILY   # here: the model package imports torch, the leaderboard need not
    ablations: dict[tuple, Ablation] = {}
    for table in tables:
        family = [row for row in table.rows if row.model in ATSUKO_FAMILY]
        if len({_flags(row) for row in family}) < 2:          # nothing to compare
            continue
        ab = ablations.setdefault((table.aligned, table.synthetic),
                                  Ablation(table.aligned, table.synthetic, [], [], {}))
        g = len(ab.groups)
        ab.groups.append(table)
        for flags in ABLATION_ROWS:
            candidates = [row for row in family if _flags(row) == flags]
            if not candidates:
                continue
            # Several configs with the same switches: show the one with the most seeds.
            row = max(candidates, key=lambda r: (len(r.records), max(x.get("started_at", "") for x in r.records)))
            ab.chosen[(g, flags)] = row
            if len(candidates) > 1:
                ab.notes.append(f"{table.dataset}: {len(candidates)} configs with SBN={flags[0]}, MCM={flags[1]}; "
                                f"showing {row.label} (n={len(row.records)}), the leaderboard has all")
    for ab in ablations.values():
        ab.rows = [flags for flags in ABLATION_ROWS if any(f == flags for _, f in ab.chosen)]
    return list(ablations.values())


@dataclass
class Published:
    dataset: str
    aligned: bool | None
    source: str
    columns: tuple[tuple[str, str], ...]           # (paper name, our metric)
    rows: list[tuple[str, list[str]]]              # (paper method, values as printed)


def published_blocks(tables: list[Table], datasets=None) -> list[Published]:
    """The paper's rows for every (dataset, aligned) shown, or asked for with -d."""
    wanted = list(dict.fromkeys((t.dataset, t.aligned) for t in tables))
    for dataset in datasets or ():
        if not any(d == dataset for d, _ in wanted):
            wanted += [(d, a) for d, a in PUBLISHED if d == dataset]
    blocks = []
    for dataset, aligned in wanted:
        key = (dataset, None) if (dataset, None) in PUBLISHED else (dataset, aligned)
        if key in PUBLISHED and all((b.dataset, b.aligned) != key for b in blocks):
            source, rows = PUBLISHED[key]
            blocks.append(Published(dataset, key[1], source, PAPER_COLUMNS[metric_family(dataset)], rows))
    return blocks


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------

def _num(metric: str, value: float) -> str:
    if value is None or math.isnan(value):
        return "–"
    value = to_display(metric, value)
    return f"{value:.4f}" if metric in RAW_METRICS else f"{value:.2f}"


def _cell_text(metric: str, cell: Cell, row_n: int, pm: str) -> str:
    if not cell.n:
        return "–"
    text = f"{_num(metric, cell.mean)}{pm}{_num(metric, cell.std)}"
    return text if cell.n == row_n else f"{text} (n={cell.n})"


def _arrow(metric: str) -> str:
    return "↓" if lower_is_better(metric) else "↑"


def _sig_text(row: Row) -> str:
    if row.test is None:
        return "–"
    if math.isnan(row.test.p):
        return f"vs {row.against}: n<2 or no spread"
    mark = " †" if row.test.p < SIGNIFICANCE else ""
    return f"vs {row.against}: p={row.test.p:.3g}{mark}"


def _md_table(header: list[str], lines: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(cells) + " |" for cells in lines]
    return "\n".join(out)


def _row_n(row: Row) -> int:
    return len(row.records)


def render_markdown(tables, ablations=(), published=(), published_ablation=False) -> str:
    parts = []
    for t in tables:
        header = ["model", "n"] + [f"{m} {_arrow(m)}" for m in t.metrics] + [f"Welch t-test on {t.key_metric}"]
        lines = []
        for row in t.rows:
            cells = []
            for m in t.metrics:
                text = _cell_text(m, row.cells[m], _row_n(row), " ± ")
                cells.append(f"**{text}**" if m in row.best else text)
            lines.append([row.label, str(_row_n(row))] + cells + [_sig_text(row)])
        raw = sorted(RAW_METRICS & set(t.metrics))
        units = "accuracies/F1 in %" + (f", {', '.join(raw)} as is" if raw else "")
        parts.append(f"### {t.title()}\n\n"
                     f"Mean ± sample std (ddof=1) over seeds; {units}; **bold** = best in column (↓ lower is better, ↑ higher); † = Welch p < "
                     f"{SIGNIFICANCE} against the best other model on {t.key_metric}.\n\n"
                     + _md_table(header, lines)
                     + "".join(f"\n\n- {note}" for note in t.notes))
    for ab in ablations:
        parts.append(_md_ablation(ab))
    for block in published:
        header = ["method (published)"] + [f"{name} ({metric})" for name, metric in block.columns]
        lines = [[f"{name} (published)"] + list(values) for name, values in block.rows]
        setting = "" if block.aligned is None else (", aligned" if block.aligned else ", unaligned")
        parts.append(f"### Published by the seed paper: {block.dataset}{setting} ({block.source}; real data, "
                     f"not our runs)\n\n" + _md_table(header, lines))
    if published_ablation:
        cols = PAPER_COLUMNS["mosi"]
        header = ["SBN", "MCM"] + [f"{d} {name}" for d in ("mosi", "mosei") for name, _ in cols]
        lines = [["✓" if sbn else "-", "✓" if mcm else "-"] + [v for d in ("mosi", "mosei") for v in values[d]]
                 for (sbn, mcm), values in PUBLISHED_ABLATION]
        parts.append("### Published by the seed paper: ablation (Table 4; aligned, real data, not our runs)\n\n"
                     + _md_table(header, lines))
    return "\n\n".join(parts) + "\n"


def _md_ablation(ab: Ablation) -> str:
    header = ["SBN", "MCM", "model"]
    for t in ab.groups:
        header += [f"{t.dataset} n"] + [f"{t.dataset} {name} {_arrow(m)}" for name, m in PAPER_COLUMNS[metric_family(t.dataset)]]
    best = _ablation_best(ab)
    lines = []
    for flags in ab.rows:
        names = sorted({ab.chosen[(g, flags)].model for g in range(len(ab.groups)) if (g, flags) in ab.chosen})
        cells = ["✓" if flags[0] else "-", "✓" if flags[1] else "-", ", ".join(names)]
        for g, t in enumerate(ab.groups):
            row = ab.chosen.get((g, flags))
            cells.append(str(_row_n(row)) if row else "–")
            for _, m in PAPER_COLUMNS[metric_family(t.dataset)]:
                text = _cell_text(m, row.cells[m], _row_n(row), " ± ") if row else "–"
                cells.append(f"**{text}**" if row and (g, flags, m) in best else text)
        lines.append(cells)
    kind = "synthetic data" if ab.synthetic else "real data"
    data = "; ".join(f"{t.dataset}: {t.data}" for t in ab.groups)
    return (f"### Ablation (Table 4 layout), {'aligned' if ab.aligned else 'unaligned'}: {kind} ({data})\n\n"
            "Acc2/F1 on MOSI/MOSEI are Non0 (EMOE's convention); mean ± sample std over seeds; **bold** = best.\n\n"
            + _md_table(header, lines) + "".join(f"\n\n- {note}" for note in ab.notes))


def _ablation_best(ab: Ablation) -> set:
    best = set()
    for g, t in enumerate(ab.groups):
        for _, m in PAPER_COLUMNS[metric_family(t.dataset)]:
            rows = {flags: ab.chosen[(g, flags)] for flags in ab.rows if (g, flags) in ab.chosen}
            value = _best_value(m, [r.cells[m].mean for r in rows.values()])
            best |= {(g, flags, m) for flags, r in rows.items() if r.cells[m].mean == value}
    return best


def _tex(text: str) -> str:
    return (str(text).replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%")
            .replace("&", r"\&").replace("#", r"\#").replace("±", r"$\pm$").replace("†", r"$^\dagger$")
            .replace("✓", r"\checkmark").replace("–", "--").replace("↓", r"$\downarrow$").replace("↑", r"$\uparrow$")
            .replace("<", r"$<$").replace(">", r"$>$"))        # a bare < prints as ¡ in OT1 fonts


def _latex_table(caption: str, header: list[str], lines: list[list[str]]) -> str:
    out = [r"\begin{table}[t]", r"\centering", f"\\caption{{{_tex(caption)}}}",
           r"\begin{tabular}{l" + "c" * (len(header) - 1) + "}", r"\toprule",
           " & ".join(_tex(h) for h in header) + r" \\", r"\midrule"]
    out += [" & ".join(lines_cell for lines_cell in cells) + r" \\" for cells in lines]
    out += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(out)


def render_latex(tables, ablations=(), published=(), published_ablation=False) -> str:
    parts = []
    for t in tables:
        header = ["Model", "n"] + [f"{m} {_arrow(m)}" for m in t.metrics] + [f"Welch ({t.key_metric})"]
        lines = []
        for row in t.rows:
            cells = [_tex(row.label), str(_row_n(row))]
            for m in t.metrics:
                text = _tex(_cell_text(m, row.cells[m], _row_n(row), " ± "))
                cells.append(f"\\textbf{{{text}}}" if m in row.best else text)
            cells.append(_tex(_sig_text(row)))
            lines.append(cells)
        notes = "".join(f" {note}." for note in t.notes)        # which config each labelled row is
        parts.append(_latex_table(f"{t.title()}. Mean ± sample std over seeds; accuracies/F1 in %; bold: best; "
                                  f"†: Welch p < {SIGNIFICANCE} vs the best other model.{notes}", header, lines))
    for ab in ablations:
        header = ["SBN", "MCM"]
        for t in ab.groups:
            header += [f"{t.dataset} {name}" for name, _ in PAPER_COLUMNS[metric_family(t.dataset)]]
        best = _ablation_best(ab)
        lines = []
        for flags in ab.rows:
            cells = [_tex("✓" if flags[0] else "-"), _tex("✓" if flags[1] else "-")]
            for g, t in enumerate(ab.groups):
                row = ab.chosen.get((g, flags))
                for _, m in PAPER_COLUMNS[metric_family(t.dataset)]:
                    text = _tex(_cell_text(m, row.cells[m], _row_n(row), " ± ") if row else "–")
                    cells.append(f"\\textbf{{{text}}}" if row and (g, flags, m) in best else text)
            lines.append(cells)
        kind = "synthetic data" if ab.synthetic else "real data"
        parts.append(_latex_table(f"Ablation, {'aligned' if ab.aligned else 'unaligned'}, {kind}.", header, lines))
    for block in published:
        header = ["Method (published)"] + [name for name, _ in block.columns]
        lines = [[_tex(name)] + list(values) for name, values in block.rows]
        setting = "" if block.aligned is None else (", aligned" if block.aligned else ", unaligned")
        parts.append(_latex_table(f"Published by the seed paper ({block.source}), {block.dataset}{setting}; real "
                                  f"data, not our runs.", header, lines))
    if published_ablation:
        header = ["SBN", "MCM"] + [f"{d} {name}" for d in ("mosi", "mosei") for name, _ in PAPER_COLUMNS["mosi"]]
        lines = [[_tex("✓" if s else "-"), _tex("✓" if m else "-")] + list(vals["mosi"]) + list(vals["mosei"])
                 for (s, m), vals in PUBLISHED_ABLATION]
        parts.append(_latex_table("Published by the seed paper (Table 4); not our runs.", header, lines))
    return "\n\n".join(parts) + "\n"


def _stored(metric: str, printed: str) -> float:
    """A published value in the store's units: percentages back to fractions."""
    return float(printed) if metric in RAW_METRICS else round(float(printed) / 100, 6)   # 74.16 -> 0.7416


def _stat_columns(metric: str, cell: Cell | None, best: bool) -> dict:
    if cell is None:
        return {}
    return {f"{metric}_mean": cell.mean if cell.n else math.nan, f"{metric}_std": cell.std,
            f"{metric}_n": cell.n, f"{metric}_best": int(best)}


def csv_frame(tables, ablations=(), published=(), published_ablation=False):
    """Everything in one long CSV: a `table` column says leaderboard, ablation or published."""
    import pandas as pd
    rows = []
    for t in tables:
        for row in t.rows:
            out = {"table": "leaderboard", "dataset": t.dataset, "aligned": t.aligned, "data": t.data,
                   "data_kind": "synthetic" if t.synthetic else "real", "source": "ours", "model": row.model,
                   "label": row.label, "config_hash": row.config_hash, "n": _row_n(row)}
            for m in t.metrics:
                out.update(_stat_columns(m, row.cells[m], m in row.best))
            out.update(key_metric=t.key_metric, ttest_against=row.against,
                       ttest_t=row.test.t if row.test else math.nan, ttest_p=row.test.p if row.test else math.nan)
            rows.append(out)
    for ab in ablations:
        best = _ablation_best(ab)
        for (g, flags), row in ab.chosen.items():
            t = ab.groups[g]
            out = {"table": "ablation", "dataset": t.dataset, "aligned": t.aligned, "data": t.data,
                   "data_kind": "synthetic" if t.synthetic else "real", "source": "ours", "model": row.model,
                   "label": row.label, "config_hash": row.config_hash, "n": _row_n(row),
                   "use_sbn": flags[0], "use_mcm": flags[1]}
            for _, m in PAPER_COLUMNS[metric_family(t.dataset)]:
                out.update(_stat_columns(m, row.cells[m], (g, flags, m) in best))
            rows.append(out)
    for block in published:
        for name, values in block.rows:
            out = {"table": "published", "dataset": block.dataset, "aligned": block.aligned, "data": "",
                   "data_kind": "real", "source": f"published ({block.source})",
                   "model": PAPER_NAMES.get(name, ""), "label": f"{name} (published)"}
            out.update({f"{m}_mean": _stored(m, v) for (_, m), v in zip(block.columns, values)})
            rows.append(out)
    if published_ablation:
        for (sbn, mcm), values in PUBLISHED_ABLATION:
            for dataset in ("mosi", "mosei"):
                out = {"table": "published ablation", "dataset": dataset, "aligned": True, "data": "",
                       "data_kind": "real", "source": "published (Table 4)", "model": "",
                       "label": f"SBN={sbn} MCM={mcm} (published)", "use_sbn": sbn, "use_mcm": mcm}
                out.update({f"{m}_mean": _stored(m, v) for (_, m), v in zip(PAPER_COLUMNS["mosi"], values[dataset])})
                rows.append(out)
    return pd.DataFrame(rows)


def _known_datasets(datasets):
    """`-d` names, lower-cased; an unknown one is an error (it would silently show nothing)."""
    if not datasets:
        return datasets
    from .config import datasets_table
    known = datasets_table()
    names = [str(d).lower() for d in datasets]
    unknown = [d for d in names if d not in known]
    if unknown:
        raise UsageError(f"unknown dataset {unknown[0]!r}; known: {', '.join(known)}")
    return names


def leaderboard(results, *, datasets=None, fmt="md", paper=False, key_metric=None) -> str:
    """The leaderboard text (md, csv or latex) for the results store in `results`."""
    from .results import RUNS_FILE, read_records
    if fmt not in ("md", "csv", "latex"):
        raise UsageError(f"--format must be md, csv or latex, got {fmt!r}")
    datasets = _known_datasets(datasets)
    records = read_records(Path(results))
    tables = build_tables(records, datasets, key_metric)
    if not tables and not paper:
        what = f" for {', '.join(datasets)}" if datasets else ""
        raise UsageError(f"no ok runs{what} in {Path(results) / RUNS_FILE}")
    ablations = build_ablations(tables)
    published = published_blocks(tables, datasets) if paper else []
    show_ablation = paper and (not datasets or {"mosi", "mosei"} & set(datasets))
    if fmt == "csv":
        buffer = io.StringIO()
        frame = csv_frame(tables, ablations, published, bool(show_ablation))
        for column in [c for c in frame.columns if c == "n" or c.endswith(("_n", "_best"))]:
            frame[column] = frame[column].astype("Int64")      # counts stay integers beside published rows
        frame.to_csv(buffer, index=False)
        return buffer.getvalue()
    render = render_markdown if fmt == "md" else render_latex
    return render(tables, ablations, published, bool(show_ablation))


# --------------------------------------------------------------------------------------
# Comparison CSVs
# --------------------------------------------------------------------------------------

CI_NAME = "Welch 95%"


def compare(results, model: str, against, datasets=None, warn=print) -> list[Path]:
    """Write `<results>/comparison_<dataset>[-synthetic].csv`: per metric, model minus each
    baseline, with the Welch 95% confidence interval of the difference and its p-value."""
    import pandas as pd
    from .results import RUNS_FILE, read_records
    results = Path(results)
    datasets = _known_datasets(datasets)
    tables = build_tables(read_records(results), datasets)
    mine = [t for t in tables if any(r.model == model for r in t.rows)]
    for dataset in datasets or ():
        if not any(t.dataset == dataset for t in mine):
            raise UsageError(f"no ok runs of {model} on {dataset} in {results / RUNS_FILE}")
    if not mine:
        raise UsageError(f"no ok runs of {model} in {results / RUNS_FILE}")
    files: dict[str, list[dict]] = {}
    for t in mine:
        setting = f"{t.dataset} {'aligned' if t.aligned else 'unaligned'} ({t.data})"
        for baseline in against:
            if baseline == model:
                raise UsageError(f"--against lists {model}, the model being compared")
            if not any(r.model == baseline for r in t.rows):
                warn(f"compare: no ok runs of {baseline} on {setting}; skipped")
        name = f"comparison_{t.dataset}{'-synthetic' if t.synthetic else ''}.csv"
        rows = files.setdefault(name, [])
        for mine_row in (r for r in t.rows if r.model == model):
            for base_row in (r for r in t.rows if r.model in against):
                for m in t.metrics:
                    a, b = mine_row.cells[m], base_row.cells[m]
                    w = welch(a.values, b.values)
                    better = "" if math.isnan(w.diff) or w.diff == 0 else _better(m, a.mean, b.mean)
                    rows.append({
                        "dataset": t.dataset, "aligned": t.aligned, "data": t.data,
                        "data_kind": "synthetic" if t.synthetic else "real", "metric": m,
                        "higher_is_better": not lower_is_better(m),
                        "model": mine_row.label, "model_config_hash": mine_row.config_hash,
                        "model_n": a.n, "model_mean": a.mean, "model_std": a.std,
                        "baseline": base_row.label, "baseline_config_hash": base_row.config_hash,
                        "baseline_n": b.n, "baseline_mean": b.mean, "baseline_std": b.std,
                        "diff": w.diff, "ci_low": w.low, "ci_high": w.high, "ci": CI_NAME, "df": w.df,
                        "p_value": w.p, "model_better": better})
    written = []
    for name, rows in files.items():
        if not rows:
            continue
        path = results / name
        pd.DataFrame(rows).to_csv(path, index=False)
        written.append(path)
    if not written:
        raise UsageError(f"none of {', '.join(against)} has ok runs where {model} has; nothing to compare")
    return written
