"""How far a worker has decoded a long clip, shown while it decodes (`ClipStatus`).

The Progress of the videos counts finished clips, and the decoded-pixel budget admits --max-clip-seconds of DCI
4K at 30 fps: minutes of decoding one clip at the default, in silence. A worker process sends, each
CLIP_STATUS_SECONDS of decoding a clip, (its file name, seconds of it decoded, seconds its header declares, seconds
spent) through one one-way pipe (`reporter`, in a ClipWorker's process or each of a pool's), and the parent shows
it on the videos' Progress (`ClipStatus.drain`, `Progress.status`): off a terminal a line,
`extract: 2/23 videos, 95 s; clip07: 180.0/600.0 s decoded, 31 s`, on one the bar's postfix. A clip decoded in
less time shows nothing. A message is one write of a file name (at most 255 bytes) and three numbers, under
PIPE_BUF, which a pipe writes whole: the processes of a pool share it without a lock that a killed one could hold.
"""
from __future__ import annotations

import time
from pathlib import Path

from .report import printable_id

CLIP_STATUS_SECONDS = 30.0     # of decoding one clip, before its first line and between two
POLL_SECONDS = 1.0             # how long the parent of a pool waits for a finished clip before it looks again

_writer = None                 # this worker's end of the parent's pipe (`report_to`)
_seconds = CLIP_STATUS_SECONDS    # and how often it sends, as the parent has it


def report_to(writer, seconds: float = CLIP_STATUS_SECONDS) -> None:
    """In a worker process: send the status of each clip it decodes through `writer` (None: send nothing), each
    `seconds` of decoding it (`ClipStatus.for_workers`)."""
    global _writer, _seconds
    _writer, _seconds = writer, seconds


def reporter(video: str):
    """`media.decode`'s progress for `video` in this worker: called with the seconds of the clip decoded and those
    its header declares (None: none) after each packet, it sends them each CLIP_STATUS_SECONDS since the call that
    made it. None where no pipe was given (`report_to`)."""
    if _writer is None:
        return None
    writer, name, seconds = _writer, Path(video).name, _seconds
    start = time.monotonic()
    due = start + seconds

    def report(decoded: float, declared: float | None) -> None:
        nonlocal due
        now = time.monotonic()
        if now >= due:
            due = now + seconds
            writer.send((name, decoded, declared, now - start))
    return report


class ClipStatus:
    """The parent's end of the pipe, whose writer its workers are given, and `progress`, where `drain` shows what
    came through it."""

    def __init__(self, progress, context):
        self.progress = progress
        self.reader, self.writer = context.Pipe(duplex=False)

    def for_workers(self) -> tuple:
        """`report_to`'s arguments, for each worker: the pipe's writer and CLIP_STATUS_SECONDS as this process has
        it (a worker imports this module afresh: it is no fork of this process)."""
        return self.writer, CLIP_STATUS_SECONDS

    def drain(self) -> None:
        """Show every status the pipe holds, in the order it was sent."""
        while self.reader.poll():
            name, decoded, declared, seconds = self.reader.recv()
            of = f"/{declared:.1f}" if declared else ""
            self.progress.status(f"{printable_id(Path(name).stem)}: {decoded:.1f}{of} s decoded, {seconds:.0f} s")

    def close(self) -> None:
        self.reader.close()
        self.writer.close()
