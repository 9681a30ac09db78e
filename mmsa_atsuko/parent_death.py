"""A child process that must not outlive its parent: a sweep's worker (it would train a run the resumed sweep starts
again) and extract's clip worker (a hung decoder ran on under init for ever)."""
from __future__ import annotations

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
