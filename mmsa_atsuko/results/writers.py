"""Who trains into a results folder at once: one sweep, or any number of in-process `run.py`s, never both.

A sweep (also a tune, and `run.py --jobs`) plans every run from the store, then trains them for hours; an
in-process `run.py` reads the store as it reaches each of its runs. Side by side in one folder, both trained a
run neither had recorded yet, and it was recorded twice. A sweep holds `.sweep.lock` (`sweep.driver.SweepLock`)
for its whole call; an in-process run.py holds a mark of its own, `runs/.run-py-<random>.lock`, as long as it
trains (`run_py_mark`; several run.py's, on different models or the same, each hold their own). run.py takes its
mark first and then looks at the sweep's lock; a sweep takes its lock first and then looks at the marks
(`check_no_run_py`): whichever of the two comes second sees the other and stops in one line, before it trains.
A killed run.py's mark is free (the OS drops its lock): the next sweep removes it.
"""
from __future__ import annotations

import contextlib
import secrets
from pathlib import Path

from filelock import FileLock, Timeout

from ..errors import ToolkitError
from .folder import SWEEP_LOCK

RUN_PY_MARK = ".run-py-"          # runs/.run-py-<random>.lock, held by an in-process run.py while it trains
# One process's look at another's lock holds it for a moment: a sweep's lock, which run.py looks at, and run.py's
# mark, which a sweep looks at, are waited for this long before they count as held by a live writer.
LOOK_WAIT_S = 2.0


@contextlib.contextmanager
def run_py_mark(out):
    """Hold an in-process run.py's mark in `<out>/runs` while the body trains; one ToolkitError line, the mark
    removed, if a sweep holds the folder."""
    runs = Path(out) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    mark = FileLock(runs / f"{RUN_PY_MARK}{secrets.token_hex(8)}.lock")
    mark.acquire()                    # a fresh random name: no other process holds it
    try:
        sweep_lock = Path(out) / SWEEP_LOCK
        if _held(sweep_lock):
            raise ToolkitError(f"a sweep (or tune, or run.py --jobs) is writing to {out} (lock {sweep_lock}), and it "
                               f"may train the runs asked here too: wait for it to end, then run the same command "
                               f"again (it skips what is recorded), or give another --out")
        yield
    finally:
        mark.release()
        with contextlib.suppress(OSError):
            Path(mark.lock_file).unlink()


def check_no_run_py(out) -> None:
    """One ToolkitError line if an in-process run.py trains into `out` (holds a mark); a free mark, a killed
    run.py's, is removed. Called by a sweep holding the folder's sweep lock."""
    runs = Path(out) / "runs"
    live = []
    for path in sorted(runs.glob(f"{RUN_PY_MARK}*.lock")) if runs.is_dir() else []:
        if path.is_symlink() or not path.is_file():
            continue                   # no run.py made it: a link is never opened, as a run folder's run.lock
        if _held(path):
            live.append(path)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
    if live:
        raise ToolkitError(f"{len(live)} run.py process(es) are training into {out} (their marks: "
                           f"{', '.join(p.name for p in live)} in {runs}), and a sweep beside them may train the "
                           f"same runs: wait for them to end, or give another --out")


def _held(path: Path) -> bool:
    """Whether a live process holds the lock at `path` (waited for LOOK_WAIT_S: another's look holds it a moment)."""
    if not path.exists():
        return False
    lock = FileLock(path)
    try:
        lock.acquire(timeout=LOOK_WAIT_S)
    except Timeout:
        return True
    lock.release()
    return False
