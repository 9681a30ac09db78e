"""Renderers: Markdown, LaTeX and CSV leaderboards, and the comparison table for the terminal.

Every title says whether its table is synthetic or real data; published rows come in blocks
of their own, always labelled published, never as ours. Display units: accuracies, F1,
precision and recall in %, MAE/Corr/Loss as stored. CSVs keep the stored units (fractions)
at full precision, and published rows are converted to them too.
"""
from __future__ import annotations

import math

import pandas as pd

from ..data.stamp import is_synthetic
from ..metrics import lower_is_better, metric_family
from ..results import code_versions, model_selection
from .published import ABLATION_SOURCE, PAPER_COLUMNS, PAPER_NAMES, PUBLISHED_ABLATION
from .ablation import Ablation
from .notes import row_run_labels
from .stats import MIN_SEEDS, SIGNIFICANCE, Cell, Row

RAW_METRICS = frozenset({"MAE", "Corr", "Loss", "loss"})      # shown as stored, not in %


def to_display(metric: str, value: float) -> float:
    return value if metric in RAW_METRICS else value * 100


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


# `--paper`: MOSI/MOSEI's binary accuracy and F1 as one "Has0/Non0" cell each, as the Self-MM and MISA
# papers print them ("Acc-2 a/b": a = negative/non-negative, b = negative/positive: the Has0 and Non0
# forms of thuiar/MMSA:src/MMSA/utils/metricsTop.py).
PAIRS = {"Has0_acc_2": ("Acc-2", "Non0_acc_2"), "Has0_F1_score": ("F1", "Non0_F1_score")}
PAIRED = {second: first for first, (_, second) in PAIRS.items()}


def _columns(metrics, paper: bool) -> list[tuple[str, ...]]:
    """The table's columns as groups of metrics: one metric, or with `paper` a (Has0, Non0) pair
    wherever the table has either half."""
    if not paper:
        return [(m,) for m in metrics]
    columns = []
    for m in metrics:
        first = PAIRED.get(m, m)
        pair = (first, PAIRS[first][1]) if first in PAIRS else (m,)
        if pair not in columns:
            columns.append(pair)
    return columns


def _column_name(column: tuple[str, ...], arrow: bool = True) -> str:
    if len(column) == 2:
        return f"{PAIRS[column[0]][0]} (Has0/Non0){' ' + _arrow(column[0]) if arrow else ''}"
    return f"{column[0]}{' ' + _arrow(column[0]) if arrow else ''}"


def _group_text(column: tuple[str, ...], cells: dict, row_n: int, best, bold) -> str:
    """A column's cell: `bold(text)` where best; a pair reads "83.10/84.90 ± 0.52/0.61", each half
    bold on its own."""
    if len(column) == 1:
        m = column[0]
        text = _cell_text(m, cells[m], row_n, " ± ")
        return bold(text) if m in best else text
    if not any(cells[m].n for m in column):
        return "–"
    means = [bold(_num(m, cells[m].mean)) if m in best else _num(m, cells[m].mean) for m in column]
    text = f"{'/'.join(means)} ± {'/'.join(_num(m, cells[m].std) for m in column)}"
    counts = {cells[m].n for m in column}
    return text if counts == {row_n} else f"{text} (n={'/'.join(str(cells[m].n) for m in column)})"


def _md_bold(text: str) -> str:
    return f"**{text}**"


def _arrow(metric: str) -> str:
    return "↓" if lower_is_better(metric) else "↑"


def _sig_text(row: Row, key_metric: str) -> str:
    if row.test is None:
        return "not tested (n<2)" if row.cells[key_metric].n < MIN_SEEDS else "–"
    if math.isnan(row.test.p):
        return f"vs {row.against}: no spread"
    mark = " †" if row.test.p < SIGNIFICANCE else ""
    return f"vs {row.against}: p={row.test.p:#.3g}{mark}"     # 0.170, not 0.17 beside 0.484


def _md_table(header: list[str], lines: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(cells) + " |" for cells in lines]
    return "\n".join(out)


def render_markdown(tables, ablations=(), published=(), published_ablation=False, paper=False) -> str:
    """`paper`: Acc-2 and F1 as Has0/Non0 pairs (`PAIRS`)."""
    parts = []
    for t in tables:
        columns = _columns(t.metrics, paper)
        header = ["model", "n"] + [_column_name(c) for c in columns] + [f"Welch t-test on {t.key_metric}"]
        lines = []
        for row in t.rows:
            cells = [_group_text(c, row.cells, row.n, row.best, _md_bold) for c in columns]
            lines.append([row.label, str(row.n)] + cells + [_sig_text(row, t.key_metric)])
        raw = sorted(RAW_METRICS & set(t.metrics))
        units = "accuracies/F1 in %" + (f", {', '.join(raw)} as is" if raw else "")
        parts.append(f"### {t.title()}\n\n"
                     f"Mean ± sample std (ddof=1) over seeds; {units}; **bold** = best in column under the row's condition (↓ lower is better, ↑ higher); † = Welch p < "
                     f"{SIGNIFICANCE} against the best other model on {t.key_metric}.\n\n"
                     + _md_table(header, lines)
                     + "".join(f"\n\n- {note}" for note in t.notes))
    for ab in ablations:
        parts.append(_md_ablation(ab, paper))
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
        parts.append(f"### Published by the seed paper: ablation ({ABLATION_SOURCE}; aligned, real data, not our runs)\n\n"
                     + _md_table(header, lines))
    return "\n\n".join(parts) + "\n"


def _ablation_columns(dataset: str, paper: bool) -> list[tuple[str, tuple[str, ...]]]:
    """(header, metrics) of Table 4's columns for `dataset`; with `paper` Acc2/F1 as Has0/Non0 pairs."""
    columns = PAPER_COLUMNS[metric_family(dataset)]
    if not paper:
        return [(name, (m,)) for name, m in columns]
    return [(_column_name(group, arrow=False) if len(group) == 2 else name, group)
            for (name, _), group in zip(columns, _columns([m for _, m in columns], True))]


def _md_ablation(ab: Ablation, paper: bool = False) -> str:
    header = ["SBN", "MCM", "model"]
    for t, group_name in zip(ab.groups, ab.group_names()):
        header += [f"{group_name} n"] + [f"{group_name} {name} {_arrow(group[0])}"
                                         for name, group in _ablation_columns(t.dataset, paper)]
    lines = []
    for flags in ab.rows:
        names = sorted({ab.chosen[(g, flags)].model for g in range(len(ab.groups)) if (g, flags) in ab.chosen})
        cells = ["✓" if flags[0] else "-", "✓" if flags[1] else "-", ", ".join(names)]
        for g, t in enumerate(ab.groups):
            row = ab.chosen.get((g, flags))
            cells.append(str(row.n) if row else "–")
            for _, group in _ablation_columns(t.dataset, paper):
                best = {m for m in group if (g, flags, m) in ab.best}
                cells.append(_group_text(group, row.cells, row.n, best, _md_bold) if row else "–")
        lines.append(cells)
    kind = "synthetic data" if ab.synthetic else "real data"
    data = "; ".join(f"{name}: {t.data}" for t, name in zip(ab.groups, ab.group_names()))
    return (f"### Ablation (Table 4 layout), {'aligned' if ab.aligned else 'unaligned'}: {kind} ({data})\n\n"
            + ("Acc2/F1 on MOSI/MOSEI as Has0/Non0 pairs" if paper else "Acc2/F1 on MOSI/MOSEI are Non0 (EMOE's convention)")
            + "; mean ± sample std over seeds; **bold** = best.\n\n"
            + _md_table(header, lines) + "".join(f"\n\n- {note}" for note in ab.notes))


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


def _tex_group(column, cells: dict, row_n: int, best) -> str:
    """`_group_text` in LaTeX: bold parts are marked first and turned into \\textbf after escaping
    (escaping would mangle the command's backslash)."""
    text = _tex(_group_text(column, cells, row_n, best, lambda part: f"\x00{part}\x01"))
    return text.replace("\x00", "\\textbf{").replace("\x01", "}")


def render_latex(tables, ablations=(), published=(), published_ablation=False, paper=False) -> str:
    """`paper`: Acc-2 and F1 as Has0/Non0 pairs (`PAIRS`)."""
    parts = []
    for t in tables:
        columns = _columns(t.metrics, paper)
        header = ["Model", "n"] + [_column_name(c) for c in columns] + [f"Welch ({t.key_metric})"]
        lines = []
        for row in t.rows:
            cells = [_tex(row.label), str(row.n)]
            cells += [_tex_group(c, row.cells, row.n, row.best) for c in columns]
            cells.append(_tex(_sig_text(row, t.key_metric)))
            lines.append(cells)
        notes = "".join(f" {note}." for note in t.notes)        # which config each labelled row is
        parts.append(_latex_table(f"{t.title()}. Mean ± sample std over seeds; accuracies/F1 in %; bold: best; "
                                  f"†: Welch p < {SIGNIFICANCE} vs the best other model.{notes}", header, lines))
    for ab in ablations:
        header = ["SBN", "MCM"]
        for t, group_name in zip(ab.groups, ab.group_names()):
            header += [f"{group_name} n"] + [f"{group_name} {name}" for name, _ in _ablation_columns(t.dataset, paper)]
        lines = []
        for flags in ab.rows:
            cells = [_tex("✓" if flags[0] else "-"), _tex("✓" if flags[1] else "-")]
            for g, t in enumerate(ab.groups):
                row = ab.chosen.get((g, flags))
                cells.append(str(row.n) if row else "--")
                for _, group in _ablation_columns(t.dataset, paper):
                    best = {m for m in group if (g, flags, m) in ab.best}
                    cells.append(_tex_group(group, row.cells, row.n, best) if row else "--")
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
        parts.append(_latex_table(f"Published by the seed paper ({ABLATION_SOURCE}); not our runs.", header, lines))
    return "\n\n".join(parts) + "\n"


def _stored(metric: str, printed: str) -> float:
    """A published value in the store's units: percentages back to fractions."""
    return float(printed) if metric in RAW_METRICS else round(float(printed) / 100, 6)   # 74.16 -> 0.7416


def _stat_columns(metric: str, cell: Cell | None, best: bool) -> dict:
    if cell is None:
        return {}
    return {f"{metric}_mean": cell.mean if cell.n else math.nan, f"{metric}_std": cell.std,
            f"{metric}_n": cell.n, f"{metric}_best": int(best)}


def _protocol(row: Row) -> dict:
    """A row's model selection and its seeds, space-separated: what the Markdown notes say, per CSV row."""
    return {"model_selection": model_selection(row.records[-1]),
            "seeds": " ".join(map(str, sorted({r["seed"] for r in row.records})))}


def csv_frame(tables, ablations=(), published=(), published_ablation=False):
    """Everything in one long CSV: a `table` column says leaderboard, ablation or published."""
    rows = []
    for t in tables:
        for row in t.rows:
            out = {"table": "leaderboard", "dataset": t.dataset, "aligned": t.aligned, "data": t.data,
                   "data_kind": "synthetic" if t.synthetic else "real", "source": "ours", "model": row.model,
                   "label": row.label, "config_hash": row.config_hash, "condition": row.condition, "n": row.n,
                   "code": code_versions(row.records), "run_label": row_run_labels(row), **_protocol(row)}
            for m in t.metrics:
                out.update(_stat_columns(m, row.cells[m], m in row.best))
            out.update(key_metric=t.key_metric, ttest_against=row.against,
                       ttest_t=row.test.t if row.test else math.nan, ttest_p=row.test.p if row.test else math.nan)
            rows.append(out)
    for ab in ablations:
        for (g, flags), row in ab.chosen.items():
            t = ab.groups[g]
            out = {"table": "ablation", "dataset": t.dataset, "aligned": t.aligned, "data": t.data,
                   "data_kind": "synthetic" if t.synthetic else "real", "source": "ours", "model": row.model,
                   "label": row.label, "config_hash": row.config_hash, "n": row.n,
                   "use_sbn": flags[0], "use_mcm": flags[1], **_protocol(row)}
            for _, m in PAPER_COLUMNS[metric_family(t.dataset)]:
                out.update(_stat_columns(m, row.cells[m], (g, flags, m) in ab.best))
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
                       "data_kind": "real", "source": f"published ({ABLATION_SOURCE})", "model": "",
                       "label": f"SBN={sbn} MCM={mcm} (published)", "use_sbn": sbn, "use_mcm": mcm}
                out.update({f"{m}_mean": _stored(m, v) for (_, m), v in zip(PAPER_COLUMNS["mosi"], values[dataset])})
                rows.append(out)
    return pd.DataFrame(rows)




def _signed(metric: str, value: float) -> str:
    if math.isnan(value):
        return "–"
    return f"{to_display(metric, value):+.4f}" if metric in RAW_METRICS else f"{to_display(metric, value):+.2f}"


def _fixed_width(header: list[str], lines: list[list[str]]) -> str:
    """Columns padded to their widest cell: the first left-aligned, the numbers right-aligned."""
    widths = [max(len(cells[i]) for cells in [header] + lines) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
                     for cells in [header] + lines)


def render_comparison(rows: list[dict]) -> str:
    """`comparison_rows` as fixed-width tables for the terminal, one per (table, model row, baseline row)."""
    blocks: dict[tuple, list[dict]] = {}
    for r in rows:
        blocks.setdefault((r["dataset"], r["aligned"], r["data"], r["model"], r["baseline"]), []).append(r)
    parts = []
    for (dataset, aligned, data, model, baseline), block in blocks.items():
        n_model, n_base = max(r["model_n"] for r in block), max(r["baseline_n"] for r in block)
        lines = []
        for r in block:
            m = r["metric"]
            cells = [m]
            for side, n in (("model", n_model), ("baseline", n_base)):
                cell = "–" if not r[f"{side}_n"] else f"{_num(m, r[f'{side}_mean'])} ± {_num(m, r[f'{side}_std'])}"
                cells.append(cell if r[f"{side}_n"] == n else f"{cell} (n={r[f'{side}_n']})")
            ci = "–" if math.isnan(r["ci_low"]) else f"[{_signed(m, r['ci_low'])}, {_signed(m, r['ci_high'])}]"
            p = "–" if math.isnan(r["p_value"]) else f"{r['p_value']:#.3g}"
            lines.append(cells + [_signed(m, r["diff"]), ci, p])
        kind = "synthetic data" if is_synthetic(data) else "real data"
        raw = sorted(RAW_METRICS & {r["metric"] for r in block})
        units = "accuracies/F1 in %" + (f", {', '.join(raw)} as is" if raw else "")
        parts.append(f"{dataset}, {'aligned' if aligned else 'unaligned'}: {kind} ({data})\n"
                     f"{model} (n={n_model}) vs {baseline} (n={n_base}); {units}; difference = {model} - {baseline}, "
                     f"with its Welch 95% CI and p (two-sided)\n"
                     + _fixed_width(["metric", model, baseline, "difference", "95% CI", "p"], lines))
    return "\n\n".join(parts)

