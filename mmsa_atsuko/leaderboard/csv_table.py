"""`leaderboard --format csv`: every table in one long frame, one line per row, for a program to read.

Unlike the printed tables (render.py, cells.py), the CSV keeps the store's units (fractions) at full
precision, and published rows are converted to them too. A `table` column says leaderboard, ablation,
published or published ablation; `data_kind` says synthetic, real, not published, yours or not real
(`Table.kind`); each line carries what the printed notes say of its row (its code versions, run labels, model
selection, seeds, precision, kernels and device).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..metrics.names import metric_family, table_order
from ..results import code_versions, how_ran_cells, model_selection
from .cells import RAW_METRICS, column_groups
from .notes import overrides_text, row_run_labels
from .published import ABLATION_SOURCE, ERRATA, PAPER_COLUMNS, PAPER_NAMES, PUBLISHED_ABLATION, erratum_note
from .stats import Cell
from .tables import Row

if TYPE_CHECKING:
    import pandas as pd


def _stored(metric: str, printed: str) -> float:
    """A published value in the store's units: percentages back to fractions."""
    return float(printed) if metric in RAW_METRICS else round(float(printed) / 100, 6)   # 74.16 -> 0.7416


def _stat_columns(metric: str, cell: Cell | None, best: bool) -> dict:
    if cell is None:
        return {}
    return {f"{metric}_mean": cell.mean if cell.n else math.nan, f"{metric}_std": cell.std,
            f"{metric}_n": cell.n, f"{metric}_best": int(best)}


def row_trace(row: Row) -> dict:
    """What finds a row's runs and code again: its code versions (`code`, `results.code_versions`) and its seeds
    (space-separated), which with its model, config hash and data id name each of its runs in runs.jsonl. The
    leaderboard's CSV and compare's carry them."""
    return {"code": code_versions(row.records), "seeds": " ".join(map(str, sorted({r["seed"] for r in row.records})))}


def _protocol(row: Row) -> dict:
    """A row's code versions (`code`) and run labels, its model selection, its seeds (space-separated), its trainer
    keys set apart from its preset (`trainer_overrides`, notes.overrides_text), and how they ran: `run_precision`,
    `run_kernels` and `run_device` (`fp32`, or with counts where its seeds mix them, `3 fp32, 2 bf16`), as the
    records say them and as the MMSA CSV's cells do (`results.how_ran_cells`; a CPU row's kernels too, of which the
    Markdown notes say nothing): per CSV row, for a leaderboard row and a Table 4 row alike. Named `run_`, apart from
    the metric columns (MIntRec's `precision_mean`)."""
    trace = row_trace(row)
    return {"code": trace["code"], "run_label": row_run_labels(row),
            "model_selection": model_selection(row.records[-1]), "seeds": trace["seeds"],
            "trainer_overrides": overrides_text(row.records[-1]),
            **how_ran_cells(row.records)}


def csv_frame(tables, ablations=(), published=(), published_ablation=False) -> pd.DataFrame:
    """Everything in one long CSV: a `table` column says leaderboard, ablation or published."""
    import pandas as pd     # here: the Markdown and LaTeX tables need none of it (about 0.35 s to import)
    rows = []
    for t in tables:
        for row in t.rows:
            out = {"table": "leaderboard", "dataset": t.dataset, "aligned": t.aligned, "data": t.data_id,
                   "data_kind": t.kind(), "source": "ours", "model": row.model,
                   "label": row.label, "config_hash": row.config_hash, "condition": row.condition, "n": row.n,
                   **_protocol(row)}
            for m in table_order(t.metrics):
                out.update(_stat_columns(m, row.cells[m], m in row.best))
            out.update(key_metric=t.key_metric, ttest_against=row.against,
                       ttest_t=row.test.t if row.test else math.nan, ttest_p=row.test.p if row.test else math.nan)
            rows.append(out)
    for ab in ablations:
        for (g, flags), row in ab.chosen.items():
            t = ab.groups[g]
            out = {"table": "ablation", "dataset": t.dataset, "aligned": t.aligned, "data": t.data_id,
                   "data_kind": t.kind(), "source": "ours", "model": row.model,
                   "label": row.label, "config_hash": row.config_hash, "n": row.n,
                   "use_sbn": flags[0], "use_mcm": flags[1], **_protocol(row)}
            # --paper's columns, Has0/Non0 pairs and all: the Markdown and LaTeX blocks print the Has0 halves, and
            # the CSV holds every number a rendered table shows (its ablation rows had no Has0_* values).
            for group in column_groups([m for _, m in PAPER_COLUMNS[metric_family(t.dataset)]], paper=True):
                for m in group:
                    out.update(_stat_columns(m, row.cells.get(m), (g, flags, m) in ab.best))
            rows.append(out)
    for block in published:
        for name, values in block.rows:
            out = {"table": "published", "dataset": block.dataset, "aligned": block.aligned, "data": "",
                   "data_kind": "real", "source": f"published ({block.source})",
                   "model": PAPER_NAMES.get(name, ""), "label": f"{name} (published)"}
            out.update({f"{m}_mean": _stored(m, v) for (_, m), v in zip(block.columns, values)})
            # A misprinted cell keeps its printed value here too; the column says so and gives the original.
            key = (block.dataset, block.aligned)
            out["erratum"] = "; ".join(erratum_note(key, name, column)
                                       for column, _ in block.columns if (*key, name, column) in ERRATA)
            rows.append(out)
    if published_ablation:
        for (sbn, mcm), values in PUBLISHED_ABLATION:
            for dataset in ("mosi", "mosei"):
                out = {"table": "published ablation", "dataset": dataset, "aligned": True, "data": "",
                       "data_kind": "real", "source": f"published ({ABLATION_SOURCE})", "model": "",
                       "label": f"SBN={sbn} MCM={mcm} (published)", "use_sbn": sbn, "use_mcm": mcm}
                out.update({f"{m}_mean": _stored(m, v) for (_, m), v in zip(PAPER_COLUMNS["mosi"], values[dataset])})
                rows.append(out)
    return pd.DataFrame(rows)
