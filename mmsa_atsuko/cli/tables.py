"""Commands that read the results store into tables: leaderboard, compare, verify."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import DataError, UsageError, one_line
from .common import OneLineParser, add_results_option


def leaderboard_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run.py leaderboard", description="Tables from the results store: one per dataset "
                      "and aligned flag (synthetic and real apart), mean ± sample std over seeds, best marked, "
                      "Welch t-test against the best other model, and the Table 4 ablation.")
    add_results_option(p)
    p.add_argument("-d", "--dataset", nargs="+", action="extend", type=str.lower, help="only these datasets")
    p.add_argument("--format", choices=("md", "csv", "latex"), default="md")
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
    # Where it writes, checked before the store is read: a bad -o or --figures was a traceback.
    if args.output:
        output = Path(args.output)
        if output.is_dir():
            raise UsageError(f"-o {output} is a folder; give the name of the file to write")
        if output.is_symlink() or (output.exists() and not output.is_file()):   # a link, /dev/full, /proc/version
            raise UsageError(f"-o {output} is {'a symbolic link' if output.is_symlink() else 'no regular file'}; "
                             "give the name of a file to write, or of a new one")
        check_output_folder(output.parent, f"-o {output}: its folder", entries=(), option="-o")
    if args.by:
        check_output_folder(args.figures or Path(args.results) / "figures", "figures folder", entries=(),
                            option="--figures")
    text = leaderboard(args.results, datasets=args.dataset, fmt=args.format, paper=args.paper,
                       key_metric=args.key_metric, by=args.by)
    if args.output:
        from ..atomic import replace_with
        try:    # whole or not at all: a write that fails half-way (a full disk) left half a table
            output.parent.mkdir(parents=True, exist_ok=True)
            replace_with(output, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        except OSError as e:
            raise DataError(f"-o {output} could not be written ({e.strerror or one_line(e)}); choose another -o") from None
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    if args.by:
        from ..leaderboard.commands import missing_rate_figures
        from ..plots import pyplot
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
    for path in compare(args.results, args.model, args.against, args.dataset, all_configs=args.all_configs,
                        warn=lambda line: print(line, file=sys.stderr)):
        print(f"wrote {path}")
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
