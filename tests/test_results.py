"""Results store: atomic appends, concurrent writers, kills, MMSA-style CSV cells."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mmsa_atsuko.errors import DataError
from mmsa_atsuko.results import append_mmsa_csv, append_record, mmsa_cell, mmsa_seed_value, read_records

# What the store's reader takes for a run (`store_lines.not_a_run`): a run id and the identity's fields, in their forms.
IDENTITY = {"model": "tfn", "dataset": "mosi", "aligned": False, "seed": 1, "config_hash": "0" * 12,
            "data": "sha256:" + "0" * 64}

WRITER = f"""
import sys
from mmsa_atsuko.results import append_record
out, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(n):
    append_record(out, {{"run_id": f"{{tag}}-{{i}}", **{IDENTITY!r}, "payload": "x" * 5000,
                        "metrics": {{"MAE": i / 7}}}})
"""


def run(run_id: str, **fields) -> dict:
    """A record the store's reader reads as a run, `run_id` first."""
    return {"run_id": run_id, **IDENTITY, **fields}


def line(record: dict) -> bytes:
    return (json.dumps(record) + "\n").encode()


def test_two_processes_appending_never_interleave(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), tag, "150"]) for tag in "ab"]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    lines = (tmp_path / "runs.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b""
    records = [json.loads(line) for line in lines[:-1]]        # every line is whole JSON
    assert sorted(r["run_id"] for r in records) == sorted(f"{t}-{i}" for t in "ab" for i in range(150))


def test_killed_writer_loses_only_its_last_record_and_the_next_append_repairs_the_file(tmp_path):
    """SIGKILL can stop a write at a page boundary (a 5 KB record spans two pages), so the file
    may end in a fragment; readers skip it and the next append cuts it off."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), "k", "100000"])
    deadline = time.time() + 30
    while not (tmp_path / "runs.jsonl").exists() or (tmp_path / "runs.jsonl").stat().st_size < 200_000:
        assert time.time() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    raw = (tmp_path / "runs.jsonl").read_bytes()
    whole, tail = raw[:raw.rfind(b"\n") + 1], raw[raw.rfind(b"\n") + 1:]
    records = [json.loads(line) for line in whole.split(b"\n")[:-1]]
    assert len(records) >= 20 and [r["run_id"] for r in records] == [f"k-{i}" for i in range(len(records))]
    # The kill may (rarely) fall between a record's last brace and its newline: then the
    # record is whole and stays.
    try:
        complete = isinstance(json.loads(tail), dict)
    except ValueError:
        complete = False
    assert read_records(tmp_path) == records + ([json.loads(tail)] if complete else [])
    append_record(tmp_path, {"run_id": "after"})
    kept = whole + (tail + b"\n" if complete else b"")
    assert (tmp_path / "runs.jsonl").read_bytes() == kept + b'{"run_id": "after"}\n'


def test_a_torn_fragment_is_skipped_by_readers_and_cut_off_by_the_next_append(tmp_path):
    append_record(tmp_path, run("a"))
    with open(tmp_path / "runs.jsonl", "ab") as f:
        f.write(b'{"run_id": "tor')
    assert [r["run_id"] for r in read_records(tmp_path)] == ["a"]
    append_record(tmp_path, run("b"))
    assert (tmp_path / "runs.jsonl").read_bytes() == line(run("a")) + line(run("b"))


def test_a_last_record_without_its_newline_is_kept_and_completed(tmp_path):
    """A hand-merged store can end in a whole record with no newline: it is a record, not a
    fragment (no proper prefix of a JSON object is one), so nothing is lost."""
    (tmp_path / "runs.jsonl").write_bytes(line(run("a")) + line(run("b", metrics={"MAE": 0.5}))[:-1])
    assert [r["run_id"] for r in read_records(tmp_path)] == ["a", "b"]
    append_record(tmp_path, run("c"))
    assert (tmp_path / "runs.jsonl").read_bytes() == (
        line(run("a")) + line(run("b", metrics={"MAE": 0.5})) + line(run("c")))
    # Lines that are JSON but not an object are not records either.
    with open(tmp_path / "runs.jsonl", "ab") as f:
        f.write(b"[1, 2]\n3\n")
    assert [r["run_id"] for r in read_records(tmp_path)] == ["a", "b", "c"]


def test_a_fragment_with_no_whole_line_before_it_is_cut_to_nothing(tmp_path):
    (tmp_path / "runs.jsonl").write_bytes(b"x" * 200_000)     # longer than one backward read
    append_record(tmp_path, {"run_id": "a"})
    assert (tmp_path / "runs.jsonl").read_bytes() == b'{"run_id": "a"}\n'


def test_full_precision_and_nan_as_null(tmp_path):
    append_record(tmp_path, run("nan", metrics={"MAE": 1 / 3, "Corr": float("nan")}, n=np.float64(0.1)))
    (rec,) = read_records(tmp_path)
    assert rec["metrics"]["MAE"] == 1 / 3
    assert rec["metrics"]["Corr"] is None
    assert rec["n"] == 0.1


def test_numpy_values_in_a_record_are_stored_as_python_values(tmp_path):
    # json.dumps refuses np.bool_ and arrays; a record holding one must still be appended whole.
    append_record(tmp_path, run("np", flag=np.bool_(True), count=np.int64(3),
                                curve=np.array([0.5, np.nan], np.float32), r=np.float32(np.inf)))
    (record,) = read_records(tmp_path)
    assert record == run("np", flag=True, count=3, curve=[0.5, None], r=None)
    assert type(record["flag"]) is bool


def test_a_symlinked_store_is_refused_where_the_os_reports_emlink(tmp_path, monkeypatch):
    # FreeBSD's O_NOFOLLOW fails with EMLINK, not Linux's ELOOP; the refusal must not depend on it.
    import errno
    import mmsa_atsuko.errors
    from mmsa_atsuko import atomic
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (tmp_path / "runs.jsonl").symlink_to(victim)

    def freebsd_open(path, flags, mode=0o777):
        raise OSError(errno.EMLINK, "Too many links", str(path))
    monkeypatch.setattr(atomic.os, "open", freebsd_open)
    for open_it in (atomic.open_append, atomic.open_new):
        with pytest.raises(mmsa_atsuko.errors.DataError, match="symbolic link"):
            open_it(tmp_path / "runs.jsonl")
    assert victim.read_text() == "keep"


@pytest.mark.parametrize("store", ["runs.jsonl", "normal/sims.csv"])
def test_an_append_never_goes_to_a_file_of_several_names(tmp_path, store):
    """A store that is a hard link (planted, or a `cp -al` copy of the results folder) is the same file as its
    other name: before, an append added the line there too, and the repair of a killed writer's fragment
    cut off that file's unfinished last line ("unfinished" below). Now the append is one DataError line."""
    out = tmp_path / "results"
    (out / "normal").mkdir(parents=True)
    other = tmp_path / "elsewhere.txt"
    other.write_bytes(b"precious\nunfinished")
    os.link(other, out / store)
    with pytest.raises(DataError, match=rf"^{out / store} is a file of 2 names \(a hard link\), and appending to it "
                                        r"would change it under its other names too; make it a file of its own"):
        if store == "runs.jsonl":
            append_record(out, {"run_id": "r", "metrics": {"MAE": 0.5}})
        else:
            keys = ["Mult_acc_2", "Mult_acc_3", "Mult_acc_5", "F1_score", "MAE", "Corr", "Loss"]
            append_mmsa_csv(out, [{"run_id": "r", "model": "tfn", "dataset": "sims", "aligned": False, "seed": 1,
                                   "synthetic": False, "metrics": dict.fromkeys(keys, 0.5), "config": {},
                                   "config_hash": "h",        # MMSA's SIMS file: normal/sims.csv
                                   "data": "sha256:c9e20c13ec0454d98bb9c1e520e490c75146bfa2dfeeea78d84de047dbdd442f"}])
    assert other.read_bytes() == b"precious\nunfinished"


def test_mmsa_cell_matches_mmsa_formula():
    # mean 0.85 -> 85.0; population std of (0.8, 0.9) is 0.05 -> 5.0 (sample std would be 7.07)
    assert mmsa_cell([0.8, 0.9]) == "(85.0, 5.0)"
    # mean 0.70803 -> 70.8; std 0 -> 0.0
    assert mmsa_cell([0.70803, 0.70803]) == "(70.8, 0.0)"


def mmsa_reference_cell(raw_per_seed, loss=False):
    """MMSA's lines, standalone: metricsTop.py returns round(x, 4) of np.float64 values (the trainers
    round(eval_loss, 4) of a Python float), and MMSA_run writes round(np.mean(values)*100, 2) and
    round(np.std(values)*100, 2), both np.float64 (thuiar/MMSA a94e65d, src/MMSA/run.py)."""
    values = [round(float(x), 4) if loss else round(np.float64(x), 4) for x in raw_per_seed]
    return str((float(round(np.mean(values) * 100, 2)), float(round(np.std(values) * 100, 2))))


def test_mmsa_cell_rounds_each_seed_then_the_mean_as_numpy_does():
    # Per-seed rounding first: MMSA averages 0.1234, 0.1234, 0.1235 (mean 0.123433 -> 12.34);
    # the full-precision mean 0.1234527 gave 12.35.
    raw = [0.123449, 0.123449, 0.12346]
    assert mmsa_cell([mmsa_seed_value("sims", "MAE", v) for v in raw]) == "(12.34, 0.0)" == mmsa_reference_cell(raw)
    # NumPy's rounding of the np.float64 mean: 0.67895 * 100 = 67.895 (binary 67.89499999...):
    # round(np.float64(...), 2) scales to 6789.5 and rints half to even -> 67.9; Python's round said 67.89.
    assert mmsa_cell([0.6789, 0.6790]) == "(67.9, 0.01)" == mmsa_reference_cell([0.6789, 0.6790])
    # The same tie on a seed: 0.12345 (binary 0.123450000000000004) is 0.1234 to NumPy, 0.1235 to Python.
    assert mmsa_seed_value("mosi", "Non0_acc_2", 0.12345) == 0.1234
    assert mmsa_seed_value("mosi", "Loss", 0.12345) == 0.1235          # eval_loss is a Python float
    assert mmsa_seed_value("mintrec", "f1", 0.123456789) == 0.123456789  # MIntRec does not round
    rng = np.random.default_rng(3)
    for _ in range(2000):
        raw = rng.uniform(0.0, 1.0, int(rng.integers(1, 6)))
        for key in ("MAE", "Loss"):
            ours = mmsa_cell([mmsa_seed_value("mosi", key, v) for v in raw])
            assert ours == mmsa_reference_cell(raw, loss=key == "Loss"), (key, raw)




def test_a_record_keeps_its_data_path_absolute_outside_its_identity(tmp_path, monkeypatch):
    """A path typed relative to a working folder the record does not keep pointed nowhere from another folder; the
    record keeps it absolute (its folder resolved, its own name as given), and a record from before, relative, is
    the same run."""
    import dataclasses
    from datetime import datetime
    from types import SimpleNamespace

    from mmsa_atsuko.results import identity
    from mmsa_atsuko.results.record import ok_record
    from tests.conftest import make_dataset
    (tmp_path / "work").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "v2.pkl").write_bytes(b"x")
    (tmp_path / "data" / "my.pkl").symlink_to("v2.pkl")
    (tmp_path / "here").symlink_to(tmp_path / "work")
    monkeypatch.chdir(tmp_path / "here")
    result = SimpleNamespace(test=SimpleNamespace(metrics={"MAE": 0.5}), valid={}, best_epoch=1, epochs_run=1,
                             steps_per_s=1.0)
    spec = make_dataset(n=(4, 2, 2)).spec
    records = {typed: ok_record("r", model="tfn", seed=1, preset=None, config={},
                                spec=dataclasses.replace(spec, path=typed), result=result, device="cpu",
                                started=datetime(2026, 1, 1), wall_time_s=1.0, run_dir="runs/r", git_commit=None,
                                checkpoint="best.pt", torch_threads=1, torch_version="x", device_name="cpu",
                                peak_memory_mb=1.0, precision="fp32", deterministic=True)
               for typed in ("../data/my.pkl", str(tmp_path / "data" / "my.pkl"), "../data")}
    real = os.path.realpath(tmp_path)
    assert records["../data/my.pkl"]["data_path"] == f"{real}/data/my.pkl"     # not v2.pkl: the link's name stays
    assert records[str(tmp_path / "data" / "my.pkl")]["data_path"] == f"{real}/data/my.pkl"
    assert records["../data"]["data_path"] == f"{real}/data"
    old = records["../data/my.pkl"] | {"data_path": "my.pkl"}
    assert identity(old) == identity(records["../data/my.pkl"]) == identity(records["../data"])
