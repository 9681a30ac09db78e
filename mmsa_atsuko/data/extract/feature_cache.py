"""A video's cache file: its audio and vision features, kept in the user's cache and checked before use.

A cache file is `<cache_dir()>/extract_features/<id>-<video path hash>-<settings hash>-stamp2.npz` (`cache_file`):
named by the video's id, its absolute path and the media settings' hash, and holding the video's stamp (`file_stamp`:
its size, its mtime and a hash of its first and last MiB), so a killed extraction resumes where it stopped and an
edited clip is never served stale. Size and mtime alone served the old features for a video replaced by another of
its size with the mtime kept (rsync -t, cp -p, tar); the sampled bytes tell those apart for some milliseconds a video.
A video's ctime is not in it: a chmod, or the same bytes restored from a backup, would cost an extraction again. What
still gets through is a video edited in place in its middle only, its size kept and its mtime set back. The files of
the stamp before (size and mtime, named without `-stamp2`) are never read: each is a miss, extracted again.

It lives in the user's cache, never beside `--out`: its name and stamp are no secret (a video's path, size and
mtime, which an archive sets, and its bytes), so a cache folder that came with a shared videos folder, or was planted
there by another user, stood in for the features unseen; a hash of the video does not help against that, since
whoever ships the videos knows their bytes. A `<out>.cache/` that extract kept before is ignored, with one line.

An extract holds `<cache_dir()>/extract_features.lock` shared while it reads and writes the folder (`using_cache`),
and `run.py clean --extract-cache` takes it alone, without waiting, before it removes a file (`remove_cache_files`):
an extract running beside a clean skipped the clips whose cache files the clean removed between their extraction
and their reading back. The lock file lies beside the folder, so it is never among the files clean counts and
removes, and an extract that starts during a clean waits the moment the clean takes.

A cache file is still read as hostile (`read_cached`): its zip's declared sizes are checked against what a file of
these settings can hold before anything is inflated (a 3.4 MB file declared 3.5 GB of audio: 50 s and 3.9 GB),
then each array's header (dtype, shape: the extractor's columns, at most the padded rows) before its data, then
its values (finite). A file that fails is not cached: its video is extracted again, and the file rewritten.
"""
from __future__ import annotations

import hashlib
import contextlib
import io
import lzma
import os
import stat
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib import format as npy

from ...atomic import read_small_file
from ...cache import cache_dir
from ...lock_files import exclusive_now, holder_pids, shared_hold, shared_mode
from .media import VISION_DIM

CACHE_FOLDER = "extract_features"       # under cache_dir()
# Bytes of a video's id kept in its cache file's name: the hashes after it tell videos apart, and a name (with
# its temporary sibling's 30 more) stays under the 255 bytes of a file name. A clip named after its
# 240-character title made the cache file's name 270 bytes, and extract failed as '--out could not be written'.
CACHE_NAME_BYTES = 100
# A .npy header as np.savez writes one is 128 bytes; a zip member's headers (local with its zip64 extra, central,
# data descriptor) under 200, the archive's end records under 100.
NPY_HEADER_BYTES = 256
# The stamp's kind, in each cache file's name: a file of another kind (the size and mtime of the first) is not looked
# at, so it is a plain miss rather than a line per clip. The bytes of each end of a video its stamp hashes.
STAMP_KIND = "stamp2"
STAMP_SAMPLE_BYTES = 1 << 20
STAMP_LENGTH = 2 + 4            # size, mtime_ns, then the sha256 of the sampled bytes as four int64
ZIP_BYTES_PER_MEMBER = 512
ZIP_END_BYTES = 1024


def cache_folder() -> Path:
    """Where extract keeps its per-video cache files: `<cache_dir()>/extract_features`."""
    return cache_dir() / CACHE_FOLDER


def _cache_entries(folder: Path) -> list[os.DirEntry]:
    """The files (and links) in extract's cache folder: its cache files of every setting and stamp, and the temporary
    siblings a killed writer left; none when there is no folder. Sub-folders, which extract never makes, are not."""
    try:
        with os.scandir(folder) as entries:
            return [entry for entry in entries if not entry.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def cache_lock(folder: Path) -> Path:
    """The lock an extract holds shared on its cache `folder` (`<folder>.lock`, beside it), and clean alone."""
    return folder.with_name(f"{folder.name}.lock")


@contextlib.contextmanager
def using_cache(folder: Path) -> Iterator[None]:
    """Hold `folder`'s lock shared for the body, while an extract reads and writes its cache files: clean refuses
    meanwhile. Waits while a clean removes them. OSError where the lock file cannot be made or opened."""
    with shared_hold(cache_lock(folder), shared_mode(folder.parent)):
        yield


class CacheInUse(Exception):
    """An extract holds the cache's lock: nothing was removed. `pids`: its holders, where the system says
    (`lock_files.holder_pids`)."""

    def __init__(self, pids: list[int]):
        super().__init__(f"held by pid(s) {pids}")
        self.pids = pids


def cache_usage(folder: Path | None = None) -> tuple[int, int]:
    """(files, bytes) in extract's cache folder: what the line at the end of `run.py extract` says it holds."""
    sizes = []
    for entry in _cache_entries(folder or cache_folder()):
        try:
            sizes.append(entry.stat(follow_symlinks=False).st_size)
        except FileNotFoundError:       # removed by another extract's rename meanwhile
            pass
    return len(sizes), sum(sizes)


def remove_cache_files(folder: Path | None = None) -> tuple[int, int]:
    """Remove every file of extract's cache folder (`run.py clean --extract-cache`), never following a link, holding
    its lock alone; (files, bytes) removed. Nothing else of the user's cache (MIntRec's text features, synthetic data,
    the file hashes, the lock itself) is touched. CacheInUse, removing nothing, while an extract holds the lock;
    OSError for a lock that cannot be opened, or a file that cannot be removed, after those before it are."""
    folder = folder or cache_folder()
    if not folder.is_dir():             # no extract ever ran: nothing to remove, and no lock made for it
        return 0, 0
    lock = cache_lock(folder)
    with exclusive_now(lock, shared_mode(folder.parent)) as taken:
        if not taken:
            raise CacheInUse(holder_pids(lock))
        files = size = 0
        for entry in _cache_entries(folder):
            try:
                removed = entry.stat(follow_symlinks=False).st_size
                os.unlink(entry.path)
            except FileNotFoundError:
                continue
            files, size = files + 1, size + removed
    return files, size


def cache_file(folder: Path, video_id: str, video: Path, media_hash: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in video_id)
    safe = safe.encode()[:CACHE_NAME_BYTES].decode(errors="ignore")     # a letter of several bytes is cut whole
    where = hashlib.sha256(str(Path(video).resolve()).encode(errors="surrogateescape")).hexdigest()[:16]
    return folder / f"{safe}-{where}-{media_hash}-{STAMP_KIND}.npz"


def file_stamp(video: Path) -> np.ndarray:
    """[size, mtime_ns, the sha256 of the video's first and last STAMP_SAMPLE_BYTES (the whole of a smaller one) as
    four int64]. OSError for a video that cannot be read, or is no regular file (opened without blocking: a named
    pipe put in its place is refused, not waited on)."""
    fd = os.open(video, os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{video} is no regular file")
        sampled = hashlib.sha256(os.pread(fd, STAMP_SAMPLE_BYTES, 0))
        if st.st_size > STAMP_SAMPLE_BYTES:         # its last MiB, or what the first left of it
            tail = max(STAMP_SAMPLE_BYTES, st.st_size - STAMP_SAMPLE_BYTES)
            sampled.update(os.pread(fd, st.st_size - tail, tail))
    finally:
        os.close(fd)
    return np.array([st.st_size, st.st_mtime_ns, *np.frombuffer(sampled.digest(), "<i8")], np.int64)


@dataclass(frozen=True)
class CacheShape:
    """What a cache file of one extraction's settings may hold: the audio's columns, and at most the padded
    rows of each feature (the extractor never stores a row past them)."""
    audio_dim: int
    audio_rows: int
    vision_rows: int

    def arrays(self) -> dict:
        """{key: (dtype, the most each axis may have, whether the shape is exact)}."""
        return {"stamp": (np.dtype("<i8"), (STAMP_LENGTH,), True), "seconds": (np.dtype("<f8"), (), True),
                "audio": (np.dtype("<f4"), (self.audio_rows, self.audio_dim), False),
                "vision": (np.dtype("<f4"), (self.vision_rows, VISION_DIM), False)}

    def member_bytes(self, key: str) -> int:
        dtype, shape, _ = self.arrays()[key]
        return int(np.prod(shape, dtype=np.int64)) * dtype.itemsize + NPY_HEADER_BYTES

    def file_bytes(self) -> int:
        return sum(self.member_bytes(key) + ZIP_BYTES_PER_MEMBER for key in self.arrays()) + ZIP_END_BYTES


class BadCacheFile(Exception):
    """A cache file extract did not write as it is (its message: what is wrong with it)."""


# What reading a file that is no zip, or a damaged one, raises: none or unreadable (OSError), empty or cut short
# (EOFError, zipfile.BadZipFile), a damaged compressed member (zlib.error, lzma.LZMAError), a bad .npy header
# (ValueError), a member compressed as zipfile cannot read (NotImplementedError) or encrypted (RuntimeError).
UNREADABLE = (OSError, EOFError, zipfile.BadZipFile, zlib.error, lzma.LZMAError, ValueError, NotImplementedError,
              RuntimeError)


def _array(raw: bytes, key: str, dtype: np.dtype, most: tuple, exact: bool) -> np.ndarray:
    """The array of a .npy member's bytes, its header checked before its data is looked at."""
    buffer = io.BytesIO(raw)
    if npy.read_magic(buffer) != (1, 0):
        raise BadCacheFile(f"its {key} is not a .npy file as np.savez writes it")
    shape, fortran, found = npy.read_array_header_1_0(buffer)
    if found != dtype or fortran:
        raise BadCacheFile(f"its {key} is {found}{' (Fortran order)' if fortran else ''}, not {dtype}")
    if len(shape) != len(most) or any(n > m or (exact and n != m) for n, m in zip(shape, most)) or (
            len(most) == 2 and shape[1] != most[1]):
        allowed = most if exact else f"(at most {most[0]}, {most[1]})"
        raise BadCacheFile(f"its {key} has shape {shape}, not {allowed}")
    body = buffer.read()
    if len(body) != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
        raise BadCacheFile(f"its {key} holds {len(body)} bytes of data, not what its shape {shape} needs")
    array = np.frombuffer(body, dtype).reshape(shape)
    if not np.isfinite(array).all():
        raise BadCacheFile(f"its {key} holds values that are not finite (NaN or infinite)")
    return array


def read_arrays(path: Path, shape: CacheShape) -> dict:
    """{key: array} of the cache file at `path`, each checked as the module docstring says. FileNotFoundError
    when there is none; BadCacheFile, or one of UNREADABLE, for a file that is not one extract wrote whole."""
    try:
        blob = read_small_file(path, shape.file_bytes(), follow_links=True)
    except ValueError as e:        # a pipe or a device; or larger than any file of these settings
        raise BadCacheFile(f"it is larger than the {shape.file_bytes()} bytes a cache file of these settings takes"
                           if str(e) == "too large" else f"it is {e}") from None
    arrays = {}
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        members = archive.infolist()
        names = sorted(member.filename for member in members)
        if names != sorted(f"{key}.npy" for key in shape.arrays()):
            raise BadCacheFile(f"it holds {', '.join(names)[:200]}, not {', '.join(shape.arrays())}")
        for member in members:
            key = member.filename[:-len(".npy")]
            if member.file_size > shape.member_bytes(key):      # declared, before a byte is inflated
                raise BadCacheFile(f"its {key} declares {member.file_size} bytes, over the "
                                   f"{shape.member_bytes(key)} a clip of these settings gives")
            with archive.open(member) as f:
                raw = f.read(member.file_size + 1)         # zipfile inflates no more than the size declared
            arrays[key] = _array(raw, key, *shape.arrays()[key])
    return arrays


def read_cached(path: Path, video: Path, shape: CacheShape) -> tuple[dict | None, str | None]:
    """(features, None) when the cache file at `path` is `video`'s (its stamp matches) and passes every check;
    (None, None) when there is none or it is of another version of the video (both ordinary misses); (None, why)
    for a file that is not one extract wrote as it is, which the caller says in one line."""
    try:
        arrays = read_arrays(path, shape)
    except FileNotFoundError:
        return None, None
    except BadCacheFile as e:
        return None, str(e)
    except UNREADABLE as e:
        return None, f"it cannot be read ({type(e).__name__})"
    try:
        video_now = file_stamp(video)
    except OSError:         # gone or unreadable since it was listed: extracting it says why, as a skip
        return None, None
    if not np.array_equal(arrays["stamp"], video_now):
        return None, None
    if arrays["seconds"] < 0:
        return None, "its seconds are negative"
    return {"audio": arrays["audio"], "vision": arrays["vision"], "seconds": float(arrays["seconds"])}, None


def cached_features(path: Path, video: Path, shape: CacheShape) -> dict | None:
    return read_cached(path, video, shape)[0]


def is_cached(path: Path, video: Path, shape: CacheShape) -> bool:
    """Whether `video` has a usable cache file of its own at `path`."""
    return cached_features(path, video, shape) is not None
