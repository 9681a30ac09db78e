"""`run(models, datasets, seeds, ...)`: the whole pipeline, from files to run records.

Everything that can be wrong with the request (unknown names, bad overrides, missing or
corrupt data, missing BERT weights) is checked for every (model, dataset) pair before the
first run starts, so a bad request writes nothing. A seed whose run is already recorded ok
(same identity, `results.identity`) is not trained again unless `rerun`.
"""
from __future__ import annotations

from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import torch

from ..code_version import git_commit
from ..config import parse_overrides
from ..data import resolve_feature_path
from ..data.conditions import PLAIN, check_model_allows
from ..data.synthetic import check_synthetic_request
from ..data.synthetic_stress import check_data_options, check_recipe_request
from ..errors import UsageError
from ..results import (RunPyMark, append_mmsa_rows, check_claim_free_to_take, check_mmsa_csv, check_output_folder,
                       identity, latest_by_identity, read_records, recorded_ok, recover, serves, skip_reason)
from ..run_folders import check_save_checkpoint
from ..run_folders.lock import claim_path
from ..training.hardware import check_cuda_determinism, check_precision, check_threads
from ..training.seed import DEFAULT_SEEDS, check_seeds, resolve_device
from ..training.tensorboard import require_tensorboard
from ..training.trainer_config import resolve_config
from .jobs import Job, job_identity, job_mmsa_csv, job_phrase, prepare_job
from .one_run import run_one


def run(models, datasets, seeds=DEFAULT_SEEDS, config=None, *, aligned=False, data_root=None,
        feature_path=None, synthetic=False, synthetic_size=None, synthetic_recipe="standard",
        preset=None, device="auto",
        max_epochs=None, out="results", quiet=False, rerun=False, save_checkpoint="best", resume=False,
        tensorboard=False, threads=None, precision="fp32", deterministic=True, conditions=(PLAIN,),
        echo=print, appended: list | None = None) -> list[dict]:
    """Train and test every model on every dataset for every seed; return the run records.

    `config` is a dict of overrides (or a list of "key=value" strings) applied last.
    Records are also appended to `<out>/runs.jsonl`, and one MMSA-style row per
    (model, dataset) that trained a seed to `<out>/normal/<dataset>.csv` (with the columns that trace it
    to its runs, `results.mmsa_csv`; a file with MMSA's columns only keeps them, and `echo` says so once).
    A seed already recorded ok is skipped (one `echo` line each) and its stored record is
    returned in its place, unless `rerun`. `save_checkpoint="none"` leaves no best.pt. A run that
    an earlier call left unfinished (`take_leftovers`) is continued with `resume`, else removed
    first. `tensorboard` writes per-epoch scalars to each run's `tensorboard/` folder.
    `threads`: torch's intra-op threads for the runs (None: as the process has them). `precision`:
    fp32 or bf16 (autocast). `deterministic=False` lets torch choose non-deterministic kernels.
    Several runs at once go through the sweep's local backend (`sweep.run_packed`, `run.py --jobs`). A sweep
    training into `out` stops this call in one line when it reaches its first run to train (a call whose runs are
    all recorded only skips them, as it writes nothing), and one started meanwhile stops itself (`results.writers`):
    beside each other both trained a run neither had recorded; other `run` calls share `out`, and one that reaches a
    run another is training waits for it and returns its record (`run_one`).
    `appended`: a list the run ids of the records this call trained and appended are added to (the others it
    returns were recorded before, or by another process meanwhile).
    `conditions` (`data.conditions.conditions(...)`) runs every model under each protocol condition.
    `synthetic_size` (small, the default, or full) sizes `synthetic` data only, and `data_root` and `feature_path`
    name real data only: given the other way, each is one UsageError (`check_data_options`), not ignored.
    """
    models = [m.lower() for m in ([models] if isinstance(models, str) else models)]       # names are case-insensitive
    datasets = [d.lower() for d in ([datasets] if isinstance(datasets, str) else datasets)]
    git_commit()                       # the code version this process runs, read before anything trains
    seeds = check_seeds(seeds)
    if not seeds:
        raise UsageError("no seeds given")
    synthetic_size = check_data_options(synthetic, synthetic_size, data_root, feature_path)   # None: small; its values
    check_recipe_request(synthetic_recipe, synthetic)
    if feature_path is not None and len(datasets) > 1:
        raise UsageError("--feature-path names one file, so give exactly one dataset")
    check_save_checkpoint(save_checkpoint)
    check_precision(precision)
    if check_threads(threads) is not None:
        torch.set_num_threads(threads)
    overrides = list(config.items()) if isinstance(config, dict) else parse_overrides(config or [])
    torch_device = resolve_device(device)
    check_cuda_determinism([torch_device], deterministic)
    check_output_folder(out)
    if tensorboard:
        require_tensorboard()
    for d in datasets:                 # every config first: a bad value stops the request before any data is read
        for m in models:
            resolve_config(m, d, preset=preset, overrides=overrides, max_epochs=max_epochs)
            for c in conditions:
                check_model_allows(m, c)
    # and every dataset's setting: `-d mosei sims --aligned` read all of MOSEI before saying sims has none
    for d in datasets:
        if synthetic:
            check_synthetic_request(d, synthetic_size, aligned, synthetic_recipe)
        else:
            resolve_feature_path(d, aligned, data_root, feature_path)
    loaded = {}
    jobs = [prepare_job(m, d, aligned=aligned, data_root=data_root, feature_path=feature_path,
                        synthetic=synthetic, synthetic_size=synthetic_size, synthetic_recipe=synthetic_recipe,
                        preset=preset, overrides=overrides, max_epochs=max_epochs, loaded=loaded, condition=c)
            for d in datasets for c in conditions for m in models]
    loaded.clear()   # the jobs hold what they read; features no job reads are freed now
    with RunPyMark(out) as mark:   # taken at the first run to train: no sweep trains into `out` meanwhile
        return _run_jobs(jobs, seeds, torch_device, out=out, quiet=quiet, rerun=rerun, save_checkpoint=save_checkpoint,
                         resume=resume, tensorboard=tensorboard, precision=precision, deterministic=deterministic,
                         echo=echo, mark=mark, appended=[] if appended is None else appended)


def _run_jobs(jobs: list[Job], seeds, torch_device, *, out, quiet, rerun, save_checkpoint, resume, tensorboard,
              precision, deterministic, echo, mark: RunPyMark, appended: list) -> list[dict]:
    """`run`'s loop over its prepared jobs and seeds: skip what is recorded, train the rest, write the MMSA rows."""
    for kept in recover(out):          # records an earlier call could not append (results.append_or_keep)
        echo(f"recovered the record of run {kept['run_id']} into {Path(out) / 'runs.jsonl'}")
    began = datetime.now(timezone.utc)     # with --rerun, only a run started after this serves the request
    stored = read_records(out)
    recorded = {} if rerun else latest_by_identity(stored)
    targets = {}                       # the MMSA CSVs a job that trains appends its row to, and their datasets
    for job in jobs:                   # a claim this user can never take stops the call before it trains any run,
        for seed in seeds:             # as a CSV that cannot take a row does
            if recorded_ok(recorded, job_identity(job, seed)) is None:
                check_claim_free_to_take(claim_path(Path(out) / "runs", job_identity(job, seed)))
                targets[job_mmsa_csv(job, out)] = job.data.spec.name
    for path, dataset in targets.items():
        check_mmsa_csv(path, dataset)
    records, told = [], set()          # told: the MMSA files named once as keeping MMSA's columns only
    for job in jobs:
        job_records, trained = [], []
        for seed in seeds:
            previous = recorded_ok(recorded, job_identity(job, seed))
            if previous is None and mark.take() and not rerun:   # the first run to train: decided again on what a
                recorded = latest_by_identity(read_records(out))   # sweep left recorded
                previous = recorded_ok(recorded, job_identity(job, seed))
            if previous is not None:
                echo(f"skip {job_phrase(job, seed)}: recorded as {previous.get('run_id')}"
                     f"{skip_reason(previous, job.model, precision, deterministic, rerun)}")
                job_records.append(previous)
            else:
                taken = partial(serves, model=job.model, precision=precision, deterministic=deterministic,
                                rerun=rerun, began=began)
                record, trained_here = run_one(job, seed, torch_device, Path(out), quiet, checkpoint=save_checkpoint,
                                               resume=resume, tensorboard=tensorboard, precision=precision,
                                               deterministic=deterministic, echo=echo, serves=taken)
                recorded[identity(record)] = record      # `-m tfn tfn` trains it once
                job_records.append(record)
                if trained_here:
                    appended.append(record["run_id"])
                    trained.append(record)
                else:
                    echo(f"skip {job_phrase(job, seed)}: recorded as {record['run_id']} by another process meanwhile"
                         f"{skip_reason(record, job.model, precision, deterministic, rerun)}")
        # after each job, as it ends: a call stopped later keeps the rows of the jobs before
        append_mmsa_rows(Path(out), job_records, trained, echo=echo, told=told)
        records += job_records
    return records
