"""Two in-process run.py's in one results folder: a run reached by both unrecorded is trained once, and each says
how many records it appended itself."""
import os
import subprocess
import sys
import time
from pathlib import Path

from mmsa_atsuko.results import read_records

# One run.py's call, in a process of its own. With "pause", it holds the run's claim and stops inside training
# until the test lets it go on: the other process then reaches the same run while this one trains it.
RUN_PY = """
import sys, time
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
                echo=lambda line: print(line, flush=True))
"""


def _until(done, what: str, limit_s: float = 300.0) -> None:
    """Wait for `done()` (a process reaching a point); a bound on a hang, not a timed assertion."""
    deadline = time.monotonic() + limit_s
    while not done():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def test_two_run_pys_reaching_one_unrecorded_run_train_it_once(tmp_path):
    """A trains seed 1 (held inside training); B, started meanwhile on the same run and folder, says it waits for
    the process training it, then takes A's record: one record, one run folder, and B trained nothing. Before, both
    had read a store without the run, both trained it, and it was recorded twice."""
    out, flags = tmp_path / "res", tmp_path / "flags"
    flags.mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).parents[1]),
                                                                   os.environ.get("PYTHONPATH")])))
    logs = {name: open(tmp_path / f"{name}.log", "w+") for name in ("a", "b")}
    a = subprocess.Popen([sys.executable, "-c", RUN_PY, str(out), str(flags), "pause"], env=env,
                         stdout=logs["a"], stderr=subprocess.STDOUT)
    _until(lambda: (flags / "training").exists() or a.poll() is not None, "A to start training")
    b = subprocess.Popen([sys.executable, "-c", RUN_PY, str(out), str(flags), "-"], env=env,
                         stdout=logs["b"], stderr=subprocess.STDOUT)
    _until(lambda: "waiting for" in (tmp_path / "b.log").read_text() or b.poll() is not None, "B to wait")
    (flags / "go-on").touch()
    assert a.wait(300) == 0 and b.wait(300) == 0, [(tmp_path / f"{n}.log").read_text() for n in "ab"]
    records = read_records(out)
    assert len(records) == 1, [(tmp_path / f"{n}.log").read_text() for n in "ab"]
    run_id = records[0]["run_id"]
    b_lines = (tmp_path / "b.log").read_text().splitlines()
    claim = b_lines[0].split("(it holds ")[1].split(")")[0]
    assert b_lines == [f"waiting for another process that trains tfn mosi seed 1 into {out} (it holds {claim}): its "
                       f"record is taken when it ends, instead of training the run again",
                       f"skip tfn mosi seed 1: recorded as {run_id} by another process meanwhile"]
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
    assert f"\n1 record(s) appended to {out / 'runs.jsonl'}\n" in printed, printed
    assert [r["seed"] for r in read_records(out)] == [1, 2]
