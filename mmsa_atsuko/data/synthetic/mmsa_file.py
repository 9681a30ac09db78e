"""One synthetic dataset laid out as MMSA's feature pickle, and that pickle written with its stamp.

MMSA's layout (thuiar/MMSA:README.md): `{'train','valid','test'}`, each with `raw_text, text,
text_bert, audio, vision, audio_lengths, vision_lengths, id, annotations, classification_labels,
regression_labels` (+ `regression_labels_T/_A/_V` for SIMS and SIMSv2), in that key order, with
'video$_$clip' ids whose clips of one video stay in one split. What goes into the arrays is
planted_signal.py's; this module only draws each split's streams, lays the arrays out as MMSA
stores them and writes the file, so a change to the layout never touches the signal.

The file carries the generator's stamp (`stamp.py`: the recipe and a hash of the content),
which is what makes the loader name the data `synthetic:<recipe>`.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mmsa_atsuko.atomic import write_pickle
from ..stamp import STAMP_KEY, content_sha256, make_stamp, synthetic_data_id
from ..synthetic_stress import CONDITION_KEY, STANDARD, check_recipe, condition_block, plan, stress_world
from ..tiny_bert import synthetic_vocab
from . import planted_signal
from .planted_signal import MIN_LENGTH_SHARE, W_A, W_T, W_V, seed_sequence
from .recipes import SPLITS, check_args, check_mintrec_request, facts_of, synthetic_recipe, synthetic_shapes

MAX_CLIPS_PER_VIDEO = 6

# MMSA's key order (README), so a dump of a synthetic file reads like a real one.
_KEY_ORDER = ("raw_text", "text", "text_bert", "audio", "vision", "audio_lengths", "vision_lengths", "id",
              "annotations", "classification_labels", "regression_labels",
              "regression_labels_T", "regression_labels_A", "regression_labels_V")


def _clip_ids(rng, n: int, first_video: int, recipe: str) -> tuple[list[str], int]:
    """MMSA-style 'video$_$clip' ids; clips of one video stay in one split, as in the real data."""
    ids, video = [], first_video
    while len(ids) < n:
        clips = min(int(rng.integers(1, MAX_CLIPS_PER_VIDEO + 1)), n - len(ids))
        ids += [f"{synthetic_data_id(recipe)}$_$vid{video:05d}_{clip}" for clip in range(1, clips + 1)]
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
    text_lengths = planted_signal.true_lengths(r_text, n, L, max(3, math.ceil(MIN_LENGTH_SHARE * L)))
    if aligned:  # aligned files: one frame per text token, the text lengths for all
        audio_lengths = vision_lengths = text_lengths
    else:
        share = text_lengths / L
        audio_lengths = planted_signal.frame_lengths(r_audio, share, seq["audio"])
        vision_lengths = planted_signal.frame_lengths(r_vision, share, seq["vision"])
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
        frames[m] = planted_signal.frame_features(rng, layout, latent, lengths, seq[m], dims[m], signal=signal,
                                                  frame_noise=stress.frame_noise.get(m) if stress else None,
                                                  drift=stress.drift if stress else True)
    ids = planted_signal.token_ids(r_text, t, text_lengths, L)
    mask = (np.arange(L)[None, :] < text_lengths[:, None]).astype(np.float32)
    text_bert = np.stack([ids.astype(np.float32), mask, np.zeros_like(mask)], axis=1)
    text = planted_signal.text_features(r_text, world["embed"], ids, mask)

    audio, vision = frames["audio"], frames["vision"]

    labels = planted_signal.labels_of(r_label, score, unimodal, facts)
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


def make_synthetic(dataset: str, *, size: str = "small", seed: int = 0, aligned: bool = False,
                   recipe: str = STANDARD) -> dict:
    """The synthetic dataset as the dict MMSA pickles: `{'train': {...}, 'valid': ..., 'test': ...}`,
    plus, for a stress recipe, its per-sample condition under CONDITION_KEY (synthetic_stress.py)."""
    dataset, size, seed, aligned = check_args(dataset, size, seed, aligned)
    kind = check_recipe(recipe)
    name = synthetic_recipe(dataset, size, seed, aligned, kind)
    facts = facts_of(dataset)
    shapes = synthetic_shapes(dataset, size, aligned, kind)
    world = planted_signal.world(name, shapes["feature_dims"])
    if kind != STANDARD:
        world["stress"] = stress_world(kind, np.random.default_rng(seed_sequence(name + "/stress")), world)
    ids_rng = np.random.default_rng(seed_sequence(name + "/ids"))
    data, conditions, video = {}, {}, 1
    for split_name in SPLITS:
        n = shapes["split_sizes"][split_name]
        split, conditions[split_name] = _split(seed_sequence(f"{name}/{split_name}"), world, facts, shapes, n,
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
        from ..synthetic_mintrec import write_synthetic_mintrec     # lazy: for mintrec alone
        check_mintrec_request(aligned, recipe)
        return write_synthetic_mintrec(out_path, size=size, seed=seed)
    data = make_synthetic(dataset, size=size, seed=seed, aligned=aligned, recipe=recipe)
    # The stamp goes first, so `cached.is_stamped` finds it in the file's first bytes. Its hash covers
    # the condition of a stress recipe too (the loader hashes every top-level key but the stamp).
    stamp = make_stamp(synthetic_recipe(dataset, size, seed, aligned, recipe), content_sha256(data))
    out_path = Path(out_path)
    write_pickle({STAMP_KEY: stamp, **data}, out_path)
    return out_path
