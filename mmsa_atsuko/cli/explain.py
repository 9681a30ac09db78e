"""`run.py explain`: figures of what Atsuko's routers learned, for one run, in a folder of that run's own."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UsageError
from .common import OneLineParser, add_results_option, add_threads_option, use_threads
from .figures import check_figures_folder, provenance, write_figures


WEIGHTS_CSV = "modality_weights.csv"
EXPLAIN_JSON = "explain.json"


def explain_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run.py explain", description="Figures of what Atsuko's routers learned (PNG + PDF + "
                      "CSV each): spectral energy with band boundaries, band components, band weights, "
                      "modality weights with/without the MCM, MCM target q vs w, weight distribution.")
    p.add_argument("-m", "--model", type=str.lower,
                   help="model of the run: atsuko or an Atsuko ablation (checked against its record)")
    p.add_argument("-d", "--dataset", type=str.lower, help="dataset of the run (checked against its record)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="run id in <results>/runs.jsonl")
    source.add_argument("--checkpoint", help="a run folder (or its best.pt) whose record is in --results: the folder's "
                        "name is the run id looked up there (unlike predict, which takes a folder from anywhere)")
    p.add_argument("--samples", type=int, default=10,
                   help="how many test samples the per-sample figures show (default 10)")
    add_results_option(p)
    p.add_argument("--out", help="folder for the figures (default <results>/analysis/explain_<run id>); one "
                   "holding another run's explain is refused")
    p.add_argument("--feature-path", help="modality_weights.csv (id, label, pred, modality_weight_L/V/A, as in "
                   "predictions_test.csv) from this feature file's test split instead of the run's data (same "
                   "dataset and sequence lengths)")
    add_threads_option(p)
    return p


def explained_run(folder) -> str | None:
    """The run whose explain figures `folder` holds: the run_id of its modality_weights.csv's first row (every row
    names it: `trace_columns`), or None where there is no such file or it says no run id."""
    import csv
    try:
        with open(Path(folder) / WEIGHTS_CSV, newline="", encoding="utf-8") as f:
            first = next(csv.DictReader(f), None)
    except (OSError, UnicodeError, csv.Error):
        return None
    return (first or {}).get("run_id") or None


def refuse_another_runs_explain(out, run_id: str) -> None:
    """explain --out DIR writes its files into DIR itself, as the user asked: a second run explained into the same
    DIR replaced the first's files, and an MCM run's mcm_target figure stayed beside a run without the MCM. Refused,
    before any work, where DIR holds another run's explain (explaining the same run again replaces its files, as
    the default folder does); the default, <results>/analysis/explain_<run id>, is a folder per run."""
    other = explained_run(out)
    if other is not None and other != run_id:
        raise UsageError(f"output folder {out} holds the explain figures of run {other}; explaining run {run_id} "
                         f"there would replace them: give it its own --out (or none: "
                         f"<results>/analysis/explain_<run id>, a folder per run)")


def cmd_explain(argv) -> int:
    args = explain_parser().parse_args(argv)
    from ..models.atsuko.family import ATSUKO_FAMILY, require_atsuko_record
    from ..results import analysis_dir, check_run_id, checkpoint_run, find_record, read_records
    from ..training.hardware import check_threads
    check_threads(args.threads)
    if args.model is not None and args.model not in ATSUKO_FAMILY:
        raise UsageError(f"explain reads Atsuko's routers; -m {args.model} is not atsuko")
    check_figures_folder(args)
    made_by = provenance("explain", args)
    # The run's record first, from the store read once (the partner is looked for in it, and loaded from it): a run
    # of another model, or one that -d or -m contradicts, is refused before torch and matplotlib are imported.
    records = read_records(Path(args.results))
    record = find_record(args.results, args.run if args.checkpoint is None else checkpoint_run(args.checkpoint)[1],
                         records)
    require_atsuko_record(record)
    if args.dataset and args.dataset != record["dataset"]:
        raise UsageError(f"run {record['run_id']} is on {record['dataset']}, not {args.dataset}")
    # -m is a claim about the run, as -d is: `-m atsuko_sbn` on a full Atsuko run drew the full model's figures.
    if args.model and args.model != record["model"]:
        raise UsageError(f"run {record['run_id']} is model {record['model']}, not {args.model}")
    use_threads(args)
    from ..analysis import condition_label, explain_run, find_partner_without_mcm, load_run
    from ..api.predictions_csv import PREDICTIONS_FLOAT_FORMAT
    from ..plots.common import figure_names, pyplot, runs_data_tag
    from ..plots.explain import EXPLAIN_FIGURES, explain_files
    pyplot()                                        # fail on a missing matplotlib before any work
    out = args.out or analysis_dir(args.results) / f"explain_{check_run_id(record['run_id'])}"   # one folder per run
    check_figures_folder(args, [f for name in EXPLAIN_FIGURES for f in figure_names(name)]
                         + [WEIGHTS_CSV, EXPLAIN_JSON], out)
    refuse_another_runs_explain(out, record["run_id"])
    cache = {}
    run = load_run(args.results, args.run, args.checkpoint, data_cache=cache, records=records)
    partner = None
    if run.model.use_mcm:
        partner_id = find_partner_without_mcm(args.results, run, records)
        partner = load_run(args.results, partner_id, data_cache=cache, records=records) if partner_id else None
    # Everything is computed before the first file is written: a bad --feature-path fails here,
    # leaving an earlier explain of this run as it was.
    tables, weights = explain_run(run, args.samples, partner, args.feature_path)
    where = f"{run.record['model']}{condition_label(run.record)} on {run.record['dataset']}" \
            f"{' aligned' if run.record['aligned'] else ''}, seed {run.record['seed']}"
    files = explain_files(tables, where, runs_data_tag([run.record]))
    # predictions_test.csv's digits: id, label, pred, modality_weight_L/V/A, then run_id, data, code, condition.
    files[WEIGHTS_CSV] = weights.to_csv(index=False, float_format=PREDICTIONS_FLOAT_FORMAT)
    files[EXPLAIN_JSON] = made_by
    write_figures(files, out)
    if run.model.use_mcm and partner is None:
        print("note: no run of the same data and seed without the MCM; modality weights shown for this run only")
    return 0
