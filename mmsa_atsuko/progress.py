"""Progress of a long command: tqdm's bar on a terminal, else a line each tenth of the work (extract, robustness,
explain), and where the work in hand stands between two counts (`status`: extract's long clips). Layer 0 (tqdm
only), since commands of several layers count their work with it."""
from __future__ import annotations

import math
import sys
import time

from tqdm import tqdm


class Progress:
    """tqdm's bar on a terminal. Elsewhere (a log file, nohup, a pipe) tqdm draws nothing, and an hour of
    extraction was silent: there, one line each tenth of the work, through `echo` as extract's other
    lines (stderr keeps only an error's one line). The videos count one by one, BERT's texts a batch at a
    time (`what` names them in the line, `unit` in the bar, `desc` starts both: robustness names its run).
    `quiet`: neither bar nor lines."""

    def __init__(self, total: int, echo, what: str = "videos", unit: str = "video", desc: str = "extract",
                 quiet: bool = False):
        self.bar = tqdm(total=total, desc=desc, unit=unit, disable=True if quiet else None)
        self.total, self.done, self.start, self.echo, self.what = total, 0, time.monotonic(), echo, what
        self.desc = desc
        self.step = max(1, math.ceil(total / 10)) if self.bar.disable and not quiet else 0

    def update(self, count: int = 1) -> None:
        if not self.bar.disable and self.bar.postfix:      # a status of work now done (a disabled bar has none)
            self.bar.set_postfix_str("", refresh=False)
        self.bar.update(count)
        before, self.done = self.done, self.done + count
        if self.step and (self.done // self.step > before // self.step or self.done == self.total):
            self.echo(self._line())

    def status(self, text: str) -> None:
        """Where the work in hand stands between two counts (extract: how far a long clip is decoded): the bar's
        postfix on a terminal, elsewhere the count's line with `text` after it, each time it is called."""
        if self.step:
            self.echo(f"{self._line()}; {text}")
        elif not self.bar.disable:
            self.bar.set_postfix_str(text)

    def _line(self) -> str:
        return f"{self.desc}: {self.done}/{self.total} {self.what}, {time.monotonic() - self.start:.0f} s"

    def close(self) -> None:
        self.bar.close()


def to_stderr(line: str) -> None:
    """An analysis command's `echo`: its progress lines on stderr, its stdout kept for what it wrote."""
    print(line, file=sys.stderr, flush=True)
