"""MIntRec's feature pickles read into padded frame arrays: one modality's file, every TSV key in it.

A value is a (T, D) array or, as MIntRec's video file has it, a list of (1, D) arrays. Each is
cut or zero-padded at the end to the padded length (230 video, 480 audio frames for the real
data), the true lengths kept (MIntRec drops them; its cut returns one row, `feat[max_len, :]`,
here it is the first frames). The pickle goes through `safe_pickle` (no code in a file can run);
a missing key, a frame array of the wrong shape or dtype, NaN or inf is one line naming the file,
split and key. Apart from the TSVs (tables.py) because this is the costly read, made after every
cheap check has passed.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from ...errors import DataError
from ... import safe_pickle
from .folder import FEATURE_FILES, NAMED_AT_MOST, SPLITS, TSV_FILES

log = logging.getLogger("mmsa_atsuko")


class _BadValue(Exception):
    """What is wrong with one key's value; the caller names the file, split and key."""


def _frames(value) -> np.ndarray:
    """A feature value as (T, D) float32: a (T, D) array, or a list of (1, D) arrays (MIntRec's
    video form), which numpy stacks to (T, 1, D)."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise _BadValue("an empty list (no frames)")
        try:
            array = np.asarray(value)
        except ValueError:
            raise _BadValue("a list of frames of different shapes") from None
    elif isinstance(value, np.ndarray):
        array = value
    else:
        raise _BadValue(f"a {type(value).__name__}")
    if array.dtype.kind not in "iuf":
        raise _BadValue(f"dtype {array.dtype}")
    if array.ndim == 3 and array.shape[1] == 1:
        array = array[:, 0, :]
    if array.ndim != 2 or array.shape[0] == 0:
        raise _BadValue(f"shape {array.shape}")
    return np.asarray(array, dtype=np.float32)


def _check_finite(path: Path, split: str, keys: list, padded: np.ndarray) -> None:
    # min and max propagate NaN: two fast passes over a clean array, the usual case.
    lo, hi = padded.min(), padded.max()
    if np.isfinite(lo) and np.isfinite(hi):
        return
    bad = ~np.isfinite(padded).reshape(len(padded), -1).all(axis=1)      # per sample
    i = int(np.argmax(bad))
    what = "NaN" if np.isnan(padded[i]).any() else "inf"
    raise DataError(f"{path}: split '{split}', key {keys[i]!r}: expected finite values, found {what} "
                    f"(in {int(bad.sum())} samples of this split)")


def read_feature_file(folder: Path, modality: str, rows: dict, max_len: int):
    """Read one feature pickle. -> ({split: ((N, max_len, D) float32, (N,) int64 lengths)}, sha256)."""
    rel = FEATURE_FILES[modality]
    path = folder / rel
    hasher = hashlib.sha256()
    feats = safe_pickle.load(path, hasher=hasher)
    if not isinstance(feats, dict):
        raise DataError(f"{path}: expected a dict from season_episode_clip keys to frame arrays, "
                        f"found {type(feats).__name__}")

    missing = [(split, key) for split in SPLITS for key in rows[split].keys if key not in feats]
    if missing:
        named = ", ".join(f"{key} ({TSV_FILES[split]})" for split, key in missing[:NAMED_AT_MOST])
        more = f" and {len(missing) - NAMED_AT_MOST} more" if len(missing) > NAMED_AT_MOST else ""
        raise DataError(f"{path}: {len(missing)} keys of the TSVs are missing from it: {named}{more}; "
                        f"every TSV row's season_episode_clip must be a key of {Path(rel).name} "
                        f"(is it the file that belongs with these TSVs?)")

    out, dim, cut = {}, None, 0
    for split in SPLITS:
        keys = rows[split].keys
        padded = lengths = None
        for i, key in enumerate(keys):
            # Keys are unique across splits (checked), so each value can be dropped once copied:
            # the file's arrays and the padded ones are never all in memory together.
            try:
                frames = _frames(feats.pop(key))
            except _BadValue as e:
                raise DataError(f"{path}: split '{split}', key {key!r}: expected a (T, D) array or a list of "
                                f"(1, D) arrays of numbers, found {e}") from None
            if dim is None:
                dim = frames.shape[1]
            if frames.shape[1] != dim:
                raise DataError(f"{path}: split '{split}', key {key!r}: expected {dim} features per frame like "
                                f"the other keys, found {frames.shape[1]}")
            if padded is None:
                padded = np.zeros((len(keys), max_len, dim), dtype=np.float32)
                lengths = np.zeros(len(keys), dtype=np.int64)
            n = min(len(frames), max_len)
            cut += len(frames) > max_len
            padded[i, :n] = frames[:n]
            lengths[i] = n
        _check_finite(path, split, keys, padded)
        out[split] = (padded, lengths)
    if cut:
        log.info("mintrec: cut %d %s sequences to %d frames", cut, modality, max_len)
    return out, hasher.hexdigest()
