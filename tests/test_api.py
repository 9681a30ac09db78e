"""api._prepare / api.run: what a job holds of its data."""
import gc
import weakref

import pytest

import mmsa_atsuko
from conftest import die_before_last_pt_of_epoch, history_scalars, same_scalars, tensorboard_scalars
from mmsa_atsuko import api


def _prepare(model, loaded, **overrides):
    return api._prepare(model, "mosi", aligned=False, data_root=None, feature_path=None, synthetic=True,
                        synthetic_size="small", preset="small", overrides=list(overrides.items()),
                        max_epochs=None, loaded=loaded)


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

    monkeypatch.setattr(api, "fit", broken_fit)
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

    from mmsa_atsuko import api

    api.git_commit.cache_clear()
    try:
        before = api.git_commit()
        real_run = subprocess.run
        monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("git asked again"))
        assert api.git_commit() == before
        monkeypatch.setattr(subprocess, "run", real_run)
        (record,) = mmsa_atsuko.run("tfn", "mosi", seeds=[1], synthetic=True, preset="small", max_epochs=1,
                                    out=tmp_path, quiet=True)
        assert record["git_commit"] == before
        header = (tmp_path / "runs" / record["run_id"] / "train.log").read_text().splitlines()[0]
        assert header.endswith(f"code={before}")
    finally:
        api.git_commit.cache_clear()


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
    (resumed,) = mmsa_atsuko.run(model, "mosi", out=tmp_path / "cut", resume=True, **kw)

    assert resumed["run_id"] == partial.name[1:-len(".partial")]      # continued in place, not started again
    assert whole["epochs_run"] == 4 and not list((tmp_path / "cut" / "runs").glob(".*"))
    for key in ("metrics", "valid_metrics", "best_epoch", "epochs_run", "config_hash"):
        assert repr(resumed[key]) == repr(whole[key]), key          # exact: repr round-trips every float
    folder = tmp_path / "cut" / "runs" / resumed["run_id"]
    history = (folder / "history.json").read_text()
    assert history == (tmp_path / "whole" / "runs" / whole["run_id"] / "history.json").read_text()
    assert not (folder / "last.pt").exists() and not (folder / "run.lock").exists()
    assert "resumed after epoch 2" in (folder / "train.log").read_text()


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
    import fcntl
    import json
    import os

    kw = dict(synthetic=True, preset="small", max_epochs=2, out=tmp_path, quiet=True)
    die_before_last_pt_of_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        mmsa_atsuko.run("tfn", "mosi", seeds=[1], **kw)
    monkeypatch.undo()
    runs = tmp_path / "runs"
    (leftover,) = runs.glob(".*.partial")
    identity = json.loads((leftover / "run.lock").read_text())
    assert identity["seed"] == 1 and identity["pid"] == os.getpid()

    def fake(name, **changes):              # a .partial folder with the leftover's identity, changed
        folder = runs / f".{name}.partial"
        folder.mkdir()
        (folder / "run.lock").write_text(json.dumps({**identity, **changes}))
        return folder

    other_seed, other_config, live_twin = fake("s2", seed=2), fake("cfg", config_hash="0" * 12), fake("twin")
    live = os.open(live_twin / "run.lock", os.O_RDWR)
    fcntl.flock(live, fcntl.LOCK_EX)        # a run of the same identity still running (a parallel sweep)
    try:
        with caplog.at_level("WARNING", logger="mmsa_atsuko"):
            (record,) = mmsa_atsuko.run("tfn", "mosi", seeds=[1], **kw)
        assert not leftover.exists() and record["run_id"] not in leftover.name
        assert other_seed.exists() and other_config.exists() and live_twin.exists()
        (line,) = [r.getMessage() for r in caplog.records if "removed" in r.getMessage()]
        assert str(leftover) in line
        assert sorted(f.name for f in api.unfinished_runs(tmp_path)) == [".cfg.partial", ".s2.partial"]
    finally:
        os.close(live)
    assert len(list(api.unfinished_runs(tmp_path))) == 3      # the twin's process is gone now


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
