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
(`remove_free_locks`), each under the mark's lock (`lock_files.remove_free`), never after a mere look at it.

A results folder may be shared by several users, so a mark and the sweep's lock are made as writable as their
folder (`lock_files.shared_mode`, whatever the umask): writable by the group, or by all, where the folder is, so
that another user who may write there can take the lock and remove a killed run.py's mark; in a private folder, by
its owner alone (a lock file writable by all let any local user fill the disk through it).
Looking at a lock needs no write access (`_held`, `lock_files.probe`: opened read-only and locked shared): another
user's mark or sweep lock that this user may not write, or may not take (theirs in a folder with the sticky bit,
1777 or 3775, which filelock 4.2.12 and later refuse to lock: its owner could replace the file while it was held),
is free when nothing of theirs runs. A lock this user cannot even look at (one it may not read, a file system whose
locks fail) counts as held, and the refusal says so (`unprobeable_note`), not that a sweep or run.py is running.
Taking a lock is still refused where filelock refuses it: a sweep does not write where it cannot take `.sweep.lock`,
and its line names the file, its owner, and who may remove it (`unopenable_note`).
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
from ..lock_files import make_shared_folder, owner_name, probe, remove_free, shared_mode
from ..run_folders.lock import IDENTITY_CLAIM, sticky_foreign_owner
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
    with contextlib.suppress(OSError):
        make_shared_folder(runs)
    mark = _make_mark(runs)
    try:
        sweep_lock = Path(out) / SWEEP_LOCK
        held = _held(sweep_lock)
        if held is None:
            raise ToolkitError(f"run.py cannot tell whether a sweep is writing to {out}: its sweep lock "
                               f"{sweep_lock}{unprobeable_note(sweep_lock, 'sweep')}")
        if held:
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
    mark = FileLock(path, mode=shared_mode(runs))
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
    run.py's, is removed, and so, when no run.py trains there, is a free claim of a run (a killed run.py's).
    Called by a sweep holding the folder's sweep lock."""
    runs = Path(out) / "runs"
    live, _, _ = remove_free_locks(runs, RUN_PY_MARK)
    # Each mark looked at once: the look that kept it says whether it is held or cannot be looked at.
    unprobeable = [path for path, held in live.items() if held is None]
    if unprobeable:
        others = f" ({len(live) - 1} more mark(s) there count as held)" if len(live) > 1 else ""
        raise ToolkitError(f"a sweep cannot tell whether a run.py trains into {out}: its mark {unprobeable[0]}"
                           f"{unprobeable_note(unprobeable[0], 'run.py')}{others}")
    if live:
        raise ToolkitError(f"{len(live)} run.py process(es) are training into {out} (their marks in {runs}: "
                           f"{', '.join(p.name for p in live)}), and a sweep beside them may train the same runs: "
                           f"wait for them to end, or give another --out")
    remove_free_locks(runs, IDENTITY_CLAIM)      # no run.py trains here: every claim left is a killed one's


def remove_free_locks(runs: Path, prefix: str, older_than: float = 0.0
                      ) -> tuple[dict[Path, bool | None], int, list[tuple[Path, OSError]]]:
    """Remove the free lock files in `runs` named `<prefix>*.lock` (a killed process's: the OS dropped its lock)
    made over `older_than` seconds ago: a run.py's marks (RUN_PY_MARK), or its claims of the runs it trains
    (`run_folders.IDENTITY_CLAIM`), which a killed run.py leaves too (another user's, in a folder with the sticky bit,
    then stops every other user's run.py at that run). Each is removed under its lock (`lock_files.remove_free`), not
    after a look: a run.py that takes a free claim between the look and the removal keeps it, held (removed by its
    name before, a third run.py then took a claim of its own, and two trained one run), and one that had opened it
    wins a lock of no name, which filelock drops to take a fresh one. A sweep removes every free one: it holds the
    sweep lock, so a run.py whose new mark it removed between that run.py's making and taking it still sees the
    sweep and stops. `run.py clean` holds no such lock, so it leaves one made in the last minute (NEW_GRACE_S:
    run_folders' rule for a `.partial.new` folder). Returns the ones left as held, each with its last look (`_held`:
    True, or None where this user cannot tell, which counts as held), how many were removed, and the free ones this
    user could not remove, each with the OS's error (another user's in a folder with the sticky bit:
    `unremovable_note`)."""
    live, removed, kept = {}, 0, []
    for path in sorted(runs.glob(f"{prefix}*.lock")) if runs.is_dir() else []:
        if path.is_symlink() or not path.is_file():
            continue                   # no run.py made it: a link is never opened, as a run folder's run.lock
        held = _held(path)
        while held is False:
            try:
                if time.time() - path.stat().st_mtime <= older_than:
                    break
                outcome = remove_free(path)
            except FileNotFoundError:
                break
            except OSError as e:
                kept.append((path, e))
                break
            if outcome is not False:   # removed, or gone (its name another's now)
                removed += outcome is True
                break
            held = _held(path)         # taken since the look: another look, waited for as the first
        if held is not False:          # held, or this user cannot tell
            live[path] = held
    return live, removed, kept


def check_claim_free_to_take(claim: Path) -> None:
    """One ToolkitError line if the claim file `claim` of a run this run.py is about to train is free but another
    user's in a folder with the sticky bit (a killed run.py's), which filelock refuses to take (4.2.12, setup.py's
    floor): run.py checks the claims of its planned runs before training
    any, so that it does not train the others first and then stop."""
    if sticky_foreign_owner(claim) is not None and probe(claim) is False:
        raise ToolkitError(f"run.py cannot take the claim {claim} of a run it is to train: it"
                           f"{unopenable_note(claim, 'run.py')}")


def unopenable_note(path: Path, whose: str) -> str:
    """Why this user cannot take the lock file at `path` whatever holds it, and what to do ('' if it can: a live
    process holds it). `whose`: 'sweep' or 'run.py'. The one place that words a lock `run_folders.take` refuses for
    want of permission; the sweep's refusal to take its lock leads with it instead of saying that a `whose` is
    running."""
    sticky_owner = sticky_foreign_owner(path)
    try:
        uid, mode = path.stat().st_uid, stat.S_IMODE(path.parent.stat().st_mode)
    except OSError:
        uid, mode = None, 0
    owner = _owner(uid)
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
    return f" {why}; {_who_may_remove(whose, uid)}"


def unprobeable_note(path: Path, whose: str) -> str:
    """Why this user cannot look at the lock file at `path` (`lock_files.probe` says None) and what to do: the
    lock counts as held. `whose`: 'sweep', 'run.py'."""
    try:
        uid = path.lstat().st_uid
    except OSError:
        uid = None
    owner = _owner(uid)
    if path.is_symlink():
        why = "is a symbolic link, which no sweep or run.py makes, and is never opened"
    elif path.exists() and not path.is_file():
        why = "is no regular file, which no sweep or run.py makes"
    elif not os.access(path, os.R_OK, effective_ids=os.access in os.supports_effective_ids):
        why = f"is {owner}'s and this user may not read it, whether or not a {whose} of {owner} runs there"
    else:
        why = (f"could not be locked to look at it (a file system whose locks fail, such as some NFS mounts), "
               f"whether or not a {whose} of {owner} runs there")
    return f" {why}: it counts as held; {_who_may_remove(whose, uid)}"


def unremovable_note(path: Path, whose: str, error: OSError) -> str:
    """Why this user could not remove the free lock file at `path` (`remove_free_locks` kept it, with `error`), and
    who may: another user's in a folder with the sticky bit is `unopenable_note`'s; else the OS's words (`runs/`
    not writable by this user, a read-only file system)."""
    if sticky_foreign_owner(path) is not None:
        return unopenable_note(path, whose)
    try:
        uid = path.stat().st_uid
    except OSError:
        uid = None
    return f" could not be removed ({error.strerror or one_line(error)}); {_who_may_remove(whose, uid)}"


def _owner(uid: int | None) -> str:
    """The owner of a lock file as a note names them (`lock_files.owner_name`); 'another user' where it is unknown."""
    return "another user" if uid is None else owner_name(uid)


def _who_may_remove(whose: str, uid: int | None) -> str:
    """The closing of every note on a lock file this user cannot take, look at or remove: who may remove it, and
    when; else another --out. Root owning it is named once."""
    owner = _owner(uid)
    remover = owner if uid == 0 else f"{owner} (or root)"
    return f"once no {whose} of {owner} runs there, {remover} may remove it; else give another --out"


def _held(path: Path) -> bool | None:
    """Whether a live process holds the lock at `path`, looked at read-only (`lock_files.probe`), waited for
    LOOK_WAIT_S (a process taking it holds it a moment): None where this user cannot tell, which counts as held.
    Looking needs no write access: another user's lock file it may not write, or may not take (theirs in a folder
    with the sticky bit), is free when free; taking it is still refused (`SweepLock`, `unopenable_note`)."""
    return probe(path, LOOK_WAIT_S)
