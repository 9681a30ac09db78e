"""A trained run's predictions on a feature file (`run.py predict --features`, and after --videos' extraction).

Which samples: every sample of every split the file holds (train, valid, test, in that order;
a file extracted without labels holds only `test`), or the one `--split` names.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from ..errors import DataError, UsageError
from ..training.seed import resolve_device
from .checkpoint import load_checkpoint
from .features import as_trained, check_features, read_features
from .output import check_output, provenance_of, write_predictions

SPLIT_ORDER = ("train", "valid", "test")


def predict_file(folder, features, out, *, split: str | None = None, device="cpu", loaded=None) -> Path:
    """Predict every sample of `features` (or of its `split`) with the run in `folder`; write `<out>/predictions.csv`
    (and predictions.json) and return its path. `loaded`: `load_checkpoint(folder)`'s result, if the caller has it."""
    return predict_with_provenance(folder, features, out, split=split, device=device, loaded=loaded)[0]


@torch.no_grad()
def predict_with_provenance(folder, features, out, *, split: str | None = None, device="cpu", loaded=None,
                            videos: dict | None = None) -> tuple[Path, dict]:
    """`predict_file`, returning also what predictions.json says; `videos`: what extract_with_provenance said."""
    out = check_output(out)
    card, model = loaded or load_checkpoint(folder)
    splits, shapes, extractor, labelled, data_id = read_features(card, features, split)
    check_features(card, model, shapes, extractor, splits, features)
    splits = as_trained(card, splits)
    if split is not None:
        if split not in splits:
            raise UsageError(f"{features} has no {split} split (it has {', '.join(splits)})")
        splits = {split: splits[split]}
    device = resolve_device(device)
    model.to(device)
    batch_size = int(card["config"].get("eval_batch_size") or card["config"]["batch_size"])
    classification = card["task"] == "classification"
    names = card.get("label_names")
    frames = []
    for name in (s for s in SPLIT_ORDER if s in splits):
        data = splits[name].to(device)
        preds = torch.cat([model(batch)["pred"].float() for batch in data.batches(batch_size)]).cpu()
        refuse_non_finite(preds, name, data.ids, features)
        columns = {"id": data.ids, "split": name}
        if classification:
            probs = preds.softmax(dim=1)
            top, index = probs.max(dim=1)
            columns.update(pred=index.numpy(), class_name=[names[i] if names else str(i) for i in index.tolist()],
                           probability=top.numpy())
        else:
            columns["pred"] = preds.reshape(-1).numpy()
        if labelled:
            columns["label"] = data.tensors["label"].cpu().numpy()
        frames.append(pd.DataFrame(columns))
    table = pd.concat(frames, ignore_index=True)
    said = {**provenance_of(folder, card, features, data_id, table), **(videos or {})}
    return write_predictions(out, table, said), said


def refuse_non_finite(preds: torch.Tensor, split: str, ids: list, features) -> None:
    """One DataError line, before anything is written, where a sample's prediction is NaN or infinite: pandas wrote
    it as an empty cell, with exit 0 and no word. The features are finite (checked at load), so the model overflowed
    on them, as on values like 3e38 (which the load warns of); a run on such data stops at its first non-finite loss."""
    bad = ~torch.isfinite(preds.reshape(len(preds), -1)).all(dim=1)
    if bad.any():
        first = int(bad.nonzero()[0, 0])
        value = preds.reshape(len(preds), -1)[first]
        value = value[~torch.isfinite(value)][0].item()
        more = f" (and {int(bad.sum()) - 1} more samples of it)" if int(bad.sum()) > 1 else ""
        raise DataError(f"{features}: split '{split}', sample {first} (id {str(ids[first])[:80]!r}){more}: its "
                        f"prediction is {value}, not a finite number: the model overflows on the sample's "
                        f"features; fix or remove the sample and predict again (nothing was written)")
