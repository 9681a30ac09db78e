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


@pytest.mark.parametrize("folder_mode, lock_mode", [(0o755, 0o644), (0o700, 0o644), (0o775, 0o664), (0o757, 0o646),
                                                     (0o777, 0o666), (0o1777, 0o666), (0o3775, 0o664)])
@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_a_run_py_mark_and_a_sweep_lock_are_as_writable_as_their_folder(tmp_path, folder_mode, lock_mode, umask):
    """Writable by the group, or by others, exactly where the folder is (whatever the umask): any user who may write
    in a shared folder may take them, to see whether they are held, and remove a killed run.py's mark; in a
    private folder no other user may write into them. Before, both were 0666 in every folder: any local user could
    append to the owner's lock files (and fill the disk)."""
    out = tmp_path / "res"
    (out / "runs").mkdir(parents=True)
    for folder in (out, out / "runs"):
        folder.chmod(folder_mode)
    old = os.umask(umask)
    try:
        with run_py_mark(out):
            (mark,) = (out / "runs").glob(".run-py-*.lock")
            assert stat.S_IMODE(mark.stat().st_mode) == lock_mode
        with SweepLock(out):
            assert stat.S_IMODE((out / ".sweep.lock").stat().st_mode) == lock_mode
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


def roots_free_locks(out: Path, mode: int) -> tuple[Path, Path]:
    """A results folder `out` and its runs/ writable by all, holding a free run.py mark and a free sweep lock made
    with `mode` (by root, who runs the tests): (the mark, the sweep lock)."""
    (out / "runs").mkdir(parents=True)
    for folder in (out, out / "runs"):
        folder.chmod(0o777)
    mark, sweep_lock = out / "runs" / ".run-py-deadbeef.lock", out / ".sweep.lock"
    free_lock(mark, mode)
    free_lock(sweep_lock, mode)
    return mark, sweep_lock


needs_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                                reason="acting as a second user needs root")


@needs_root
def test_another_users_locks_this_user_may_not_write_are_looked_at_read_only(shared_folder):
    """A mark and a sweep lock left 0644 by root (as filelock made them before) in a folder nobody may write.
    Free: nobody's sweep removes the killed run.py's mark, and nobody's run.py trains, both having looked at them
    read-only (before: each refused, 'cannot tell', for as long as the files were there); nobody's sweep still
    refuses to take the sweep lock, in one line naming it and who may remove it. Held by a live root process: each
    says that a sweep or run.py is running, not that it cannot tell."""
    out = shared_folder / "res"
    old_mark, old_sweep_lock = roots_free_locks(out, 0o644)
    whose = "is root's and this user may not open it, whether or not a sweep of root runs there; once no sweep of " \
            "root runs there, root may remove it; else give another --out"
    with as_nobody():
        check_no_run_py(out)
        assert not old_mark.exists()                        # free: a killed run.py's, removed
        with pytest.raises(ToolkitError) as refused:
            SweepLock(out).__enter__()
        with run_py_mark(out):
            assert len(list((out / "runs").glob(".run-py-*.lock"))) == 1
    assert str(refused.value) == (f"this user cannot take {out}'s sweep lock {old_sweep_lock}, so no sweep of this "
                                  f"user may write there: it {whose}")
    free_lock(old_mark, 0o644)
    with FileLock(old_mark), FileLock(old_sweep_lock), as_nobody():
        with pytest.raises(ToolkitError) as marked:
            check_no_run_py(out)
        with pytest.raises(ToolkitError) as swept:
            run_py_mark(out).__enter__()
    assert str(marked.value).startswith(f"1 run.py process(es) are training into {out} (their marks in ")
    assert str(swept.value).startswith(f"a sweep (or tune, or run.py --jobs) is writing to {out} (lock ")
    assert [p.name for p in (out / "runs").iterdir()] == [old_mark.name]    # nobody's own mark was removed


@needs_root
def test_a_lock_this_user_may_not_even_read_counts_as_held_in_one_line(shared_folder):
    """A mark and a sweep lock of root's, 0600 (no toolkit makes one so, but a user may chmod it): nobody cannot look
    at them, so both count as held, each refusal one line saying why, and neither file is removed. The owner is named
    as the system names them, root once (before: 'uid 0's ... uid 0 (or root) may remove it')."""
    out = shared_folder / "res"
    mark, sweep_lock = roots_free_locks(out, 0o600)
    refused = []
    with as_nobody():
        for look in (lambda: check_no_run_py(out), lambda: run_py_mark(out).__enter__()):
            with pytest.raises(ToolkitError) as refusal:
                look()
            refused.append(str(refusal.value))
    why = ("is root's and this user may not read it, whether or not a {0} of root runs there: it counts as held; "
           "once no {0} of root runs there, root may remove it; else give another --out")
    assert refused == [f"a sweep cannot tell whether a run.py trains into {out}: its mark {mark} "
                       f"{why.format('run.py')}",
                       f"run.py cannot tell whether a sweep is writing to {out}: its sweep lock {sweep_lock} "
                       f"{why.format('sweep')}"]
    assert mark.exists() and sweep_lock.exists() and [p.name for p in (out / "runs").iterdir()] == [mark.name]


OTHER = 1234        # a third user: neither nobody nor the folders' owner (root)


@needs_root
def test_another_users_free_locks_in_a_sticky_folder_are_free_to_look_at_not_to_take(shared_folder):
    """A folder with the sticky bit (1777, or 3775 for a group), each lock file left by a user who is neither nobody
    nor the folder's owner, nothing running: filelock (4.2.12 and later, as constraints.txt pins) refuses to lock
    another user's file there (its owner could replace it while it was held), a guarantee kept, and the sticky bit
    stops nobody removing it. Looked at read-only, both are free: nobody's sweep passes the killed mark (left, as it
    may not remove it) and nobody's run.py trains (before: 'cannot tell', forever); nobody's sweep still refuses to
    take the sweep lock, in one line naming the file, its owner and who may remove it."""
    for mode in (0o1777, 0o3775):
        out = shared_folder / f"res{mode:o}"
        (out / "runs").mkdir(parents=True)
        for folder in (out, out / "runs"):
            folder.chmod(mode)
            os.chown(folder, 0, NOBODY)           # nobody writes a 3775 folder through its group
        killed_mark, sweep_lock = out / "runs" / ".run-py-0123456789abcdef.lock", out / ".sweep.lock"
        for lock in (killed_mark, sweep_lock):
            free_lock(lock, 0o666)
            os.chown(lock, OTHER, OTHER)
        with as_nobody():
            check_no_run_py(out)
            with pytest.raises(ToolkitError) as refused:
                SweepLock(out).__enter__()
            with run_py_mark(out):
                pass
        why = ("is uid 1234's in a folder with the sticky bit ({0}, mode {1:04o}), where filelock takes no other "
               "user's lock (its owner could replace the file while it was held) and the sticky bit stops any user "
               "but its owner and root removing it: this user can neither take nor remove it, whether or not a {2} "
               "of uid 1234 runs there; once no {2} of uid 1234 runs there, uid 1234 (or root) may remove it; else "
               "give another --out")
        assert str(refused.value) == (f"this user cannot take {out}'s sweep lock {sweep_lock}, so no sweep of this "
                                      f"user may write there: it {why.format(out, mode, 'sweep')}")
        assert killed_mark.exists() and sweep_lock.exists()
        assert [p.name for p in (out / "runs").iterdir()] == [killed_mark.name]    # nobody's own mark was removed


def test_a_sweep_looks_at_each_run_py_mark_once(tmp_path, monkeypatch):
    """Two marks held by live run.py's and one this user cannot look at (`probe` says None): the sweep's refusal
    names the one it cannot look at and counts the other two as held, having looked at each mark once (3 looks).
    Before, each mark left as held was looked at a second time to tell 'held' from 'cannot tell' (6 looks)."""
    import mmsa_atsuko.results.writers as writers
    runs = tmp_path / "runs"
    runs.mkdir()
    held = [runs / f".run-py-{n:016x}.lock" for n in (1, 2)]
    unlookable = runs / ".run-py-0000000000000003.lock"
    unlookable.write_bytes(b"")
    looks = []

    def probe(path, wait=0.0):
        looks.append(Path(path).name)
        return None if path == unlookable else real_probe(path, wait)

    real_probe = writers.probe
    monkeypatch.setattr(writers, "probe", probe)
    monkeypatch.setattr(writers, "LOOK_WAIT_S", 0.0)     # a held mark is not waited for: its run.py trains on
    with FileLock(held[0]), FileLock(held[1]):
        with pytest.raises(ToolkitError) as refused:
            check_no_run_py(tmp_path)
    assert sorted(looks) == sorted(p.name for p in [*held, unlookable])
    assert str(refused.value) == (f"a sweep cannot tell whether a run.py trains into {tmp_path}: its mark {unlookable}"
                                  f"{writers.unprobeable_note(unlookable, 'run.py')} (2 more mark(s) there count as "
                                  f"held)")


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


def _run(out, seeds, echo, **kw):
    import mmsa_atsuko
    return mmsa_atsuko.run("tfn", "mosi", seeds=seeds, synthetic=True, preset="small", max_epochs=1, out=out,
                           quiet=True, echo=echo, **kw)


def _skip_line(record) -> str:
    return f"skip tfn mosi seed {record['seed']}: recorded as {record['run_id']} (--rerun trains it again)"


def test_run_py_that_trains_nothing_is_not_stopped_by_a_sweep_and_one_that_trains_is_at_its_first_run(tmp_path):
    """run.py takes its mark at the first run it trains: with every run recorded it skips them beside a sweep holding
    the folder and returns their records (before, it was refused: nothing it would train, yet exit 1); a seed to
    train is refused when reached, after the skip lines of those before it, and trains nothing."""
    from mmsa_atsuko.results import read_records
    (first,) = _run(tmp_path, [1], lambda _: None)
    lines = []
    with SweepLock(tmp_path):
        (again,) = _run(tmp_path, [1], lines.append)
        assert again["run_id"] == first["run_id"] and lines == [_skip_line(first)]
        assert not list((tmp_path / "runs").glob(".run-py-*"))
        lines.clear()
        with pytest.raises(ToolkitError) as refused:
            _run(tmp_path, [1, 2], lines.append)
    assert str(refused.value).startswith(f"a sweep (or tune, or run.py --jobs) is writing to {tmp_path} (lock ")
    assert lines == [_skip_line(first)]
    assert [r["seed"] for r in read_records(tmp_path)] == [1] and not list((tmp_path / "runs").glob(".*"))


def test_a_run_a_sweep_recorded_before_run_py_took_its_mark_is_skipped_not_trained_again(tmp_path, monkeypatch):
    """run.py read the store (seed 2 not there), then a sweep that was training seed 2 recorded it and ended; run.py
    reaching seed 2 takes its mark and reads the store again: it skips seed 2, which is recorded once."""
    import mmsa_atsuko.results.writers as writers
    from mmsa_atsuko.results import append_record, read_records
    (sweeps,) = _run(tmp_path / "elsewhere", [2], lambda _: None)      # the sweep's record of seed 2
    real = writers.run_py_mark

    def mark_after_the_sweep_ended(out):
        append_record(out, sweeps)
        return real(out)

    monkeypatch.setattr(writers, "run_py_mark", mark_after_the_sweep_ended)
    lines = []
    records = _run(tmp_path / "out", [1, 2], lines.append)
    assert [r["seed"] for r in read_records(tmp_path / "out")] == [2, 1]
    assert records[1]["run_id"] == sweeps["run_id"] and lines == [_skip_line(sweeps)]


@needs_root
def test_run_py_of_another_user_with_every_run_recorded_needs_no_writable_runs_folder(shared_folder, monkeypatch):
    """root trained seed 1; the folder and its store are writable by all, runs/ is root's alone (0755). nobody's
    run.py of seed 1 skips it (before: a PermissionError traceback making its mark, where it used to skip), and
    of seeds 1 and 2 stops at seed 2 in one line saying runs/ is not writable."""
    from mmsa_atsuko.errors import UsageError
    monkeypatch.setenv("MMSA_ATSUKO_CACHE", str(shared_folder / "cache"))
    out = shared_folder / "res"
    (first,) = _run(out, [1], lambda _: None)
    out.chmod(0o777)
    for store_file in out.glob("runs.jsonl*"):
        store_file.chmod(0o666)
    lines = []
    with as_nobody():
        (again,) = _run(out, [1], lines.append)
        with pytest.raises(UsageError) as refused:
            _run(out, [1, 2], lambda _: None)
    assert again["run_id"] == first["run_id"] and lines == [_skip_line(first)]
    assert str(refused.value) == (f"{out / 'runs'} is not writable by this user, and run.py marks it "
                                  f"(.run-py-<random>.lock) while it trains: make it writable, or give another --out")


@needs_root
def test_run_py_of_another_user_folds_in_a_kept_record_it_may_not_remove_once(shared_folder, monkeypatch, caplog):
    """root's run of seed 1 kept its record as runs/<run_id>/record.json (the store could not take it then); the
    folder and store are writable by all, runs/ and the run's folder are root's alone. nobody's run.py of seed 1
    appends the record and skips the seed, the file left with one warning; its next call appends nothing (the store
    holds the run_id) and warns no more. Before: a PermissionError traceback removing the file, on every call."""
    import logging
    from mmsa_atsuko.results import read_records
    monkeypatch.setenv("MMSA_ATSUKO_CACHE", str(shared_folder / "cache"))
    out = shared_folder / "res"
    (first,) = _run(out, [1], lambda _: None)
    kept = out / first["run_dir"] / "record.json"
    kept.write_bytes((out / "runs.jsonl").read_bytes())      # the store's one line, as append_or_keep keeps it
    (out / "runs.jsonl").write_bytes(b"")
    out.chmod(0o777)
    for store_file in out.glob("runs.jsonl*"):
        store_file.chmod(0o666)
    calls = [[], []]
    with as_nobody(), caplog.at_level(logging.WARNING, logger="mmsa_atsuko"):
        for lines in calls:
            (again,) = _run(out, [1], lines.append)
            assert again["run_id"] == first["run_id"]
    recovered = f"recovered the record of run {first['run_id']} into {out / 'runs.jsonl'}"
    assert calls == [[recovered, _skip_line(first)], [_skip_line(first)]]
    assert [r["run_id"] for r in read_records(out)] == [first["run_id"]] and kept.exists()
    warned = [r.getMessage() for r in caplog.records if str(kept) in r.getMessage()]
    assert len(warned) == 1 and "this user may not remove the file (Permission denied)" in warned[0], warned


def test_run_py_that_cannot_make_its_mark_says_the_os_error_not_an_unwritable_folder(tmp_path):
    """runs/ is this user's and writable, but no file can be opened (the process's open-file limit, a real OS error
    as a full disk is): the line names the mark and the OS's words (EMFILE's 'Too many open files'). Before, any
    failure to take the mark was said to be 'runs is not writable by this user'."""
    import errno
    import resource
    (tmp_path / "runs").mkdir()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (0, hard))
    try:
        with pytest.raises(ToolkitError) as refused:
            with run_py_mark(tmp_path):
                pass
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    line = str(refused.value)
    assert line.startswith(f"run.py could not make its mark {tmp_path / 'runs'}/.run-py-"), line
    assert line.endswith(f".lock, which it holds while it trains ({os.strerror(errno.EMFILE)}): free space or fix "
                         f"{tmp_path / 'runs'}, or give another --out"), line
    assert not list((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("parent_mode, umask, made_mode", [
    (0o1777, 0o022, 0o1777), (0o3775, 0o022, 0o3775), (0o755, 0o002, 0o755), (0o755, 0o000, 0o755),
    (0o700, 0o000, 0o700), (0o775, 0o077, 0o775), (0o2770, 0o000, 0o2770)])
def test_a_shared_folder_takes_its_parents_mode(tmp_path, parent_mode, umask, made_mode):
    """runs/ of a results folder follows the folder's mode, whatever the umask: owner rwx, the parent's group and
    other bits, its sticky and set-group-id bits, nothing the parent lacks. Before, 1777 made runs/ 0777 (no
    sticky bit: any user could rename another's run folder and remove a live claim), 3775 made 2775, and a
    private 0755 folder made 0775 under umask 002, 0777 under umask 000."""
    from mmsa_atsuko.lock_files import make_shared_folder
    out = tmp_path / "res"
    out.mkdir()
    out.chmod(parent_mode)
    old = os.umask(umask)
    try:
        make_shared_folder(out / "runs")
    finally:
        os.umask(old)
    assert stat.S_IMODE((out / "runs").stat().st_mode) == made_mode


def _claim_of_seed(tmp_path, out, seed: int) -> Path:
    """The claim file a run.py takes for `_run`'s run of `seed` in `out` (its identity from a run trained elsewhere)."""
    from mmsa_atsuko.results import identity
    from mmsa_atsuko.run_folders.lock import claim_path
    (record,) = _run(tmp_path / "elsewhere", [seed], lambda line: None)
    return claim_path(out / "runs", identity(record))


@needs_root
def test_a_killed_run_pys_claim_is_removed_by_clean_and_a_sweep_or_named_where_it_cannot_be(shared_folder, capsys):
    """A run.py killed while training leaves its claim (runs/.claim-<digest>.lock), free. clean removes an old one
    (not one made in the last minute, the marks' rule) and a sweep removes any; another user's in a folder with the
    sticky bit, which this user may not remove, clean keeps and names: whose it is and who may remove it. Before,
    none was ever removed: another user's then stopped every other user's run.py at that run, forever."""
    import time

    from mmsa_atsuko.cli import main
    out = shared_folder / "res"
    runs = out / "runs"
    runs.mkdir(parents=True)
    old, new = runs / ".claim-0123456789abcdef01234567.lock", runs / ".claim-76543210fedcba9876543210.lock"
    for claim in (old, new):
        free_lock(claim, 0o666)
    os.utime(old, (time.time() - 120, time.time() - 120))
    assert main(["clean", "--results", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (f"removed 0 unfinished run folder(s) from {runs} and 1 "
                                                        f"claim(s) of killed run.py's")
    assert not old.exists() and new.exists()
    check_no_run_py(out)                        # what a sweep does once it holds the folder's sweep lock
    assert not new.exists()

    for folder in (out, runs):
        folder.chmod(0o1777)
    free_lock(old, 0o666)
    os.chown(old, OTHER, OTHER)
    os.utime(old, (time.time() - 120, time.time() - 120))
    with as_nobody():
        assert main(["clean", "--results", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (f"kept {old}, a killed run.py's claim of a run: it is uid 1234's in a folder with the sticky "
                        f"bit ({runs}, mode 1777), where filelock takes no other user's lock (its owner could replace "
                        f"the file while it was held) and the sticky bit stops any user but its owner and root "
                        f"removing it: this user can neither take nor remove it, whether or not a run.py of uid 1234 "
                        f"runs there; once no run.py of uid 1234 runs there, uid 1234 (or root) may remove it; else "
                        f"give another --out")
    assert old.exists()


@needs_root
def test_clean_names_another_users_killed_mark_as_it_names_their_claim(shared_folder, capsys):
    """Another user's killed run.py left its mark and its claim of a run, both free and made over a minute ago.
    In a folder with the sticky bit (1777) nobody may remove either: nobody's clean keeps both and names each in one
    line of one form, whose it is and who may remove it. In a runs/ nobody may not write (root's, 0755), the line
    gives the OS's reason. Before, the mark was kept without a word (the claim alone was named), and in the runs/
    nobody may not write the claim's line ended at 'it'."""
    import errno
    import time

    from mmsa_atsuko.cli import main
    out = shared_folder / "res"
    runs = out / "runs"
    runs.mkdir(parents=True)
    mark, claim = runs / ".run-py-0123456789abcdef.lock", runs / ".claim-0123456789abcdef01234567.lock"
    for lock in (mark, claim):
        free_lock(lock, 0o666)
        os.chown(lock, OTHER, OTHER)
        os.utime(lock, (time.time() - 120, time.time() - 120))
    sticky = ("is uid 1234's in a folder with the sticky bit ({runs}, mode 1777), where filelock takes no other user's "
              "lock (its owner could replace the file while it was held) and the sticky bit stops any user but its "
              "owner and root removing it: this user can neither take nor remove it, whether or not a run.py of uid "
              "1234 runs there; once no run.py of uid 1234 runs there, uid 1234 (or root) may remove it; else give "
              "another --out").format(runs=runs)
    unwritable = (f"could not be removed ({os.strerror(errno.EACCES)}); once no run.py of uid 1234 runs there, "
                  f"uid 1234 (or root) may remove it; else give another --out")
    for mode, why in ((0o1777, sticky), (0o755, unwritable)):
        out.chmod(0o1777)
        runs.chmod(mode)
        with as_nobody():
            assert main(["clean", "--results", str(out)]) == 0
        assert capsys.readouterr().out.splitlines() == [
            f"kept {mark}, a killed run.py's mark: it {why}",
            f"kept {claim}, a killed run.py's claim of a run: it {why}",
            f"removed 0 unfinished run folder(s) from {runs}"]
        assert mark.exists() and claim.exists()


@needs_root
def test_a_run_py_stops_before_training_any_run_where_it_can_never_take_a_claim(tmp_path):
    """Seeds 2 and 1, seed 1's claim left free by another user's killed run.py in a folder with the sticky bit
    (filelock 4.2.12 and later take no other user's lock there): run.py says so in one line before it trains
    anything. Before, it trained seed 2, appended it, and then stopped at seed 1."""
    out = tmp_path / "res"
    (out / "runs").mkdir(parents=True)
    for folder in (out, out / "runs"):
        folder.chmod(0o1777)
    claim = _claim_of_seed(tmp_path, out, 1)
    free_lock(claim, 0o666)
    os.chown(claim, OTHER, OTHER)
    with pytest.raises(ToolkitError) as refused:
        _run(out, [2, 1], lambda line: None)
    assert str(refused.value).startswith(f"run.py cannot take the claim {claim} of a run it is to train: it is uid "
                                         f"1234's in a folder with the sticky bit"), str(refused.value)
    assert not (out / "runs.jsonl").exists()
    assert sorted(p.name for p in (out / "runs").iterdir()) == [claim.name]


def test_a_run_py_refuses_a_claim_that_is_a_link_and_leaves_its_target_alone(tmp_path):
    """A claim file planted as a symbolic link (or a hard link) to another file: run.py does not open it (filelock
    before 4.2.1 emptied lock files it took and fchmod-ed them, as claim() already guards against for run.lock),
    says what it is in one line, and the file it names keeps its bytes and mode."""
    out = tmp_path / "res"
    (out / "runs").mkdir(parents=True)
    claim = _claim_of_seed(tmp_path, out, 1)
    victim = tmp_path / "victim"
    for make, kind in ((os.symlink, "a symbolic link"), (os.link, "a file of 2 names (a hard link)")):
        victim.write_text("secret")
        victim.chmod(0o600)
        make(victim, claim)
        with pytest.raises(ToolkitError) as refused:
            _run(out, [1], lambda line: None)
        assert str(refused.value) == (f"run.py will not take its claim {claim} of the run it is about to train: it is "
                                      f"{kind}, which no run.py makes; whoever owns it (or root) may remove it; else "
                                      f"give another --out")
        assert victim.read_text() == "secret" and stat.S_IMODE(victim.stat().st_mode) == 0o600
        claim.unlink()


def _old_free_claim(out: Path, identity: tuple) -> Path:
    """A killed run.py's claim of run `identity` in `out`'s runs/: free, made two minutes ago (past clean's grace)."""
    import time

    from mmsa_atsuko.run_folders.lock import claim_path
    runs = out / "runs"
    runs.mkdir(parents=True)
    claim = claim_path(runs, identity)
    free_lock(claim, 0o644)
    os.utime(claim, (time.time() - 120, time.time() - 120))
    return claim


def test_clean_leaves_a_claim_a_run_py_takes_between_its_look_and_the_removal(tmp_path, monkeypatch, capsys):
    """clean looks at a killed run.py's claim, free, and removes it. A run.py takes that claim just after the look,
    before the removal: clean leaves it, held, so that a third run.py waits on it. Before, clean removed it by its
    name once the look said free: the third took a claim of its own, and two run.py's trained one run."""
    import mmsa_atsuko.results.writers as writers
    from mmsa_atsuko.cli import main
    from mmsa_atsuko.lock_files import probe
    from mmsa_atsuko.run_folders.lock import identity_claim, take
    out = tmp_path / "res"
    claim = _old_free_claim(out, ("a run",))
    real_probe, taken = writers.probe, []

    def look_then_taken(path, wait=0.0):
        held = real_probe(path, wait)
        if Path(path) == claim and not taken:     # a run.py reaches the run right after clean's look
            old = claim.stat().st_mtime
            taken.append(stack.enter_context(identity_claim(out / "runs", ("a run",), lambda *args: None)))
            os.utime(claim, (old, old))           # as before its holder's note: clean's grace does not save it
        return held

    monkeypatch.setattr(writers, "probe", look_then_taken)
    monkeypatch.setattr(writers, "LOOK_WAIT_S", 0.0)     # a held claim is not waited for: its run.py trains on
    with contextlib.ExitStack() as stack:
        assert main(["clean", "--results", str(out)]) == 0
        assert taken == [False] and claim.exists() and probe(claim) is True
        assert take(claim) is None                       # a third run.py would wait on it
    assert capsys.readouterr().out.splitlines() == [f"removed 0 unfinished run folder(s) from {out / 'runs'}"]


def test_a_free_lock_whose_name_is_made_afresh_before_it_is_locked_is_left_to_its_new_holder(tmp_path, monkeypatch):
    """`remove_free` opens the lock file, then locks it. Between the two, its holder removes it and another process
    makes it afresh and holds it (identity_claim's way): the lock won is on a file of no name, and the fresh claim
    under that name is left, held; a plain free lock is removed, and a held one left."""
    import fcntl

    from mmsa_atsuko.lock_files import probe, remove_free
    free, held = tmp_path / "free.lock", tmp_path / "held.lock"
    free_lock(free, 0o644)
    free_lock(held, 0o644)
    with FileLock(held):
        assert remove_free(held) is False and held.exists()
    assert remove_free(free) is True and not free.exists()
    assert remove_free(free) is None

    claim = tmp_path / "claim.lock"
    free_lock(claim, 0o644)
    old_inode, real_flock, fresh = claim.stat().st_ino, fcntl.flock, []

    def made_afresh_first(fd, operation):
        if not fresh and os.fstat(fd).st_ino == old_inode:
            claim.unlink()                                # its holder removes it
            fresh.append(FileLock(claim))
            fresh[0].acquire()                            # another process makes it afresh and holds it
        return real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", made_afresh_first)
    try:
        assert remove_free(claim) is None
        assert claim.exists() and claim.stat().st_ino != old_inode and probe(claim) is True
    finally:
        fresh[0].release()
