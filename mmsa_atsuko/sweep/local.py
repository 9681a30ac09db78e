"""The local backend: in process (`jobs=1`), or `jobs` spawned worker processes.

Worker k gets device `devices[k % len(devices)]`. A worker dies with its driver, so no
orphan keeps training a run that the resumed sweep starts again.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from multiprocessing.connection import wait as wait_for

import torch

from .. import api
from ..errors import UsageError
from ..training.seed import resolve_device
from .execute import execute, failure, worker_logging

PR_SET_PDEATHSIG = 1                   # linux/prctl.h


def parse_devices(text: str) -> list[str]:
    """'auto' (every visible GPU, else the CPU) | 'cpu' | 'cuda:0,cuda:1' -> checked device names."""
    devices = [d.strip() for d in str(text).split(",") if d.strip()]
    if not devices:
        raise UsageError("--devices is empty; use auto, cpu or a list like cuda:0,cuda:1")
    if devices == ["auto"] and torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return [str(resolve_device(d)) for d in devices]


class LocalBackend:
    """In process for jobs=1, else `jobs` spawned worker processes; devices round-robin."""

    def __init__(self, jobs: int = 1, devices: str = "auto"):
        if jobs < 1:
            raise UsageError(f"--jobs must be at least 1, got {jobs}")
        self.jobs = jobs
        self.devices = parse_devices(devices)
        self.threads = max(1, (os.cpu_count() or 1) // jobs)
        self.workers: list[_Worker] = []
        self.in_process = jobs == 1

    def describe(self) -> str:
        where = ", ".join(self.devices)
        return f"local, {'in process' if self.jobs == 1 else f'{self.jobs} worker processes'}, on {where}"

    def start(self) -> None:
        """Start the workers now, so that their imports overlap the driver's planning."""
        if self.jobs > 1 and not self.workers:
            # spawn, not fork: the driver may hold CUDA state and threads that a fork would copy
            ctx = multiprocessing.get_context("spawn")
            self.workers = [_Worker(ctx, k, self.devices[k % len(self.devices)], self.threads)
                            for k in range(self.jobs)]

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers = []

    def run(self, runs, out, on_result) -> None:
        if self.jobs == 1:
            for i, (run, run_id) in enumerate(runs):
                on_result(execute(run, run_id, str(out), self.devices[i % len(self.devices)]))
            return
        self.start()
        # Lazy: a worker takes the next run only when it is free (a tune asks for its next trial then,
        # after telling the study every result so far).
        pending = ((run, run_id, str(out)) for run, run_id in runs)
        for worker in self.workers:
            task = next(pending, None)
            if task is not None:
                worker.give(task)
        while any(w.task for w in self.workers):
            busy = {w.conn: w for w in self.workers if w.task}
            for conn in wait_for(list(busy)):
                worker = busy[conn]
                run, run_id, _ = worker.task
                try:
                    record = conn.recv()
                except (EOFError, OSError):          # killed (OOM killer, segfault): its run failed
                    worker.proc.join(5)
                    record = failure(run, run_id, out, worker.device,
                                     f"worker process died (exit code {worker.proc.exitcode})",
                                     datetime.now(timezone.utc), time.time() - worker.since)
                    worker.stop()
                    worker = _Worker(worker.ctx, worker.index, worker.device, self.threads)
                    self.workers[worker.index] = worker
                worker.task = None
                on_result(record)
                task = next(pending, None)
                if task is not None:
                    worker.give(task)


class _Worker:
    def __init__(self, ctx, index: int, device: str, threads: int):
        self.ctx, self.index, self.device, self.task, self.since = ctx, index, device, None, time.time()
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, device, threads, os.getpid()),
                                name=f"sweep-worker-{index}", daemon=True)
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


def _kill_on_parent_death() -> bool:
    """Linux: ask the kernel for SIGKILL when the driver dies, even mid-way through a long C call.
    False where prctl is not there (other systems, a libc without it)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL) == 0
    except (OSError, AttributeError):
        return False


def _exit_when_parent_exits() -> None:
    multiprocessing.parent_process().join()     # returns once the driver is gone (its sentinel closes)
    os._exit(1)


def _die_with_parent(parent_pid: int) -> None:
    """A worker must not outlive its driver (it would train a run that the resumed sweep starts
    again): prctl where there is one, else a thread that waits on the driver, on any system."""
    if not _kill_on_parent_death():
        threading.Thread(target=_exit_when_parent_exits, name="watch-driver", daemon=True).start()
    if os.getppid() != parent_pid:                    # the driver died before we watched it
        os._exit(1)


def _worker_main(conn, device: str, threads: int, parent_pid: int) -> None:
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)      # Ctrl-C is the driver's to handle
    api.git_commit()                                  # the code version this worker imported
    if "OMP_NUM_THREADS" not in os.environ:           # N workers share the cores instead of fighting
        torch.set_num_threads(threads)
    worker_logging()
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        run, run_id, out = task
        conn.send(execute(run, run_id, out, device))
