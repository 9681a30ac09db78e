"""The Ray backend: one Ray task per run, with `num_cpus`/`num_gpus` per run.

Records come back to the driver, the only writer of the store. With several hosts, `--out`
should be on storage every host sees (run folders are written by the worker that trains the
run). Ray is the optional [ray] extra, so it is imported only where it is used; torch and `execute` come with a
run (`_ray_task`), so that `check_ray_backend` reads what was asked before a sweep's planning line.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

from ..errors import ToolkitError, UsageError, one_line
from .plan import PlannedRun

# Workers see the driver's data and cache locations, so that they resolve the same configs
# and data ids as the plan (checked again in `execute`).
FORWARDED_ENV = ("MMSA_ATSUKO_CACHE", "MMSA_DATA_ROOT", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME")


def check_ray_backend(gpus_per_run: float, cpus_per_run: float) -> None:
    """One line for resources per run that cannot be, or for Ray not installed (looked for, not imported: Ray
    takes seconds to import, and the sweep's planning line comes first)."""
    if gpus_per_run < 0 or cpus_per_run <= 0:
        raise UsageError("--gpus-per-run must be >= 0 and --cpus-per-run > 0")
    imported = sys.modules.get("ray", False)        # None: an import of it fails (a test's stand-in for no Ray)
    if imported is None or (imported is False and importlib.util.find_spec("ray") is None):
        raise ToolkitError('the ray backend needs Ray: pip install -e ".[ray]"')


class RayBackend:
    """One Ray task per run; the driver gathers records and is the only writer of the store."""

    def __init__(self, address: str | None = None, gpus_per_run: float = 0.0, cpus_per_run: float = 1.0):
        check_ray_backend(gpus_per_run, cpus_per_run)
        self.address, self.gpus, self.cpus = address, gpus_per_run, cpus_per_run
        self.in_process = False
        self.started_here = False
        self.pending = {}              # task ref -> (run, run_id), cancelled by close()

    def describe(self, runs: int | None = None) -> str:     # `runs`: as the local backend's, unused
        where = f"cluster at {self.address}" if self.address else "a local Ray instance"
        return f"ray, {where}, {self.cpus:g} CPU and {self.gpus:g} GPU per run"

    def start(self, runs: int = 0) -> None:
        """Connect to (or start) Ray now, while the driver plans (`runs`: the local backend's sizing hint)."""
        try:
            import ray  # optional extra: found by check_ray_backend, yet its import may fail (a dependency missing)
        except ImportError as error:
            raise ToolkitError(f'the ray backend needs Ray: pip install -e ".[ray]" ({one_line(error)})') from None
        if ray.is_initialized():
            return
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        ray.init(address=self.address, include_dashboard=False, log_to_driver=True,
                 runtime_env={"env_vars": env} if env else None)
        self.started_here = True

    def close(self) -> None:
        """Cancel what is still in flight (on an external cluster it would go on training runs that
        nobody records), then shut Ray down if this backend started it."""
        import ray  # optional extra
        if self.pending and ray.is_initialized():
            for ref in self.pending:
                ray.cancel(ref, force=True)
        self.pending = {}
        if self.started_here:
            ray.shutdown()
            self.started_here = False

    def slots(self) -> int:
        """Runs the cluster can train at once with this backend's resources per run, at least one
        (read again after every result: a cluster may grow; an autoscaler adds nodes for what is queued)."""
        import ray  # optional extra
        resources = ray.cluster_resources()
        slots = resources.get("CPU", 0) / self.cpus
        if self.gpus > 0:
            slots = min(slots, resources.get("GPU", 0) / self.gpus)
        return max(1, int(slots))

    def run(self, runs, out, on_result, expected: int | None = None) -> None:
        """Train `runs` ((run, run_id) pairs). A list (a sweep's plan) is submitted whole: Ray queues what
        the cluster cannot place yet, and an autoscaler sees that demand. An iterator (a tune's trials) is
        pulled only while fewer tasks than `slots()` are in flight, so a tune asks for its next trial after
        telling the study every result so far. `expected`: unused (the local backend sizes by it)."""
        import ray  # optional extra

        from .execute import failure
        self.start()
        task = ray.remote(_ray_task).options(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=0)
        device = "cuda" if self.gpus > 0 else "cpu"
        threads = max(1, int(self.cpus))
        out = str(Path(out).resolve())
        bounded = not isinstance(runs, (list, tuple))
        runs = iter(runs)
        pending = self.pending

        def submit() -> None:
            while not bounded or len(pending) < self.slots():
                planned = next(runs, None)
                if planned is None:
                    return
                run, run_id = planned
                pending[task.remote(run, run_id, out, device, threads)] = planned

        submit()
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            run, run_id = pending.pop(ref)
            try:
                record = ray.get(ref)
            except Exception as error:                # the worker itself died (OOM, segfault)
                record = failure(run, run_id, out, device, error, datetime.now(timezone.utc), 0.0, worker_died=True)
            on_result(record)
            submit()


def _ray_task(run: PlannedRun, run_id: str, out: str, device: str, threads: int) -> dict:
    # The run's CPU allotment, set explicitly: results must not depend on what the worker
    # inherited (float sums over 1 and 2 threads differ in the last bits).
    import torch

    from .execute import execute, worker_logging
    torch.set_num_threads(threads)
    worker_logging()
    return execute(run, run_id, out, device)
