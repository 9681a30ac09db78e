"""One planned run, wherever it runs (the driver, a worker process, a Ray task) -> its record.

Never appends to the store: only the sweep's driver writes it, whatever the backend.
"""
from __future__ import annotations

import contextlib
import logging
import math
import shutil
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from ..api.jobs import job_identity, leave_data_warnings_to_driver
from ..api.one_run import train_model, train_one
from ..code_version import git_commit
from ..config import config_hash, load_config
from ..errors import DataError, ResumeRefused, ToolkitError, one_line
from ..results import failed_record, open_new
from ..run_folders import move_dead, partial_dir, take_leftovers
from ..training.seed import resolve_device
from .plan import PlannedRun, prepare
from .study_file import is_locked, locked_trial_error, optuna_module, study_storage

log = logging.getLogger("mmsa_atsuko")
WORKER_CONSOLE = "mmsa-atsuko-worker-console"


def execute(run: PlannedRun, run_id: str, out: str, device: str, on_start=None) -> dict:
    """Train one planned run and return its record; a run that raises gives a failed record.
    A tuning trial (`run.trial`) gives its outcome instead (`run_trial`). `on_start(run_id)`: called as the run's
    training starts, with the run_id of the folder it works in (None for a trial, which has none): a resumed run's
    is the earlier call's, not `run_id`, so only here does a sweep's driver learn where its epochs go."""
    if run.trial is not None:
        return run_trial(run, device, on_start)
    started = datetime.now(timezone.utc)
    clock = time.time()
    try:
        job = prepare(run.setting)
        got = (config_hash(job.config), job.data.spec.source)
        if got != (run.config_hash, run.data_id):
            raise ToolkitError(f"the config or data changed since the sweep was planned: planned "
                               f"{run.config_hash} on {run.data_id}, found {got[0]} on {got[1]}")
        fresh_id, identity = run_id, job_identity(job, run.seed)
        # What a killed sweep left of this run (its .partial folders): with --resume the dead one with the newest
        # last.pt is continued under its run_id, as `run.py --resume` continues it; every other one is removed.
        try:
            if run.resume is None:       # from a caller that offers no --resume (sweep() from Python): its line names
                resumed = take_leftovers(Path(out), identity, resume=False,        # none
                                         instead="the sweep runs it again from its start")
            else:
                resumed = take_leftovers(Path(out), identity, resume=run.resume)   # refuses another user's folder
            if resumed:
                run_id = resumed                 # a failure below names the folder it worked in
                return _train(job, run, run_id, out, device, resume=True, on_start=on_start)
        except ResumeRefused as refused:
            if run.resume == "stop":     # run.py --jobs: the run stops, failed under a fresh run_id (its
                return failure(run, fresh_id, out, device, refused, started, time.time() - clock)  # folder kept)
            # run.py stops here; a sweep runs unattended, and a failed record would need --retry-failed. The
            # folder is left as it is, to be looked at (a link planted in it, a last.pt not of this run).
            log.warning("not resumed: %s; the sweep leaves that folder and trains this run afresh as %s",
                        refused, fresh_id)
            run_id = fresh_id
        return _train(job, run, run_id, out, device, resume=False, on_start=on_start)
    except Exception as error:               # a failed run is a result; the sweep goes on
        return failure(run, run_id, out, device, error, started, time.time() - clock)


def _train(job, run: PlannedRun, run_id: str, out: str, device: str, resume: bool, on_start=None) -> dict:
    if on_start is not None:
        on_start(run_id)
    return train_one(job, run.seed, resolve_device(device), Path(out), True, run_id=run_id, resume=resume,
                     checkpoint=run.checkpoint, precision=run.precision, deterministic=run.deterministic,
                     label=run.label, tune_trial=run.tune_trial)


def failure(run: PlannedRun, run_id: str, out, device: str, error, started: datetime, wall: float,
            worker_died: bool = False) -> dict:
    """The record of a failed run (`error`: the exception, or a message); its work folder, with
    the traceback in error.txt, becomes `runs/<run_id>.failed`. A tuning trial has no folder and
    no record: it fails as an outcome (`run_trial`'s), which the tune tells its study. With --resume, a run whose
    process was killed (`worker_died`: the OOM killer, a signal) keeps its `.partial` folder, a dead run's with
    the epochs it finished, for the same command to continue (with `--retry-failed` where it skips failed runs:
    `sweep`); `.failed` then holds error.txt alone."""
    is_exception = isinstance(error, BaseException)
    # Its kind is known here, where isinstance sees the class; past this process only the record's text goes.
    exit_code = error.exit_code if isinstance(error, ToolkitError) else 1
    message = one_line(error, limit=None) if is_exception else str(error)
    if run.trial is not None:
        return {"number": run.trial["number"], "state": "fail", "error": message, "seconds": wall}
    kept = worker_died and run.resume
    if kept:
        again = "the same command again" if run.reruns_failed else "--retry-failed --resume"
        message += f"; its folder is kept: {again} continues it from its last finished epoch"
    work = partial_dir(Path(out), run_id)
    failed_dir = work.parent / f"{run_id}.failed"
    failed_dir.parent.mkdir(parents=True, exist_ok=True)
    if work.exists() and not kept:
        if failed_dir.is_dir() and not failed_dir.is_symlink():
            # An earlier attempt of this resumed run, its worker killed, left error.txt alone there (`kept`; its
            # record keeps that message): this attempt's folder takes its place, where a rename onto it raised.
            shutil.rmtree(failed_dir)
        if not move_dead(work, failed_dir):
            # A run of the same identity took it meanwhile (removed it as a leftover, or resumed it).
            log.warning("%s was taken by another process before it could become %s, which holds error.txt alone",
                        work, failed_dir)
    failed_dir.mkdir(exist_ok=True)
    if run.checkpoint == "none":
        (failed_dir / "best.pt").unlink(missing_ok=True)
    details = "".join(traceback.format_exception(type(error), error, error.__traceback__)) if is_exception else message
    with contextlib.suppress(DataError), open_new(failed_dir / "error.txt", encoding="utf-8") as f:
        f.write(details + "\n")       # a link planted at it is not written through (the record keeps the message)
    s = run.setting
    return failed_record(run_id, model=s.model, dataset=s.dataset, aligned=s.aligned, seed=run.seed,
                         preset=s.preset, config=run.config, data_id=run.data_id, error=message, device=device,
                         started=started, wall_time_s=wall, run_dir=failed_dir, git_commit=git_commit(),
                         checkpoint=run.checkpoint, condition=s.condition, exit_code=exit_code)


def run_trial(run: PlannedRun, device: str, on_start=None) -> dict:
    """One trial (`run.trial`: storage, study, trial id and number, its params and the space file that
    proposed them), wherever the backend runs it:
    train on train, select and report on valid, never test. Returns its outcome as a dict; a complete
    one has a run record's `status`, `device` and `peak_memory_mb`, which size `--jobs auto` on CUDA."""
    optuna = optuna_module()
    info = run.trial
    started = time.time()
    try:
        if info.get("params"):
            # The proposed values alone first, blamed on the space file: in prepare they are -c
            # overrides among the user's, and an error there would blame the command line.
            s = run.setting
            load_config(s.model, s.dataset, preset=s.preset, overrides=list(info["params"].items()),
                        overrides_from=info.get("space", "the search space"))
        job = prepare(run.setting)
        study = optuna.load_study(study_name=info["study"], storage=study_storage(optuna, info["storage"]))
        trial = optuna.trial.Trial(study, info["trial_id"])
        key = job.config.key_eval

        def report(entry: dict) -> None:
            trial.report(float(entry["valid"][key]), entry["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {entry['epoch']}")

        where = resolve_device(device)
        if on_start is not None:
            on_start(None)                        # its training starts; a trial has no folder
        result, _, peak = train_model(job, run.seed, where, deterministic=run.deterministic, run_dir=None,
                                      progress=False, on_epoch=report, test=False, precision=run.precision)
        value = float(result.valid[key])
        state = "complete" if math.isfinite(value) else "fail"
        # A failed trial says why: the tune's stop line quotes the last failure's error.
        why = {} if state == "complete" else {"error": f"its valid {key} is {value}"}
        return {"number": info["number"], "state": state, "value": value, "epochs": result.epochs_run, **why,
                "seconds": time.time() - started, "status": "ok" if state == "complete" else "failed",
                "device": str(where), "peak_memory_mb": peak}
    except optuna.TrialPruned as pruned:
        return {"number": info["number"], "state": "pruned", "error": str(pruned), "seconds": time.time() - started}
    except Exception as error:                    # a failed trial is a result; the study goes on
        why = locked_trial_error(info["storage"]) if is_locked(error) else f"{type(error).__name__}: {error}"
        return {"number": info["number"], "state": "fail", "error": why, "seconds": time.time() - started}


def worker_logging() -> None:
    """Run details go to each run's train.log; the console gets warnings only. Once per process
    (a Ray worker runs many tasks). The warnings of the data the driver gave when it planned are not repeated here."""
    leave_data_warnings_to_driver()
    root = logging.getLogger()
    if any(h.get_name() == WORKER_CONSOLE for h in root.handlers):
        return
    console = logging.StreamHandler()
    console.set_name(WORKER_CONSOLE)
    console.setLevel(logging.WARNING)
    root.addHandler(console)
    log.setLevel(logging.INFO)
