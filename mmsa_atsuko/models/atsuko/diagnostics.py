"""Router diagnostics: what Atsuko's routers did over the test samples (issue 16).

`routing_summary(export, condition)` turns a run's per-sample exports (model.py `export`:
`modality_weight_L/V/A` (N,), `band_weights_L/V/A` (N, K) low..high, unmasked) into the `routing`
object of its run record:

    {"modality_weights": {m: {"mean", "std"}},                 m in L, V, A; std over test samples
     "band_weights": {m: {"mean": [K], "std": [K]}},            with SBN only
     "condition": {...}}                                         on a stress recipe only, see below

On a stress recipe (data/synthetic_stress.py) `condition` scores the routers against the true
per-sample condition of the test split:
- corrupt: per modality, the mean weight over the samples where it is corrupted and where it
  is clean (not corrupted), and their ratio (the issue's target: <= 0.5);
- bands: the mean weight of the band that holds the cue (band 0 for a low cue, band K-1 for a
  high one) and of the band that holds the noise, in the modality the recipe bands (vision);
- redundant: per modality of the pair (A, V), the mean weight over the samples where it is the
  less noisy of the two and where it is the noisier one.
"""
from __future__ import annotations

import numpy as np

from .modalities import BAND_WEIGHT_EXPORTS, BATCH_KEY, MODALITIES, MODALITY_WEIGHT_COLUMNS

RECIPE_MODALITY = {key: m for m, key in BATCH_KEY.items()}     # the recipes name the modalities as the batch
CORRUPT_INDEX = {"L": 0, "A": 1, "V": 2}                           # synthetic_stress.CORRUPT_CODES


def _stats(values: np.ndarray) -> dict:
    values = np.asarray(values, dtype=np.float64)
    return {"mean": values.mean(0).tolist(), "std": values.std(0).tolist()}


def _mean(values: np.ndarray) -> float | None:
    return float(np.mean(values)) if len(values) else None


def routing_summary(export: dict, condition: dict | None = None) -> dict | None:
    """The `routing` object (module docstring) from per-sample exports, or None for a model that
    exports no modality weights. `condition`: the test split's condition block of a stress file
    with its `kind` (`{'kind': 'corrupt', 'corrupted': (N,)}`), in the exports' sample order."""
    if not all(MODALITY_WEIGHT_COLUMNS[m] in export for m in MODALITIES):
        return None
    w = {m: np.asarray(export[MODALITY_WEIGHT_COLUMNS[m]], dtype=np.float64).reshape(-1) for m in MODALITIES}
    out = {"modality_weights": {m: _stats(w[m]) for m in MODALITIES}}
    bands = {m: np.asarray(export[BAND_WEIGHT_EXPORTS[m]], dtype=np.float64) for m in MODALITIES
             if BAND_WEIGHT_EXPORTS[m] in export}
    if bands:
        out["band_weights"] = {m: _stats(b) for m, b in bands.items()}
    if condition is not None:
        out["condition"] = _condition_response(condition, w, bands)
    return out


def _condition_response(condition: dict, w: dict, bands: dict) -> dict:
    kind = condition["kind"]
    if kind == "corrupt":
        corrupted = np.asarray(condition["corrupted"])
        response = {}
        for m in MODALITIES:
            hit = corrupted == CORRUPT_INDEX[m]
            when_corrupted, when_clean = _mean(w[m][hit]), _mean(w[m][~hit])
            ratio = when_corrupted / when_clean if when_corrupted is not None and when_clean else None
            response[m] = {"corrupted": when_corrupted, "clean": when_clean, "ratio": ratio}
        return {"kind": kind, "modality_weight": response}
    if kind == "bands":
        m = RECIPE_MODALITY["vision"]
        if m not in bands:
            return {"kind": kind}
        weights = bands[m]
        cue = np.where(np.asarray(condition["cue_band"]) == 0, 0, weights.shape[1] - 1)
        noise = weights.shape[1] - 1 - cue
        rows = np.arange(len(weights))
        return {"kind": kind, "modality": m, "cue_band_weight": _mean(weights[rows, cue]),
                "noise_band_weight": _mean(weights[rows, noise])}
    if kind == "redundant":
        noise = {"A": np.asarray(condition["noise_audio"]), "V": np.asarray(condition["noise_vision"])}
        response = {}
        for m, other in (("A", "V"), ("V", "A")):
            cleaner = noise[m] < noise[other]
            response[m] = {"cleaner": _mean(w[m][cleaner]), "noisier": _mean(w[m][~cleaner])}
        return {"kind": kind, "modality_weight": response}
    raise ValueError(f"unknown stress condition {kind!r}")
