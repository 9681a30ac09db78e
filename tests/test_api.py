"""api.jobs.prepare_job / api.run: what a job holds of its data."""
import gc
import re
import weakref
from pathlib import Path

import pytest

import mmsa_atsuko
from conftest import die_before_last_pt_of_epoch, history_scalars, same_scalars, tensorboard_scalars
from mmsa_atsuko.api import one_run
from mmsa_atsuko.api.jobs import prepare_job
from mmsa_atsuko.results import mmsa_cell
from mmsa_atsuko.run_folders import unfinished_runs


def _prepare(model, loaded, **overrides):
    return prepare_job(model, "mosi", aligned=False, data_root=None, feature_path=None, synthetic=True,
                       synthetic_size="small", preset="small", overrides=list(overrides.items()),
                       max_epochs=None, loaded=loaded)


def test_prepare_job_checks_a_model_built_on_the_meta_device_and_still_loads_its_bert(tiny_bert, tmp_path,
                                                                                        monkeypatch):
    """The check build of `prepare_job` initialised every weight of the model only to look at its modules (EMOE at
    the small preset: about 1.1 s a job, a second build beside each seed's own): it builds on the meta device now,
    and the BERT folder's weights are still loaded, so one without the encoder's weights stops the request there,
    before any run folder is made."""
    import shutil

    from safetensors.torch import load_file, save_file

    from mmsa_atsuko.api import jobs
    from mmsa_atsuko.errors import UsageError
    real, devices = jobs.build_model, []

    def spy(*args, **kwargs):
        model = real(*args, **kwargs)
        devices.append({p.device.type for p in model.parameters()})
        return model

    monkeypatch.setattr(jobs, "build_model", spy)
    job = _prepare("misa", {})
    assert devices == [{"meta"}] and job.model == "misa"
    broken = tmp_path / "broken"
    shutil.copytree(tiny_bert, broken)
    weights = load_file(broken / "model.safetensors")
    save_file({k: v for k, v in weights.items() if "encoder.layer.0.output" not in k}, broken / "model.safetensors",
              metadata={"format": "pt"})
    with pytest.raises(UsageError, match=r"the BERT checkpoint at .*broken lacks \d+ encoder weights"):
        _prepare("misa", {}, pretrained=str(broken))


def test_a_bert_model_gets_no_text_features_and_a_feature_model_keeps_them():
    loaded = {}
    misa = _prepare("misa", loaded)
    tfn = _prepare("tfn", loaded)
    full = next(iter(loaded.values()))
    assert full.spec.has_text_features and "text" in full.train.tensors
    for split in misa.data.splits().values():
        assert "text" not in split.tensors and "text_bert" in split.tensors
    assert not misa.data.spec.has_text_features
    # every other tensor is the loaded one, shared rather than copied
    assert misa.data.train.tensors["audio"] is full.train.tensors["audio"]
    assert tfn.data is full


def test_text_features_no_job_reads_are_freed():
    loaded = {}
    job = _prepare("self_mm", loaded)
    text = weakref.ref(next(iter(loaded.values())).train.tensors["text"])
    loaded.clear()
    gc.collect()
    assert text() is None
    assert job.data.train.tensors["audio"].shape[0] == len(job.data.train)


def test_bert_and_feature_models_on_one_dataset_run_in_one_call(tmp_path):
    records = mmsa_atsuko.run(["misa", "tfn"], "mosi", seeds=[1], synthetic=True, preset="small",
                              max_epochs=1, out=tmp_path, quiet=True)
    assert [r["model"] for r in records] == ["misa", "tfn"]
    assert all(r["status"] == "ok" for r in records)


def test_train_log_holds_every_epoch_when_called_from_python(tmp_path):
    """The caller's logging is left alone: root at WARNING still sees no INFO, and the package
    logger has its level, propagation and handlers back afterwards."""
    import logging

    seen = []

    class Collect(logging.Handler):
        def emit(self, record):
            seen.append(record)

    root, package = logging.getLogger(), logging.getLogger("mmsa_atsuko")
    collect, root_level = Collect(), root.level
    root.addHandler(collect)
    root.setLevel(logging.WARNING)
    before = package.level, package.propagate, list(package.handlers)
    try:
        records = mmsa_atsuko.run("tfn", "mosi", seeds=[1], synthetic=True, preset="small",
                                  max_epochs=2, out=tmp_path, quiet=True)
        package.warning("after the run")
    finally:
        root.removeHandler(collect)
        root.setLevel(root_level)
    text = (tmp_path / "runs" / records[0]["run_id"] / "train.log").read_text()
    assert "model=tfn" in text and "epoch 1 " in text and "epoch 2 " in text
    assert not [r for r in seen if r.levelno < logging.WARNING]
    assert [r.getMessage() for r in seen] == ["after the run"]     # forwarding ended with the run
    assert (package.level, package.propagate, list(package.handlers)) == before


def test_a_run_that_raises_leaves_its_traceback_in_train_log_only(tmp_path, monkeypatch):
    import logging

    import pytest
    seen = []

    class Collect(logging.Handler):
        def emit(self, record):
            seen.append(record)

    def broken_fit(*args, **kwargs):
        raise RuntimeError("out of memory at epoch 3")

    monkeypatch.setattr(one_run, "fit", broken_fit)
    collect = Collect()
    logging.getLogger().addHandler(collect)
    try:
        with pytest.raises(RuntimeError, match="epoch 3"):
            mmsa_atsuko.run("tfn", "mosi", seeds=[1], synthetic=True, preset="small", out=tmp_path, quiet=True)
    finally:
        logging.getLogger().removeHandler(collect)
    (partial,) = (tmp_path / "runs").glob(".*.partial")
    text = (partial / "train.log").read_text()
    assert "run failed" in text and "Traceback" in text and "out of memory at epoch 3" in text
    assert not any(r.levelno >= logging.ERROR for r in seen)


def test_the_code_version_is_read_once_per_process_before_training(tmp_path, monkeypatch):
    """A commit made while a run trains must not be credited to it: git is asked once, at the
    first call (run and sweep make it before anything trains), and the run's log header names it."""
    import subprocess

    from mmsa_atsuko.code_version import git_commit

    git_commit.cache_clear()
    try:
        before = git_commit()
        real_run = subprocess.run
        monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("git asked again"))
        assert git_commit() == before
        monkeypatch.setattr(subprocess, "run", real_run)
        (record,) = mmsa_atsuko.run("tfn", "mosi", seeds=[1], synthetic=True, preset="small", max_epochs=1,
                                    out=tmp_path, quiet=True)
        assert record["git_commit"] == before
        header = (tmp_path / "runs" / record["run_id"] / "train.log").read_text().splitlines()[0]
        assert header.endswith(f"code={before}")
    finally:
        git_commit.cache_clear()


def test_an_untracked_file_is_dirty_code_only_where_code_lives(tmp_path, monkeypatch):
    """`git status --untracked-files=no` called a checkout clean with a new models/baselines/x.py in it, which the
    package imports (every module of baselines/); a file in results/ or a note is not code."""
    import subprocess

    from mmsa_atsuko import code_version

    def git(*args):
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path,
                              capture_output=True, text=True, check=True).stdout.strip()
    git("init", "-q")
    for name in ("mmsa_atsuko/code_version.py", "mmsa_atsuko/models/baselines/tfn.py", "constraints.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("# code\n")
    git("add", "-A")
    git("commit", "-q", "-m", "c")
    head = git("rev-parse", "HEAD")
    monkeypatch.setattr(code_version, "__file__", str(tmp_path / "mmsa_atsuko" / "code_version.py"))

    def commit():
        code_version.git_commit.cache_clear()
        return code_version.git_commit()
    try:
        (tmp_path / "results").mkdir()
        (tmp_path / "results" / "runs.jsonl").write_text("{}\n")
        (tmp_path / "notes.md").write_text("a note\n")
        assert commit() == head
        (tmp_path / "mmsa_atsuko/models/baselines" / "mine.py").write_text("# a model of my own\n")
        assert commit() == head + "+dirty"
        (tmp_path / "mmsa_atsuko/models/baselines" / "mine.py").unlink()
        assert commit() == head
        (tmp_path / "constraints.txt").write_text("torch==0\n")       # a tracked change counts wherever it is
        assert commit() == head + "+dirty"
    finally:
        code_version.git_commit.cache_clear()


# --------------------------------------------------------------------------------------
# Unfinished runs: --resume continues one exactly; without it a leftover of the same run is removed
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["tfn", "self_mm"])     # Self-MM: label buffers outside state_dict, 5 LR groups
def test_a_resumed_run_ends_exactly_as_the_uninterrupted_one(tmp_path, monkeypatch, model):
    import json

    kw = dict(seeds=[1], synthetic=True, preset="small", max_epochs=4, config={"early_stop": 10}, quiet=True)
    (whole,) = mmsa_atsuko.run(model, "mosi", out=tmp_path / "whole", **kw)
    die_before_last_pt_of_epoch(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        mmsa_atsuko.run(model, "mosi", out=tmp_path / "cut", **kw)
    monkeypatch.undo()
    (partial,) = (tmp_path / "cut" / "runs").glob(".*.partial")
    assert [h["epoch"] for h in json.loads((partial / "history.json").read_text())] == [1, 2, 3]
    run_stamp = partial.name.split("-")[-2]                 # the run id holds its start, 20261206T080000
    partial_started = (f"{run_stamp[:4]}-{run_stamp[4:6]}-{run_stamp[6:8]}T{run_stamp[9:11]}:{run_stamp[11:13]}:"
                       f"{run_stamp[13:15]}+00:00")
    (resumed,) = mmsa_atsuko.run(model, "mosi", out=tmp_path / "cut", resume=True, **kw)

    assert resumed["run_id"] == partial.name[1:-len(".partial")]      # continued in place, not started again
    assert whole["epochs_run"] == 4 and not list((tmp_path / "cut" / "runs").glob(".*"))
    for key in ("metrics", "valid_metrics", "best_epoch", "epochs_run", "config_hash"):
        assert repr(resumed[key]) == repr(whole[key]), key          # exact: repr round-trips every float
    folder = tmp_path / "cut" / "runs" / resumed["run_id"]
    history = (folder / "history.json").read_text()
    assert history == (tmp_path / "whole" / "runs" / whole["run_id"] / "history.json").read_text()
    assert not (folder / "last.pt").exists() and not (folder / "run.lock").exists()
    assert not (folder / "run.json").exists()
    log = (folder / "train.log").read_text()
    # The best so far as epoch 2's line gave it (4 decimals), not the float's repr ('best 0.4639929798492698').
    said = re.search(r"resumed after epoch 2 \(best (\S+) at epoch (\d+)\)", log)
    assert said and re.search(r" epoch 2  train .* \(best (\S+) at epoch (\d+)\)", log).groups() == said.groups()
    assert re.fullmatch(r"\d+\.\d{4}", said[1]), said[0]
    assert "earlier_attempts" not in whole
    # The first start's code version is kept: the record names each process that trained the run.
    assert resumed["earlier_attempts"] == [{"git_commit": resumed["git_commit"], "started_at": partial_started,
                                            "torch_threads": 1,       # conftest runs every test on 1 thread
                                            "precision": "fp32", "deterministic": True}]


def test_a_resume_at_another_precision_or_kernels_is_refused_in_one_line_and_each_attempt_names_how_it_ran(
        tmp_path, monkeypatch):
    """A bf16 --nondeterministic run killed at epoch 3 and resumed with the defaults recorded fp32 and deterministic
    kernels, and its earlier attempt said neither: its numbers mixed two protocols under the name of one."""
    from mmsa_atsuko.errors import ResumeRefused

    kw = dict(seeds=[1], synthetic=True, preset="small", max_epochs=4, out=tmp_path, quiet=True)
    die_before_last_pt_of_epoch(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        mmsa_atsuko.run("tfn", "mosi", precision="bf16", deterministic=False, **kw)
    monkeypatch.undo()
    (partial,) = (tmp_path / "runs").glob(".*.partial")
    history = (partial / "history.json").read_text()
    for precision, deterministic in (("fp32", True), ("bf16", True), ("fp32", False)):
        with pytest.raises(ResumeRefused) as refused:
            mmsa_atsuko.run("tfn", "mosi", precision=precision, deterministic=deterministic, resume=True, **kw)
        line = str(refused.value)
        assert "\n" not in line and line.startswith(f"{partial} trained its first epochs at bf16 with "
                                                     f"nondeterministic kernels, and this resume asks at {precision}")
        assert "resume it with --precision bf16 --nondeterministic" in line
    # Refused before anything was touched: the folder is as the killed run left it, and no record was written.
    assert (partial / "history.json").read_text() == history
    assert not (tmp_path / "runs.jsonl").exists() or not (tmp_path / "runs.jsonl").read_text().strip()
    (record,) = mmsa_atsuko.run("tfn", "mosi", precision="bf16", deterministic=False, resume=True, **kw)
    assert record["run_id"] == partial.name[1:-len(".partial")]
    assert (record["precision"], record["deterministic"]) == ("bf16", False)
    assert [(a["precision"], a["deterministic"]) for a in record["earlier_attempts"]] == [("bf16", False)]


@pytest.mark.parametrize("threads_then, threads_now", [(1, 2), (1, 1)])
def test_a_resume_under_other_threads_is_one_warning_line_and_each_attempt_names_its_threads(
        tmp_path, monkeypatch, caplog, threads_then, threads_now):
    kw = dict(seeds=[1], synthetic=True, preset="small", max_epochs=2, out=tmp_path, quiet=True)
    die_before_last_pt_of_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        mmsa_atsuko.run("tfn", "mosi", threads=threads_then, **kw)
    monkeypatch.undo()
    caplog.clear()
    with caplog.at_level("WARNING", logger="mmsa_atsuko"):
        (record,) = mmsa_atsuko.run("tfn", "mosi", threads=threads_now, resume=True, **kw)
    assert [a["torch_threads"] for a in record["earlier_attempts"]] == [threads_then]
    assert record["torch_threads"] == threads_now and record["status"] == "ok"
    warned = [r.getMessage() for r in caplog.records if "torch thread" in r.getMessage()]
    if threads_then == threads_now:
        assert warned == []
    else:
        (line,) = warned
        assert f"with {threads_now} torch thread(s), where its earlier epochs ran with {threads_then}" in line
        assert "\n" not in line


def test_a_resumed_run_shows_each_epoch_once_in_tensorboard(tmp_path, monkeypatch):
    import json
    pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
    kw = dict(seeds=[1], synthetic=True, preset="small", max_epochs=3, out=tmp_path, quiet=True, tensorboard=True)
    die_before_last_pt_of_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        mmsa_atsuko.run("tfn", "mosi", **kw)
    monkeypatch.undo()
    (record,) = mmsa_atsuko.run("tfn", "mosi", resume=True, **kw)
    folder = tmp_path / "runs" / record["run_id"]
    # Epoch 2's scalars, written before the run died, are hidden by the resumed run's own.
    got = tensorboard_scalars(folder / "tensorboard")
    assert [step for step, _ in got["valid/Loss"]] == [1, 2, 3]
    assert same_scalars(got, history_scalars(json.loads((folder / "history.json").read_text())))


def test_a_leftover_of_the_same_run_is_removed_and_no_other(tmp_path, monkeypatch, caplog):
    import json
    import os

    from filelock import FileLock

    kw = dict(synthetic=True, preset="small", max_epochs=2, out=tmp_path, quiet=True)
    die_before_last_pt_of_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        mmsa_atsuko.run("tfn", "mosi", seeds=[1], **kw)
    monkeypatch.undo()
    runs = tmp_path / "runs"
    (leftover,) = runs.glob(".*.partial")
    named = json.loads((leftover / "run.json").read_text())
    model, dataset, aligned, seed, config_hash, data = named["identity"]
    assert (model, dataset, aligned, seed) == ("tfn", "mosi", False, 1) and named["pid"] == os.getpid()

    def fake(name, position, value):        # a .partial folder with the leftover's identity, changed
        folder = runs / f".{name}.partial"
        folder.mkdir()
        changed = list(named["identity"])
        changed[position] = value
        (folder / "run.json").write_text(json.dumps({**named, "identity": changed}))
        return folder

    other_seed, other_config, live_twin = fake("s2", 3, 2), fake("cfg", 4, "0" * 12), fake("twin", 3, 1)
    live = FileLock(live_twin / "run.lock")
    live.acquire()                           # a run of the same identity still running (a parallel sweep)
    try:
        with caplog.at_level("WARNING", logger="mmsa_atsuko"):
            (record,) = mmsa_atsuko.run("tfn", "mosi", seeds=[1], **kw)
        assert not leftover.exists() and record["run_id"] not in leftover.name
        assert other_seed.exists() and other_config.exists() and live_twin.exists()
        (line,) = [r.getMessage() for r in caplog.records if "removed" in r.getMessage()]
        assert str(leftover) in line
        assert sorted(f.name for f in unfinished_runs(tmp_path)) == [".cfg.partial", ".s2.partial"]
    finally:
        live.release()
    assert len(list(unfinished_runs(tmp_path))) == 3      # the twin's process is gone now


def test_a_run_killed_between_making_its_folder_and_renaming_it_is_removed_by_its_next_start(tmp_path, monkeypatch,
                                                                                              caplog):
    """The `.X.partial.new` folder a run was killed in (after naming itself in run.json, before the rename to
    `.X.partial`) is that run's leftover: its next start removes it, as it removes a `.partial` one."""
    import pathlib

    kw = dict(synthetic=True, preset="small", max_epochs=1, out=tmp_path, quiet=True)
    real_rename = pathlib.Path.rename

    def killed_at_the_rename(self, target):
        if self.name.endswith(".partial.new"):
            raise KeyboardInterrupt              # as a kill there: the lock goes with the process, the folder stays
        return real_rename(self, target)
    monkeypatch.setattr(pathlib.Path, "rename", killed_at_the_rename)
    with pytest.raises(KeyboardInterrupt):
        mmsa_atsuko.run("tfn", "mosi", seeds=[1], **kw)
    monkeypatch.undo()
    (leftover,) = (tmp_path / "runs").iterdir()
    assert leftover.name.endswith(".partial.new") and (leftover / "run.json").is_file()
    with caplog.at_level("WARNING", logger="mmsa_atsuko"):
        (record,) = mmsa_atsuko.run("tfn", "mosi", seeds=[1], **kw)
    assert record["status"] == "ok" and not leftover.exists()
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [record["run_id"]]
    assert any(f"removed {leftover}, left unfinished" in r.getMessage() for r in caplog.records)


def test_a_new_folder_taken_by_another_process_before_its_lock_is_one_line(tmp_path, monkeypatch):
    """Between run_folder's mkdir of `.X.partial.new` and its lock, another process took the folder (clean, over a
    file planted in it): one DataError line, where the lock was None and the run went on unlocked."""
    import pathlib
    import threading

    from filelock import FileLock

    from mmsa_atsuko import run_folders
    from mmsa_atsuko.errors import DataError
    monkeypatch.setattr(run_folders.working, "LOOK_HOLD_S", 0.1)   # where run_folder reads it
    work = run_folders.partial_dir(tmp_path, "r1")
    taken, done, real_mkdir = threading.Event(), threading.Event(), pathlib.Path.mkdir

    def hold(folder):                   # the other process, holding the folder's lock until the run gave up
        lock = FileLock(folder / "run.lock")
        lock.acquire()
        taken.set()
        done.wait(timeout=30)
        lock.release()

    def made_then_taken(self, *args, **kwargs):
        real_mkdir(self, *args, **kwargs)
        # Once: mkdir(parents=True) calls itself, and filelock makes its lock file's folder too
        if self.name.endswith(".partial.new") and threading.current_thread() is threading.main_thread() \
                and not taken.is_set():
            threading.Thread(target=hold, args=(self,)).start()
            taken.wait(timeout=30)
    monkeypatch.setattr(pathlib.Path, "mkdir", made_then_taken)
    try:
        with pytest.raises(DataError, match=r"\.r1\.partial\.new was taken by another process while this run made"):
            with run_folders.run_folder(work, tmp_path / "runs" / "r1", ("tfn",), resume=False):
                pass
    finally:
        done.set()
    assert not work.exists() and not (tmp_path / "runs" / "r1").exists()


def test_looking_for_its_leftovers_a_run_never_locks_another_runs_folder(tmp_path, monkeypatch):
    """Two workers of one `sweep --jobs 2 --resume` look for their own leftovers at the same moment. A worker that
    locked the other run's folder, if only to read it, made that run's worker take it for a live run's and train
    afresh under a new run_id (seen in CI). Only the folders naming this run are locked."""
    import json

    from mmsa_atsuko import run_folders

    kw = dict(synthetic=True, preset="small", max_epochs=2, out=tmp_path, quiet=True)
    for seed in (1, 2):
        die_before_last_pt_of_epoch(monkeypatch, 2)
        with pytest.raises(KeyboardInterrupt):
            mmsa_atsuko.run("tfn", "mosi", seeds=[seed], **kw)
        monkeypatch.undo()
    by_seed = {json.loads((f / "run.json").read_text())["identity"][3]: f
               for f in (tmp_path / "runs").glob(".*.partial")}
    claimed = []
    real_claim = run_folders.claim
    monkeypatch.setattr(run_folders.dead, "claim",      # where take_leftovers (unfinished_runs) calls it
                        lambda folder, wait=0.0: claimed.append(folder) or real_claim(folder, wait))
    first = run_folders.identity_of(by_seed[1])
    assert run_folders.take_leftovers(tmp_path, first, resume=True) == by_seed[1].name[1:-len(".partial")]
    assert set(claimed) == {by_seed[1]}
    lock = real_claim(by_seed[2])            # held past LOOK_HOLD_S, as a live run holds it: it is missed
    try:
        assert run_folders.take_leftovers(tmp_path, run_folders.identity_of(by_seed[2]), resume=True) is None
    finally:
        lock.release()
    assert run_folders.take_leftovers(tmp_path, run_folders.identity_of(by_seed[2]), resume=True) \
        == by_seed[2].name[1:-len(".partial")]


def _dead_run_folder(out, monkeypatch):
    """The `.partial` folder of a small tfn run killed in epoch 2, before its last.pt (a dead run's, resumable)."""
    die_before_last_pt_of_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        mmsa_atsuko.run("tfn", "mosi", seeds=[1], synthetic=True, preset="small", max_epochs=2, out=out, quiet=True)
    monkeypatch.undo()
    (folder,) = (out / "runs").glob(".*.partial")
    return folder


def test_a_run_looking_for_its_leftover_waits_out_another_process_looking_at_every_folder(tmp_path, monkeypatch):
    """`clean`, a sweep's plan line and run.py's closing count of unfinished folders lock each dead run's folder for the
    moment they read it. A run of that folder's own identity looking for it then (run.py --resume beside them) took
    it for a live run's, trained afresh under a new run_id and left the folder; it now waits a moment for the lock."""
    from filelock import FileLock

    from mmsa_atsuko import run_folders
    folder = _dead_run_folder(tmp_path, monkeypatch)
    looking = FileLock(folder / "run.lock")
    looking.acquire()                        # the other process's look, reading this folder now
    real_acquire = FileLock.acquire

    def acquire(lock, timeout=None, *args, **kwargs):
        if lock is not looking and looking.is_locked and timeout:
            looking.release()                # the look moves on while this run waits for the lock
        return real_acquire(lock, timeout, *args, **kwargs)
    monkeypatch.setattr(FileLock, "acquire", acquire)
    try:
        got = run_folders.take_leftovers(tmp_path, run_folders.identity_of(folder), resume=True)
    finally:
        if looking.is_locked:
            looking.release()
    assert got == folder.name[1:-len(".partial")] and folder.is_dir()


def test_a_folder_being_removed_is_never_taken_by_a_process_waiting_for_its_lock(tmp_path, monkeypatch):
    """Removed in place, a dead folder lost its run.lock first; a process waiting for that lock (a sweep driver's
    move_dead, a run's own look at its leftovers, both wait LOOK_HOLD_S) made a fresh one, took it at once and
    owned a folder being deleted beneath it: one of the two crashed with FileNotFoundError (seen by review,
    reproduced with two processes). `remove` renames the folder out of every looked-at name first."""
    import shutil

    from mmsa_atsuko.run_folders import claim, remove
    folder = _dead_run_folder(tmp_path, monkeypatch)
    waiter_got = []
    real_rmtree = shutil.rmtree

    def rmtree_with_a_waiter(path, *args, **kwargs):
        if Path(path).name.startswith(folder.name):          # the folder itself (or its tombstone), not an entry
            lock = claim(folder)                             # the waiting process's next try
            waiter_got.append(lock)
            if lock is not None:
                lock.release()
        return real_rmtree(path, *args, **kwargs)

    held = claim(folder)                                     # the remover holds it, as take_leftovers and clean do
    monkeypatch.setattr(shutil, "rmtree", rmtree_with_a_waiter)
    try:
        remove(folder)
    finally:
        held.release()
    monkeypatch.undo()
    assert waiter_got == [None]
    assert list((tmp_path / "runs").iterdir()) == []         # nothing left: not the folder, not its tombstone


def test_resume_with_nothing_to_resume_starts_afresh(tmp_path, monkeypatch):
    kw = dict(seeds=[1], synthetic=True, preset="small", max_epochs=1, out=tmp_path, quiet=True, resume=True)
    die_before_last_pt_of_epoch(monkeypatch, 1)          # dies in its first epoch: no last.pt
    with pytest.raises(KeyboardInterrupt):
        mmsa_atsuko.run("tfn", "mosi", **kw)
    monkeypatch.undo()
    (leftover,) = (tmp_path / "runs").glob(".*.partial")
    assert not (leftover / "last.pt").exists()
    (record,) = mmsa_atsuko.run("tfn", "mosi", **kw)
    assert record["status"] == "ok" and record["run_id"] not in leftover.name and not leftover.exists()
    assert (tmp_path / "runs" / record["run_id"] / "best.pt").is_file()


def test_run_skips_recorded_seeds_and_rerun_trains_them_again(tmp_path):
    from mmsa_atsuko.results import read_records

    lines = []
    kw = dict(synthetic=True, preset="small", max_epochs=1, out=tmp_path, quiet=True, echo=lines.append)
    (first,) = mmsa_atsuko.run("tfn", "mosi", seeds=[1], **kw)
    assert lines == []
    table = mmsa_atsuko.run("tfn", "mosi", seeds=[1, 2], **kw)
    assert lines == [f"skip tfn mosi seed 1: recorded as {first['run_id']} (--rerun trains it again)"]
    stored = read_records(tmp_path)
    assert [r["seed"] for r in stored] == [1, 2]              # seed 1 was not trained again
    assert table[0] == stored[0] and [r["run_id"] for r in table] == [r["run_id"] for r in stored]
    csv_rows = (tmp_path / "normal" / "mosi-synthetic.csv").read_text().splitlines()
    assert len(csv_rows) == 3                                  # header, then one row per call that trained

    lines.clear()
    assert mmsa_atsuko.run("tfn", "mosi", seeds=[1, 2], **kw) == stored   # all recorded: nothing trains
    assert len(lines) == 2 and len(read_records(tmp_path)) == 2
    assert len((tmp_path / "normal" / "mosi-synthetic.csv").read_text().splitlines()) == 3

    lines.clear()
    (again,) = mmsa_atsuko.run("tfn", "mosi", seeds=[1], rerun=True, **kw)
    assert lines == [] and again["run_id"] != first["run_id"]
    assert read_records(tmp_path)[2]["metrics"] == stored[0]["metrics"]     # CPU runs are deterministic
    # another config is another run: not skipped
    (other,) = mmsa_atsuko.run("tfn", "mosi", seeds=[1], config={"learning_rate": 0.002}, **kw)
    assert lines == [] and other["config_hash"] != first["config_hash"]
    assert len(read_records(tmp_path)) == 4


def test_save_checkpoint_none_leaves_no_weights_and_the_same_metrics(tmp_path):
    from mmsa_atsuko.errors import UsageError
    from mmsa_atsuko.results import read_records

    kw = dict(seeds=[1], synthetic=True, preset="small", max_epochs=3, quiet=True)
    (best,) = mmsa_atsuko.run("tfn", "mosi", out=tmp_path / "best", **kw)
    (none,) = mmsa_atsuko.run("tfn", "mosi", out=tmp_path / "none", save_checkpoint="none", **kw)
    assert (tmp_path / "best" / best["run_dir"] / "best.pt").is_file()
    assert sorted(p.name for p in (tmp_path / "none" / none["run_dir"]).iterdir()) == sorted(
        p.name for p in (tmp_path / "best" / best["run_dir"]).iterdir() if p.name != "best.pt")
    assert (best["checkpoint"], none["checkpoint"]) == ("best", "none")
    (best,), (none,) = read_records(tmp_path / "best"), read_records(tmp_path / "none")    # NaN stored as null
    for key in ("metrics", "valid_metrics", "best_epoch", "epochs_run", "config_hash", "data"):
        assert none[key] == best[key], key
    with pytest.raises(UsageError, match="--save-checkpoint must be one of best, none"):
        mmsa_atsuko.run("tfn", "mosi", out=tmp_path / "x", save_checkpoint="last", **kw)


def test_a_stress_recipe_writes_its_mmsa_rows_to_a_file_of_its_own(tmp_path):
    """`--synthetic-recipe corrupt` appended 'tfn' to mosi-synthetic.csv, beside the standard recipe's 'tfn'."""
    kw = dict(seeds=[1], synthetic=True, preset="small", max_epochs=1, out=tmp_path, quiet=True)
    (corrupt,) = mmsa_atsuko.run("tfn", "mosi", synthetic_recipe="corrupt", **kw)
    (standard,) = mmsa_atsuko.run("tfn", "mosi", **kw)
    normal = tmp_path / "normal"
    assert sorted(p.name for p in normal.glob("*.csv")) == ["mosi-synthetic-corrupt.csv", "mosi-synthetic.csv"]
    for name, record in (("mosi-synthetic-corrupt.csv", corrupt), ("mosi-synthetic.csv", standard)):
        header, row = (normal / name).read_text().splitlines()
        assert row.startswith("tfn,") and f'"{mmsa_cell([record["metrics"]["MAE"]])}"' in row


def test_a_csv_that_cannot_take_the_rows_stops_a_multi_model_call_before_any_run(tmp_path):
    """`-m tfn lmf` with a normal/ CSV of other columns trained and recorded tfn, then stopped on the header line at
    tfn's row: the CSV is checked where the call plans, before any run, in one line (exit 2). A call whose runs are
    all recorded appends nothing, and is not stopped by a file it does not write to."""
    from mmsa_atsuko.errors import UsageError
    kw = dict(seeds=[1], synthetic=True, preset="small", max_epochs=1, out=tmp_path, quiet=True)
    (tmp_path / "normal").mkdir()
    mine = tmp_path / "normal" / "mosi-synthetic.csv"
    mine.write_text("Model,Acc\nmine,1\n")
    with pytest.raises(UsageError, match=r"mosi-synthetic.csv has columns Model,Acc, not MMSA's Model,Has0_acc_2,"
                                         r".*: nothing was trained, as this call's rows could not go there; move the "
                                         r"file away and the call starts a new one$") as refused:
        mmsa_atsuko.run(["tfn", "lmf"], "mosi", **kw)
    assert refused.value.exit_code == 2 and "\n" not in str(refused.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["normal"] and mine.read_text() == "Model,Acc\nmine,1\n"
    mine.rename(tmp_path / "mine.csv")
    (record,) = mmsa_atsuko.run("tfn", "mosi", **kw)
    (tmp_path / "mine.csv").replace(mine)
    assert mmsa_atsuko.run("tfn", "mosi", **kw) == [record]      # recorded: skipped, no row to write


# Installed in a run.py process through PYTHONPATH: once its first epoch's state is written, it says so (a file
# `started` in PAUSE_DIR) and trains on only once the test lets it (a file `go` there): no timing, files alone.
PAUSE_AFTER_EPOCH_1 = """
import os, pathlib, time
import mmsa_atsuko.training.trainer as trainer
real = trainer.save_training_state

def save(path, *args):
    done = real(path, *args)
    pause = pathlib.Path(os.environ["PAUSE_DIR"])
    if not (pause / "started").exists():
        (pause / "started").touch()
        for _ in range(12000):                     # at most 10 minutes, never forever
            if (pause / "go").exists():
                break
            time.sleep(0.05)
    return done

trainer.save_training_state = save
"""


def test_a_sweep_beside_an_in_process_run_py_refuses_and_the_run_is_recorded_once(tmp_path):
    """A run.py without --jobs trains tfn mosi seed 1 (paused in its first epoch, another process) while a sweep of
    the same run starts in the same results folder: the sweep stops in one line before it plans or trains, and
    once run.py ends the run has one record. Before, the sweep took no account of run.py: both trained the run
    neither had recorded, and it was recorded twice."""
    import os
    import subprocess
    import sys

    from mmsa_atsuko.errors import ToolkitError
    from mmsa_atsuko.results import read_records
    from mmsa_atsuko.sweep import sweep
    root, out, pause = Path(__file__).resolve().parents[1], tmp_path / "out", tmp_path / "pause"
    pause.mkdir()
    (pause / "sitecustomize.py").write_text(PAUSE_AFTER_EPOCH_1, encoding="utf-8")
    run_py = subprocess.Popen(
        [sys.executable, str(root / "run.py"), "-m", "tfn", "-d", "mosi", "-s", "1", "--synthetic", "--preset",
         "small", "--max-epochs", "2", "--quiet", "--out", str(out)], cwd=root, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=dict(os.environ, HF_HUB_OFFLINE="1", PAUSE_DIR=str(pause),
                 PYTHONPATH=os.pathsep.join([str(pause), str(root)])))
    try:
        for _ in range(6000):                       # until run.py trains (or ends, which fails below)
            if (pause / "started").exists() or run_py.poll() is not None:
                break
            __import__("time").sleep(0.05)
        assert (pause / "started").exists(), run_py.communicate()
        lines = []
        with pytest.raises(ToolkitError) as refused:
            sweep(out=out, models=["tfn"], datasets=["mosi"], seeds=[1], synthetic=True, preset="small",
                  max_epochs=2, echo=lines.append)
        line = str(refused.value)
        assert "\n" not in line and line.startswith(f"1 run.py process(es) are training into {out} "), line
        assert line.endswith("a sweep beside them may train the same runs: wait for them to end, or give another "
                             "--out"), line
        assert not any(line.startswith("sweep: ") for line in lines), lines     # refused before it planned
    finally:
        (pause / "go").touch()
        stdout, stderr = run_py.communicate(timeout=600)
    assert run_py.returncode == 0, stderr
    assert [(r["model"], r["seed"], r["status"]) for r in read_records(out)] == [("tfn", 1, "ok")]
    assert not list((out / "runs").glob(".run-py-*"))          # run.py removed its mark


def test_an_in_process_run_py_beside_a_sweep_refuses_and_trains_nothing(tmp_path):
    """A sweep holds the results folder (its lock, as while it trains): run.py without --jobs stops in one line
    before it trains anything, where before it trained beside the sweep."""
    from mmsa_atsuko.errors import ToolkitError
    from mmsa_atsuko.sweep import SweepLock
    with SweepLock(tmp_path), pytest.raises(ToolkitError) as refused:
        mmsa_atsuko.run("tfn", "mosi", seeds=[1], synthetic=True, preset="small", max_epochs=1, out=tmp_path,
                        quiet=True, echo=lambda _: None)
    line = str(refused.value)
    assert line.startswith(f"a sweep (or tune, or run.py --jobs) is writing to {tmp_path} (lock "
                           f"{tmp_path / '.sweep.lock'})") and "run the same command again" in line, line
    assert not (tmp_path / "runs.jsonl").exists() and [p.name for p in (tmp_path / "runs").iterdir()] == []


def test_in_process_run_pys_share_a_folder_and_a_killed_ones_mark_stops_no_sweep(tmp_path):
    """Two in-process run.py's (on different models) still train into one folder at once: each holds a mark of
    its own. A mark whose lock is free (its run.py was killed) stops no sweep, which removes it; a live one does."""
    from mmsa_atsuko.errors import ToolkitError
    from mmsa_atsuko.results import run_py_mark
    from mmsa_atsuko.sweep import SweepLock
    with run_py_mark(tmp_path):                                # another run.py, training beside this one
        (record,) = mmsa_atsuko.run("lmf", "mosi", seeds=[1], synthetic=True, preset="small", max_epochs=1,
                                    out=tmp_path, quiet=True, echo=lambda _: None)
        assert record["status"] == "ok"
        (live,) = (tmp_path / "runs").glob(".run-py-*.lock")  # this run.py's own mark is gone, the other's held
        with pytest.raises(ToolkitError, match=r"^1 run\.py process\(es\) are training into "):
            SweepLock(tmp_path).__enter__()
    killed = tmp_path / "runs" / ".run-py-0123456789abcdef.lock"
    killed.write_text("")                                      # left by a killed run.py: nobody holds it
    with SweepLock(tmp_path):
        assert not killed.exists() and not live.exists()


def test_the_api_package_keeps_the_names_the_single_api_module_had():
    """Every public name of api.py before its split into api/ (37cb3ff) still imports from mmsa_atsuko.api, and is
    the object of its new home: `from mmsa_atsuko.api import resolve_config` (which trainer_config's docstring
    promises), prepare_job, train_one ... raised ImportError after the split. All but SYNTHETIC_CACHE_ENV, a second name
    for cache.CACHE_ENV that nothing documented: the variable is imported from its home."""
    import mmsa_atsuko.api as api
    from mmsa_atsuko.api import jobs, pipeline, predictions_csv
    from mmsa_atsuko.run_folders import SAVE_CHECKPOINT, work_folders
    from mmsa_atsuko.training.trainer_config import resolve_config
    homes = {"Job": jobs.Job, "resolve_config": resolve_config, "prepare_job": prepare_job, "run": pipeline.run,
             "new_run_id": one_run.new_run_id, "run_one": one_run.run_one, "job_identity": jobs.job_identity,
             "condition_label": jobs.condition_label, "train_one": one_run.train_one,
             "PREDICTIONS_FLOAT_FORMAT": "%.9g", "write_predictions": predictions_csv.write_predictions,
             "predictions_frame": predictions_csv.predictions_frame,
             "SAVE_CHECKPOINT": SAVE_CHECKPOINT, "unfinished_runs": unfinished_runs, "work_folders": work_folders}
    for name, home in homes.items():
        assert getattr(api, name, None) is home or getattr(api, name, None) == home, name
    assert sorted(api.__all__) == sorted(homes)


def test_with_rerun_only_a_run_started_after_the_call_began_as_asked_serves_it():
    """`results.serves`, the rule for a record another process appended while this call waited on the run: without
    --rerun any ok record serves (as a stored one is skipped); with --rerun only one started after the call began, at
    the precision and with the kernels asked (a record's started_at is cut to the second: the call's own second does
    not count)."""
    from datetime import datetime, timezone

    from mmsa_atsuko.results import serves as _serves
    began = datetime(2026, 12, 7, 13, 0, 0, 500000, tzinfo=timezone.utc)
    after = {"started_at": "2026-12-07T13:00:01+00:00", "precision": "bf16", "deterministic": True}
    same_second = {**after, "started_at": "2026-12-07T13:00:00+00:00"}
    asked = dict(model="tfn", precision="bf16", deterministic=True, began=began)
    assert _serves(same_second, rerun=False, **asked)
    assert _serves(after, rerun=True, **asked)
    assert not _serves(same_second, rerun=True, **asked)
    assert not _serves({**after, "precision": "fp32"}, rerun=True, **asked)
    assert not _serves({**after, "deterministic": False}, rerun=True, **asked)
    assert not _serves({"precision": "bf16", "deterministic": True}, rerun=True, **asked)


def test_the_skip_line_names_a_recorded_runs_kernels_where_they_are_not_those_asked():
    """`results.skip_reason` on records of the run's identity: kernels as `serves` judges them (`results.kernels_of`),
    a record from before `deterministic` was recorded being warn-only, which is neither kind asked."""
    from mmsa_atsuko.results import skip_reason as _skip_reason
    strict, loose, old = ({"precision": "fp32", "deterministic": True}, {"precision": "fp32", "deterministic": False},
                          {"precision": "fp32"})
    assert _skip_reason(strict, "tfn", "fp32", True) == " (--rerun trains it again)"
    assert _skip_reason(loose, "tfn", "fp32", False) == " (--rerun trains it again)"
    assert _skip_reason(loose, "tfn", "fp32", True) == (
        ", which ran with nondeterministic kernels, not the deterministic asked (kernels are not part of a run's "
        "identity: --rerun trains it with deterministic kernels in its place, or give another --out)")
    assert _skip_reason(old, "tfn", "fp32", False) == (
        ", which ran with warn-only kernels, not the nondeterministic asked (kernels are not part of a run's "
        "identity: --rerun trains it with nondeterministic kernels in its place, or give another --out)")
    # --rerun takes a record only where nothing differs (_serves), so its line names nothing that does
    assert _skip_reason(loose, "tfn", "fp32", True, rerun=True) == (
        " (it started after this call began, as asked: --rerun trains only runs recorded before)")
