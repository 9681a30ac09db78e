"""A run folder's lock (`run.lock`, a `filelock` lock) and how a process takes it (`claim`); the claim of a run's
identity that two in-process run.py's take before training it (`identity_claim`).

The OS drops the lock however its holder dies, on this host or another sharing the folder, so a folder whose lock
is free is a dead run's. A run.lock that no run made (a link, a hard link, a folder) is no run's: never opened.
A lock file this process may not open (another user's, which it may not write), or may not lock (another user's in a
folder with the sticky bit, with filelock 4.2.12 and later: `sticky_foreign_owner`), counts as held (`take`): its
folder, or the mark or sweep lock of results.writers, is left alone.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from ..errors import ToolkitError, one_line
from ..lock_files import NOFOLLOW, shared_mode
from .layout import RUN_LOCK

IDENTITY_CLAIM = ".claim-"      # runs/.claim-<digest of a run identity>.lock, held while a run.py trains that run
# How long a run looking for its own leftovers waits for one whose lock is held: another process's look at every
# folder holds each for the time it reads run.json; a live run of the same identity holds it until it ends.
LOOK_HOLD_S = 2.0
CLAIM_HEARTBEAT_S = 600.0     # how often a run.py waiting on another's claim says it still waits, naming the holder


def claim(folder: Path, wait: float = 0.0) -> FileLock | None:
    """`folder`'s lock, taken within `wait` seconds; None while a live process holds it (or the folder has gone)."""
    try:
        inode = folder.stat().st_ino
    except FileNotFoundError:
        return None
    if foreign_kind(folder / RUN_LOCK):
        # filelock before 4.2.1 emptied the lock file it took (3.29.x opened it with O_TRUNC at every try, 3.30 to
        # 4.2.0 truncate it once locked): a hard link there emptied its other name's file at every run's start
        # (each dead .partial folder is claimed) and at `clean`. Left alone, as below.
        return None
    lock = take(folder / RUN_LOCK, wait, shared_mode(folder))
    if lock is None:
        # Held, or gone; or a run.lock no run made (a link, which filelock never opens, a folder), or one this
        # process may not open: such a folder is no run's to take over or remove, and is left alone.
        return None
    try:
        same = folder.stat().st_ino == inode
    except FileNotFoundError:
        same = False
    if not same:
        # FileLock makes its file's folder: a run that renamed `folder` to its final name between the
        # stat above and the acquire leaves it made again, holding only our lock file, a `.partial`
        # folder that names no run and that no later start would remove. Undo it.
        lock.release()
        if folder.is_dir() and {entry.name for entry in folder.iterdir()} == {RUN_LOCK}:
            shutil.rmtree(folder, ignore_errors=True)
        return None
    return lock


def take(path: Path, wait: float = 0.0, mode: int | None = None) -> FileLock | None:
    """The lock at `path` (made with `mode` if it is not there), taken within `wait` seconds; None while a live
    process holds it, or if this process may not open it (another user's lock file it may not write, a folder, a
    link, which filelock never opens). One rule for every lock one process looks at for another: a lock that
    cannot be taken counts as held, and its file is left alone; never an OSError traceback. filelock (4.2.12, setup.py's
    floor) also refuses (PermissionError) another user's lock file in a folder with the sticky bit
    (`sticky_foreign_owner`), a guarantee kept: held, as well, though no process may hold it."""
    lock = FileLock(path) if mode is None else FileLock(path, mode=mode)
    try:
        lock.acquire(timeout=wait)
    except (Timeout, OSError):
        return None
    return lock


def foreign_kind(entry: Path) -> str | None:
    """What `entry` is if it is neither a folder nor a regular file of one name ("a symbolic link"), else None
    (None for no entry). A run never makes a link, and writes some of its files in place."""
    try:
        info = entry.lstat()
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(info.st_mode):
        return None
    if not stat.S_ISREG(info.st_mode):
        return "a symbolic link" if stat.S_ISLNK(info.st_mode) else "no regular file"
    return f"a file of {info.st_nlink} names (a hard link)" if info.st_nlink > 1 else None


def sticky_foreign_owner(path: Path) -> int | None:
    """The uid owning the lock file at `path` if it is neither this user's nor its folder owner's and its folder has
    the sticky bit (mode 1777, or 3775 for a group), where its owner could replace it while another user held it
    (None otherwise, and for no file). filelock 4.2.12 and later refuse to lock such a file (their `foreign_owner`,
    in `filelock._filesystem` from 4.3), a PermissionError like any other, read here to say so: this user can then
    neither take nor (unless root) remove it; `results.writers.check_claim_free_to_take` refuses it before run.py
    trains anything."""
    try:
        owner, folder = path.stat().st_uid, path.parent.stat()
    except OSError:
        return None
    if folder.st_mode & stat.S_ISVTX and owner not in {os.geteuid(), folder.st_uid}:
        return owner
    return None


def _note_holder(path: Path) -> None:
    """Write who holds the claim at `path` into it (`pid <pid> on <host>`), for a waiter's lines to name; best effort
    (filelock 3.29.x opened it with O_TRUNC at each waiter's try, and a waiter then names no one; 3.30 to 4.2.0
    empty it only as they take it, before this is written; 4.2.1 and later never do)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_WRONLY | NOFOLLOW)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        finally:
            os.close(fd)


def claim_holder(path: Path) -> str | None:
    """Who holds the claim at `path`, as its holder wrote it (`pid 123 on host`), or None where it says no such
    thing (not yet written, emptied, or no run.py's: at most 200 bytes read, one printable line of that form)."""
    try:
        fd = os.open(path, os.O_RDONLY | NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        text = os.read(fd, 200).decode("ascii", "replace").strip()
    except OSError:
        return None
    finally:
        os.close(fd)
    return text if re.fullmatch(r"pid \d{1,10} on [A-Za-z0-9._-]{1,100}", text) else None


def claim_path(runs: Path, identity: tuple) -> Path:
    """The claim file of a run identity in `runs` (`identity_claim`): a digest of the identity names it."""
    digest = hashlib.sha256(json.dumps(list(identity), default=str).encode()).hexdigest()[:24]
    return Path(runs) / f"{IDENTITY_CLAIM}{digest}.lock"


@contextlib.contextmanager
def identity_claim(runs: Path, identity: tuple, on_wait: Callable[[Path, float, str | None], None]
                   ) -> Iterator[bool]:
    """Hold the claim of run `identity` in `runs` for the body (an in-process run.py trains and records the run in
    it): two run.py's in one results folder that reach the same run unrecorded train it once. One that finds the
    claim held calls `on_wait(path, 0, holder)` and waits as long as the other holds it (a killed holder's is dropped
    by the OS), calling `on_wait(path, seconds waited, holder)` every CLAIM_HEARTBEAT_S (`holder`: `claim_holder`);
    yields whether it waited, and the body then reads the store again before training. The file is removed
    while still held, so a process waiting on it takes a fresh one instead of a removed one (filelock retries a
    lock file unlinked under it); the release that follows leaves the name alone, by then maybe another's fresh claim
    (filelock >= 3.29.5, below setup.py's floor: before, it removed the file by its name once more). A claim this
    user cannot take (another user's in a folder with the sticky bit, one it may not write) is one ToolkitError
    line, and so is one that is a link (`foreign_kind`), never opened."""
    path = claim_path(runs, identity)
    kind = foreign_kind(path)
    if kind:            # filelock before 4.2.1 emptied (and fchmod-ed) a lock file it took: never a link of no run's
        raise ToolkitError(f"run.py will not take its claim {path} of the run it is about to train: it is {kind}, "
                           f"which no run.py makes; whoever owns it (or root) may remove it; else give another --out")
    lock = FileLock(path, mode=shared_mode(runs))
    waited = False
    try:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            waited, began = True, time.monotonic()
            on_wait(path, 0.0, claim_holder(path))
            while True:                       # a line every CLAIM_HEARTBEAT_S: a wait of hours is not a hang
                try:
                    lock.acquire(timeout=CLAIM_HEARTBEAT_S)
                    break
                except Timeout:
                    on_wait(path, time.monotonic() - began, claim_holder(path))
        _note_holder(path)
    except OSError as e:                      # filelock's Timeout is one, but only a wait with no end remains
        raise ToolkitError(f"run.py cannot take its claim {path} of the run it is about to train "
                           f"({e.strerror or one_line(e)}): the user who owns it (or root) may remove it once "
                           f"nothing of theirs runs there; else give another --out") from None
    try:
        yield waited
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        lock.release()
