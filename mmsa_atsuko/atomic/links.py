"""Files opened for writing in place (truncated, or appended to) that never write through a link: neither a symbolic
link at the path nor a file of several names (a hard link), counted on the file opened."""
from __future__ import annotations

import errno
import os
from pathlib import Path

from ..errors import DataError
from .reading import NOFOLLOW


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
