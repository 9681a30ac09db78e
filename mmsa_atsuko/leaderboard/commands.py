"""The two commands behind `run.py leaderboard` and `run.py compare`: read the results store,
build the tables (stats), render them (render, csv_table) and, for compare, write the CSVs.

    python run.py leaderboard --results results -d mosi --format md --paper
    python run.py compare -m atsuko --against tfn lmf -d mosi
"""
from __future__ import annotations

import difflib
import io
import os
from pathlib import Path

from ..atomic import check_entries, write_files
from ..config import dataset_facts
from ..errors import UsageError
from ..results import RUNS_FILE, data_name_suffix, ok_records, read_records
from .curves import curves_frame, missing_rate_tables, render_curves_markdown
from .notes import trainer_overrides_note
from .published import published_blocks
from .csv_table import csv_frame, row_trace
from .render import render_comparison, render_latex, render_markdown
from .verify import VerifyCell, verify
from .ablation import build_ablations
from .tables import build_tables, comparison_rows, latest_configs


def _known_datasets(datasets):
    """`-d` names, lower-cased; an unknown one is an error (it would silently show nothing)."""
    if not datasets:
        return datasets
    for name in datasets:
        dataset_facts(name)
    return [str(d).lower() for d in datasets]


BY = ("missing_rate",)


def _read_store(results, missing_ok: bool = False) -> list[dict]:
    """The records of the results store in `results`. A folder that does not exist read as a store without runs:
    'no ok runs in nonexist/runs.jsonl' said nothing of the mistyped --results. `missing_ok`: none then (`leaderboard
    --paper` shows the published tables before any run)."""
    if not os.path.lexists(results) and not missing_ok:
        raise UsageError(f"results folder {results} does not exist: pass --results DIR, the folder your runs were "
                         f"written to (--out of run.py and sweep)")
    return read_records(Path(results))


def leaderboard(results, *, datasets=None, fmt="md", paper=False, key_metric=None, by=None) -> str:
    """The leaderboard text (md, csv or latex) for the results store in `results`; `by="missing_rate"`:
    each model's key metric against the missing rate, with its AUC (`curves`)."""
    if fmt not in ("md", "csv", "latex"):
        raise UsageError(f"--format must be md, csv or latex, got {fmt!r}")
    datasets = _known_datasets(datasets)
    records = _read_store(results, missing_ok=paper and by is None)
    if by is not None:
        return _curves_text(_curve_tables(records, results, datasets, key_metric, by, paper), fmt)
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
    return render(tables, ablations, published, bool(show_ablation), paper=paper)


def compare(results, model: str, against, datasets=None, *, all_configs=False, warn=print,
            echo=print) -> list[Path]:
    """Write `<results>/comparison_<model>_<dataset>[-synthetic].csv` and echo it as a table: per metric,
    model minus each baseline, with the Welch 95% confidence interval of the difference and its
    p-value. Each model is taken under its latest config on each table (that of its most recent
    record); `all_configs` compares every config of the model with every config of each baseline."""
    results = Path(results)
    if model in against:
        raise UsageError(f"--against lists {model}, the model being compared")
    datasets = _known_datasets(datasets)
    records = _read_store(results)
    # The refusals below read the records, before the tables: building them runs their Welch tests (scipy.stats,
    # about 0.9 s to import), which a misspelt -m needs none of.
    ok = ok_records(records)
    stored = {r["model"] for r in ok if not datasets or r["dataset"] in datasets}     # as build_tables keeps them
    anywhere = {r["model"] for r in ok}

    def typo(name: str) -> str:          # a name with no run on any dataset may be a misspelt one
        close = [] if name in anywhere else difflib.get_close_matches(name, anywhere, n=1)
        return f" ({name}: did you mean {close[0]}?)" if close else ""
    if model not in stored:
        where = f" on {', '.join(datasets)}" if datasets else ""
        raise UsageError(f"no ok runs of {model}{where} in {results / RUNS_FILE}{typo(model)}; models with runs"
                         f"{where}: {', '.join(sorted(stored)) or 'none'}")
    for dataset in datasets or ():
        if not any(r["model"] == model and r["dataset"] == dataset for r in ok):
            raise UsageError(f"no ok runs of {model} on {dataset} in {results / RUNS_FILE}")
    tables = build_tables(records, datasets)
    mine = [t for t in tables if any(r.model == model for r in t.rows)]
    position = {id(r): i for i, r in enumerate(records)}
    files: dict[str, list[dict]] = {}
    for t in mine:
        setting = f"{t.dataset} {'aligned' if t.aligned else 'unaligned'} ({t.data_id})"
        for baseline in against:
            if not any(r.model == baseline for r in t.rows):
                warn(f"compare: no ok runs of {baseline} on {setting}; skipped{typo(baseline)}")
        # Plain-condition rows only: a missing-rate row is not another config of the model.
        compared = [r for r in t.rows if (r.model == model or r.model in against) and not r.condition]
        if not all_configs:
            # Latest among the plain rows: a later missing-rate run left no plain row as the latest.
            latest = latest_configs(compared, position)
            for name in dict.fromkeys(r.model for r in compared):
                configs = sum(r.model == name for r in compared)
                if configs > 1:
                    warn(f"compare: {name} has {configs} configs on {setting}; comparing its latest, "
                         f"{latest[name].label} (--all-configs compares every one)")
            compared = [r for r in compared if r is latest[r.model]]
        # Named by the model too: comparing a second model on the dataset must not replace the first's file.
        name = f"comparison_{model}_{t.dataset}{'-synthetic' if t.synthetic else ''}.csv"
        files.setdefault(name, []).extend(_compared_pairs(
            t, [r for r in compared if r.model == model], [r for r in compared if r.model != model]))
    files = {name: rows for name, rows in files.items() if rows}
    if not files:
        raise UsageError(f"none of {', '.join(against)} has ok runs where {model} has; nothing to compare"
                         + "".join(typo(name) for name in against))
    # Every file checked before the first is written: a folder at the second name left the first written.
    check_entries(results, list(files), "results folder", "--results")
    import pandas as pd     # here: only the CSVs need it, and it costs about 0.35 s to import
    # All at once (atomic.write_files): a full disk is one line, not a traceback, and a failure at the second file
    # leaves no first file behind.
    written = write_files(results, {name: pd.DataFrame(rows).to_csv(index=False) for name, rows in files.items()},
                          f"results folder {results}", "--results")
    for rows in files.values():
        echo(render_comparison(rows) + "\n")
    return written


def _compared_pairs(table, mine, baselines) -> list[dict]:
    """`comparison_rows` per (row of mine, baseline row), each line with what the leaderboard's CSV says of each side
    (`model_code`, `model_seeds` after `model_config_hash`, the baseline's alike: `csv_table.row_trace`) and its note
    on the pair's trainer keys set apart from their presets (`trainer_note`, after `preset_note`). No run ids: the
    leaderboard's CSV has none either, and the seeds with the config hash and data id name each run."""
    lines = []
    for mine_row in mine:
        for base_row in baselines:
            extra = {"model_config_hash": {f"model_{k}": v for k, v in row_trace(mine_row).items()},
                     "baseline_config_hash": {f"baseline_{k}": v for k, v in row_trace(base_row).items()},
                     "preset_note": {"trainer_note": "; ".join(trainer_overrides_note([mine_row, base_row]))}}
            for line in comparison_rows(table, [mine_row], [base_row]):
                lines.append({k: v for key, value in line.items()
                              for k, v in ((key, value), *extra.get(key, {}).items())})
    return lines


def _curve_tables(records, results, datasets, key_metric, by, paper):
    if by not in BY:
        raise UsageError(f"--by must be one of {', '.join(BY)}, got {by!r}")
    if paper:
        raise UsageError("--paper adds published rows, which have no missing-rate curves: drop --paper or --by")
    tables = missing_rate_tables(records, datasets, key_metric)
    what = f" for {', '.join(datasets)}" if datasets else ""
    if not tables:
        raise UsageError(f"no ok runs{what} in {Path(results) / RUNS_FILE}")
    # A table without a run at a missing rate is a curve of one point each (AUC "–"): a store of plain runs wrote 7
    # such figures and exited 0. Such tables are left out; none left is one line, as any other empty selection.
    tables = [t for t in tables if any(rate > 0 for rate in t.rates)]
    if not tables:
        raise UsageError(f"no missing-rate runs{what} in {Path(results) / RUNS_FILE}: --by missing_rate draws runs "
                         f"trained with run.py --missing-rate R (or a sweep's missing_rate axis)")
    return tables


def _curves_text(tables, fmt: str) -> str:
    if fmt == "latex":
        raise UsageError("--by missing_rate prints md or csv; drop --format latex")
    if fmt == "csv":
        return curves_frame(tables).to_csv(index=False)
    return render_curves_markdown(tables)


def missing_rate_figures(results, out, *, datasets=None, key_metric=None) -> list[Path]:
    """One figure per curve table (PNG, PDF and the CSV behind it) in `out`, named
    `missing_rate_<dataset>[-aligned]` and what normal/'s CSV of its data holds after the dataset
    (`results.data_name_suffix`: `-synthetic`, `-not-published-<hex>`, ...); needs the [plots] extra."""
    from ..metrics.names import lower_is_better
    from ..plots.analyses import plot_missing_rate
    from ..plots.common import data_tag_of, figure_files
    datasets = _known_datasets(datasets)
    tables = _curve_tables(_read_store(results), results, datasets, key_metric, "missing_rate", False)
    files, names = {}, {}
    for t in tables:
        # Named as the CSVs are: a figure of your own mosi-format data was missing_rate_mosi, the published one's name.
        name = f"missing_rate_{t.dataset}{'-aligned' if t.aligned else ''}{data_name_suffix(t.kind(), t.data_id)}"
        names[name] = names.get(name, 0) + 1
        if names[name] > 1:                       # another data file of the same name (synthetic of two sizes)
            name += f"-{names[name]}"
        fig = plot_missing_rate(curves_frame([t]), t.title(kind=False), data_tag_of([t.kind_text()]),
                                lower_is_better(t.metric))
        files.update(figure_files(fig, curves_frame([t]), name))
    return write_files(out, files, f"figures folder {out}", "--figures")


def verify_store(results, datasets=None) -> tuple[list[VerifyCell], list[str]]:
    """`verify` over the results store in `results` (see verify.py)."""
    results = Path(results)
    records = read_records(results)             # first: a file given as the folder is named as one
    if not (results / RUNS_FILE).exists():
        raise UsageError(f"no results store at {results / RUNS_FILE}; pass --results DIR")
    return verify(records, _known_datasets(datasets))
