"""Who trains into a results folder at once: one sweep, or any number of in-process `run.py`s, never both.

A sweep (also a tune, and `run.py --jobs`) plans every run from the store, then trains them for hours; an
in-process `run.py` reads the store as it reaches each of its runs. Side by side in one folder, both trained a
run neither had recorded yet, and it was recorded twice. A sweep holds `.sweep.lock` (`sweep.driver.SweepLock`)
for its whole call; an in-process run.py holds a mark of its own, `runs/.run-py-<random>.lock`, as long as it
trains (`run_py_mark`; several run.py's, on different models or the same, each hold their own). run.py takes its
mark first and then looks at the sweep's lock; a sweep takes its lock first and then looks at the marks
(`check_no_run_py`): whichever of the two comes second sees the other and stops in one line, before it trains.
run.py takes its mark only when it reaches its first run to train (`RunPyMark`), and then reads the store again.
A killed run.py's mark is free (the OS drops its lock): the next sweep removes it, and so does `run.py clean`
(`remove_free_marks`).

A results folder may be shared by several users, so a mark and the sweep's lock are made as writable as their
folder (`lock_mode`, whatever the umask): writable by the group, or by all, where the folder is, so that another
user who may write there can take the lock to see whether it is held, and remove a killed run.py's mark; in a
private folder, by its owner alone (a lock file writable by all let any local user fill the disk through it).
A lock file this user cannot take counts as held, the rule of every lock
one process looks at for another (`run_folders.take`): one it may not open (made before, at 0644, by another user),
or another user's in a folder with the sticky bit (1777, or 3775), which filelock refuses to lock and the sticky bit
stops this user removing, whether or not anything of its owner's runs. The refusal then says so, not that a sweep
or run.py is running (`unopenable_note`): it names the file, its owner, and who may remove it.
"""
from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import time
from pathlib import Path

from filelock import FileLock, Timeout

from ..errors import ToolkitError, UsageError, one_line
from ..run_folders.lock import sticky_foreign_owner, take
from .folder import SWEEP_LOCK

RUN_PY_MARK = ".run-py-"          # runs/.run-py-<random>.lock, held by an in-process run.py while it trains
# One process's look at another's lock holds it for a moment: a sweep's lock, which run.py looks at, and run.py's
# mark, which a sweep looks at, are waited for this long before they count as held by a live writer.
LOOK_WAIT_S = 2.0


def lock_mode(folder: Path) -> int:
    """The mode of a mark or sweep lock made in `folder` (filelock applies it past the umask): readable by all,
    writable by its owner, and by the group or others only where they may write `folder` too, so that any user
    who may work in the folder may take the lock, and no other may write into it."""
    try:
        folder_mode = folder.stat().st_mode
    except OSError:
        folder_mode = 0
    return 0o644 | (folder_mode & (stat.S_IWGRP | stat.S_IWOTH))


@contextlib.contextmanager
def run_py_mark(out):
    """Hold an in-process run.py's mark in `<out>/runs` while the body trains; one ToolkitError line, the mark
    removed, if a sweep holds the folder."""
    runs = Path(out) / "runs"
    with contextlib.suppress(OSError):
        runs.mkdir(parents=True, exist_ok=True)
    mark = _make_mark(runs)
    try:
        sweep_lock = Path(out) / SWEEP_LOCK
        if _held(sweep_lock):
            if note := unopenable_note(sweep_lock, "sweep"):
                raise ToolkitError(f"run.py cannot tell whether a sweep is writing to {out}: its sweep lock "
                                   f"{sweep_lock}{note}")
            raise ToolkitError(f"a sweep (or tune, or run.py --jobs) is writing to {out} (lock {sweep_lock}), and it "
                               f"may train the runs asked here too: wait for it to end, then run the same command "
                               f"again (it skips what is recorded), or give another --out")
        yield
    finally:
        mark.release()
        with contextlib.suppress(OSError):
            Path(mark.lock_file).unlink()


def _make_mark(runs: Path) -> FileLock:
    """A fresh mark in `runs`, taken; one line saying why if it cannot be: `runs` not writable by this user, or the
    OS's own error (a full disk, ...). Not `run_folders.take`, which counts any lock it cannot take as another's."""
    path = runs / f"{RUN_PY_MARK}{secrets.token_hex(8)}.lock"
    mark = FileLock(path, mode=lock_mode(runs))
    try:
        # A fresh random name: only a sweep's look at every mark (`check_no_run_py`) may hold it, for a moment.
        mark.acquire(timeout=LOOK_WAIT_S)
    except Timeout:
        raise ToolkitError(f"run.py's fresh mark {path} was held by another process for {LOOK_WAIT_S:g} s: run the "
                           f"same command again") from None
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EPERM):
            raise UsageError(f"{runs} is not writable by this user, and run.py marks it ({RUN_PY_MARK}<random>.lock) "
                             f"while it trains: make it writable, or give another --out") from None
        raise ToolkitError(f"run.py could not make its mark {path}, which it holds while it trains "
                           f"({e.strerror or one_line(e)}): free space or fix {runs}, or give another --out") from None
    return mark


class RunPyMark:
    """`run_py_mark`, taken by `take()` when the first run that trains is reached, not before: a call whose runs are
    all recorded writes nothing in runs/ (which may not be this user's to write) and is not stopped by a sweep
    (it trains nothing the sweep might). Held until the `with` block ends."""

    def __init__(self, out):
        self.out, self.held, self._stack = out, False, contextlib.ExitStack()

    def __enter__(self) -> "RunPyMark":
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def take(self) -> bool:
        """Take the mark (one ToolkitError line while a sweep holds the folder); True if it was taken by this call,
        False if held already. Once taken, read the store again before deciding what to train: a sweep that
        ended meanwhile may have recorded the runs, and none can start while the mark is held."""
        if self.held:
            return False
        self._stack.enter_context(run_py_mark(self.out))
        self.held = True
        return True


def check_no_run_py(out) -> None:
    """One ToolkitError line if an in-process run.py trains into `out` (holds a mark); a free mark, a killed
    run.py's, is removed. Called by a sweep holding the folder's sweep lock."""
    runs = Path(out) / "runs"
    live, _ = remove_free_marks(runs)
    for path in live:
        if note := unopenable_note(path, "run.py"):
            others = f" ({len(live) - 1} more mark(s) there count as held)" if len(live) > 1 else ""
            raise ToolkitError(f"a sweep cannot tell whether a run.py trains into {out}: its mark {path}{note}{others}")
    if live:
        raise ToolkitError(f"{len(live)} run.py process(es) are training into {out} (their marks in {runs}: "
                           f"{', '.join(p.name for p in live)}), and a sweep beside them may train the same runs: "
                           f"wait for them to end, or give another --out")


def remove_free_marks(runs: Path, older_than: float = 0.0) -> tuple[list[Path], int]:
    """Remove the free marks in `runs` (killed run.py's: the OS dropped their locks) made over `older_than` seconds
    ago; return the marks held (or that this user cannot take) and how many were removed. A sweep removes every free
    one: it holds the sweep lock, so a run.py whose new mark it removed between that run.py's making and taking it
    still sees the sweep and stops. `run.py clean` holds no such lock, so it leaves a mark made in the last minute
    (NEW_GRACE_S: run_folders' rule for a `.partial.new` folder)."""
    live, removed = [], 0
    for path in sorted(runs.glob(f"{RUN_PY_MARK}*.lock")) if runs.is_dir() else []:
        if path.is_symlink() or not path.is_file():
            continue                   # no run.py made it: a link is never opened, as a run folder's run.lock
        if _held(path):
            live.append(path)
            continue
        with contextlib.suppress(OSError):
            if time.time() - path.stat().st_mtime > older_than:
                path.unlink()
                removed += 1
    return live, removed


def unopenable_note(path: Path, whose: str) -> str:
    """Why this user cannot take the lock file at `path` whatever holds it, and what to do ('' if it can: a live
    process holds it). `whose`: 'sweep', 'run.py'. The one place that words a lock `run_folders.take` counts as
    held for want of permission; each refusal leads with it instead of saying that a `whose` is running."""
    sticky_owner = sticky_foreign_owner(path)
    try:
        info = path.stat()
        owner, mode = f"uid {info.st_uid}", stat.S_IMODE(path.parent.stat().st_mode)
    except OSError:
        owner, mode = "another user", 0
    if sticky_owner is not None:
        removal = ("root may remove it, but not take it" if os.geteuid() == 0
                   else "this user can neither take nor remove it")
        why = (f"is {owner}'s in a folder with the sticky bit ({path.parent}, mode {mode:04o}), where filelock "
               f"takes no other user's lock (its owner could replace the file while it was held) and the sticky bit "
               f"stops any user but its owner and root removing it: {removal}, whether or not a {whose} of {owner} "
               f"runs there")
    elif not os.access(path, os.R_OK | os.W_OK, effective_ids=os.access in os.supports_effective_ids):
        why = f"is {owner}'s and this user may not open it, whether or not a {whose} of {owner} runs there"
    else:
        return ""
    return (f" {why}; once no {whose} of {owner} runs there, {owner} (or root) may remove it; else give "
            f"another --out")


def _held(path: Path) -> bool:
    """Whether the lock at `path` counts as held (waited for LOOK_WAIT_S: another's look holds it a moment): by
    a live process, or a file this user may not open (`run_folders.take`)."""
    if not path.exists():
        return False
    lock = take(path, LOOK_WAIT_S)
    if lock is None:
        return True
    lock.release()
    return False
