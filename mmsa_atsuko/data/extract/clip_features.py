"""Each clip's audio and vision features for `pipeline.extract`: read from extract's cache where a valid file is
there, else extracted (`videos.run_videos`) and read back through the same checks (`feature_cache.read_cached`), all
while the cache's lock is held shared (`feature_cache.using_cache`: `clean --extract-cache` refuses meanwhile)."""
from __future__ import annotations

import contextlib

from ...atomic import write_failed
from ...cache import CACHE_ENV
from ...errors import Interrupted
from . import media
from .feature_cache import CacheShape, cache_file, cache_folder, is_cached, read_cached, using_cache
from .report import printable_id
from .videos import run_videos


def clip_features(found: dict, ids: list, skipped: dict, media_hash: str, config, jobs: int, max_clip_seconds: float,
                  echo) -> tuple[dict, int, int]:
    """({video id: its features} for `ids` (video files in `found`), under `config` (`pipeline.ExtractConfig`); how
    many were extracted; how many came from the cache). A clip that cannot be used is added to `skipped` (id -> why)
    instead. Cache files are named by `media_hash`."""
    cache_dir, shape = cache_folder(), CacheShape(media.AUDIO_DIMS[config.audio], config.audio_len, config.vision_len)
    with contextlib.ExitStack() as held:
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            held.enter_context(using_cache(cache_dir))      # until the clips are read back: clean refuses meanwhile
        except OSError as e:
            raise write_failed(f"extract's cache folder {cache_dir}", f"${CACHE_ENV}", e) from None
        try:        # reading a clip or its cache file fails inside, as a skip or a miss
            rows = [(i, found[i], cache_file(cache_dir, i, found[i], media_hash)) for i in ids]
            todo, hits = [], {}          # hits: the cached clips, read once
            for row in rows:
                hit, bad = read_cached(row[2], row[1], shape)
                if bad:
                    echo(f"cache file {row[2]} not used ({bad}): extracting {printable_id(row[0])} again")
                if hit is None:
                    todo.append(row)
                elif hit["seconds"] > max_clip_seconds:
                    skipped[row[0]] = media.too_long(max_clip_seconds, f"{hit['seconds']:.1f} s")
                else:
                    hits[row[0]] = hit
            if hits:        # the progress below counts the videos to extract only (predict --videos has no summary)
                echo(f"{len(hits)} of the {len(rows)} videos taken from extract's cache, {len(todo)} to extract")
            # An OSError from here on is a cache file's write in a worker: one the workers could not be started by is
            # run_videos' own line (`worker_start.start_failed`), not blamed on the cache.
            try:
                skipped.update(run_videos(todo, config.audio, config.fps, jobs, max_clip_seconds, echo,
                                          rows=(config.audio_len, config.vision_len)))
            except KeyboardInterrupt:       # the workers are stopped: what is cached now stays so
                raise _interrupted(rows, todo, hits, shape) from None
        except OSError as e:
            raise write_failed(f"extract's cache folder {cache_dir}", f"${CACHE_ENV}", e) from None
        features = dict(hits)
        for video_id, video, cache in todo:
            if video_id not in skipped:      # read back as a cache file is: one failing its checks never gets through
                features[video_id], why = read_cached(cache, video, shape)
                if features[video_id] is None:
                    skipped[video_id] = f"its features failed the cache's checks once extracted " \
                                        f"({why or 'the video changed meanwhile'})"
    return features, len(todo) - sum(1 for row in todo if row[0] in skipped), len(hits)


def _interrupted(rows: list, todo: list, hits: dict, shape: CacheShape) -> Interrupted:
    """Ctrl-C while the clips in `todo` were extracted: how many of the videos (`rows`) are cached now, counted on
    disk (those taken from the cache, `hits`, and those extracted before it), and that the same command goes on."""
    cached = len(hits) + sum(is_cached(cache, video, shape) for _, video, cache in todo)
    return Interrupted(f"{cached} of the {len(rows)} videos are in extract's cache; the same command again goes on "
                       f"from them")
