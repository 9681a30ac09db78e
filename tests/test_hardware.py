"""Issue 17 on the CPU: determinism mode, precision, threads, --jobs sizing and packing, the record's
hardware fields, and a training step that reads nothing back from the device."""
import csv
import math
import resource
from types import SimpleNamespace

import pytest
import torch

import mmsa_atsuko
from conftest import make_dataset
from mmsa_atsuko import cli
from mmsa_atsuko.api import one_run
from mmsa_atsuko.errors import UsageError
from mmsa_atsuko.results import json_safe, mmsa_cell, mmsa_seed_value, read_records
from mmsa_atsuko.sweep import LocalBackend, default_jobs, run_packed
from mmsa_atsuko.training import hardware
from mmsa_atsuko.training import trainer as trainer_mod
from mmsa_atsuko.training.hardware import cpu_jobs, gpu_jobs, parse_jobs
from mmsa_atsuko.training.seed import set_seed
from test_trainer import LinearProbe, cfg

TINY = dict(synthetic=True, preset="small", max_epochs=1, quiet=True)


# ---- --jobs auto sizing (pure functions, made-up numbers) -------------------------------------

def test_gpu_jobs_fits_runs_into_the_free_memory_with_a_margin():
    # 60 GB free, 85% usable = 51000 MB; each more run needs 10000 + 600 MB: 4 more beside the first
    assert gpu_jobs(10_000, 60_000, runs=10, margin=0.15, context_mb=600) == 5
    assert gpu_jobs(10_000, 60_000, runs=3, margin=0.15, context_mb=600) == 3        # no more than the runs
    assert gpu_jobs(10_000, 5_000, runs=10, margin=0.15, context_mb=600) == 1        # none fits: the first goes on
    assert gpu_jobs(10_000, 5_000, runs=10, running=2, margin=0.15, context_mb=600) == 2
    # the margin matters: 10600 * 4 = 42400 fits in 51000 (margin 0.15) but not in 30000 (margin 0.5)
    assert gpu_jobs(10_000, 60_000, runs=10, margin=0.5, context_mb=600) == 1 + 2
    assert gpu_jobs(400, 139_000, runs=5) == 5


def test_auto_on_cuda_sizes_from_the_first_runs_peak_and_the_free_memory(monkeypatch):
    """The backend's side of `gpu_jobs`, with the GPU's answer made up (no GPU needed): what the run's worker read
    (`gpu_memory_after_run`); the driver asks the GPU nothing."""
    lines = []
    backend = LocalBackend("auto", "cpu", threads=1, echo=lines.append)
    backend.workers = [type("Worker", (), {"device": "cuda:0", "task": None})()]
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: pytest.fail("the driver made a CUDA context"))
    ok = {"status": "ok", "peak_memory_mb": 10_000.0, "device": "cuda:0"}
    # 51000 usable MB // (10000 + 600) = 4 more beside the running one
    assert backend._per_device(ok, runs=10, memory={"free_mb": 60_000.0, "reserved_mb": 9_000.0}) == 5
    assert lines == ["--jobs auto: the first run on cuda:0 peaked at 10000 MB with 60000 MB free there: 5 run(s) at "
                     "once on cuda:0"]
    # sized by what its allocator held when that is more: 51000 // (14000 + 600) = 3 more
    assert backend._per_device(ok, runs=10, memory={"free_mb": 60_000.0, "reserved_mb": 14_000.0}) == 4
    memory = {"free_mb": 60_000.0, "reserved_mb": 9_000.0}
    assert backend._per_device({**ok, "status": "failed"}, runs=10, memory=memory) is None   # wait for an ok one
    assert backend._per_device(ok, runs=10, memory=None) is None       # its worker read nothing (a CUDA error)



class _FakeWorker:
    """A worker that runs nothing: its run's record comes back (failed for the runs in `FAILED`), with the memory its
    GPU has free (`FREE_MB`), as `gpu_memory_after_run` would read it there, where the worker reads it: the driver
    asked for it and the run ended ok. `started` lists every worker's device in the order they started, `asked` the
    runs whose task asked for the memory. A planned run (`_Planned`) first says its training started, in the
    folder `FOLDERS` names (a resumed run's), else its own run_id's, as `execute` says it."""
    FREE_MB: dict = {}
    FAILED: frozenset = frozenset()
    FOLDERS: dict = {}
    started: list = []
    asked: list = []
    given = 0

    def __init__(self, ctx, index, device, threads, forced):
        self.index, self.device, self.task, self.order, self.conn, self.since = index, device, None, 0, self, 0.0
        _FakeWorker.started.append(device)

    def give(self, task):
        self.task, _FakeWorker.given, self.said = task, _FakeWorker.given + 1, False
        self.order = _FakeWorker.given
        run, _, _, size_device = task
        if size_device:
            _FakeWorker.asked.append(run)

    def recv(self):
        run, run_id, _, size_device = self.task
        if isinstance(run, _Planned) and not self.said:
            self.said = True
            return "started", self.FOLDERS.get(run_id, run_id)
        status = "failed" if run in self.FAILED else "ok"
        record = {"status": status, "peak_memory_mb": 10_000.0, "device": self.device, "run": run}
        read = size_device and status == "ok"
        return record, {"free_mb": self.FREE_MB[self.device], "reserved_mb": 9_000.0} if read else None

    def stop(self):
        pass


def test_auto_on_cuda_sizes_each_device_by_its_own_free_memory(monkeypatch):
    """Another user's job holds most of cuda:1: the count worked out on cuda:0 applied to every device, so cuda:1
    got as many workers as cuda:0 and ran out of memory. Each device's first run sizes it now."""
    monkeypatch.setattr(_FakeWorker, "FREE_MB", {"cuda:0": 60_000.0, "cuda:1": 25_000.0})
    _fake_workers(monkeypatch)
    lines, done = [], []
    backend = LocalBackend("auto", "cpu", threads=1, echo=lines.append)
    backend.devices, backend.cuda = ["cuda:0", "cuda:1"], True       # what parse_devices gives on two GPUs
    backend.run([(k, f"run{k}") for k in range(12)], "out", lambda record: done.append(record["run"]))
    assert sorted(done) == list(range(12))
    # cuda:0: 60000 MB * 0.85 = 51000 usable // (10000 + 600) = 4 more beside its first run: 5.
    # cuda:1: 25000 * 0.85 = 21250 // 10600 = 2 more: 3 (the old code gave it cuda:0's 5).
    assert _FakeWorker.started == ["cuda:0", "cuda:1"] + ["cuda:0"] * 4 + ["cuda:1"] * 2
    assert lines == ["--jobs auto: the first run on cuda:0 peaked at 10000 MB with 60000 MB free there: 5 run(s) at "
                     "once on cuda:0",
                     "--jobs auto: the first run on cuda:1 peaked at 10000 MB with 25000 MB free there: 3 run(s) at "
                     "once on cuda:1"]
    assert _FakeWorker.asked == [0, 1]             # each device's first run; the others make no CUDA call


def _fake_workers(monkeypatch) -> None:
    from mmsa_atsuko.sweep import local
    monkeypatch.setattr(local, "_Worker", _FakeWorker)
    monkeypatch.setattr(_FakeWorker, "started", [])
    monkeypatch.setattr(_FakeWorker, "asked", [])
    monkeypatch.setattr(_FakeWorker, "given", 0)
    monkeypatch.setattr(_FakeWorker, "FOLDERS", {})
    # the runs end in the order they were given out, so each device's first run ends before the later ones
    monkeypatch.setattr(local, "wait_for", lambda conns, timeout=None: [min(conns, key=lambda worker: worker.order)])


def test_the_gpus_memory_is_asked_for_until_a_run_on_it_ends_ok_and_only_under_jobs_auto(monkeypatch):
    """Every worker read its GPU's memory after every run, a failed one too: a run that failed before it touched the
    GPU (a bad config) made a CUDA context there for nothing, and a reading that raised killed the worker."""
    _fake_workers(monkeypatch)
    monkeypatch.setattr(_FakeWorker, "FREE_MB", {"cuda:0": 60_000.0})
    monkeypatch.setattr(_FakeWorker, "FAILED", frozenset({0}))
    lines = []
    backend = LocalBackend("auto", "cpu", threads=1, echo=lines.append)
    backend.devices, backend.cuda = ["cuda:0"], True
    backend.run([(k, f"run{k}") for k in range(5)], "out", lambda record: None)
    assert _FakeWorker.asked == [0, 1]             # run 0 failed: run 1 sizes cuda:0
    # 4 more would fit beside it (51000 // 10600), but runs 2-4 are all that is left: 3
    assert lines == ["--jobs auto: the first run on cuda:0 peaked at 10000 MB with 60000 MB free there: 3 run(s) at "
                     "once on cuda:0"]
    _fake_workers(monkeypatch)
    backend = LocalBackend(2, "cpu", threads=1, echo=lines.append)
    backend.devices, backend.cuda = ["cuda:0"], True
    backend.run([(k, f"run{k}") for k in range(5)], "out", lambda record: None)
    assert _FakeWorker.asked == [] and _FakeWorker.started == ["cuda:0"] * 2    # --jobs 2 sizes nothing


class _Planned:
    """A planned run as the backend sees one: a name, and no tune trial."""
    trial = None

    def __init__(self, name):
        self.name = name

    def describe(self):
        return self.name


def _scripted_waits(monkeypatch, script) -> list:
    """The driver's waits, each as `script` says: (the clock then, the name of the run whose worker speaks, or None
    where the wait times out with nothing ready). Returns the timeouts it waited with."""
    from mmsa_atsuko.sweep import local
    steps, now, timeouts = iter(script), [0.0], []

    def wait(conns, timeout=None):
        timeouts.append(timeout)
        now[0], name = next(steps)
        return [conn for conn in conns if conn.task[0].name == name]
    monkeypatch.setattr(local, "wait_for", wait)
    monkeypatch.setattr(local.time, "time", lambda: now[0])
    return timeouts


def _history(tmp_path, run_id: str, epochs: int) -> None:
    import json
    (tmp_path / "runs" / f".{run_id}.partial").mkdir(parents=True)
    (tmp_path / "runs" / f".{run_id}.partial" / "history.json").write_text(
        json.dumps([{"epoch": k + 1} for k in range(epochs)]))


_THREE = ["tfn mydata seed 1", "lmf mydata seed 1", "tfn mydata seed 2"]


def _run_three(monkeypatch, tmp_path, script, folders=None) -> tuple[list, list]:
    _fake_workers(monkeypatch)
    monkeypatch.setattr(_FakeWorker, "FOLDERS", folders or {})
    timeouts = _scripted_waits(monkeypatch, script)
    lines = []
    backend = LocalBackend(2, "cpu", threads=1, echo=lines.append)
    backend.run([(_Planned(name), f"r{k}") for k, name in enumerate(_THREE)], tmp_path,
                lambda record: lines.append("ended"))
    return lines, timeouts


def test_a_sweep_in_workers_says_where_each_run_logs_and_how_it_stands_after_a_quiet_while(monkeypatch, tmp_path):
    """`sweep --jobs 2` printed nothing from its plan line to its first finished run (hours on real data): the
    workers' epochs go to each run's train.log alone. Each run's start names that log now, and a quiet while (no
    line for `quiet_s`) gives one line on the runs in hand, their epochs done by their history.json."""
    _history(tmp_path, "r0", 2)
    lines, timeouts = _run_three(monkeypatch, tmp_path, [
        (1.0, _THREE[0]), (2.0, _THREE[1]), (125.0, None), (130.0, _THREE[0]), (131.0, _THREE[2]),
        (132.0, _THREE[1]), (133.0, _THREE[2])])
    assert timeouts[:3] == [60.0] * 3     # up to the first quiet line, the driver waits no longer than its quiet while
    log = tmp_path / "runs"
    assert lines == [f"started tfn mydata seed 1 on cpu: its epochs go to {log}/.r0.partial/train.log",
                     f"started lmf mydata seed 1 on cpu: its epochs go to {log}/.r1.partial/train.log",
                     # the clock reads 125 s; their training began at 1 s and 2 s
                     "still training: tfn mydata seed 1 (2 epochs done, training 0:02:04); lmf mydata seed 1 "
                     "(training 0:02:03)",
                     "ended", f"started tfn mydata seed 2 on cpu: its epochs go to {log}/.r2.partial/train.log",
                     "ended", "ended"]


def test_a_resumed_run_in_a_worker_is_named_by_the_folder_it_works_in(monkeypatch, tmp_path):
    """`sweep --jobs 2 --resume` after a Ctrl-C: the started line named a train.log under the fresh run_id's .partial
    folder, which never exists (the run continues the folder the killed call left, `execute`), and the quiet line
    showed no epochs of it. The worker names its folder as the run starts, and both lines use it."""
    _history(tmp_path, "old0", 3)          # the killed call's folder of tfn seed 1, 3 epochs in
    _history(tmp_path, "r0", 1)            # never made by a resumed run: its epochs would be the wrong ones
    lines, _ = _run_three(monkeypatch, tmp_path, [
        (1.0, _THREE[0]), (2.0, _THREE[1]), (125.0, None), (130.0, _THREE[0]), (131.0, _THREE[2]),
        (132.0, _THREE[1]), (133.0, _THREE[2])], folders={"r0": "old0"})
    log = tmp_path / "runs"
    assert lines[0] == f"started tfn mydata seed 1 on cpu: its epochs go to {log}/.old0.partial/train.log"
    assert lines[2].startswith("still training: tfn mydata seed 1 (3 epochs done, ")


def test_the_time_in_hand_counts_from_the_run_start_not_from_its_worker_start(monkeypatch, tmp_path):
    """"time so far" counted from the handing over, its worker's start-up included (imports, data): 0:00:08 before
    epoch 1 of a run that trained in 1.3 s. A run counts from its training's start, and before it says it has none."""
    from mmsa_atsuko.sweep.live import in_hand_line
    lines, _ = _run_three(monkeypatch, tmp_path, [
        (8.0, None), (9.0, _THREE[0]), (10.5, _THREE[0]), (11.0, _THREE[2]), (12.0, _THREE[1]), (13.0, _THREE[2]),
        (14.0, _THREE[1]), (15.0, _THREE[2])])
    # the fake workers were handed their runs at 0 s; tfn seed 1 began at 9 s and ended at 10.5 s
    assert lines[0] == ("still training: tfn mydata seed 1 (not training yet, handed to its worker 0:00:08 ago); "
                        "lmf mydata seed 1 (not training yet, handed to its worker 0:00:08 ago)")
    trial = SimpleNamespace(trial={"number": 3})
    assert in_hand_line([(trial, None, tmp_path, 100.0, 20.0)], 105.0) == "still training: trial 3 (training 0:00:05)"


def test_the_still_training_line_comes_less_often_while_nothing_starts_or_ends(monkeypatch, tmp_path):
    """It came every 60 s for as long as runs trained: about 60 near-identical lines an hour on real data. Each quiet
    line doubles the wait for the next, up to 15 minutes, and a run that starts (or ends) sets it back to 60 s."""
    _fake_workers(monkeypatch)
    # each quiet wait lasts its timeout: 60, 180, 420, 900, 1800, 2700 s; the run starts at 2710 s, ends at 2720 s
    timeouts = _scripted_waits(monkeypatch, [(60.0, None), (180.0, None), (420.0, None), (900.0, None),
                                             (1800.0, None), (2700.0, None), (2710.0, _THREE[0]), (2720.0, _THREE[0])])
    lines = []
    LocalBackend(2, "cpu", threads=1, echo=lines.append).run([(_Planned(_THREE[0]), "r0")], tmp_path,
                                                             lambda record: lines.append("ended"))
    assert timeouts == [60.0, 120.0, 240.0, 480.0, 900.0, 900.0, 900.0, 60.0]
    assert sum(line.startswith("still training: ") for line in lines) == 6 and lines[-1] == "ended"


def test_a_worker_that_dies_in_a_resumed_run_fails_it_in_the_folder_it_worked_in(monkeypatch, tmp_path):
    """Its failed record and error.txt named the fresh run_id, whose folder never existed, beside the kept .partial
    folder of the earlier call that --resume continues."""
    from mmsa_atsuko.sweep import execute as execute_module

    class Dying(_FakeWorker):
        proc = SimpleNamespace(join=lambda wait: None, exitcode=-9)

        def recv(self):
            if not self.said:
                return super().recv()
            raise EOFError
    _fake_workers(monkeypatch)
    monkeypatch.setattr("mmsa_atsuko.sweep.local._Worker", Dying)
    monkeypatch.setattr(_FakeWorker, "FOLDERS", {"r0": "old0"})
    named = []
    monkeypatch.setattr(execute_module, "failure", lambda run, run_id, *args, **kwargs: named.append(run_id) or {})
    LocalBackend(2, "cpu", threads=1, echo=lambda line: None).run([(_Planned("tfn mydata seed 1"), "r0")], tmp_path,
                                                                  lambda record: None)
    assert named == ["old0"]


def test_execute_says_the_folder_its_run_works_in_as_training_starts(monkeypatch, tmp_path):
    """A resumed run's folder is the earlier call's (`take_leftovers`), a fresh run's its own run_id's: the driver
    learns it from `on_start` alone."""
    from mmsa_atsuko.sweep import execute as execute_module
    from mmsa_atsuko.sweep.plan import PlannedRun
    job = SimpleNamespace(config={}, data=SimpleNamespace(spec=SimpleNamespace(source="sha256:x")))
    monkeypatch.setattr(execute_module, "prepare", lambda setting: job)
    monkeypatch.setattr(execute_module, "config_hash", lambda config: "c0")
    monkeypatch.setattr(execute_module, "job_identity", lambda job, seed: ("id",))
    trained = []
    monkeypatch.setattr(execute_module, "train_one", lambda *args, run_id, resume, **kwargs:
                        trained.append((run_id, resume)) or {"status": "ok"})
    for leftover, resume in (("old0", True), (None, True), (None, False)):
        monkeypatch.setattr(execute_module, "take_leftovers", lambda *args, **kwargs: leftover)
        run = PlannedRun(SimpleNamespace(), 1, "c0", "sha256:x", resume=resume)
        said = []
        assert execute_module.execute(run, "r0", str(tmp_path), "cpu", on_start=said.append) == {"status": "ok"}
        assert said == [leftover or "r0"] and trained[-1] == (leftover or "r0", leftover is not None)


def test_run_py_jobs_gives_its_backend_the_flushed_echo(monkeypatch, tmp_path, capsys):
    """run.py --jobs N made its backend with print's default echo, unflushed: into a file or a pipe, the line naming
    a run's train.log waited for the next flushed line (the first run's end)."""
    import mmsa_atsuko.sweep as sweep_package
    made = {}

    def backend(*args, **kwargs):
        made.update(kwargs)
        return SimpleNamespace()
    monkeypatch.setattr(sweep_package, "LocalBackend", backend)
    monkeypatch.setattr(sweep_package, "run_packed", lambda *args, **kwargs: [])
    flushed = []
    monkeypatch.setattr("builtins.print", lambda *args, **kwargs: flushed.append((args, kwargs.get("flush"))))
    cli.main(["-m", "tfn", "-d", "mosi", "-s", "1", "2", "--synthetic", "--jobs", "2", "--out", str(tmp_path)])
    flushed.clear()
    made["echo"]("started tfn mosi seed 1 on cpu: its epochs go to ...")
    assert flushed == [(("started tfn mosi seed 1 on cpu: its epochs go to ...",), True)]


def test_cpu_jobs_are_the_cores_over_the_threads():
    assert cpu_jobs(threads=1, runs=5, cores=2) == 2
    assert cpu_jobs(threads=2, runs=5, cores=2) == 1
    assert cpu_jobs(threads=3, runs=5, cores=2) == 1
    assert cpu_jobs(threads=4, runs=5, cores=16) == 4
    assert cpu_jobs(threads=1, runs=3, cores=16) == 3


def test_parse_jobs_and_the_default():
    assert parse_jobs("auto") == "auto" and parse_jobs("3") == 3
    for bad in ("0", "-1", "many"):
        with pytest.raises(UsageError, match="--jobs"):
            parse_jobs(bad)
    assert default_jobs(["cpu"], runs=5) == 1
    assert default_jobs(["cuda:0"], runs=5) == "auto" and default_jobs(["cuda:0"], runs=1) == 1


def test_jobs_refuses_the_options_that_run_in_process(tmp_path):
    for flag in ("--rerun", "--tensorboard"):
        args = cli.train_parser().parse_args(["-m", "tfn", "-d", "mosi", "--jobs", "2", flag])
        with pytest.raises(UsageError, match=f"{flag}.*drop --jobs"):
            cli.train_jobs(args, runs=5)
    # --resume continues its runs in the workers, as sweep --resume does (tests/test_cli.py has it end to end)
    args = cli.train_parser().parse_args(["-m", "tfn", "-d", "mosi", "--jobs", "2", "--resume"])
    assert cli.train_jobs(args, runs=5) == 2
    args = cli.train_parser().parse_args(["-m", "tfn", "-d", "mosi", "--device", "cpu"])
    assert cli.train_jobs(args, runs=5) == 1 and args.threads == 1


# ---- determinism mode ---------------------------------------------------------------------------

def test_set_seed_is_strict_unless_asked_not_to_be():
    try:
        set_seed(0, deterministic=False)
        assert not torch.are_deterministic_algorithms_enabled()
        set_seed(0)
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.is_deterministic_algorithms_warn_only_enabled()       # strict: no warn_only
    finally:
        set_seed(0)


def _spy_on_fit(monkeypatch) -> list:
    """What torch's determinism flag and autocast were while each run's model trained."""
    seen = []
    real_fit = one_run.fit

    def spy(model, *args, **kwargs):
        real_forward = model.forward

        def forward(batch):
            seen.append((torch.are_deterministic_algorithms_enabled(), torch.is_autocast_enabled("cpu")))
            return real_forward(batch)

        model.forward = forward
        return real_fit(model, *args, **kwargs)

    monkeypatch.setattr(one_run, "fit", spy)
    return seen


@pytest.mark.parametrize("deterministic", [True, False])
def test_the_mode_reaches_torch_and_the_record(tmp_path, monkeypatch, deterministic):
    seen = _spy_on_fit(monkeypatch)
    try:
        (record,) = mmsa_atsuko.run("tfn", "mosi", seeds=[1], out=tmp_path, deterministic=deterministic, **TINY)
    finally:
        set_seed(0)
    assert seen and {flag for flag, _ in seen} == {deterministic}
    assert record["deterministic"] is deterministic and read_records(tmp_path)[0]["deterministic"] is deterministic


def test_a_sweep_passes_the_mode_and_precision_to_its_runs(tmp_path, monkeypatch):
    from mmsa_atsuko.sweep import sweep
    seen = _spy_on_fit(monkeypatch)
    try:
        summary = sweep(out=tmp_path, backend=LocalBackend(1, "cpu"), echo=lambda line: None, deterministic=False,
                        precision="bf16", models=["tfn"], datasets=["mosi"], seeds=[1], synthetic=True,
                        preset="small", max_epochs=1)
    finally:
        set_seed(0)
    assert seen and set(seen) == {(False, True)}
    (record,) = summary.records
    assert (record["deterministic"], record["precision"]) == (False, "bf16")


# ---- precision ----------------------------------------------------------------------------------

def test_a_bf16_request_that_finds_an_fp32_run_recorded_says_so(tmp_path):
    """Precision is not part of a run's identity: `--precision bf16` skipped the recorded fp32 run and showed its
    numbers under a line that read as for any recorded bf16 run; a sweep counted it 'already recorded'."""
    from mmsa_atsuko.sweep import sweep
    lines = []
    (fp32,) = mmsa_atsuko.run("tfn", "mosi", seeds=[1], out=tmp_path, echo=lines.append, **TINY)
    assert lines == []
    (shown,) = mmsa_atsuko.run("tfn", "mosi", seeds=[1], out=tmp_path, echo=lines.append, precision="bf16", **TINY)
    assert shown == fp32 and len(read_records(tmp_path)) == 1                  # skipped, as before
    assert lines == [f"skip tfn mosi seed 1: recorded as {fp32['run_id']}, which ran at fp32, not the bf16 asked "
                     f"(precision is not part of a run's identity: --rerun trains it at bf16 in its place, or give "
                     f"another --out)"]
    lines.clear()
    mmsa_atsuko.run("tfn", "mosi", seeds=[1], out=tmp_path, echo=lines.append, **TINY)
    assert lines == [f"skip tfn mosi seed 1: recorded as {fp32['run_id']} (--rerun trains it again)"]

    said = []
    sweep(out=tmp_path, backend=LocalBackend(1, "cpu"), echo=said.append, precision="bf16", models=["tfn"],
          datasets=["mosi"], seeds=[1], synthetic=True, preset="small", max_epochs=1)
    assert ("1 already recorded (1 at fp32, not the bf16 asked: precision is not part of a run's identity; give "
            "another --out for bf16 runs), ") in said[1]
    said.clear()
    sweep(out=tmp_path, backend=LocalBackend(1, "cpu"), echo=said.append, models=["tfn"], datasets=["mosi"],
          seeds=[1], synthetic=True, preset="small", max_epochs=1)
    assert "1 already recorded, " in said[1]


def test_a_nondeterministic_request_that_finds_a_deterministic_run_recorded_says_so(tmp_path):
    """Kernels are not part of a run's identity either: --nondeterministic skipped the recorded deterministic run
    under a line that said nothing of its kernels ('(--rerun trains it again)'), though --rerun's _serves checks
    them."""
    lines = []
    (strict,) = mmsa_atsuko.run("tfn", "mosi", seeds=[1], out=tmp_path, echo=lines.append, **TINY)
    (shown,) = mmsa_atsuko.run("tfn", "mosi", seeds=[1], out=tmp_path, echo=lines.append, deterministic=False, **TINY)
    assert shown == strict and len(read_records(tmp_path)) == 1                # skipped, as before
    (shown,) = mmsa_atsuko.run("tfn", "mosi", seeds=[1], out=tmp_path, echo=lines.append, deterministic=False,
                               precision="bf16", **TINY)
    assert shown == strict and len(read_records(tmp_path)) == 1
    assert lines == [f"skip tfn mosi seed 1: recorded as {strict['run_id']}, which ran with deterministic kernels, not "
                     f"the nondeterministic asked (kernels are not part of a run's identity: --rerun trains it with "
                     f"nondeterministic kernels in its place, or give another --out)",
                     f"skip tfn mosi seed 1: recorded as {strict['run_id']}, which ran at fp32, not the bf16 asked, "
                     f"and with deterministic kernels, not the nondeterministic asked (neither precision nor kernels "
                     f"are part of a run's identity: --rerun trains it at bf16 with nondeterministic kernels, in its "
                     f"place, or give another --out)"]


def test_a_nondeterministic_sweep_that_finds_a_deterministic_run_recorded_says_so(tmp_path):
    """The sweep's plan line named recorded runs at another precision but said '1 already recorded, ' of a
    deterministic run a --nondeterministic sweep skipped (`results.ran_with_other_kernels`, api.run's rule)."""
    from mmsa_atsuko.sweep import sweep
    mmsa_atsuko.run("tfn", "mosi", seeds=[1], out=tmp_path, **TINY)
    said = []
    sweep(out=tmp_path, backend=LocalBackend(1, "cpu"), echo=said.append, deterministic=False, models=["tfn"],
          datasets=["mosi"], seeds=[1], synthetic=True, preset="small", max_epochs=1)
    assert ("1 already recorded (1 with deterministic kernels, not the nondeterministic asked: kernels are not part "
            "of a run's identity; give another --out for nondeterministic runs), ") in said[1]
    assert len(read_records(tmp_path)) == 1

def test_bf16_autocast_trains_and_stays_near_fp32():
    data = make_dataset()

    def once(precision):
        set_seed(3)
        return fit_probe(data, precision)

    fp32, bf16, again = once("fp32"), once("bf16"), once("bf16")
    assert (bf16.test.pred == again.test.pred).all()
    assert not (bf16.test.pred == fp32.test.pred).all()                 # autocast was on: bf16 rounding
    assert abs(bf16.test.pred - fp32.test.pred).max() < 0.1
    with pytest.raises(UsageError, match="--precision must be one of fp32, bf16"):
        fit_probe(data, "fp16")


def fit_probe(data, precision, **kw):
    return trainer_mod.fit(LinearProbe(), data, cfg(max_epochs=2, early_stop=100, **kw), device=torch.device("cpu"),
                           seed=3, precision=precision)


def test_a_bf16_run_records_its_precision(tmp_path, monkeypatch):
    seen = _spy_on_fit(monkeypatch)
    (record,) = mmsa_atsuko.run("tfn", "mosi", seeds=[1], out=tmp_path, precision="bf16", **TINY)
    assert seen and all(autocast for _, autocast in seen)
    assert record["status"] == "ok" and record["precision"] == "bf16" and math.isfinite(record["metrics"]["MAE"])
    (default,) = mmsa_atsuko.run("tfn", "mosi", seeds=[1], out=tmp_path / "fp32", **TINY)
    assert default["precision"] == "fp32"


# ---- the record's hardware fields ---------------------------------------------------------------

def test_records_carry_the_hardware_figures(tmp_path):
    (record,) = mmsa_atsuko.run("tfn", "mosi", seeds=[1], out=tmp_path, threads=1, **TINY)
    assert record["device"] == "cpu" and record["device_name"] == hardware.device_name(torch.device("cpu"))
    capability = torch.backends.cpu.get_cpu_capability()      # e.g. AVX2, AVX512: which kernels summed
    assert record["device_name"].endswith(f" [{capability}]") and len(record["device_name"]) > len(capability) + 3
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert 0 < record["peak_memory_mb"] <= rss_mb          # the process's peak RSS when the run ended
    assert record["steps_per_s"] > 0 and record["torch_threads"] == 1
    assert read_records(tmp_path)[0]["steps_per_s"] == record["steps_per_s"]


def test_cpu_peak_memory_is_the_process_peak_rss():
    before = hardware.peak_memory_mb(torch.device("cpu"))
    block = torch.ones(300 * 2**20 // 4)               # 300 MB, every page touched
    after = hardware.peak_memory_mb(torch.device("cpu"))
    del block
    assert after >= before and after >= 300
    assert hardware.peak_memory_mb(torch.device("cpu")) >= after            # never goes down


def test_steps_per_s_counts_training_batches_over_training_time(monkeypatch):
    class Clock:                       # every reading is one second after the last
        now = 0.0

        def perf_counter(self):
            Clock.now += 1.0
            return Clock.now

    monkeypatch.setattr(trainer_mod, "time", Clock())
    result = fit_probe(make_dataset(), "fp32")          # 48 train samples at batch 16: 3 batches an epoch
    assert result.steps_per_s == 3.0                    # each epoch's pass reads the clock twice: 1 s


# ---- the hot loop ---------------------------------------------------------------------------------

def test_the_training_step_reads_nothing_back_from_the_device(monkeypatch):
    """Host reads (item, float, bool, cpu, numpy) happen per epoch, never per step: twelve steps
    an epoch read exactly as often as three."""
    counts = {"n": 0}
    for name in ("item", "__float__", "__bool__", "cpu", "numpy"):
        real = getattr(torch.Tensor, name)

        def counted(self, *args, _real=real, **kwargs):
            counts["n"] += 1
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)

    def reads(batch_size):
        counts["n"] = 0
        set_seed(1)
        fit_probe(make_dataset(), "fp32", batch_size=batch_size, eval_batch_size=16, grad_clip=1.0,
                  grad_clip_mode="norm")
        return counts["n"]

    assert reads(16) == reads(4) > 0


# ---- --jobs: the same metrics as one process ------------------------------------------------------

def test_two_workers_write_one_mmsa_row_per_protocol_condition_as_one_process_does(tmp_path):
    """`--missing-rate 0 0.3 --jobs 2` wrote one row `tfn`, both rates' runs averaged together, where
    the same call in one process writes `tfn` and `tfn [missing_rate=0.3]`."""
    kw = dict(synthetic=True, preset="small", max_epochs=1, missing_rates=[0.0, 0.3])
    runs = run_packed(["tfn"], ["mosi"], [1, 2], out=tmp_path, echo=lambda line: None,
                      backend=LocalBackend(2, "cpu", threads=1), **kw)
    rows = list(csv.DictReader((tmp_path / "normal" / "mosi-synthetic.csv").read_text().splitlines()))
    assert [row["Model"] for row in rows] == ["tfn", "tfn [missing_rate=0.3]"]
    for row in rows:
        rate = 0.3 if "missing_rate" in row["Model"] else 0.0
        maes = [r["metrics"]["MAE"] for r in runs if r["condition"]["missing_rate"] == rate]
        assert len(maes) == 2 and row["MAE"] == mmsa_cell([mmsa_seed_value("mosi", "MAE", v) for v in maes])


def test_seeds_on_two_workers_give_the_metrics_of_a_sequential_run(tmp_path):
    kw = dict(synthetic=True, preset="small", max_epochs=2)
    sequential = mmsa_atsuko.run("tfn", "mosi", seeds=[1, 2, 3], out=tmp_path / "one", quiet=True, threads=1, **kw)
    lines = []
    packed = run_packed(["tfn"], ["mosi"], [1, 2, 3], out=tmp_path / "two", echo=lines.append,
                        backend=LocalBackend(2, "cpu", threads=1), **kw)
    assert any("2 worker processes" in line for line in lines)
    assert [r["seed"] for r in packed] == [1, 2, 3]
    for a, b in zip(sequential, packed):
        assert a["torch_threads"] == b["torch_threads"] == 1
        assert json_safe(a["metrics"]) == b["metrics"] and a["run_id"] != b["run_id"]
    assert len(read_records(tmp_path / "two")) == 3
    one, two = (list(csv.DictReader((tmp_path / out / "normal" / "mosi-synthetic.csv").read_text().splitlines()))
                for out in ("one", "two"))
    # The same row but for the run ids it names, each call's own
    assert [row.pop("run_ids") for row in one] == [" ".join(r["run_id"] for r in sequential)]
    assert [row.pop("run_ids") for row in two] == [" ".join(r["run_id"] for r in packed)]
    assert one == two and one[0]["seeds"] == "1 2 3"
    # recorded seeds are skipped, as `run` skips them, and returned in their place
    again = run_packed(["tfn"], ["mosi"], [1, 2, 3], out=tmp_path / "two", echo=lines.append,
                       backend=LocalBackend(2, "cpu", threads=1), **kw)
    assert [r["run_id"] for r in again] == [r["run_id"] for r in packed]
