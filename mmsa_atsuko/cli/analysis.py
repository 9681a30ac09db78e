"""Commands that analyse trained runs: robustness and tsne here; explain (`cli/explain.py`) and sensitivity
(`cli/sensitivity.py`, the one that trains) in modules of their own, their names still importable from here."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UsageError
from .common import OneLineParser, add_results_option, add_threads_option, use_threads
from .explain import cmd_explain, explain_parser
from .figures import check_figure_files, check_figures_folder, provenance, write_figure
from .sensitivity import cmd_sensitivity, sensitivity_parser

__all__ = ["cmd_explain", "explain_parser", "cmd_robustness", "robustness_parser", "cmd_tsne", "tsne_parser",
           "cmd_sensitivity", "sensitivity_parser"]


def robustness_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run.py robustness", description="Re-test trained runs on the test split under "
                      "Gaussian noise (SNR), a zeroed modality and random frame drops, one modality at a time; "
                      "writes robustness_<first run id>.csv/.png/.pdf.")
    p.add_argument("--run", nargs="+", required=True, help="run id(s) in <results>/runs.jsonl (one line each)")
    add_results_option(p)
    p.add_argument("--out", help="folder for the table and figure (default <results>/analysis)")
    add_threads_option(p)
    return p


def cmd_robustness(argv) -> int:
    args = robustness_parser().parse_args(argv)
    use_threads(args)
    import pandas as pd
    from ..analysis import load_run, modalities_present, robustness_table
    from ..data.conditions import condition_of
    from ..results import check_run_id, find_record, headline_metric, read_records, refuse_a_file_as_results
    from ..metrics.names import lower_is_better
    from ..plots.analyses import plot_robustness
    from ..plots.common import pyplot, runs_data_tag
    from ..user_models.source import source_changes
    pyplot()
    refuse_a_file_as_results(args.results)     # before the run id names the figures: the store file is said first
    check_figures_folder(args, make=False)     # the folders first, as explain checks them; none made yet
    # Every run's record first, from the store read once: an unknown id is said as predict and explain say it, and
    # runs on several datasets were refused only after every one of their test passes had run.
    records = read_records(Path(args.results))
    chosen = [find_record(args.results, run_id, records) for run_id in args.run]
    datasets = {record["dataset"] for record in chosen}
    if len(datasets) > 1:
        on = ", ".join(f"{record['run_id']} on {record['dataset']}" for record in chosen)
        raise UsageError(f"robustness compares runs on one dataset; these are on {len(datasets)} ({on}): give the "
                         f"runs of one dataset, and run it once per dataset")
    # Named by its first run, so the figures of other runs sit beside it in <results>/analysis.
    name = f"robustness_{check_run_id(args.run[0], UsageError)}"     # typed: exit 2, as explain's unknown id
    check_figure_files(args, name)
    made_by = provenance("robustness", args)
    cache, tables, runs = {}, [], []
    for run_id in args.run:
        run = load_run(args.results, run_id, data_cache=cache, records=records)
        # A model of your own whose files changed since the run trained is tested as it is now, as predict does.
        for change in source_changes(run.record.get("model_source"), run.record["model"]):
            print(f"warning: {change}: testing with it as it is now", file=sys.stderr)
        runs.append(run)
        tables.append(robustness_table(run))
        if absent := [m for m in ("text", "audio", "vision") if m not in modalities_present(run.record)]:
            print(f"robustness {run_id}: no {' or '.join(absent)} rows: the run never saw "
                  f"{'them' if len(absent) > 1 else 'it'} ({condition_of(run.record).key()}), so corrupting "
                  f"{'them' if len(absent) > 1 else 'it'} would change nothing", flush=True)
    table = pd.concat(tables, ignore_index=True)
    metric = headline_metric(runs[0].record["dataset"])
    fig = plot_robustness(table, metric, runs_data_tag(r.record for r in runs), lower_is_better(metric))
    write_figure(args, name, fig, table, made_by)
    return 0


def tsne_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run.py tsne", description="t-SNE (sklearn, fixed seed) of the fused test features "
                      "of the Atsuko ablation runs, one panel per variant, colored by label; "
                      "writes tsne_<run id>.png/.pdf/.csv, named by the run of its fullest variant.")
    p.add_argument("-d", "--dataset", type=str.lower, help="dataset (default: that of the latest Atsuko run)")
    p.add_argument("-s", "--seed", type=int, help="training seed of the runs, one for every panel (default: the "
                   "seed that most variants share, ties the latest; each variant's latest run of it)")
    p.add_argument("--aligned", action="store_true", help="runs on the aligned feature file (default: unaligned)")
    p.add_argument("--tsne-seed", type=int, default=0, help="t-SNE random_state (default 0)")
    # One condition, named as run.py names it: the panels are the runs of the plain one unless these say otherwise.
    p.add_argument("--missing-rate", type=float, default=0.0, metavar="R",
                   help="runs trained at this missing rate (default 0: the plain condition)")
    p.add_argument("--drop-modality", type=str.upper, choices=("T", "A", "V"), metavar="T|A|V",
                   help="runs trained with this modality dropped")
    p.add_argument("--modalities", type=str.upper, default="TAV", metavar="SUBSET",
                   help="runs trained on this modality subset (default TAV)")
    add_results_option(p)
    p.add_argument("--out", help="folder for the figure (default <results>/analysis)")
    add_threads_option(p)
    return p


TSNE_SEED_MAX = 2 ** 32 - 1       # sklearn's random_state (numpy's RandomState seed) range


def cmd_tsne(argv) -> int:
    args = tsne_parser().parse_args(argv)
    # Checked before any work: sklearn refused -1 with a traceback after every panel's forward pass had run.
    if not 0 <= args.tsne_seed <= TSNE_SEED_MAX:
        raise UsageError(f"--tsne-seed must be in 0..{TSNE_SEED_MAX} (sklearn's random_state), got {args.tsne_seed}")
    from ..data.conditions import check_any_allows, make_condition
    from ..models.atsuko.family import ATSUKO_FAMILY
    condition = make_condition(args.missing_rate, args.drop_modality, args.modalities)
    # Before torch: no Atsuko variant trains on a subset; the line named ablation_runs' hint to choose another.
    check_any_allows(ATSUKO_FAMILY, condition, "tsne")
    use_threads(args)
    from ..analysis import ablation_runs, condition_label, load_run, tsne_table, variants_elsewhere
    from ..results import check_run_id
    from ..plots.analyses import plot_tsne
    from ..plots.common import pyplot, runs_data_tag
    pyplot()
    check_figures_folder(args)
    variants = ablation_runs(args.results, args.dataset, args.seed, args.aligned, condition)
    # Named by a run of the panel (the fullest variant: panels come in VARIANT_ORDER), so the figures of
    # other runs (another seed, aligned) sit beside these instead of overwriting them.
    name = f"tsne_{check_run_id(list(variants.values())[-1])}"
    check_figure_files(args, name)
    made_by = provenance("tsne", args)
    cache = {}
    runs = {variant: load_run(args.results, run_id, data_cache=cache) for variant, run_id in variants.items()}
    # Panels are picked from runs.jsonl (the latest run of each variant): -d sims alone drew a 2-epoch run's panel
    # without a word, so each panel names its run and config.
    for variant, run in runs.items():
        r = run.record
        under = f", condition {condition.key()}" if condition.key() else ""
        print(f"tsne panel {variant}: run {run.run_id} (seed {r['seed']}{under}, config {r['config_hash']}, "
              f"max_epochs {r['config'].get('max_epochs')}, best epoch {r.get('best_epoch')})", flush=True)
    first = next(iter(runs.values())).record
    if elsewhere := variants_elsewhere(args.results, first["dataset"], args.seed, args.aligned, runs, condition):
        print(f"tsne: {elsewhere}", flush=True)
    table = tsne_table(runs, args.tsne_seed)
    # one seed and one condition: ablation_runs
    where = f"{first['dataset']}{' aligned' if first['aligned'] else ''}, seed {first['seed']}{condition_label(first)}"
    fig = plot_tsne(table, where, runs_data_tag(r.record for r in runs.values()))
    write_figure(args, name, fig, table, made_by)
    return 0
