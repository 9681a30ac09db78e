"""The code a run ran: the commit of the checkout the package runs from (`git_commit`).

A model file of `--models DIR` is outside the checkout; its source is `user_models.source.model_source`.
"""
from __future__ import annotations

import functools
import subprocess
from pathlib import Path

CODE_PATHS = ("mmsa_atsuko", "baselines", "configs", "run.py", "setup.py")    # what `git_commit` calls the code


@functools.cache
def git_commit() -> str | None:
    """HEAD of the checkout the package runs from, '+dirty' when it has local changes.

    Read once per process, at its first call, which `run` and `sweep` make before any run
    trains (and a sweep worker when it starts): the code a process runs is what it imported
    then, so a commit made or a file edited while it trains must not be credited to its runs."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return None
        def changed(*args) -> bool:
            return bool(subprocess.run(["git", "status", "--porcelain", *args], cwd=root, capture_output=True,
                                       text=True, timeout=10).stdout.strip())
        # Any tracked change counts; an untracked file counts among the code (a new baselines/x.py is imported
        # by discovery), not elsewhere (results, notes).
        dirty = changed("--untracked-files=no") or changed("--", *CODE_PATHS)
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None
