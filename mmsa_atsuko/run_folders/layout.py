"""Where a run's folder is, and what it holds: the names every other module of run_folders shares.

A run works in `<out>/runs/.<run_id>.partial/` (`partial_dir`), made first as `.<run_id>.partial.new`, and
renames it to `<out>/runs/<run_id>/` once it has finished.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import UsageError

RUN_LOCK = "run.lock"            # held while a process runs in the folder
RUN_IDENTITY = "run.json"        # the identity of the run in the folder, and who runs it
LAST_CHECKPOINT = "last.pt"      # the trainer's per-epoch state, what --resume continues from
NEW_SUFFIX = ".new"              # `run_folder` makes a fresh folder under this name, then renames it to `.partial`
SAVE_CHECKPOINT = ("best", "none")     # what a finished run leaves in its folder: best.pt, or no weights


def check_save_checkpoint(value: str) -> str:
    """`value` if it is one of SAVE_CHECKPOINT, else a one-line UsageError (no torch: a sweep asks before planning)."""
    if value not in SAVE_CHECKPOINT:
        raise UsageError(f"--save-checkpoint must be one of {', '.join(SAVE_CHECKPOINT)}, got {value!r}")
    return value


def partial_dir(out, run_id: str) -> Path:
    """Where a run works until it has finished (then renamed to `<out>/runs/<run_id>`)."""
    return Path(out) / "runs" / f".{run_id}.partial"


def work_folders(runs: Path) -> list[Path]:
    """The folders in `runs` that runs work in, live or dead: `.<run_id>.partial`, and `.<run_id>.partial.new`."""
    return sorted([*runs.glob(".*.partial"), *runs.glob(f".*.partial{NEW_SUFFIX}")])
