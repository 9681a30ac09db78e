"""Two in-process run.py's in one results folder: a run reached by both unrecorded is trained once, and each says
how many records it appended itself."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from mmsa_atsuko.results import read_records

# One run.py's call, in a process of its own. With "pause", it holds the run's claim and stops inside training
# until the test lets it go on: the other process then reaches the same run while this one trains it.
RUN_PY = """
import json, sys, time
from pathlib import Path
import mmsa_atsuko
import mmsa_atsuko.api.one_run as one_run
out, flags = Path(sys.argv[1]), Path(sys.argv[2])
real = one_run.train_one

def paused(*args, **kwargs):
    (flags / "training").touch()
    while not (flags / "go-on").exists():
        time.sleep(0.05)
    return real(*args, **kwargs)

if sys.argv[3] == "pause":
    one_run.train_one = paused
mmsa_atsuko.run("tfn", "mosi", seeds=[1], synthetic=True, preset="small", max_epochs=1, out=out, quiet=True,
                echo=lambda line: print(line, flush=True), **json.loads(sys.argv[4] if len(sys.argv) > 4 else "{}"))
"""


def _until(done, what: str, limit_s: float = 300.0) -> None:
    """Wait for `done()` (a process reaching a point); a bound on a hang, not a timed assertion."""
    deadline = time.monotonic() + limit_s
    while not done():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def _env() -> dict:
    """The environment of a process a test starts: this checkout first on its path."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).parents[1]),
                                                                   os.environ.get("PYTHONPATH")])))


def _b_waiting_on_a(tmp_path, b_options: dict | None = None):
    """A trains seed 1 at fp32, held inside training until `flags/go-on` exists; B, with `b_options`, reaches the same
    run meanwhile and says it waits. Returns the results folder, the flags folder and the processes A and B (their
    output in tmp_path's a.log and b.log)."""
    out, flags = tmp_path / "res", tmp_path / "flags"
    flags.mkdir()
    logs = {name: open(tmp_path / f"{name}.log", "w+") for name in ("a", "b")}
    a = subprocess.Popen([sys.executable, "-c", RUN_PY, str(out), str(flags), "pause"], env=_env(),
                         stdout=logs["a"], stderr=subprocess.STDOUT)
    _until(lambda: (flags / "training").exists() or a.poll() is not None, "A to start training")
    b = subprocess.Popen([sys.executable, "-c", RUN_PY, str(out), str(flags), "-", json.dumps(b_options or {})],
                         env=_env(), stdout=logs["b"], stderr=subprocess.STDOUT)
    _until(lambda: "waiting for" in (tmp_path / "b.log").read_text() or b.poll() is not None, "B to wait")
    return out, flags, a, b


def test_two_run_pys_reaching_one_unrecorded_run_train_it_once(tmp_path):
    """A trains seed 1 (held inside training); B, started meanwhile on the same run and folder, says it waits for
    the process training it, then takes A's record: one record, one run folder, and B trained nothing. Before, both
    had read a store without the run, both trained it, and it was recorded twice."""
    out, flags, a, b = _b_waiting_on_a(tmp_path)
    (flags / "go-on").touch()
    assert a.wait(300) == 0 and b.wait(300) == 0, [(tmp_path / f"{n}.log").read_text() for n in "ab"]
    records = read_records(out)
    assert len(records) == 1, [(tmp_path / f"{n}.log").read_text() for n in "ab"]
    run_id = records[0]["run_id"]
    b_lines = (tmp_path / "b.log").read_text().splitlines()
    claim = b_lines[0].split("(it holds ")[1].split(")")[0]
    assert b_lines == [f"waiting for another process that trains tfn mosi seed 1 into {out} (it holds {claim}): its "
                       f"record is taken when it ends, instead of training the run again",
                       f"skip tfn mosi seed 1: recorded as {run_id} by another process meanwhile (--rerun trains it "
                       f"again)"]
    assert sorted(p.name for p in (out / "runs").iterdir()) == [run_id]      # B made no run folder; no claim left


def test_the_count_of_records_appended_is_this_calls_alone(tmp_path, monkeypatch, capsys):
    """run.py of seeds 1 and 2: while it starts, another process records seed 1 (its record appended after this
    command looked at the store, before the call read it). The call skips seed 1 and trains seed 2: '1 record(s)
    appended'. Before, every returned record whose run id the store did not hold when the command began was
    counted, the other process's too: '2 record(s) appended'."""
    import mmsa_atsuko
    import mmsa_atsuko.api.pipeline as pipeline
    from mmsa_atsuko.cli import main
    from mmsa_atsuko.results import append_record
    (others,) = mmsa_atsuko.run("tfn", "mosi", seeds=[1], synthetic=True, preset="small", max_epochs=1,
                                out=tmp_path / "elsewhere", quiet=True, echo=lambda line: None)
    real = pipeline.recover

    def another_process_records_seed_1(out):
        append_record(out, others)
        return real(out)

    monkeypatch.setattr(pipeline, "recover", another_process_records_seed_1)
    out = tmp_path / "res"
    assert main(["-m", "tfn", "-d", "mosi", "-s", "1", "2", "--synthetic", "--preset", "small", "--max-epochs", "1",
                 "--quiet", "--jobs", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (f"\n1 record(s) appended to {out / 'runs.jsonl'}; 1 more by another process while this one ran\n"
            in printed), printed
    assert [r["seed"] for r in read_records(out)] == [1, 2]


def _a_then_b(tmp_path, b_options: dict) -> tuple[Path, list[str]]:
    """A trains seed 1 at fp32 (held inside training); B, with `b_options`, reaches it meanwhile and waits; A is let
    go on. Returns the results folder and B's lines."""
    out, flags, a, b = _b_waiting_on_a(tmp_path, b_options)
    (flags / "go-on").touch()
    assert a.wait(300) == 0 and b.wait(300) == 0, [(tmp_path / f"{n}.log").read_text() for n in "ab"]
    return out, (tmp_path / "b.log").read_text().splitlines()


def test_a_rerun_that_waited_on_a_run_started_before_it_trains_its_own(tmp_path):
    """B asks --rerun --precision bf16 while A trains the run at fp32: A's record, started before B began (and at
    fp32), is not the run B asked for, so B says so and trains it at bf16. Before, B took A's record ('skip ...
    recorded by another process meanwhile'), appended nothing, and dropped its --rerun and --precision."""
    out, b_lines = _a_then_b(tmp_path, {"rerun": True, "precision": "bf16"})
    records = read_records(out)
    assert [r["precision"] for r in records] == ["fp32", "bf16"], b_lines
    assert not any(line.startswith("skip") for line in b_lines), b_lines
    assert b_lines[1] == (f"the other process training tfn mosi seed 1 ended recording it as {records[0]['run_id']}, "
                          f"a run --rerun does not take (it started before this call began, or ran at another "
                          f"precision, kernels or model code than asked): training it here")


def test_a_run_py_that_waited_says_what_differs_in_the_record_it_takes(tmp_path):
    """B asks --precision bf16 (no --rerun) while A trains the run at fp32: B takes A's record as a stored one would
    be taken, and its skip line says, as that one's does, that it ran at fp32. Before, it said nothing of it."""
    out, b_lines = _a_then_b(tmp_path, {"precision": "bf16"})
    (record,) = read_records(out)
    assert b_lines[-1] == (f"skip tfn mosi seed 1: recorded as {record['run_id']} by another process meanwhile, "
                           f"which ran at fp32, not the bf16 asked (precision is not part of a run's identity: "
                           f"--rerun trains it at bf16 in its place, or give another --out)")


HOLDER = """
import sys, time
from pathlib import Path
from mmsa_atsuko.run_folders import identity_claim
runs, flag = Path(sys.argv[1]), Path(sys.argv[2])
with identity_claim(runs, ("a run",), lambda *args: None):
    (runs / "held").touch()
    while not flag.exists():
        time.sleep(0.05)
"""


def test_a_run_py_waiting_on_a_claim_says_every_while_that_it_still_waits_naming_the_holder(tmp_path, monkeypatch):
    """The waiter's first line, then one every CLAIM_HEARTBEAT_S naming the holder as it wrote itself into the claim
    (pid and host), until it ends. Before, nothing followed the first line, however long the wait."""
    import socket

    import mmsa_atsuko.run_folders.lock as lock
    runs = tmp_path / "runs"
    runs.mkdir()
    env = _env()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(runs), str(tmp_path / "go-on")], env=env)
    _until(lambda: (runs / "held").exists() or holder.poll() is not None, "the holder to take the claim")
    monkeypatch.setattr(lock, "CLAIM_HEARTBEAT_S", 0.1)
    calls = []

    def on_wait(path, waited_s, who):
        calls.append((path, waited_s, who))
        if len(calls) == 3:
            (tmp_path / "go-on").touch()       # the holder ends once two heartbeats were said
    with lock.identity_claim(runs, ("a run",), on_wait) as waited:
        assert waited
    assert holder.wait(60) == 0
    named = f"pid {holder.pid} on {socket.gethostname()}"
    assert len(calls) >= 3 and calls[0][1] == 0 and all(c[1] > 0 for c in calls[1:]), calls
    assert all(c[0] == lock.claim_path(runs, ("a run",)) and c[2] == named for c in calls[:3]), calls


def test_a_claim_taken_afresh_while_its_holder_releases_it_stays_held(tmp_path, monkeypatch):
    """A run.py ends its run: it removes its claim's file, still holding it, then releases the lock. Another run.py
    takes the claim afresh (a new file) just before that release: the release leaves the new claim alone, held, so a
    third run.py waits on it. With filelock 3.20.4 to 3.29.4, which setup.py allowed before, the release removed the
    lock file by its name once more, the other's new claim with it: a third run.py then took a claim of its own, and
    two run.py's trained the run (the test fails so when run with one of them first on the path)."""
    import filelock

    import mmsa_atsuko.run_folders.lock as lock
    from mmsa_atsuko.lock_files import probe
    runs = tmp_path / "runs"
    runs.mkdir()
    claim = lock.claim_path(runs, ("a run",))
    other = []

    class TakenAfreshBeforeItsRelease(filelock.FileLock):
        def release(self, *args, **kwargs):
            if not other and self.is_locked and not claim.exists():      # its file removed, its lock still held
                other.append(subprocess.Popen([sys.executable, "-c", HOLDER, str(runs), str(tmp_path / "go-on")],
                                              env=_env()))
                _until(lambda: (runs / "held").exists() or other[0].poll() is not None, "the other to take the claim")
            return super().release(*args, **kwargs)

    monkeypatch.setattr(lock, "FileLock", TakenAfreshBeforeItsRelease)
    try:
        with lock.identity_claim(runs, ("a run",), lambda *args: None):
            pass
        assert other and (runs / "held").exists() and claim.exists() and probe(claim) is True
    finally:
        (tmp_path / "go-on").touch()
        if other:
            assert other[0].wait(60) == 0


def test_a_run_kept_in_its_folder_meanwhile_is_recovered_under_the_claim_not_trained_again(tmp_path, monkeypatch):
    """The process this run.py waited on finished the run but could not append it (its record kept in the run's
    record.json): once the claim is held, the record is folded into the store and taken, not trained again. Here
    the record is kept before the call, and the call's own recovery at its start is skipped, as for one kept after
    that start. Before, the run was trained a second time."""
    import json

    import mmsa_atsuko
    import mmsa_atsuko.api.pipeline as pipeline
    out = tmp_path / "res"
    (record,) = mmsa_atsuko.run("tfn", "mosi", seeds=[1], synthetic=True, preset="small", max_epochs=1, out=out,
                                quiet=True, echo=lambda line: None)
    (out / "runs.jsonl").write_text("")
    (out / "runs" / record["run_id"] / "record.json").write_text(json.dumps(record) + "\n")
    monkeypatch.setattr(pipeline, "recover", lambda out: [])
    lines = []
    (again,) = mmsa_atsuko.run("tfn", "mosi", seeds=[1], synthetic=True, preset="small", max_epochs=1, out=out,
                               quiet=True, echo=lines.append)
    assert again["run_id"] == record["run_id"], lines
    assert [r["run_id"] for r in read_records(out)] == [record["run_id"]]
    assert lines[0] == f"recovered the record of run {record['run_id']} into {out / 'runs.jsonl'}"


def test_a_run_py_whose_holder_was_killed_says_so_and_trains_the_run(tmp_path):
    """A is killed while it trains the run B waits on: B says that A ended without recording it, and trains it.
    Before, B went from its waiting line straight to training, without a word why."""
    out, flags, a, b = _b_waiting_on_a(tmp_path)
    a.kill()
    a.wait(60)
    assert b.wait(300) == 0, (tmp_path / "b.log").read_text()
    b_lines = (tmp_path / "b.log").read_text().splitlines()
    assert b_lines[1] == ("the other process training tfn mosi seed 1 ended without recording it (killed, or it "
                          "failed): training it here"), b_lines
    assert len(read_records(out)) == 1
