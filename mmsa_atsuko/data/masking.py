"""A protocol condition (conditions.py) applied to a split's tensors, once, at load (`Dataset.under`): frames
missing at a rate, a dropped modality, modalities left out as an empty input; conditions.py's docstring says what
each does to the data.

The masks depend only on (data id, split, modality) and the rate: the uniform draws come from
a generator seeded with sha256("<data id>|<split>|<modality>"), and a frame is missing when its
draw is below R. So every model, every training seed and every process sees the same masked
data, and the masks are nested: a frame missing at rate 0.3 is missing at 0.5 too.
"""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

from ..errors import UsageError
from .conditions import LETTERS, Condition

if TYPE_CHECKING:
    import torch

UNK_ID = 100                 # bert-base-uncased, bert-base-chinese and the synthetic BERT


def _uniforms(data_id: str, split: str, modality: str, shape) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(f"{data_id}|{split}|{modality}".encode()).digest()[:8], "little")
    return np.random.default_rng(seed).random(shape)


def missing_frames(data_id: str, split: str, modality: str, rate: float, lengths: torch.Tensor,
                   max_len: int, spare_ends: bool = False) -> torch.Tensor:
    """(N, max_len) bool, True where a real frame is missing at `rate`. `spare_ends`: the first and the
    last real frame never are (BERT-token text's [CLS] and [SEP]; `condition_tensors` says when)."""
    import torch     # here, not at the top: records and leaderboards read conditions without torch
    lengths = lengths.cpu().long()
    positions = torch.arange(max_len)[None, :]
    real = positions < lengths[:, None]
    if spare_ends:
        real &= (positions > 0) & (positions < lengths[:, None] - 1)
    draws = torch.from_numpy(_uniforms(data_id, split, modality, (len(lengths), max_len)))
    return real & (draws < rate)


def _feature_rows_missing(modality: str, rate: float, frames: torch.Tensor) -> torch.Tensor:
    """The feature rows to zero: `frames`, except that a dropped text (rate 1) loses every row of `text`. In
    MMSA's `text` (BERT's last layer) the rows of [CLS] and [SEP] are computed from the whole sentence, and so
    are those of [PAD] tokens where BERT read the padding: kept, they carried the dropped text to the model.
    BERT ids keep their [CLS] and [SEP] tokens: a model reading ids needs them, and with every word [UNK]
    they carry nothing of the sentence."""
    if modality != "text" or rate < 1.0:
        return frames
    return frames.new_ones(frames.shape)


def _zero_frames(x: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    return x.masked_fill(frames.to(x.device)[:, :, None], 0)


def _empty(tensors: dict, modality: str) -> None:
    """Make `modality` an empty input, the same for every sample (see the module docstring)."""
    import torch
    out_len = 1
    if modality == "text" and "text_bert" in tensors:
        bert = tensors["text_bert"]
        ids, lengths = bert[:, 0], bert[:, 1].sum(dim=1).long()
        empty = torch.zeros_like(bert)
        empty[:, 0, 0] = ids[:, 0]                                          # [CLS]
        empty[:, 0, 1] = ids.gather(1, (lengths - 1).clamp(min=0)[:, None])[:, 0]   # [SEP]
        empty[:, 1, :2] = 1
        tensors["text_bert"] = empty
        out_len = 2
    if modality in tensors:
        tensors[modality] = torch.zeros_like(tensors[modality])
    n, max_len = tensors[f"{modality}_mask"].shape
    tensors[f"{modality}_lengths"] = torch.full((n,), out_len, dtype=tensors[f"{modality}_lengths"].dtype)
    tensors[f"{modality}_mask"] = torch.arange(max_len)[None, :].expand(n, max_len) < out_len


def condition_tensors(tensors: dict, *, data_id: str, split: str, condition: Condition) -> dict:
    """The split's tensors under `condition`: a new dict; tensors it does not change are shared."""
    if condition.plain:
        return tensors
    if condition.older_text_drop:       # which rows it zeroed is not known (analysis.runs says so per run)
        raise UsageError("a --drop-modality T of an older toolkit cannot be rebuilt: train the run again")
    out = dict(tensors)
    for letter, modality in LETTERS.items():
        if letter not in condition.modalities:
            _empty(out, modality)
            continue
        rate = condition.rate(letter)
        if rate == 0:
            continue
        lengths = out[f"{modality}_lengths"]
        max_len = out[f"{modality}_mask"].shape[1]
        # [CLS] and [SEP] are rows of BERT-token text only, which `text_bert` marks (it made the lengths);
        # an older record's run spared the ends of every text, and its data is rebuilt so.
        spare_ends = modality == "text" and ("text_bert" in out or condition.older_text_missing)
        frames = missing_frames(data_id, split, modality, rate, lengths, max_len, spare_ends)
        if modality in out:
            out[modality] = _zero_frames(out[modality], _feature_rows_missing(modality, rate, frames))
        if modality == "text" and "text_bert" in out:
            bert = out["text_bert"].clone()
            bert[:, 0] = bert[:, 0].masked_fill(frames.to(bert.device), UNK_ID)
            out["text_bert"] = bert
    return out
