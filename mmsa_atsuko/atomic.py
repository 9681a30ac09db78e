"""Files that appear whole or not at all: write beside the target, then rename over it.

A process killed mid-write (SIGKILL, the OOM killer, a full disk) leaves the old file or the new
one, never half of either: os.replace is atomic within one filesystem, which is why the temporary
file is a sibling of the target and not in /tmp.
"""
from __future__ import annotations

import errno
import os
import pickle
import secrets
import stat
from pathlib import Path

from .errors import DataError, UsageError, one_line

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)     # absent on Windows, where a plain user cannot make symlinks
# A sparse file declares a size its disk never held: `truncate -s 100G` after a pickle's 11-byte head made an 8 KB
# file whose one length field read 8 GB of zeros (77 s, 8.7 GB of memory) and whose 100 GB twin exhausts the
# machine, since every reader's budget is in proportion to the size. Holes of at least HOLE_FLOOR bytes each that
# make up more than half a file are refused (`sparse_problem`). A downloaded file has none; the zeros a filesystem
# stores as holes (`cp --sparse=always`, `rsync -S`, ZFS compression) are a feature file's padding, which may be
# most of a file but comes in holes of a sample's padding each (under 1 MiB: 500 frames x 74 features is 148 KB).
HOLE_FLOOR = 64 << 20
MAX_EXTENTS = 1 << 20      # data/hole extents walked at most (about 0.5 s); past it the rest counts as data


def sparse_problem(fd: int, size: int) -> str | None:
    """What is wrong with the open file `fd` of `size` bytes if most of it is holes of HOLE_FLOOR or more, else None
    (also where the filesystem cannot tell: SEEK_HOLE then finds the one hole at the end). The file's position
    is left where it was: a buffered reader above `fd` holds bytes read ahead and reads on from there."""
    if size < HOLE_FLOOR or not hasattr(os, "SEEK_HOLE"):
        return None
    holes, offset, position = 0, 0, os.lseek(fd, 0, os.SEEK_CUR)
    try:
        for _ in range(MAX_EXTENTS):
            hole = os.lseek(fd, offset, os.SEEK_HOLE)
            if hole >= size:
                break
            try:
                offset = os.lseek(fd, hole, os.SEEK_DATA)
            except OSError as e:        # ENXIO: no data after this hole, it runs to the end
                if e.errno != errno.ENXIO:
                    raise
                offset = size
            if offset - hole >= HOLE_FLOOR:     # one truncate's hole, not a padding's many small ones
                holes += offset - hole
            if holes >= HOLE_FLOOR and 2 * holes > size:
                break
    except OSError:                     # a filesystem that cannot seek holes: nothing known
        return None
    finally:
        os.lseek(fd, position, os.SEEK_SET)
    if holes >= HOLE_FLOOR and 2 * holes > size:
        return (f"a sparse file: at least {holes:,} of its {size:,} bytes are holes of {HOLE_FLOOR >> 20} MiB or "
                f"more, read as zeros (never written, or punched out by a sparse copy), which no feature file or "
                f"checkpoint has; give the file as it was downloaded or written (`cp --sparse=never` fills holes)")
    return None


def file_sparse_problem(path) -> str | None:
    """`sparse_problem` of the file at `path` (links followed), for a reader that opens it itself (safetensors)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        info = os.fstat(fd)
        return sparse_problem(fd, info.st_size) if stat.S_ISREG(info.st_mode) else None
    finally:
        os.close(fd)


def read_small_file(path, limit: int, follow_links: bool = False) -> bytes:
    """The bytes of `path`, a file that may be anyone's (a shared results folder's run.json or record.json):
    never through a symbolic link (one to /dev/zero filled memory), never from a named pipe or device (a
    read blocked the command for good), and at most `limit` bytes. OSError for a link or a file that
    cannot be read, ValueError for one that is no regular file or is larger than `limit`. With
    `follow_links`, a link is followed (a Hugging Face cache's files are links to its blobs), and what it
    leads to must still be a regular file. The bytes are read from one open file: a caller that checks them
    and then uses them uses what it checked, whatever is renamed over the path meanwhile."""
    fd = os.open(path, os.O_RDONLY | (0 if follow_links else NOFOLLOW) | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        sparse = sparse_problem(fd, info.st_size) if info.st_size <= limit else None
        if sparse:
            raise ValueError(sparse)
        raw = f.read(min(limit, info.st_size) + 1)     # sized by the file: a large limit allocates nothing
    if len(raw) > limit:
        raise ValueError("too large")
    return raw


def not_a_file(path) -> str | None:
    """What a message says of `path` when it is no regular file to read, after the links to it: "not found", "is a
    broken symbolic link", "is a folder, not a file", "is a pipe, not a file", "is a device, not a file" (a link to
    /dev/zero), "is a socket, not a file"; None for a regular file. Without it, a pipe was "no such file"."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except ValueError:                 # a path read from a file (a sweep's data_root, a files: entry) may hold one
        return "names no file (it holds a NUL byte)"
    except OSError as e:               # missing, a link to nothing, a loop of links
        if e.errno == errno.ENAMETOOLONG:      # Path.is_symlink() raised it again: a traceback
            return "names no file (it, or a folder name in it, is longer than the system allows)"
        return "is a broken symbolic link" if os.path.islink(path) else "not found"
    if stat.S_ISREG(mode):
        return None
    return "is " + ("a folder" if stat.S_ISDIR(mode) else "a pipe" if stat.S_ISFIFO(mode)
                    else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                    else "a socket" if stat.S_ISSOCK(mode) else "no regular file") + ", not a file"


def temp_sibling(path: Path) -> Path:
    """A unique hidden name next to `path` (process id and random hex: writers never collide)."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def plain_file_mode(folder) -> int:
    """The permission bits a plain open() gives a new file in `folder`: 0o666 less the umask, or
    what a default ACL of the folder says. Found with a probe file, since reading the umask means
    setting it, which races with other threads creating files. For a file written some other way
    (a library's 0o600 temporary file) before it is renamed into place."""
    probe = temp_sibling(Path(folder) / "mode-probe")
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        return os.fstat(fd).st_mode & 0o777
    finally:
        os.close(fd)
        probe.unlink(missing_ok=True)


def replace_with(path, write, tmp=None) -> None:
    """`write(tmp)`, then rename `tmp` over `path`; `tmp` is removed if `write` raises. `tmp`
    defaults to a unique sibling; a fixed name suits a folder that only one process writes (a run
    folder under its lock), where the next write takes over what a killed one left."""
    path = Path(path)
    tmp = Path(tmp) if tmp is not None else temp_sibling(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_files(folder, files: dict, what: str, option: str) -> list[Path]:
    """Write `files` (name -> bytes or str, UTF-8) into `folder`, creating it: every file to a temporary
    sibling first, then each renamed over its name, so a failure (a full disk) leaves none of them half
    written and a link planted at a name is replaced, never written through. A failure is one DataError
    line: "`what` could not be written (why); choose another `option`"."""
    folder, written = Path(folder), []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            tmp = temp_sibling(folder / name)
            written.append((tmp, folder / name))
            tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        for tmp, path in written:
            os.replace(tmp, path)
    except OSError as e:
        for tmp, _ in written:
            tmp.unlink(missing_ok=True)
        raise write_failed(what, option, e) from None
    return [path for _, path in written]


def write_failed(what: str, option: str, error: OSError) -> DataError:
    """The one line of a write that failed (a full disk, a folder that takes no files such as /proc)."""
    return DataError(f"{what} could not be written ({error.strerror or one_line(error)}); choose another {option}")


def os_error_of(error: BaseException | None) -> OSError | None:
    """The OSError `error` is, or was raised from or while handling: torch.save turns a full disk (ENOSPC) or a
    file size limit (EFBIG) into a RuntimeError ('unexpected pos ...') raised while handling the OSError."""
    while error is not None and not isinstance(error, OSError):
        error = error.__cause__ or error.__context__
    return error


def disk_of(path) -> Path:
    """The mount point of the disk `path` (a folder that exists) is on, for a line that asks to free space there."""
    path = Path(os.path.abspath(path))
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def write_pickle(obj, path) -> None:
    """Pickle `obj` (protocol 4, fsynced) to `path` atomically, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        with open(tmp, "xb") as f:  # plain open, so the file gets the usual umask permissions
            pickler = pickle.Pickler(f, protocol=4)
            # Protocol 4 pickles an array as a bytes copy, and the memo would keep every copy
            # alive until the end: twice the data in RAM (17 GB for full MOSEI). Feature data has
            # no shared or self-referencing objects, so the memo buys nothing; fast mode turns
            # it off and frees each copy once written.
            pickler.fast = True
            pickler.dump(obj)
            f.flush()
            os.fsync(f.fileno())

    replace_with(path, write)


OWN_COPY = "make it a file of its own (copy it, then move the copy over it)"


def open_new(path, mode: str = "w", **kwargs):
    """`open(path, mode)` for writing ("w" or "wb", truncating) that never writes through a link at `path`: a
    symbolic link, or a file of several names (a hard link), makes it fail with a one-line DataError instead of
    writing the other file. The names are counted on the file opened, before it is emptied, so a link planted
    after a folder was checked (a shared run folder's, between `--resume`'s check and the write) is refused too."""
    fd = _refuse_several_names(_open_no_follow(path, os.O_WRONLY | os.O_CREAT), path, "writing")
    os.ftruncate(fd, 0)
    return os.fdopen(fd, mode, **kwargs)


def _refuse_several_names(fd: int, path, doing: str) -> int:
    names = os.fstat(fd).st_nlink
    if names > 1:
        os.close(fd)
        raise DataError(f"{path} is a file of {names} names (a hard link), and {doing} it would change it "
                        f"under its other names too; {OWN_COPY}")
    return fd


def open_append(path, mode: int | None = None) -> int:
    """A file descriptor for reading and appending to `path` (created if missing), never through a
    symbolic link, nor to a file of several names (a hard link, planted or left by a `cp -al` copy of the
    folder): an append would change it under its other names too. The results store's files, which grow by
    whole lines. `mode`: what a file this call makes gets, past the umask (`lock_files.shared_mode`: a store in a
    folder several users share is appended to by each); a file that was there keeps its own."""
    flags = os.O_RDWR | os.O_APPEND
    if mode is None:
        fd = _open_no_follow(path, flags | os.O_CREAT)
    else:
        try:
            fd = _open_no_follow(path, flags | os.O_CREAT | os.O_EXCL)
            os.fchmod(fd, mode)                   # the umask took bits off the mode given to open()
        except FileExistsError:
            fd = _open_no_follow(path, flags | os.O_CREAT)    # O_CREAT again: it may have been removed meanwhile
    return _refuse_several_names(fd, path, "appending to")


def _open_no_follow(path, flags: int) -> int:
    try:
        return os.open(path, flags | NOFOLLOW, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP or Path(path).is_symlink():     # ELOOP on Linux, EMLINK on FreeBSD
            raise DataError(f"{path} is a symbolic link; refusing to write through it") from None
        raise


def check_folder(folder, what: str, option: str = "--out") -> Path:
    """`folder`, or one UsageError line unless it is, or can be created as, a folder this user may
    write: the nearest ancestor that exists (where mkdir would start) must be a writable folder.
    Creates nothing, so that a request that fails later leaves no trace."""
    folder = Path(folder)
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"{what} {folder}: {probe} is a file, not a folder; choose another {option}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {folder}: {probe} is not writable by this user; choose another {option}")
    return folder


def check_output_file(path, option: str) -> Path:
    """`path`, a file the user named for the toolkit to write (leaderboard -o, extract --out), or one
    UsageError line before any work: a folder, a symbolic link (it would be replaced, or its target
    rewritten), an existing file that is no regular one (/dev/full, /proc/version, a named pipe), or a
    folder that cannot be made or written (`check_folder`)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise UsageError(f"{option} {path} is a folder; give the name of the file to write")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise UsageError(f"{option} {path} is {'a symbolic link' if path.is_symlink() else 'no regular file'}; "
                         "give the name of a file to write, or of a new one")
    check_folder(path.parent, f"{option} {path}: its folder", option)
    return path


def wrong_kind(folder, entry, kind: str, what: str, option: str) -> UsageError:
    """The one line for `entry` of `folder` that is a folder where the toolkit writes a file (`kind`), or the
    reverse: every writer's check (`check_entries`) and the store's reader (`results.read_records`) say it alike."""
    return UsageError(f"{what} {folder}: {entry} is a {'file' if kind == 'folder' else 'folder'} where the toolkit "
                      f"writes a {kind}; move it away or choose another {option}")


def check_entries(folder, entries, what: str, option: str = "--out", in_place=()) -> None:
    """One UsageError line if one of `entries` (names in `folder` that the caller will write; a folder's
    ends in "/", or has no dot) is a symbolic link, the wrong kind of thing, or a file this user cannot
    write; or if one of `in_place` (those written in place: appended to, or a lock file) is a file of several
    names. `what` names the folder in the message ("results folder"), `option` the one to change. Creates nothing."""
    folder = Path(folder)
    for name in in_place:
        entry = folder / name
        names = entry.lstat().st_nlink if entry.is_file() and not entry.is_symlink() else 1
        if names > 1:
            raise UsageError(f"{what} {folder}: {entry} is a file of {names} names (a hard link), which the toolkit "
                             f"writes in place, changing it under its other names too; {OWN_COPY}, or choose "
                             f"another {option}")
    for name in entries:
        kind = "folder" if name.endswith("/") or "." not in name else "file"
        entry = folder / name.rstrip("/")
        if entry.is_symlink():
            raise UsageError(f"{what} {folder}: {entry} is a symbolic link; the toolkit writes only inside "
                             f"the {what} (replace it with a real {kind})")
        if entry.exists() and entry.is_dir() != (kind == "folder"):
            raise wrong_kind(folder, entry, kind, what, option)
        if entry.is_file() and not os.access(entry, os.W_OK):
            raise UsageError(f"{what} {folder}: {entry} is not writable by this user; fix its permissions "
                             f"or choose another {option}")
