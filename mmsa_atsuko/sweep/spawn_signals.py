"""Signals around the start of a sweep's worker process (moved out of local.py, which the progress lines of
`live.py` took past 300 lines)."""
from __future__ import annotations

import contextlib
import signal
import threading


@contextlib.contextmanager
def sigint_ignored():
    """Ctrl-C ignored while a worker is spawned, so that the worker inherits SIG_IGN through exec and Python
    installs no KeyboardInterrupt handler in it: Ctrl-C in the seconds a worker spends importing torch and the
    toolkit, before worker_side.worker_main ignores it, printed each worker's KeyboardInterrupt traceback. Only the
    main thread may set a handler; from another thread the worker starts as it did."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        if previous is not None:       # None: a handler set outside Python, which signal() cannot restore
            signal.signal(signal.SIGINT, previous)
