"""`model.json` beside a run's `best.pt`: what the weights are and what data they expect.

`best.pt` holds the state dict alone (tensors only, so `torch.load(..., weights_only=True)`
reads it and a checkpoint cannot run code). `model.json` holds the rest: the model name, the
resolved config, the dataset spec the model was built from (task, label range, class names,
feature dims and padded lengths per modality, which text inputs it had), the feature file's
sha256 (or synthetic recipe), the extractor that wrote the file where known, and, for a
run configured with a BERT, that BERT's tokenizer. `run.py predict` rebuilds the model from
it and refuses features that do not fit.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..version import __version__
from ..config import config_hash
from ..data.extract.text import tokenizer_identity
from ..data.spec import DatasetSpec
from ..errors import DataError, UsageError
from ..models.common.bert import resolve_bert_path
from ..results import json_safe

MODEL_CARD = "model.json"
CARD_VERSION = 1


def bert_tokenizer(pretrained) -> dict | None:
    """The tokenizer identity of the BERT a config names, or None if it names none that is here."""
    if not pretrained:
        return None
    try:
        return tokenizer_identity(resolve_bert_path(pretrained))
    except UsageError:     # a config that names a BERT its model never loads (e.g. TFN on `text`)
        return None


def write_model_card(run_dir, model_name: str, config, spec: DatasetSpec) -> Path:
    """Write `<run_dir>/model.json` (see the module docstring)."""
    source = spec.source
    card = {
        "card_version": CARD_VERSION, "model": model_name, "package_version": __version__,
        "config_hash": config_hash(config), "config": dict(config),
        "task": spec.task, "dataset": spec.name, "label_range": spec.label_range,
        "label_names": spec.label_names, "feature_dims": spec.feature_dims, "seq_lens": spec.seq_lens,
        "data": source, "data_sha256": source.partition("sha256:")[2] or None,
        "extractor": spec.extractor,
        "tokenizer": bert_tokenizer(config.get("pretrained")) if spec.has_text_bert else None,
        "spec": dataclasses.asdict(spec),
    }
    path = Path(run_dir) / MODEL_CARD
    path.write_text(json.dumps(json_safe(card), indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return path


def read_model_card(run_dir) -> dict:
    """The card of a run folder, or a one-line DataError saying what is missing."""
    path = Path(run_dir) / MODEL_CARD
    if not path.is_file():
        raise DataError(f"{path} not found: the run folder has no model.json (runs trained before it existed "
                        f"cannot be used for prediction; train again)")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise DataError(f"{path} is not valid JSON ({e})") from None
    if card.get("card_version") != CARD_VERSION:
        raise DataError(f"{path}: card version {card.get('card_version')!r}, this version reads {CARD_VERSION}")
    return card


def spec_from_card(card: dict) -> DatasetSpec:
    """The DatasetSpec the model was built from (JSON lists back to tuples)."""
    fields = dict(card["spec"])
    for key in ("label_range", "label_names"):
        if fields.get(key) is not None:
            fields[key] = tuple(fields[key])
    return DatasetSpec(**fields)
