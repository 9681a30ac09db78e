"""A trained run ready for analysis: its record, its data, its model with the best checkpoint, and its outputs.

- `load_run`: a run's record, config, dataset and model with its best checkpoint loaded.
- `forward_split`, `predictions`: the model's outputs over a split in file order (eval mode).
- `trace_columns`: what every analysis CSV row says of the run it comes from (run id, data id, code, condition).
- `_config_apart_from`: a stored run's config apart from some keys, how the other analyses find
  the runs that differ from one another in those keys alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from easydict import EasyDict

from ..cache import synthetic_cache_dir
from ..config import config_identity
from ..data import load_dataset
from ..data.synthetic import ensure_synthetic
from ..data.conditions import condition_of, label_suffix
from ..safe_checkpoint import load_weights
from ..data.stamp import recipe_name_of
from ..data.synthetic_stress import recipe_kind
from ..errors import DataError, UsageError, one_line
from ..results import RUNS_FILE, check_readable, checkpoint_run, code_version, find_record, no_weights, run_path
from ..training.checked_model import Described, build_checked
from ..training.model_card import check_run_config


@dataclass
class LoadedRun:
    record: dict
    config: EasyDict
    data: object           # data.spec.Dataset
    model: torch.nn.Module
    run_dir: Path

    @property
    def run_id(self) -> str:
        return self.record["run_id"]

    @property
    def synthetic(self) -> bool:
        return bool(self.record.get("synthetic"))

    @property
    def eval_batch_size(self) -> int:
        return int(self.config.eval_batch_size or self.config.batch_size)

    @property
    def loss_rule(self) -> str:
        """How the run made its valid and test Loss (`valid_loss`; a run from before the key: exact)."""
        return self.config.get("valid_loss", "exact")


def _load_run_data(record: dict):
    """The dataset the run was trained on; synthetic data is regenerated if its cache is gone."""
    path = record.get("data_path")
    if record.get("synthetic") and (not path or not Path(path).exists()):
        recipe = recipe_name_of(record["data"]) or ""
        size = "full" if "-full-" in recipe else "small"
        path, _bert = ensure_synthetic(record["dataset"], synthetic_cache_dir(), size=size,
                                       aligned=bool(record["aligned"]), recipe=recipe_kind(recipe))
    if not path or not Path(path).exists():
        raise DataError(f"the data of run {record['run_id']} is gone: {path} does not exist")
    data = load_dataset(record["dataset"], aligned=bool(record["aligned"]), feature_path=path,
                        pretrained=record["config"].get("pretrained"))
    if data.spec.source != record["data"]:
        raise DataError(f"{path} is not the data run {record['run_id']} was trained on "
                        f"({data.spec.source} != {record['data']})")
    return data


def load_run(results="results", run_id: str | None = None, checkpoint=None,
             data_cache: dict | None = None, records: list[dict] | None = None) -> LoadedRun:
    """A trained run ready for analysis: model in eval() mode with `best.pt` loaded, on CPU.

    Give `run_id` (looked up in `<results>/runs.jsonl`) or `checkpoint` (a run folder, or its
    best.pt, as `predict --checkpoint` takes them; the folder's name is the run id). `data_cache`
    shares loaded datasets between runs; `records`: the store, read already (`results.find_record`).
    """
    if (run_id is None) == (checkpoint is None):
        raise UsageError("give exactly one of --run RUN_ID or --checkpoint PATH")
    if checkpoint is not None:
        checkpoint, run_id = checkpoint_run(checkpoint)
    record = find_record(results, run_id, records)
    run_dir = run_path(results, record)     # inside --results, whatever the record says
    if checkpoint is None:
        checkpoint = check_readable(run_dir, ("best.pt",)) / "best.pt"
    if not Path(checkpoint).is_file():
        raise (UsageError if record.get("checkpoint") == "none" else DataError)(no_weights(checkpoint, record))
    where = f"{Path(results) / RUNS_FILE} run {run_id}"
    try:     # a record may come from anywhere: its config held to the checks of a training run's
        config = EasyDict(check_run_config(record["model"], record["config"], record["dataset"], f"{where} config"))
    except UsageError as e:
        raise DataError(str(e)) from None
    try:   # checked, then torch.load(weights_only=True): a checkpoint is tensors, never code
        state = load_weights(checkpoint)
    except Exception as e:          # any unpickling error: the file is not this run's weights
        raise DataError(f"checkpoint {checkpoint} is not the weights of run {run_id} "
                        f"({one_line(e)})") from None
    key = (record["data"], record.get("data_path"))
    cache = {} if data_cache is None else data_cache
    if key not in cache:
        cache[key] = _load_run_data(record)
    condition = condition_of(record)
    if condition.older_text_drop:
        raise UsageError(f"run {run_id} ran under an older toolkit's --drop-modality T, which zeroed fewer text rows "
                         f"than today's (its record has no text_rows mark), so its data cannot be rebuilt: train it "
                         f"again with --drop-modality T")
    data = cache[key].under(condition)      # a run under a protocol condition is re-tested under it
    # The record's config is what the run was trained with (model.json holds a copy, and runs from
    # before model.json have none); it is held to best.pt on the meta device before any real build.
    model = build_checked(record["model"], config, data.spec, state, Path(checkpoint),
                          Described(where, f"run {run_id}", "the record"))
    model.eval()
    return LoadedRun(record, config, data, model, run_dir)


@torch.no_grad()
def forward_split(run: LoadedRun, split, return_spectral: bool = False, with_loss: bool = False,
                  on_batch=None) -> list[dict]:
    """The model's outputs batch by batch over `split` in file order (eval mode, no masking); `on_batch()` is
    called after each batch."""
    run.model.eval()
    outputs = []
    for batch in split.batches(run.eval_batch_size):
        # Only Atsuko knows the keyword; every model takes forward(batch).
        out = run.model(batch, return_spectral=True) if return_spectral else run.model(batch)
        if with_loss:
            out["loss_terms"] = run.model.loss(out, batch)
        out["batch"] = batch
        outputs.append(out)
        if on_batch is not None:
            on_batch()
    return outputs


def _cat(outputs, *path) -> np.ndarray:
    def pick(out):
        for key in path:
            out = out[key]
        return out
    return torch.cat([pick(o).float() for o in outputs]).numpy()


def _config_apart_from(config: dict, *keys: str) -> dict:
    """`config` without `keys` and `pretrained` (which names the same BERT in different ways), as its identity sees it
    (`config_identity`: a run stored before a key was added is the same config as one at the key's old value)."""
    return {k: v for k, v in config_identity(config).items() if k not in keys and k != "pretrained"}


@torch.no_grad()
def predictions(run: LoadedRun, split) -> np.ndarray:
    return _cat(forward_split(run, split), "pred")


def trace_columns(record: dict, data: str | None = None) -> dict:
    """`run_id`, `data`, `code`, `condition`: the run a row of an analysis CSV comes from, the data it was measured
    on (the record's data id: the feature file's sha256 or the synthetic recipe; `data` for another file), the code
    the run trained with (`results.code_version`, the leaderboard's `code`) and the protocol condition it ran and is
    re-tested under (`Condition.key()`, "" for the plain one, as the leaderboard's CSV writes it: a run at missing
    rate 0.6 read as a plain one), so a CSV read on its own traces back."""
    return {"run_id": record["run_id"], "data": record["data"] if data is None else data, "code": code_version(record),
            "condition": condition_of(record).key()}


def condition_label(record: dict) -> str:
    """` [missing_rate=0.6]` after a run's name where it ran under a protocol condition, "" for the plain one: as the
    leaderboard labels its rows (`model [condition]`), so a figure or line showing the run says so."""
    return label_suffix(condition_of(record).key())
