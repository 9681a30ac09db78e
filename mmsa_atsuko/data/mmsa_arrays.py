"""The checks of one array of a split of an MMSA feature pickle: its dtype, rank and sample count, and its values
(labels in range, lengths within the padding, features float32 holds and finite, BERT ids whole).

`ArrayChecks` is `mmsa_checks.SplitChecker`'s base: the split checker says which keys a split must hold and how
the splits agree; these say what one key's array may hold. Every failure is one DataError line naming the file,
the split, the key, and what was expected versus found, with the first bad sample (and its id). A check that needs
a boolean temporary counts in blocks (`array_blocks.count_where`), so a multi-GB split is never copied.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .array_blocks import count_where

LABEL_TOLERANCE = 1e-6        # labels stored as float32 may sit a hair outside the range
FLOAT32_MAX = float(np.finfo(np.float32).max)


class ArrayChecks:
    """One split's arrays checked one key at a time; `SplitChecker` sets the split (`split_name`, `ids`)."""

    def __init__(self, path: Path, facts: dict):
        self.path = path
        self.facts = facts
        self.split_name, self.n, self.n_key, self.ids = None, None, None, None
        self.neginf = {}     # (split, modality) -> float32 array holding -inf, zeroed later

    def fail(self, key: str, expected: str, found: str):
        raise DataError(f"{self.path}: split '{self.split_name}', key '{key}': "
                        f"expected {expected}, found {found}")

    def _sample(self, i: int) -> str:
        return f"sample {i} (id {self.ids[i][:80]!r})" if self.ids else f"sample {i}"

    def _count(self, key: str, n: int):
        """The first key counted in a split defines its N (the sentiment labels, else the ids); the rest must agree."""
        if self.n is None:
            self.n, self.n_key = n, key
        elif n != self.n:
            self.fail(key, f"{self.n} samples like '{self.n_key}'", f"{n}")

    def array(self, data: dict, key: str, rank) -> np.ndarray:
        """`data[key]` as a real numeric ndarray of N samples (no copy). `rank` is the number
        of dims, or "vector" for a per-sample value stored as (N,) or (N, 1) (returned as (N,))."""
        value = data[key]
        try:
            array = np.asarray(value)
        except ValueError:
            self.fail(key, "a numeric array", f"a ragged {type(value).__name__}")
        if array.dtype.kind not in "iuf":
            self.fail(key, "a numeric (int or float) array", f"dtype {array.dtype}")
        if rank == "vector":
            ok = array.ndim == 1 or (array.ndim == 2 and array.shape[1] == 1)
            expected = "shape (N,) or (N, 1)"
        else:
            ok, expected = array.ndim == rank, f"a {rank}-D array"
        if not ok:
            self.fail(key, expected, f"shape {array.shape}")
        self._count(key, array.shape[0])
        if array.shape[0] == 0:
            self.fail(key, "at least one sample", "0")
        return array.reshape(-1) if rank == "vector" else array

    def labels(self, key: str, values: np.ndarray) -> np.ndarray:
        values = np.require(values, np.float32, ("C", "W", "A"))
        self.finite(key, values)
        lo, hi = self.facts["label_range"]
        outside = (values < lo - LABEL_TOLERANCE) | (values > hi + LABEL_TOLERANCE)
        if outside.any():
            i = int(outside.argmax())
            self.fail(key, f"labels in [{lo:g}, {hi:g}]",
                      f"{int(outside.sum())} outside, first {self._sample(i)} = {values[i]:g}")
        return values

    def lengths(self, data: dict, key: str, padded: int) -> np.ndarray:
        values = self.array(data, key, "vector")
        if values.dtype.kind == "f":
            self.finite(key, values)
            fractional = values != np.floor(values)
            if fractional.any():
                i = int(fractional.argmax())
                self.fail(key, "whole numbers of frames", f"{self._sample(i)} = {values[i]:g}")
        values = values.astype(np.int64)
        bad = (values < 0) | (values > padded)
        if bad.any():
            i = int(bad.argmax())
            self.fail(key, f"lengths in [0, {padded}] (the padded length of '{key[:-len('_lengths')]}')",
                      f"{self._sample(i)} = {values[i]}")
        return values

    def features(self, key: str, array: np.ndarray, neginf_ok: bool = False) -> np.ndarray:
        """float32, C-contiguous and writable (copied only when the file's array is not),
        checked for NaN/inf. With `neginf_ok`, an array holding -inf is noted in
        `self.neginf` for load_dataset to zero once the file's hash is done."""
        if array.dtype.kind == "f" and array.dtype.itemsize > 4:
            # A finite float64 past float32's range casts to +-inf: -1e300 was then zeroed as a silent
            # frame, and +1e300 reported as a +inf the file does not hold.
            count, first = count_where(array, _past_float32)
            if count:
                self.fail(key, f"values float32 holds (at most {FLOAT32_MAX:.4g} in magnitude)",
                          f"{count} larger, first in {self._sample(first)}")
        array = np.require(array, np.float32, ("C", "W", "A"))
        if self.finite(key, array, neginf_ok=neginf_ok):
            self.neginf[(self.split_name, key)] = array
        return array

    def text_bert(self, array: np.ndarray) -> np.ndarray:
        """MMSA stores BERT ids as float; cast to int64 after checking nothing is lost."""
        if array.dtype.kind == "f":
            self.finite("text_bert", array)
            as_int = array.astype(np.int64)
            lost = as_int != array
            if lost.any():
                i = int(lost.reshape(len(array), -1).any(axis=1).argmax())
                self.fail("text_bert", "whole-number token ids, mask and segment ids",
                          f"fractional values, first in {self._sample(i)}")
        else:
            as_int = np.require(array, np.int64, ("C", "W", "A"))
        if as_int.min() < 0:
            i = int((as_int < 0).reshape(len(as_int), -1).any(axis=1).argmax())
            self.fail("text_bert", "non-negative ids", f"{as_int.min()} in {self._sample(i)}")
        mask = as_int[:, 1]
        if not ((mask == 0) | (mask == 1)).all():
            self.fail("text_bert", "an attention mask (row 1) of 0s and 1s",
                      f"values {np.unique(mask)[:6].tolist()}")
        return as_int

    def finite(self, key: str, array: np.ndarray, neginf_ok: bool = False) -> bool:
        """Fail on NaN or +inf, and on -inf unless `neginf_ok`. Returns whether -inf is there."""
        if array.size == 0:
            return False
        # A sum propagates NaN and +-inf (and is non-finite on overflow), so a clean array,
        # nearly every array, costs one reduction with no temporary; only a non-finite sum
        # pays for the passes that say what is wrong. Overflow and inf - inf in the sum are expected there, not
        # numpy's to print: two raw RuntimeWarning lines came before the one line that says what is wrong.
        with np.errstate(over="ignore", invalid="ignore"):
            if np.isfinite(np.add.reduce(array, axis=None)):
                return False
        lo, hi = array.min(), array.max()
        if np.isnan(lo) or np.isnan(hi):
            count, first = count_where(array, np.isnan)
            self.fail(key, "no NaN", f"{count} NaN, first in {self._sample(first)}")
        if hi == np.inf:
            count, first = count_where(array, np.isposinf)
            self.fail(key, "no +inf", f"{count} +inf, first in {self._sample(first)}")
        if lo == -np.inf and not neginf_ok:
            count, first = count_where(array, np.isneginf)
            self.fail(key, "no -inf", f"{count} -inf, first in {self._sample(first)}")
        return bool(lo == -np.inf)


def _past_float32(block: np.ndarray) -> np.ndarray:
    """Finite values that float32 cannot hold (an infinity is `finite`'s business)."""
    return np.isfinite(block) & (np.abs(block) > FLOAT32_MAX)
