"""`run.py --jobs N|auto`: a run's seeds (and models, datasets) on the sweep's local backend.

The same pipeline as `api.run` (plan, skip what is recorded, train, one MMSA row per model and
dataset) with the sweep's workers, so there is one scheduler: the workers start once and take run
after run, and the driver is the only process that writes the store.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ToolkitError, UsageError
from ..results import append_mmsa_rows, check_mmsa_csv, identity, latest_by_identity, read_records
from .driver import Summary, sweep


def run_packed(models, datasets, seeds, *, backend, out="results", save_checkpoint="best", precision="fp32",
               deterministic=True, echo=print, appended: list | None = None, **lists) -> list[dict]:
    """Train what `api.run(models, datasets, seeds, ...)` would, on `backend` (a LocalBackend);
    return the records in plan order, recorded ones included. `lists`: aligned, synthetic, preset,
    max_epochs, config, ... as `sweep.expand` takes them. A failed run raises ToolkitError once
    every run has finished (its record and error.txt are kept), of the kind of the first one's error
    (`failed_runs_error`); a failure recorded earlier is tried again. `appended`: a list the run ids of the
    records this call trained and appended are added to, as `api.run`'s."""
    summary = sweep(out=out, backend=backend, echo=echo, retry_failed=True, save_checkpoint=save_checkpoint,
                    precision=precision, deterministic=deterministic, models=list(models),
                    datasets=list(datasets), seeds=list(seeds), before_runs=check_mmsa_csvs, **lists)
    if summary.failed:
        raise failed_runs_error(summary, out, "")
    if appended is not None:
        appended.extend(r["run_id"] for r in summary.records)
    recorded = latest_by_identity(read_records(Path(out)))
    records = [recorded[run.identity] for run in summary.plan.runs]
    append_mmsa_rows(Path(out), records, summary.records, echo=echo)     # the rows `api.run` writes
    return records


def check_mmsa_csvs(todo) -> None:
    """The MMSA CSVs the runs to train append their rows to after every run (`append_mmsa_rows`), checked before
    any starts, as `api.run` checks them in process: a file of other columns refused them after the runs trained."""
    for path, dataset in {run.mmsa_csv: run.setting.dataset for run in todo}.items():
        check_mmsa_csv(path, dataset)


def failed_runs_error(summary: Summary, out, head: str) -> ToolkitError:
    """The one line of a command whose runs ran to the end and some failed: how many, the first in plan order (the
    one an in-process `run.py` would have stopped on) and its error. `head` goes before (a tune's study name).
    Both callers run failed runs again (retry_failed), so the same command is what goes on.
    Its kind is that error's: a UsageError raised inside a worker (a ModelContractError: the user's model breaks
    the contract, every seed alike) exits 2 as it does in process, not 1. The record says so (`exit_code`, set by
    `execute.failure` where the exception was caught); its text is not read for a class name, which a user's own
    exception class (one named UsageError in a model file) shared with the toolkit's. A record without the field
    (written by an older toolkit's worker) exits 1: a failure not known to be the user's command is not called one."""
    order = {run.identity: i for i, run in enumerate(summary.plan.runs)}
    failed = sorted(summary.failed, key=lambda r: order.get(identity(r), len(order)))
    first, error = failed[0], str(failed[0].get("error"))
    line = (f"{head}{len(failed)} run(s) failed, e.g. {first['model']} {first['dataset']} seed {first['seed']}: "
            f"{error} (records in {Path(out) / 'runs.jsonl'}; the same command runs them again)")
    return UsageError(line) if first.get("exit_code") == UsageError.exit_code else ToolkitError(line)

