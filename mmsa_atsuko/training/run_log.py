"""A run's train.log (`run_log`): every INFO line of the package logger while the run trains."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

from ..atomic import open_append

log = logging.getLogger("mmsa_atsuko")


class _Forward(logging.Handler):
    """Hands records at or above `threshold` on to `parent`, the logger above the package's."""

    def __init__(self, parent: logging.Logger, threshold: int):
        super().__init__()
        self.parent, self.threshold = parent, threshold

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= self.threshold:
            self.parent.handle(record)


@contextlib.contextmanager
def run_log(path: Path):
    """Every INFO line of a run goes to its train.log, whatever logging the caller set up.

    Called from Python, the package logger inherits the root's WARNING, and the epoch lines
    would never reach the file. So for the run the logger lets INFO through to the file, and
    hands the caller's handlers only what its old effective level let through. A run that
    raises leaves its traceback at the end of the file."""
    # appended to (a resumed run's), never through a link planted in a shared folder (atomic.open_append)
    handler = logging.StreamHandler(os.fdopen(open_append(path), "a", encoding="utf-8"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    level, propagate, handlers = log.level, log.propagate, list(log.handlers)
    effective = log.getEffectiveLevel()
    log.addHandler(handler)
    if effective > logging.INFO:
        log.setLevel(logging.INFO)
        if propagate:
            log.propagate = False
            log.addHandler(_Forward(log.parent, effective))
    try:
        yield
    except BaseException:
        # The traceback goes to the file only: callers print their own one-line error.
        handler.handle(log.makeRecord(log.name, logging.ERROR, __file__, 0, "run failed", None, sys.exc_info()))
        raise
    finally:
        handler.close()
        handler.stream.close()          # a StreamHandler leaves its stream open
        for added in [h for h in log.handlers if h not in handlers]:
            log.removeHandler(added)
        log.setLevel(level)             # setLevel, not `log.level =`: it clears the level caches
        log.propagate = propagate
