"""Synthetic MIntRec in thuiar/MIntRec's folder layout, with a planted signal and a tiny BERT.

`write_synthetic_mintrec(folder)` writes what `mintrec.load_mintrec` reads:

    train.tsv, dev.tsv, test.tsv     header `season episode clip text label`, intent names as labels
    video_data/video_feats.pkl       key -> list of (1, 256) float32 arrays (MIntRec's form)
    audio_data/audio_feats.pkl       key -> (T, 768) float32 array
    bert-synthetic-en/               a tiny random BERT whose vocab.txt covers every word used
    synthetic.json                   the stamp (recipe + digest of the five data files) and padded
                                     lengths; written last (= complete)

Sizes. `full`: the real split sizes (1334/445/445) and per-intent counts of every split
(configs/datasets.yaml), MIntRec's padded lengths (text/video/audio) 30/230/480, true lengths
up to 26/225/477 as in the real features. `small`: 160/60/60 samples with the same class
balance (every intent at least once per split) and padded lengths 16/20/24, so any model
trains on it in seconds on a CPU.

The planted signal. Each sample has an intent. Each modality independently "shows" an
intent: the true one with probability RELIABILITY (text 0.7, audio 0.6, vision 0.6), else
one of the other 19 at random. So each modality alone is right at most that often, and a
model that fuses them does better (two modalities seldom show the same wrong intent).
- Text shows its intent through cue words: each intent owns CUES_PER_INTENT words of the tiny
  vocabulary, and about CUE_SHARE of an utterance's words are cues of the shown intent; the
  rest are neutral filler words.
- Audio and vision show theirs as a fixed per-intent prototype added to about a tenth of the
  feature columns of every frame, under unit Gaussian noise.

Everything is a pure function of (size, seed), named by its recipe
(`mintrec-small-unaligned-seed0-v1`). The stamp in synthetic.json is what makes the loader
name the data `synthetic:<recipe>` (an edited file breaks it: the data is then named by its
sha256); every season also reads `synthetic:<recipe>:Snn`, so every sample key, and every
prediction written with it, says where it comes from.
"""
from __future__ import annotations

import csv
import hashlib
import json
import pickle
from pathlib import Path

import numpy as np

from ..cache import sha256_of, tiny_bert_folder_name
from ..errors import UsageError
from . import tiny_bert
from .mintrec import FEATURE_FILES, SYNTHETIC_MARKER, TSV_FILES, TSV_HEADER, folder_digest, label_names, mintrec_facts
from .stamp import make_stamp, synthetic_data_id
from .synthetic_stress import SIZES

RECIPE_VERSION = "v1"        # bump when what is written changes
SPLITS = ("train", "valid", "test")
BERT_DIR = tiny_bert_folder_name("en")

SMALL_SPLIT_SIZES = {"train": 160, "valid": 60, "test": 60}
SMALL_MAX_SEQ_LENS = {"text": 16, "audio": 24, "vision": 20}
# True lengths: words per utterance (tokens = words + [CLS] + [SEP]) and frames. Full size
# stays within MIntRec's true maxima (26 tokens, 225 video and 477 audio frames); small
# stays within its padded lengths, save a few utterances that get cut.
LENGTH_RANGES = {
    "full": {"words": (2, 24), "vision": (15, 225), "audio": (40, 477)},
    "small": {"words": (2, 16), "vision": (3, 20), "audio": (4, 24)},
}

RELIABILITY = {"text": 0.7, "audio": 0.6, "vision": 0.6}
CUES_PER_INTENT = 4
CUE_SHARE = 0.4              # share of an utterance's words that are cues of its shown intent
PROTOTYPE_GAIN = 0.6         # size of an intent prototype on its signal columns (noise std 1)
SIGNAL_COLUMN_SHARE = 0.1


def _check(size, seed) -> tuple[str, int]:
    if size not in SIZES:
        raise UsageError(f"unknown synthetic size {size!r}; choose one of {', '.join(SIZES)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"synthetic seed must be a non-negative integer, got {seed!r}")
    return size, int(seed)


def mintrec_recipe(size: str = "small", seed: int = 0) -> str:
    size, seed = _check(size, seed)
    return f"mintrec-{size}-unaligned-seed{seed}-{RECIPE_VERSION}"


def _rng(name: str) -> np.random.Generator:
    """A generator seeded from a name (sha256: stable across processes and platforms)."""
    return np.random.default_rng(int.from_bytes(hashlib.sha256(name.encode()).digest()[:16], "little"))


def _apportion(counts, total: int) -> np.ndarray:
    """Integer class counts summing to `total`, proportional to `counts`, each at least 1
    (largest remainder)."""
    counts = np.asarray(counts, dtype=np.float64)
    quota = counts / counts.sum() * total
    out = np.maximum(1, np.floor(quota)).astype(np.int64)
    while out.sum() < total:
        out[np.argmax(quota - out)] += 1
    while out.sum() > total:
        out[np.argmax(np.where(out > 1, out - quota, -np.inf))] -= 1
    return out


def class_counts(size: str = "small") -> dict:
    """{split: (20,) per-intent counts, MIntRec label order} of a synthetic dataset."""
    size, _ = _check(size, 0)
    real = {s: np.array(c, dtype=np.int64) for s, c in mintrec_facts()["real_class_counts"].items()}
    if size == "full":
        return real
    return {s: _apportion(real[s], SMALL_SPLIT_SIZES[s]) for s in SPLITS}


def max_seq_lens(size: str = "small") -> dict:
    size, _ = _check(size, 0)
    return dict(mintrec_facts()["max_seq_lens"]) if size == "full" else dict(SMALL_MAX_SEQ_LENS)


# ------------------------------------------------------------------------------ words

def _filler_words() -> list[str]:
    """The tiny BERT's neutral filler words (w000, w001, ...), in vocabulary order."""
    return tiny_bert.synthetic_vocab("en")[tiny_bert.FIRST_FILLER_ID:]


def cue_words(intent: int) -> list[str]:
    """The words that show `intent` in text: the first CUES_PER_INTENT * 20 filler words, in
    groups of CUES_PER_INTENT."""
    first = intent * CUES_PER_INTENT
    return _filler_words()[first:first + CUES_PER_INTENT]


def _neutral_words() -> list[str]:
    return _filler_words()[len(label_names()) * CUES_PER_INTENT:]


def _shown(rng, intents: np.ndarray, reliability: float, num_classes: int) -> np.ndarray:
    """The intent a modality shows: the true one with probability `reliability`, else another."""
    other = (intents + rng.integers(1, num_classes, size=len(intents))) % num_classes
    return np.where(rng.random(len(intents)) < reliability, intents, other)


def _prototypes(rng, num_classes: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    columns = np.sort(rng.choice(dim, size=max(2, round(SIGNAL_COLUMN_SHARE * dim)), replace=False))
    signs = rng.choice([-1.0, 1.0], size=(num_classes, len(columns)))
    return columns, (PROTOTYPE_GAIN * signs).astype(np.float32)


# ------------------------------------------------------------------------------ generator

def make_synthetic_mintrec(size: str = "small", seed: int = 0) -> dict:
    """The dataset in memory: {'rows': {split: [(season, episode, clip, text, label)]},
    'video': {key: [(1, 256) arrays]}, 'audio': {key: (T, 768) array}}."""
    size, seed = _check(size, seed)
    recipe = mintrec_recipe(size, seed)
    names = label_names()
    num_classes = len(names)
    dims = {m: int(mintrec_facts()["real_shapes"]["unaligned"][m][1]) for m in ("audio", "vision")}
    world = _rng(recipe + "/world")
    prototypes = {m: _prototypes(world, num_classes, dims[m]) for m in ("audio", "vision")}
    cues, neutral = [cue_words(c) for c in range(num_classes)], _neutral_words()
    ranges = LENGTH_RANGES[size]

    rows, video, audio, clip = {}, {}, {}, 0
    for split, counts in class_counts(size).items():
        rng = _rng(f"{recipe}/{split}")
        intents = rng.permutation(np.repeat(np.arange(num_classes), counts))
        shown = {m: _shown(rng, intents, RELIABILITY[m], num_classes) for m in RELIABILITY}
        rows[split] = []
        for i, intent in enumerate(intents):
            clip += 1
            season, episode = f"{synthetic_data_id(recipe)}:S{1 + clip // 500:02d}", f"E{1 + (clip // 25) % 20:02d}"
            key = f"{season}_{episode}_{clip}"

            n_words = int(rng.integers(ranges["words"][0], ranges["words"][1] + 1))
            own = cues[shown["text"][i]]
            words = [own[rng.integers(len(own))] if rng.random() < CUE_SHARE else neutral[rng.integers(len(neutral))]
                     for _ in range(n_words)]
            rows[split].append((season, episode, str(clip), " ".join(words), names[intent]))

            for modality, store in (("audio", audio), ("vision", video)):
                lo, hi = ranges[modality]
                frames = rng.standard_normal((int(rng.integers(lo, hi + 1)), dims[modality]), dtype=np.float32)
                columns, table = prototypes[modality]
                frames[:, columns] += table[shown[modality][i]]
                # MIntRec's video pickle holds a list of (1, 256) keyframe arrays per clip.
                store[key] = [frame[None, :].copy() for frame in frames] if modality == "vision" else frames
    return {"rows": rows, "video": video, "audio": audio}


def _write_folder(folder: Path, size: str, seed: int) -> None:
    data = make_synthetic_mintrec(size, seed)
    for split, rows in data["rows"].items():
        with open(folder / TSV_FILES[split], "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, lineterminator="\n")
            writer.writerow(TSV_HEADER)
            writer.writerows(rows)
    for modality, key in (("vision", "video"), ("audio", "audio")):
        path = folder / FEATURE_FILES[modality]
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            pickle.dump(data[key], f, protocol=4)
    tiny_bert.write_tiny_bert(folder / BERT_DIR, seed=seed, language="en")
    (folder / "SYNTHETIC.txt").write_text(
        f"SYNTHETIC MIntRec ({mintrec_recipe(size, seed)}): generated data in thuiar/MIntRec's layout,\n"
        "with a planted signal, for tests and synthetic runs only. Results on it say nothing about\n"
        "real data.\n", encoding="utf-8")
    # The folder is renamed into place afterwards: hashes of these paths are not worth caching.
    digests = {name: sha256_of(folder / name, remember_it=False)
               for name in (*TSV_FILES.values(), *FEATURE_FILES.values())}
    (folder / SYNTHETIC_MARKER).write_text(json.dumps({
        "synthetic": True, "recipe": mintrec_recipe(size, seed), "size": size, "seed": seed,
        "stamp": make_stamp(mintrec_recipe(size, seed), folder_digest(digests)),
        "split_sizes": {s: len(r) for s, r in data["rows"].items()},
        "max_seq_lens": max_seq_lens(size), "bert": BERT_DIR,
        "reliability": RELIABILITY, "cues_per_intent": CUES_PER_INTENT, "cue_share": CUE_SHARE,
    }, indent=2) + "\n", encoding="utf-8")


def write_synthetic_mintrec(folder, *, size: str = "small", seed: int = 0, replace: bool = True) -> Path:
    """Write a synthetic MIntRec folder (see the module docstring) at `folder`, atomically: it is
    written under a temporary name and renamed. An existing folder is replaced, unless
    `replace` is false, in which case a complete one already there is kept."""
    size, seed = _check(size, seed)
    return tiny_bert.write_folder_atomically(Path(folder), lambda tmp: _write_folder(tmp, size, seed),
                                                  replace=replace, complete_marker=SYNTHETIC_MARKER)


def _has_stamp(marker: Path) -> bool:
    try:
        return "stamp" in json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return False


def synthetic_mintrec_cached(cache_dir, *, size: str = "small", seed: int = 0) -> bool:
    """Whether `ensure_synthetic_mintrec` would find the folder under `cache_dir` and write nothing. Without torch:
    the sweep's planning line asks before torch is imported."""
    marker = _cached_folder(cache_dir, size, seed) / SYNTHETIC_MARKER
    return marker.is_file() and _has_stamp(marker)


def _cached_folder(cache_dir, size: str, seed: int) -> Path:
    return Path(cache_dir) / mintrec_recipe(size, seed) / mintrec_facts()["files"]["unaligned"]


def ensure_synthetic_mintrec(cache_dir, *, size: str = "small", seed: int = 0) -> tuple[Path, Path]:
    """(MIntRec folder, its tiny-BERT folder) under `cache_dir/<recipe>/MIntRec`, written only
    if missing (a folder without synthetic.json is a broken leftover, and one whose marker has
    no stamp was written by an older generator: both are replaced)."""
    folder = _cached_folder(cache_dir, size, seed)
    marker = folder / SYNTHETIC_MARKER
    if not marker.is_file():
        write_synthetic_mintrec(folder, size=size, seed=seed, replace=False)
    elif not _has_stamp(marker):
        write_synthetic_mintrec(folder, size=size, seed=seed, replace=True)
    return folder, folder / BERT_DIR
