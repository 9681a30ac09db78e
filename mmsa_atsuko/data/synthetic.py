"""Synthetic datasets in the exact MMSA pickle format, with a planted signal, and a tiny BERT.

The real feature files and BERT weights cannot be fetched on the machines this project is
built and tested on. This module writes stand-ins that every loader, model and CLI path can
run on:

- `write_synthetic` writes one pickle laid out exactly like MMSA's (thuiar/MMSA:README.md):
  `{'train','valid','test'}`, each with `raw_text, text, text_bert, audio, vision,
  audio_lengths, vision_lengths, id, annotations, classification_labels,
  regression_labels` (+ `regression_labels_T/_A/_V` for SIMS and SIMSv2). `size='full'`
  uses the real split sizes and padded shapes from configs/datasets.yaml; `size='small'`
  is a few hundred short samples that any model trains on in seconds on a CPU.
- `write_tiny_bert` (tiny_bert.py, shared with synthetic MIntRec) writes a one-layer, randomly
  initialised BERT (hidden size 768, like bert-base, so it drops into the text pipeline) whose
  vocab.txt matches the ids stored in `text_bert` and the words in `raw_text`.
- `ensure_synthetic` caches both under one folder per recipe.

The planted signal. Every sample has three independent latent scores t, a, v ~ N(0, 1).
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

Everything is a pure function of (dataset, size, seed, aligned), named by its recipe
(`mosi-small-unaligned-seed0-v2`); the same call writes the same bytes. The file carries the
generator's stamp (`stamp.py`: the recipe and a hash of the content), which is what makes the
loader name the data `synthetic:<recipe>`; sample ids start with `synthetic:<recipe>` too, so
predictions say where they come from, but they prove nothing.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from mmsa_atsuko.atomic import write_pickle
from mmsa_atsuko.config import datasets_table, real_layout
from mmsa_atsuko.errors import UsageError
from .stamp import STAMP_KEY, content_sha256, make_stamp
from .synthetic_stress import (CONDITION_KEY, STANDARD, STRESS_SMALL_SPLIT_SIZES, check_recipe, condition_block,
                               plan, stress_name, stress_world)
from .tiny_bert import (CLS_ID, FILLER_WORDS, FIRST_FILLER_ID, FIRST_WORD_ID, LEVELS, MARKER_JSON, PAD_ID, SEP_ID,
                        SYNONYMS, VALENCE_STEPS, VOCAB_SIZE, synthetic_vocab, write_tiny_bert)

SYNTHETIC_DATASETS = ("mosi", "mosei", "sims", "simsv2")
SIZES = ("small", "full")
SPLITS = ("train", "valid", "test")

# Bump when the generator changes what it writes: the version is part of every recipe
# name, so caches and run records made by an older generator never pass for new ones.
RECIPE_VERSION = "v2"         # v2: audio/vision cues partly oscillate, plus baseline drift

# `size='small'`: enough samples for a split to have a few batches, sequences short enough
# that even MulT-style cross-modal attention trains in seconds. Feature dims stay real.
SMALL_SPLIT_SIZES = {"train": 96, "valid": 32, "test": 32}
SMALL_SEQ_LENS = {"text": 16, "audio": 24, "vision": 20}

# ---------------------------------------------------------------------------------------
# The planted signal (see the module docstring). Changing any of these changes the data,
# so it needs a new RECIPE_VERSION.
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
MAX_CLIPS_PER_VIDEO = 6
_CHUNK = 512                                # samples per block when filling big arrays


# ------------------------------------------------------------------------- dataset facts

def _facts(dataset: str) -> dict:
    if dataset not in SYNTHETIC_DATASETS:
        raise UsageError(f"no synthetic version of dataset {dataset!r}; choose one of {', '.join(SYNTHETIC_DATASETS)}")
    return datasets_table()[dataset]


def _check_args(dataset, size, seed, aligned) -> tuple[str, str, int, bool]:
    """Validate and normalise the four arguments that name a recipe."""
    dataset = str(dataset).lower()
    facts = _facts(dataset)
    if size not in SIZES:
        raise UsageError(f"unknown synthetic size {size!r}; choose one of {', '.join(SIZES)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"synthetic seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    aligned = bool(aligned)
    setting = "aligned" if aligned else "unaligned"
    if setting not in facts["files"]:
        raise UsageError(f"{dataset} has no {setting} setting (it has: {', '.join(facts['files'])})")
    return dataset, size, seed, aligned


def synthetic_recipe(dataset: str, size: str = "small", seed: int = 0, aligned: bool = False,
                     recipe: str = STANDARD) -> str:
    """The recipe name, e.g. 'mosi-small-unaligned-seed0-v2', or for a stress recipe
    'corrupt-s2-mosi-small-unaligned-seed0-v2' (synthetic_stress.py); sample ids carry it."""
    dataset, size, seed, aligned = _check_args(dataset, size, seed, aligned)
    standard = f"{dataset}-{size}-{'aligned' if aligned else 'unaligned'}-seed{seed}-{RECIPE_VERSION}"
    return stress_name(check_recipe(recipe), standard)


def synthetic_shapes(dataset: str, size: str = "small", aligned: bool = False, recipe: str = STANDARD) -> dict:
    """Split sizes, padded sequence lengths and feature dims a synthetic file will have.

    Returns `{'split_sizes': {split: N}, 'seq_lens': {modality: L}, 'feature_dims':
    {modality: D}}`. Full size copies datasets.yaml (`real_sizes`, `real_shapes`); small
    keeps the real feature dims with short sequences. The writer takes its shapes from here.
    """
    dataset, size, _, aligned = _check_args(dataset, size, 0, aligned)
    real = real_layout(dataset, "aligned" if aligned else "unaligned")
    if real is None:
        raise UsageError(f"configs/datasets.yaml gives {dataset} no usable real_sizes and real_shapes: the "
                         f"synthetic generator copies them; restore them in its block")
    if size == "full":
        return real
    split_sizes = dict(SMALL_SPLIT_SIZES if check_recipe(recipe) == STANDARD else STRESS_SMALL_SPLIT_SIZES)
    seq_lens = dict(SMALL_SEQ_LENS)
    if aligned:  # aligned files share the text length on every modality
        seq_lens = {m: SMALL_SEQ_LENS["text"] for m in seq_lens}
    return {"split_sizes": split_sizes, "seq_lens": seq_lens, "feature_dims": real["feature_dims"]}


# ------------------------------------------------------------------------------ generator

def _seed_sequence(name: str) -> np.random.SeedSequence:
    """A SeedSequence from a name; sha256 keeps it stable across processes and platforms."""
    return np.random.SeedSequence(int.from_bytes(hashlib.sha256(name.encode()).digest()[:16], "little"))


def _signal_columns(rng: np.random.Generator, dim: int, reserved: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Pick the columns that carry a latent (about a tenth, at least two) and their gains."""
    candidates = np.array([c for c in range(dim) if c != reserved])
    count = min(len(candidates), max(2, round(SIGNAL_COLUMN_SHARE * dim)))
    columns = np.sort(rng.choice(candidates, size=count, replace=False))
    gains = rng.uniform(0.6, 1.0, size=count) * rng.choice([-1.0, 1.0], size=count)
    return columns, gains.astype(np.float32)


def _world(recipe: str, feature_dims: dict) -> dict:
    """What stays fixed across the splits of one recipe: embeddings and column layouts."""
    rng = np.random.default_rng(_seed_sequence(recipe + "/world"))
    d_text, d_audio, d_vision = feature_dims["text"], feature_dims["audio"], feature_dims["vision"]
    embed = rng.standard_normal((VOCAB_SIZE, d_text), dtype=np.float32) * np.float32(EMBED_SCALE)
    # One shared "sentiment direction": valence words lean along it in proportion to their
    # valence, as sentiment is roughly linear in real BERT features. Easy for a small model
    # to find, yet it only ever carries t.
    direction = rng.standard_normal(d_text).astype(np.float32)
    direction /= np.linalg.norm(direction)
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
    wave_rng = np.random.default_rng(_seed_sequence(recipe + "/waves"))
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


def _true_lengths(rng, n: int, padded: int, lo: int) -> np.ndarray:
    return rng.integers(min(lo, padded), padded + 1, size=n)


def _frame_lengths(rng, text_share: np.ndarray, padded: int) -> np.ndarray:
    """Unaligned frame counts: longer utterances have more frames, with some spread."""
    share = np.clip(text_share + rng.normal(0.0, 0.1, size=text_share.shape), MIN_LENGTH_SHARE, 1.0)
    return np.maximum(1, np.rint(share * padded)).astype(np.int64)


def _token_ids(rng, t: np.ndarray, lengths: np.ndarray, padded: int) -> np.ndarray:
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


def _text_features(rng, embed: np.ndarray, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
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


def _frame_features(rng, layout: dict, latent: np.ndarray, lengths: np.ndarray, padded: int, dim: int,
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


def _labels(rng, score: np.ndarray, unimodal: dict, facts: dict) -> dict:
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


def _clip_ids(rng, n: int, first_video: int, recipe: str) -> tuple[list[str], int]:
    """MMSA-style 'video$_$clip' ids; clips of one video stay in one split, as in the real data."""
    ids, video = [], first_video
    while len(ids) < n:
        clips = min(int(rng.integers(1, MAX_CLIPS_PER_VIDEO + 1)), n - len(ids))
        ids += [f"synthetic:{recipe}$_$vid{video:05d}_{clip}" for clip in range(1, clips + 1)]
        video += 1
    return ids, video


def _split(rng_seed: np.random.SeedSequence, world: dict, facts: dict, shapes: dict, n: int,
           aligned: bool, language: str, recipe: str = STANDARD) -> tuple[dict, dict | None]:
    """One split as MMSA stores it, and its stress condition (None for the standard recipe)."""
    # Separate streams per part, so that e.g. a change to the audio never moves the text.
    # (spawn(6)'s first five children are spawn(5)'s: the standard recipe's streams stay.)
    r_latent, r_text, r_audio, r_vision, r_label, r_stress = (np.random.default_rng(s) for s in rng_seed.spawn(6))
    seq, dims = shapes["seq_lens"], shapes["feature_dims"]
    if recipe == STANDARD:
        t, a, v = r_latent.standard_normal((3, n))

    L = seq["text"]
    text_lengths = _true_lengths(r_text, n, L, max(3, math.ceil(MIN_LENGTH_SHARE * L)))
    if aligned:  # aligned files: one frame per text token, the text lengths for all
        audio_lengths = vision_lengths = text_lengths
    else:
        share = text_lengths / L
        audio_lengths = _frame_lengths(r_audio, share, seq["audio"])
        vision_lengths = _frame_lengths(r_vision, share, seq["vision"])
    if recipe == STANDARD:
        stress = None
        score, unimodal = W_T * t + W_A * a + W_V * v, {"T": t, "A": a, "V": v}
    else:
        stress = plan(recipe, r_stress, n, world, {"audio": audio_lengths, "vision": vision_lengths},
                      {"audio": seq["audio"], "vision": seq["vision"]})
        t, a, v = (stress.feature_latents[m] for m in ("text", "audio", "vision"))
        score, unimodal = stress.score, stress.unimodal
    frames = {}
    for m, rng, latent, lengths in (("audio", r_audio, a, audio_lengths), ("vision", r_vision, v, vision_lengths)):
        layout, signal = stress.signal.get(m, (world[m], None)) if stress else (world[m], None)
        frames[m] = _frame_features(rng, layout, latent, lengths, seq[m], dims[m], signal=signal,
                                    frame_noise=stress.frame_noise.get(m) if stress else None,
                                    drift=stress.drift if stress else True)
    ids = _token_ids(r_text, t, text_lengths, L)
    mask = (np.arange(L)[None, :] < text_lengths[:, None]).astype(np.float32)
    text_bert = np.stack([ids.astype(np.float32), mask, np.zeros_like(mask)], axis=1)
    text = _text_features(r_text, world["embed"], ids, mask)

    audio, vision = frames["audio"], frames["vision"]

    labels = _labels(r_label, score, unimodal, facts)
    y = labels["regression_labels"]
    centre = sum(facts["label_range"]) / 2.0
    classes = np.where(y < centre, 0, np.where(y > centre, 2, 1))  # 0 Neg, 1 Neu, 2 Pos (MMSA)
    names = ("Negative", "Neutral", "Positive")

    vocab = synthetic_vocab(language)
    joiner = "" if language == "cn" else " "
    raw_text = [joiner.join(vocab[i] for i in row[1:length - 1]) for row, length in zip(ids, text_lengths)]

    return ({
        "raw_text": raw_text,
        "text": text,
        "text_bert": text_bert,
        "audio": audio,
        "vision": vision,
        # Plain int lists, as MMSA's own data/getLengths.py writes them.
        "audio_lengths": [int(x) for x in audio_lengths],
        "vision_lengths": [int(x) for x in vision_lengths],
        "annotations": [names[c] for c in classes],
        "classification_labels": classes.astype(np.float32),
        **labels,
    }, stress.condition if stress else None)


# MMSA's key order (README), so a dump of a synthetic file reads like a real one.
_KEY_ORDER = ("raw_text", "text", "text_bert", "audio", "vision", "audio_lengths", "vision_lengths", "id",
              "annotations", "classification_labels", "regression_labels",
              "regression_labels_T", "regression_labels_A", "regression_labels_V")


def make_synthetic(dataset: str, *, size: str = "small", seed: int = 0, aligned: bool = False,
                   recipe: str = STANDARD) -> dict:
    """The synthetic dataset as the dict MMSA pickles: `{'train': {...}, 'valid': ..., 'test': ...}`,
    plus, for a stress recipe, its per-sample condition under CONDITION_KEY (synthetic_stress.py)."""
    dataset, size, seed, aligned = _check_args(dataset, size, seed, aligned)
    kind = check_recipe(recipe)
    name = synthetic_recipe(dataset, size, seed, aligned, kind)
    facts = _facts(dataset)
    shapes = synthetic_shapes(dataset, size, aligned, kind)
    world = _world(name, shapes["feature_dims"])
    if kind != STANDARD:
        world["stress"] = stress_world(kind, np.random.default_rng(_seed_sequence(name + "/stress")), world)
    ids_rng = np.random.default_rng(_seed_sequence(name + "/ids"))
    data, conditions, video = {}, {}, 1
    for split_name in SPLITS:
        n = shapes["split_sizes"][split_name]
        split, conditions[split_name] = _split(_seed_sequence(f"{name}/{split_name}"), world, facts, shapes, n,
                                               aligned, facts["language"], kind)
        split["id"], video = _clip_ids(ids_rng, n, video, name)
        data[split_name] = {k: split[k] for k in _KEY_ORDER if k in split}
    if kind != STANDARD:
        data[CONDITION_KEY] = condition_block(name, kind, conditions)
    return data


# ------------------------------------------------------------------------------- writing

def write_synthetic(dataset: str, out_path, *, size: str = "small", seed: int = 0, aligned: bool = False,
                    recipe: str = STANDARD) -> Path:
    """Write one synthetic feature pickle in MMSA's format to `out_path` (atomically).
    For mintrec, `out_path` is the MIntRec folder (synthetic_mintrec)."""
    if str(dataset).lower() == "mintrec":
        from .synthetic_mintrec import write_synthetic_mintrec
        _no_aligned_mintrec(aligned)
        _standard_only_mintrec(recipe)
        return write_synthetic_mintrec(out_path, size=size, seed=seed)
    data = make_synthetic(dataset, size=size, seed=seed, aligned=aligned, recipe=recipe)
    # The stamp goes first, so `_is_stamped` finds it in the file's first bytes. Its hash covers
    # the condition of a stress recipe too (the loader hashes every top-level key but the stamp).
    stamp = make_stamp(synthetic_recipe(dataset, size, seed, aligned, recipe), content_sha256(data))
    out_path = Path(out_path)
    write_pickle({STAMP_KEY: stamp, **data}, out_path)
    return out_path


def _is_stamped(path: Path) -> bool:
    """Whether a cached pickle was written with a stamp (older generators wrote none): the
    stamp's key sits in the first bytes. The loader still checks the stamp itself."""
    with open(path, "rb") as f:
        return STAMP_KEY.encode() in f.read(64)


def _standard_only_mintrec(recipe) -> None:
    if check_recipe(recipe) != STANDARD:
        raise UsageError(f"the {recipe} synthetic recipe exists for {', '.join(SYNTHETIC_DATASETS)} only; "
                         f"synthetic mintrec has the standard recipe: drop --synthetic-recipe")


def _no_aligned_mintrec(aligned: bool) -> None:
    if aligned:
        raise UsageError("mintrec has no aligned setting (MIntRec ships unaligned features only): drop --aligned")


def check_synthetic_request(dataset: str, size: str = "small", aligned: bool = False, recipe: str = STANDARD) -> None:
    """The UsageError `ensure_synthetic` would raise for this request, without writing anything: `run` checks
    every dataset of a request before it generates or loads the first."""
    if str(dataset).lower() == "mintrec":
        _no_aligned_mintrec(aligned)
        _standard_only_mintrec(recipe)
    else:
        synthetic_recipe(dataset, size, 0, aligned, recipe)


def ensure_synthetic(dataset: str, cache_dir, *, size: str = "small", seed: int = 0,
                     aligned: bool = False, recipe: str = STANDARD) -> tuple[Path, Path]:
    """(feature pickle, tiny-BERT folder) for a recipe under `cache_dir`, written only if missing.

    Layout: `cache_dir/<recipe>/<MMSA file name, e.g. MOSI/Processed/unaligned_50.pkl>` and
    `cache_dir/<recipe>/bert-synthetic-<en|cn>`. Both appear by atomic rename, so a reader
    never sees half a file and two processes racing to create them both end up with a
    complete copy. For mintrec: (MIntRec folder, its tiny BERT), see synthetic_mintrec.
    """
    check_synthetic_request(dataset, size, aligned, recipe)
    if str(dataset).lower() == "mintrec":
        from .synthetic_mintrec import ensure_synthetic_mintrec
        return ensure_synthetic_mintrec(cache_dir, size=size, seed=seed)
    dataset, size, seed, aligned = _check_args(dataset, size, seed, aligned)
    facts = _facts(dataset)
    root = Path(cache_dir) / synthetic_recipe(dataset, size, seed, aligned, recipe)
    pkl = root / facts["files"]["aligned" if aligned else "unaligned"]
    bert = root / f"bert-synthetic-{facts['language']}"
    if not pkl.is_file() or not _is_stamped(pkl):
        write_synthetic(dataset, pkl, size=size, seed=seed, aligned=aligned, recipe=recipe)
    if not (bert / MARKER_JSON).is_file():
        # A folder without the marker is a broken leftover (the marker is written inside the
        # temp folder before the rename), so replace it; a missing folder may be appearing
        # from another process right now, so then keep whichever copy lands first.
        write_tiny_bert(bert, seed=seed, language=facts["language"], replace=bert.exists())
    return pkl, bert
