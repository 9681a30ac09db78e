"""The sweep's driver: plan, hold the folder's lock, run on a backend, append records, report.

Resume. The results store (`<out>/runs.jsonl`) is append-only (see `results`). A run whose
identity already has an `ok` record is skipped; a run that failed is recorded once per
failure with status `failed` and its error, and is skipped too unless `retry_failed`. Runs
whose record never landed run again, so a killed sweep started again ends with every run
recorded exactly once; with `resume`, a run cut short continues from its last finished epoch
(`execute`), else it starts again from its first. Only the driver writes the store, whatever
the backend, and only one sweep at a time may write a results folder (`<out>/.sweep.lock`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..code_version import git_commit
from ..data.conditions import condition_of
from ..data.synthetic_stress import STANDARD, recipe_kind_of
from ..errors import ToolkitError
from ..model_names import check_model_names
from ..results import (LOOK_WAIT_S, SWEEP_LOCK, append_or_keep, check_no_run_py, check_output_folder, config_labels,
                       headline_metric, identity, recover, unopenable_note)
from ..lock_files import shared_mode
from ..run_folders import check_save_checkpoint, take
from ..training.hardware import check_cuda_determinism, check_precision
from .local import LocalBackend
from .todo_guess import likely_todo
from .plan import Plan, check_runnable, plan, release
from .plan_lines import cut_short, plan_line, planning_line, show_dry_run
from .sweep_file import check_settings, expand


@dataclass
class Summary:
    plan: Plan
    records: list[dict]
    seconds: float

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.records if r.get("status") != "ok"]


class SweepProgress:
    """One line per finished run, with the overall count and the time left at the current pace. `names`: run
    identity -> the name of the run's model and config, as the leaderboard names it (`results.config_labels`); the
    model's name for a record not there. By identity, not run_id: a resumed run comes back under its folder's."""

    def __init__(self, total: int, names: dict[tuple, str], echo=print):
        self.total, self.finished, self.failed, self.names, self.echo = total, 0, 0, names, echo
        self.start = time.time()

    def __call__(self, record: dict) -> None:
        self.finished += 1
        elapsed = time.time() - self.start
        eta = elapsed / self.finished * (self.total - self.finished)
        condition = condition_of(record)
        # A number on synthetic data says so, as every table does: 'tfn mosi seed 1: MAE ...' read as MOSI's; and
        # on a stress recipe, which one: a stress sweep's runs of one model and seed were told apart by nothing.
        recipe = recipe_kind_of(record.get("data"))
        synthetic = (f" synthetic{f' ({recipe} recipe)' if recipe != STANDARD else ''}" if record.get("synthetic")
                     else "")
        name = self.names.get(identity(record), record["model"])
        what = (f"{name} {record['dataset']}{' aligned' if record['aligned'] else ''}{synthetic}"
                f"{f' [{condition.key()}]' if not condition.plain else ''} seed {record['seed']}")
        if record.get("status") == "ok":
            key = headline_metric(record["dataset"])
            value = record["metrics"].get(key)
            # "test": the number is the best-valid epoch's on the test split, where tune's lines say "valid".
            result = f"ok      {what}: test {key} {'nan' if value is None else f'{value:.4f}'}"
        else:
            self.failed += 1
            result = f"FAILED  {what}: {record.get('error', '?')}"
        width = len(str(self.total))
        # A resumed run's time is this call's part: its first epochs were trained by the call that was cut short.
        resumed = ", resumed" if record.get("earlier_attempts") else ""
        self.echo(f"[{self.finished:>{width}}/{self.total}] {result} ({record.get('wall_time_s', 0):.1f}s{resumed})"
                  f" | {self.finished}/{self.total} done, {self.failed} failed, "
                  f"elapsed {_clock(elapsed)}, ETA {_clock(eta)}")


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class SweepLock:
    """One sweep at a time per results folder (two would both run what neither has recorded), and none beside an
    in-process run.py (`results.writers`). The OS drops the lock of a killed sweep."""

    def __init__(self, out: Path):
        self.path = Path(out) / SWEEP_LOCK
        self.lock = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # An in-process run.py's look at it holds it a moment; a lock file this user may not open counts as held.
        self.lock = take(self.path, LOOK_WAIT_S, shared_mode(self.path.parent))
        if self.lock is None:
            if note := unopenable_note(self.path, "sweep"):
                raise ToolkitError(f"this user cannot take {self.path.parent}'s sweep lock {self.path}, so no sweep "
                                   f"of this user may write there: it{note}")
            raise ToolkitError(f"another sweep is writing to {self.path.parent} (lock {self.path}); wait for it or "
                               f"use another --out")
        try:
            check_no_run_py(self.path.parent)           # after the lock is held: see results.writers
        except ToolkitError:
            self.lock.release()
            raise
        return self

    def __exit__(self, *exc):
        self.lock.release()


def run_plan(sweep_plan: Plan, out, backend, echo=print) -> Summary:
    """Run what the plan has to do; append each record as it arrives (hold the sweep lock)."""
    from ..api.one_run import new_run_id    # here: api imports torch, and the planning line comes before it
    out = Path(out)
    records = []
    start = time.time()
    tasks = [(r, new_run_id(r.setting.model, r.setting.dataset, r.setting.aligned, r.seed))
             for r in sweep_plan.todo]
    labels = _config_labels(sweep_plan.runs)
    progress = SweepProgress(len(tasks), {r.identity: labels[id(r)] for r, _ in tasks}, echo)

    def on_result(record: dict) -> None:
        append_or_keep(out, record)      # a store that cannot take it stops the sweep, the record kept
        records.append(record)
        progress(record)

    if tasks:
        backend.run(tasks, out, on_result)
    return Summary(sweep_plan, records, time.time() - start)


def _config_labels(runs: list) -> dict[int, str]:
    """id(run) -> its model and config named as the leaderboard names them: `tfn` where the sweep holds one
    config of tfn for the run's table (dataset, layout, data id), `tfn@1a2b3c4d` where it holds several, so
    two configs of one model tell their progress lines apart."""
    tables: dict[tuple, list] = {}
    for run in runs:
        tables.setdefault((run.setting.dataset, run.setting.aligned, run.data_id), []).append(run)
    named = {}
    for table in tables.values():
        labels = config_labels((run.setting.model, run.config_hash) for run in table)
        named.update({id(run): labels[run.setting.model, run.config_hash] for run in table})
    return named


def sweep(file=None, *, out="results", dry_run=False, retry_failed=False, backend=None, echo=print,
          save_checkpoint="best", precision="fp32", deterministic=True, label=None, tune_trial=None,
          resume=None, before_runs=None, **lists) -> Summary | Plan:
    """Plan and run a sweep: models x datasets x aligned flags x seeds, resumable (see the module
    docstring); `lists` go to `expand`. `save_checkpoint="none"` leaves no best.pt in run folders.
    `resume`: a run that a cut-short call left in a dead `.partial` folder continues from its last finished
    epoch, as `run.py --resume` continues it (`execute`); else that folder is removed and the run starts again
    (None: as False, from a caller that offers no --resume: no line names it; "stop": `run.py --jobs N --resume`,
    where a folder it may not continue fails the run). `retry_failed` also chooses what the line of a run whose
    worker died under `resume` says to type to continue it (`execute.failure`).
    `precision` and `deterministic` as for `api.run`. `label` is stored in the records of the runs it
    trains (`tune` names its study), and `tune_trial` with it (the number of the study's best trial).
    `before_runs(todo)`: a caller's check of the planned runs before any starts (`plan.check_runnable`).

    `backend`: a backend, or a function that makes one, called after the planning line (the cli's: choosing
    devices imports torch); None: `LocalBackend()`.

    Returns the `Plan` for a dry run, else a `Summary` of what ran.
    """
    git_commit()                       # the code version this driver runs, read before anything trains
    check_precision(precision)
    check_save_checkpoint(save_checkpoint)     # every check that needs no torch comes before the planning line
    expanded = expand(file, **lists)
    check_model_names(setting.model for _, setting, _ in expanded)     # from the model files' source: no torch
    check_output_folder(out)
    # Planning reads every setting's data (and, the first time in a cache folder, writes synthetic data and its
    # tiny BERT) while the workers start: 6-26 s on a busy 2-core CPU that were silent before the plan line.
    # Nothing before this line imports torch (2-4 s of a cold start; tests/test_lazy_imports.py).
    check_settings(expanded, lists.get("config"))     # a bad value stops the sweep before its planning line
    echo(planning_line(expanded))
    backend = backend() if callable(backend) else backend or LocalBackend()     # its maker may import torch
    if dry_run:
        return show_dry_run(expanded, out, retry_failed, resume, echo)
    here = getattr(backend, "in_process", False)     # runs train in this process (CUDA may have started before us)
    check_cuda_determinism(getattr(backend, "devices", ()), deterministic, in_this_process=here)  # before any worker
    with SweepLock(out):
        for kept in recover(out):      # records an earlier call could not append (results.append_or_keep)
            echo(f"recovered the record of run {kept['run_id']} into {Path(out) / 'runs.jsonl'}")
        backend.start(likely_todo(expanded, out, retry_failed))     # no more workers than runs to do
        try:
            sweep_plan = plan(expanded, out, retry_failed=retry_failed, checkpoint=save_checkpoint, keep_data=here,
                              precision=precision, deterministic=deterministic)
            for run in sweep_plan.todo:
                run.label, run.tune_trial, run.resume, run.reruns_failed = label, tune_trial, resume, retry_failed
            check_runnable(sweep_plan, before_runs)
            todo = len(sweep_plan.todo)
            echo(plan_line(sweep_plan, retry_failed)
                 + f"{todo} to run{cut_short(sweep_plan, out, resume)} ({backend.describe(todo)})")
            if note := getattr(backend, "jobs_note", lambda runs: "")(todo):
                echo(note)                # Ray's backend has none: its runs are sized per run, not by a count
            summary = run_plan(sweep_plan, out, backend, echo)
        finally:
            backend.close()
            release()
    ok = len(summary.records) - len(summary.failed)
    echo(f"sweep finished in {_clock(summary.seconds)}: {len(summary.records)} ran ({ok} ok, "
         f"{len(summary.failed)} failed); records in {Path(out) / 'runs.jsonl'}")
    return summary
