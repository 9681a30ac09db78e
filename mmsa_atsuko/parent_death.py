"""A child process that must not outlive the process that started it: a sweep's worker (it would train a run the
resumed sweep starts again) and extract's clip workers (a hung decoder ran on under init for ever)."""
from __future__ import annotations

import os
import signal
import sys

PR_SET_PDEATHSIG = 1                   # linux/prctl.h


def kill_on_parent_death() -> bool:
    """Linux: ask the kernel for SIGKILL when this process's parent dies, even mid-way through a long C call (the
    kernel sends it when the thread that started this process ends). False where prctl is not there (other
    systems, a libc without it)."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL) == 0
    except (OSError, AttributeError):
        return False


def die_with(main_pid: int) -> bool:
    """In a worker process that `main_pid` started (spawn, forkserver or fork): have the kernel kill it when main_pid
    dies (`kill_on_parent_death`). False where that cannot be asked: the caller may watch main_pid otherwise.

    The kernel's signal comes when this process's parent dies: main_pid itself (spawn, fork), or under forkserver
    the fork server that main_pid started. That server ends only once every copy of its "alive" pipe's write end is
    closed, and multiprocessing hands one to each process it forks: a worker that kept its copy kept the server, and
    so itself, alive after main_pid was killed. So this process closes its copy, after the prctl (held until then,
    it kept the server from ending before the prctl): the server then ends with main_pid, and the kernel kills this
    process. A parent already gone at the prctl sends no signal: this process then ends at once. Whether the parent
    is main_pid's fork server is told by its own parent, not by that pipe: its copy is multiprocessing's private
    attribute, which a Python that renamed it would leave unclosed, not make every worker end here."""
    if not kill_on_parent_death():
        return False
    _close_forkserver_alive_fd()
    parent = os.getppid()
    if parent != main_pid and _parent_of(parent) not in (main_pid, None):
        os._exit(1)
    return True


def _close_forkserver_alive_fd() -> None:
    """Close this process's copy of its fork server's "alive" pipe (see `die_with`), where it holds one."""
    from multiprocessing import forkserver
    server = getattr(forkserver, "_forkserver", None)
    fd = getattr(server, "_forkserver_alive_fd", None)
    if fd is None:
        return
    try:
        os.close(fd)
    except OSError:
        pass
    server._forkserver_alive_fd = None


def _parent_of(pid: int) -> int | None:
    """The parent of process `pid`, read from /proc (None where it cannot be read)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None
