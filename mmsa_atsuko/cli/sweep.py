"""`run.py sweep` (models x datasets x seeds, local or Ray) and `run.py tune` (Optuna on the sweep's backends).

Both take the same data options and the same backends, defined once here.
"""
from __future__ import annotations

import argparse
import logging
import sys
from contextlib import contextmanager

from ..errors import UsageError
from ..training.seed import DEFAULT_SEEDS
from .common import SYNTHETIC_SIZE_HELP, OneLineParser, add_condition_args, add_save_checkpoint, add_synthetic_recipe

DEFAULT_SEED_RANGE = f"{DEFAULT_SEEDS[0]}-{DEFAULT_SEEDS[-1]}"     # consecutive: the first and last say all


def add_data_options(p: argparse.ArgumentParser, what: str) -> None:
    """What data and config every run of a sweep or trial of a tune gets (`what`: 'run' or 'trial')."""
    p.add_argument("--aligned", action="store_true", help="aligned feature files (with a file: aligned runs only)")
    p.add_argument("--data-root", help="folder holding MOSI/, MOSEI/, SIMS/, ...")
    p.add_argument("--feature-path", help="the feature pickle itself (one dataset)")
    p.add_argument("--synthetic", action="store_true", help="run on generated data in the real format")
    p.add_argument("--synthetic-size", choices=("small", "full"),
                   help=SYNTHETIC_SIZE_HELP + "; a sweep file's synthetic_size is used where this is not given")
    add_synthetic_recipe(p, default=None)
    p.add_argument("--preset", help="named preset block of the model configs (e.g. small)")
    p.add_argument("--max-epochs", type=int, help="cap on training epochs")
    p.add_argument("-c", "--config", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override a config key in every {what} (repeatable)")
    p.add_argument("--out", default="results", help="results folder (default results/)")


def add_backend_options(p: argparse.ArgumentParser) -> None:
    """Where runs train: local worker processes or a Ray cluster, and how (precision, determinism)."""
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local (default): in process or --jobs worker processes; ray: a Ray task per run ([ray] extra)")
    p.add_argument("--jobs", default=None, help="local: runs at once in worker processes, N or auto (CPU: the cores "
                   "over --threads; CUDA: as many as the first run's peak memory allows). Default: auto on CUDA, "
                   "else 1 (in process)")
    p.add_argument("--threads", type=int, default=1,
                   help="local: torch CPU threads per run (default 1; ray: --cpus-per-run)")
    p.add_argument("--devices", "--device", default=None,
                   help="local: devices given to workers round-robin, e.g. cuda:0,cuda:1 (default auto: every "
                   "visible GPU, else cpu)")
    p.add_argument("--address", help="ray: cluster address, auto or HOST:PORT (default: start a local instance)")
    p.add_argument("--gpus-per-run", type=float, default=None, help="ray: GPUs per run (0.5: two runs share one)")
    p.add_argument("--cpus-per-run", type=float, default=None, help="ray: CPUs per run (default 1)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="fp32, or bf16 autocast of the forward pass (default fp32)")
    p.add_argument("--nondeterministic", action="store_true", help="let torch pick non-deterministic (faster) "
                   "GPU kernels")


def backend_from(args):
    """A function that makes the backend `add_backend_options` describes: an option of the other backend, a value
    that cannot be, and Ray not installed are errors now; the devices are read (which imports torch) when it is
    called, by the sweep after its planning line."""
    if args.backend == "local":
        misplaced = [f for f, v in (("--address", args.address), ("--gpus-per-run", args.gpus_per_run),
                                    ("--cpus-per-run", args.cpus_per_run)) if v is not None]
        if misplaced:
            raise UsageError(f"{', '.join(misplaced)} only apply to --backend ray")
        from ..training.hardware import check_threads, parse_jobs
        if args.jobs is not None:
            parse_jobs(args.jobs)       # what was typed is one line now, as before; the devices wait for the maker
        check_threads(args.threads)

        def local():
            from ..sweep import LocalBackend, default_jobs, parse_devices
            devices = args.devices or "auto"
            jobs = args.jobs if args.jobs is not None else default_jobs(parse_devices(devices), runs=2)
            return LocalBackend(jobs, devices, args.threads, echo=lambda line: print(line, flush=True))
        return local
    if args.jobs is not None or args.devices:
        raise UsageError("--jobs and --devices are for --backend local; with ray use --gpus-per-run/--cpus-per-run")
    from ..sweep.ray_backend import check_ray_backend
    gpus, cpus = args.gpus_per_run or 0.0, 1.0 if args.cpus_per_run is None else args.cpus_per_run
    check_ray_backend(gpus, cpus)       # now, as the local backend's options: alone, before the planning line

    def ray():
        from ..sweep import RayBackend
        return RayBackend(args.address, gpus, cpus)
    return ray


def data_lists(args) -> dict:
    """The data options as `sweep.expand` takes them."""
    return dict(aligned=args.aligned, synthetic=args.synthetic, synthetic_size=args.synthetic_size,
                synthetic_recipe=args.synthetic_recipe, preset=args.preset, max_epochs=args.max_epochs,
                config=args.config, data_root=args.data_root, feature_path=args.feature_path,
                missing_rates=args.missing_rate, drop_modality=args.drop_modality, modalities=args.modalities)


@contextmanager
def run_details_to_run_logs():
    """Run details go to each run's train.log, warnings to the console; logging is left as it was
    found (main() may be called in process)."""
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING)
    root, package = logging.getLogger(), logging.getLogger("mmsa_atsuko")
    package_level = package.level
    root.addHandler(console)
    package.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(console)
        package.setLevel(package_level)


def echo(line: str) -> None:
    print(line, flush=True)


def sweep_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run.py sweep", description="Run models x datasets x seeds, skipping runs already "
                      "recorded; a killed sweep goes on where it stopped (with --resume, a run cut short continues "
                      "from its last finished epoch). Either a sweep file "
                      "(configs/sweeps/*.yaml) or -m and -d lists; with a file, -m/-d/--aligned keep only those runs.")
    p.add_argument("file", nargs="?", help="sweep YAML (models, datasets, aligned flags, seeds, config overrides)")
    p.add_argument("-m", "--model", nargs="+", action="extend", type=str.lower, help="model name(s)")
    p.add_argument("-d", "--dataset", nargs="+", action="extend", type=str.lower, help="dataset name(s)")
    p.add_argument("-s", "--seeds", nargs="+", action="extend", type=int,
                   help=f"seeds (default: the file's, else {DEFAULT_SEED_RANGE}; repeatable)")
    add_data_options(p, "run")
    p.add_argument("--dry-run", action="store_true", help="list the runs that would run, run nothing")
    p.add_argument("--retry-failed", action="store_true", help="run again the runs recorded as failed")
    p.add_argument("--resume", action="store_true", help="continue each run that an earlier, cut-short call left "
                   "unfinished (same model, dataset, seed, config and data) from its last finished epoch, as run.py "
                   "--resume does; without it, such a run's folder is removed and the run starts again")
    add_backend_options(p)
    add_save_checkpoint(p)
    add_condition_args(p)
    return p


def cmd_sweep(argv) -> int:
    args = sweep_parser().parse_args(argv)
    from ..sweep import sweep
    backend = backend_from(args)
    with run_details_to_run_logs():
        summary = sweep(args.file, out=args.out, dry_run=args.dry_run, retry_failed=args.retry_failed,
                        resume=args.resume, backend=backend, echo=echo, save_checkpoint=args.save_checkpoint,
                        precision=args.precision, deterministic=not args.nondeterministic, models=args.model,
                        datasets=args.dataset, seeds=args.seeds, **data_lists(args))
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
                      "<out>/tune/ so that a killed tune resumes; trials run on the sweep's backends (local "
                      "workers or Ray); then the best config runs on every seed, recorded as normal runs labelled "
                      "with the study's name and the best trial's number (label, tune_trial); one recorded failed "
                      "runs again.")
    p.add_argument("-m", "--model", required=True, type=str.lower, help="the one model whose config is searched")
    p.add_argument("-d", "--dataset", required=True, type=str.lower, help="the one dataset it is searched on")
    p.add_argument("--trials", type=int, required=True, help="finished trials the study should hold")
    p.add_argument("--space", help="search space YAML (default configs/tune/<model>.yaml)")
    p.add_argument("--study", help="study name (default tune-<model>-<dataset>[-aligned][-<recipe>][-<condition>]); "
                   "the same name resumes")
    p.add_argument("--tune-seed", type=int, default=0, help="TPE sampler seed (default 0)")
    p.add_argument("-s", "--seeds", nargs="+", action="extend", type=int, default=None,
                   help=f"seeds of the best config's runs (default {DEFAULT_SEED_RANGE}); trials train the first")
    add_data_options(p, "trial")
    p.add_argument("--resume", action="store_true", help="continue each final run (the best config's, on the "
                   "seeds) that an earlier, cut-short call left unfinished from its last finished epoch, as sweep "
                   "--resume does; without it, such a run's folder is removed and the run starts again. Trials have "
                   "no run folder: one that was running when a tune stopped runs again as a new trial either way")
    add_backend_options(p)
    add_save_checkpoint(p)
    add_condition_args(p)
    return p


def cmd_tune(argv) -> int:
    args = tune_parser().parse_args(argv)
    from ..sweep.tune import tune
    backend = backend_from(args)            # made by the tune after its planning line, as the sweep's
    with run_details_to_run_logs():
        tune(args.model, args.dataset, trials=args.trials, out=args.out, space_file=args.space,
             study_name=args.study, seed=args.tune_seed, seeds=args.seeds or DEFAULT_SEEDS, backend=backend,
             echo=echo, precision=args.precision, deterministic=not args.nondeterministic,
             save_checkpoint=args.save_checkpoint, resume=args.resume, **data_lists(args))
    return 0
