"""Each video's audio and vision features, extracted in worker processes and cached beside the output.

A video's cache file (`cache_file`) is named by its id and the media settings' hash, and holds the video's
size and mtime (`file_stamp`): a cache file whose stamp no longer matches its video is extracted again, so a
killed extraction resumes where it stopped and an edited clip is never served stale. A video that cannot be
read is a reason, not an error: `run_videos` returns it, and the pipeline reports it.
"""
from __future__ import annotations

import hashlib
import multiprocessing
import zipfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from ...atomic import replace_with
from ...errors import DataError, one_line
from ...progress import Progress
from . import frame_features, media


# Bytes of a video's id kept in its cache file's name: the hash after it tells ids apart, and a name (with
# its temporary sibling's 30 more) stays under the 255 bytes of a file name. A clip named after its
# 240-character title made the cache file's name 270 bytes, and extract failed as '--out could not be written'.
CACHE_NAME_BYTES = 100


def cache_file(cache_dir: Path, video_id: str, media_hash: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in video_id)
    safe = safe.encode()[:CACHE_NAME_BYTES].decode(errors="ignore")     # a letter of several bytes is cut whole
    return cache_dir / f"{safe}-{hashlib.sha256(video_id.encode()).hexdigest()[:8]}-{media_hash}.npz"


def file_stamp(video: Path) -> np.ndarray:
    st = video.stat()
    return np.array([st.st_size, st.st_mtime_ns], np.int64)


# What np.load raises for a cache file that is not one this module wrote whole: none (OSError), empty
# (EOFError), truncated or damaged (zipfile.BadZipFile), a pickle or another format (ValueError), without the
# stamp or a feature (KeyError). Such a file is not cached: the video is extracted again and the file rewritten.
UNREADABLE_CACHE = (OSError, EOFError, zipfile.BadZipFile, ValueError, KeyError)


FEATURE_KEYS = ("audio", "vision", "seconds")     # what a cache file holds beside its stamp


def _read_current(path: Path, video: Path, read):
    """`read(the open cache file)` if the file at `path` is `video`'s (its stamp matches) and holds every
    feature, else None: the one test of a cache file, for the features and for the count of cached clips."""
    # A cache file from before the clip's length was stored in it lacks "seconds": extracted again.
    try:
        with np.load(path) as saved:
            if set(FEATURE_KEYS) <= set(saved.files) and np.array_equal(saved["stamp"], file_stamp(video)):
                return read(saved)
    except UNREADABLE_CACHE:
        pass
    return None


def cached_features(path: Path, video: Path) -> dict | None:
    return _read_current(path, video, lambda saved: {"audio": saved["audio"], "vision": saved["vision"],
                                                     "seconds": float(saved["seconds"])})


def is_cached(path: Path, video: Path) -> bool:
    """Whether `video` has a cache file of its own at `path`, its stamp and names read (not its features)."""
    return _read_current(path, video, lambda saved: True) is not None


def extract_one(video: str, cache: str, backend: str, fps: float, max_seconds: float) -> str | None:
    """Extract one video into its cache file; return None, or the reason it was skipped."""
    try:
        features = frame_features.video_features(video, backend, fps, max_seconds)
    except media.VideoError as e:
        return str(e)
    except Exception as e:     # a feature library choking on one odd file must not end the whole run
        return f"feature extraction failed: {one_line(e)}"
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:       # a file object: np.savez would append .npz to a name
            np.savez(f, stamp=file_stamp(Path(video)), **features)

    replace_with(cache, write)           # a killed worker leaves no half-written cache file
    return None


def fork_pool(jobs: int) -> ProcessPoolExecutor:
    # fork: a worker starts in milliseconds instead of re-importing torch; it never touches torch.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    return ProcessPoolExecutor(max_workers=jobs, mp_context=context)


def run_videos(todo: list, backend: str, fps: float, jobs: int, max_seconds: float, echo=print) -> dict:
    """{id: reason} for the videos in `todo` [(id, video, cache file)] that were skipped."""
    skipped = {}
    progress = Progress(len(todo), echo)
    if jobs == 1:
        for video_id, video, cache in todo:
            reason = extract_one(str(video), str(cache), backend, fps, max_seconds)
            if reason:
                skipped[video_id] = reason
            progress.update()
    else:
        try:        # submitting too: a worker may die before the last of thousands of videos is queued
            with fork_pool(jobs) as pool:
                futures = {pool.submit(extract_one, str(video), str(cache), backend, fps, max_seconds): video_id
                           for video_id, video, cache in todo}
                for future in as_completed(futures):
                    reason = future.result()
                    if reason:
                        skipped[futures[future]] = reason
                    progress.update()
        except BrokenProcessPool:       # a worker killed (SIGKILL, SIGSEGV): every future left fails at once
            # Counted on disk once the pool is down: results read or not, a skipped video is no cache file.
            cached = sum(is_cached(Path(cache), Path(video)) for _, video, cache in todo)
            raise DataError(f"a worker process died while extracting videos (killed by the system when memory ran "
                            f"out, or crashed by a damaged video); {cached} of the {len(todo)} videos to extract "
                            f"are cached: run the same command again to go on") from None
    progress.close()
    return skipped
