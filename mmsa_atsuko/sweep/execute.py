"""One planned run, wherever it runs (the driver, a worker process, a Ray task) -> its record.

Never appends to the store: only the sweep's driver writes it, whatever the backend.
"""
from __future__ import annotations

import logging
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from .. import api
from ..config import config_hash
from ..errors import ToolkitError
from ..results import failed_record
from ..training.seed import resolve_device
from .plan import PlannedRun, prepare

log = logging.getLogger("mmsa_atsuko")
WORKER_CONSOLE = "mmsa-atsuko-worker-console"


def execute(run: PlannedRun, run_id: str, out: str, device: str) -> dict:
    """Train one planned run and return its record; a run that raises gives a failed record."""
    started = datetime.now(timezone.utc)
    clock = time.time()
    try:
        job = prepare(run.setting)
        got = (config_hash(job.config), job.data.spec.source)
        if got != (run.config_hash, run.data):
            raise ToolkitError(f"the config or data changed since the sweep was planned: planned "
                               f"{run.config_hash} on {run.data}, found {got[0]} on {got[1]}")
        return api.train_one(job, run.seed, resolve_device(device), Path(out), True, run_id=run_id,
                             checkpoint=run.checkpoint)
    except Exception as error:               # a failed run is a result; the sweep goes on
        return failure(run, run_id, out, device, error, started, time.time() - clock)


def failure(run: PlannedRun, run_id: str, out, device: str, error, started: datetime, wall: float) -> dict:
    """The record of a failed run (`error`: the exception, or a message); its work folder, with
    the traceback in error.txt, becomes `runs/<run_id>.failed`."""
    is_exception = isinstance(error, BaseException)
    message = " ".join(f"{type(error).__name__}: {error}".split()) if is_exception else str(error)
    work = api.partial_dir(Path(out), run_id)
    failed_dir = work.parent / f"{run_id}.failed"
    failed_dir.parent.mkdir(parents=True, exist_ok=True)
    if work.exists():
        work.rename(failed_dir)
    else:
        failed_dir.mkdir(exist_ok=True)
    if run.checkpoint == "none":
        (failed_dir / "best.pt").unlink(missing_ok=True)
    details = "".join(traceback.format_exception(type(error), error, error.__traceback__)) if is_exception else message
    (failed_dir / "error.txt").write_text(details + "\n", encoding="utf-8")
    s = run.setting
    return failed_record(run_id, model=s.model, dataset=s.dataset, aligned=s.aligned, seed=run.seed,
                         preset=s.preset, config=run.config, data=run.data, error=message, device=device,
                         started=started, wall_time_s=wall, run_dir=failed_dir, git_commit=api.git_commit(),
                         checkpoint=run.checkpoint, condition=s.condition)


def worker_logging() -> None:
    """Run details go to each run's train.log; the console gets warnings only. Once per process
    (a Ray worker runs many tasks)."""
    root = logging.getLogger()
    if any(h.get_name() == WORKER_CONSOLE for h in root.handlers):
        return
    console = logging.StreamHandler()
    console.set_name(WORKER_CONSOLE)
    console.setLevel(logging.WARNING)
    root.addHandler(console)
    log.setLevel(logging.INFO)
