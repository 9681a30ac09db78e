"""Commands that analyse trained runs: explain, robustness, tsne, sensitivity."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UsageError
from .common import (OneLineParser, add_hardware_options, add_results_option, add_synthetic_recipe, add_threads_option,
                     use_threads)


def check_figures_folder(args, names=(), out=None, make=True) -> None:
    """Where a command's figures go (`out`, else --out, else <results>/analysis), and the files `names` it
    writes there, checked before any run is loaded or trained: otherwise a file there would surface as a traceback
    after all the work is done, and a link or a folder at one of the names after some files are written.
    `make=False`: <results>/analysis is not made yet (robustness refuses run ids after this check)."""
    from ..results import ANALYSIS_DIR, analysis_dir, check_output_folder, refuse_a_file_as_results
    refuse_a_file_as_results(args.results)     # the store file given for its folder: said as the tables say it
    if not (out or args.out):
        check_output_folder(args.results, "results folder", entries=(ANALYSIS_DIR,), option="--results")
        if not make:
            return
    check_output_folder(out or args.out or analysis_dir(args.results), "output folder", entries=names)


def write_figures(files: dict, out) -> None:
    """All of a command's files at once (`atomic.write_files`): a full disk or an unwritable --out is one
    line, and leaves none of them half written."""
    from ..atomic import write_files
    for path in write_files(out, files, f"output folder {out}", "--out"):
        print(f"wrote {path}")


def check_figure_files(args, name: str) -> None:
    """The files of the figure `name` (`figure_names`, and `<name>.json`: its `provenance`) in --out or
    <results>/analysis, checked before any work (`check_figures_folder`); `write_figure` writes them."""
    from ..plots.common import figure_names
    check_figures_folder(args, [*figure_names(name), f"{name}.json"])


def write_figure(args, name: str, fig, table, made_by: bytes) -> None:
    """The files `check_figure_files` checked: the figure, the numbers it draws and `made_by` (its `provenance`)."""
    from ..plots.common import figure_files
    from ..results import analysis_dir
    write_figures({**figure_files(fig, table, name), f"{name}.json": made_by}, args.out or analysis_dir(args.results))


def provenance(command: str, args) -> bytes:
    """The JSON beside a command's figures (`<name>.json`; explain: `explain.json` in its folder): the command, its
    options as parsed, and the code that made the figures, named as a run record names a run's (`git_commit`, the
    one home `code_version.git_commit`, read here before any work; `package_version`). Each CSV row names the code
    its run trained with (`code`); the analysis may run on other code, and this says which."""
    import json
    from ..code_version import git_commit
    from ..version import __version__
    return json.dumps({"command": command, "options": vars(args), "git_commit": git_commit(),
                       "package_version": __version__}, indent=1, sort_keys=True).encode() + b"\n"


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


def sensitivity_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run.py sensitivity", description="Run (through the sweep, skipping recorded runs) or "
                      "read one run per value and seed, and plot the key test metric, mean ± std over seeds, "
                      "against the value. --param all does the paper's four (Fig. 3).")
    p.add_argument("-m", "--model", default="atsuko", type=str.lower, help="model (default atsuko)")
    p.add_argument("-d", "--dataset", required=True, type=str.lower, help="dataset")
    p.add_argument("--param", nargs="+", default=["all"],
                   help="lambda_ent, band_mask_rate, lambda_comp, lambda_distill, or all (default)")
    p.add_argument("--values", nargs="+", type=float, help="values to try (one --param only; default its grid)")
    p.add_argument("-s", "--seeds", nargs="+", action="extend", type=int, default=None,
                   help="training seeds (default 1111 1112 1113; repeatable)")
    p.add_argument("--aligned", action="store_true", help="the aligned feature file (mosi, mosei)")
    p.add_argument("--synthetic", action="store_true", help="train (or read) runs on generated data in the real format")
    add_synthetic_recipe(p)              # as run and sweep take it: the runs it trains are theirs
    p.add_argument("--preset", help="named preset block of the model config (e.g. small)")
    p.add_argument("--max-epochs", type=int, help="cap on training epochs")
    p.add_argument("--data-root", help="folder holding MOSI/, MOSEI/, SIMS/, ... (default $MMSA_DATA_ROOT, "
                   "else ~/MMSA/datasets)")
    p.add_argument("--read-only", action="store_true", help="run nothing; plot the runs already recorded")
    add_hardware_options(p)              # the runs it trains are run's runs: same threads, same records
    add_results_option(p)
    p.add_argument("--out", help="folder for the figure (default <results>/analysis)")
    return p


def cmd_sensitivity(argv) -> int:
    args = sensitivity_parser().parse_args(argv)
    import pandas as pd
    from ..analysis import SENSITIVITY_PARAMS, sensitivity_table
    from ..metrics.names import lower_is_better
    from ..plots.analyses import plot_sensitivity
    from ..plots.common import pyplot, runs_data_tag
    from ..config import load_config
    from ..data.synthetic import check_synthetic_request
    from ..data.synthetic_stress import STANDARD, check_recipe_request
    from ..results import ok_records, read_records
    from ..sweep import LocalBackend, default_jobs, parse_devices, sweep
    from ..training.hardware import check_threads, parse_jobs
    from ..training.seed import DEFAULT_SEEDS
    seeds = args.seeds or list(DEFAULT_SEEDS[:3])                 # MMSA's first three
    params = list(SENSITIVITY_PARAMS) if args.param == ["all"] else args.param
    unknown = [p for p in params if p not in SENSITIVITY_PARAMS]
    if unknown:
        raise UsageError(f"unknown --param {', '.join(unknown)}; choose from {', '.join(SENSITIVITY_PARAMS)} or all")
    if args.values and len(params) > 1:
        raise UsageError("--values goes with one --param")
    # A value given twice (0.1 0.1, or 0.1 0.10) was swept twice and drawn as two points at one x; never dropped
    # silently: what was typed is not what is run. A parameter given twice is the same.
    for option, given in (("--param", params), ("--values", args.values or [])):
        if repeated := sorted({v for v in given if given.count(v) > 1}, key=given.index):
            shown = ", ".join(v if isinstance(v, str) else f"{v:g}" for v in repeated)
            raise UsageError(f"{option} repeats {shown}: each is one point of the figure, so give each once")
    # run's checks, with --read-only too: a stress recipe needs --synthetic and a dataset it is made for.
    recipe = check_recipe_request(args.synthetic_recipe, args.synthetic)
    if args.synthetic:
        check_synthetic_request(args.dataset, "small", args.aligned, recipe)
    lacking = [p for p in params if p not in load_config(args.model, args.dataset, preset=args.preset)]
    if lacking:
        raise UsageError(f"{args.model} has no config key {', '.join(lacking)}: sensitivity's parameters are "
                         f"Atsuko's; use -m atsuko (or an Atsuko variant)")
    # Each value held to its key's check here, named as given: the sweep (and --read-only's lookup) checked it as an
    # override and blamed "command-line override -c", which the user never passed.
    for value in args.values or ():
        load_config(args.model, args.dataset, preset=args.preset, overrides=[(params[0], value, "--values")])
    pyplot()
    # Checked here, so that a bad --jobs or --threads is one line with --read-only too.
    jobs = parse_jobs(args.jobs) if args.jobs is not None else default_jobs(parse_devices("auto"), runs=len(seeds))
    check_threads(args.threads)
    # Named as normal/'s CSVs and compare's are: synthetic data's figure ends -synthetic (a later run on the real file
    # overwrote it), a stress recipe's -synthetic-<recipe>, beside the standard one's instead of replacing it; and as
    # leaderboard --figures names its curves, -aligned after the dataset (an aligned run overwrote the unaligned one's).
    stress = args.synthetic and recipe != STANDARD
    kind = ("-synthetic" + (f"-{recipe}" if stress else "")) if args.synthetic else ""
    name = f"sensitivity_{args.model}_{args.dataset}{'-aligned' if args.aligned else ''}{kind}"
    check_figure_files(args, name)
    made_by = provenance("sensitivity", args)          # the code that plots: the runs it trains record their own
    tables = []
    for param in params:
        values = args.values or SENSITIVITY_PARAMS[param]
        swept = set()         # the data ids the sweeps planned on: the figure reads their runs only
        if not args.read_only:
            for i, value in enumerate(values, 1):
                # Each value is a sweep of its own: its progress lines say which value they serve.
                tag = f"[{param}={value:g}, value {i}/{len(values)}]"
                def echo(line, tag=tag):      # the backend's lines too (its runs' logs), tagged alike
                    print(f"{tag} {line}", flush=True)
                summary = sweep(out=args.results, backend=LocalBackend(jobs, "auto", args.threads, echo=echo),
                                precision=args.precision,
                                deterministic=not args.nondeterministic,
                                echo=echo,
                                models=[args.model], datasets=[args.dataset], seeds=seeds, aligned=args.aligned,
                                synthetic=args.synthetic, synthetic_recipe=recipe, preset=args.preset,
                                max_epochs=args.max_epochs,
                                config=[f"{param}={value}"], data_root=args.data_root)
                swept |= {run.data_id for run in summary.plan.runs}
        tables.append(sensitivity_table(args.results, args.model, args.dataset, param, values, seeds,
                                        # --synthetic asks for generated data; without it the data root's
                                        # files are read, which may be generated ones too: take either.
                                        aligned=args.aligned, synthetic=True if args.synthetic else None,
                                        recipe=recipe if args.synthetic else None,
                                        preset=args.preset, max_epochs=args.max_epochs,
                                        data=next(iter(swept)) if len(swept) == 1 else None))
    table = pd.concat(tables, ignore_index=True)
    metric = table.metric.iloc[0]
    where = (f"{args.model} on {args.dataset}{' aligned' if args.aligned else ''}"
             f"{f', {recipe} recipe' if stress else ''}")
    run_ids = {run_id for cell in table.run_ids for run_id in str(cell).split()}   # the runs of its points
    shown = [r for r in ok_records(read_records(Path(args.results))) if r["run_id"] in run_ids]
    fig = plot_sensitivity(table, where, runs_data_tag(shown), lower_is_better(metric))
    write_figure(args, name, fig, table, made_by)
    return 0
