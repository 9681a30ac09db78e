"""The run `run.py predict` predicts with: its folder (`--run ID` or `--checkpoint DIR`), rebuilt from the folder alone.

`model.json` (training/model_card.py) gives the model name, config and the dataset spec it was built with,
`best.pt` the weights (read with `weights_only=True`). A run folder may come from anywhere: the card is
checked as `read_model_card` says, and the model it describes is compared with best.pt on the meta device
before it is built (`load_checkpoint`).

A model of your own (`--models DIR`) whose files differ from those the run was trained with (the
card's `model_source`: the model file and every file of its folder that discovery imported) is
predicted with, and each file that differs is a warning (`code_changes`): the weights still fit, an
edit may be a comment, and the run's record names the code that trained them.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from easydict import EasyDict

from ..safe_checkpoint import load_weights
from ..errors import DataError, UsageError
from ..results import check_readable, last_ok_record, no_weights, run_path
from ..training.checked_model import Described, build_checked
from ..training.model_card import MODEL_CARD, read_model_card, spec_from_card
from ..user_models.source import source_changes

def run_folder(results=None, run_id: str | None = None, checkpoint=None) -> Path:
    """The run folder of `--run ID` (looked up in `<results>/runs.jsonl`) or of `--checkpoint DIR`."""
    if (run_id is None) == (checkpoint is None):
        raise UsageError("give exactly one of --run RUN_ID or --checkpoint DIR")
    if checkpoint is not None:
        folder = Path(checkpoint)
        if not os.path.isdir(folder) and os.path.isdir(folder.parent):     # best.pt named: its folder may be unreadable
            check_readable(folder.parent, (folder.name,))
        folder = folder.parent if folder.is_file() else folder      # best.pt itself is fine too
        if not folder.is_dir():
            raise UsageError(f"checkpoint folder {checkpoint} not found")
        check_readable(folder, (MODEL_CARD, "best.pt"))
        # Said here, else the card's reader reports a missing model.json as a run from before model.json existed.
        if not (folder / MODEL_CARD).exists() and not (folder / "best.pt").exists():
            if (folder / "runs.jsonl").is_file():
                raise UsageError(f"--checkpoint {checkpoint} is a results folder, not a run folder: give --run RUN_ID "
                                 f"--results {folder}, or --checkpoint {folder / 'runs' / 'RUN_ID'}")
            raise UsageError(f"--checkpoint {checkpoint} is not a run folder (no model.json or best.pt in it): "
                             f"give a folder under <results>/runs/, or --run RUN_ID --results DIR")
        return folder
    results = Path(results or "results")
    record = last_ok_record(results, run_id)
    folder = run_path(results, record)        # inside --results, whatever the record says
    if record.get("checkpoint") == "none":
        raise UsageError(no_weights(folder / "best.pt", record))
    return folder


def load_checkpoint(folder) -> tuple[dict, torch.nn.Module]:
    """(model.json, the model with best.pt loaded, in eval mode, on the CPU).

    A run folder may come from anywhere, and a card's config sizes the model: so the card is
    checked (`read_model_card`, its config held to the training checks), then best.pt read
    (`load_weights`, bounded by the file), then the model built through
    `training.checked_model.build_checked`: compared with the weights on the meta device, within a
    budget set by them, and built for real only if every shape matches."""
    check_readable(folder, (MODEL_CARD, "best.pt"))
    card = read_model_card(folder)
    card_path = Path(folder) / MODEL_CARD
    weights = Path(folder) / "best.pt"
    if not weights.is_file():
        raise DataError(no_weights(weights))
    state = load_weights(weights)          # checked first: a hostile best.pt is one line
    described = Described(str(card_path), f"the {card['model']} in {card_path}", "the card")
    model = build_checked(card["model"], EasyDict(card["config"]), spec_from_card(card), state, weights, described)
    return card, model.eval()


def code_changes(card: dict) -> list[str]:
    """One line per file of a model of your own that differs from what the run was trained with (after
    `load_checkpoint`, which imports the model's files): predict goes on, with the code as it is now."""
    return [f"{change}: predicting with it as it is now" for change in source_changes(card.get("model_source"),
                                                                                         card["model"])]
