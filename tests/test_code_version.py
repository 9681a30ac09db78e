"""The commit a run records (`code_version.git_commit`): a checkout git refuses is said, once, with git's reason."""
import logging
import os
import subprocess
import tempfile
import shutil
from pathlib import Path

import pytest

NOBODY = 65534


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="acting as a second user needs root")
def test_a_checkout_of_another_user_that_git_refuses_is_one_warning_with_the_safe_directory_hint(caplog,
                                                                                                   monkeypatch):
    """root's checkout, read by nobody: git refuses it (dubious ownership), and the commit is None, as before,
    now with one warning line quoting git and naming `git config --global --add safe.directory <path>`. Before:
    None without a word, and the leaderboard then counted the run as another code version."""
    from mmsa_atsuko.code_version import commit_of
    base = Path(tempfile.mkdtemp())
    try:
        base.chmod(0o755)
        repo = base / "checkout"
        repo.mkdir()
        git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
        subprocess.run([*git, "init", "-q", str(repo)], check=True)
        (repo / "run.py").write_text("x\n")
        subprocess.run([*git, "-C", str(repo), "add", "run.py"], check=True)
        subprocess.run([*git, "-C", str(repo), "commit", "-qm", "one"], check=True)
        subprocess.run(["chmod", "-R", "a+rX", str(repo)], check=True)
        assert len(commit_of(repo)) == 40                         # root's own checkout: its commit
        monkeypatch.setenv("HOME", str(base))                     # nobody's git reads no root's config
        caplog.set_level(logging.WARNING, logger="mmsa_atsuko")
        os.setegid(NOBODY)
        os.seteuid(NOBODY)
        try:
            found = commit_of(repo)
        finally:
            os.seteuid(0)
            os.setegid(0)
        assert found is None
        (line,) = [r.getMessage() for r in caplog.records]
        assert line.startswith(f"the commit of {repo} is unknown (git: fatal: detected dubious ownership in "
                               f"repository at '{repo}'")
        assert line.endswith(f"runs are recorded with git_commit null; to record it, run: git config --global "
                             f"--add safe.directory {repo}")
    finally:
        shutil.rmtree(base)
