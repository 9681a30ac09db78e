"""Each video's audio and vision features, extracted in worker processes (`clip_workers`) and cached.

Each clip's features go to its cache file (`feature_cache`: in the user's cache, stamped with the video's size,
mtime and sampled bytes, checked before use), so a killed extraction resumes where it stopped. A video that cannot be
read is a reason, not an error: `run_videos` returns it, and the pipeline reports it. So is a clip whose worker
process died extracting it under `--jobs 1` (`clip_workers.ClipWorker`; one that died idle, between clips, is replaced
and the clip sent to the fresh one); under several jobs the pool cannot tell which clip killed it, and
the run stops in one line. A worker that dies before it takes a clip (twice in a row, or before any clip was taken)
could not start, and the run stops in one line too (`could_not_start`): one whose start re-ran a main script that
calls extract without the `__main__` guard says so (`exit_if_main_reimported`). How far a worker has decoded a long
clip is shown on the videos' Progress while it decodes (`clip_progress`). Ctrl-C, or an error in this process, stops
the workers at once under any --jobs: no clip is started after it, and the clips extracted so far stay cached.

The workers' names are read from `clip_workers` when used, not imported into this module: a stand-in set there (the
tests' `clip_fakes`) is then the one each path sends to its workers.
"""
from __future__ import annotations

import math
from concurrent.futures import FIRST_COMPLETED, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from ...errors import DataError
from ...progress import Progress
from . import clip_progress, clip_workers, media
from .feature_cache import CacheShape, is_cached
from .worker_start import exit_if_main_reimported, start_failed


def run_videos(todo: list, backend: str, fps: float, jobs: int, max_seconds: float, echo=print,
               rows: tuple | None = None) -> dict:
    """{id: reason} for the videos in `todo` [(id, video, cache file)] that were skipped; `rows`: extract_one's."""
    exit_if_main_reimported()
    skipped = {}
    progress = Progress(len(todo), echo)
    try:
        clip_workers.start_server()
        status = clip_progress.ClipStatus(progress, clip_workers.start_context())
    except (EOFError, OSError) as e:    # the fork server's start, the workers' pipe: no process or fd left
        raise start_failed(e) from None
    try:
        if jobs == 1:
            _one_worker(todo, (backend, fps, max_seconds, rows), skipped, progress, status)
        else:
            _pool(todo, (backend, fps, max_seconds, rows), jobs, skipped, progress, status)
    finally:
        status.close()
    progress.close()
    return skipped


def _one_worker(todo: list, settings: tuple, skipped: dict, progress: Progress,
                status: clip_progress.ClipStatus) -> None:
    """--jobs 1: one process, reused from clip to clip until one crashes it (ClipWorker)."""
    worker, taken = None, False
    try:
        for video_id, video, cache in todo:
            worker = worker or clip_workers.ClipWorker(status, taken)
            alive, reason = worker.extract(str(video), str(cache), *settings)
            taken = True
            if not alive:
                worker.close()
                worker = None
            if reason:
                skipped[video_id] = reason
            progress.update()
    except BaseException:
        if worker:
            worker.close(kill=True)
        raise
    if worker:
        worker.close()


def _pool(todo: list, settings: tuple, jobs: int, skipped: dict, progress: Progress,
          status: clip_progress.ClipStatus) -> None:
    """--jobs 2 or more: a pool of processes; one that dies breaks it, and the run stops in one line."""
    finished = 0
    try:        # submitting too: a worker may die before the last of thousands of videos is queued
        try:
            pool = clip_workers.worker_pool(jobs, status)
        except OSError as e:    # its queues' pipes: no file descriptor left
            raise start_failed(e) from None
        with pool:
            try:
                try:      # a submit starts the workers it needs
                    futures = {pool.submit(clip_workers.extract_one, str(video), str(cache), *settings): video_id
                               for video_id, video, cache in todo}
                except (EOFError, OSError) as e:     # a fork that failed, a fork server gone: not a clip's doing
                    raise start_failed(e) from None
                pending = set(futures)
                while pending:        # woken each POLL_SECONDS to show the status of the clips being decoded
                    done, pending = wait(pending, timeout=clip_progress.POLL_SECONDS, return_when=FIRST_COMPLETED)
                    status.drain()
                    for future in done:
                        reason = future.result()
                        if reason:
                            skipped[futures[future]] = reason
                        progress.update()
                        finished += 1
            except BaseException:
                _stop(pool)
                raise
    except BrokenProcessPool:       # a worker killed (SIGKILL, SIGSEGV): every future left fails at once
        # The pool tells no exit status: with no clip finished, a worker started alone tells whether one can start.
        failure = None if finished else clip_workers.probe_start()
        if failure:
            raise failure from None
        # Counted on disk once the pool is down: results read or not, a skipped video is no cache file.
        backend, fps, max_seconds, rows = settings
        # Without padded lengths, as many rows as a clip of max_seconds gives (and one more at each end).
        rows = rows or (math.ceil(max_seconds * media.AUDIO_RATE) + 2, math.ceil(max_seconds * fps) + 2)
        shape = CacheShape(media.AUDIO_DIMS[backend], *rows)
        cached = sum(is_cached(Path(cache), Path(video), shape) for _, video, cache in todo)
        raise DataError(f"a worker process died while extracting videos (killed by the system when memory ran "
                        f"out, or crashed by a damaged video); {cached} of the {len(todo)} videos to extract "
                        f"are cached: run the same command again to go on") from None


def _stop(pool) -> None:
    """Ctrl-C, or an error, in the parent: the clips not started are dropped and the workers killed at once (what
    each was extracting is not cached: a cache file is written whole or not at all). Leaving through `with pool:`
    waited for every clip submitted: Ctrl-C on 80 clips went on from 19 cached to 78, without a word."""
    # No public way to kill a pool's workers before Python 3.14 (kill_workers); shutdown forgets them.
    workers = list((pool._processes or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        worker.kill()
    for worker in workers:      # dead before the caller counts what is cached
        worker.join()
