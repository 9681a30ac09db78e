"""The code a run ran: the commit of the checkout the package runs from (`git_commit`).

A model file of `--models DIR` is outside the checkout; its source is `user_models.source.model_source`.
"""
from __future__ import annotations

import functools
import logging
import subprocess
from pathlib import Path

log = logging.getLogger("mmsa_atsuko")

CODE_PATHS = ("mmsa_atsuko", "configs", "run.py", "setup.py")    # what `git_commit` calls the code


@functools.cache
def git_commit() -> str | None:
    """HEAD of the checkout the package runs from, '+dirty' when it has local changes.

    Read once per process, at its first call, which `run` and `sweep` make before any run
    trains (and a sweep worker when it starts): the code a process runs is what it imported
    then, so a commit made or a file edited while it trains must not be credited to its runs."""
    return commit_of(Path(__file__).resolve().parents[1])


def commit_of(root: Path) -> str | None:
    """HEAD of the checkout at `root` ('+dirty' as `git_commit` says), None where git cannot tell (no checkout, no
    git, a checkout git refuses: one warning line then, `_warn_unknown`)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            if (root / ".git").exists():        # a checkout git refused, not an installed package: say why, once
                _warn_unknown(root, head.stderr)
            return None
        def changed(*args) -> bool:
            return bool(subprocess.run(["git", "status", "--porcelain", *args], cwd=root, capture_output=True,
                                       text=True, timeout=10).stdout.strip())
        # Any tracked change counts; an untracked file counts among the code (a new models/baselines/x.py is imported
        # by discovery), not elsewhere (results, notes).
        dirty = changed("--untracked-files=no") or changed("--", *CODE_PATHS)
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _warn_unknown(root: Path, stderr: str) -> None:
    """One warning line when git refuses the checkout the package runs from, so its runs are recorded with
    `git_commit` null: a second user of a checkout another user owns is refused by git (`detected dubious
    ownership`), which until then went unsaid."""
    reason = next((line.strip() for line in stderr.splitlines() if line.strip()), "no reason given")
    hint = (f"; to record it, run: git config --global --add safe.directory {root}"
            if "dubious ownership" in stderr else "")
    log.warning("the commit of %s is unknown (git: %s): runs are recorded with git_commit null%s", root, reason,
                hint)
