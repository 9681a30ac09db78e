"""Run folders: where a run works until it has finished, and how a dead run's folder is found.

A run works in `<out>/runs/.<run_id>.partial/` and renames it to `<out>/runs/<run_id>/` once it
has finished. While it works it holds the folder's `run.lock` (a `filelock` lock: the OS drops it
however its holder dies, on this host or another sharing the folder, so no pid can go stale or
be reused), and `run.json` beside it names the run's identity (`results.run_identity`). A
`.partial` folder whose lock is free is a dead run's: `--resume` continues it from its last
finished epoch (`last.pt`; `run.py --resume`, `sweep --resume`), `run.py clean` removes it, and so does the
next start of the same run without --resume. A run killed while making its folder leaves `.<run_id>.partial.new`
(`run_folder`), a dead run's folder as well once its lock is free and it names its run or is NEW_GRACE_S old.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import stat
import time
from collections.abc import Collection, Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from .atomic import open_new, read_small_file
from .data.conditions import folder_condition_key
from .errors import DataError, FolderNotResumable, ModelContractError

log = logging.getLogger("mmsa_atsuko")

RUN_LOCK = "run.lock"            # held while a process runs in the folder
RUN_IDENTITY = "run.json"        # the identity of the run in the folder, and who runs it
LAST_CHECKPOINT = "last.pt"      # the trainer's per-epoch state, what --resume continues from
# How long a run looking for its own leftovers waits for one whose lock is held: another process's look at every
# folder holds each for the time it reads run.json; a live run of the same identity holds it until it ends.
LOOK_HOLD_S = 2.0
NEW_SUFFIX = ".new"              # `run_folder` makes a fresh folder under this name, then renames it to `.partial`
# A `.new` folder naming no run yet may be a live run's between its mkdir and its lock: one is a dead run's only
# this long after it was made (the two steps are microseconds apart).
NEW_GRACE_S = 60.0


def partial_dir(out, run_id: str) -> Path:
    """Where a run works until it has finished (then renamed to `<out>/runs/<run_id>`)."""
    return Path(out) / "runs" / f".{run_id}.partial"


def _claim(folder: Path, wait: float = 0.0) -> FileLock | None:
    """`folder`'s lock, taken within `wait` seconds; None while a live process holds it (or the folder has gone)."""
    try:
        inode = folder.stat().st_ino
    except FileNotFoundError:
        return None
    if _foreign(folder / RUN_LOCK):
        # filelock before 4 opened run.lock with O_TRUNC: a hard link there emptied its other name's file
        # at every run's start (each dead .partial folder is claimed) and at `clean`. Left alone, as below.
        return None
    lock = FileLock(folder / RUN_LOCK)
    try:
        lock.acquire(timeout=wait)
    except (Timeout, OSError):
        # Held, or gone; or a run.lock no run made (a link, which filelock never opens, a folder):
        # such a folder is no run's to take over or remove, and is left alone.
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


@contextlib.contextmanager
def run_folder(work_dir: Path, final_dir: Path, identity: tuple, resume: bool, attempt: dict | None = None,
               condition: dict | None = None):
    """`work_dir`, locked while the run works in it and renamed to `final_dir` once it has finished.

    A new folder is made under another name and renamed to `work_dir` with its lock held, so a
    live run's `.partial` folder is never seen unlocked; to resume, a dead run's folder is taken over.
    A fresh run that raises `ModelContractError` is removed. `attempt` (the code version and start
    of this process's part of the run) is added to the folder's attempts (`attempts_of`). `condition` (the
    record's `condition` block) is kept in run.json for its marks: a drop=T one's text_rows (`identity_of`)."""
    def name_the_run(folder: Path, earlier: list) -> None:
        with open_new(folder / RUN_IDENTITY, "w", encoding="utf-8") as f:      # never through a planted link
            json.dump({"identity": list(identity), "pid": os.getpid(), "host": socket.gethostname(),
                       "condition": condition, "attempts": [*earlier, attempt or {}]}, f)

    if resume:
        lock = _claim(work_dir)
        if lock is None:
            _check_resumable(work_dir)      # a run.lock that is no run's is said to be one
            raise FolderNotResumable(f"{work_dir} is in use by another process; wait for it or run without --resume")
        try:
            _check_resumable(work_dir)
        except FolderNotResumable:
            lock.release()
            raise
        earlier = attempts_of(work_dir)
        warn_of_other_threads(work_dir, earlier, (attempt or {}).get("torch_threads"))
        name_the_run(work_dir, earlier)
    else:
        new = work_dir.with_name(work_dir.name + NEW_SUFFIX)
        new.mkdir(parents=True)
        lock = _claim(new, wait=LOOK_HOLD_S)    # a scan (`clean`) holds a dead run's folder for a moment only
        if lock is None:
            raise DataError(f"{new} was taken by another process while this run made it (a file planted in it, or a "
                            f"clock far off); start the run again")
        # Named before the rename: a run killed at any moment leaves a .partial folder that says
        # whose it is, so the next start of that run finds and removes it.
        name_the_run(new, [])
        new.rename(work_dir)
    try:
        yield work_dir
        work_dir.rename(final_dir)
        (final_dir / RUN_IDENTITY).unlink()
    except ModelContractError:
        # The model broke its contract on its first batch: a fresh run's folder holds nothing to resume,
        # and a bad model leaves nothing behind. A resumed run keeps the epochs it had.
        if not resume:
            remove(work_dir)
        raise
    finally:
        lock.release()
    (final_dir / RUN_LOCK).unlink(missing_ok=True)


def _foreign(entry: Path) -> str | None:
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


def _check_resumable(folder: Path) -> None:
    """One line (FolderNotResumable, a DataError: exit 1) if a dead run's folder, about to be resumed, holds anything but
    folders and regular files of one name. A run writes its files by name (train.log appended to, model.json,
    config.yaml and the predictions rewritten in place, best.pt, history.json and last.pt through `.<name>.tmp`,
    tensorboard/): a symbolic link planted at one of them in a shared results folder sent those writes to the
    file it points at, a hard link (planted, or a `cp -al` copy of the folder) to the file's other name, and a
    named pipe at train.log blocked the run."""
    for root, dirs, files in os.walk(folder):
        for name in sorted(dirs + files):
            entry = Path(root) / name
            kind = _foreign(entry)
            if kind:
                raise FolderNotResumable(f"{folder} holds {entry.relative_to(folder)}, {kind}, which no run writes: "
                                         f"it is not a folder this toolkit left; remove it (python run.py clean "
                                         f"--results {folder.parent.parent}) or run without --resume")


MAX_RUN_JSON = 1 << 20           # a run.json names an identity and its attempts: a few hundred bytes each


def _run_json(folder: Path) -> dict:
    """The run.json of a `.partial` folder, which may be anyone's in a shared results folder: never read
    through a link (one to /dev/zero filled memory), from a named pipe (it blocked every run), past
    MAX_RUN_JSON or deeper than the JSON reader goes; a ValueError or OSError for anything else."""
    raw = read_small_file(folder / RUN_IDENTITY, MAX_RUN_JSON)
    try:
        found = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise ValueError("too deep") from None
    if not isinstance(found, dict):
        raise ValueError("not an object")
    return found


def identity_of(folder: Path) -> tuple | None:
    """The run identity a `.partial` folder names, or None (a folder of an older version, or one being removed).
    Its condition is read as its record's would be (`folder_identity`): a drop=T run's folder made before text_rows
    was marked (its first epochs zeroed fewer text rows than today) names `drop=T,text_drop=older`, and a
    missing-rate run's made before text_spared was, on data not known to be BERT text (its first epochs spared
    the first and last row of every text), `missing_rate=R,text_missing=older`: no run of today's continues it."""
    try:
        found = _run_json(folder)
        identity = tuple(found["identity"])
        return folder_identity(identity, found.get("condition"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def folder_identity(identity: tuple, stored) -> tuple:
    """The identity a run folder's run.json names: `identity` (results.run_identity) with its condition's key
    read with the marks of its `condition` block `stored` (None: no marks, as an older toolkit's run.json kept
    none), as `condition_of` reads a record's, the identity's data id, dataset and aligned flag standing for
    the record's (`conditions.folder_condition_key`)."""
    if len(identity) != 7:               # no condition's key: the plain condition, which no rule changed
        return identity
    dataset, aligned, data, key = identity[1], identity[2], identity[5], identity[6]
    return identity[:6] + (folder_condition_key(key, stored, data=data, dataset=dataset, aligned=aligned),)


def attempts_of(folder: Path) -> list[dict]:
    """The attempts at the run in a `.partial` folder, oldest first: each process that worked in it
    (the first start, then each --resume) as `run_folder` was given it, {"git_commit": ...,
    "started_at": ..., "torch_threads": ...}. A folder that does not list them (one of an older version, or a
    damaged run.json) counts as one attempt of unknown code and threads, so that a resumed run never claims one
    commit made all of it; an attempt of a version that noted no threads has `torch_threads` None."""
    unknown = [{"git_commit": None, "started_at": None, "torch_threads": None}]
    try:
        attempts = _run_json(folder)["attempts"]
    except (OSError, ValueError, KeyError, TypeError):
        return unknown
    fields = ("git_commit", "started_at")
    if not (isinstance(attempts, list) and attempts and all(
            isinstance(a, dict) and all(isinstance(a.get(k), (str, type(None))) for k in fields)
            and _threads_or_none(a.get("torch_threads")) for a in attempts)):
        return unknown
    return [{k: a.get(k) for k in (*fields, "torch_threads")} for a in attempts]


def _threads_or_none(value) -> bool:
    """Whether `value` may be an attempt's torch_threads: a count of 1 or more, or None (not noted)."""
    return value is None or (type(value) is int and value >= 1)


def warn_of_other_threads(folder: Path, earlier: list[dict], threads: int | None) -> None:
    """One warning line when this resume runs under another torch thread count than the attempt before it:
    float sums over 1 and 2 threads differ in the last bits, so the run may end a few last digits away from an
    uninterrupted one's. Not refused: the record names each attempt's threads (`earlier_attempts`)."""
    before = earlier[-1].get("torch_threads") if earlier else None
    if before is not None and threads is not None and before != threads:
        log.warning("resuming %s with %d torch thread(s), where its earlier epochs ran with %d: its metrics may "
                    "differ from an uninterrupted run's in the last digits (give --threads %d to match)",
                    folder, threads, before, before)


def unfinished_runs(out, identities: Collection[tuple] | None = None) -> Iterator[Path]:
    """Each `.partial` folder in `<out>/runs` that no live process runs (and each dead `.partial.new` one:
    `_maybe_being_made`), each locked until the
    caller asks for the next, so that no run can take it over meanwhile. With `identities`, only the folders
    that name one of them (`identity_of`) are locked and given: a worker looking for its own run's leftovers
    must not hold another run's lock even for a moment, since that run's worker, looking for its own at the
    same time, would take the folder for a live run's and train afresh instead of resuming it. A folder of
    `identities` that is held is waited for a moment (LOOK_HOLD_S): a scan that locks every folder (`clean`, the
    sweep's plan line, run.py's closing count) may be reading it, which a run's own process would not."""
    for folder in work_folders(Path(out) / "runs"):
        if folder.is_symlink() or _maybe_being_made(folder):   # a link is no run's: its lock would write elsewhere
            continue
        if identities is not None:
            found = identity_of(folder)
            if not any(found == wanted for wanted in identities):    # compared, not hashed: a hostile run.json
                continue                                              # may name lists in its identity
        lock = _claim(folder, wait=0.0 if identities is None else LOOK_HOLD_S)
        if lock is None:
            continue
        try:
            yield folder
        finally:
            lock.release()


def move_dead(folder: Path, to: Path) -> bool:
    """Rename a dead run's `.partial` folder to `to` holding its lock (waited for LOOK_HOLD_S, as a scan may hold
    it), so that no other process removes it or takes it over half-way. False, the folder left, if it has gone
    or a live process holds it (a run of the same identity removing or resuming it)."""
    lock = _claim(folder, wait=LOOK_HOLD_S)
    if lock is None:
        return False
    try:
        folder.rename(to)
    finally:
        lock.release()
    (to / RUN_LOCK).unlink(missing_ok=True)
    return True


def work_folders(runs: Path) -> list[Path]:
    """The folders in `runs` that runs work in, live or dead: `.<run_id>.partial`, and `.<run_id>.partial.new`."""
    return sorted([*runs.glob(".*.partial"), *runs.glob(f".*.partial{NEW_SUFFIX}")])


def _maybe_being_made(folder: Path) -> bool:
    """Whether `folder`, a `.new` one naming no run yet (run.json is written under its lock), was made less than
    NEW_GRACE_S ago: a live run may not have locked it yet, and taking it would stop that run."""
    if not folder.name.endswith(NEW_SUFFIX) or os.path.lexists(folder / RUN_IDENTITY):
        return False
    try:
        return time.time() - folder.lstat().st_mtime < NEW_GRACE_S
    except FileNotFoundError:
        return True


def remove(folder: Path) -> None:
    """Remove a run folder, its run.json last: a removal killed half-way leaves a folder that still
    names its run, so the next start of that run removes the rest."""
    for entry in folder.iterdir():
        if entry.name != RUN_IDENTITY:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    shutil.rmtree(folder)


def resume_points(out, identities: Collection[tuple] | None = None) -> dict[Path, tuple]:
    """Each dead run's `.partial` folder in `<out>/runs` that holds a last.pt, what `--resume` may continue ->
    (the identity it names, `identity_of`; when its last.pt was written, in ns). `identities`: only folders
    naming one of them, as `unfinished_runs`."""
    points = {}
    for folder in unfinished_runs(out, identities):
        if (folder / LAST_CHECKPOINT).is_file():         # none: it died in its first epoch, nothing to continue
            points[folder] = (identity_of(folder), (folder / LAST_CHECKPOINT).stat().st_mtime_ns)
    return points


def take_leftovers(out, identity: tuple, resume: bool,
                   instead: str = "--resume continues such a run from its last finished epoch instead") -> str | None:
    """The unfinished folders an earlier call left of this very run: with `resume`, the run_id of
    the one whose last.pt is newest, to continue in place; every other one is removed, each with a
    log line (saying `instead` when not resuming). Folders of other runs are left alone."""
    older = folder_identity(identity, None)       # this run's, as a folder of an older toolkit names it
    mine = (identity, older)                      # the other runs' folders are not even locked (unfinished_runs)
    newest = {folder: written for folder, (found, written) in (resume_points(out, mine) if resume else {}).items()
              if found == identity}
    keep = max(newest, key=newest.get, default=None)
    for folder in unfinished_runs(out, mine):
        found = identity_of(folder)
        if folder != keep and found == identity:
            remove(folder)
            why = ("another one is resumed" if keep else "it had finished no epoch") if resume else instead
            log.warning("removed %s, left unfinished by an earlier start of this run (%s)", folder, why)
        elif resume and found == older != identity:
            what = ("--drop-modality T, which zeroed fewer text rows than today's" if "text_drop=older" in older[6]
                    else "--missing-rate, which spared the first and last row of every text, where today's spares "
                    "only BERT's [CLS] and [SEP]")
            log.warning("not resumed: %s was left by an older toolkit's %s; this run starts afresh (python run.py "
                        "clean --results %s removes that folder)", folder, what, out)
    return keep.name[1:-len(".partial")] if keep else None
