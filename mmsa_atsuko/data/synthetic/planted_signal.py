"""The planted signal: the latent scores of every sample, and the text, audio, vision and labels made from them.

Every sample has three independent latent scores t, a, v ~ N(0, 1).
Text carries t through the words it uses (graded positive/negative words whose valence
follows tanh(t)); `text` features are a fixed embedding table looked up at the token ids
plus noise, so `text` and `text_bert` hold the same information. A few audio columns carry
a, a few vision columns carry v, over the valid frames only: half of a cue's power is a
constant shift, half a cosine of fixed period (5-12 frames) and phase, and the same columns
carry a label-free baseline and trend (the drift), which hides most of the constant part
from a model that only averages over time (recipe v2; in v1 the cue was the constant
alone, with no drift, so the time mean held all of it). The label is
`hi * tanh(GAIN * (W_T t + W_A a + W_V v + noise))` with W_T^2 = 0.5 and W_A^2 = W_V^2 = 0.25,
so text alone explains about half of what all three modalities explain: a model has to
fuse to do well. SIMS-like datasets also get unimodal labels from t, a and v alone.

This is what a model can learn from the data, apart from how MMSA lays a file out
(mmsa_file.py), so the one can be read, and changed under a new RECIPE_VERSION, without the other.
Every draw comes from a generator the caller seeds from the recipe name (`seed_sequence`).
"""
from __future__ import annotations

import hashlib
import math

import numpy as np

from ..tiny_bert import (CLS_ID, FILLER_WORDS, FIRST_FILLER_ID, FIRST_WORD_ID, LEVELS, PAD_ID, SEP_ID, SYNONYMS,
                         VALENCE_STEPS, VOCAB_SIZE)

# ---------------------------------------------------------------------------------------
# The planted signal (see the module docstring). Changing any of these changes the data,
# so it needs a new RECIPE_VERSION (recipes.py).
# ---------------------------------------------------------------------------------------
W_T, W_A, W_V = math.sqrt(0.5), 0.5, 0.5   # label variance shares 50/25/25 before noise
LABEL_NOISE = 0.25                          # part of the label no modality explains
LABEL_GAIN = 0.7                            # tanh(0.7 z) spreads labels over the range
ZERO_BAND = 0.065                           # MOSI-like: |z| < this -> label exactly 0 (~5%)
SIMS_STEP = 0.2                             # SIMS labels lie on {-1, -0.8, ..., 1}
UNIMODAL_GAIN, UNIMODAL_NOISE = 0.9, 0.3    # SIMS T/A/V labels: tanh(0.9 x + 0.3 noise)
SENTIMENT_WORD_SHARE = 0.4                  # share of content words that carry valence
VALENCE_NOISE = 0.25                        # per-word spread of valence around tanh(t)
EMBED_SCALE = 0.5                           # per-dim std of a word's random embedding
SENTIMENT_GAIN = 4.0                        # valence words lean along one shared direction
TEXT_NOISE = 0.1                            # per-token feature noise
MIN_LENGTH_SHARE = 0.3                      # true lengths run from 30% to 100% of padded
SIGNAL_COLUMN_SHARE = 0.1                   # about a tenth of audio/vision columns carry signal
CUE_DC_SHARE = 0.5                          # share of a cue's energy that is a constant shift ...
CUE_PERIODS = (5.0, 12.0)                   # ... the rest a fixed-phase oscillation of this period (frames)
DRIFT_STD = 1.0                             # per-sample baseline + trend on signal columns (no label info)
INF_SAMPLE_SHARE = 0.1                      # audio -inf on a tenth of samples (>= 1 per split)
_CHUNK = 512                                # samples per block when filling big arrays


def seed_sequence(name: str) -> np.random.SeedSequence:
    """A SeedSequence from a name; sha256 keeps it stable across processes and platforms."""
    return np.random.SeedSequence(int.from_bytes(hashlib.sha256(name.encode()).digest()[:16], "little"))


def _signal_columns(rng: np.random.Generator, dim: int, reserved: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Pick the columns that carry a latent (about a tenth, at least two) and their gains."""
    candidates = np.array([c for c in range(dim) if c != reserved])
    count = min(len(candidates), max(2, round(SIGNAL_COLUMN_SHARE * dim)))
    columns = np.sort(rng.choice(candidates, size=count, replace=False))
    gains = rng.uniform(0.6, 1.0, size=count) * rng.choice([-1.0, 1.0], size=count)
    return columns, gains.astype(np.float32)


def world(recipe: str, feature_dims: dict) -> dict:
    """What stays fixed across the splits of one recipe: embeddings and column layouts."""
    rng = np.random.default_rng(seed_sequence(recipe + "/world"))
    d_text, d_audio, d_vision = feature_dims["text"], feature_dims["audio"], feature_dims["vision"]
    embed = rng.standard_normal((VOCAB_SIZE, d_text), dtype=np.float32) * np.float32(EMBED_SCALE)
    # One shared "sentiment direction": valence words lean along it in proportion to their
    # valence, as sentiment is roughly linear in real BERT features. Easy for a small model
    # to find, yet it only ever carries t.
    direction = rng.standard_normal(d_text).astype(np.float32)
    # The norm summed exactly (math.fsum), not by BLAS: float32 sdot's kernel is the CPU's (OpenBLAS picks it at
    # run time), and its last bit moved every text feature, so one recipe gave other bytes on other machines.
    direction /= np.float32(math.sqrt(math.fsum(float(x) * float(x) for x in direction)))
    slots = np.arange(len(LEVELS) * SYNONYMS)
    valence = (LEVELS[slots // SYNONYMS] / VALENCE_STEPS).astype(np.float32)
    embed[FIRST_WORD_ID + slots] += SENTIMENT_GAIN * valence[:, None] * direction[None, :]
    # Audio keeps its last column for -inf (never a signal column), like MMSA's log-energy
    # descriptors that go to -inf on silent frames.
    inf_column = d_audio - 1
    audio_cols, audio_gains = _signal_columns(rng, d_audio, reserved=inf_column)
    vision_cols, vision_gains = _signal_columns(rng, d_vision, reserved=None)
    # The cues' oscillations (recipe v2) come from their own stream, so v1's draws above and
    # below stay where they were.
    wave_rng = np.random.default_rng(seed_sequence(recipe + "/waves"))
    waves = {name: {"periods": wave_rng.uniform(*CUE_PERIODS, size=len(cols)),
                    "phases": wave_rng.uniform(0.0, 2 * np.pi, size=len(cols))}
             for name, cols in (("audio", audio_cols), ("vision", vision_cols))}
    # Per-column offsets and scales: real descriptors are neither centred nor unit-scaled,
    # and MMSA normalises nothing, so neither should the synthetic data be.
    return {
        "embed": embed,
        "audio": {"columns": audio_cols, "gains": audio_gains, "inf_column": inf_column, **waves["audio"],
                  "offset": (rng.standard_normal(d_audio) * 0.5).astype(np.float32),
                  "scale": rng.uniform(0.5, 2.0, d_audio).astype(np.float32)},
        "vision": {"columns": vision_cols, "gains": vision_gains, "inf_column": None, **waves["vision"],
                   "offset": (rng.standard_normal(d_vision) * 0.5).astype(np.float32),
                   "scale": rng.uniform(0.5, 2.0, d_vision).astype(np.float32)},
    }


def true_lengths(rng, n: int, padded: int, lo: int) -> np.ndarray:
    return rng.integers(min(lo, padded), padded + 1, size=n)


def frame_lengths(rng, text_share: np.ndarray, padded: int) -> np.ndarray:
    """Unaligned frame counts: longer utterances have more frames, with some spread."""
    share = np.clip(text_share + rng.normal(0.0, 0.1, size=text_share.shape), MIN_LENGTH_SHARE, 1.0)
    return np.maximum(1, np.rint(share * padded)).astype(np.int64)


def token_ids(rng, t: np.ndarray, lengths: np.ndarray, padded: int) -> np.ndarray:
    """(N, L) ids: [CLS] words [SEP] [PAD]...; a share of the words carry valence ~ tanh(t)."""
    n = len(t)
    positions = np.arange(padded)[None, :]
    content = (positions >= 1) & (positions < lengths[:, None] - 1)
    ids = FIRST_FILLER_ID + rng.integers(0, FILLER_WORDS, size=(n, padded))
    # Pick the sentiment-word positions: the `count` content positions with the smallest
    # random keys (non-content positions get +inf keys and are never picked).
    count = np.maximum(1, np.rint(SENTIMENT_WORD_SHARE * (lengths - 2))).astype(np.int64)
    keys = np.where(content, rng.random((n, padded)), np.inf)
    rank = np.argsort(np.argsort(keys, axis=1, kind="stable"), axis=1, kind="stable")
    sentiment = rank < count[:, None]
    # Each sentiment word's valence scatters around tanh(t) and snaps to the nearest step
    # (never 0: a neutral valence is what filler words are for).
    target = np.tanh(t)[:, None] + VALENCE_NOISE * rng.standard_normal((n, padded))
    step = np.clip(np.rint(target * VALENCE_STEPS), -VALENCE_STEPS, VALENCE_STEPS)
    step = np.where(step == 0, np.where(target >= 0, 1, -1), step).astype(np.int64)
    level_index = np.where(step < 0, step + VALENCE_STEPS, step + VALENCE_STEPS - 1)
    slot = level_index * SYNONYMS + rng.integers(0, SYNONYMS, size=(n, padded))
    ids = np.where(sentiment, FIRST_WORD_ID + slot, ids)
    ids = np.where(content, ids, PAD_ID)
    ids[:, 0] = CLS_ID
    ids[np.arange(n), lengths - 1] = SEP_ID
    return ids


def text_features(rng, embed: np.ndarray, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Embedding lookup + noise on valid tokens, exact zeros on padding."""
    out = np.empty(ids.shape + (embed.shape[1],), dtype=np.float32)
    for start in range(0, len(ids), _CHUNK):  # blocks keep full-size MOSEI's temporaries small
        block = embed[ids[start:start + _CHUNK]]
        block += np.float32(TEXT_NOISE) * rng.standard_normal(block.shape, dtype=np.float32)
        block *= mask[start:start + _CHUNK, :, None]
        out[start:start + _CHUNK] = block
    return out


def _cue_shape(layout: dict, padded: int) -> np.ndarray:
    """(L, C) unit-power time course of each signal column's cue: a constant part with
    CUE_DC_SHARE of the power plus a fixed-phase cosine with the rest.

    Recipe v2. In v1 the cue was the constant alone, and so was all of its energy in the
    lowest temporal frequency; now part of it sits at a period of 5-12 frames, in the middle
    of the spectrum, away from the baseline drift (`_drift`), and a model has to look at the
    time course, not only at the mean over time, to read all of it."""
    t = np.arange(padded)[:, None]
    wave = np.sqrt(2.0) * np.cos(2 * np.pi * t / layout["periods"][None, :] + layout["phases"][None, :])
    return (np.sqrt(CUE_DC_SHARE) + np.sqrt(1.0 - CUE_DC_SHARE) * wave).astype(np.float32)


def _drift(rng, n: int, lengths: np.ndarray, padded: int, columns: int) -> np.ndarray:
    """(N, L, C) label-free low-frequency nuisance on the signal columns: a per-sample baseline
    plus a linear trend over the valid frames (speaker, channel and lighting differences)."""
    level, slope = rng.standard_normal((2, n, 1, columns))
    ramp = np.arange(padded)[None, :] / np.maximum(lengths[:, None] - 1, 1) - 0.5     # -0.5 .. 0.5 over valid frames
    return (DRIFT_STD * np.sqrt(0.5) * (level + np.sqrt(12.0) * ramp[:, :, None] * slope)).astype(np.float32)


def frame_features(rng, layout: dict, latent: np.ndarray, lengths: np.ndarray, padded: int, dim: int,
                    signal: np.ndarray | None = None, frame_noise: np.ndarray | None = None,
                    drift: bool = True) -> np.ndarray:
    """(N, L, D) frames: noise everywhere; on the signal columns latent * gain * cue shape plus
    `drift` (or the stress recipe's (N, L, C) `signal` instead), plus `frame_noise` (N,) stds of
    white noise when given (stress recipes); zero padding."""
    n = len(latent)
    out = np.empty((n, padded, dim), dtype=np.float32)
    valid = np.arange(padded)[None, :] < lengths[:, None]
    columns, gains = layout["columns"], layout["gains"]
    shape = _cue_shape(layout, padded) * gains if signal is None else None          # (L, C)
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        block = rng.standard_normal((stop - start, padded, dim), dtype=np.float32)
        if signal is None and drift:
            block[:, :, columns] += (latent[start:stop, None, None].astype(np.float32) * shape
                                     + _drift(rng, stop - start, lengths[start:stop], padded, len(columns)))
        elif signal is None:
            block[:, :, columns] += latent[start:stop, None, None].astype(np.float32) * shape
        else:
            block[:, :, columns] += signal[start:stop]
        if frame_noise is not None:
            block[:, :, columns] += (frame_noise[start:stop, None, None]
                                     * rng.standard_normal((stop - start, padded, len(columns)), dtype=np.float32))
        block *= layout["scale"]
        block += layout["offset"]
        block *= valid[start:stop, :, None]
        out[start:stop] = block
    if layout["inf_column"] is not None:
        # A few samples get -inf on one to three of their valid frames, in the noise column.
        hit = rng.choice(n, size=max(1, round(INF_SAMPLE_SHARE * n)), replace=False)
        for i in np.sort(hit):
            frames = rng.choice(lengths[i], size=min(int(lengths[i]), int(rng.integers(1, 4))), replace=False)
            out[i, frames, layout["inf_column"]] = -np.inf
    return out


def _snap(x: np.ndarray, step: float) -> np.ndarray:
    """Round to multiples of `step`; `+ 0.0` turns -0.0 into 0.0."""
    return np.rint(x / step) * step + 0.0


def labels_of(rng, score: np.ndarray, unimodal: dict, facts: dict) -> dict:
    """Labels from the score z (before label noise) and, for SIMS, the unimodal latents T/A/V."""
    n = len(score)
    z = score + LABEL_NOISE * rng.standard_normal(n)
    lo, hi = facts["label_range"]
    centre, half = (hi + lo) / 2.0, (hi - lo) / 2.0
    labels = {}
    if facts.get("unimodal_labels"):
        # SIMS annotators score each modality alone; the averages fall on 0.2 steps.
        labels["regression_labels"] = _snap(centre + half * np.tanh(LABEL_GAIN * z), SIMS_STEP)
        for key, latent in unimodal.items():
            noisy = UNIMODAL_GAIN * latent + UNIMODAL_NOISE * rng.standard_normal(n)
            labels[f"regression_labels_{key}"] = _snap(centre + half * np.tanh(noisy), SIMS_STEP)
    else:
        # MOSI/MOSEI labels are annotator averages: continuous, with some exact zeros, which
        # is what makes the Has0 and Non0 accuracies differ.
        y = centre + half * np.tanh(LABEL_GAIN * z)
        labels["regression_labels"] = np.where(np.abs(z) < ZERO_BAND, centre, y)
    return {key: np.clip(value, lo, hi).astype(np.float32) for key, value in labels.items()}
