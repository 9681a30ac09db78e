"""The Atsuko ablation variants (Table 4) and the t-SNE of their fused test features.

- `ablation_runs`: the stored runs of the variants that differ only in the Table 4 switches.
- `variants_elsewhere`: why variants are missing from those runs when they are on the other feature file.
- `tsne_table`: t-SNE of the fused test features of the Atsuko ablation runs.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data.conditions import PLAIN, Condition, condition_of
from ..errors import UsageError
from ..models.atsuko import ATSUKO_FAMILY
from ..models.atsuko.family import TABLE4_ROWS, switches_of
from ..results import ok_records, read_records
from .runs import LoadedRun, _cat, _config_apart_from, forward_split, trace_columns


SWITCHES = ("use_sbn", "use_mcm", "use_distill")


def variant_name(config: dict) -> str:
    """Table 4's row name of an Atsuko-family config (models/atsuko/family.py's TABLE4_ROWS)."""
    return TABLE4_ROWS[switches_of(config)]


VARIANT_ORDER = tuple(TABLE4_ROWS.values())      # Table 4's order


def ablation_runs(results, dataset: str | None = None, seed: int | None = None,
                  aligned: bool = False, condition: Condition = PLAIN) -> dict[str, str]:
    """variant name -> run id: Atsuko-family runs on `dataset` (default: that of the latest one)
    at the `aligned` flag, under the protocol `condition` (default the plain one, as sensitivity reads only plain
    runs: a later run at missing rate 0.6 was drawn in place of the plain runs without a word), and `seed` if
    given, that differ only in the Table 4 switches.

    Runs are grouped by data file, protocol condition, training seed and config apart from the switches,
    so panels never mix aligned with unaligned data, synthetic with real, a run at a missing rate with a
    plain one, a hyperparameter variant (a sensitivity run) with the defaults, or one seed with another
    (a sweep's workers append seeds out of order: each variant's latest run was of another seed, and the
    panels differed by the seed as well as the switch). The group with the most variants is chosen (ties:
    the one holding the latest run), and in it each variant's latest run.
    """
    family = [r for r in ok_records(read_records(Path(results))) if r.get("model") in ATSUKO_FAMILY
              and bool(r["aligned"]) == aligned]
    records = [r for r in family if condition_of(r).key() == condition.key()]
    if dataset is None and family:      # the latest run's under the condition drawn, if any has one
        dataset = (records or family)[-1]["dataset"]
    groups: dict[str, dict[str, tuple[int, dict]]] = {}        # config -> variant -> (position, record)
    for position, r in enumerate(records):
        if r["dataset"] == dataset and (seed is None or r["seed"] == seed):
            key = json.dumps([r["data"], condition_of(r).key(), r["seed"],
                              _config_apart_from(r["config"], *SWITCHES)], sort_keys=True, default=str)
            groups.setdefault(key, {})[variant_name(r["config"])] = (position, r)   # later records win
    if not groups:
        under = f" under {condition.key()}" if condition.key() else " under the plain condition"
        others = sorted({condition_of(r).key() for r in family if r["dataset"] == dataset
                         and (seed is None or r["seed"] == seed)} - {condition.key()})
        hint = f"; its runs are under {', '.join(k or 'the plain condition' for k in others)}: choose one with " \
               f"--missing-rate, --drop-modality and --modalities as run.py took them (none: the plain one)" \
            if others else ""
        raise UsageError(f"no Atsuko runs{f' on {dataset}' if dataset else ''}{' aligned' if aligned else ''}"
                         f"{f' with seed {seed}' if seed is not None else ''}{under} in "
                         f"{Path(results) / 'runs.jsonl'}{hint}")
    chosen = max(groups.values(), key=lambda variants: (len(variants), max(p for p, _ in variants.values())))
    return {name: chosen[name][1]["run_id"] for name in VARIANT_ORDER if name in chosen}


def variants_elsewhere(results, dataset: str, seed: int | None, aligned: bool, shown,
                       condition: Condition = PLAIN) -> str:
    """A line naming the variants absent from `shown` (variant names) that have runs on `dataset` (at `seed`, if
    given; under `condition`, as `ablation_runs` picks them) on the other feature file, and the option that draws
    them, or "". The paper's sweep trains atsuko on both files and Table 4's variants on the aligned one alone, so
    `tsne -d mosi` drew one panel without a word."""
    other = {variant_name(r["config"]) for r in ok_records(read_records(Path(results)))
             if r.get("model") in ATSUKO_FAMILY and bool(r["aligned"]) != aligned and r["dataset"] == dataset
             and (seed is None or r["seed"] == seed) and condition_of(r).key() == condition.key()}
    absent = [name for name in VARIANT_ORDER if name in other and name not in shown]
    if not absent:
        return ""
    where, option = ("unaligned", "drop --aligned") if aligned else ("aligned", "add --aligned")
    count = f"{len(absent)} ablation variants are" if len(absent) > 1 else "1 ablation variant is"
    return f"{count} on the {where} file: {option} ({'; '.join(absent)})"


def sentiment_class(labels: np.ndarray) -> np.ndarray:
    """Regression labels binned as MMSA's 3 classes: negative (< 0), neutral (0), positive (> 0)."""
    return np.where(labels < 0, "negative", np.where(labels > 0, "positive", "neutral"))


def tsne_table(runs: dict[str, LoadedRun], seed: int = 0) -> pd.DataFrame:
    """The 2-D t-SNE (sklearn, `random_state=seed`) of each variant's fused test features c_proj: one row per
    variant and test sample (`id`), ending with the run's `run_id`, `data`, `code` and
    `condition` (`runs.trace_columns`)."""
    from sklearn.manifold import TSNE
    rows = []
    for variant, run in runs.items():
        outputs = forward_split(run, run.data.test)
        features = _cat(outputs, "c_proj")
        labels = _cat(outputs, "batch", "label") if run.data.spec.task == "regression" else None
        perplexity = float(min(30, max(2, (len(features) - 1) // 3)))
        embedded = TSNE(n_components=2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(features)
        if labels is not None:
            classes = sentiment_class(labels)
        else:
            names = run.data.spec.label_names
            classes = [names[int(c)] if names else str(int(c))
                       for c in torch.cat([o["batch"]["label"] for o in outputs])]
        trace = trace_columns(run.record)
        rows += [{"variant": variant, "id": sid, "label_class": cls, "tsne_1": float(a), "tsne_2": float(b), **trace}
                 for sid, cls, (a, b) in zip(run.data.test.ids, classes, embedded)]
    return pd.DataFrame(rows)
