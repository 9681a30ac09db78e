"""Hyperparameter sensitivity (the paper's Fig. 3), read from the results store.

- `sensitivity_table`: key metric, mean and std over seeds (the leaderboard's `results.Cell`), against one
  hyperparameter's value.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..training.trainer_config import resolve_config
from ..data.conditions import condition_of
from ..data.synthetic_stress import recipe_kind_of
from ..errors import DataError
from ..results import Cell, code_versions, headline_metric, ok_records, read_records
from .runs import _config_apart_from


SENSITIVITY_PARAMS = {          # the paper's Fig. 3: parameter -> default grid
    "lambda_ent": (0.0, 0.5, 1.0, 2.0),
    "band_mask_rate": (0.0, 0.1, 0.2, 0.3),
    "lambda_comp": (0.0, 0.05, 0.1, 0.2),
    "lambda_distill": (0.0, 0.05, 0.1, 0.2),
}
PARAM_LABELS = {"lambda_ent": "entropy weight λ_ent", "band_mask_rate": "band mask rate p",
                "lambda_comp": "complementarity weight λ_comp", "lambda_distill": "distillation weight λ_d"}


def _numbers_first(value) -> tuple:
    """Sort key: numbers in order, then anything else by its repr."""
    return (0, value, "") if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, 0, repr(value))


def _nearest_runs_hint(records: list, wanted: dict, param: str) -> str:
    """Why no stored run matched: `records` are the runs of the right model, dataset, layout, data
    kind and seeds; say which `param` values those with the wanted config have, or else in which
    config keys the closest run differs (another --preset, --max-epochs or -c)."""
    if not records:
        return " (no stored run of this model, dataset, layout, data kind and these seeds at all)"

    def differing(r):
        config = _config_apart_from(r["config"])
        return sorted(k for k in set(config) | set(wanted) if k != param and config.get(k) != wanted.get(k))
    same_config = sorted({r["config"].get(param) for r in records if not differing(r)}, key=_numbers_first)
    if same_config:
        return f"; the runs of this config have {param} = {', '.join(map(repr, same_config))}"
    keys = min((differing(r) for r in records), key=len)
    shown = ", ".join(keys[:4]) + (", ..." if len(keys) > 4 else "")
    return (f"; the closest stored run differs in {shown}: give the --preset, --max-epochs and -c values "
            f"it was trained with")


def _one_data_file(rows: list[dict], model: str, dataset: str) -> None:
    """Every point of a figure comes from one data file: the runs a value matches are the latest per seed, and
    a later run on another file (a stress recipe, --size full, another copy of the features) took its seed's
    place without a word."""
    used = sorted({run_data for row in rows for run_data in row["data"]})
    if len(used) > 1:
        raise DataError(f"the {model} runs on {dataset} that the figure would read come from {len(used)} data files "
                        f"({', '.join(used)}): give each its own --results folder, or run without --read-only to "
                        f"read those of the data the sweep trains on")
    for row in rows:
        (row["data"],) = row["data"]          # one file: its id, as every analysis CSV names the data


def sensitivity_table(results, model: str, dataset: str, param: str, values, seeds, aligned: bool = False,
                      synthetic: bool | None = None, preset: str | None = None,
                      max_epochs: int | None = None, data: str | None = None,
                      recipe: str | None = None) -> pd.DataFrame:
    """Key metric mean and sample std over seeds for each value of `param`, read from the store: one row per
    value with its runs (`run_ids`), the data id they were trained on (`data`) and their code versions (`code`,
    as the leaderboard's).

    A run counts when its model, dataset, aligned flag and seed match, it ran under the plain protocol
    condition (the sweep runs it so; a run at a missing rate is another experiment) on the data file `data`
    (a data id; None: any, as long as every point reads the same one) of the synthetic recipe `recipe` (None:
    any; `standard` for real files too, which no recipe made), and its config is the
    model's config (`preset`, `max_epochs`) with `param=value` and nothing else changed: the run
    the sweep made with `-c param=value`, not one of another parameter's sweep that happens to
    hold this value.
    """
    records = [r for r in ok_records(read_records(Path(results))) if r["model"] == model
               and r["dataset"] == dataset and bool(r["aligned"]) == aligned and r["seed"] in seeds
               and (synthetic is None or bool(r["synthetic"]) == synthetic)
               and condition_of(r).plain and (data is None or r["data"] == data)
               and (recipe is None or recipe_kind_of(r["data"]) == recipe)]
    rows = []
    for value in values:
        wanted = _config_apart_from(resolve_config(model, dataset, preset=preset, overrides=[(param, value)],
                                                   max_epochs=max_epochs))
        matching = {}
        for r in records:                  # later records win per seed
            if _config_apart_from(r["config"]) == wanted:
                matching[r["seed"]] = r
        if not matching:
            raise DataError(f"no finished {model} run on {dataset} with {param}={value} in {results}/runs.jsonl"
                            f"{_nearest_runs_hint(records, wanted, param)}")
        metric = headline_metric(dataset)
        # The leaderboard's cell: a seed without a finite value (undefined, stored as null) is left out, and one
        # seed has no spread (NaN: empty in the CSV, no error bar), as the leaderboard's "–"; `seeds` counts values.
        cell = Cell.of(list(matching.values()), metric)
        rows.append({"param": param, "value": float(value), "metric": metric, "mean": cell.mean,
                     "std": cell.std, "seeds": cell.n,
                     "run_ids": " ".join(m["run_id"] for m in matching.values()),
                     "synthetic": any(m["synthetic"] for m in matching.values()),
                     "data": {m["data"] for m in matching.values()}, "code": code_versions(matching.values())})
    _one_data_file(rows, model, dataset)
    return pd.DataFrame(rows)
