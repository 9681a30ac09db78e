"""A clip worker (`clip_workers`) that could not start: one line for the caller, no clip blamed.

A worker process dies before it takes a clip (`clip_workers.ClipWorker`: twice in a row, or before any clip was taken;
a pool: broken before any clip finished, and a worker started alone dies too): its start failed. The usual cause is a
script of the user's that calls extract outside `if __name__ == "__main__":`: each worker runs that script again as it
starts (spawn, forkserver), reaches extract, and ends there (`exit_if_main_reimported`), which the caller then says
(`could_not_start`). One that this process cannot start at all (a fork that fails, a fork server gone) is a line too
(`start_failed`), not blamed on a clip nor on extract's cache.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys

from ...errors import DataError, ToolkitError, UsageError, one_line

# The exit status of a worker that found itself re-running the caller's main script as it started: no crash's nor
# Python's own (1 for an exception, 2 for a usage error, 120 for a flush that failed, negative for a signal).
MAIN_REIMPORTED_EXIT = 86


def exit_if_main_reimported() -> None:
    """In a worker process that is starting (spawn, forkserver: it runs the caller's main script again, as
    __mp_main__, before it takes any work), reached because that script calls extract outside
    `if __name__ == "__main__":`: end it at once, quietly, with MAIN_REIMPORTED_EXIT, which the caller turns into one
    line (`could_not_start`). Else multiprocessing raised its bootstrapping RuntimeError there, each worker printed
    it, and each clip was skipped as its worker's crash (--jobs 1) or blamed on memory (a pool)."""
    # multiprocessing's own test (spawn._check_not_importing_main), made before the script gets further.
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()       # what the script printed on its way here
            except (AttributeError, OSError, ValueError):
                pass
        os._exit(MAIN_REIMPORTED_EXIT)


# How long a worker started alone and told to end at once (`clip_workers.probe_start`) may take to end: it imports this
# package (no torch) and, under spawn, the caller's main script; one still there after this hung as it started.
PROBE_SECONDS = 60.0


def could_not_start(exitcode: int | None) -> ToolkitError:
    """The line of a worker that died before it took a clip: its start failed, no clip is to blame. `exitcode` None: a
    worker that hung as it started (killed after PROBE_SECONDS)."""
    if exitcode == MAIN_REIMPORTED_EXIT:
        main = sys.modules.get("__main__")
        script = getattr(main, "__file__", None) or getattr(getattr(main, "__spec__", None), "name", None)
        return UsageError(f"extract's worker processes could not start: each runs {script or 'your main script'} "
                          f"again as it starts (Python's multiprocessing), and that script calls extract at its top "
                          f"level: put the call under `if __name__ == \"__main__\":`")
    how = "hung as it started (and was killed)" if exitcode is None else how_it_ended(exitcode)
    return DataError(f"extract's worker process could not start: it {how} before it took a clip, "
                     f"so no clip is to blame: run the same command again (the clips extracted so far are cached), "
                     f"and if it recurs look at what ends new processes here (memory, a process limit)")


def start_failed(error: BaseException) -> DataError:
    """The line of a worker process that this process could not start: a fork that failed (no memory, a process
    limit: OSError) or a fork server that ended (its connection closed: EOFError, ConnectionError)."""
    return DataError(f"extract's worker process could not be started ({one_line(error)}), so no clip is to blame: run "
                     f"the same command again (the clips extracted so far are cached), and if it recurs look at what "
                     f"stops new processes here (memory, a process limit)")


def how_it_ended(exitcode: int | None) -> str:
    """'was killed by SIGSEGV', 'ended with exit status 1': how a process with `exitcode` ended."""
    if exitcode is not None and exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"ended with exit status {exitcode}"
