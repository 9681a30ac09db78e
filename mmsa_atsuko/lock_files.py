"""Lock files and the files appended to in a folder several users may share: the mode they are made with
(`shared_mode`), the folders made there (`make_shared_folder`) and a run folder's files (`make_readable_as`),
how a process looks at another's lock without taking it (`probe`), how it removes a lock file no process holds
(`remove_free`: under its lock, never after a look), and a lock several processes hold at once against one that
takes it alone (`shared_hold`, `exclusive_now`, `holder_pids`: extract's cache against `clean --extract-cache`).

A leaf: it imports nothing of ours, so the cache (`sha256.json.lock`), the results store (`runs.jsonl` and its
lock, the MMSA CSVs and theirs), the run folders (run.lock, an identity's claim) and the writers of a results
folder (a run.py's mark, `.sweep.lock`) all make their files by one rule.
"""
from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from collections.abc import Iterator
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
    """`folder` made if missing (with its parents), the folder itself then of a mode that follows its parent's,
    whatever the umask: rwx for its owner, the parent's read, write and search bits for the group and others, and
    the parent's sticky and set-group-id bits; never a bit the parent lacks. `runs/` and `normal/` of a results
    folder several users share hold the files each of them makes and appends to (with a umask of 022, a group's
    second user could not append to `normal/`'s CSVs); in a sticky (1777) one no user may rename or remove
    another's run folder or live claim; in a private one a umask of 000 leaves nothing world-writable."""
    folder = Path(folder)
    if folder.is_dir():
        return
    folder.mkdir(parents=True, exist_ok=True)
    try:
        parent, made = folder.parent.stat().st_mode, folder.stat()
        if made.st_uid == os.geteuid():      # another process of another user may have made it first
            os.chmod(folder, 0o700 | (parent & (0o077 | stat.S_ISVTX | stat.S_ISGID)))
    except OSError:
        pass


def readable_bits(folder_mode: int, folder: bool) -> int:
    """What an entry made in a folder of mode `folder_mode` must grant so that whoever may read the folder (its
    group, others) may read the entry too: r (and x, for a folder) for each of them that has r on the folder."""
    bits = 0
    for read, grant in ((stat.S_IRGRP, 0o050 if folder else 0o040), (stat.S_IROTH, 0o005 if folder else 0o004)):
        if folder_mode & read:
            bits |= grant
    return bits


def make_readable_as(tree: Path, folder: Path) -> None:
    """`tree` (a folder this user made in `folder`) and everything in it made as readable as `folder`
    (`readable_bits`), whatever the umask it was written under: a run folder, whose files a run writes through
    torch, tensorboard and open(), under a umask of 077 was drwx--S--- in a results folder of mode 2775, and the
    group's second user could neither predict with it nor analyse it. Entries of another user, and links, are
    left as they are; bits are only added."""
    try:
        folder_mode = Path(folder).stat().st_mode
    except OSError:
        return
    me = os.geteuid()
    for root, _, files in os.walk(tree):          # each folder in it is a root in turn
        for path, is_folder in [(root, True), *((os.path.join(root, name), False) for name in files)]:
            try:
                info = os.lstat(path)
                if stat.S_ISLNK(info.st_mode) or info.st_uid != me:
                    continue
                wanted = stat.S_IMODE(info.st_mode) | readable_bits(folder_mode, folder=is_folder)
                if wanted != stat.S_IMODE(info.st_mode):
                    os.chmod(path, wanted)
            except OSError:
                pass


def owner_name(uid: int) -> str:
    """A user's name, as a line asking another user of a shared folder for something names them; `uid N` where the
    system names none."""
    try:
        import pwd                                # Unix only
        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f"uid {uid}"


def probe(path: Path, wait: float = 0.0) -> bool | None:
    """Whether a live process holds the lock at `path`, looked at read-only: the file opened O_RDONLY and locked
    shared, without blocking (Linux's flock locks a read-only descriptor), released at once. Needs only read
    access, so another user's lock file this user may not write, or may not take (another user's in a folder with
    the sticky bit, which filelock 4.2.12 and later refuse), can still be looked at. Retried for `wait` seconds while
    held (another process may hold it a moment to take it). False: free, or no file; True: held; None: this user
    cannot tell (a file it may not read, a link, no regular file, a file system whose locks fail, such as some NFS
    mounts), which every caller counts as held. Where there is no flock (Windows), the lock is taken and released at
    once, as filelock takes it."""
    try:
        import fcntl                              # Unix only, as flock
    except ImportError:
        return _probe_by_taking(path, wait)
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


def remove_free(path: Path) -> bool | None:
    """Remove the lock file at `path` if no process holds it, holding its lock while it does: taken without waiting,
    on a descriptor opened read-only as `probe` opens one (so another user's lock file this user may read is taken
    alike, and no filelock rule applies), the file's name removed, the lock dropped as the descriptor closes. A
    process that takes the lock between another's look at it and the removal keeps its file, and one that opened
    the file before it was removed and wins its lock after holds a lock of no name, which filelock drops and takes
    afresh (setup.py's floor). True: removed. False: held by a live process, left. None: gone, or its name now
    another file's (its holder removed it and another process made it afresh), left. An OSError where it cannot be
    opened or removed (the sticky bit, a folder this user may not write). Where there is no flock (Windows), the lock
    is taken with filelock for a moment and the file removed after it."""
    try:
        import fcntl                              # Unix only, as flock
    except ImportError:
        return _remove_free_by_taking(path)
    try:
        fd = os.open(path, os.O_RDONLY | NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:                # a link put in its place: no lock file
            return None
        raise
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        try:
            if not os.path.samestat(opened, os.lstat(path)):
                return None                       # the lock won is on a file of no name: the name is another's
            os.unlink(path)
        except FileNotFoundError:
            return None
        return True
    finally:
        os.close(fd)                              # drops the lock


def _open_lock_file(path: Path, mode: int) -> int:
    """A read-only descriptor of the lock file at `path` (flock locks one), made with `mode` past the umask if it is
    not there; never through a link. OSError for one that cannot be opened or made, or is no regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o600)
    except FileExistsError:
        pass
    else:
        try:
            os.fchmod(fd, mode)                   # the umask took bits off the mode given to open()
        except OSError:
            os.close(fd)
            raise
        return fd
    fd = os.open(path, os.O_RDONLY | NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, f"{path} is no regular file")
    return fd


@contextlib.contextmanager
def shared_hold(path: Path, mode: int) -> Iterator[None]:
    """Hold the lock at `path` shared for the body (the file made with `mode` if missing): any number of processes
    hold it so at once, and `exclusive_now` finds it held while one does. Waits while a process holds it exclusively
    (a clean removing what the holders read, which takes a moment). The OS drops it however its holder ends. OSError
    where the file cannot be opened. Where there is no flock (Windows), nothing is held."""
    try:
        import fcntl                              # Unix only, as flock
    except ImportError:
        yield
        return
    fd = _open_lock_file(path, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)                              # drops the lock


@contextlib.contextmanager
def exclusive_now(path: Path, mode: int) -> Iterator[bool]:
    """Take the lock at `path` exclusively without waiting, held for the body: yields True, or False while another
    process holds it (shared or exclusive), then taking nothing. OSError where the file cannot be opened. Where there
    is no flock (Windows), True, holding nothing (`shared_hold` holds nothing there either)."""
    try:
        import fcntl                              # Unix only, as flock
    except ImportError:
        yield True
        return
    fd = _open_lock_file(path, mode)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            yield False
            return
        yield True
    finally:
        os.close(fd)                              # drops the lock


def holder_pids(path: Path) -> list[int]:
    """The ids of the processes holding a flock on the file at `path`, as Linux's /proc/locks lists them (in this
    process's pid namespace; the process that took the lock, not one that inherited it); [] where it cannot tell: no
    /proc/locks, no file, holders on another host sharing the folder, or a filesystem (overlayfs, btrfs) whose device
    there is not the st_dev that stat gives, as in an ordinary container."""
    try:
        info = os.stat(path, follow_symlinks=False)
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            lines = f.read(1 << 22).splitlines()
    except OSError:
        return []
    where = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    pids = set()
    for line in lines:          # "1: FLOCK  ADVISORY  READ 22457 fe:00:2146572 0 EOF"; "1: -> FLOCK ..." waits
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == where and fields[4].isdigit():
            pids.add(int(fields[4]))
    return sorted(pid for pid in pids if pid > 0)


def _remove_free_by_taking(path: Path) -> bool | None:
    """`remove_free` without flock: removed after a moment's hold with filelock (`_probe_by_taking`), not under it."""
    if _probe_by_taking(path, 0.0) is not False:
        return False
    try:
        os.unlink(path)
    except FileNotFoundError:
        return None
    return True


def _probe_by_taking(path: Path, wait: float) -> bool | None:
    """`probe` without flock: take the lock for a moment (filelock's own way, which needs write access)."""
    from filelock import FileLock, Timeout
    if not os.path.lexists(path):
        return False
    try:
        with FileLock(path, timeout=wait):
            return False
    except Timeout:
        return True
    except OSError:
        return None
