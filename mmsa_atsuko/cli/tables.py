"""Commands that read the results store into tables: leaderboard, compare, verify."""
from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

from ..errors import UsageError
from .common import OneLineParser, add_results_option


def leaderboard_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run.py leaderboard", description="Tables from the results store: one per dataset "
                      "and aligned flag (synthetic and real apart), mean ± sample std over seeds, best marked, "
                      "Welch t-test against the best other model, and the Table 4 ablation.")
    add_results_option(p)
    p.add_argument("-d", "--dataset", nargs="+", action="extend", type=str.lower, help="only these datasets")
    p.add_argument("--format", choices=("md", "csv", "latex"), default="md",
                   help="md (default: Markdown, as printed), csv (every metric apart, one row per model and "
                        "config) or latex")
    p.add_argument("--paper", action="store_true", help="add the seed paper's published rows, in separate blocks")
    p.add_argument("--key-metric", help="metric for the significance test (default MAE; f1 for mintrec)")
    p.add_argument("-o", "--output", help="write to this file instead of the terminal")
    p.add_argument("--by", choices=("missing_rate",), help="missing_rate: each model's key metric against the "
                   "missing rate (mean ± std over seeds) with its area under the curve, and the figure "
                   "(PNG, PDF, CSV; needs the [plots] extra)")
    p.add_argument("--figures", help="folder for the --by figure (default <results>/figures)")
    return p


def cmd_leaderboard(argv) -> int:
    args = leaderboard_parser().parse_args(argv)
    from ..leaderboard import leaderboard
    from ..results import check_output_folder
    # Where it writes, checked before the store is read: a bad -o or --figures is one line, not a traceback.
    if args.output:
        from ..atomic import check_output_file
        output = check_output_file(args.output, "-o")
    if args.by:
        check_output_folder(args.figures or Path(args.results) / "figures", "figures folder", entries=(),
                            option="--figures")
    text = leaderboard(args.results, datasets=args.dataset, fmt=args.format, paper=args.paper,
                       key_metric=args.key_metric, by=args.by)
    if args.output:
        from ..atomic import write_files
        # Whole or not at all: a write that fails half-way (a full disk) left half a table.
        write_files(output.parent, {output.name: text}, f"-o {output}", "-o")
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    if args.by:
        from ..leaderboard.commands import missing_rate_figures
        from ..plots.common import pyplot
        try:
            pyplot()
        except UsageError as e:          # the table stands without its figure
            print(f"note: figure not drawn: {e}", file=sys.stderr)
            return 0
        # Beside a table on stdout these notes go to stderr: `--format csv > curves.csv` must hold the CSV alone.
        notes = sys.stdout if args.output else sys.stderr
        for path in missing_rate_figures(args.results, args.figures or Path(args.results) / "figures",
                                         datasets=args.dataset, key_metric=args.key_metric):
            print(f"wrote {path}", file=notes)
    return 0


def compare_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run.py compare", description="Per-metric difference of a model from baselines, "
                      "with its Welch 95% confidence interval, to <results>/comparison_<model>_<dataset>.csv.")
    p.add_argument("-m", "--model", required=True, type=str.lower, help="the model compared (e.g. atsuko)")
    p.add_argument("--against", nargs="+", action="extend", type=str.lower, required=True, help="baseline models")
    p.add_argument("-d", "--dataset", nargs="+", action="extend", type=str.lower,
                   help="datasets (default: every one the model has runs on)")
    add_results_option(p)
    p.add_argument("--all-configs", action="store_true",
                   help="compare every config of the model with every config of each baseline (default: "
                   "each model's latest config, that of its most recent run on the dataset)")
    return p


def cmd_compare(argv) -> int:
    args = compare_parser().parse_args(argv)
    from ..leaderboard import compare
    # A file is named by the model and dataset only (one per model compared): comparing against another baseline
    # replaces the earlier comparison, which the line must say rather than let it go without a word.
    earlier = set(Path(args.results).glob(f"comparison_{glob.escape(args.model)}_*.csv"))
    for path in compare(args.results, args.model, args.against, args.dataset, all_configs=args.all_configs,
                        warn=lambda line: print(line, file=sys.stderr)):
        print(f"{'replaced' if path in earlier else 'wrote'} {path}")
    return 0


def verify_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run.py verify", description="Compare the store's runs on real data with the published "
                      "numbers the project ships (the seed paper's Tables 1-3), cell by cell: ours mean ± std over "
                      "seeds, published, delta, and whether the delta is within 2 std. Exit 0 when every cell "
                      "agrees, 1 otherwise.")
    p.add_argument("-d", "--dataset", nargs="+", action="extend", type=str.lower, help="only these datasets")
    add_results_option(p)
    return p


def cmd_verify(argv) -> int:
    args = verify_parser().parse_args(argv)
    from ..leaderboard.commands import verify_store
    from ..leaderboard.verify import render_verify
    cells, notes = verify_store(args.results, args.dataset)
    sys.stdout.write(render_verify(cells, notes))
    return 0 if all(c.agrees for c in cells) else 1
