"""Whole passes over a feature file's big arrays, made in blocks along the sample axis.

A MOSEI split is gigabytes: a check that needs a boolean temporary (`count_where`: how many values
are NaN, +-inf or past float32, and the first sample holding one) or the in-place fix of silent
frames (`zero_neginf`) walks the array in blocks of about `BLOCK_BYTES`, so validating or fixing
it never allocates a second copy of it. mmsa_checks counts with it; mmsa_format zeroes -inf with
it once the file's hash is done.
"""
from __future__ import annotations

import numpy as np

BLOCK_BYTES = 64 << 20


def blocks(array: np.ndarray):
    """(first sample, view) over `array` in blocks of about BLOCK_BYTES along axis 0."""
    per_sample = max(1, array[0].nbytes if array.ndim > 1 else array.itemsize)
    step = max(1, BLOCK_BYTES // per_sample)
    for start in range(0, len(array), step):
        yield start, array[start:start + step]


def count_where(array: np.ndarray, predicate) -> tuple[int, int]:
    """How many elements satisfy `predicate`, and the first sample holding one."""
    count, first = 0, None
    for start, block in blocks(array):
        hits = predicate(block)
        n = int(np.count_nonzero(hits))
        if n and first is None:
            first = start + int(hits.reshape(len(block), -1).any(axis=1).argmax())
        count += n
    return count, first


def zero_neginf(array: np.ndarray) -> int:
    """Replace -inf with 0 in place (MMSA's silent-frame fix); return how many there were."""
    count = 0
    for _, block in blocks(array):
        # `== -inf` and copyto(where=) are single ufunc passes; np.isneginf and boolean
        # indexing take several times longer on a MOSEI-sized audio array.
        hits = np.equal(block, -np.inf)
        n = int(np.count_nonzero(hits))
        if n:
            np.copyto(block, 0, where=hits)
            count += n
    return count
