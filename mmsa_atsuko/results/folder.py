"""The results folder: its layout, and writing only inside it.

Everything stays inside the results folder named on the command line: a record names its run's
folder relative to it (`run_dir: runs/<run_id>`), and `run_path` finds the folder from the run id
alone (checked against RUN_ID), inside that folder, whatever a record says; the store, the CSVs
and the analysis outputs are never written through a symbolic link (O_NOFOLLOW, `atomic.open_new`,
`atomic.open_append`).
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from pathlib import Path, PurePosixPath

from filelock import FileLock

from ..atomic import check_entries, check_folder
from ..errors import DataError, UsageError
from ..lock_files import owner_name, shared_mode

RUNS_FILE = "runs.jsonl"
RECORD_FILE = "record.json"      # a finished run's record that could not be appended, kept in its folder
ANALYSIS_DIR = "analysis"        # where analysis commands write by default
# What `api.one_run.new_run_id` makes: model-dataset[-aligned]-s<seed>-<UTC time>-<6 hex>. No dot and no
# separator can appear, so a run id is always one path component inside `<results>/runs`.
RUN_ID = re.compile(r"[A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*-s-?[0-9]+-[0-9]{8}T[0-9]{6}-[0-9a-f]{6}")
SWEEP_LOCK = ".sweep.lock"       # held by a sweep or tune while it writes the folder (sweep.driver.SweepLock)
# Entries of a results folder that the toolkit writes through: a planted symlink would send the writes elsewhere.
STORE_ENTRIES = (RUNS_FILE, RUNS_FILE + ".lock", "runs", "normal", ANALYSIS_DIR, SWEEP_LOCK)
# Those written in place (appended to; a lock that filelock before 4.2.1 emptied as it took it): a hard link
# there, planted or left by a `cp -al` copy of the folder, would change the file under its other names.
IN_PLACE = (RUNS_FILE, RUNS_FILE + ".lock", SWEEP_LOCK)


def refuse_a_file_as_results(out_dir) -> None:
    """One UsageError line if the results folder named is a file: the store itself given as --results
    names its folder."""
    out_dir = Path(out_dir)
    if out_dir.is_file():
        hint = f"; give its folder, --results {out_dir.parent}" if out_dir.name == RUNS_FILE else ""
        raise UsageError(f"results folder {out_dir} is a file, not a folder{hint}")


def check_output_folder(out_dir, what: str = "results folder", entries=STORE_ENTRIES,
                        option: str = "--out") -> Path:
    """Raise UsageError (one line) unless `out_dir` is, or can be created as, a folder this
    process may write (`atomic.check_folder`), and none of `entries` (the names the caller writes
    in it; a folder's ends in "/", or has no dot) is a symbolic link, the wrong kind of thing, or an
    unwritable file, and none of them that is IN_PLACE is a hard link. Creates nothing: a request that
    fails later must leave no trace. `option` is the command-line option that names the folder, which
    each line tells the user to change."""
    out_dir = check_folder(out_dir, what, option)
    check_entries(out_dir, entries, what, option, in_place=[name for name in entries if name in IN_PLACE])
    return out_dir


def show(value, limit: int = 60) -> str:
    """A short repr of a value read from a file, for an error line (never a huge string)."""
    if isinstance(value, (dict, list)):
        return f"a JSON {'object' if isinstance(value, dict) else 'array'}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10 ** 18:
        return "a huge integer"
    text = repr(value[:limit + 1] if isinstance(value, str) else value)
    return text if len(text) <= limit else text[:limit] + "..."


def check_run_id(run_id, error=DataError) -> str:
    """`run_id` if it is one `api.one_run.new_run_id` could have made, else a one-line `error`: a DataError for an id
    read from a file, a UsageError (exit 2) for one the user typed."""
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        raise error(f"{show(run_id)} is not a run id (expected one like tfn-mosi-s1111-20260101T120000-0a1b2c)")
    return run_id


def relative_run_dir(run_dir) -> str:
    """How a record names its run's folder: `runs/<folder name>`, relative to the results folder, so a
    copied or moved results folder still finds its runs."""
    return f"runs/{Path(run_dir).name}"


def inside(results, *parts) -> Path:
    """`<results>/<parts>`, refused (DataError) unless it resolves inside `results`: a part that is
    `..`, absolute, or a symbolic link pointing elsewhere would lead outside."""
    root = Path(results)
    path = root.joinpath(*parts)
    real_root, real = os.path.realpath(root), os.path.realpath(path)
    if os.path.commonpath([real_root, real]) != real_root or any(
            p in ("", ".", "..") or "/" in p or "\\" in p for p in map(str, parts)):
        raise DataError(f"{path} leads outside the results folder {root}; refusing to use it")
    return path


def run_path(results, record: dict) -> Path:
    """The folder of `record`'s run inside `results`, the folder named on the command line: only the
    last component of the stored `run_dir` counts (older records stored an absolute path), and it
    must be the run's id (or `<id>.failed`), so no record can lead anywhere else."""
    run_id = check_run_id(record.get("run_id"))
    stored = record.get("run_dir")
    name = PurePosixPath(stored.replace("\\", "/")).name if isinstance(stored, str) and stored else run_id
    if name not in (run_id, f"{run_id}.failed"):
        raise DataError(f"run {run_id}: its run_dir {show(stored)} is not the run's folder")
    return inside(results, "runs", name)


def check_readable(folder, names=()) -> Path:
    """`folder` (a run folder), if this user may read it and each of `names` in it that is there; else one
    DataError line naming what it may not read, its owner and mode, and the chmod to ask its owner for. Every
    command that reads a run folder calls it first: another user's run folder made under a umask of 077
    (drwx--S---, before `lock_files.make_readable_as`) was a PermissionError traceback in predict and the analyses."""
    folder = Path(folder)
    for path, access in [(folder, os.R_OK | os.X_OK), *((folder / name, os.R_OK) for name in names)]:
        try:
            info = path.stat()
        except FileNotFoundError:
            continue                         # a missing file is the caller's to name
        except PermissionError:
            info = None                      # only reached for a name: the folder was searchable
        if info is not None and os.access(path, access, effective_ids=os.access in os.supports_effective_ids):
            continue
        info = info or folder.stat()
        owner = owner_name(info.st_uid)
        mine = info.st_gid == os.getegid() or info.st_gid in os.getgroups()      # its group's: g, else o
        raise DataError(f"{path} is not readable by this user: {owner} owns it, mode {stat.filemode(info.st_mode)}; "
                        f"ask {owner}{'' if owner == 'root' else ' (or root)'} to run "
                        f"chmod -R {'g' if mine else 'o'}+rX {folder}")
    return folder


def checkpoint_run(checkpoint) -> tuple[Path, str]:
    """(its best.pt, the run id) of a run folder or its best.pt, as `--checkpoint` names a run: the folder's name
    is the run id (looked up in --results)."""
    checkpoint = Path(checkpoint)
    if os.path.isdir(checkpoint):
        check_readable(checkpoint, ("best.pt",))
    elif os.path.isdir(checkpoint.parent):
        check_readable(checkpoint.parent, (checkpoint.name,))
    if checkpoint.is_dir():
        checkpoint = checkpoint / "best.pt"
    if not checkpoint.is_file():
        raise UsageError(f"checkpoint {checkpoint} not found")
    return checkpoint, checkpoint.resolve().parent.name


def analysis_dir(results) -> Path:
    """`<results>/analysis`, where analysis commands write unless given --out. Not made here: the writer of the
    figures makes it (`atomic.write_files`), so a command that refuses its input after naming it (explain's unknown
    run id) leaves no empty folder behind."""
    folder = inside(results, ANALYSIS_DIR)
    if folder.is_symlink():
        raise DataError(f"{folder} is a symbolic link; the toolkit writes only inside the results folder")
    return folder


@contextlib.contextmanager
def store_lock(path: Path):
    """The exclusive lock of one store file, held for the `with` block; a separate `<name>.lock` file, since
    a lock on the data file itself is not portable. A killed holder's lock is dropped by the OS. A lock file
    that is a symbolic link (filelock never opens one) is one DataError line, as the store file's own is."""
    lock = FileLock(f"{path}.lock", mode=shared_mode(Path(path).parent))   # another user of the folder appends too
    try:
        lock.acquire()
    except OSError as e:
        if e.errno == errno.ELOOP or os.path.islink(lock.lock_file):
            raise DataError(f"{lock.lock_file} is a symbolic link; refusing to write through it") from None
        raise
    try:
        yield lock
    finally:
        lock.release()
