"""Command line: `python run.py -m tfn -d sims`, `python run.py list`, `python run.py synth ...`.

Errors the user can fix are printed as one line and exit non-zero (2 for a bad command
line, 1 for bad data); tracebacks are kept for bugs.
"""
from __future__ import annotations

import argparse
import logging
import sys

from .errors import ToolkitError, UsageError

log = logging.getLogger("mmsa_atsuko")


class OneLineParser(argparse.ArgumentParser):
    """argparse prints usage + error over several lines; we print the error alone."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def train_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run.py", description="Train and test models on datasets over seeds. "
                      "Other commands: run.py list | run.py synth -d DATASET --out DIR")
    p.add_argument("-m", "--model", nargs="+", required=True, help="model name(s), see `run.py list`")
    p.add_argument("-d", "--dataset", nargs="+", required=True, help="dataset name(s)")
    p.add_argument("-s", "--seeds", nargs="+", type=int, default=None,
                   help="seeds (default 1111 1112 1113 1114 1115, as MMSA)")
    p.add_argument("--aligned", action="store_true", help="use the aligned feature file")
    p.add_argument("--data-root", help="folder holding MOSI/, MOSEI/, SIMS/, ... (default $MMSA_DATA_ROOT "
                   "or ~/MMSA/datasets)")
    p.add_argument("--feature-path", help="the feature pickle itself (one dataset)")
    p.add_argument("--synthetic", action="store_true", help="run on generated data in the real format")
    p.add_argument("--synthetic-size", choices=("small", "full"), default="small")
    p.add_argument("--preset", help="named preset block of the model config (e.g. small)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--max-epochs", type=int, help="cap on training epochs")
    p.add_argument("-c", "--config", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (repeatable)")
    p.add_argument("--out", default="results", help="results folder (default results/)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, warnings only")
    return p


def synth_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run.py synth", description="Write a synthetic dataset in the real file format.")
    p.add_argument("-d", "--dataset", required=True)
    p.add_argument("--out", required=True, help="folder to write into")
    p.add_argument("--size", choices=("small", "full"), default="small")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--aligned", action="store_true")
    return p


def cmd_list(argv) -> int:
    OneLineParser(prog="run.py list", description="List models and datasets.").parse_args(argv)
    from .config import datasets_table
    from .registry import get_model_class, list_models
    print("models:")
    for name in list_models():
        try:
            tasks = ", ".join(get_model_class(name).registry_meta.get("tasks", ("regression",)))
        except Exception as e:   # a model whose import breaks is listed with its error, not hidden
            tasks = f"unavailable: {type(e).__name__}: {e}"
        print(f"  {name:<14} {tasks}")
    print("datasets:")
    for name, facts in datasets_table().items():
        print(f"  {name:<14} {facts['task']}, {facts['language']}, settings: {', '.join(facts['files'])}")
    return 0


def cmd_synth(argv) -> int:
    from .data.synthetic import write_synthetic
    from .config import datasets_table
    args = synth_parser().parse_args(argv)
    if args.dataset not in datasets_table():
        raise UsageError(f"unknown dataset {args.dataset!r}; known: {', '.join(datasets_table())}")
    files = datasets_table()[args.dataset]["files"]
    setting = "aligned" if args.aligned else "unaligned"
    if setting not in files:
        raise UsageError(f"{args.dataset} has no {setting} setting")
    from pathlib import Path
    path = write_synthetic(args.dataset, Path(args.out) / files[setting], size=args.size, seed=args.seed,
                           aligned=args.aligned)
    print(f"wrote {path} (synthetic {args.dataset}, {args.size}, seed {args.seed})")
    return 0


def print_table(records) -> None:
    from .metrics import metric_keys
    for dataset in dict.fromkeys(r["dataset"] for r in records):
        rows = [r for r in records if r["dataset"] == dataset]
        keys = list(metric_keys(dataset))
        label = " (synthetic data)" if rows[0]["synthetic"] else ""
        print(f"\n{dataset}{' aligned' if rows[0]['aligned'] else ''}{label}: test metrics of the best-valid epoch")
        header = f"{'model':<12} {'seed':>5} {'epoch':>5} " + " ".join(f"{k:>13}" for k in keys)
        print(header)
        for r in rows:
            cells = " ".join(f"{_fmt(r['metrics'].get(k)):>13}" for k in keys)
            print(f"{r['model']:<12} {r['seed']:>5} {r['best_epoch']:>5} {cells}")
    print(f"\nrecords appended to {records[0]['run_dir'].rsplit('/runs/', 1)[0]}/runs.jsonl")


def _fmt(v) -> str:
    return "nan" if v is None or v != v else f"{v:.4f}"


def cmd_train(argv) -> int:
    args = train_parser().parse_args(argv)
    from .api import run
    from .training.seed import DEFAULT_SEEDS
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    records = run(args.model, args.dataset, seeds=args.seeds or DEFAULT_SEEDS, config=args.config,
                  aligned=args.aligned, data_root=args.data_root, feature_path=args.feature_path,
                  synthetic=args.synthetic, synthetic_size=args.synthetic_size, preset=args.preset,
                  device=args.device, max_epochs=args.max_epochs, out=args.out, quiet=args.quiet)
    print_table(records)
    return 0


COMMANDS = {"list": cmd_list, "synth": cmd_synth}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = COMMANDS.get(argv[0], None) if argv else None
    try:
        return command(argv[1:]) if command else cmd_train(argv)
    except ToolkitError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
