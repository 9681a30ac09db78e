"""Renderers: the leaderboard as Markdown and LaTeX, and the comparison table for the terminal.

Every title says whether its table is synthetic or real data; published rows come in blocks
of their own, always labelled published, never as ours. What each cell reads (units, numbers,
Has0/Non0 pairs, the Welch text) is cells.py's; the notes under a table are notes.py's; the CSV,
in the store's units, is csv_table.py's.
"""
from __future__ import annotations

import math

from ..data.stamp import kind_text
from ..metrics.names import metric_family
from .published import ABLATION_SOURCE, PAPER_COLUMNS, PUBLISHED_ABLATION
from .ablation import Ablation
from .cells import arrow_of, cell_text, column_cell, column_groups, column_name, signed_text, units_text, welch_text
from .notes import HOW_RAN
from ..results import StoredCell
from .stats import SIGNIFICANCE


# What every published block's heading and caption says of its rows, Markdown's and LaTeX's alike.
NOT_OURS = "real data, not our runs"


def _published_ablation_title() -> str:
    """The published Table 4's heading and caption, one text for both: the LaTeX caption said only "not our runs"
    where the Markdown heading said which setting and data the paper's numbers are of."""
    return f"Published by the seed paper: ablation ({ABLATION_SOURCE}; aligned, {NOT_OURS})"


def _md_bold(text: str) -> str:
    return f"**{text}**"


def markdown_table(header: list[str], lines: list[list[str]]) -> str:
    """The header, its rule and a line per row: every Markdown table of the leaderboard, curves' too."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(cells) + " |" for cells in lines]
    return "\n".join(out)


def render_markdown(tables, ablations=(), published=(), published_ablation=False, paper=False) -> str:
    """`paper`: Acc-2 and F1 as Has0/Non0 pairs (`PAIRS`)."""
    parts = []
    for t in tables:
        columns = column_groups(t.metrics, paper)
        header = ["model", "n"] + [column_name(c) for c in columns] + [f"Welch t-test on {t.key_metric}"]
        lines = []
        for row in t.rows:
            cells = [column_cell(c, row.cells, row.n, row.best, _md_bold) for c in columns]
            lines.append([row.label, str(row.n)] + cells + [welch_text(row, t.key_metric)])
        parts.append(f"### {t.title()}\n\n"
                     f"Test metrics of each run's best-valid epoch, mean ± sample std (ddof=1) over seeds; "
                     f"{units_text(t.metrics)}; **bold** = best in column under the row's condition "
                     f"(↓ lower is better, ↑ higher); † = Welch p < "
                     f"{SIGNIFICANCE} against the best other model on {t.key_metric}.\n\n"
                     + markdown_table(header, lines)
                     + "".join(f"\n\n- {note}" for note in t.notes))
    for ab in ablations:
        parts.append(_md_ablation(ab, paper))
    for block in published:
        header = ["method (published)"] + [f"{name} ({metric})" for name, metric in block.columns]
        rows, errata = block.marked_rows()
        lines = [[f"{name} (published)"] + values for name, values in rows]
        setting = "" if block.aligned is None else (", aligned" if block.aligned else ", unaligned")
        parts.append(f"### Published by the seed paper: {block.dataset}{setting} ({block.source}; {NOT_OURS})\n\n"
                     + markdown_table(header, lines) + "".join(f"\n\n- {n}" for n in errata))
    if published_ablation:
        cols = PAPER_COLUMNS["mosi"]
        header = ["SBN", "MCM"] + [f"{d} {name}" for d in ("mosi", "mosei") for name, _ in cols]
        lines = [["✓" if sbn else "-", "✓" if mcm else "-"] + [v for d in ("mosi", "mosei") for v in values[d]]
                 for (sbn, mcm), values in PUBLISHED_ABLATION]
        parts.append(f"### {_published_ablation_title()}\n\n" + markdown_table(header, lines))
    return "\n\n".join(parts) + "\n"


def _ablation_columns(dataset: str, paper: bool) -> list[tuple[str, tuple[str, ...]]]:
    """(header, metrics) of Table 4's columns for `dataset`; with `paper` Acc2/F1 as Has0/Non0 pairs."""
    columns = PAPER_COLUMNS[metric_family(dataset)]
    if not paper:
        return [(name, (m,)) for name, m in columns]
    return [(column_name(group, arrow=False) if len(group) == 2 else name, group)
            for (name, _), group in zip(columns, column_groups([m for _, m in columns], True))]


def _ablation_kind(ab: Ablation) -> str:
    """What an ablation's title says its groups were run on: each group's `Table.kind_text`, once (a group on the
    published mosei file beside one on your own mosi file is both)."""
    return " and ".join(dict.fromkeys(t.kind_text() for t in ab.groups))


def _md_ablation(ab: Ablation, paper: bool = False) -> str:
    header = ["SBN", "MCM", "model"]
    for t, group_name in zip(ab.groups, ab.group_names()):
        header += [f"{group_name} n"] + [f"{group_name} {name} {arrow_of(group[0])}"
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
                cells.append(column_cell(group, row.cells, row.n, best, _md_bold) if row else "–")
        lines.append(cells)
    return (f"### {_ablation_title(ab)}\n\n{_ablation_legend(paper)}; **bold** = best.\n\n"
            + markdown_table(header, lines) + "".join(f"\n\n- {note}" for note in ab.notes))


def _ablation_title(ab: Ablation) -> str:
    """An ablation's title, Markdown's heading and LaTeX's caption alike: its setting, data kind and data ids."""
    data = "; ".join(f"{name}: {t.data_id}" for t, name in zip(ab.groups, ab.group_names()))
    return f"Ablation (Table 4 layout), {'aligned' if ab.aligned else 'unaligned'}: {_ablation_kind(ab)} ({data})"


def _ablation_legend(paper: bool) -> str:
    """What an ablation's cells are, Markdown's and LaTeX's alike: without `paper` the Acc2/F1 columns are Non0 and
    their headers do not say so."""
    pairs = "as Has0/Non0 pairs" if paper else "are Non0 (EMOE's convention)"
    return f"Acc2/F1 on MOSI/MOSEI {pairs}; test metrics of each run's best-valid epoch, mean ± sample std over seeds"


def _tex(text: str) -> str:
    # An option's "--" (a note's `--preset small`) would print as an en dash: "-{}-" keeps both hyphens.
    return (str(text).replace("\\", r"\textbackslash{}").replace("--", "-{}-").replace("_", r"\_")
            .replace("%", r"\%").replace("&", r"\&").replace("#", r"\#").replace("±", r"$\pm$")
            .replace("†", r"$^\dagger$").replace("‡", r"$^\ddagger$").replace("✓", r"\checkmark")
            .replace("–", "--").replace("↓", r"$\downarrow$").replace("↑", r"$\uparrow$")
            .replace("<", r"$<$").replace(">", r"$>$"))        # a bare < prints as ¡ in OT1 fonts


def _latex_table(caption: str, header: list[str], lines: list[list[str]]) -> str:
    out = [r"\begin{table}[t]", r"\centering", f"\\caption{{{_tex(caption)}}}",
           r"\begin{tabular}{l" + "c" * (len(header) - 1) + "}", r"\toprule",
           " & ".join(_tex(h) for h in header) + r" \\", r"\midrule"]
    out += [" & ".join(lines_cell for lines_cell in cells) + r" \\" for cells in lines]
    out += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(out)


def _tex_group(column, cells: dict, row_n: int, best) -> str:
    """`column_cell` in LaTeX: bold parts are marked first and turned into \\textbf after escaping
    (escaping would mangle the command's backslash)."""
    text = _tex(column_cell(column, cells, row_n, best, lambda part: f"\x00{part}\x01"))
    return text.replace("\x00", "\\textbf{").replace("\x01", "}")


def render_latex(tables, ablations=(), published=(), published_ablation=False, paper=False) -> str:
    """`paper`: Acc-2 and F1 as Has0/Non0 pairs (`PAIRS`)."""
    parts = []
    for t in tables:
        columns = column_groups(t.metrics, paper)
        header = ["Model", "n"] + [column_name(c) for c in columns] + [f"Welch ({t.key_metric})"]
        lines = []
        for row in t.rows:
            cells = [_tex(row.label), str(row.n)]
            cells += [_tex_group(c, row.cells, row.n, row.best) for c in columns]
            cells.append(_tex(welch_text(row, t.key_metric)))
            lines.append(cells)
        notes = "".join(f" {note}." for note in t.notes)        # which config each labelled row is
        parts.append(_latex_table(f"{t.title()}. Test metrics of each run's best-valid epoch, mean ± sample std "
                                  f"over seeds; accuracies/F1 in %; bold: best; "
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
        notes = "".join(f" {note}." for note in ab.notes)        # the Markdown block's notes, as the main tables'
        parts.append(_latex_table(f"{_ablation_title(ab)}. {_ablation_legend(paper)}; bold: best.{notes}",
                                  header, lines))
    for block in published:
        header = ["Method (published)"] + [name for name, _ in block.columns]
        rows, errata = block.marked_rows()
        lines = [[_tex(name)] + [_tex(v) for v in values] for name, values in rows]
        setting = "" if block.aligned is None else (", aligned" if block.aligned else ", unaligned")
        notes = "".join(f" {note}." for note in errata)
        parts.append(_latex_table(f"Published by the seed paper ({block.source}), {block.dataset}{setting}; "
                                  f"{NOT_OURS}.{notes}", header, lines))
    if published_ablation:
        header = ["SBN", "MCM"] + [f"{d} {name}" for d in ("mosi", "mosei") for name, _ in PAPER_COLUMNS["mosi"]]
        lines = [[_tex("✓" if s else "-"), _tex("✓" if m else "-")] + list(vals["mosi"]) + list(vals["mosei"])
                 for (s, m), vals in PUBLISHED_ABLATION]
        parts.append(_latex_table(f"{_published_ablation_title()}.", header, lines))
    return "\n\n".join(parts) + "\n"


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
    for (dataset, aligned, data_id, model, baseline), block in blocks.items():
        n_model, n_base = max(r["model_n"] for r in block), max(r["baseline_n"] for r in block)
        lines = []
        for r in block:
            m = r["metric"]
            cells = [m]
            for side, n in (("model", n_model), ("baseline", n_base)):
                cells.append(cell_text(m, StoredCell(r[f"{side}_n"], r[f"{side}_mean"], r[f"{side}_std"]), n, " ± "))
            ci = ("–" if math.isnan(r["ci_low"]) else
                  f"[{signed_text(m, r['ci_low'])}, {signed_text(m, r['ci_high'])}]")
            p = "–" if math.isnan(r["p_value"]) else f"{r['p_value']:#.3g}"
            lines.append(cells + [signed_text(m, r["diff"]), ci, p])
        kind = kind_text(block[0]["data_kind"], dataset)     # the table's own word: real_data.kind_of
        units = units_text(r["metric"] for r in block)
        parts.append(f"{dataset}, {'aligned' if aligned else 'unaligned'}: {kind} ({data_id})\n"
                     f"{model} (n={n_model}) vs {baseline} (n={n_base}), test metrics of each run's best-valid "
                     f"epoch; {units}; difference = {model} - {baseline}, "
                     f"with its Welch 95% CI and p (two-sided)\n"
                     + "".join(f"{block[0][note]}\n" for note in ("seeds_note", "preset_note", "trainer_note",
                                                                  *(f"{kind}_note" for kind in HOW_RAN))
                               if block[0].get(note))
                     + _fixed_width(["metric", model, baseline, "difference", "95% CI", "p"], lines))
    return "\n\n".join(parts)

