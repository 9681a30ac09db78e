"""data/array_blocks.py: passes in blocks give what one pass over the whole array gives, across block edges.

Real splits fit in one 64 MiB block only when small, so the block size is shrunk here to a few samples;
the expected values come from numpy over the whole array.
"""
import numpy as np
import pytest

from mmsa_atsuko.data import array_blocks


@pytest.fixture
def small_blocks(monkeypatch):
    # (5, 4) float32 samples are 80 bytes: 200 bytes make blocks of 2 samples, so 11 samples are 6 blocks.
    monkeypatch.setattr(array_blocks, "BLOCK_BYTES", 200)


def audio_with_neginf() -> np.ndarray:
    array = np.arange(11 * 5 * 4, dtype=np.float32).reshape(11, 5, 4)
    array[3, 2, 1] = array[3, 4, 0] = array[8, 0, 0] = array[10, 4, 3] = -np.inf
    return array


def test_blocks_cover_every_sample_once_in_order(small_blocks):
    array = audio_with_neginf()
    starts = [start for start, _ in array_blocks.blocks(array)]
    assert starts == [0, 2, 4, 6, 8, 10]
    assert np.array_equal(np.concatenate([block for _, block in array_blocks.blocks(array)]), array)


def test_count_where_counts_over_every_block_and_finds_the_first_sample(small_blocks):
    array = audio_with_neginf()
    assert array_blocks.count_where(array, np.isneginf) == (int(np.isneginf(array).sum()), 3)
    assert array_blocks.count_where(array, np.isnan) == (0, None)
    assert array_blocks.count_where(array[4:], np.isneginf) == (2, 4)       # sample 8 of the whole is 4 here


def test_zero_neginf_zeroes_in_place_across_blocks(small_blocks):
    array = audio_with_neginf()
    expected = np.where(np.isneginf(array), 0, array)
    assert array_blocks.zero_neginf(array) == 4
    assert np.array_equal(array, expected) and not np.isneginf(array).any()
    assert array_blocks.zero_neginf(array) == 0
