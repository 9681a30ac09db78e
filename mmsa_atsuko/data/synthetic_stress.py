"""Stress recipes: synthetic data on which routing by sample can pay (issue 16).

The standard recipe (synthetic/planted_signal.py) makes labels additive in three independent latents, and
every sample's cues share one phase and one period: no sample differs from another in which
modality or band is reliable, so the best router is a constant. Each stress recipe below keeps
the standard generator (same words, embeddings, column layouts, lengths, -inf frames, file
format) and changes only what the latents feed and how, so that one per-sample condition
decides where the label's information sits. The condition is stored in the file (see below)
so that analysis can score the routers.

Notation: t, a, v are the per-sample latents the text, audio and vision features are built
from (text through valence words, audio/vision through cue columns, as in the standard
recipe); z is the label score, and the label is the dataset's usual squashing of
z + LABEL_NOISE * noise (planted_signal.labels_of).

- `corrupt`: s, u_T, u_A, u_V ~ N(0, 1) independent; each modality carries the shared latent
  plus its own part, x_m = sqrt(RHO) s + sqrt(1 - RHO) u_m (redundancy RHO = 0.9), and
  z = (x_T + x_A + x_V) / sqrt(3 + 6 RHO). For each sample one modality is chosen uniformly at
  random, none for a quarter of the samples (CORRUPT_NONE_SHARE); the chosen modality's
  features are built from a fresh latent x' ~ N(0, 1) instead of x_m (text: other words,
  audio/vision: other cue amplitudes). They are structured exactly like clean features, with
  the same per-feature mean and variance; only their disagreement with the other two
  modalities, which share s, gives them away. Audio and vision cues carry no drift here, so
  that they are readable enough for a corruption to matter. Condition `corrupted`: -1 none, 0 text,
  1 audio, 2 vision.
  RHO sets how far the corruption can be read from the input at all. It is the smallest value on
  a 0.05 grid at which the Bayes-optimal router (the posterior over none/T/A/V given the three
  true latents, and the MAE-optimal fusion built on it: bench/atsuko_corrupt_probe.py
  `bayes_ceiling`) weights a corrupted modality at no more than half its clean weight, issue 16's
  router target: 0.89 at RHO 0.5 (version s1, where no router could respond), 0.57 at 0.85,
  0.47 at 0.9 (s2). Chosen from the generating process alone, before any model's result on s2.
- `bands`: labels z = sqrt(0.1) t + sqrt(0.1) a + sqrt(0.8) v, so vision matters most. Vision
  gets BAND_COLUMNS signal columns with fixed gains g_c (about a tenth of its columns, at least
  6) and no drift. For each sample a fair coin puts the label's cue in the low band (a
  constant over the valid frames) or in the high band (the alternation (-1)^frame), as
  v * g_c * pattern; the other band carries noise of equal expected energy, n_c * |g_c| *
  other pattern with n_c ~ N(0, 1) independent per column. The cue band is coherent across
  columns (rank one, along g), the noise band is not: that is what a band router can see.
  Condition `cue_band`: 0 low, 1 high.
- `redundant`: labels z = sqrt(0.3) t + sqrt(0.7) r; audio and vision both carry the same
  latent r (their cue amplitudes, standard cue shape, no drift), and each gets its own
  per-sample noise level, sigma_A and sigma_V drawn independently log-uniform in
  REDUNDANT_NOISE (0.01 to 10): white Gaussian noise of that std per frame on the modality's
  signal columns. The best estimate of r weights each modality
  by its precision 1/sigma^2; the noise shows in the frames' energy. Condition `noise_audio`,
  `noise_vision` (the per-frame stds).

Recipe names: `<recipe>-<version>-<standard recipe name>`, e.g.
`bands-s1-mosi-small-unaligned-seed0-v2` (the version is the recipe's entry in STRESS_VERSIONS:
bump it when that generator changes what it writes), so the data id is `synthetic:bands-s1-...`
and records of an older version stay apart. At `size='small'` a stress recipe has more samples
than the standard one (STRESS_SMALL_SPLIT_SIZES): a per-sample condition needs enough samples of
each kind to be learnable and measurable.

The condition sits in the pickle under the top-level key CONDITION_KEY, next to the stamp:
`{'recipe': name, 'codes': {...}, 'train': {field: array}, 'valid': ..., 'test': ...}`, one
value per sample in the split's order. The loaders read only the three splits (MMSA reads only
`data[mode]`), so the file stays a valid MMSA file; the stamp's content hash covers it.
`read_condition(path)` returns it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError, UsageError
from .. import safe_pickle
from .stamp import data_kind_text, is_synthetic, recipe_name_of

STANDARD = "standard"
STRESS_RECIPES = ("corrupt", "bands", "redundant")
RECIPES = (STANDARD, *STRESS_RECIPES)
STRESS_VERSIONS = {"corrupt": "s2", "bands": "s1", "redundant": "s1"}    # s2: RHO 0.5 -> 0.9
CONDITION_KEY = "__condition__"

STRESS_SMALL_SPLIT_SIZES = {"train": 384, "valid": 128, "test": 128}

RHO = 0.9                             # corrupt: share of each modality's latent that is shared
CORRUPT_NONE_SHARE = 0.25             # corrupt: samples with no corrupted modality
CORRUPT_CODES = {-1: "none", 0: "text", 1: "audio", 2: "vision"}
BANDS_WEIGHTS = (math.sqrt(0.1), math.sqrt(0.1), math.sqrt(0.8))    # bands: z over t, a, v
BAND_COLUMN_SHARE, MIN_BAND_COLUMNS = 0.1, 6
BAND_CODES = {0: "low", 1: "high"}
REDUNDANT_WEIGHTS = (math.sqrt(0.3), math.sqrt(0.7))                 # redundant: z over t, r
REDUNDANT_NOISE = (0.01, 10.0)         # redundant: per-frame noise std range, log-uniform


def check_recipe(recipe) -> str:
    """`recipe` if it is one of RECIPES (any case), else a one-line UsageError."""
    name = str(recipe).lower()
    if name not in RECIPES:
        raise UsageError(f"unknown synthetic recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    return name


def check_recipe_request(recipe, synthetic: bool) -> str:
    """`check_recipe`, and a stress recipe only with synthetic data: the message run and sensitivity give."""
    name = check_recipe(recipe)
    if name != STANDARD and not synthetic:
        raise UsageError(f"--synthetic-recipe {recipe} makes synthetic data: add --synthetic")
    return name


SIZES = ("small", "full")           # a synthetic file's sizes (data.synthetic's recipes make them)


def check_data_options(synthetic: bool, synthetic_size=None, data_root=None, feature_path=None, *, where: str = "",
                       from_file=()) -> str:
    """Where a request's data comes from, against `synthetic`, as run.py, the sweep (and its file), tune and
    `api.run` all check it; the effective synthetic size ('small' where none is given). Each of these was ignored
    without a word: --synthetic-size without --synthetic trained on the real file, --data-root with it on the
    cache's synthetic file. `from_file`: the keys a sweep file `where` set, named as its keys, not as options."""
    def name(key: str) -> str:
        return key if key in from_file else "--" + key.replace("_", "-")
    head = f"{where}: " if where else ""
    synthetic_name = "--synthetic (or synthetic: true)" if where else "--synthetic"
    # A sweep file's synthetic_size is checked here, before planning (the command line's has argparse's choices):
    # 'huge' printed the planning line and made the results folder before the generator refused it, unnamed.
    if synthetic_size is not None and synthetic_size not in SIZES:
        raise UsageError(f"{head}{name('synthetic_size')} must be {' or '.join(SIZES)}, got {synthetic_size!r}")
    if synthetic_size is not None and not synthetic:
        raise UsageError(f"{head}{name('synthetic_size')} {synthetic_size} sizes generated data: add {synthetic_name}, "
                         f"or drop {name('synthetic_size')} to train on the feature files")
    for key, value, kept in (("data_root", data_root, "the files under it"),
                             ("feature_path", feature_path, "that file")):
        if synthetic and value is not None:
            raise UsageError(f"{head}{name('synthetic')} generates its own data files (in the cache, "
                             f"$MMSA_ATSUKO_CACHE); drop {name(key)}, or drop {name('synthetic')} to train on {kept}")
    return synthetic_size or "small"


def stress_name(recipe: str, standard_name: str) -> str:
    """The recipe name of a stress recipe built on the standard recipe `standard_name`."""
    return standard_name if recipe == STANDARD else f"{recipe}-{STRESS_VERSIONS[recipe]}-{standard_name}"


def recipe_kind(name: str) -> str:
    """Which recipe (RECIPES) a recipe name was made by: 'corrupt' for 'corrupt-s2-mosi-...'."""
    head = str(name).split("-", 1)[0]
    return head if head in STRESS_RECIPES else STANDARD


def recipe_kind_of(data_id) -> str:
    """The recipe of the data a run's data id names: 'corrupt' for 'synthetic:corrupt-s2-mosi-...'; STANDARD for
    the standard recipe and for real data (a sha256 id), which no recipe made."""
    return recipe_kind(recipe_name_of(data_id)) if is_synthetic(data_id) else STANDARD


def synthetic_kind_text(data_id) -> str:
    """`data_kind_text`'s 'synthetic data' with a stress recipe named: 'synthetic data, corrupt recipe' (run.py's end
    table): a `--synthetic-recipe corrupt` table read as the standard recipe's is the same model on other data."""
    recipe = recipe_kind_of(data_id)
    return data_kind_text(data_id) + ("" if recipe == STANDARD else f", {recipe} recipe")


def recipe_version(data_id) -> str | None:
    """The stress recipe's version a run's data id names ('s2' for 'synthetic:corrupt-s2-mosi-...', an entry of
    STRESS_VERSIONS when it was made); None for the standard recipe and real data, which have none."""
    if recipe_kind_of(data_id) == STANDARD:
        return None
    return recipe_name_of(data_id).split("-")[1]


@dataclass
class StressPlan:
    """What one stress recipe changes in one split of the standard generator."""
    score: np.ndarray                        # (N,) label score z before label noise
    unimodal: dict                           # 'T'/'A'/'V' -> latent of the SIMS unimodal labels
    feature_latents: dict                    # 'text'/'audio'/'vision' -> latent the features are built from
    condition: dict                          # field -> (N,) array, stored in the file
    frame_noise: dict = field(default_factory=dict)     # modality -> (N,) per-frame noise std on signal columns
    signal: dict = field(default_factory=dict)          # modality -> (layout, (N, L, C) signal-column content)
    drift: bool = True                                  # the standard cues' label-free drift on audio/vision


def plan(recipe: str, rng: np.random.Generator, n: int, world: dict, lengths: dict, padded: dict) -> StressPlan:
    """Draw one split's latents and condition for `recipe` (see the module docstring).
    `lengths`/`padded` give the audio and vision frame counts, for the bands recipe's patterns."""
    if recipe == "corrupt":
        s, u_t, u_a, u_v = rng.standard_normal((4, n))
        x = {m: math.sqrt(RHO) * s + math.sqrt(1 - RHO) * u for m, u in zip(("text", "audio", "vision"),
                                                                             (u_t, u_a, u_v))}
        corrupted = np.where(rng.random(n) < CORRUPT_NONE_SHARE, -1, rng.integers(0, 3, size=n))
        fresh = rng.standard_normal((3, n))
        feature_latents = {m: np.where(corrupted == i, fresh[i], x[m])
                           for i, m in enumerate(("text", "audio", "vision"))}
        score = (x["text"] + x["audio"] + x["vision"]) / math.sqrt(3 + 6 * RHO)
        return StressPlan(score, {"T": x["text"], "A": x["audio"], "V": x["vision"]}, feature_latents,
                          {"corrupted": corrupted.astype(np.int64)}, drift=False)
    if recipe == "bands":
        t, a, v = rng.standard_normal((3, n))
        cue_band = rng.integers(0, 2, size=n)
        layout = world["stress"]["vision"]
        content = _band_content(rng, layout, v, cue_band, lengths["vision"], padded["vision"])
        score = BANDS_WEIGHTS[0] * t + BANDS_WEIGHTS[1] * a + BANDS_WEIGHTS[2] * v
        return StressPlan(score, {"T": t, "A": a, "V": v}, {"text": t, "audio": a, "vision": v},
                          {"cue_band": cue_band.astype(np.int64)}, signal={"vision": (layout, content)})
    if recipe == "redundant":
        t, r = rng.standard_normal((2, n))
        lo, hi = np.log(REDUNDANT_NOISE[0]), np.log(REDUNDANT_NOISE[1])
        noise = np.exp(rng.uniform(lo, hi, size=(2, n))).astype(np.float32)
        score = REDUNDANT_WEIGHTS[0] * t + REDUNDANT_WEIGHTS[1] * r
        return StressPlan(score, {"T": t, "A": r, "V": r}, {"text": t, "audio": r, "vision": r},
                          {"noise_audio": noise[0], "noise_vision": noise[1]},
                          frame_noise={"audio": noise[0], "vision": noise[1]}, drift=False)
    raise ValueError(f"not a stress recipe: {recipe!r}")


def stress_world(recipe: str, rng: np.random.Generator, world: dict) -> dict:
    """What a stress recipe fixes across the splits (as planted_signal.world does): the bands
    recipe's vision layout."""
    return {"vision": _band_layout(rng, world["vision"])} if recipe == "bands" else {}


def _band_layout(rng, layout: dict) -> dict:
    """The vision layout with BAND_COLUMNS signal columns (more than the standard tenth: the
    coherence of the cue band across columns is what gives it away)."""
    dim = len(layout["scale"])
    count = min(dim, max(MIN_BAND_COLUMNS, round(BAND_COLUMN_SHARE * dim)))
    columns = np.sort(rng.choice(dim, size=count, replace=False))
    gains = (rng.uniform(0.6, 1.0, size=count) * rng.choice([-1.0, 1.0], size=count)).astype(np.float32)
    return {**layout, "columns": columns, "gains": gains}


def _band_content(rng, layout: dict, latent: np.ndarray, cue_band: np.ndarray, lengths: np.ndarray,
                  padded: int) -> np.ndarray:
    """(N, L, C) signal-column content of the bands recipe: the cue v * g in the chosen band,
    noise n_c * |g_c| of equal expected energy in the other; zero after the valid frames."""
    n, gains = len(latent), layout["gains"]
    frames = np.arange(padded)
    low = np.ones(padded, dtype=np.float32)
    high = np.where(frames % 2 == 0, 1.0, -1.0).astype(np.float32)
    cue_pattern = np.where(cue_band[:, None] == 0, low[None, :], high[None, :])           # (N, L)
    noise_pattern = np.where(cue_band[:, None] == 0, high[None, :], low[None, :])
    noise = rng.standard_normal((n, len(gains))).astype(np.float32) * np.abs(gains)[None, :]
    content = (latent[:, None, None] * cue_pattern[:, :, None] * gains[None, None, :]
               + noise_pattern[:, :, None] * noise[:, None, :])
    valid = frames[None, :] < lengths[:, None]
    return (content * valid[:, :, None]).astype(np.float32)


def condition_block(recipe_name: str, recipe: str, per_split: dict) -> dict:
    """The CONDITION_KEY value for a file."""
    codes = {"corrupt": {"corrupted": {str(k): v for k, v in CORRUPT_CODES.items()}},
             "bands": {"cue_band": {str(k): v for k, v in BAND_CODES.items()}},
             "redundant": {}}[recipe]
    return {"recipe": recipe_name, "kind": recipe, "codes": codes, **per_split}


def split_condition(source: str, path, split: str = "test") -> dict | None:
    """`{'kind': recipe, field: (N,) ...}` of one split of the data with id `source` at `path`, or
    None unless it is a stress recipe's (real data, the standard recipe)."""
    if recipe_kind_of(source) == STANDARD:
        return None
    block = read_condition(path)
    return {"kind": block["kind"], **block[split]} if block is not None else None


def read_condition(path) -> dict | None:
    """The per-sample condition stored in a synthetic stress file (see the module docstring),
    or None for a file without one (real data, the standard recipe)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such feature file to read a synthetic condition from")
    raw = safe_pickle.load(path)
    block = raw.get(CONDITION_KEY) if isinstance(raw, dict) else None
    return block if isinstance(block, dict) else None
