"""results.writers: a run.py's mark and a sweep's lock in a results folder several users share."""
import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
from filelock import FileLock

from mmsa_atsuko.errors import ToolkitError
from mmsa_atsuko.results import check_no_run_py, run_py_mark
from mmsa_atsuko.sweep import SweepLock

NOBODY = 65534


def test_a_run_py_mark_and_a_sweep_lock_may_be_taken_by_any_user_sharing_the_folder(tmp_path):
    """Both are made rw for all (0666) whatever the umask, so another user's sweep or run.py can look at them and
    remove a killed run.py's mark. Before, filelock made them 0644 under umask 022: another user's sweep crashed on
    the mark (PermissionError) for as long as it was there, and a stale one was never removed."""
    old = os.umask(0o022)
    try:
        with run_py_mark(tmp_path):
            (mark,) = (tmp_path / "runs").glob(".run-py-*.lock")
            assert stat.S_IMODE(mark.stat().st_mode) == 0o666
        with SweepLock(tmp_path):
            assert stat.S_IMODE((tmp_path / ".sweep.lock").stat().st_mode) == 0o666
    finally:
        os.umask(old)


@pytest.fixture
def shared_folder():
    """A folder any user may write (pytest's tmp_path is root's alone), removed after the test."""
    folder = Path(tempfile.mkdtemp())
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder)


@contextlib.contextmanager
def as_nobody():
    """This process's effective user and group are nobody's for the body (root keeps its saved uid), root's after."""
    groups = os.getgroups()
    os.setgroups([])
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)
        os.setgroups(groups)


def free_lock(path: Path, mode: int) -> None:
    """A lock file at `path` whose process has ended, made with `mode` (filelock directly, not the code under test)."""
    lock = FileLock(path, mode=mode)
    lock.acquire()
    lock.release()


needs_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                                reason="acting as a second user needs root")


@needs_root
def test_another_users_locks_this_user_may_not_open_count_as_held_in_one_line(shared_folder):
    """A mark and a sweep lock left 0644 by root (as filelock made them before) in a folder nobody may write:
    nobody's sweep refuses in one line naming the mark and who may remove it, and nobody's sweep and run.py refuse
    on the sweep lock alike (`run_folders.take`: a lock that cannot be opened counts as held, as a run.lock does).
    Before, each was a PermissionError traceback, from every sweep, for as long as the file was there."""
    out = shared_folder / "res"
    (out / "runs").mkdir(parents=True)
    for folder in (out, out / "runs"):
        folder.chmod(0o777)
    old_mark, old_sweep_lock = out / "runs" / ".run-py-deadbeef.lock", out / ".sweep.lock"
    free_lock(old_mark, 0o644)
    free_lock(old_sweep_lock, 0o644)
    refusals = []
    with as_nobody():
        for look in (lambda: check_no_run_py(out), lambda: SweepLock(out).__enter__(),
                     lambda: run_py_mark(out).__enter__()):
            with pytest.raises(ToolkitError) as refused:
                look()
            refusals.append(str(refused.value))
    mark_line, sweep_line, run_py_line = refusals
    assert all("\n" not in line for line in refusals), refusals
    assert mark_line.startswith(f"1 run.py process(es) are training into {out} (their marks in {out / 'runs'}: "
                                f".run-py-deadbeef.lock, which this user may not open, so it counts as held: if no "
                                f"run.py of uid 0 is running there, uid 0 (or root) may remove it), "), mark_line
    held = (f"(lock {old_sweep_lock}, which this user may not open, so it counts as held: if no sweep of uid 0 is "
            f"running there, uid 0 (or root) may remove it)")
    assert sweep_line.startswith(f"another sweep is writing to {out} {held}"), sweep_line
    assert run_py_line.startswith(f"a sweep (or tune, or run.py --jobs) is writing to {out} {held}"), run_py_line
    assert old_mark.exists() and old_sweep_lock.exists()                    # counted as held: never removed
    assert [p.name for p in (out / "runs").iterdir()] == [old_mark.name]    # nobody's own mark was removed


@needs_root
def test_another_users_killed_run_py_mark_is_removed_by_this_users_sweep(shared_folder):
    """A free mark of root's, made as run.py makes its mark (0666): nobody's sweep takes it and removes it."""
    out = shared_folder / "res"
    (out / "runs").mkdir(parents=True)
    for folder in (out, out / "runs"):
        folder.chmod(0o777)
    killed = out / "runs" / ".run-py-0123456789abcdef.lock"
    free_lock(killed, 0o666)
    with as_nobody():
        with SweepLock(out):
            assert not killed.exists()

