"""What runs in a sweep's worker process (`LocalBackend`'s, spawned by `local._Worker`): it dies with its driver,
ignores Ctrl-C (the driver's to handle), and serves the driver's tasks one at a time, each run's record sent back
after a message that names the folder its training works in (`execute`'s `on_start`)."""
from __future__ import annotations

import multiprocessing
import os
import signal
import threading

from tqdm import tqdm

from .. import parent_death
from ..code_version import git_commit
from ..training.hardware import gpu_memory_after_run


def exit_when_parent_exits() -> None:
    multiprocessing.parent_process().join()     # returns once the driver is gone (its sentinel closes)
    os._exit(1)


def die_with_parent(parent_pid: int) -> None:
    """A worker must not outlive its driver (it would train a run that the resumed sweep starts
    again): prctl where there is one (`parent_death.die_with`), else a thread that waits on the driver (spawn's
    sentinel of its parent), on any system."""
    if parent_death.die_with(parent_pid):
        return
    threading.Thread(target=exit_when_parent_exits, name="watch-driver", daemon=True).start()
    if os.getppid() != parent_pid:                    # the driver died before we watched it
        os._exit(1)


def worker_main(conn, device: str, threads: int, forced: bool, parent_pid: int) -> None:
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)      # Ctrl-C is the driver's to handle
    import torch
    from .execute import execute, worker_logging     # torch and the toolkit, imported while the driver plans
    # tqdm's default lock is a multiprocessing RLock, a named semaphore: a busy worker killed at
    # Ctrl-C would leave it to the resource tracker, which warns of "leaked semaphore objects".
    # Workers draw no bars, so a thread lock does.
    tqdm.set_lock(threading.RLock())
    git_commit()                                      # the code version this worker imported
    if forced or "OMP_NUM_THREADS" not in os.environ:    # N workers share the cores instead of fighting
        torch.set_num_threads(threads)
    worker_logging()
    serve(conn, device, execute)


def serve(conn, device: str, execute) -> None:
    """Run the driver's tasks until it sends None or goes, each run's record sent back whatever befell the reading
    of its GPU's memory: a worker that died there lost a run that had finished. That memory is read only where the
    driver asks (`size_device`: `--jobs auto`, its device not sized yet) and the run ended ok: a run that failed
    before it touched the GPU would make a CUDA context for nothing."""
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        run, run_id, out, size_device = task
        # The driver names the run's folder as its training starts: a resumed run works in an earlier call's
        record = execute(run, run_id, out, device, on_start=lambda folder: conn.send(("started", folder)))
        memory = gpu_memory_after_run(device) if size_device and record.get("status") == "ok" else None
        conn.send((record, memory))
