"""Videos + a transcript CSV -> one MMSA-format feature pickle (`run.py extract`).

The CSV (see `transcripts`) gives each video's id, text, and where present its label and
split. Without a split column the samples are split by `--split` ratios with `--seed`; a
file without labels (for `predict` only) puts every sample in `test` unless `--split` is given.

The pickle is MMSA's layout (thuiar/MMSA:README.md), unaligned, with two extra keys the
loader tolerates: per split `vision_no_face_frames` (N,), how many of a sample's stored
frames had no face (zero rows), and at the top level `meta/extractor`: this extractor's
name, version, config and config hash (the hash covers every setting that changes the
numbers, including the BERT's tokenizer and weights), which run records and model.json
carry on.

Audio and vision are extracted per video, in `jobs` processes, each result cached in the
user's cache (`feature_cache`: keyed by the video's path and the config hash, stamped with its size, mtime and
sampled bytes, and checked before use), so a killed extraction resumes where it stopped. Text is encoded at the end, in
one pass. Progress, of the videos and then of BERT's texts: tqdm's bar on a terminal, else a line
each tenth of them (`Progress`). A video that cannot be read is skipped with one line in `<out stem>.skipped.txt` (also
printed); so is a transcript row without a video, a video without a row, and a clip over a limit of
`media` (longer than `max_clip_seconds`, frames over media.MAX_PIXELS, more decoded pixels than
media.pixel_budget(max_clip_seconds)). Either of those two
names being a symbolic link is refused in one line before any work, as predict --videos refuses it.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ...atomic import check_entries, check_folder, check_output_file, write_failed, write_pickle
from ...errors import DataError, UsageError
from ...progress import Progress
from ..mmsa_format import EXTRACTOR_KEY
from . import media
from .clip_features import clip_features
from .feature_cache import cache_folder
from .report import printable, printable_id, skipped_report_path, write_report
from .text import encode_texts, encoder_sha256, tokenizer_identity
from .transcripts import SPLITS, UNIMODAL, assign_splits, parse_split, read_transcripts
from .worker_start import exit_if_main_reimported

EXTRACTOR_NAME = "mmsa_atsuko.extract"
EXTRACTOR_VERSION = "1"          # bump when the same settings would give other numbers
NO_FACE_KEY = "vision_no_face_frames"
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".flv", ".m4v", ".mpg", ".mpeg", ".wmv")


@dataclass(frozen=True)
class ExtractConfig:
    """Every setting that changes the features (hashed into `meta/extractor`)."""
    audio: str = "opensmile"      # opensmile | librosa
    fps: float = 10.0             # vision frames sampled per second
    text_len: int = 50            # padded lengths (MOSI's text length; 15 s of audio and video)
    audio_len: int = 375
    vision_len: int = 150


@dataclass
class ExtractResult:
    path: Path
    counts: dict                  # samples per split
    extracted: int                # videos extracted in this call
    cached: int                   # videos taken from the cache
    skipped: list = field(default_factory=list)     # "id: reason" lines
    dataset_hint: str | None = None     # the built-in dataset whose label range fits, for `-d`
    label_range: tuple | None = None    # (lowest, highest) label, when the transcripts have labels


def _config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def _library_versions(backend: str) -> dict:
    from importlib.metadata import PackageNotFoundError, version
    names = ["av", "opencv-python-headless", backend, "transformers"]
    versions = {}
    for name in names:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def _require_extra(backend: str) -> None:
    import importlib.util
    missing = [m for m in ("av", "cv2", backend) if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"extraction needs {', '.join(missing)}: pip install -c constraints.txt -e \".[extract]\"")


# -- the whole file -------------------------------------------------------------------------------

def _pad(arrays: list, length: int, dim: int) -> tuple[np.ndarray, list]:
    out = np.zeros((len(arrays), length, dim), np.float32)
    lengths = []
    for i, a in enumerate(arrays):
        n = min(len(a), length)
        out[i, :n] = a[:n]
        lengths.append(n)
    return out, lengths


def _videos_by_id(folder: Path) -> tuple[dict, dict]:
    """({id: video file}, {id: why it cannot be used}) of the folder's entries named as videos."""
    found, refused, not_files = {}, {}, {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            continue
        try:
            path.name.encode()
        except UnicodeEncodeError:      # its id held a lone surrogate: pandas' string column raised on it
            shown = os.fsencode(path.stem).decode(errors="backslashreplace")
            refused[shown] = "its file name is not UTF-8, so no transcript row can name it: rename it"
            continue
        if not path.is_file():      # never opened (a named pipe blocks its reader); its row was "no video file"
            not_files[path.stem] = (f"{path.name} is a link to nothing" if path.is_symlink() and not path.exists()
                                    else f"{path.name} is no regular file (a named pipe, a device or a folder): "
                                         f"put the video file itself there")
        elif path.stem in found:
            refused[path.stem] = f"two videos for one id ({found[path.stem].name}, {path.name})"
        else:
            found[path.stem] = path
    return found, {**{i: r for i, r in not_files.items() if i not in found}, **refused}


def resolve_bert(bert) -> str:
    if not bert:
        raise UsageError("extraction needs a BERT for the text: pass --bert PATH (a folder with config.json, "
                         "vocab.txt and the weights, e.g. bert-base-uncased or bert-base-chinese, or a model id "
                         "already in the Hugging Face cache)")
    # Imported here: models.common.bert pulls in torch, which the audio/vision workers never need.
    from ...models.common.bert import resolve_bert_path
    return resolve_bert_path(bert, option="--bert ")


def recorded_bert(bert) -> str:
    """`--bert` as the file records it, for `predict --videos` to extract with again: a local folder as
    an absolute path (typed relative, it was not found from any other working folder), a model id of
    the Hugging Face cache (or a synthetic BERT's name) as given, so that it is looked up where predict runs."""
    folder = Path(os.path.expanduser(str(bert)))
    return str(folder.resolve()) if folder.is_dir() else str(bert)


def check_lengths(config: ExtractConfig, max_clip_seconds: float) -> None:
    """The padded lengths at most what a clip within the limits can fill: the file is (clips, length, dim) of
    zeros beyond each clip, made whole in memory. A model.json from anywhere gives `predict --videos` its lengths,
    bounded only by its best.pt's values: an audio length of 10^8 asked 10 GB a clip before any was decoded."""
    if not all(math.isfinite(x) and x > 0 for x in (max_clip_seconds, config.fps)):
        return          # `extract` refuses these in a line of their own
    # Of a clip at the default limit at least: padding past a lower --max-clip-seconds is a run's own (its model
    # was trained at 15 s, its clips are capped at 5).
    longest = max(max_clip_seconds, media.MAX_CLIP_SECONDS)
    most = {"audio": math.ceil(longest * media.AUDIO_RATE) + 1,     # one row per 40 ms of the clip
            # one row per slot of the 1/fps grid, and never more than the frames a clip may decode
            "vision": min(math.ceil(longest * config.fps) + 1, media.MAX_FRAME_RATE * (math.ceil(longest) + 1))}
    for modality, limit in most.items():
        length = getattr(config, f"{modality}_len")
        if length > limit:
            raise UsageError(f"--{modality}-len {length:,} is more {modality} frames than a clip of at most "
                             f"{longest:g} s holds ({limit:,}): give a padded length up to that, or raise "
                             f"--max-clip-seconds")


def _check_text_len(text_len: int, bert_dir: str) -> None:
    """--text-len at most the positions the BERT embeds: the tokenizer pads every text to it before the BERT refuses."""
    from ...models.common.bert_weights import bert_config
    positions = bert_config(bert_dir).max_position_embeddings
    if text_len > positions:
        raise UsageError(f"--text-len {text_len:,} is more tokens than the BERT {bert_dir} embeds ({positions:,}): "
                         f"give a padded length up to that")


def extract(videos, transcripts, out, *, bert=None, config: ExtractConfig = ExtractConfig(), split=None,
            seed: int = 1111, jobs: int = 1, max_clip_seconds: float = media.MAX_CLIP_SECONDS,
            echo=print) -> ExtractResult:
    """Write the MMSA-format pickle `out` from a folder of videos and a transcript CSV.

    A clip longer than `max_clip_seconds` is skipped and reported. The limit is not in
    ExtractConfig nor in the cache key: it only refuses, and never changes the features of a
    clip it accepts, so a cached clip stays valid under any limit. Each cache file stores its
    clip's length, so a cached clip over the limit of this call is skipped as a fresh one would be. The
budget of decoded pixels (media.pixel_budget) bounds what decoding costs, which a cached clip has paid:
it is not checked again.
    """
    exit_if_main_reimported()      # a worker's start re-running the caller's script: before any of the work below
    if config.audio not in media.AUDIO_DIMS:
        raise UsageError(f"unknown --audio {config.audio!r}: choose opensmile or librosa")
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    if not 0 <= seed < 2 ** 32:      # numpy's traceback at the split shuffle, after every clip was extracted
        raise UsageError(f"--seed: seed {seed} is out of range; a seed is 0 to 2**32 - 1 (numpy's limit)")
    if not (math.isfinite(max_clip_seconds) and max_clip_seconds > 0):
        raise UsageError(f"--max-clip-seconds must be a positive number of seconds, got {max_clip_seconds!r}")
    if not (math.isfinite(config.fps) and config.fps > 0):     # nan would skip every clip as undecodable
        raise UsageError(f"--fps must be a positive number of frames per second, got {config.fps!r}")
    if min(config.text_len, config.audio_len, config.vision_len) < 1:
        raise UsageError("every padded length (--text-len, --audio-len, --vision-len) must be positive")
    check_lengths(config, max_clip_seconds)
    videos, out = Path(videos), Path(out)
    _check_beside(out)
    if out.is_dir():         # else found only by the final rename, after every clip was extracted
        raise UsageError(f"--out {out} is a folder; give the feature file to write, e.g. {out / 'features.pkl'}")
    check_output_file(out, "--out")     # a link, or a device such as /dev/full that the final rename would replace
    if not videos.is_dir():
        raise DataError(f"video folder {videos} {'is a file, not a folder' if videos.exists() else 'not found'}: "
                        f"give the folder that holds the videos")
    _require_extra(config.audio)
    bert_dir = resolve_bert(bert)
    _check_text_len(config.text_len, bert_dir)
    ratios = parse_split(split) if split else None
    table = read_transcripts(transcripts, ratios)

    settings = {"extractor": EXTRACTOR_VERSION, **asdict(config), "audio_rate": media.AUDIO_RATE,
                "vision": f"haar-frontalface-default/{media.DETECT_WIDTH}px", "aligned": False}
    media_hash = _config_hash({k: v for k, v in settings.items() if k != "text_len"})   # names the cache files
    settings["text"] = {"tokenizer": tokenizer_identity(bert_dir), "encoder_sha256": encoder_sha256(bert_dir)}
    config_hash = _config_hash(settings)

    found, skipped = _videos_by_id(videos)
    for video_id in sorted(set(found) - set(table.id) - set(skipped)):
        skipped[video_id] = "no row in the transcripts"
    rows_without_video = set(table.id) - set(found) - set(skipped)     # a row whose video is a named pipe: said so
    for video_id in rows_without_video:
        skipped[video_id] = f"no video file in {videos} named after the id (id.mp4, id.mkv, ...)"
    if os.path.lexists(cache_path(out)):        # said on every call: removing it is the user's to decide (below)
        echo(old_cache_line(out))
    to_read = [i for i in table.id if i not in skipped]
    features, extracted, cached = clip_features(found, to_read, skipped, media_hash, config, jobs, max_clip_seconds,
                                                echo)

    keep = table[~table.id.isin(list(skipped))].reset_index(drop=True)
    if keep.empty:
        report = write_report(out, skipped, echo, rows_without_video)
        raise DataError(f"no video of {videos} could be extracted (see {report})")
    keep["split"] = assign_splits(keep, ratios, seed)
    # Minutes with a real BERT on a CPU, after the videos' progress: it has its own.
    progress = Progress(len(keep), echo, what="texts encoded by BERT", unit="text")
    try:
        text_bert, text = encode_texts(keep.text.tolist(), bert_dir, config.text_len, progress=progress.update)
    finally:
        progress.close()

    labelled = "label" in keep.columns
    data = {}
    for name in SPLITS:
        rows_of = np.flatnonzero((keep.split == name).to_numpy())
        if len(rows_of) == 0:       # said by run.py extract (predict --videos needs no split but test)
            continue
        part = keep.iloc[rows_of]
        audio, audio_lengths = _pad([features[i]["audio"] for i in part.id], config.audio_len,
                                    media.AUDIO_DIMS[config.audio])
        vision, vision_lengths = _pad([features[i]["vision"] for i in part.id], config.vision_len, media.VISION_DIM)
        labels = part.label.to_numpy(np.float32) if labelled else np.zeros(len(part), np.float32)
        split_data = {
            "raw_text": part.text.tolist(), "text": text[rows_of], "text_bert": text_bert[rows_of],
            "audio": audio, "vision": vision, "audio_lengths": audio_lengths, "vision_lengths": vision_lengths,
            "id": part.id.tolist(),
            "annotations": [("Negative", "Neutral", "Positive")[int(np.sign(y)) + 1] for y in labels],
            "regression_labels": labels,
            NO_FACE_KEY: (vision[:, :, 0] == 0).sum(axis=1) - (config.vision_len - np.array(vision_lengths)),
        }
        for column in UNIMODAL:
            if column in part.columns or not labelled:   # placeholders too, so a SIMS model can predict
                values = part[column].to_numpy(np.float32) if column in part.columns else labels
                split_data[f"regression_labels_{column[-1]}"] = values
        data[name] = split_data
    data[EXTRACTOR_KEY] = {"name": EXTRACTOR_NAME, "version": EXTRACTOR_VERSION, "config_hash": config_hash,
                           "config": settings, "bert": recorded_bert(bert), "labels": labelled,
                           "libraries": _library_versions(config.audio)}
    try:
        write_pickle(data, out)
    except OSError as e:
        raise write_failed(f"--out {out}", "--out", e) from None

    counts = {name: len(data[name]["id"]) for name in SPLITS if name in data}
    result = ExtractResult(out, counts, extracted, cached,
                           sorted(f"{printable_id(i)}: {printable(r)}" for i, r in skipped.items()))
    if labelled:
        result.label_range = (float(keep.label.min()), float(keep.label.max()))
        result.dataset_hint = _dataset_hint(keep, *result.label_range)
    if skipped:
        write_report(out, skipped, echo, rows_without_video)
    else:
        skipped_report_path(out).unlink(missing_ok=True)    # a report of an earlier call no longer holds
    return result


def _dataset_hint(table: pd.DataFrame, lo: float, hi: float) -> str | None:
    """The built-in dataset whose label range [lo, hi] and keys fit the file (what `-d` trains it), if any."""
    if all(c in table.columns for c in UNIMODAL) and lo >= -1 and hi <= 1:
        return "sims"
    return "mosi" if lo >= -3 and hi <= 3 else None


def cache_path(out: Path) -> Path:
    """Where extract kept its per-video results before they moved to the user's cache: ignored, with one line."""
    return out.with_name(out.name + ".cache")


def old_cache_line(out: Path) -> str:
    """The line of every call that finds `cache_path(out)`, with the command that removes it. Said again each call
    until it is gone, not once: extract never removes it itself (it may be a link, or a folder that came with a
    shared one and is not this user's to delete), keeps no record of having said so, and the line is the only sign
    that the folder is dead weight."""
    old = cache_path(out)
    return (f"ignoring {printable(str(old))} (extract reads no cache beside --out any more; its cache is in "
            f"{cache_folder()}): remove it with  rm -r -- {printable(shlex.quote(str(old)))}")


def _check_beside(out: Path) -> None:
    """One UsageError line, before any work, unless the folder of `out` is, or can be made as, a
    folder this user may write (`atomic.check_folder`), and what extract writes beside `out` (its
    skipped list) is neither a symbolic link, the wrong kind of thing, nor unwritable
    (`atomic.check_entries`, the checks predict makes in its --out)."""
    check_folder(out.parent, "output folder")
    check_entries(out.parent, (skipped_report_path(out).name,), "output folder")
