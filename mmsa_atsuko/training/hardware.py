"""What a run ran on and what it used: device name, peak memory, threads, and how many runs fit at once.

Peak memory is the GPU's `max_memory_allocated` on CUDA (reset before each run, so it is that
run's), and the process's peak RSS (`ru_maxrss`) on the CPU. RSS is per process and never goes
down: in a process that loaded data or trained before (a multi-seed `run`, a sweep worker), it is
the largest the process has been so far, which bounds the run's own peak from above.

The checks (precision, threads, jobs) import no torch: a sweep runs them before it plans, and torch comes only
with the functions that read a device, whose callers hold a torch.device already.
"""
from __future__ import annotations

import contextlib
import functools
import os
import platform
import resource
import sys
from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("fp32", "bf16")
# One thread per run by default: on the 2-core machines, a small run with 2 intra-op threads took
# 3-5x the wall time and 4-7x the CPU time of one thread while other work ran (OpenMP threads
# spin at each barrier while the other core is taken; bench/README.md, "Threads").
DEFAULT_THREADS = 1
# Free memory kept back when runs are packed on one GPU: the allocator's fragmentation and the
# peaks of later epochs (a longer valid pass, a bigger last batch) that the first run did not hit.
GPU_MEMORY_MARGIN = 0.15
CUDA_CONTEXT_MB = 600          # a worker's CUDA context and kernels, outside max_memory_reserved too


# The values of CUBLAS_WORKSPACE_CONFIG that torch's strict determinism takes on CUDA (its
# checkCuBLASConfigDeterministic). The package sets ":4096:8" at import (`default_cublas_workspace`) unless the
# environment holds a value already; another value there (":4096:2:16:8", ":0:0", "") made a deterministic run's first
# matmul on the GPU raise a RuntimeError, after its folder was made: in run.py a traceback.
DETERMINISTIC_CUBLAS_CONFIGS = (":4096:8", ":16:8")
# Whether the package's import set CUBLAS_WORKSPACE_CONFIG after CUDA had started in this process (a notebook that ran
# torch on the GPU first): torch's cuBLAS may have read its workspace setting already, so the value came too late.
_cublas_set_after_cuda = False


def default_cublas_workspace() -> None:
    """At the package's import: CUBLAS_WORKSPACE_CONFIG=:4096:8 unless the environment holds a value, and whether
    CUDA had started already. No torch import: with torch not imported, CUDA has not started."""
    global _cublas_set_after_cuda
    if "CUBLAS_WORKSPACE_CONFIG" in os.environ:
        return
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
    cuda = getattr(sys.modules.get("torch"), "cuda", None)
    _cublas_set_after_cuda = cuda is not None and cuda.is_initialized()


def check_cuda_determinism(devices, deterministic: bool, *, in_this_process: bool = True) -> None:
    """UsageError before deterministic runs on `devices` (torch.devices or their names) train, when one is CUDA and
    torch would refuse the cuBLAS workspace setting mid-run, or, for runs that train in this process
    (`in_this_process`; a sweep's workers start afresh), when the package set it after CUDA had started here. No
    torch: a sweep's driver checks before any worker."""
    device = next((d for d in devices if str(d).startswith("cuda")), None)
    if not deterministic or device is None:
        return
    value = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    if value not in DETERMINISTIC_CUBLAS_CONFIGS:
        shown = "not set" if value is None else f"set to {value!r}"
        raise UsageError(f"deterministic kernels on {device} need CUBLAS_WORKSPACE_CONFIG=:4096:8 or :16:8 (torch "
                         f"refuses any other value), and it is {shown} in this environment: set one of those, or "
                         f"pass --nondeterministic")
    if in_this_process and _cublas_set_after_cuda:
        raise UsageError(f"deterministic kernels on {device} need CUBLAS_WORKSPACE_CONFIG set before CUDA starts, "
                         f"and CUDA had started in this process before mmsa_atsuko was imported and set it: restart "
                         f"the kernel and import mmsa_atsuko before using the GPU, or set "
                         f"CUBLAS_WORKSPACE_CONFIG=:4096:8 before starting Python, or pass --nondeterministic "
                         f"(deterministic=False in Python)")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def check_threads(threads: int | None) -> int | None:
    if threads is not None and int(threads) < 1:
        raise UsageError(f"--threads must be at least 1, got {threads}")
    return None if threads is None else int(threads)


def parse_jobs(text) -> int | str:
    """'auto' | N (N >= 1), as `--jobs` takes it."""
    if str(text) == "auto":
        return "auto"
    try:
        jobs = int(text)
    except (TypeError, ValueError):
        raise UsageError(f"--jobs must be a number or auto, got {text!r}") from None
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1 (or auto), got {jobs}")
    return jobs


def cpu_jobs(threads: int, runs: int, cores: int | None = None) -> int:
    """`--jobs auto` on the CPU: as many runs at once as the cores hold at `threads` each, at most `runs`."""
    cores = cores or os.cpu_count() or 1
    return max(1, min(runs, cores // max(1, threads)))


def gpu_jobs(peak_mb: float, free_mb: float, runs: int, *, running: int = 1, margin: float = GPU_MEMORY_MARGIN,
             context_mb: float = CUDA_CONTEXT_MB) -> int:
    """`--jobs auto` on one GPU: how many runs at once, counting the `running` ones, after one run
    peaked at `peak_mb` and `free_mb` is free with those running. The sweep passes as the peak the most the run's
    allocator held (max_memory_reserved, fragmentation included), or its max_memory_allocated where that is more.

    Each further run needs its peak plus a CUDA context; `margin` of the free memory is kept back.
    At least the runs already running, at most `runs`."""
    per_run = peak_mb + context_mb
    more = int(max(0.0, free_mb * (1 - margin)) // per_run) if per_run > 0 else 0
    return max(running, min(runs, running + more))


@functools.cache
def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def device_name(device: torch.device) -> str:
    """The GPU's name on CUDA, else the CPU's model name (/proc/cpuinfo, else platform) with the
    vector instructions torch's kernels use there, e.g. `Intel(R) Xeon(R) Processor [AVX512]`.
    One seed gives identical metrics on one machine, not across machines: two that both call
    themselves "Intel(R) Xeon(R) Processor" gave corrupt s2's five atsuko runs 0.5194 and 0.5212
    mean test MAE from the same code, and AVX2 and AVX512 kernels sum in different orders. The
    record keeps what can tell such machines apart."""
    import torch
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{_cpu_name()} [{torch.backends.cpu.get_cpu_capability()}]"      # torch >= 2.0 has it


def reset_peak_memory(device: torch.device) -> None:
    """Start the GPU's peak count at this run (the CPU's peak RSS cannot be reset; see the module doc)."""
    if device.type == "cuda":
        import torch
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    """GPU: max_memory_allocated since `reset_peak_memory`. CPU: the process's peak RSS so far."""
    if device.type == "cuda":
        import torch
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10      # bytes on macOS, KiB on Linux


def gpu_memory_after_run(device: str) -> dict | None:
    """What `--jobs auto` sizes by, read by the worker that ran the run, so that the sweep's driver never makes a CUDA
    context of its own (about 500 MB of the GPU, held to the sweep's end): the memory free on the run's GPU now, this
    worker's cache still held, and the most its allocator held during the run (`max_memory_reserved`, counted from
    `reset_peak_memory`: what one more worker takes too, fragmentation included; the record's max_memory_allocated
    is less). None off CUDA, and where the reading raises anything (a CUDA error that the run left, torch's
    AssertionError where CUDA cannot start): the run's record goes to the driver all the same."""
    if not device.startswith("cuda"):
        return None
    import torch
    try:
        gpu = torch.device(device)
        return {"free_mb": torch.cuda.mem_get_info(gpu)[0] / 2**20,
                "reserved_mb": torch.cuda.max_memory_reserved(gpu) / 2**20}
    except Exception:                  # the reading only sizes --jobs auto; a worker that died here lost the record
        return None


def autocast(device: torch.device, precision: str):
    """The forward pass's autocast context: bf16 autocast, or a disabled one for fp32."""
    import torch
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def on_device(device: torch.device):
    """The context in which `device` is CUDA's current device, where it names one (a no-op on the CPU and for a bare
    `cuda`). torch's calls that take no device ask the current one: autocast's bf16 check
    (`torch.cuda.is_bf16_supported`), a library's `device="cuda"`; a run on cuda:1 left them asking cuda:0."""
    if device.type == "cuda" and device.index is not None:
        import torch
        return torch.cuda.device(device)
    return contextlib.nullcontext()


def free_host_memory() -> int | None:
    """Bytes of memory a new allocation can have now without the OOM killer (MemAvailable plus SwapFree of
    /proc/meminfo), or None where the system does not say (not Linux)."""
    try:
        with open("/proc/meminfo", "rb") as f:
            fields = dict(line.split(b":", 1) for line in f.read(1 << 16).splitlines() if b":" in line)
        return sum(int(fields[key].split()[0]) << 10 for key in (b"MemAvailable", b"SwapFree"))
    except (OSError, KeyError, ValueError, IndexError):
        return None
