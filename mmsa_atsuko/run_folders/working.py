"""A run's working folder (`run_folder`): made fresh, or a dead run's taken over to resume; renamed when done.

While the run works it holds the folder's lock, and run.json names the run's identity (`results.run_identity`),
its condition block and each attempt at it. What a dead folder must be before it is resumed: `check_resumable`.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
from pathlib import Path

from ..atomic import open_new
from ..errors import DataError, FolderNotResumable, ModelContractError, ResumeRefused
from ..lock_files import make_readable_as, make_shared_folder
from .dead import remove
from .layout import NEW_SUFFIX, RUN_IDENTITY, RUN_LOCK
from .lock import LOOK_HOLD_S, claim, foreign_kind
from .run_json import attempts_of, refuse_other_protocol, warn_of_other_threads


@contextlib.contextmanager
def run_folder(work_dir: Path, final_dir: Path, identity: tuple, resume: bool, attempt: dict | None = None,
               condition: dict | None = None):
    """`work_dir`, locked while the run works in it and renamed to `final_dir` once it has finished.

    A new folder is made under another name and renamed to `work_dir` with its lock held, so a
    live run's `.partial` folder is never seen unlocked; to resume, a dead run's folder is taken over.
    A fresh run that raises `ModelContractError` is removed. `attempt` (the code version, start, threads,
    precision and kernels of this process's part of the run, `run_json.ATTEMPT_FIELDS`) is added to the folder's
    attempts (`attempts_of`); a resume at another precision or kernels is refused. `condition` (the record's
    `condition` block) is kept in run.json for its marks: a drop=T one's text_rows (`identity_of`)."""
    def name_the_run(folder: Path, earlier: list) -> None:
        with open_new(folder / RUN_IDENTITY, "w", encoding="utf-8") as f:      # never through a planted link
            json.dump({"identity": list(identity), "pid": os.getpid(), "host": socket.gethostname(),
                       "condition": condition, "attempts": [*earlier, attempt or {}]}, f)

    if resume:
        lock = claim(work_dir)
        if lock is None:
            check_resumable(work_dir)      # a run.lock that is no run's is said to be one
            raise FolderNotResumable(f"{work_dir} is in use by another process; wait for it or run without --resume")
        try:
            check_resumable(work_dir)
            earlier = attempts_of(work_dir)
            refuse_other_protocol(work_dir, earlier, attempt or {})
        except ResumeRefused:
            lock.release()
            raise
        warn_of_other_threads(work_dir, earlier, (attempt or {}).get("torch_threads"))
        name_the_run(work_dir, earlier)
    else:
        new = work_dir.with_name(work_dir.name + NEW_SUFFIX)
        make_shared_folder(new.parent)          # runs/, as writable as the results folder: each user's runs go there
        new.mkdir()
        make_readable_as(new, new.parent)      # whoever may read runs/ may look at its lock (a dead run's count)
        lock = claim(new, wait=LOOK_HOLD_S)    # a scan (`clean`) holds a dead run's folder for a moment only
        if lock is None:
            raise DataError(f"{new} was taken by another process while this run made it (a file planted in it, or a "
                            f"clock far off); start the run again")
        # Named before the rename: a run killed at any moment leaves a .partial folder that says
        # whose it is, so the next start of that run finds and removes it.
        name_the_run(new, [])
        new.rename(work_dir)
    try:
        yield work_dir
        make_readable_as(work_dir, work_dir.parent)    # whatever the umask: who may read runs/ predicts with it
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


def check_resumable(folder: Path) -> None:
    """One line (FolderNotResumable, a DataError: exit 1) if a dead run's folder, about to be resumed, holds anything
    but folders and regular files of one name. A run writes its files by name (train.log appended to, model.json,
    config.yaml and the predictions rewritten in place, best.pt, history.json and last.pt through `.<name>.tmp`,
    tensorboard/): a symbolic link planted at one of them in a shared results folder sent those writes to the
    file it points at, a hard link (planted, or a `cp -al` copy of the folder) to the file's other name, and a
    named pipe at train.log blocked the run."""
    for root, dirs, files in os.walk(folder):
        for name in sorted(dirs + files):
            entry = Path(root) / name
            kind = foreign_kind(entry)
            if kind:
                raise FolderNotResumable(f"{folder} holds {entry.relative_to(folder)}, {kind}, which no run writes: "
                                         f"it is not a folder this toolkit left; remove it (python run.py clean "
                                         f"--results {folder.parent.parent}) or run without --resume")
