"""`run.py verify`: the store's real-data runs against the published numbers, cell by cell.

A cell is (dataset and setting, model row, paper column): ours is the mean ± sample std (ddof=1)
over seeds in the paper's units (accuracies and F1 in %, MAE as is), the published value is the
seed paper's (published.py), delta = ours - published, and the cell agrees when |delta| <= 2 std.
Where the paper misprints a value (published.ERRATA), the published value judged is the original: a
faithful reproduction of it failed against the misprint. The table shows both, the footnote the original's source.
A row over one seed has no std, so none of its cells can agree. Only plain-condition runs on
real data count, on the file MMSA publishes where datasets.yaml has its sha256, and where it has none on a file
of the real split sizes (real_data.py): numbers on synthetic data or on another file are not the paper's experiment.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import published_sha256
from ..data.stamp import data_kind
from ..errors import UsageError
from ..metrics.names import metric_family
from .published import ERRATA, ERRATUM_MARK, PAPER_COLUMNS, PAPER_NAMES, PUBLISHED, Erratum, erratum_note, published_key
from .cells import fixed_text, places_of, to_display
from ..results import StoredCell
from .tables import Table, build_tables

WITHIN_STDS = 2.0
JUDGED = "verify judges against the original"      # an erratum's footnote: what verify does with it


@dataclass
class VerifyCell:
    dataset: str
    aligned: bool
    data_id: str
    model: str                 # the row's label
    column: str                # the paper's column name (Acc2, MAE, ...)
    metric: str                # ours
    n: int
    mean: float                # paper units
    std: float
    published: float           # the value judged against: the original where the paper misprints it
    source: str
    erratum: str = ""               # the footnote of a misprinted published value (published.ERRATA), else ""
    printed: float = math.nan       # the erratum's value as the paper prints it

    @property
    def delta(self) -> float:
        return self.mean - self.published

    @property
    def agrees(self) -> bool:
        return self.within(self.published)

    def within(self, published: float) -> bool:
        return not math.isnan(self.std) and abs(self.mean - published) <= WITHIN_STDS * self.std


def _published_rows(key: tuple):
    """(source, our model -> (paper method, printed values)) of the paper's rows for a table's setting (its
    `published_key`)."""
    if key not in PUBLISHED:
        return None, {}
    source, rows = PUBLISHED[key]
    return source, {PAPER_NAMES[name]: (name, values) for name, values in rows if name in PAPER_NAMES}


def verify_cells(tables: list[Table]) -> tuple[list[VerifyCell], list[str]]:
    """Every cell with a published counterpart, and notes on rows that have none."""
    cells, notes = [], []
    for t in tables:
        key = published_key(t.dataset, t.aligned)
        source, published = _published_rows(key)
        for row in t.rows:
            if row.condition:
                continue
            if row.model not in published:
                notes.append(f"{t.dataset} {'aligned' if t.aligned else 'unaligned'}: {row.label} has no published "
                             f"row{f' in {source}' if source else ''}; not verified")
                continue
            name, values = published[row.model]
            for (column, metric), printed in zip(PAPER_COLUMNS[metric_family(t.dataset)], values):
                cell = row.cells[metric]
                erratum: Erratum | None = ERRATA.get((*key, name, column))
                cells.append(VerifyCell(t.dataset, t.aligned, t.data_id, row.label, column, metric, cell.n,
                                        to_display(metric, cell.mean), to_display(metric, cell.std),
                                        float(erratum.original if erratum else printed), source,
                                        erratum_note(key, name, column, JUDGED) if erratum else "",
                                        float(printed) if erratum else math.nan))
    return cells, notes


def _not_the_published_file(table: Table) -> str | None:
    """Why the table's runs are not on MMSA's file (a note), or None. The paper's numbers are on that file: runs on
    another (`--feature-path my.pkl -d mosi`, a modified copy) were verified as if they were the paper's experiment."""
    if data_kind(table.data_id, table.dataset, table.aligned) != "not published":
        return None
    published = published_sha256(table.dataset, table.aligned)
    return (f"{table.dataset} {'aligned' if table.aligned else 'unaligned'}: runs on {table.data_id}, not the file "
            f"MMSA publishes (sha256:{published}); not verified")


def verify(records: list[dict], datasets=None) -> tuple[list[VerifyCell], list[str]]:
    """The cells of the real-data runs in `records` on MMSA's published files (any real file of a dataset
    whose file has no published sha256); a UsageError when there are none to verify."""
    tables = build_tables(records, datasets)
    real = [t for t in tables if not t.synthetic]
    what = f" of {', '.join(datasets)}" if datasets else ""
    if not real:
        if tables:
            raise UsageError(f"verify compares runs on the real feature files with published numbers; the runs"
                             f"{what} in this store are on synthetic data only")
        raise UsageError(f"no ok runs{what} to verify in this store")

    def why_not(table: Table) -> str | None:
        published_note = _not_the_published_file(table)
        if published_note or not table.not_real:
            return published_note
        return (f"{table.dataset} {'aligned' if table.aligned else 'unaligned'}: runs on {table.data_id}, "
                f"{table.not_real}; not verified")
    others = [note for note in map(why_not, real) if note]
    published = [t for t in real if not why_not(t)]
    if not published:
        raise UsageError(f"verify compares runs on MMSA's feature files with published numbers; the real-data runs"
                         f"{what} in this store are on other files: {'; '.join(others)}")
    cells, notes = verify_cells(published)
    notes += others
    if len(real) < len(tables):
        notes.append(f"runs on synthetic data ({len(tables) - len(real)} table(s)) are not verified")
    if not cells:
        raise UsageError("none of the real-data runs has a published counterpart (published.py); nothing to verify")
    return cells, notes


def _num(value: float, metric: str) -> str:      # `value` in the paper's units already: cells' text, unscaled
    if math.isnan(value):
        return "–"
    return fixed_text(value, places_of(metric))


def _signed(value: float, metric: str) -> str:
    return fixed_text(value, places_of(metric), signed=True)


def _verdict(cell: VerifyCell, published: float) -> str:
    """Whether `cell` is within 2 std of `published`, as its row says it (and an erratum's footnote of the printed
    value: "no" there beside the row's "no std (n=1)" read as a judgement the row refuses to make)."""
    if math.isnan(cell.std):
        return "no std (n=1)"
    return "yes" if cell.within(published) else "NO"


def render_verify(cells: list[VerifyCell], notes: list[str]) -> str:
    header = ["dataset", "model", "column", "n", "ours (mean ± std)", "published", "delta", "within 2 std"]
    lines = []
    for c in cells:
        setting = f"{c.dataset} {'aligned' if c.aligned else 'unaligned'}"
        verdict = _verdict(c, c.published)
        published = _num(c.published, c.metric) + (f" (printed {_num(c.printed, c.metric)} {ERRATUM_MARK})"
                                                    if c.erratum else "")
        lines.append([setting, c.model, f"{c.column} ({c.metric})", str(c.n),
                      StoredCell(c.n, c.mean, c.std).text(lambda v: _num(v, c.metric)), published,
                      _signed(c.delta, c.metric), verdict])
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    out += ["  ".join(v.ljust(w) for v, w in zip(line, widths)) for line in lines]
    sources = ", ".join(dict.fromkeys(c.source for c in cells))
    agree = sum(c.agrees for c in cells)
    # A misprinted published value: its footnote, and ours against the printed value too (the verdict is the
    # original's, as the table shows it).
    out += [f"{ERRATUM_MARK} {c.erratum}; against the printed "
            f"{_num(c.printed, c.metric)}, {c.model} is {_signed(c.mean - c.printed, c.metric)}, within "
            f"{WITHIN_STDS:g} std: {_verdict(c, c.printed)}" for c in cells if c.erratum]
    out += [f"- {note}" for note in notes]
    out.append(f"verify: {agree} of {len(cells)} cells within {WITHIN_STDS:g} std of the published value "
               f"({sources}; accuracies and F1 in %, MAE as is)")
    return "\n".join(out) + "\n"
