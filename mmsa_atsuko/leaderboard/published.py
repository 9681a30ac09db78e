"""The seed paper's published tables (docs/atsuko.md §16), kept as printed there and parsed once, and the cells
where the paper misprints a table whose row it otherwise matches cell for cell (`ERRATA`).

Published rows are never mixed with ours: the renderers put them in blocks of their own,
labelled published. A cell with an erratum keeps its printed value; `leaderboard --paper` and `verify` mark it
(`ERRATUM_MARK`) and say in a footnote what the original prints and where (`erratum_note`); verify judges it
against the original.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..metrics.names import metric_family

# The paper's columns per metric family, with our metric names. Acc2/F1 on MOSI/MOSEI are
# the non-zero (Non0) form: EMOE's metricsTop returns only that one and Atsuko inherits
# EMOE's trainer (fuyyyyy/EMOE:trains/utils/metricsTop.py); the paper itself does not say.
PAPER_COLUMNS = {
    "mosi": (("Acc7", "Mult_acc_7"), ("Acc2", "Non0_acc_2"), ("F1", "Non0_F1_score"), ("MAE", "MAE")),
    "sims": (("Acc5", "Mult_acc_5"), ("Acc3", "Mult_acc_3"), ("Acc2", "Mult_acc_2"), ("F1", "F1_score")),
    "mintrec": (("Acc", "acc"), ("F1", "f1"), ("P", "precision"), ("R", "recall")),
}
# Where every published number comes from: the seed paper, named in every block and CSV row that shows one (a CSV
# passed on without the README said only "Table 1"). Its baseline rows are as it prints them; it is the only
# source shipped, not MMSA's, EMOE's or MIntRec's own papers.
SEED_PAPER = "the Atsuko paper, Complementarity-Supervised Spectral-Band Routing for Multimodal Emotion Recognition"
ABLATION_SOURCE = f"{SEED_PAPER}, Table 4"
PAPER_NAMES = {"TFN": "tfn", "LMF": "lmf", "MulT": "mult", "MISA": "misa", "Self-MM": "self_mm",
               "EMOE": "emoe", "Atsuko": "atsuko"}

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


@dataclass(frozen=True)
class Erratum:
    printed: str            # the seed paper's value, which its tables keep
    original: str           # what the table whose row the paper's matches in every other cell prints
    source: str             # that table, where it can be read


ERRATUM_MARK = "‡"
# (dataset, aligned or None as PUBLISHED keys it, paper method, paper column) -> the misprint. Checked against
# thuiar/MMSA's results/result-stat.md (at 698bae0, "Update the results on the SIMSv2 dataset", 2023-12-27): Table
# 2's TFN, LMF, Self-MM and CENet rows on SIMS and SIMS v2 are its rows (Mult_acc_5, Mult_acc_3, Mult_acc_2,
# F1_score), cell for cell, but for Self-MM's SIMS v2 F1, a digit off. The paper's own Avg for that row, 70.46, is
# the mean with 76.76 (with 79.76 it is 71.21), so the misprint is the paper's, not ours. BBFN and EMOE are not in
# that file; Tables 1 and 3 come from no table we could read (MIntRec's own results.md prints other MAG-BERT, MulT
# and MISA numbers in every cell, which is another source, not a misprint). Table 2's Avg column, not shipped, is off
# the mean of its row's four cells for LMF (65.19, mean 65.22) and CENet (63.66, mean 62.98) on SIMS.
ERRATA = {
    ("simsv2", False, "Self-MM", "F1"): Erratum(
        "76.76", "79.76", "thuiar/MMSA results/result-stat.md at commit 698bae0, SIMSv2, self_mm, F1_score"),
}


def published_key(dataset: str, aligned: bool | None) -> tuple:
    """PUBLISHED's key for a table of `dataset`: MIntRec's rows are for either setting (aligned None)."""
    return (dataset, None) if (dataset, None) in PUBLISHED else (dataset, aligned)


def erratum_note(key: tuple, method: str, column: str, use: str = "kept as printed") -> str:
    """The footnote of a marked cell, after its mark: what the paper prints, what the original prints, and where,
    then `use`, what the table does with it (the leaderboard keeps the printed value, verify judges the original)."""
    e = ERRATA[(*key, method, column)]
    setting = "" if key[1] is None else (" aligned" if key[1] else " unaligned")
    return (f"{key[0]}{setting} {method} {column}: the seed paper prints {e.printed}, a misprint: the table its row "
            f"matches in every other cell prints {e.original} ({e.source}); {use}")


def _numbers(text: str) -> list[str]:
    """Values as printed in the paper (kept as text so that 31.0 stays 31.0 on display)."""
    return text.replace("/", " ").split()


def _published() -> dict[tuple, tuple[str, list[tuple[str, list[str]]]]]:
    """(dataset, aligned or None) -> (source, [(paper method, printed values in PAPER_COLUMNS order)])."""
    tables: dict[tuple, tuple[str, list]] = {}

    def add(key, source, name, values):
        tables.setdefault(key, (source, []))[1].append((name, values))

    for line in _TABLE1.strip().splitlines():
        name, rest = line.split("|", 1)
        aligned_part, unaligned_part = rest.split("||")
        for aligned, part in ((True, aligned_part), (False, unaligned_part)):
            mosi, mosei = part.split("|")
            add(("mosi", aligned), f"{SEED_PAPER}, Table 1", name.strip(), _numbers(mosi))
            add(("mosei", aligned), f"{SEED_PAPER}, Table 1", name.strip(), _numbers(mosei))
    for line in _TABLE2.strip().splitlines():
        left, right = line.split("|")
        name, *sims = left.split()
        add(("sims", False), f"{SEED_PAPER}, Table 2", name, _numbers(" ".join(sims))[:4])
        add(("simsv2", False), f"{SEED_PAPER}, Table 2", name, _numbers(right)[:4])     # Avg (5th) is derived
    for line in _TABLE3.strip().splitlines():
        name, values = line.rsplit(" ", 1)
        add(("mintrec", None), f"{SEED_PAPER}, Table 3", name, _numbers(values))
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


@dataclass
class Published:
    dataset: str
    aligned: bool | None
    source: str
    columns: tuple[tuple[str, str], ...]           # (paper name, our metric)
    rows: list[tuple[str, list[str]]]              # (paper method, values as printed)

    def marked_rows(self) -> tuple[list[tuple[str, list[str]]], list[str]]:
        """The rows with each erratum's cell marked ("76.76 ‡"), and the footnotes of the marks."""
        key, rows, notes = (self.dataset, self.aligned), [], []
        for name, values in self.rows:
            cells = []
            for (column, _), value in zip(self.columns, values):
                marked = (*key, name, column) in ERRATA
                cells.append(f"{value} {ERRATUM_MARK}" if marked else value)
                notes += [f"{ERRATUM_MARK} {erratum_note(key, name, column)}"] if marked else []
            rows.append((name, cells))
        return rows, notes


def published_blocks(tables: list, datasets=None) -> list[Published]:
    """The paper's rows for every (dataset, aligned) of the leaderboard `tables`, or asked for with -d."""
    wanted = list(dict.fromkeys((t.dataset, t.aligned) for t in tables))
    for dataset in datasets or ():
        if not any(d == dataset for d, _ in wanted):
            wanted += [(d, a) for d, a in PUBLISHED if d == dataset]
    blocks = []
    for dataset, aligned in wanted:
        key = published_key(dataset, aligned)
        if key in PUBLISHED and all((b.dataset, b.aligned) != key for b in blocks):
            source, rows = PUBLISHED[key]
            blocks.append(Published(dataset, key[1], source, PAPER_COLUMNS[metric_family(dataset)], rows))
    return blocks
