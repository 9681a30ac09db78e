"""Files of a shared folder read safely: never through a link where none is wanted, never from a pipe or a device,
bounded in size, and refused when most of them is holes (a sparse file); what a message says of a path that is no
regular file (`not_a_file`)."""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

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
