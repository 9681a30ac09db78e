"""The CUDA-only branches, run on the CPU with torch.cuda's answers made up (no GPU needed): what a GPU run would
hit in the random streams of a resumed run, the checks made before a run starts, and the device a run's CUDA
calls go to."""
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from mmsa_atsuko.training.trainer import build_optimizer
from mmsa_atsuko.training.training_state import load_training_state, save_training_state


def _fake_cuda_streams(monkeypatch) -> tuple[dict, dict]:
    """Two GPUs' random streams (cuda:0 holds 10s, cuda:1 11s) behind torch.cuda's getters and setters, the old
    every-GPU ones included; returns (the streams, what was restored onto which GPU index)."""
    streams = {0: torch.full((16,), 10, dtype=torch.uint8), 1: torch.full((16,), 11, dtype=torch.uint8)}
    restored = {}

    def index(device) -> int:
        return torch.device(device).index if not isinstance(device, int) else device

    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": streams[index(device)].clone())
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [streams[0].clone(), streams[1].clone()])
    monkeypatch.setattr(torch.cuda, "set_rng_state",
                        lambda state, device="cuda": restored.__setitem__(index(device), state.clone()))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all",
                        lambda states: restored.update({i: s.clone() for i, s in enumerate(states)}))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    return streams, restored


def _saved_state(path, device: torch.device):
    config = SimpleNamespace(learning_rate=1e-3, weight_decay=0.0)
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    optimizer = build_optimizer(model, config)
    save_training_state(path, model, optimizer, None, torch.Generator(), device, epoch=1, history=[{"epoch": 1}],
                        best=(0.5, 1, None, {"MAE": 0.5}))
    return lambda on: load_training_state(path, model, build_optimizer(model, config), None, torch.Generator(), on)


def test_a_run_resumed_on_another_gpu_continues_its_own_gpus_random_stream(tmp_path, monkeypatch):
    """A sweep's workers take devices round-robin, so a run that trained its first epoch on cuda:1 may resume on
    cuda:0. last.pt held every GPU's stream (get_rng_state_all), restored by position: cuda:0 got its own unused
    stream back (10s), so the resumed run's dropout drew other numbers than the uninterrupted run's."""
    streams, restored = _fake_cuda_streams(monkeypatch)
    resume = _saved_state(tmp_path / "last.pt", torch.device("cuda:1"))
    assert resume(torch.device("cuda:0"))[0] == 1
    assert list(restored) == [0] and torch.equal(restored[0], streams[1])


def test_a_cuda_runs_state_resumed_on_the_cpu_sets_no_gpu_stream(tmp_path, monkeypatch):
    _, restored = _fake_cuda_streams(monkeypatch)
    resume = _saved_state(tmp_path / "last.pt", torch.device("cuda:0"))
    assert resume(torch.device("cpu"))[0] == 1
    assert restored == {}


# ---- CUBLAS_WORKSPACE_CONFIG: a value torch's strict determinism refuses, said before a run trains -------------

TINY = dict(synthetic=True, preset="small", max_epochs=1, quiet=True)
REFUSED_CUBLAS = ("deterministic kernels on {} need CUBLAS_WORKSPACE_CONFIG=:4096:8 or :16:8 (torch refuses any other "
                  "value), and it is set to ':4096:2:16:8' in this environment: set one of those, or pass "
                  "--nondeterministic")


@pytest.fixture
def one_fake_gpu(monkeypatch):
    """torch sees one GPU (its answers made up), and the environment holds torch's Hopper default workspace
    setting, which strict determinism refuses: the package's ":4096:8" is only a default (setdefault)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:2:16:8")


def test_run_refuses_a_cublas_setting_strict_determinism_refuses_before_it_writes(tmp_path, one_fake_gpu):
    """Before, the run made its folder and its first matmul on the GPU raised torch's RuntimeError (run.py: a
    traceback). Now one line, nothing written; --nondeterministic does not need the setting."""
    import mmsa_atsuko
    from mmsa_atsuko.errors import UsageError
    with pytest.raises(UsageError) as refused:
        mmsa_atsuko.run("tfn", "mosi", seeds=[1], out=tmp_path / "out", device="cuda", **TINY)
    assert str(refused.value) == REFUSED_CUBLAS.format("cuda")
    assert not (tmp_path / "out").exists()


def test_a_sweep_refuses_it_before_its_workers_start(tmp_path, one_fake_gpu):
    from mmsa_atsuko.errors import UsageError
    from mmsa_atsuko.sweep import LocalBackend, sweep
    backend = LocalBackend(2, "cpu", threads=1)
    backend.devices = ["cuda:0"]                     # what parse_devices gives on a one-GPU machine
    with pytest.raises(UsageError) as refused:
        sweep(out=tmp_path, backend=backend, echo=lambda line: None, models=["tfn"], datasets=["mosi"], seeds=[1],
              synthetic=True, preset="small", max_epochs=1)
    assert str(refused.value) == REFUSED_CUBLAS.format("cuda:0")
    assert backend.workers == [] and not (tmp_path / "runs.jsonl").exists()



# ---- CUDA started before `import mmsa_atsuko` (a notebook ran torch on the GPU first) ---------------------------

TOO_LATE = ("deterministic kernels on {} need CUBLAS_WORKSPACE_CONFIG set before CUDA starts, and CUDA had started in "
            "this process before mmsa_atsuko was imported and set it: restart the kernel and import mmsa_atsuko "
            "before using the GPU, or set CUBLAS_WORKSPACE_CONFIG=:4096:8 before starting Python, or pass "
            "--nondeterministic (deterministic=False in Python)")


def test_run_py_refuses_a_deterministic_run_when_cuda_started_before_the_import(tmp_path):
    """The package sets CUBLAS_WORKSPACE_CONFIG at import; in a process whose CUDA had started before (torch used on
    the GPU first), cuBLAS may have read its setting already, and a strict run went on, not bit-identical. Here a
    fresh interpreter, torch's CUDA answers made up, the variable not in its environment: one line, exit 2, nothing
    written."""
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "CUBLAS_WORKSPACE_CONFIG"}
    env.update(PYTHONPATH=str(root), HF_HUB_OFFLINE="1", MMSA_ATSUKO_CACHE=str(tmp_path / "cache"))
    code = ("import sys, torch\n"
            "torch.cuda.is_initialized = torch.cuda.is_available = lambda: True\n"
            "torch.cuda.device_count = lambda: 1\n"
            "from mmsa_atsuko.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    argv = ["-m", "tfn", "-d", "mosi", "--synthetic", "--preset", "small", "--max-epochs", "1", "-s", "1",
            "--device", "cuda", "--out", str(tmp_path / "out")]
    done = subprocess.run([sys.executable, "-c", code, *argv], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)
    assert (done.returncode, done.stderr) == (2, f"error: {TOO_LATE.format('cuda')}\n"), done.stdout
    assert not (tmp_path / "out").exists()


def test_cuda_started_before_the_import_refuses_only_strict_runs_in_this_process(monkeypatch):
    """A value in the environment before the import (set before Python started) is the user's, read by cuBLAS
    when CUDA started: no refusal. A sweep's workers are fresh processes, which the package's value reaches."""
    from mmsa_atsuko.errors import UsageError
    from mmsa_atsuko.training import hardware
    monkeypatch.setattr(hardware, "_cublas_set_after_cuda", False)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    hardware.default_cublas_workspace()
    hardware.check_cuda_determinism(["cuda:0"], True)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG")
    hardware.default_cublas_workspace()                  # as `import mmsa_atsuko` after torch used the GPU
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    with pytest.raises(UsageError) as refused:
        hardware.check_cuda_determinism([torch.device("cpu"), torch.device("cuda:1")], True)
    assert str(refused.value) == TOO_LATE.format("cuda:1")
    hardware.check_cuda_determinism(["cuda:1"], False)
    hardware.check_cuda_determinism(["cpu"], True)
    hardware.check_cuda_determinism(["cuda:1"], True, in_this_process=False)


def test_a_sweep_that_trains_in_process_refuses_it_before_it_writes(tmp_path, monkeypatch):
    from mmsa_atsuko.errors import UsageError
    from mmsa_atsuko.sweep import LocalBackend, sweep
    from mmsa_atsuko.training import hardware
    monkeypatch.setattr(hardware, "_cublas_set_after_cuda", True)
    backend = LocalBackend(1, "cpu", threads=1)
    backend.devices = ["cuda:0"]
    with pytest.raises(UsageError) as refused:
        sweep(out=tmp_path, backend=backend, echo=lambda line: None, models=["tfn"], datasets=["mosi"], seeds=[1],
              synthetic=True, preset="small", max_epochs=1)
    assert str(refused.value) == TOO_LATE.format("cuda:0")
    assert not (tmp_path / "runs.jsonl").exists()

# ---- the run's GPU is CUDA's current device while it trains ---------------------------------------------------

@pytest.fixture
def tfn_job():
    from mmsa_atsuko.api.jobs import prepare_job
    return prepare_job("tfn", "mosi", aligned=False, data_root=None, feature_path=None, synthetic=True,
                       synthetic_size="small", preset="small", overrides=[], max_epochs=1, loaded={})


def _fake_gpu_training(monkeypatch) -> tuple[list, list]:
    """CUDA's current GPU and memory counters made up, and a `fit` that notes which GPU is current; returns (what was
    reset and trained with which GPU current, [the current GPU]). The current GPU is faked at the toolkit's boundary,
    `torch.cuda.device` (what `hardware.on_device` enters), as its documented contract: current inside, the previous
    one back after."""
    from mmsa_atsuko.api import one_run
    from mmsa_atsuko.training.trainer import FitResult
    current, seen = [0], []

    class CurrentGpu:
        def __init__(self, device):
            self.index = torch.device(device).index

        def __enter__(self):
            self.previous, current[0] = current[0], self.index

        def __exit__(self, *exc):
            current[0] = self.previous

    monkeypatch.setattr(torch.cuda, "device", CurrentGpu)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: seen.append(("reset", current[0])))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 3 * 2**20)

    def fit(model, data, config, *, device, seed, **kw):
        seen.append(("fit", current[0]))
        return FitResult(1, 1, {}, None, [])

    monkeypatch.setattr(one_run, "fit", fit)
    return seen, current


def test_a_run_on_cuda_1_trains_with_cuda_1_current_and_gives_cuda_0_back(monkeypatch, tfn_job):
    """torch's calls without a device (autocast's bf16 check, `torch.cuda.is_bf16_supported`) ask the current GPU;
    a run on cuda:1, in run.py or a sweep's worker, left cuda:0 current while it trained."""
    from mmsa_atsuko.api.one_run import train_model
    seen, current = _fake_gpu_training(monkeypatch)
    assert train_model(tfn_job, 1, torch.device("cuda:1"))[2] == 3.0
    assert seen == [("reset", 1), ("fit", 1)] and current == [0]


def test_a_workers_run_refuses_the_cublas_setting_too(monkeypatch, tfn_job):
    """A tune's trial and a run given a worker by a backend the driver cannot see into (Ray) reach `train_model`."""
    from mmsa_atsuko.api.one_run import train_model
    from mmsa_atsuko.errors import UsageError
    seen, _ = _fake_gpu_training(monkeypatch)
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", "")
    with pytest.raises(UsageError, match="CUBLAS_WORKSPACE_CONFIG=:4096:8 or :16:8 .* set to '' in this environment"):
        train_model(tfn_job, 1, torch.device("cuda:0"))
    assert seen == []                        # nothing trained
    assert train_model(tfn_job, 1, torch.device("cuda:0"), deterministic=False)[2] == 3.0


# ---- the GPU bench's utilisation: the GPU the bench runs on, as NVML numbers it -------------------------------

def test_the_bench_reads_the_utilisation_of_its_own_gpu_under_cuda_visible_devices(monkeypatch):
    """NVML numbers every GPU, CUDA only the visible ones: with CUDA_VISIBLE_DEVICES=3,5, cuda:1 is NVML's 5. The
    bench asked NVML for GPU 1, so its 'average utilisation' was another GPU's."""
    bench = str(Path(__file__).resolve().parents[1] / "bench")
    monkeypatch.syspath_prepend(bench)
    import gpu_bench
    asked = []
    fake = SimpleNamespace(nvmlInit=lambda: None, nvmlDeviceGetHandleByIndex=lambda i: asked.append(i) or i,
                           nvmlDeviceGetUtilizationRates=lambda handle: SimpleNamespace(gpu=40 + handle))
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert gpu_bench.Utilisation(torch.device("cuda:1")).read() == 45 and asked == [5]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")              # the bench's default, --device cuda: the current GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert gpu_bench.Utilisation(torch.device("cuda")).read() == 47 and asked == [5, 7]


# ---- the lease: every requirement the image lacks, named before the bench starts -------------------------------

def test_the_lease_check_names_every_missing_requirement_at_once(monkeypatch):
    """The lease image lacked easydict; a missing package stopped gpu_bench.py at its first import, and the next
    step on the same one, one wheel found per lease. Versions: a lease image's, with two taken away."""
    from importlib.metadata import PackageNotFoundError
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "bench"))
    import lease_requirements
    assert {"torch>=2.6,<3", "easydict>=1.10,<2"} <= set(lease_requirements.install_requires())   # setup.py's
    have = {"torch": "2.11.0+cu130", "filelock": "3.20.0", "numpy": "2.5.2"}

    def installed(name):
        if name not in have:
            raise PackageNotFoundError(name)
        return have[name]

    missing, other = lease_requirements.problems(
        ["torch>=2.6,<3", "easydict>=1.10,<2", "gdown>=6.0,<7", "filelock>=4.2.12,<5", "numpy>=1.24,<3",
         "pyyaml>=6.0,<7"], installed)
    carry = "; carry its wheel (bench/gpu_lease.sh's header)"
    assert missing == [f"easydict is not installed (setup.py: easydict>=1.10,<2){carry}",
                       f"pyyaml is not installed (setup.py: pyyaml>=6.0,<7){carry}"]
    assert other == ["gdown is not installed (setup.py: gdown>=6.0,<7); the bench does not import it",
                     "filelock 3.20.0 is outside setup.py's filelock>=4.2.12,<5: the figures are this version's"]


# ---- --jobs auto: the memory read in the worker that ran the run ------------------------------------------------

def test_a_worker_reads_its_own_gpus_free_memory_and_its_allocators_peak(monkeypatch):
    """The driver read mem_get_info itself, which made it a CUDA context on the GPU (about 500 MB, held to the
    sweep's end), and sized the runs by max_memory_allocated: a worker's allocator holds more (fragmentation), and
    a sweep of many runs packed past the GPU. The worker that ran the run reads both now, on its own GPU."""
    from mmsa_atsuko.training.hardware import gpu_memory_after_run
    asked = []
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: asked.append(device) or (6 * 2**30, 80 * 2**30))
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device: asked.append(device) or 3 * 2**29)
    assert gpu_memory_after_run("cuda:1") == {"free_mb": 6144.0, "reserved_mb": 1536.0}
    assert asked == [torch.device("cuda:1")] * 2
    assert gpu_memory_after_run("cpu") is None

    def sticky_error(device):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(torch.cuda, "mem_get_info", sticky_error)
    assert gpu_memory_after_run("cuda:0") is None        # a CUDA error the run left
    monkeypatch.setattr(torch.cuda, "mem_get_info", _cuda_cannot_start)
    assert gpu_memory_after_run("cuda:0") is None        # not only a RuntimeError: any reading that raises


def _cuda_cannot_start(device):
    raise AssertionError("Torch not compiled with CUDA enabled")      # what torch.cuda._lazy_init raises


class _DriverEnd:
    """The driver's end of a worker's pipe: the tasks it sends (then None, stop), and what the worker sent back."""

    def __init__(self, tasks):
        self.tasks, self.sent = [*tasks, None], []

    def recv(self):
        return self.tasks.pop(0)

    def send(self, item):
        self.sent.append(item)


def test_a_worker_sends_every_runs_record_and_reads_the_gpu_only_to_size_it_after_an_ok_run(monkeypatch):
    """A reading that raised anything but a RuntimeError (torch's AssertionError where CUDA cannot start) killed the
    worker between its run's end and the record's send: the driver wrote 'worker process died' for a run that had
    finished. And every run's end read the GPU, one that failed before it touched the GPU too (a CUDA context made
    for nothing)."""
    from mmsa_atsuko.sweep.worker_side import serve as _serve
    records = {"a": {"status": "ok"}, "b": {"status": "failed"}, "c": {"status": "ok"}}
    asked = []
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: asked.append(device) or (6 * 2**30, 80 * 2**30))
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device: 3 * 2**29)
    # run a: ok on a device to size; b: failed, c: ok on a device sized already (the driver's last field)
    tasks = [("a", "a1", "out", True), ("b", "b1", "out", True), ("c", "c1", "out", False)]
    driver = _DriverEnd(tasks)
    _serve(driver, "cuda:1", lambda run, run_id, out, device, on_start: records[run])
    assert driver.sent == [(records["a"], {"free_mb": 6144.0, "reserved_mb": 1536.0}), (records["b"], None),
                           (records["c"], None)]
    assert asked == [torch.device("cuda:1")]
    monkeypatch.setattr(torch.cuda, "mem_get_info", _cuda_cannot_start)
    driver = _DriverEnd(tasks)
    _serve(driver, "cuda:1", lambda run, run_id, out, device, on_start: records[run])
    assert driver.sent == [(records[run], None) for run in "abc"]
