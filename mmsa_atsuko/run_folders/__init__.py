"""Run folders: where a run works until it has finished, and how a dead run's folder is found.

A run works in `<out>/runs/.<run_id>.partial/` and renames it to `<out>/runs/<run_id>/` once it
has finished. While it works it holds the folder's `run.lock` (a `filelock` lock: the OS drops it
however its holder dies, on this host or another sharing the folder, so no pid can go stale or
be reused), and `run.json` beside it names the run's identity (`results.run_identity`). A
`.partial` folder whose lock is free is a dead run's: `--resume` continues it from its last
finished epoch (`last.pt`; `run.py --resume`, `sweep --resume`), `run.py clean` removes it, and so does the
next start of the same run without --resume. A run killed while making its folder leaves `.<run_id>.partial.new`
(`run_folder`), a dead run's folder as well once its lock is free and it names its run or is NEW_GRACE_S old.

Bottom to top: `layout` (the folder's names), `lock` (its lock and `claim`), `run_json` (what run.json names),
`dead` (finding, taking over, removing and moving dead runs' folders), `working` (a run's folder while it works).
Each name is read where it is defined: patch it there (`run_folders.dead.claim`), not here.
"""
from .dead import (BEING_MADE, NEW_GRACE_S, ODD_LOCK, RUNNING, UNSEEN_LOCK, dead_folders, move_dead, not_dead, remove,
                   remove_tombstones, resume_points, take_leftovers, unfinished_note, unfinished_runs)
from .layout import (LAST_CHECKPOINT, NEW_SUFFIX, RUN_IDENTITY, RUN_LOCK, SAVE_CHECKPOINT, check_save_checkpoint,
                     partial_dir, work_folders)
from .lock import IDENTITY_CLAIM, LOOK_HOLD_S, claim, foreign_kind, identity_claim, take
from .run_json import MAX_RUN_JSON, attempts_of, folder_identity, identity_of, warn_of_other_threads
from .working import check_resumable, run_folder

__all__ = ["BEING_MADE", "IDENTITY_CLAIM", "LAST_CHECKPOINT", "LOOK_HOLD_S", "MAX_RUN_JSON", "NEW_GRACE_S",
           "NEW_SUFFIX", "ODD_LOCK", "RUNNING", "RUN_IDENTITY", "RUN_LOCK", "SAVE_CHECKPOINT", "UNSEEN_LOCK",
           "attempts_of", "check_resumable", "check_save_checkpoint", "claim", "dead_folders", "folder_identity",
           "foreign_kind", "identity_claim", "identity_of", "move_dead", "not_dead", "partial_dir", "remove",
           "remove_tombstones", "resume_points", "run_folder", "take", "take_leftovers", "unfinished_note",
           "unfinished_runs", "warn_of_other_threads", "work_folders"]
