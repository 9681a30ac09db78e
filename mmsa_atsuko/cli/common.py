"""What every command shares: the one-line argparse parser, the top-level help, and the option
groups that several commands take (hardware, protocol conditions, checkpoints, the synthetic recipe)."""
from __future__ import annotations

import argparse
import difflib
import logging
import sys


class OneLineParser(argparse.ArgumentParser):
    """argparse prints usage + error over several lines; we print the error alone. Long options
    must be spelled out: argparse's prefix matching read `leaderboard --out DIR` (run and sweep
    name their results folder --out) as --output DIR, a file to overwrite."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        # main() takes --datasets and --models before any parser runs, so no parser declares them: say so in each help.
        kwargs.setdefault("epilog", DATASETS_OPTION)
        super().__init__(*args, **kwargs)

    def parse_args(self, args=None, namespace=None):
        """argparse reports a missing required option before an unknown one: `tune ... --trails 2` said only
        "--trials required", hiding the typo that caused it. Every command's unknown options come first."""
        args = sys.argv[1:] if args is None else list(args)
        unknown = self._unknown_arguments(args)
        if unknown:
            self.error(f"unrecognized arguments: {' '.join(unknown)}")
        return super().parse_args(args, namespace)

    def _unknown_arguments(self, args: list) -> list:
        """What parse_args would call unrecognized, found with nothing required (argparse's other errors, a bad
        value, still come from the parse itself)."""
        switched = [a for a in self._actions if a.required] + [g for g in self._mutually_exclusive_groups
                                                                 if g.required]
        for item in switched:
            item.required = False
        try:
            return super().parse_known_args(args, None)[1]
        finally:
            for item in switched:
                item.required = True

    def error(self, message):
        hint = self._results_hint(message) or self._close_options_hint(message)
        self.exit(2, f"{self.prog}: error: {message}{hint} (see --help)\n")

    def _close_options_hint(self, message: str) -> str:
        """`; did you mean --trials?` for each unrecognized option (`--trails 2`, `--trails=2`) with a close name
        (difflib) among this command's long options and the ones every command takes (--datasets, --models): a
        suggestion said, never an option taken in its place (no prefix matching, see the class). One home for every
        command: each parser is a OneLineParser."""
        given = message.partition("unrecognized arguments:")[2].split()
        # Matched without the dashes every long option shares: with them, --bogus was 'close' to --figures.
        known = [name[2:] for name, action in self._option_string_actions.items()
                 if name.startswith("--") and action.help != argparse.SUPPRESS] + [o[2:] for o in GLOBAL_OPTIONS]
        pairs, takes_none = {}, []
        for arg in given:
            name = arg.partition("=")[0]
            if not name.startswith("--") or name in pairs or name in takes_none:
                continue
            # `leaderboard --model tfn` was offered --models, a folder of model code, and then said the folder
            # .../tfn does not exist: a global's singular is a name this command does not take, said so.
            plural = name + "s" if name + "s" in GLOBAL_OPTIONS else None
            close = difflib.get_close_matches(name[2:], [k for k in known if f"--{k}" != plural], n=1)
            if close:
                pairs[name] = f"--{close[0]}"
            elif plural:
                takes_none.append(name)
        hint = ""
        if len(pairs) == 1:
            hint = f"; did you mean {next(iter(pairs.values()))}?"
        elif pairs:
            hint = "; did you mean " + ", ".join(f"{close} for {name}" for name, close in pairs.items()) + "?"
        for name in takes_none:
            hint += f"; this command takes no {name} ({name}s {GLOBAL_TAKES[name + 's']})"
        return hint

    def _results_hint(self, message: str) -> str:
        """run and sweep name the results folder --out; the commands that read it name it --results, and
        `leaderboard --out DIR` said only that --out was not recognized."""
        given = message.partition("unrecognized arguments:")[2].split()
        if (any(a == "--out" or a.startswith("--out=") for a in given) and "--results" in self._option_string_actions
                and "--out" not in self._option_string_actions):
            return "; the results folder that run and sweep write with --out is --results here"
        return ""


# The options main() takes before any command's parser runs (cli/__init__.py), so every command takes them.
GLOBAL_OPTIONS = ("--datasets", "--models")
GLOBAL_TAKES = {"--datasets": "FILE is a YAML file of datasets of your own",
                "--models": "DIR is a folder of models of your own"}

DATASETS_OPTION = ("Every command takes --datasets FILE (repeatable): datasets of your own, as blocks like "
                   "configs/datasets.yaml's; and --models DIR (repeatable): a folder of models of your own, each "
                   "a <name>.py registering it with its <name>.yaml beside it.")

# One line per command for the top-level help; the order is the order of a typical session.
COMMAND_HELP = {
    "(no command)": "train and test models on datasets over seeds: run.py -m MODEL -d DATASET [options]",
    "list": "models (with the tasks they support) and datasets",
    "synth": "write a synthetic dataset in the real file format",
    "download": "fetch MMSA's feature files and check their SHA-256, or --check the data root",
    "extract": "your own videos + transcript CSV -> an MMSA-format feature pickle (needs the [extract] extra)",
    "sweep": "models x datasets x seeds from a YAML file or lists, skipping recorded runs; local or Ray",
    "tune": "Optuna search of one model's config, scored on valid only, then its best config on every seed",
    "leaderboard": "tables from the results store: mean ± std over seeds, best marked, Welch test",
    "compare": "per-metric difference of one model from baselines, with 95% CIs (prints and writes a CSV)",
    "explain": "figures of what Atsuko's routers learned in one run",
    "robustness": "re-test trained runs under noise, a zeroed modality and frame drops",
    "tsne": "t-SNE of the fused test features of the Atsuko ablation runs",
    "sensitivity": "train (or read) one run per parameter value and plot the key metric against it",
    "verify": "the store's real-data runs against the published numbers, cell by cell (exit 1 on a miss)",
    "clean": "remove the .partial folders that dead runs left in a results folder (live runs are kept); "
             "--extract-cache: empty extract's cache of video features",
    "predict": "a trained run's predictions on new features or videos, checked against its model.json",
    "results": "--recover: fold the records that could not be appended (full disk, unwritable store) into the store",
}


def overview() -> str:
    width = max(map(len, COMMAND_HELP))
    lines = [f"  {name:<{width}}  {text}" for name, text in COMMAND_HELP.items()]
    return ("commands (run.py COMMAND --help for each):\n" + "\n".join(lines)
            + f"\n\n{DATASETS_OPTION}"
            + "\nrun.py, python -m mmsa_atsuko and mmsa-atsuko are the same command.")


SYNTHETIC_SIZE_HELP = ("with --synthetic: small (default), at most a few hundred samples per split and 24 frames per "
                       "sequence at the real feature dims, to check the plumbing in seconds; full, the real file's "
                       "split sizes and padded shapes (datasets.yaml real_sizes, real_shapes)")


def add_results_option(p: argparse.ArgumentParser) -> None:
    """--results, the results folder a reading or maintaining command works on."""
    p.add_argument("--results", default="results", help="results folder holding runs.jsonl (default results/)")


def add_hardware_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--jobs", default=None, help="runs at once, in worker processes: N or auto (CPU: the cores over "
                   "--threads; CUDA: as many as the first run's peak memory allows). Default: auto with several "
                   "runs on CUDA, else 1 (in process)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads per run (default 1: two threads on a "
                   "busy 2-core machine ran a small run several times slower; see bench/README.md)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="fp32, or bf16 autocast of the forward pass (default fp32)")
    p.add_argument("--nondeterministic", action="store_true", help="let torch pick non-deterministic (faster) "
                   "GPU kernels; by default two runs with one seed give identical metrics")


def add_threads_option(p: argparse.ArgumentParser) -> None:
    """--threads of a command that runs trained models in its own process (explain, robustness, tsne, predict).
    Left to torch, they used every core: robustness took 40 s at 2 threads and 12 s at 1 on a busy 2-core
    machine, as training's --threads default found (bench/README.md, "Threads")."""
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, as run.py's: torch's "
                   "default, every core, ran robustness 3x slower on a busy 2-core machine)")


def use_threads(args) -> None:
    """Set torch's CPU threads from --threads (add_threads_option), checked: 0 is one line, exit 2."""
    from ..training.hardware import check_threads
    threads = check_threads(args.threads)
    import torch
    torch.set_num_threads(threads)


def add_condition_args(p: argparse.ArgumentParser) -> None:
    """The protocol axes (data/conditions.py); every combination given is run."""
    p.add_argument("--missing-rate", nargs="+", type=float, metavar="R", help="train, validate and test with each "
                   "real frame of every modality missing with probability R (zeros; BERT tokens -> [UNK]), seeded "
                   "by data file, split and modality; several rates: one run per rate (default 0)")
    p.add_argument("--drop-modality", nargs="+", type=str.upper, choices=("T", "A", "V"), metavar="T|A|V",
                   help="every frame of this modality missing, at train and test time")
    p.add_argument("--modalities", nargs="+", type=str.upper, metavar="SUBSET",
                   help="modality subset(s): T A V TA TV AV TAV (default TAV); the others become an empty input")


def condition_list(args):
    from ..data.conditions import conditions
    return conditions(args.missing_rate, args.drop_modality, args.modalities)


def add_save_checkpoint(p: argparse.ArgumentParser) -> None:
    p.add_argument("--save-checkpoint", choices=("best", "none"), default="best",
                   help="best: keep the best-valid weights as best.pt in the run folder (default); none: keep no "
                        "weights (the same metrics: the best epoch is tested from memory)")


def add_synthetic_recipe(p: argparse.ArgumentParser, default: str | None = "standard") -> None:
    """--synthetic-recipe, the recipe of the data --synthetic generates (run, sweep, tune, sensitivity; `synth`
    writes a file without --synthetic and has its own). `default` None: a sweep file's own value wins."""
    from ..data.synthetic_stress import RECIPES
    p.add_argument("--synthetic-recipe", choices=RECIPES, default=default, type=str.lower,
                   help="with --synthetic: standard (default), or a stress recipe where routing by sample can pay "
                        "(corrupt, bands, redundant; mosi, mosei, sims, simsv2)")


def log_to_stderr(level: int = logging.INFO) -> None:
    """The package's log lines on stderr from `level` up, as run.py prints them (a time, then the line): predict's
    warning of huge feature values was lost without it."""
    logging.basicConfig(level=level, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
