"""`run.py sensitivity`: the one analysis command that trains (through the sweep, skipping recorded runs) before
it plots the key test metric against each value of an Atsuko parameter."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UsageError
from .common import OneLineParser, add_hardware_options, add_results_option, add_synthetic_recipe
from .figures import check_figure_files, provenance, write_figure


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
