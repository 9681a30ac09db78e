"""The local backend: in process (`jobs=1`), or `jobs` spawned worker processes.

Worker k gets device `devices[k % len(devices)]`. A worker dies with its driver, so no
orphan keeps training a run that the resumed sweep starts again. Workers start once and take
run after run; only the driver writes the store.

`jobs="auto"`: on the CPU, the cores divided by the threads per run. On CUDA, one worker per
device trains the first run; each device's first run, its peak memory against the memory then free on that device
(`hardware.gpu_jobs`), says how many more workers that device takes: another user's job on cuda:1 leaves it fewer.

Torch and `execute` (which trains, and imports torch) are imported where a run is run or a device is read, not
with this module: the sweep driver imports it before its planning line, and the cli makes the backend after it.
"""
from __future__ import annotations

import multiprocessing
import os
import time
from datetime import datetime, timezone
from multiprocessing.connection import wait as wait_for

from ..errors import UsageError
from ..training.hardware import DEFAULT_THREADS, check_threads, cpu_jobs, gpu_jobs, parse_jobs
from ..training.seed import resolve_device
from .live import QUIET_MAX_S, QUIET_S, in_hand_line, say_started
from .spawn_signals import sigint_ignored
from .worker_side import worker_main

def parse_devices(text: str) -> list[str]:
    """'auto' (every visible GPU, else the CPU) | 'cpu' | 'cuda:0,cuda:1' -> checked device names."""
    devices = [d.strip() for d in str(text).split(",") if d.strip()]
    if not devices:
        raise UsageError("--devices is empty; use auto, cpu or a list like cuda:0,cuda:1")
    import torch
    if devices == ["auto"] and torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return [str(resolve_device(d)) for d in devices]


def default_jobs(devices: list[str], runs: int) -> int | str:
    """What `--jobs` is when not given: auto with several runs on CUDA, else 1 (in process)."""
    return "auto" if runs > 1 and any(d.startswith("cuda") for d in devices) else 1


class LocalBackend:
    """In process for jobs=1, else spawned worker processes (`jobs` of them, or `"auto"`: see the
    module docstring); devices round-robin. `threads`: torch threads per run (None: a worker takes
    the cores divided by `jobs` unless OMP_NUM_THREADS is set; in process, torch's as it is)."""

    def __init__(self, jobs: int | str = 1, devices: str = "auto", threads: int | None = None, echo=print):
        self.jobs = parse_jobs(jobs)
        self.devices = parse_devices(devices)
        self.threads = check_threads(threads)
        self.cuda = self.devices[0].startswith("cuda")
        if self.threads is None:
            self.worker_threads = DEFAULT_THREADS if self.jobs == "auto" else max(1, (os.cpu_count() or 1) // self.jobs)
        else:
            self.worker_threads = self.threads
        self.workers: list[_Worker] = []
        self.in_process = self.jobs == 1
        self.echo = echo
        self.quiet_s = QUIET_S

    def describe(self, runs: int | None = None) -> str:
        """How the runs train; `runs`: how many are to do, where known (a `--jobs N` starts no more workers)."""
        if self.jobs == 1:
            how = "in process"
        elif self.jobs != "auto":
            workers = self.jobs if runs is None else min(self.jobs, runs)
            how = (f"{workers} worker process{'' if workers == 1 else 'es'}"
                   + (f" (as many as the runs to do; --jobs {self.jobs})" if workers < self.jobs else ""))
        elif self.cuda:
            how = "worker processes as many per device as its first run's peak memory allows (--jobs auto)"
        else:
            how = f"up to {cpu_jobs(self.worker_threads, 1 << 30)} worker processes (--jobs auto)"
        threads = self.threads if self.jobs == 1 else self.worker_threads
        return f"local, {how}, {threads or 'default'} torch thread(s) per run, on {', '.join(self.devices)}"

    def jobs_note(self, runs: int, cores: int | None = None) -> str:
        """One line on a `--jobs N` whose runs at once (N, or fewer where fewer are to do: `describe` says so) are
        more than the CPU's cores (`cores`: os.cpu_count()), which they share, or "". `describe` said `8 worker
        processes` alone, as if 8 trained side by side at full speed."""
        if self.jobs in (1, "auto") or runs < 1 or self.cuda:    # auto sizes itself by the runs and the cores
            return ""
        cores, at_once = cores or os.cpu_count() or 1, min(runs, self.jobs)
        if at_once <= cores:
            return ""
        return (f"--jobs {self.jobs}: the {at_once} runs at once share {cores} CPU core(s), each slower than alone; "
                f"--jobs {cores} keeps one run per core")

    def _first_size(self, runs: int) -> int:
        if self.jobs != "auto":
            return min(self.jobs, runs)       # a worker more than the runs would start (~3 s, memory) to wait idle
        if self.cuda:
            return min(runs, len(self.devices))        # one run per device first, to measure
        return cpu_jobs(self.worker_threads, runs)

    def _runs_in_process(self, runs: int) -> bool:
        """jobs=1, or `--jobs auto` on a CPU whose cores take one run at a time (or with one run to do)."""
        return self.jobs == 1 or (self.jobs == "auto" and not self.cuda and cpu_jobs(self.worker_threads, runs) == 1)

    def start(self, runs: int = 1 << 30) -> None:
        """Start the workers for at most `runs` runs now, so that their imports overlap the driver's planning."""
        if not self._runs_in_process(runs):
            self._resize(self._first_size(runs))

    def _new_worker(self, index: int, device: str) -> _Worker:
        # spawn, not fork: the driver may hold CUDA state and threads that a fork would copy
        return _Worker(multiprocessing.get_context("spawn"), index, device, self.worker_threads,
                       self.threads is not None)

    def _resize(self, size: int) -> None:
        while len(self.workers) < size:
            k = len(self.workers)
            self.workers.append(self._new_worker(k, self.devices[k % len(self.devices)]))
        while len(self.workers) > size and self.workers[-1].task is None:
            self.workers.pop().stop()

    def _grow(self, device: str, per_device: int, left: int) -> None:
        """Workers on `device` up to `per_device`, and no more workers in all than `left`, the runs not yet ended."""
        here = sum(w.device == device for w in self.workers)
        for _ in range(min(per_device - here, left - len(self.workers))):
            self.workers.append(self._new_worker(len(self.workers), device))

    def _per_device(self, record: dict, runs: int, memory: dict | None) -> int | None:
        """After a CUDA run finished ok: how many runs its device takes at once (None: not known yet). `memory`: what
        its worker read once it finished (`gpu_memory_after_run`): the free memory on that device, its own cache still
        held, and the most its allocator held, which sizes the runs beside it (its peak allocated, the record's, is
        less). Each device is sized by its own first run: the GPUs of --devices may have different memory free."""
        if record.get("status") != "ok" or not memory:
            return None
        peak, free_mb = max(record.get("peak_memory_mb") or 0.0, memory["reserved_mb"]), memory["free_mb"]
        here = sum(w.device == record["device"] for w in self.workers)
        per_device = gpu_jobs(peak, free_mb, runs, running=here)
        self.echo(f"--jobs auto: the first run on {record['device']} peaked at {peak:.0f} MB with {free_mb:.0f} MB "
                  f"free there: {per_device} run(s) at once on {record['device']}")
        return per_device

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers = []

    def run(self, runs, out, on_result, expected: int | None = None) -> None:
        """Train `runs` ((run, run_id) pairs): a list (a sweep's plan), or an iterator (a tune's trials,
        asked one at a time when a worker is free) that yields at most `expected`."""
        import torch
        from .execute import execute, failure
        total = len(runs) if hasattr(runs, "__len__") else (expected or 1 << 30)
        if self._runs_in_process(total):
            if self.threads is not None:
                torch.set_num_threads(self.threads)
            for i, (run, run_id) in enumerate(runs):
                device = self.devices[i % len(self.devices)]
                # here too a run's epochs go to its train.log alone: say where, as the workers' runs do
                on_result(execute(run, run_id, str(out), device,
                                  on_start=lambda folder, run=run, device=device: say_started(
                                      self.echo, run, folder, out, device)))
            return
        self._resize(self._first_size(total))
        # --jobs auto on CUDA: the devices whose first run has not ended ok yet, each sized by its own
        unsized = set(self.devices) if self.jobs == "auto" and self.cuda else set()
        # Lazy: a worker takes the next run only when it is free (a tune asks for its next trial then,
        # after telling the study every result so far).
        pending = ((run, run_id, str(out)) for run, run_id in runs)
        given = 0

        def hand(worker, task) -> None:
            worker.give((*task, worker.device in unsized))     # its worker reads the GPU's memory after it
            # The run_id of the folder it works in and when its training began, once its worker says (`execute`)
            worker.folder, worker.began = None, None

        for worker in self.workers:
            task = next(pending, None)
            if task is not None:
                hand(worker, task)
                given += 1
        said, quiet = time.time(), self.quiet_s        # a still-training line after `quiet` s without a line
        while any(w.task for w in self.workers):
            busy = {w.conn: w for w in self.workers if w.task}
            ready = wait_for(list(busy), timeout=max(0.0, said + quiet - time.time()))
            if not ready:
                self.echo(in_hand_line([(w.task[0], w.folder, w.task[2], w.began, w.since) for w in busy.values()],
                                       time.time()))
                said, quiet = time.time(), min(2 * quiet, max(self.quiet_s, QUIET_MAX_S))    # see QUIET_MAX_S
            for conn in ready:
                worker = busy[conn]
                run, run_id = worker.task[:2]
                try:
                    message = conn.recv()
                except (EOFError, OSError):          # killed (OOM killer, segfault): its run failed
                    memory = None
                    worker.proc.join(5)
                    # in the folder it worked in: a resumed run's, kept for the next --resume (`failure`)
                    record = failure(run, worker.folder or run_id, out, worker.device,
                                     f"worker process died (exit code {worker.proc.exitcode})",
                                     datetime.now(timezone.utc), time.time() - worker.since, worker_died=True)
                    worker.stop()
                    worker = self._new_worker(worker.index, worker.device)
                    self.workers[worker.index] = worker
                else:
                    if message[0] == "started":
                        # Its training starts, in the folder it names: a resumed run's is an earlier call's (`execute`)
                        worker.folder, worker.began = message[1], time.time()
                        say_started(self.echo, run, worker.folder, out, worker.device)
                        said, quiet = time.time(), self.quiet_s
                        continue
                    record, memory = message
                worker.task = None
                on_result(record)
                said, quiet = time.time(), self.quiet_s
                if worker.device in unsized:
                    left = total - given + sum(w.task is not None for w in self.workers)
                    per_device = self._per_device(record, left, memory)
                    if per_device is not None:
                        unsized.discard(worker.device)
                        self._grow(worker.device, per_device, left)
                for idle in [w for w in self.workers if w.task is None]:
                    task = next(pending, None)
                    if task is not None:
                        hand(idle, task)
                        given += 1


class _Worker:
    def __init__(self, ctx, index: int, device: str, threads: int, forced: bool):
        self.index, self.device, self.task, self.since = index, device, None, time.time()
        self.folder = self.began = None
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker_main, args=(child, device, threads, forced, os.getpid()),
                                name=f"sweep-worker-{index}", daemon=True)
        with sigint_ignored():        # the worker starts ignoring Ctrl-C (see sigint_ignored)
            self.proc.start()
        child.close()                  # so that a dead worker reads as EOF here

    def give(self, task) -> None:
        self.task, self.since = task, time.time()
        try:
            self.conn.send(task)
        except OSError:
            pass                       # died while idle: the driver reads EOF and records it

    def stop(self, wait: float = 10.0) -> None:
        """An idle worker is asked to exit, so that it cleans up after itself (one that is killed
        leaves its semaphores to the resource tracker, which warns of 'leaked semaphore objects');
        a busy one (Ctrl-C) is killed: its run is abandoned, and records are the driver's."""
        if self.task is None and self.proc.is_alive():
            try:
                self.conn.send(None)
                self.proc.join(wait)
            except OSError:
                pass
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()
        self.conn.close()
