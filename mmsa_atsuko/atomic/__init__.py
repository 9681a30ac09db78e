"""Files that appear whole or not at all: write beside the target, then rename over it.

A process killed mid-write (SIGKILL, the OOM killer, a full disk) leaves the old file or the new
one, never half of either: os.replace is atomic within one filesystem, which is why the temporary
file is a sibling of the target and not in /tmp.

The writes that rename over a target are here; `reading` holds the bounded, link-safe reads, `links` the files
written in place that never write through a link, `folders` the checks of a folder before a command writes in it.
Every name is imported from `mmsa_atsuko.atomic`.
"""
from __future__ import annotations

import os
import pickle
import secrets
from pathlib import Path

from ..errors import DataError, one_line
from .folders import check_entries, check_folder, check_output_file, wrong_kind
from .links import OWN_COPY, open_append, open_new
from .reading import HOLE_FLOOR, MAX_EXTENTS, NOFOLLOW, file_sparse_problem, not_a_file, read_small_file, sparse_problem

__all__ = ["HOLE_FLOOR", "MAX_EXTENTS", "NOFOLLOW", "OWN_COPY", "check_entries", "check_folder", "check_output_file",
           "disk_of", "file_sparse_problem", "not_a_file", "open_append", "open_new", "os_error_of", "plain_file_mode",
           "read_small_file", "replace_with", "sparse_problem", "temp_sibling", "write_failed", "write_files",
           "write_pickle", "wrong_kind"]


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
