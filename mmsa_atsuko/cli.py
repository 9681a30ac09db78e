"""Command line: `python run.py -m tfn -d sims`, `python run.py list`, `python run.py synth ...`.

Errors the user can fix are printed as one line and exit non-zero (2 for a bad command
line, 1 for bad data); tracebacks are kept for bugs.
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import shlex
import shutil
import sys
from pathlib import Path

from .config import DATASETS_ENV, datasets_table
from .data.synthetic_stress import RECIPES
from .errors import ToolkitError, UsageError

log = logging.getLogger("mmsa_atsuko")


class OneLineParser(argparse.ArgumentParser):
    """argparse prints usage + error over several lines; we print the error alone."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


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
    "clean": "remove the .partial folders that dead runs left in a results folder (live runs are kept)",
    "predict": "a trained run's predictions on new features or videos, checked against its model.json",
    "results": "--recover: fold the records that could not be appended (full disk, unwritable store) into the store",
}


def overview() -> str:
    width = max(map(len, COMMAND_HELP))
    lines = [f"  {name:<{width}}  {text}" for name, text in COMMAND_HELP.items()]
    return ("commands (run.py COMMAND --help for each):\n" + "\n".join(lines)
            + "\n\nEvery command takes --datasets FILE: datasets of your own, as blocks like configs/datasets.yaml's."
            + "\nrun.py, python -m mmsa_atsuko and mmsa-atsuko are the same command.")


def train_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run.py", description="Train and test models on datasets over seeds.",
                      epilog=overview(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-m", "--model", nargs="+", action="extend", type=str.lower, required=True,
                   help="model name(s), see `run.py list` (repeatable, any case)")
    p.add_argument("-d", "--dataset", nargs="+", action="extend", type=str.lower, required=True,
                   help="dataset name(s) (repeatable, any case)")
    p.add_argument("-s", "--seeds", nargs="+", action="extend", type=int, default=None,
                   help="seeds (default 1111 1112 1113 1114 1115, as MMSA; -s 1111 -s 1112 keeps both)")
    p.add_argument("--aligned", action="store_true", help="use the aligned feature file")
    p.add_argument("--data-root", help="folder holding MOSI/, MOSEI/, SIMS/, ... (default $MMSA_DATA_ROOT "
                   "or ~/MMSA/datasets)")
    p.add_argument("--feature-path", help="the feature pickle itself (one dataset)")
    p.add_argument("--synthetic", action="store_true", help="run on generated data in the real format")
    p.add_argument("--synthetic-size", choices=("small", "full"), default="small")
    p.add_argument("--synthetic-recipe", choices=RECIPES, default="standard", type=str.lower,
                   help="with --synthetic: standard, or a stress recipe where routing by sample can pay "
                        "(corrupt, bands, redundant; mosi, mosei, sims, simsv2)")
    p.add_argument("--preset", help="named preset block of the model config (e.g. small)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--max-epochs", type=int, help="cap on training epochs")
    p.add_argument("-c", "--config", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (repeatable)")
    p.add_argument("--out", default="results", help="results folder (default results/)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, warnings only")
    p.add_argument("--resume", action="store_true", help="continue each run that an earlier, interrupted call "
                   "left unfinished (same model, dataset, seed, config and data) from its last finished epoch; "
                   "without it, such a leftover folder is removed and the run starts again")
    p.add_argument("--tensorboard", action="store_true", help="write per-epoch scalars (train losses, valid "
                   "metrics, learning rates) to <run folder>/tensorboard/ (needs the [tensorboard] extra)")
    p.add_argument("--rerun", action="store_true", help="train seeds already recorded again (default: skip them)")
    add_save_checkpoint(p)
    add_hardware_options(p)
    add_condition_args(p)
    return p


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
    from .data.conditions import conditions
    return conditions(args.missing_rate, args.drop_modality, args.modalities)


def add_save_checkpoint(p: argparse.ArgumentParser) -> None:
    p.add_argument("--save-checkpoint", choices=("best", "none"), default="best",
                   help="best: keep the best-valid weights as best.pt in the run folder (default); none: keep no "
                        "weights (the same metrics: the best epoch is tested from memory)")


def synth_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run.py synth", description="Write a synthetic dataset in the real file format.")
    p.add_argument("-d", "--dataset", required=True, type=str.lower)
    p.add_argument("--out", required=True, help="folder to write into")
    p.add_argument("--size", choices=("small", "full"), default="small")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--aligned", action="store_true")
    p.add_argument("--synthetic-recipe", choices=RECIPES, default="standard", type=str.lower,
                   help="standard, or a stress recipe: corrupt, bands, redundant (not mintrec)")
    return p


def cmd_list(argv) -> int:
    OneLineParser(prog="run.py list", description="List models and datasets.").parse_args(argv)
    from .config import datasets_table
    from .registry import get_model_class, import_errors, list_models
    print("models:")
    for name in list_models():
        print(f"  {name:<14} {', '.join(get_model_class(name).registry_meta.get('tasks', ('regression',)))}")
    for module, error in import_errors().items():   # a module that breaks is listed with its error, not hidden
        print(f"  {module:<14} unavailable: {error}")
    print("datasets:")
    for name, facts in datasets_table().items():
        print(f"  {name:<14} {facts['task']}, {facts['language']}, settings: {', '.join(facts['files'])}")
    return 0


def cmd_synth(argv) -> int:
    from .config import dataset_facts
    from .data.synthetic import write_synthetic
    from .results import check_output_folder
    args = synth_parser().parse_args(argv)
    files = dataset_facts(args.dataset)["files"]
    setting = "aligned" if args.aligned else "unaligned"
    if setting not in files:
        raise UsageError(f"{args.dataset} has no {setting} setting")
    check_output_folder(args.out, "output folder")
    path = write_synthetic(args.dataset, Path(args.out) / files[setting], size=args.size, seed=args.seed,
                           aligned=args.aligned, recipe=args.synthetic_recipe)
    print(f"wrote {path} (synthetic {args.dataset}, {args.synthetic_recipe} recipe, {args.size}, seed {args.seed})")
    if args.dataset == "mintrec":      # a folder that brings its own tiny BERT (tokenizer + weights)
        print(f"run on it with: python run.py -m MODEL -d mintrec --feature-path {shlex.quote(str(path))} "
              f"-c pretrained={shlex.quote(str(path / 'bert-synthetic-en'))}")
    else:
        print(f"run on it with: python run.py -m MODEL -d {args.dataset}{' --aligned' if args.aligned else ''} "
              f"--feature-path {shlex.quote(str(path))}")
    return 0


def print_table(records, out) -> None:
    """Per dataset: one line per seed, then, per model with several seeds, their mean ± sample std
    (ddof 1, as the leaderboard's cells)."""
    from .data.conditions import condition_of
    from .metrics import metric_keys

    def row_name(r):           # one row group per model and protocol condition
        key = condition_of(r).key()
        return f"{r['model']} [{key}]" if key else r["model"]
    for dataset in dict.fromkeys(r["dataset"] for r in records):
        rows = [r for r in records if r["dataset"] == dataset]
        keys = list(metric_keys(dataset))
        label = " (synthetic data)" if rows[0]["synthetic"] else ""
        print(f"\n{dataset}{' aligned' if rows[0]['aligned'] else ''}{label}: test metrics of the best-valid epoch")
        print(f"{'model':<12} {'seed':>5} {'epoch':>5} " + " ".join(f"{k:>15}" for k in keys))
        for model in dict.fromkeys(map(row_name, rows)):
            runs = [r for r in rows if row_name(r) == model]
            for r in runs:
                cells = " ".join(f"{_fmt(r['metrics'].get(k)):>15}" for k in keys)
                print(f"{model:<12} {r['seed']:>5} {r.get('best_epoch', '?'):>5} {cells}")
            if len(runs) > 1:
                cells = " ".join(f"{_mean_std([r['metrics'].get(k) for r in runs]):>15}" for k in keys)
                print(f"{model:<12} {'mean ± std':>11} {cells}")
    print(f"\nrecords appended to {Path(out) / 'runs.jsonl'}")


def _fmt(v) -> str:
    return "nan" if v is None or v != v else f"{v:.4f}"


def _mean_std(values) -> str:
    if any(v is None or v != v for v in values):
        return "nan"
    mean = math.fsum(values) / len(values)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{mean:.4f}±{std:.4f}"


def cmd_train(argv) -> int:
    args = train_parser().parse_args(argv)
    from .api import run, unfinished_runs
    from .training.seed import DEFAULT_SEEDS
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    seeds = args.seeds or DEFAULT_SEEDS
    jobs = train_jobs(args, len(args.model) * len(args.dataset) * len(seeds))
    if jobs == 1:
        records = run(args.model, args.dataset, seeds=seeds, config=args.config,
                      aligned=args.aligned, data_root=args.data_root, feature_path=args.feature_path,
                      synthetic=args.synthetic, synthetic_size=args.synthetic_size,
                      synthetic_recipe=args.synthetic_recipe, preset=args.preset, device=args.device,
                      max_epochs=args.max_epochs, out=args.out, quiet=args.quiet,
                      resume=args.resume, tensorboard=args.tensorboard,
                      rerun=args.rerun, save_checkpoint=args.save_checkpoint, threads=args.threads,
                      precision=args.precision, deterministic=not args.nondeterministic,
                      conditions=condition_list(args))
    else:
        from .sweep import LocalBackend, run_packed
        records = run_packed(args.model, args.dataset, seeds, out=args.out,
                             backend=LocalBackend(jobs, args.device, args.threads),
                             echo=lambda line: print(line, flush=True), save_checkpoint=args.save_checkpoint,
                             precision=args.precision, deterministic=not args.nondeterministic,
                             aligned=args.aligned, data_root=args.data_root, feature_path=args.feature_path,
                             synthetic=args.synthetic, synthetic_size=args.synthetic_size, preset=args.preset,
                             max_epochs=args.max_epochs, config=args.config, missing_rates=args.missing_rate,
                             drop_modality=args.drop_modality, modalities=args.modalities,
                             synthetic_recipe=args.synthetic_recipe)
    print_table(records, args.out)
    stale = sum(1 for _ in unfinished_runs(args.out))
    if stale:
        print(f"note: {Path(args.out) / 'runs'} holds {stale} .partial folder(s) of unfinished runs that no process "
              f"is running; `python run.py clean --results {shlex.quote(args.out)}` removes them")
    return 0


def train_jobs(args, runs: int) -> int | str:
    """`--jobs` of a training command: as given, or the default for its device and number of runs.
    The in-process options (--rerun, --resume, --tensorboard) keep it at 1."""
    from .sweep import default_jobs, parse_devices
    from .training.hardware import parse_jobs
    in_process_only = [f for f, on in (("--rerun", args.rerun), ("--resume", args.resume),
                                       ("--tensorboard", args.tensorboard)) if on]
    if args.jobs is None:
        return 1 if in_process_only else default_jobs(parse_devices(args.device), runs)
    jobs = parse_jobs(args.jobs)
    if jobs != 1 and in_process_only:
        raise UsageError(f"{', '.join(in_process_only)} run(s) in process: drop --jobs, or give --jobs 1")
    return jobs


def cmd_clean(argv) -> int:
    p = OneLineParser(prog="run.py clean", description="Remove the .partial folders that unfinished runs (killed, "
                      "crashed) left in <results>/runs. A folder whose run is alive (its lock is held, e.g. by a "
                      "sweep) is kept. `run.py ... --resume` continues such a run instead.")
    p.add_argument("--results", default="results", help="results folder (default results/)")
    args = p.parse_args(argv)
    from .api import unfinished_runs
    if not Path(args.results).is_dir():
        raise UsageError(f"results folder {args.results} does not exist; pass --results DIR")
    runs = Path(args.results) / "runs"
    removed = 0
    for folder in unfinished_runs(args.results):
        shutil.rmtree(folder)
        print(f"removed {folder}")
        removed += 1
    alive = len(list(runs.glob(".*.partial")))
    print(f"removed {removed} unfinished run folder(s) from {runs}"
          + (f"; kept {alive} of run(s) still running" if alive else ""))
    return 0


def sweep_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run.py sweep", description="Run models x datasets x seeds, skipping runs already "
                      "recorded; a killed sweep resumes where it stopped. Either a sweep file "
                      "(configs/sweeps/*.yaml) or -m and -d lists; with a file, -m/-d/--aligned keep only those runs.")
    p.add_argument("file", nargs="?", help="sweep YAML (models, datasets, aligned flags, seeds, config overrides)")
    p.add_argument("-m", "--model", nargs="+", action="extend", type=str.lower, help="model name(s)")
    p.add_argument("-d", "--dataset", nargs="+", action="extend", type=str.lower, help="dataset name(s)")
    p.add_argument("-s", "--seeds", nargs="+", action="extend", type=int,
                   help="seeds (default: the file's, else 1111-1115; repeatable)")
    p.add_argument("--aligned", action="store_true", help="aligned feature files (with a file: aligned runs only)")
    p.add_argument("--data-root", help="folder holding MOSI/, MOSEI/, SIMS/, ...")
    p.add_argument("--feature-path", help="the feature pickle itself (one dataset)")
    p.add_argument("--synthetic", action="store_true", help="run on generated data in the real format")
    p.add_argument("--synthetic-size", choices=("small", "full"))
    p.add_argument("--synthetic-recipe", choices=RECIPES, type=str.lower,
                   help="with --synthetic: standard (default) or a stress recipe: corrupt, bands, redundant")
    p.add_argument("--preset", help="named preset block of the model configs (e.g. small)")
    p.add_argument("--max-epochs", type=int, help="cap on training epochs")
    p.add_argument("-c", "--config", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key in every run (repeatable)")
    p.add_argument("--out", default="results", help="results folder (default results/)")
    p.add_argument("--dry-run", action="store_true", help="list the runs that would run, run nothing")
    p.add_argument("--retry-failed", action="store_true", help="run again the runs recorded as failed")
    p.add_argument("--backend", choices=("local", "ray"), default="local")
    p.add_argument("--jobs", default=None, help="local: runs at once in worker processes, N or auto (CPU: the cores "
                   "over --threads; CUDA: as many as the first run's peak memory allows). Default: auto on CUDA, "
                   "else 1 (in process)")
    p.add_argument("--threads", type=int, default=1, help="local: torch CPU threads per run (default 1; ray: --cpus-per-run)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="fp32, or bf16 autocast of the forward pass (default fp32)")
    p.add_argument("--nondeterministic", action="store_true", help="let torch pick non-deterministic (faster) "
                   "GPU kernels")
    p.add_argument("--devices", "--device", default=None,
                   help="local: devices given to workers round-robin, e.g. cuda:0,cuda:1 (default auto: every visible GPU, else cpu)")
    p.add_argument("--address", help="ray: cluster address, auto or HOST:PORT (default: start a local instance)")
    p.add_argument("--gpus-per-run", type=float, default=None, help="ray: GPUs per run (0.5: two runs share one)")
    p.add_argument("--cpus-per-run", type=float, default=None, help="ray: CPUs per run (default 1)")
    add_save_checkpoint(p)
    add_condition_args(p)
    return p


def cmd_sweep(argv) -> int:
    args = sweep_parser().parse_args(argv)
    from .sweep import LocalBackend, RayBackend, default_jobs, parse_devices, sweep
    if args.backend == "local":
        misplaced = [f for f, v in (("--address", args.address), ("--gpus-per-run", args.gpus_per_run),
                                    ("--cpus-per-run", args.cpus_per_run)) if v is not None]
        if misplaced:
            raise UsageError(f"{', '.join(misplaced)} only apply to --backend ray")
        devices = args.devices or "auto"
        jobs = args.jobs if args.jobs is not None else default_jobs(parse_devices(devices), runs=2)
        backend = LocalBackend(jobs, devices, args.threads, echo=lambda line: print(line, flush=True))
    else:
        if args.jobs is not None or args.devices:
            raise UsageError("--jobs and --devices are for --backend local; with ray use --gpus-per-run/--cpus-per-run")
        backend = RayBackend(args.address, args.gpus_per_run or 0.0,
                             1.0 if args.cpus_per_run is None else args.cpus_per_run)
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING)            # run details go to each run's train.log
    root, package = logging.getLogger(), logging.getLogger("mmsa_atsuko")
    package_level = package.level
    root.addHandler(console)
    package.setLevel(logging.INFO)
    try:
        summary = sweep(args.file, out=args.out, dry_run=args.dry_run, retry_failed=args.retry_failed,
                        backend=backend, echo=lambda line: print(line, flush=True),
                        save_checkpoint=args.save_checkpoint, precision=args.precision,
                        deterministic=not args.nondeterministic, models=args.model, datasets=args.dataset, seeds=args.seeds, aligned=args.aligned,
                        synthetic=args.synthetic, synthetic_size=args.synthetic_size, preset=args.preset,
                        max_epochs=args.max_epochs, config=args.config, data_root=args.data_root,
                        feature_path=args.feature_path, missing_rates=args.missing_rate,
                        drop_modality=args.drop_modality, modalities=args.modalities,
                        synthetic_recipe=args.synthetic_recipe)
    finally:                                     # main() called in process leaves logging as it found it
        root.removeHandler(console)
        package.setLevel(package_level)
    if args.dry_run:
        return 0
    # A sweep succeeds when every one of its runs has an ok record: failures from this call and
    # earlier ones that were skipped both leave it incomplete.
    failed = len(summary.failed) + summary.plan.failed_skipped
    if failed:
        print(f"error: {failed} run(s) of this sweep have failed (recorded with their errors in "
              f"{args.out}/runs.jsonl; --retry-failed runs them again)", file=sys.stderr)
        return 1
    return 0


def tune_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run.py tune", description="Search a model's config with Optuna (seeded TPE, median "
                      "pruning on the validation metric; the test split is never evaluated), stored in SQLite in "
                      "<out>/tune/ so that a killed tune resumes; then run the best config on every seed, recorded "
                      "as normal runs labelled with the study's name.")
    p.add_argument("-m", "--model", required=True, type=str.lower)
    p.add_argument("-d", "--dataset", required=True, type=str.lower)
    p.add_argument("--trials", type=int, required=True, help="finished trials the study should hold")
    p.add_argument("--space", help="search space YAML (default configs/tune/<model>.yaml)")
    p.add_argument("--study", help="study name (default tune-<model>-<dataset>[-aligned]); the same name resumes")
    p.add_argument("--tune-seed", type=int, default=0, help="TPE sampler seed (default 0)")
    p.add_argument("-s", "--seeds", nargs="+", action="extend", type=int, default=None,
                   help="seeds of the best config's runs (default 1111-1115); trials train the first")
    p.add_argument("--aligned", action="store_true")
    p.add_argument("--data-root", help="folder holding MOSI/, MOSEI/, SIMS/, ...")
    p.add_argument("--feature-path", help="the feature pickle itself")
    p.add_argument("--synthetic", action="store_true", help="run on generated data in the real format")
    p.add_argument("--synthetic-size", choices=("small", "full"), default="small")
    p.add_argument("--preset", help="named preset block of the model config (e.g. small)")
    p.add_argument("--max-epochs", type=int, help="cap on training epochs")
    p.add_argument("-c", "--config", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key in every trial (repeatable)")
    p.add_argument("--out", default="results", help="results folder (default results/)")
    p.add_argument("--jobs", type=int, default=1, help="trials at once, in worker processes (default 1: in process)")
    p.add_argument("--devices", "--device", default="auto", help="devices given to workers round-robin")
    return p


def cmd_tune(argv) -> int:
    args = tune_parser().parse_args(argv)
    from .sweep import LocalBackend
    from .sweep.tune import tune
    from .training.seed import DEFAULT_SEEDS
    tune(args.model, args.dataset, trials=args.trials, out=args.out, space_file=args.space, study_name=args.study,
         seed=args.tune_seed, seeds=args.seeds or DEFAULT_SEEDS, backend=LocalBackend(args.jobs, args.devices),
         echo=lambda line: print(line, flush=True), aligned=args.aligned, data_root=args.data_root,
         feature_path=args.feature_path, synthetic=args.synthetic, synthetic_size=args.synthetic_size,
         preset=args.preset, max_epochs=args.max_epochs, overrides=args.config)
    return 0


def leaderboard_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run.py leaderboard", description="Tables from the results store: one per dataset "
                      "and aligned flag (synthetic and real apart), mean ± sample std over seeds, best marked, "
                      "Welch t-test against the best other model, and the Table 4 ablation.")
    p.add_argument("--results", default="results", help="results folder holding runs.jsonl (default results/)")
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
    from .leaderboard import leaderboard
    text = leaderboard(args.results, datasets=args.dataset, fmt=args.format, paper=args.paper,
                       key_metric=args.key_metric, by=args.by)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    if args.by:
        from .leaderboard.commands import missing_rate_figures
        from .plots import pyplot
        try:
            pyplot()
        except UsageError as e:          # the table stands without its figure
            print(f"note: figure not drawn: {e}", file=sys.stderr)
            return 0
        for path in missing_rate_figures(args.results, args.figures or Path(args.results) / "figures",
                                         datasets=args.dataset, key_metric=args.key_metric):
            print(f"wrote {path}")
    return 0


def compare_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run.py compare", description="Per-metric difference of a model from baselines, "
                      "with its Welch 95% confidence interval, to <results>/comparison_<dataset>.csv.")
    p.add_argument("-m", "--model", required=True, type=str.lower, help="the model compared (e.g. atsuko)")
    p.add_argument("--against", nargs="+", action="extend", type=str.lower, required=True, help="baseline models")
    p.add_argument("-d", "--dataset", nargs="+", action="extend", type=str.lower,
                   help="datasets (default: every one the model has runs on)")
    p.add_argument("--results", default="results", help="results folder holding runs.jsonl (default results/)")
    p.add_argument("--all-configs", action="store_true",
                   help="compare every config of the model with every config of each baseline (default: "
                   "each model's latest config, that of its most recent run on the dataset)")
    return p


def cmd_compare(argv) -> int:
    args = compare_parser().parse_args(argv)
    from .leaderboard import compare
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
    p.add_argument("--results", default="results", help="results folder holding runs.jsonl (default results/)")
    return p


def cmd_verify(argv) -> int:
    args = verify_parser().parse_args(argv)
    from .leaderboard.commands import verify_store
    from .leaderboard.verify import render_verify
    cells, notes = verify_store(args.results, args.dataset)
    sys.stdout.write(render_verify(cells, notes))
    return 0 if all(c.agrees for c in cells) else 1


def download_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run.py download",
                      description="Fetch MMSA's published feature files (gdown, from the Google Drive folder in "
                      "MMSA's README), check their SHA-256 where MMSA publishes one, and put them where "
                      "`run.py -d` looks; or, with --check, report what the data root holds.")
    p.add_argument("dataset", nargs="*", help="mosi, mosei, sims and/or simsv2")
    p.add_argument("--aligned", action="store_true", help="the aligned file (mosi, mosei)")
    p.add_argument("--data-root", help="folder to put MOSI/, MOSEI/, SIMS/, ... in (default $MMSA_DATA_ROOT "
                   "or ~/MMSA/datasets)")
    p.add_argument("--check", action="store_true", help="report, for every dataset, whether its files are present "
                   "and verified (exit 1 if one is present but damaged); downloads nothing")
    return p


def cmd_download(argv) -> int:
    from .data import download as dl
    args = download_parser().parse_args(argv)
    if args.check:
        if args.dataset or args.aligned:
            raise UsageError("download --check reports every dataset: give it no dataset and no --aligned")
        root, how = dl.data_root_of(args.data_root)
        statuses = dl.check(root)
        print(f"data root {root} ({how})")
        for s in statuses:
            print(f"  {s.dataset:<8} {s.setting:<10} {s.state:<9} {s.path}  ({s.detail})")
        return 1 if any(s.state == "bad" for s in statuses) else 0
    if not args.dataset:
        raise UsageError("name the dataset(s) to download (mosi, mosei, sims, simsv2), or pass --check")
    dl.download(args.dataset, aligned=args.aligned, data_root=args.data_root)
    return 0


def explain_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run.py explain", description="Figures of what Atsuko's routers learned (PNG + PDF + "
                      "CSV each): spectral energy with band boundaries, band components, band weights, "
                      "modality weights with/without the MCM, MCM target q vs w, weight distribution.")
    p.add_argument("-m", "--model", default="atsuko", type=str.lower, help="must be atsuko (or an Atsuko ablation)")
    p.add_argument("-d", "--dataset", type=str.lower, help="dataset of the run (checked against its record)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="run id in <results>/runs.jsonl")
    source.add_argument("--checkpoint", help="a run folder's best.pt")
    p.add_argument("--samples", type=int, default=10,
                   help="how many test samples the per-sample figures show (default 10)")
    p.add_argument("--results", default="results", help="results folder holding runs.jsonl (default results/)")
    p.add_argument("--out", help="folder for the figures (default <results>/analysis/explain_<run id>)")
    p.add_argument("--feature-path", help="modality_weights.csv from this feature file's test split instead of the "
                   "run's data (same dataset and sequence lengths)")
    return p


def cmd_explain(argv) -> int:
    args = explain_parser().parse_args(argv)
    from .analysis import (explain_tables, find_partner_without_mcm, load_run, modality_weights_table,
                           require_atsuko)
    from .results import analysis_dir, check_run_id
    from .models.atsuko import ATSUKO_FAMILY
    from .plots import pyplot, write_explain
    if args.model not in ATSUKO_FAMILY:
        raise UsageError(f"explain reads Atsuko's routers; -m {args.model} is not atsuko")
    pyplot()                                        # fail on a missing matplotlib before any work
    cache = {}
    run = load_run(args.results, args.run, args.checkpoint, data_cache=cache)
    require_atsuko(run)
    if args.dataset and args.dataset != run.record["dataset"]:
        raise UsageError(f"run {run.run_id} is on {run.record['dataset']}, not {args.dataset}")
    partner = None
    if run.model.use_mcm:
        partner_id = find_partner_without_mcm(args.results, run)
        partner = load_run(args.results, partner_id, data_cache=cache) if partner_id else None
    tables = explain_tables(run, args.samples, partner)
    where = f"{run.record['model']} on {run.record['dataset']}{' aligned' if run.record['aligned'] else ''}, " \
            f"seed {run.record['seed']}"
    out = args.out or analysis_dir(args.results) / f"explain_{check_run_id(run.run_id)}"   # one folder per run
    for path in write_explain(tables, out, where, run.synthetic):
        print(f"wrote {path}")
    weights_csv = Path(out) / "modality_weights.csv"          # id, w_T, w_A, w_V per test sample
    modality_weights_table(run, args.feature_path).to_csv(weights_csv, index=False, float_format="%.9g")
    print(f"wrote {weights_csv}")
    if run.model.use_mcm and partner is None:
        print("note: no run of the same data and seed without the MCM; modality weights shown for this run only")
    return 0


def robustness_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run.py robustness", description="Re-test trained runs on the test split under "
                      "Gaussian noise (SNR), a zeroed modality and random frame drops, one modality at a time; "
                      "writes robustness.csv and robustness.png/.pdf.")
    p.add_argument("--run", nargs="+", required=True, help="run id(s) in <results>/runs.jsonl (one line each)")
    p.add_argument("--results", default="results", help="results folder holding runs.jsonl (default results/)")
    p.add_argument("--out", help="folder for the table and figure (default <results>/analysis)")
    return p


def cmd_robustness(argv) -> int:
    args = robustness_parser().parse_args(argv)
    import pandas as pd
    from .analysis import load_run, robustness_table
    from .results import analysis_dir, headline_metric
    from .metrics import lower_is_better
    from .plots import plot_robustness, pyplot, save_figure
    pyplot()
    cache, tables, runs = {}, [], []
    for run_id in args.run:
        run = load_run(args.results, run_id, data_cache=cache)
        runs.append(run)
        tables.append(robustness_table(run))
    if len({r.record["dataset"] for r in runs}) > 1:
        raise UsageError("robustness compares runs on one dataset; these runs are on several")
    table = pd.concat(tables, ignore_index=True)
    metric = headline_metric(runs[0].record["dataset"])
    fig = plot_robustness(table, metric, any(r.synthetic for r in runs), lower_is_better(metric))
    # Named by its first run, so the figures of other runs sit beside it in <results>/analysis.
    for path in save_figure(fig, table, args.out or analysis_dir(args.results), f"robustness_{runs[0].run_id}"):
        print(f"wrote {path}")
    return 0


def tsne_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run.py tsne", description="t-SNE (sklearn, fixed seed) of the fused test features "
                      "of the Atsuko ablation runs, one panel per variant, colored by label; "
                      "writes tsne_<run id>.png/.pdf/.csv, named by the run of its fullest variant.")
    p.add_argument("-d", "--dataset", type=str.lower, help="dataset (default: that of the latest Atsuko run)")
    p.add_argument("-s", "--seed", type=int, help="training seed of the runs (default: the latest run of each variant)")
    p.add_argument("--aligned", action="store_true", help="runs on the aligned feature file (default: unaligned)")
    p.add_argument("--tsne-seed", type=int, default=0, help="t-SNE random_state (default 0)")
    p.add_argument("--results", default="results", help="results folder holding runs.jsonl (default results/)")
    p.add_argument("--out", help="folder for the figure (default <results>/analysis)")
    return p


def cmd_tsne(argv) -> int:
    args = tsne_parser().parse_args(argv)
    from .analysis import ablation_runs, load_run, tsne_table
    from .results import analysis_dir, check_run_id
    from .plots import plot_tsne, pyplot, save_figure
    pyplot()
    cache = {}
    runs = {variant: load_run(args.results, run_id, data_cache=cache)
            for variant, run_id in ablation_runs(args.results, args.dataset, args.seed, args.aligned).items()}
    table = tsne_table(runs, args.tsne_seed)
    first = next(iter(runs.values())).record
    where = f"{first['dataset']}{' aligned' if first['aligned'] else ''}"
    fig = plot_tsne(table, where, any(r.synthetic for r in runs.values()))
    # Named by a run of the panel (the fullest variant: panels come in VARIANT_ORDER), so the figures of
    # other runs (another seed, aligned) sit beside these instead of overwriting them.
    fullest = list(runs.values())[-1].run_id
    for path in save_figure(fig, table, args.out or analysis_dir(args.results), f"tsne_{check_run_id(fullest)}"):
        print(f"wrote {path}")
    return 0


def sensitivity_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run.py sensitivity", description="Run (through the sweep, skipping recorded runs) or "
                      "read one run per value and seed, and plot the key test metric, mean ± std over seeds, "
                      "against the value. --param all does the paper's four (Fig. 3).")
    p.add_argument("-m", "--model", default="atsuko", type=str.lower)
    p.add_argument("-d", "--dataset", required=True, type=str.lower)
    p.add_argument("--param", nargs="+", default=["all"],
                   help="lambda_ent, band_mask_rate, lambda_comp, lambda_distill, or all (default)")
    p.add_argument("--values", nargs="+", type=float, help="values to try (one --param only; default its grid)")
    p.add_argument("-s", "--seeds", nargs="+", action="extend", type=int, default=None,
                   help="training seeds (default 1111 1112 1113; repeatable)")
    p.add_argument("--aligned", action="store_true")
    p.add_argument("--synthetic", action="store_true")
    p.add_argument("--preset", help="named preset block of the model config (e.g. small)")
    p.add_argument("--max-epochs", type=int)
    p.add_argument("--data-root", help="folder holding MOSI/, MOSEI/, SIMS/, ... (default $MMSA_DATA_ROOT, "
                   "else ~/MMSA/datasets)")
    p.add_argument("--read-only", action="store_true", help="run nothing; plot the runs already recorded")
    p.add_argument("--results", default="results", help="results folder of the runs (default results/)")
    p.add_argument("--out", help="folder for the figure (default <results>/analysis)")
    return p


def cmd_sensitivity(argv) -> int:
    args = sensitivity_parser().parse_args(argv)
    import pandas as pd
    from .analysis import SENSITIVITY_PARAMS, sensitivity_table
    from .metrics import lower_is_better
    from .plots import plot_sensitivity, pyplot, save_figure
    from .results import analysis_dir
    from .sweep import LocalBackend, sweep
    seeds = args.seeds or [1111, 1112, 1113]
    params = list(SENSITIVITY_PARAMS) if args.param == ["all"] else args.param
    unknown = [p for p in params if p not in SENSITIVITY_PARAMS]
    if unknown:
        raise UsageError(f"unknown --param {', '.join(unknown)}; choose from {', '.join(SENSITIVITY_PARAMS)} or all")
    if args.values and len(params) > 1:
        raise UsageError("--values goes with one --param")
    pyplot()
    tables = []
    for param in params:
        values = args.values or SENSITIVITY_PARAMS[param]
        if not args.read_only:
            for i, value in enumerate(values, 1):
                # Each value is a sweep of its own: its progress lines say which value they serve.
                tag = f"[{param}={value:g}, value {i}/{len(values)}]"
                sweep(out=args.results, backend=LocalBackend(), echo=lambda line, tag=tag: print(f"{tag} {line}", flush=True),
                      models=[args.model], datasets=[args.dataset], seeds=seeds, aligned=args.aligned,
                      synthetic=args.synthetic, preset=args.preset, max_epochs=args.max_epochs,
                      config=[f"{param}={value}"], data_root=args.data_root)
        tables.append(sensitivity_table(args.results, args.model, args.dataset, param, values, seeds,
                                        # --synthetic asks for generated data; without it the data root's
                                        # files are read, which may be generated ones too: take either.
                                        aligned=args.aligned, synthetic=True if args.synthetic else None,
                                        preset=args.preset,
                                        max_epochs=args.max_epochs))
    table = pd.concat(tables, ignore_index=True)
    metric = table.metric.iloc[0]
    where = f"{args.model} on {args.dataset}{' aligned' if args.aligned else ''}"
    fig = plot_sensitivity(table, where, bool(table.synthetic.any()), lower_is_better(metric))
    for path in save_figure(fig, table, args.out or analysis_dir(args.results),
                            f"sensitivity_{args.model}_{args.dataset}"):
        print(f"wrote {path}")
    return 0


def extract_parser() -> argparse.ArgumentParser:
    from .data.extract import DEFAULT_SPLIT
    p = OneLineParser(prog="run.py extract", description="Extract frame-level audio (openSMILE eGeMAPS or librosa) "
                      "and face (OpenCV) features and BERT text features from videos into one MMSA-format pickle "
                      "(unaligned). Resumable: finished videos are cached in <out>.cache/. Unreadable videos are "
                      "listed in <out stem>.skipped.txt. Needs: pip install -e \".[extract]\".")
    p.add_argument("--videos", required=True, help="folder of videos; a video's id is its file name without extension")
    p.add_argument("--transcripts", required=True, help="CSV with columns id, text, label (optional: label_T, "
                   "label_A, label_V, split); without label, a file to predict on")
    p.add_argument("--out", required=True, help="the feature pickle to write")
    p.add_argument("--bert", help="BERT folder (config.json, vocab.txt, weights) or a model id in the Hugging Face "
                   "cache: its ids go to text_bert, its last layer to text")
    p.add_argument("--split", help=f"ratios when the CSV has no split column (default {DEFAULT_SPLIT})")
    p.add_argument("--seed", type=int, default=1111, help="seed of the --split shuffle (default 1111)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes for the videos (default 1)")
    p.add_argument("--audio", choices=("opensmile", "librosa"), default="opensmile",
                   help="audio features: eGeMAPS LLDs (25-d, default) or librosa MFCC/pitch/spectral (29-d)")
    p.add_argument("--fps", type=float, default=10.0, help="vision frames sampled per second (default 10)")
    p.add_argument("--text-len", type=int, default=50, help="padded text length in tokens (default 50)")
    p.add_argument("--audio-len", type=int, default=375, help="padded audio length, 25 frames/s (default 375)")
    p.add_argument("--vision-len", type=int, default=150, help="padded vision length in frames (default 150)")
    return p


def cmd_extract(argv) -> int:
    args = extract_parser().parse_args(argv)
    from .data.extract import ExtractConfig, extract
    config = ExtractConfig(audio=args.audio, fps=args.fps, text_len=args.text_len, audio_len=args.audio_len,
                           vision_len=args.vision_len)
    result = extract(args.videos, args.transcripts, args.out, bert=args.bert, config=config, split=args.split,
                     seed=args.seed, jobs=args.jobs)
    counts = ", ".join(f"{k} {v}" for k, v in result.counts.items())
    print(f"wrote {result.path} ({counts}; {result.extracted} videos extracted, {result.cached} from the cache, "
          f"{len(result.skipped)} skipped)")
    if result.dataset_hint:
        print(f"train on it with: python run.py -m MODEL -d {result.dataset_hint} "
              f"--feature-path {shlex.quote(str(result.path))}")
    return 0


def predict_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run.py predict", description="Predict with a trained run on a feature file or on "
                      "videos (extracted first with the run's extractor settings into <out>/features.pkl). "
                      "Refuses features whose dims, extractor or tokenizer differ from the run's model.json. "
                      "Predicts every split the file holds, or --split. Writes <out>/predictions.csv.")
    run = p.add_mutually_exclusive_group(required=True)
    run.add_argument("--run", help="run id in <results>/runs.jsonl")
    run.add_argument("--checkpoint", help="a run folder holding best.pt and model.json")
    p.add_argument("--results", default="results", help="results folder holding runs.jsonl (default results/)")
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument("--features", help="an MMSA-format feature pickle (a MIntRec folder for mintrec runs)")
    data.add_argument("--videos", help="folder of videos to extract first (with --transcripts)")
    p.add_argument("--transcripts", help="CSV with id and text columns (with --videos)")
    p.add_argument("--bert", help="with --videos: the BERT to extract with (default: the one the run's "
                   "features were extracted with)")
    p.add_argument("--jobs", type=int, default=1, help="with --videos: worker processes (default 1)")
    p.add_argument("--split", choices=("train", "valid", "test"), help="predict only this split")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto (default cpu)")
    p.add_argument("--out", required=True, help="folder for predictions.csv")
    return p


def cmd_predict(argv) -> int:
    args = predict_parser().parse_args(argv)
    from .predict import extract_for, predict_file, run_folder
    if bool(args.videos) != bool(args.transcripts):
        raise UsageError("--videos and --transcripts go together")
    folder = run_folder(args.results, args.run, args.checkpoint)
    features = args.features
    if args.videos:
        features = extract_for(folder, args.videos, args.transcripts, args.out, bert=args.bert, jobs=args.jobs)
    path = predict_file(folder, features, args.out, split=args.split, device=args.device)
    print(f"wrote {path}")
    return 0


def cmd_results(argv) -> int:
    p = OneLineParser(prog="run.py results", description="Maintain a results store. --recover appends the records "
                      "that finished runs kept in their folders (runs/*/record.json) because the store could not "
                      "take them (a full disk, an unwritable runs.jsonl); each is appended once, then its file "
                      "removed. `run` and `sweep` do the same when they start.")
    p.add_argument("--recover", action="store_true", required=True, help="fold kept records into runs.jsonl")
    p.add_argument("--results", default="results", help="results folder (default results/)")
    args = p.parse_args(argv)
    from .results import check_output_folder, recover
    if not Path(args.results).is_dir():
        raise UsageError(f"results folder {args.results} does not exist; pass --results DIR")
    check_output_folder(args.results)
    recovered = recover(args.results)
    for record in recovered:
        print(f"recovered {record['run_id']}")
    print(f"{len(recovered)} record(s) folded into {Path(args.results) / 'runs.jsonl'}")
    return 0


COMMANDS = {"list": cmd_list, "synth": cmd_synth, "sweep": cmd_sweep, "leaderboard": cmd_leaderboard,
            "compare": cmd_compare, "download": cmd_download, "explain": cmd_explain,
            "robustness": cmd_robustness, "tsne": cmd_tsne, "sensitivity": cmd_sensitivity, "clean": cmd_clean,
            "extract": cmd_extract, "predict": cmd_predict,
            "results": cmd_results, "verify": cmd_verify, "tune": cmd_tune}


def take_datasets_files(argv: list[str]) -> list[str]:
    """`--datasets FILE` (any command, repeatable): datasets of your own, declared as blocks like those of
    configs/datasets.yaml. Put in $MMSA_ATSUKO_DATASETS, so sweep workers read the same table."""
    rest, files = [], []
    args = iter(argv)
    for arg in args:
        if arg == "--datasets" or arg.startswith("--datasets="):
            value = arg.partition("=")[2] or next(args, None)
            if not value:
                raise UsageError("--datasets needs a YAML file with a `datasets:` block")
            if not Path(value).is_file():
                raise UsageError(f"--datasets {value}: no such file")
            files.append(str(Path(value).resolve()))
        else:
            rest.append(arg)
    if files:
        listed = [f for f in os.environ.get(DATASETS_ENV, "").split(os.pathsep) if f]
        os.environ[DATASETS_ENV] = os.pathsep.join(dict.fromkeys(listed + files))    # each file once
        datasets_table()                    # a bad block is one line now, before any command starts
    return rest


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv == ["help"]:
        print(f"usage: run.py COMMAND ... | run.py -m MODEL -d DATASET [options]\n\n{overview()}",
              file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    try:
        argv = take_datasets_files(argv)
        command = COMMANDS.get(argv[0], None) if argv else None
        return command(argv[1:]) if command else cmd_train(argv)
    except ToolkitError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:            # `run.py list | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
