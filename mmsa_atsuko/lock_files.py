"""Lock files and the files appended to in a folder several users may share: the mode they are made with
(`shared_mode`), and how a process looks at another's lock without taking it (`probe`).

A leaf: it imports nothing of ours, so the cache (`sha256.json.lock`), the results store (`runs.jsonl` and its
lock, the MMSA CSVs and theirs), the run folders (run.lock, an identity's claim) and the writers of a results
folder (a run.py's mark, `.sweep.lock`) all make their files by one rule.
"""
from __future__ import annotations

import errno
import os
import stat
import time
from pathlib import Path

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
PROBE_POLL_S = 0.05


def shared_mode(folder: Path) -> int:
    """The mode of a lock file, or of a file the toolkit appends to, made in `folder` (applied past the umask):
    readable by all, writable by its owner, and by the group or others only where they may write `folder` too,
    so that any user who may work in the folder may take the lock and append, and no other may write into it."""
    try:
        folder_mode = Path(folder).stat().st_mode
    except OSError:
        folder_mode = 0
    return 0o644 | (folder_mode & (stat.S_IWGRP | stat.S_IWOTH))


def make_shared_folder(folder: Path) -> None:
    """`folder` made if missing (with its parents), the folder itself then readable, writable and searchable by the
    group, or by others, where its parent is writable by them, whatever the umask: `runs/` and `normal/` of a
    results folder several users share hold the files each of them makes and appends to (with a umask of 022, a
    group's second user could not append to `normal/`'s CSVs)."""
    folder = Path(folder)
    if folder.is_dir():
        return
    folder.mkdir(parents=True, exist_ok=True)
    try:
        parent, made = folder.parent.stat().st_mode, folder.stat()
        extra = (0o070 if parent & stat.S_IWGRP else 0) | (0o007 if parent & stat.S_IWOTH else 0)
        if extra and made.st_uid == os.geteuid():      # another process of another user may have made it first
            os.chmod(folder, stat.S_IMODE(made.st_mode) | extra)
    except OSError:
        pass


def probe(path: Path, wait: float = 0.0) -> bool | None:
    """Whether a live process holds the lock at `path`, looked at read-only: the file opened O_RDONLY and locked
    shared, without blocking (Linux's flock locks a read-only descriptor), released at once. Needs only read
    access, so another user's lock file this user may not write, or may not take (another user's in a folder with
    the sticky bit, which filelock refuses), can still be looked at. Retried for `wait` seconds while held (another
    process may hold it a moment to take it). False: free, or no file; True: held; None: this user cannot tell
    (a file it may not read, a link, no regular file, a file system whose locks fail, such as some NFS mounts),
    which every caller counts as held."""
    import fcntl                                  # Unix only, as the locks it looks at
    deadline = time.monotonic() + wait
    while True:
        try:
            fd = os.open(path, os.O_RDONLY | NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            return False
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False                          # closing the descriptor drops the shared lock
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
        finally:
            os.close(fd)
        if time.monotonic() >= deadline:
            return True
        time.sleep(PROBE_POLL_S)
