"""Dead run folders: which are there, which one a run of the same identity continues, and removing or moving them.

A `.partial` folder whose lock is free is a dead run's: `--resume` continues it from its last finished epoch
(`take_leftovers`, `resume_points`), `run.py clean` removes it (`unfinished_runs`, `remove`), and so does the
next start of the same run without --resume; a sweep renames a dead worker's folder `.failed` (`move_dead`).
A `.partial.new` folder is a dead run's as well once its lock is free and it names its run or is NEW_GRACE_S old.
"""
from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shlex
import shutil
import time
from collections.abc import Collection, Iterator
from pathlib import Path

from ..errors import FolderNotResumable
from ..lock_files import owner_name, probe
from .layout import LAST_CHECKPOINT, NEW_SUFFIX, RUN_IDENTITY, RUN_LOCK, work_folders
from .lock import LOOK_HOLD_S, claim, foreign_kind
from .run_json import folder_identity, identity_of

log = logging.getLogger("mmsa_atsuko")

# A `.new` folder naming no run yet may be a live run's between its mkdir and its lock: one is a dead run's only
# this long after it was made (the two steps are microseconds apart).
NEW_GRACE_S = 60.0
TOMBSTONE = ".removing-"          # `remove` renames a folder `<name>.removing-<random>` before deleting it


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
        lock = claim(folder, wait=0.0 if identities is None else LOOK_HOLD_S)
        if lock is None:
            continue
        try:
            yield folder
        finally:
            lock.release()


def dead_folders(out) -> list[Path]:
    """The work folders in `<out>/runs` that no live process runs, each looked at read-only (`lock_files.probe`), not
    taken as `unfinished_runs` takes them: a count needs no lock, and another user's dead folder, whose run.lock this
    user may not write (and so may not take), is dead too. A folder being made, a link, a run.lock no run made, or
    one this user cannot look at, is not counted."""
    found = []
    for folder in work_folders(Path(out) / "runs"):
        if folder.is_symlink() or not_dead(folder):
            continue
        if folder.is_dir():                  # not renamed away (finished) meanwhile
            found.append(folder)
    return found


# Why a work folder that is no link is not a dead run's (`not_dead`): `clean` counts only RUNNING as running runs.
RUNNING, BEING_MADE, ODD_LOCK, UNSEEN_LOCK = "running", "being made", "odd lock", "unseen lock"


def not_dead(folder: Path) -> tuple[str, str | None] | None:
    """Why `folder` (a work folder, no link) is not a dead run's, and what its run.lock is where that is why:
    BEING_MADE (`_maybe_being_made`: a run may be about to lock it), ODD_LOCK (its run.lock is a folder, or what
    `lock.foreign_kind` names: no run makes one), UNSEEN_LOCK (this user cannot look at its run.lock: counted as held,
    not known to run) or RUNNING (a live process holds its run.lock); None for a dead run's folder (its lock free, or
    none)."""
    if _maybe_being_made(folder):
        return BEING_MADE, None
    lock = folder / RUN_LOCK
    odd = foreign_kind(lock) or ("a folder" if lock.is_dir() and not lock.is_symlink() else None)
    if odd:
        return ODD_LOCK, odd
    held = probe(lock)
    return None if held is False else (RUNNING, None) if held else (UNSEEN_LOCK, None)


def unfinished_note(out) -> str | None:
    """run.py's closing note on the `.partial` folders of unfinished runs no process runs in `<out>/runs`, if any,
    and who may remove them: `clean` removes this user's alone, and, suggested for all of them, it removed 0 of
    another user's."""
    stale = dead_folders(out)       # looked at, not taken: another user's dead folder counts too
    if not stale:
        return None
    theirs, clean = _others(stale), f"`python run.py clean --results {shlex.quote(str(out))}`"
    if not theirs:
        who = f"{clean} removes them"
    elif theirs == len(stale):
        who = f"all another user's: that user, or root, removes them ({clean} as that user)"
    else:
        who = f"{clean} removes this user's {len(stale) - theirs}; {theirs} another user's: that user, or root, " \
              f"removes those"
    return (f"note: {Path(out) / 'runs'} holds {len(stale)} .partial folder(s) of unfinished runs that no process "
            f"is running; {who}")


def _others(folders: list[Path]) -> int:
    """How many of `folders` are another user's, which this user (unless root) may not remove."""
    mine = os.geteuid()
    if mine == 0:
        return 0
    theirs = 0
    for folder in folders:
        with contextlib.suppress(FileNotFoundError):    # removed (a clean, a resume) since it was listed: no one's
            theirs += folder.lstat().st_uid != mine
    return theirs


def move_dead(folder: Path, to: Path) -> bool:
    """Rename a dead run's `.partial` folder to `to` holding its lock (waited for LOOK_HOLD_S, as a scan may hold
    it), so that no other process removes it or takes it over half-way. False, the folder left, if it has gone
    or a live process holds it (a run of the same identity removing or resuming it)."""
    lock = claim(folder, wait=LOOK_HOLD_S)
    if lock is None:
        return False
    try:
        folder.rename(to)
    finally:
        lock.release()
    (to / RUN_LOCK).unlink(missing_ok=True)
    return True


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
    """Remove a run folder whose lock the caller holds. It is first renamed out of every name a process looks at
    (`<name>.removing-<random>`, a tombstone): deleted in place, its run.lock would go first, and a process waiting
    for that lock (a sweep driver's `move_dead`, a run's own look at its leftovers) would make a fresh one, take it
    at once and believe it owned the folder being deleted beneath it, and one of the two would crash. A removal killed
    half-way leaves the tombstone, which `clean` removes (`remove_tombstones`)."""
    tombstone = folder.with_name(f"{folder.name}{TOMBSTONE}{secrets.token_hex(4)}")
    folder.rename(tombstone)
    shutil.rmtree(tombstone, onerror=_gone_is_gone)


def remove_tombstones(runs: Path) -> int:
    """Remove what removals killed half-way left in `runs` (`remove`); how many. Another process's removal in
    progress may be deleting one at the same time: whichever deletes an entry first, the other passes it."""
    found = sorted(runs.glob(f".*{TOMBSTONE}*"))
    for tombstone in found:
        if tombstone.is_dir() and not tombstone.is_symlink():
            shutil.rmtree(tombstone, onerror=_gone_is_gone)
    return len(found)


def _gone_is_gone(function, path, exc_info) -> None:
    """shutil.rmtree's onerror: an entry another process deleted first is gone, as asked; anything else raises."""
    if not issubclass(exc_info[0], FileNotFoundError):
        raise exc_info[1]


def resume_points(out, identities: Collection[tuple] | None = None) -> dict[Path, tuple]:
    """Each dead run's `.partial` folder in `<out>/runs` that holds a last.pt, what `--resume` may continue ->
    (the identity it names, `identity_of`; when its last.pt was written, in ns). `identities`: only folders
    naming one of them, as `unfinished_runs`."""
    points = {}
    for folder in unfinished_runs(out, identities):
        if (folder / LAST_CHECKPOINT).is_file():         # none: it died in its first epoch, nothing to continue
            points[folder] = (identity_of(folder), (folder / LAST_CHECKPOINT).stat().st_mtime_ns)
    return points


def refuse_untakeable(out, identity: tuple) -> None:
    """One FolderNotResumable line (exit 1) if a dead run of `identity` in `<out>/runs` holds a last.pt that this
    user may not take over: another user's, whose run.lock (and folder) it may not write. `--resume` found no
    folder it could claim and trained afresh under a new run id, silently, exit 0; it cannot continue a folder it
    may not write in, and training afresh is what the command without --resume does, so it is asked for."""
    for folder in dead_folders(out):
        if identity_of(folder) == identity and (folder / LAST_CHECKPOINT).is_file():
            owner = owner_name(folder.stat().st_uid)
            raise FolderNotResumable(f"--resume cannot continue {folder}: it is {owner}'s, and this user may not "
                                     f"take its run.lock or write in it; ask {owner} to resume it, or run without "
                                     f"--resume to train this run afresh under a new run id")


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
    if resume and keep is None:
        refuse_untakeable(out, identity)
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
