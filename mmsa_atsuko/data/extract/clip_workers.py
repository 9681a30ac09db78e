"""The worker processes that extract clips for `videos`: what each does with a clip, how each starts, and the one
process of --jobs 1.

`extract_one` extracts one clip into its cache file (`feature_cache`) in a worker, and returns the reason a clip that
cannot be read is skipped; the file is written, whole and at once, only after an extraction that ended normally (no
error swallowed on the way). The workers come from the fork server (spawn where there is none), which preloads this
module and the extraction libraries, never torch (`start_server` starts it, Ctrl-C blocked); each ignores Ctrl-C
(the parent stops them), dies with the main process and sends how far it has decoded a long clip (`clip_progress`).
`worker_pool` is the pool of --jobs 2 or more; `ClipWorker` the one process of --jobs 1, reused from clip to clip: one
that died idle, between clips, is replaced and the clip sent to the fresh one, and one that died extracting a clip
skips that clip (`worker_died`). A worker that dies before it takes a clip could not start
(`worker_start.could_not_start`); `probe_start` starts one alone to tell whether one can start.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.connection import wait as wait_for
from pathlib import Path

import numpy as np

from ... import parent_death
from ...atomic import replace_with
from ...errors import DataError, ToolkitError, one_line
from . import clip_progress, frame_features, media
from .feature_cache import file_stamp
from .worker_start import PROBE_SECONDS, could_not_start, how_it_ended, start_failed


def extract_one(video: str, cache: str, backend: str, fps: float, max_seconds: float,
                rows: tuple | None = None) -> str | None:
    """Extract one video into its cache file (at most `rows`: the padded (audio, vision) lengths, which the cache
    file's name hashes); return None, or the reason it was skipped."""
    try:
        # Taken before the clip is read: one changed while it was extracted then fails the stamp's check when its
        # cache file is read back, instead of filing the old bytes' features under the new bytes' stamp.
        stamp = file_stamp(Path(video))
        with _swallowed_errors() as swallowed:
            features = frame_features.video_features(video, backend, fps, max_seconds, rows,
                                                     progress=clip_progress.reporter(video))
    except media.VideoError as e:
        return str(e)
    except Exception as e:     # a feature library choking on one odd file must not end the whole run
        return f"feature extraction failed: {one_line(e)}"
    if swallowed:              # the features may lack what the library dropped: not cached, tried again next run
        return (f"feature extraction failed: a feature library ignored an error raised in its callback "
                f"({one_line(swallowed[0])}), so its features may be incomplete: run the same command again")
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:       # a file object: np.savez would append .npz to a name
            np.savez(f, stamp=stamp, **features)

    replace_with(cache, write)           # a killed worker leaves no half-written cache file
    return None


@contextlib.contextmanager
def _swallowed_errors():
    """The errors raised inside a C library's callback during the body, which Python only reports
    (sys.unraisablehook), instead of printing them: openSMILE's ctypes callback that a KeyboardInterrupt hit dropped
    one audio frame and returned the rest, and the short clip was cached as if whole."""
    swallowed, previous = [], sys.unraisablehook
    sys.unraisablehook = lambda unraisable: swallowed.append(unraisable.exc_value or unraisable.exc_type())
    try:
        yield swallowed
    finally:
        sys.unraisablehook = previous


# What the fork server imports once, before it forks the workers, so that each starts with it: this module, and the
# libraries of the default extraction (`frame_features`: the [extract] extra; one not installed is passed over).
# Never torch: a worker does not use it. Never '__main__' (multiprocessing's default): each worker imports the
# caller's main script anyway as it starts, and where the server imports it too (Python 3.13.8+, 3.14), it does so as
# a worker would, so a script that calls extract without the `__main__` guard ended the server itself
# (`exit_if_main_reimported`) and every start failed with a bare EOFError.
FORKSERVER_PRELOAD = [__name__, "av", "cv2", "opensmile"]


def start_context():
    # Not fork: a process holding other threads (OpenMP's, tokenizers', a test run's) may be forked while one of
    # them holds a lock, which the child then waits on for ever. forkserver forks a single-threaded server instead
    # (spawn where there is none). The preload is process-wide: it replaces any a library user set, and takes effect
    # only where this process starts its fork server (one running already keeps what it preloaded).
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(FORKSERVER_PRELOAD)
    return context


def start_server() -> None:
    """Start the fork server (where `start_context` uses one) with Ctrl-C blocked, as Python's resource tracker
    starts, and wait until it has imported the extraction libraries (a second or more) and forked a first process.
    Blocked: a Ctrl-C while it imported them printed its KeyboardInterrupt traceback, since it ignores Ctrl-C only
    afterwards; the workers it forks keep the block until each ignores Ctrl-C (`_start_worker`). Waited for: a
    worker asked for meanwhile was forked after a Ctrl-C had ended the pool, found its queues gone, and printed
    that traceback. A Ctrl-C reaches this process once the server is started, and a process forked after it is the
    empty one waited for here. A server running already is kept as it is."""
    context = start_context()
    if context.get_start_method() != "forkserver" or not hasattr(signal, "pthread_sigmask"):
        return
    from multiprocessing import forkserver, resource_tracker
    # The server's start starts the resource tracker first where none runs, which unblocks SIGINT once it is started.
    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        forkserver.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    ready = context.Process(target=int)
    ready.start()
    ready.join(PROBE_SECONDS)       # one that hung as it started: the first worker's start then says so
    if ready.exitcode is None:
        ready.kill()
        ready.join()
    ready.close()


def worker_pool(jobs: int, status: clip_progress.ClipStatus) -> ProcessPoolExecutor:
    """The processes of --jobs 2 or more, each sending its clips' status through `status` (`clip_progress`)."""
    return ProcessPoolExecutor(max_workers=jobs, mp_context=start_context(), initializer=_start_worker,
                               initargs=(os.getpid(), *status.for_workers()))


def _start_worker(main_pid: int, status_writer, status_seconds: float) -> None:
    """What each worker process does first: ignore Ctrl-C, die with the main process (`parent_death.die_with`), since
    a worker waits on a decoder that may never return and nothing else would end it once its parent is gone; then
    send its clips' status. Ctrl-C reaches the whole process group, and it is the parent's to act on (it stops the
    workers): a pool's worker that took it as a KeyboardInterrupt inside openSMILE's callback dropped an audio frame
    and cached the short clip."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):     # blocked by the fork server (`start_server`): ignored is enough
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    parent_death.die_with(main_pid)
    clip_progress.report_to(status_writer, status_seconds)


def _serve(conn, main_pid: int, status: tuple, extract) -> None:
    """A `ClipWorker`'s process: `extract` (`extract_one`, sent by reference as a pool's task is) for each clip sent,
    until None (or the end of the pipe) comes. Each clip is acknowledged (None) before it is extracted, so that the
    caller tells a worker that died between clips (the clip was never taken) from one that died extracting it."""
    _start_worker(main_pid, *status)          # Ctrl-C ignored: the parent's to act on, it kills this process
    while True:
        try:
            args = conn.recv()
        except EOFError:
            return
        if args is None:
            return
        conn.send(None)
        try:
            conn.send((True, extract(*args)))
        except Exception as e:       # raised in the caller, as in process (a cache that cannot be written: OSError)
            conn.send((False, _portable(e)))


def _portable(error: Exception) -> Exception:
    """`error` if it crosses the pipe whole, else a DataError quoting it: an exception of a local class, or one whose
    arguments do not rebuild it, crashed the worker (or the caller's recv) instead of being raised in the caller."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return DataError(one_line(error))
    return error


class ClipWorker:
    """One process that extracts clips one at a time, reused from clip to clip, so that a decoder crashing
    (SIGSEGV) or a clip the system kills for its memory ends that process alone: `extract` returns the reason
    (`worker_died`) and the caller starts another. The features are written to the cache by the worker; what
    it sends of a long clip's decoding is shown on `status` while the caller waits. `taken`: whether a worker of the
    same run took a clip before this one started (`videos._one_worker`); one that dies before it takes its first clip
    is then replaced once, as one found dead between clips is, else it could not start (`could_not_start`)."""

    def __init__(self, status: clip_progress.ClipStatus | None = None, taken: bool = False):
        self.status = status
        self.taken = taken
        self._start()

    def _start(self) -> None:
        context = start_context()
        try:
            self.conn, child = context.Pipe()
        except OSError as e:             # no file descriptor left
            raise start_failed(e) from None
        status = self.status.for_workers() if self.status else (None, clip_progress.CLIP_STATUS_SECONDS)
        self.process = context.Process(target=_serve, args=(child, os.getpid(), status, extract_one), daemon=True)
        try:
            self.process.start()
        except (EOFError, OSError) as e:     # a fork that failed, a fork server gone: not a clip's doing
            self.conn.close()
            raise start_failed(e) from None
        finally:
            child.close()
        self.open = True

    def extract(self, *args) -> tuple[bool, str | None]:
        """(whether the worker lives on, extract_one(*args) or the reason it died). A worker found dead before it
        took the clip (killed between clips: it holds the last clip's memory while idle) is replaced, and the clip
        sent once to the fresh one: the clip did not kill it. A death before the clip is taken twice in a row, or
        before any clip was, is a start that failed: `could_not_start`'s error is raised."""
        for fresh in (False, True):
            try:
                self.conn.send(args)
                # A worker acknowledges at once, a fresh one once it has started: one silent after PROBE_SECONDS
                # hung as it started, and waiting on it would hang extract.
                if not self.conn.poll(PROBE_SECONDS):
                    self.process.kill()
                    self.process.join()
                    raise could_not_start(None)
                self.conn.recv()             # taken: from here on a death is this clip's
            except (EOFError, OSError):
                if fresh or not self.taken:
                    self.process.join()
                    raise could_not_start(self.process.exitcode) from None
                self.close()
                self._start()
                continue
            self.taken = True
            try:
                returned, value = self._answer()
            except (EOFError, OSError):      # its end of the pipe closed: the process is gone
                break
            if not returned:
                raise value
            return True, value
        self.process.join()
        return False, worker_died(self.process.exitcode)

    def _answer(self):
        """What the worker sends once the clip is extracted, its status shown while it decodes (`clip_progress`)."""
        if self.status:
            while self.conn not in wait_for([self.conn, self.status.reader]):
                self.status.drain()
            self.status.drain()        # what it sent before its answer is shown before the clip is counted
        return self.conn.recv()

    def close(self, kill: bool = False) -> None:
        if not self.open:   # closed already: its replacement could not be started (extract)
            return
        self.open = False
        if kill:            # Ctrl-C or an error in the parent: the clip it extracts is not waited for
            self.process.kill()
        else:
            try:
                self.conn.send(None)
            except OSError:      # it died after its last clip
                pass
        self.conn.close()
        self.process.join()
        self.process.close()     # its sentinel's fd, which waited for the garbage collector


def worker_died(exitcode: int | None) -> str:
    """The skip line of a clip whose worker process died while extracting it."""
    return (f"its extraction process {how_it_ended(exitcode)} (a decoder crashing on a damaged file, or the system "
            f"killing it when memory ran out): check that it plays, or re-encode it, e.g. ffmpeg -i IN -c:v libx264 "
            f"-c:a aac OUT")


def probe_start() -> ToolkitError | None:
    """`could_not_start`'s error where a worker process, started and told to end at once, dies as it starts or is
    still starting after PROBE_SECONDS (`start_failed`'s where it cannot be started)."""
    try:
        worker = ClipWorker()
    except ToolkitError as e:
        return e
    try:
        worker.conn.send(None)          # started, it ends with status 0
    except OSError:                     # dead already
        pass
    worker.process.join(PROBE_SECONDS)
    exitcode = worker.process.exitcode
    worker.close(kill=exitcode is None)
    return could_not_start(exitcode) if exitcode != 0 else None
