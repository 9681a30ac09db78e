"""A results folder (and a cache) several users share: what the toolkit makes there follows the folder's mode, so a
second user of a group-writable folder appends to the store and the MMSA CSVs and takes their locks."""
import contextlib
import os
import stat
import subprocess
import sys
import tempfile
import shutil
from pathlib import Path

import pytest

NOBODY = 65534
needs_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                                reason="acting as a second user needs root")

# What nobody runs, in a process of its own: every module it needs imported as root (the interpreter's library may
# be root's alone), then the process is nobody's, umask 022 as most users have it.
AS_NOBODY = """
import os, sys
from pathlib import Path
from mmsa_atsuko.results import append_mmsa_csv, append_record, read_records
from mmsa_atsuko.cache import sha256_of
os.setgroups([])
os.setgid({nobody})
os.setuid({nobody})
os.umask(0o022)
out = Path(sys.argv[1])
record = read_records(out)[0]
other = dict(record, run_id=record["run_id"][:-6] + "bbbbbb")     # another run: the same run's row is written once
append_record(out, other)
append_mmsa_csv(out, [other], echo=lambda line: None)
sha256_of(sys.argv[2])
""".format(nobody=NOBODY)


def _modes(out: Path, cache: Path) -> dict:
    files = [out / "runs.jsonl", out / "runs.jsonl.lock", out / "normal", *sorted((out / "normal").iterdir()),
             out / "runs", cache / "sha256.json.lock"]
    return {str(p.relative_to(p.parent.parent)): stat.S_IMODE(p.stat().st_mode) for p in files}


@contextlib.contextmanager
def _group_results(monkeypatch):
    """A results folder of mode 2775, root's and nobody's group's, with a cache of its own, in a fresh folder all may
    enter (removed after): (that folder, the results folder, the cache)."""
    base = Path(tempfile.mkdtemp())
    try:
        base.chmod(0o777)
        out, cache = base / "res", base / "cache"
        out.mkdir()
        os.chown(out, 0, NOBODY)
        out.chmod(0o2775)
        monkeypatch.setenv("MMSA_ATSUKO_CACHE", str(cache))
        yield base, out, cache
    finally:
        shutil.rmtree(base)


@contextlib.contextmanager
def _writable_results():
    """A results folder and its runs/ writable by all (0777), in a fresh folder (removed after): (that folder, the
    results folder)."""
    base = Path(tempfile.mkdtemp())
    try:
        base.chmod(0o777)
        out = base / "res"
        (out / "runs").mkdir(parents=True)
        for folder in (out, out / "runs"):
            folder.chmod(0o777)
        yield base, out
    finally:
        shutil.rmtree(base)


@needs_root
@pytest.mark.parametrize("folder_mode", [0o2775, 0o755])
def test_a_second_user_of_a_group_folder_appends_to_the_store_and_csv_and_hashes(folder_mode, monkeypatch):
    """root's run.py (umask 022) trains into a results folder of mode 2775 owned by root and nobody's group, with
    a cache folder alike: the store, the CSV, their locks and the cache's sha256.json.lock are made 0664, runs/ and
    normal/ 2775, and nobody's process appends a record, a CSV row, and takes the hashes' lock. Before, all were
    0644 (runs/ and normal/ 2755): nobody's append was a PermissionError on runs.jsonl.lock. In a private folder
    (0755) they stay 0644: no other user may write into them."""
    import mmsa_atsuko
    base = Path(tempfile.mkdtemp())
    try:
        base.chmod(0o755)
        out, cache = base / "res", base / "cache"
        for folder in (out, cache):
            folder.mkdir()
            os.chown(folder, 0, NOBODY)
            folder.chmod(folder_mode)
        monkeypatch.setenv("MMSA_ATSUKO_CACHE", str(cache))
        hashed = base / "hashed.txt"
        hashed.write_text("x")
        old = os.umask(0o022)
        try:
            mmsa_atsuko.run("tfn", "mosi", seeds=[1], synthetic=True, preset="small", max_epochs=1, out=out,
                            quiet=True, echo=lambda line: None)
        finally:
            os.umask(old)
        group = folder_mode & 0o020 != 0
        file_mode, folder_made = (0o664, 0o2775) if group else (0o644, 0o755)
        assert _modes(out, cache) == {"res/runs.jsonl": file_mode, "res/runs.jsonl.lock": file_mode,
                                      "res/normal": folder_made, "normal/mosi-synthetic.csv": file_mode,
                                      "normal/mosi-synthetic.csv.lock": file_mode, "res/runs": folder_made,
                                      "cache/sha256.json.lock": file_mode}
        nobody = subprocess.run([sys.executable, "-c", AS_NOBODY, str(out), str(hashed)], capture_output=True,
                                text=True, env=dict(os.environ, MMSA_ATSUKO_CACHE=str(cache)))
        if group:
            assert nobody.returncode == 0, nobody.stderr
            assert len((out / "runs.jsonl").read_text().splitlines()) == 2
            assert len((out / "normal" / "mosi-synthetic.csv").read_text().splitlines()) == 3
        else:
            assert "PermissionError" in nobody.stderr and len((out / "runs.jsonl").read_text().splitlines()) == 1
    finally:
        shutil.rmtree(base)


@needs_root
def test_another_users_dead_run_folder_is_counted_as_dead_not_as_running(monkeypatch, capsys):
    """root's run was killed: its .partial folder (root's, 0755) holds a free run.lock of 0644, which nobody may not
    open for writing and so may not take. nobody's `clean` removes nothing and says it kept one dead run of another
    user's, and the count of unfinished runs (run.py's closing note) finds it, both having looked at the lock
    read-only. Before, a lock nobody could not take counted as held: 'kept 1 of run(s) still running', and the
    note counted nothing."""
    from filelock import FileLock
    from mmsa_atsuko.cli import main
    from mmsa_atsuko.run_folders import dead_folders
    with _writable_results() as (base, out):
        dead = out / "runs" / ".tfn-mosi-s1-20260101T000000-abcdef.partial"
        dead.mkdir()
        killed = FileLock(dead / "run.lock", mode=0o644)
        killed.acquire()
        killed.release()
        assert main(["clean", "--results", str(base)]) == 0          # every module clean needs, imported as root
        capsys.readouterr()
        os.setegid(NOBODY)
        os.seteuid(NOBODY)
        try:
            found = dead_folders(out)
            assert main(["clean", "--results", str(out)]) == 0
        finally:
            os.seteuid(0)
            os.setegid(0)
        assert found == [dead] and dead.exists()
        assert capsys.readouterr().out == (f"removed 0 unfinished run folder(s) from {out / 'runs'}; kept 1 of "
                                           f"unfinished runs that no process runs, which this user may not take "
                                           f"(another user's: that user, or root, removes them)\n")


def _as_nobody(main, argv) -> int:
    """`main(argv)` with nobody's effective ids (every module it needs imported as root before)."""
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        return main(argv)
    finally:
        os.seteuid(0)
        os.setegid(0)


@needs_root
def test_a_run_made_under_umask_077_is_read_by_the_group_and_an_unreadable_one_is_one_line(monkeypatch, capsys):
    """root's run.py under umask 077 trains into a results folder of mode 2775 (root, nobody's group): runs/ is
    2775, the run folder 2755 and its files 0644, as readable as the results folder, so nobody predicts with the
    run and measures its robustness. Before, the run folder was drwx--S--- and its files 0600: nobody's predict
    was a PermissionError traceback on model.json, robustness one on best.pt. A run folder left so (chmod 2700)
    is one line for each, naming the folder, its owner, its mode and the chmod to ask for, exit 1."""
    import mmsa_atsuko
    from mmsa_atsuko.cli import main
    with _group_results(monkeypatch) as (base, out, cache):
        old = os.umask(0o077)
        try:
            record = mmsa_atsuko.run("tfn", "mosi", seeds=[1], synthetic=True, preset="small", max_epochs=1,
                                     out=out, quiet=True, echo=lambda line: None)[0]
        finally:
            os.umask(old)
        run = out / "runs" / record["run_id"]
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (out / "runs", run, run / "model.json",
                                                                  run / "best.pt", run / "train.log")}
        assert modes == {"runs": 0o2775, run.name: 0o2755, "model.json": 0o644, "best.pt": 0o644,
                         "train.log": 0o644}
        subprocess.run(["chmod", "-R", "a+rX", str(cache)], check=True)     # the features nobody predicts on
        features = record["data_path"]
        predict = ["predict", "--run", record["run_id"], "--results", str(out), "--features", features]
        robustness = ["robustness", "--run", record["run_id"], "--results", str(out), "--out", str(base / "rob")]
        assert main(predict + ["--out", str(base / "p0")]) == 0 and main(robustness) == 0     # imported as root
        capsys.readouterr()
        assert _as_nobody(main, predict + ["--out", str(base / "p1")]) == 0, capsys.readouterr().err
        assert (base / "p1" / "predictions.csv").is_file()
        assert _as_nobody(main, robustness[:-1] + [str(base / "rob1")]) == 0, capsys.readouterr().err
        capsys.readouterr()
        run.chmod(0o2700)                                   # as the old code left it
        line = (f"{run} is not readable by this user: root owns it, mode drwx--S---; ask root to run "
                f"chmod -R g+rX {run}")
        for argv in (predict + ["--out", str(base / "p2")], robustness[:-1] + [str(base / "rob2")]):
            assert _as_nobody(main, argv) == 1
            err = capsys.readouterr().err
            assert err.strip().splitlines() == [f"error: {line}"], err
        assert not (base / "p2").exists()


@needs_root
def test_resume_of_another_users_dead_run_stops_in_one_line(monkeypatch, capsys):
    """root's run was cut in epoch 2 (its folder 2755 holds epoch 1's last.pt, its run.lock 0644) in a results
    folder of mode 2775 (root, nobody's group). nobody's same command with --resume may neither take that run.lock
    nor write in the folder: it stops in one line naming the folder, root and what to do, exit 1, trains nothing
    and leaves the folder. Before: no line, the run trained afresh under a new run id, exit 0."""
    from conftest import die_before_last_pt_of_epoch
    from mmsa_atsuko.cli import main
    with _group_results(monkeypatch) as (base, out, cache):
        argv = ["-m", "tfn", "-d", "mosi", "-s", "1", "--synthetic", "--preset", "small", "--max-epochs", "2",
                "--quiet", "--out", str(out)]
        die_before_last_pt_of_epoch(monkeypatch, 2)
        assert main(argv) == 130
        monkeypatch.undo()
        monkeypatch.setenv("MMSA_ATSUKO_CACHE", str(cache))
        (partial,) = (out / "runs").glob(".*.partial")
        subprocess.run(["chmod", "-R", "a+rwX", str(cache)], check=True)    # the data and its hashes, nobody's too
        before = sorted(entry.name for entry in partial.iterdir())
        capsys.readouterr()
        assert _as_nobody(main, [*argv, "--resume"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"error: --resume cannot continue {partial}: it is root's, and this user may not take its "
                       f"run.lock or write in it; ask root to resume it, or run without --resume to train this run "
                       f"afresh under a new run id"], err
        assert sorted(entry.name for entry in partial.iterdir()) == before and not (out / "runs.jsonl").exists()
        assert [p.name for p in (out / "runs").iterdir() if not p.name.startswith(".")] == []


@needs_root
def test_run_pys_note_on_dead_folders_suggests_clean_only_for_this_users_own():
    """nobody's run.py closes with a note on the dead runs' folders in runs/: root's alone, `clean` (which removes
    this user's alone) is suggested only as root's to run; beside one of nobody's, for nobody's one. Before: "`clean`
    removes them (1 of them another user's ...)", and nobody's clean then removed 0."""
    from filelock import FileLock
    from mmsa_atsuko.run_folders import unfinished_note
    with _writable_results() as (base, out):

        def dead(name):
            folder = out / "runs" / f".tfn-mosi-s1-20260101T000000-{name}.partial"
            folder.mkdir()
            lock = FileLock(folder / "run.lock", mode=0o644)
            lock.acquire()
            lock.release()
        dead("aaaaaa")
        unfinished_note(out)                                   # imported as root
        os.setegid(NOBODY)
        os.seteuid(NOBODY)
        try:
            roots = unfinished_note(out)
            dead("bbbbbb")
            both = unfinished_note(out)
        finally:
            os.seteuid(0)
            os.setegid(0)
        held = f"note: {out / 'runs'} holds"
        clean = f"`python run.py clean --results {out}`"
        assert roots == (f"{held} 1 .partial folder(s) of unfinished runs that no process is running; all another "
                         f"user's: that user, or root, removes them ({clean} as that user)")
        assert both == (f"{held} 2 .partial folder(s) of unfinished runs that no process is running; {clean} removes "
                        f"this user's 1; 1 another user's: that user, or root, removes those")
