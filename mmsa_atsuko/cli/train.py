"""`run.py -m MODEL -d DATASET` (train and test over seeds) and the small commands around it:
list, synth, clean, results --recover."""
from __future__ import annotations

import argparse
import logging
import shlex
from pathlib import Path

from ..data.synthetic_stress import RECIPES, check_data_options
from ..errors import DataError, UsageError, one_line
from ..training.seed import DEFAULT_SEEDS
from .common import (SYNTHETIC_SIZE_HELP, OneLineParser, add_condition_args, add_hardware_options, add_results_option,
                     add_save_checkpoint, add_synthetic_recipe, condition_list, log_to_stderr, overview)


def train_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run.py", description="Train and test models on datasets over seeds.",
                      epilog=overview(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-m", "--model", nargs="+", action="extend", type=str.lower, required=True,
                   help="model name(s), see `run.py list` (repeatable, any case)")
    p.add_argument("-d", "--dataset", nargs="+", action="extend", type=str.lower, required=True,
                   help="dataset name(s) (repeatable, any case)")
    p.add_argument("-s", "--seeds", nargs="+", action="extend", type=int, default=None,
                   help=f"seeds (default {' '.join(map(str, DEFAULT_SEEDS))}, as MMSA; -s 1111 -s 1112 keeps both)")
    p.add_argument("--aligned", action="store_true", help="use the aligned feature file")
    p.add_argument("--data-root", help="folder holding MOSI/, MOSEI/, SIMS/, ... (default $MMSA_DATA_ROOT "
                   "or ~/MMSA/datasets)")
    p.add_argument("--feature-path", help="the feature pickle itself (one dataset)")
    p.add_argument("--synthetic", action="store_true", help="run on generated data in the real format")
    p.add_argument("--synthetic-size", choices=("small", "full"), help=SYNTHETIC_SIZE_HELP)
    add_synthetic_recipe(p)
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


def synth_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run.py synth", description="Write a synthetic dataset in the real file format.")
    p.add_argument("-d", "--dataset", required=True, type=str.lower, help="dataset whose file format to write")
    p.add_argument("--out", required=True, help="folder to write into")
    p.add_argument("--size", choices=("small", "full"), default="small",
                   help=SYNTHETIC_SIZE_HELP.removeprefix("with --synthetic: "))
    p.add_argument("--seed", type=int, default=0, help="seed of the data (default 0, what --synthetic runs train on)")
    p.add_argument("--aligned", action="store_true", help="the aligned file (mosi, mosei)")
    p.add_argument("--synthetic-recipe", choices=RECIPES, default="standard", type=str.lower,
                   help="standard, or a stress recipe: corrupt, bands, redundant (not mintrec)")
    return p


def cmd_list(argv) -> int:
    OneLineParser(prog="run.py list", description="List models and datasets.").parse_args(argv)
    from ..config import datasets_table, declared_in
    from ..registry import get_model_class, import_errors, list_models
    from ..user_models.discovery import model_file, model_origin
    # Every line is made before the first is printed: a bad dataset file was its error after the models section.
    lines = ["models:"]
    for name in list_models():
        origin = model_origin(name)           # a model of your own (--models DIR): the file it came from
        lines.append(f"  {name:<14} {', '.join(get_model_class(name).registry_meta.get('tasks', ('regression',)))}"
                     + (f"  (yours: {origin})" if origin else ""))
    for module, error in import_errors().items():   # a module that breaks is listed with its error, not hidden
        lines.append(f"  {model_file(module):<14} unavailable: {error}")
    lines.append("datasets:")
    for name, facts in datasets_table().items():
        origin = declared_in(name)            # a dataset of your own (--datasets FILE): the file that declares it
        lines.append(f"  {name:<14} {facts['task']}, {facts['language']}, settings: {', '.join(facts['files'])}"
                     + (f"  (yours: {origin})" if origin != "datasets.yaml" else ""))
    print("\n".join(lines))
    return 0


def cmd_synth(argv) -> int:
    from ..config import dataset_facts
    from ..data.synthetic import write_synthetic
    from ..results import check_output_folder
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


def cmd_train(argv) -> int:
    args = train_parser().parse_args(argv)
    from ..api import run
    from ..leaderboard.end_table import print_table
    log_to_stderr(logging.WARNING if args.quiet else logging.INFO)
    seeds = args.seeds or DEFAULT_SEEDS
    check_data_options(args.synthetic, args.synthetic_size, args.data_root, args.feature_path)   # before any read
    appended = []                      # the run ids of the records this call trains and appends
    stored_before = _stored_run_ids(args.out)
    jobs = train_jobs(args, len(args.model) * len(args.dataset) * len(seeds))
    # The options both paths take alike. What differs is on purpose, spelled at each call: in process, the
    # conditions made here, the device and threads, --resume as asked, --quiet, and --tensorboard and --rerun (in
    # process only, `train_jobs`); with --jobs, the condition lists its sweep expands, the device and threads of its
    # workers (the backend's, whose console is warnings only), a flushed echo, and --resume as "stop" (run.py stops
    # on a folder it may not continue; without --resume its lines name it).
    shared = dict(config=args.config, aligned=args.aligned, data_root=args.data_root, feature_path=args.feature_path,
                  synthetic=args.synthetic, synthetic_size=args.synthetic_size, synthetic_recipe=args.synthetic_recipe,
                  preset=args.preset, max_epochs=args.max_epochs, out=args.out, save_checkpoint=args.save_checkpoint,
                  precision=args.precision, deterministic=not args.nondeterministic, appended=appended)
    if jobs == 1:
        records = run(args.model, args.dataset, seeds=seeds, device=args.device, threads=args.threads,
                      conditions=condition_list(args), resume=args.resume, quiet=args.quiet,
                      tensorboard=args.tensorboard, rerun=args.rerun, **shared)
    else:
        from ..sweep import LocalBackend, run_packed
        def echo(line):
            print(line, flush=True)
        # The backend's lines too (each run's train.log as it starts, where the runs stand after a quiet minute),
        # flushed: stdout into a file or a pipe held them back until the next flushed line.
        records = run_packed(args.model, args.dataset, seeds,
                             backend=LocalBackend(jobs, args.device, args.threads, echo=echo),
                             missing_rates=args.missing_rate, drop_modality=args.drop_modality,
                             modalities=args.modalities, resume="stop" if args.resume else False, echo=echo, **shared)
    print_table(records, args.out, set(appended), stored_before, rerun=args.rerun)
    from ..run_folders import unfinished_note
    note = unfinished_note(args.out)
    if note:
        print(note)
    return 0


def _stored_run_ids(out) -> set | None:
    """The run ids in `<out>/runs.jsonl` now; None where it cannot be read (the run call says why, in its line)."""
    from ..errors import ToolkitError
    from ..results import read_records, run_ids
    try:
        return run_ids(read_records(out))
    except (ToolkitError, OSError):
        return None


def train_jobs(args, runs: int) -> int | str:
    """`--jobs` of a training command: as given, or the default for its device and number of runs.
    The in-process options (--rerun, --tensorboard) keep it at 1; --resume runs in workers only when --jobs asks
    (the sweep's workers continue a run as `api.run` does; without --jobs it stays in process, as before)."""
    from ..sweep import default_jobs, parse_devices
    from ..training.hardware import parse_jobs
    in_process_only = [f for f, on in (("--rerun", args.rerun), ("--tensorboard", args.tensorboard)) if on]
    if args.jobs is None:
        return 1 if in_process_only or args.resume else default_jobs(parse_devices(args.device), runs)
    jobs = parse_jobs(args.jobs)
    if jobs != 1 and in_process_only:
        raise UsageError(f"{', '.join(in_process_only)} run(s) in process: drop --jobs, or give --jobs 1")
    return jobs


def require_results_folder(results) -> None:
    """One line unless `results` is an existing folder (clean and results maintain one; they create none)."""
    from ..results import refuse_a_file_as_results
    refuse_a_file_as_results(results)
    if not Path(results).is_dir():
        raise UsageError(f"results folder {results} does not exist; pass --results DIR")


def cmd_clean(argv) -> int:
    p = OneLineParser(prog="run.py clean", description="Remove the .partial folders that unfinished runs (killed, "
                      "crashed) left in <results>/runs. A folder whose run is alive (its lock is held, e.g. by a "
                      "sweep) is kept. `run.py ... --resume` continues such a run instead. With --extract-cache, "
                      "empty extract's cache of video features instead.")
    add_results_option(p)
    p.add_argument("--extract-cache", action="store_true", help="remove the files of extract's cache of video "
                   "features (<$MMSA_ATSUKO_CACHE or ~/.cache/mmsa_atsuko>/extract_features/) and nothing else; "
                   "the next extract of a video extracts it again. Refused while an extract runs (its clips would "
                   "be skipped). Not with --results")
    p.set_defaults(results=None)        # None: not given, so that --extract-cache can tell a --results it ignores
    args = p.parse_args(argv)
    if args.extract_cache:
        if args.results is not None:
            raise UsageError("--extract-cache empties extract's cache of video features, not a results folder: drop "
                             "--results (or run clean --results without --extract-cache)")
        return clean_extract_cache()
    args.results = "results" if args.results is None else args.results
    from ..results import RUN_PY_MARK, check_output_folder, remove_free_locks, unremovable_note
    from ..run_folders import (BEING_MADE, IDENTITY_CLAIM, NEW_GRACE_S, ODD_LOCK, RUN_LOCK,  # their home: no torch
                               RUNNING, UNSEEN_LOCK, dead_folders, not_dead, remove, remove_tombstones, unfinished_runs,
                               work_folders)
    require_results_folder(args.results)
    check_output_folder(args.results, option="--results")     # a `runs` link would remove folders elsewhere
    runs = Path(args.results) / "runs"
    removed = 0
    for folder in unfinished_runs(args.results):
        remove(folder)                  # out of every name a waiting process looks at before it is deleted
        print(f"removed {folder}")
        removed += 1
    if runs.is_dir():
        remove_tombstones(runs)         # what a removal killed half-way left
    listed = work_folders(runs)
    dead = set(dead_folders(args.results))     # that this user could not take: another user's
    # A link named as a run folder is no run's: no run makes one, and clean never follows it (`unfinished_runs`).
    links = [folder for folder in listed if folder.is_symlink()]
    # Still there and not dead, each for what it is: a folder being made, or whose run.lock no run made or this user
    # cannot look at, was 'still running' too. One that finished or was removed between the two listings is neither.
    left = {RUNNING: [], BEING_MADE: [], ODD_LOCK: [], UNSEEN_LOCK: []}
    for folder in listed:
        why = None if folder in dead or folder.is_symlink() or not folder.exists() else not_dead(folder)
        if why:
            left[why[0]].append(f"{folder / RUN_LOCK} is {why[1]}" if why[0] == ODD_LOCK else str(folder))
    running, being_made, odd, unseen = (left[kind] for kind in (RUNNING, BEING_MADE, ODD_LOCK, UNSEEN_LOCK))
    # What killed run.py's left (results.writers): their marks and their claims of runs, each kind said alike.
    counts = []
    for prefix, kind in ((RUN_PY_MARK, "mark"), (IDENTITY_CLAIM, "claim of a run")):
        _, count, kept = remove_free_locks(runs, prefix, older_than=NEW_GRACE_S)
        counts.append(count)
        for path, error in kept:
            print(f"kept {path}, a killed run.py's {kind}: it{unremovable_note(path, 'run.py', error)}")
    marks, claims = counts
    print(f"removed {removed} unfinished run folder(s) from {runs}"
          + (f" and {marks} mark(s) of killed run.py's" if marks else "")
          + (f" and {claims} claim(s) of killed run.py's" if claims else "")
          + (f"; kept {len(running)} of run(s) still running" if running else "")
          + (f"; kept {len(being_made)} folder(s) being made (under {NEW_GRACE_S:g} s old and naming no run yet: a "
             "run may be starting in them)" if being_made else "")
          + (f"; kept {len(unseen)} folder(s) whose run.lock this user cannot look at (a run may hold it)"
             if unseen else "")
          + (f"; left {len(odd)} folder(s) alone whose run.lock no run made ({', '.join(odd[:3])}"
             f"{', ...' if len(odd) > 3 else ''}): look at them yourself" if odd else "")
          + (f"; left {len(links)} symbolic link(s) named as run folders alone ({', '.join(map(str, links[:3]))}"
             f"{', ...' if len(links) > 3 else ''}): no run makes a link, so none is running; remove them yourself"
             if links else "")
          + (f"; kept {len(dead)} of unfinished runs that no process runs, which this user may not take (another "
             f"user's: that user, or root, removes them)" if dead else ""))
    return 0


def clean_extract_cache() -> int:
    """`run.py clean --extract-cache`: extract's cache files removed, in one line."""
    from ..data.download.facts import size_text
    from ..data.extract.feature_cache import CacheInUse, cache_folder, remove_cache_files
    folder = cache_folder()
    try:
        files, size = remove_cache_files(folder)
    except CacheInUse as e:
        # No pid is also an ordinary container's answer: on overlayfs or btrfs, /proc/locks may print another device
        # than stat gives (`holder_pids`), so no guess at another host.
        who = f"pid {', '.join(map(str, e.pids))}" if e.pids else "its pid unknown"
        raise DataError(f"an extract is running ({who}) with extract's cache {folder}, and would skip the clips "
                        f"whose files a clean removed: run clean after it ends; nothing was removed") from None
    except OSError as e:
        raise DataError(f"cannot empty extract's cache {folder} ({one_line(e)}): remove its files yourself") from None
    print(f"removed {files} file(s), {size_text(size)}, from extract's cache {folder}")
    return 0


def cmd_results(argv) -> int:
    p = OneLineParser(prog="run.py results", description="Maintain a results store. --recover appends the records "
                      "that finished runs kept in their folders (runs/*/record.json) because the store could not "
                      "take them (a full disk, an unwritable runs.jsonl); each is appended once, then its file "
                      "removed. `run` and `sweep` do the same when they start.")
    p.add_argument("--recover", action="store_true", required=True, help="fold kept records into runs.jsonl")
    add_results_option(p)
    args = p.parse_args(argv)
    from ..results import check_output_folder, recover
    require_results_folder(args.results)
    check_output_folder(args.results, option="--results")
    recovered = recover(args.results)
    for record in recovered:
        print(f"recovered {record['run_id']}")
    print(f"{len(recovered)} record(s) folded into {Path(args.results) / 'runs.jsonl'}")
    return 0
