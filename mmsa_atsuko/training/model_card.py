"""`model.json` beside a run's `best.pt`: what the weights are and what data they expect.

`best.pt` holds the state dict alone (tensors only, so `torch.load(..., weights_only=True)`
reads it and a checkpoint cannot run code). `model.json` holds the rest: the model name, the
resolved config, the dataset spec the model was built from (task, label range, class names,
feature dims and padded lengths per modality, which text inputs it had), the feature file's
sha256 (or synthetic recipe), the extractor that wrote the file where known, and, for a
run configured with a BERT, that BERT's tokenizer, and for a model of your own (`--models DIR`) the
code it was trained with (`model_source`; absent from cards written before it, null for the toolkit's
models). `run.py predict` rebuilds the model from it, refuses features that do not fit, and warns
where the model's code is not that code.

A run folder may come from anywhere, so `read_model_card` holds a card to what this module
writes before anything uses it: at most MAX_CARD_BYTES, a JSON object, every field predict reads
present with its type, the spec's dims and task those of the card, and the config held to the
checks training applies (`config.check_config`, `check_trainer_config`). Anything else is one
DataError line naming the file.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

from ..version import __version__
from ..config import check_config, config_hash, dataset_facts
from ..data.extract.text import is_tokenizer_identity, same_tokenizer, tokenizer_identity, tokenizer_of
from ..data.formula_ids import refuse_formula_ids
from ..data.spec import DatasetSpec
from ..errors import DataError, UsageError, one_line
from ..models.common.bert import resolve_bert_path
from ..results import json_safe, open_new, show
from ..user_models.source import model_source, recorded_files
from .trainer_config import check_trainer_config

MODEL_CARD = "model.json"
CARD_VERSION = 1
# A card is a few KiB (MIntRec's 20 class names included); anything far larger is no card of ours,
# and parsing it would cost memory in proportion.
MAX_CARD_BYTES = 1 << 20
NOT_OURS = "it is not a model.json this toolkit wrote; train the run again"
MODALITIES = ("text", "audio", "vision")


def check_tokenizer(spec: DatasetSpec, pretrained) -> None:
    """One UsageError line, before a run starts, when the `text_bert` ids of an extracted feature file
    come from another tokenizer than the BERT `pretrained` that will read them: the run would train on one
    vocabulary's ids looked up in another's embedding table, without an error (predict refuses the same
    pairing at its end). A file that does not say which tokenizer made it is not checked."""
    made_by = tokenizer_of(spec.extractor)
    reading = bert_tokenizer(pretrained) if made_by is not None else None
    if reading is not None and not same_tokenizer(made_by, reading):
        raise UsageError(f"{spec.path}: its text ids come from another tokenizer ({made_by['file']} of "
                         f"{made_by['vocab_size']} tokens, sha256 {made_by['sha256'][:12]}) than the BERT {pretrained} "
                         f"({reading['vocab_size']} tokens, sha256 {reading['sha256'][:12]}): give -c pretrained= the "
                         f"BERT the file was extracted with (extract --bert), or extract it again with this one")


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
        "spec": dataclasses.asdict(spec), "model_source": model_source(model_name),
    }
    path = Path(run_dir) / MODEL_CARD
    with open_new(path, "w", encoding="utf-8") as f:        # never through a link planted in a shared folder
        f.write(json.dumps(json_safe(card), indent=1, allow_nan=False) + "\n")
    return path


def read_model_card(run_dir) -> dict:
    """The card of a run folder, checked (see the module docstring), or a one-line DataError
    saying what is missing or wrong. Its config is the checked one."""
    path = Path(run_dir) / MODEL_CARD
    if path.exists() and not path.is_file():       # a named pipe would block the read, a device never end
        raise DataError(f"{path} is no regular file: {NOT_OURS}")
    if not path.is_file():
        raise DataError(f"{path} not found: the run folder has no model.json (runs trained before it existed "
                        f"cannot be used for prediction; train again)")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CARD_BYTES + 1)
    except OSError as e:
        raise DataError(f"{path} cannot be read ({e.strerror or type(e).__name__})") from None
    if len(raw) > MAX_CARD_BYTES:
        raise DataError(f"{path} is larger than {MAX_CARD_BYTES >> 10} KiB, and a model card is a few KiB: {NOT_OURS}")
    try:
        card = json.loads(raw.decode("utf-8"))
    except ValueError as e:          # UnicodeDecodeError and an over-long integer are ValueErrors too
        raise DataError(f"{path} is not valid JSON ({one_line(e)})") from None
    except RecursionError:           # nesting deeper than the parser's stack
        raise DataError(f"{path} nests deeper than a JSON reader goes: {NOT_OURS}") from None
    if not isinstance(card, dict):
        raise DataError(f"{path} holds {show(card)}, not a JSON object: {NOT_OURS}")
    if card.get("card_version") != CARD_VERSION:
        raise DataError(f"{path}: card version {show(card.get('card_version'))}, this version reads {CARD_VERSION}")
    try:
        _check_card(card, path)
        _check_label_names(card["label_names"], dataset_facts(card["dataset"]).get("label_names"), path)
        card["config"] = check_run_config(card["model"], card["config"], card["dataset"], f"{path} config")
    except UsageError as e:          # a card names no model or dataset known here, or a config that cannot run
        message = str(e)
        raise DataError(message if message.startswith(str(path)) else f"{path}: {message}") from None
    return card


def check_run_config(model: str, config, dataset: str, where: str) -> dict:
    """A config written elsewhere (a model.json's, a runs.jsonl record's) through the checks a
    training run's config passes (`check_config`, `check_trainer_config`): the checked config, or
    one UsageError line starting with `where`."""
    config = check_config(model, config, where)
    try:
        check_trainer_config(config, dataset)
    except UsageError as e:
        raise UsageError(f"{where}: {e}") from None
    return dict(config)


def _is_int(value, low: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _is_finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _dims(value) -> bool:
    """{'text': n, 'audio': n, 'vision': n} with positive integers."""
    return isinstance(value, dict) and set(value) == set(MODALITIES) and all(_is_int(v) for v in value.values())


def _label_names(value) -> bool:
    return value is None or isinstance(value, list) and all(isinstance(v, str) for v in value)


def _label_range(value) -> bool:
    return value is None or isinstance(value, list) and len(value) == 2 and all(map(_is_finite_number, value))


def _extractor(value) -> bool:
    """None, or the record `extract` writes: name, version, config hash (and its settings)."""
    return value is None or (isinstance(value, dict) and isinstance(value.get("name"), str)
                             and isinstance(value.get("version"), (int, str)) and not isinstance(value["version"], bool)
                             and isinstance(value.get("config_hash"), str)
                             and isinstance(value.get("config", {}), (dict, type(None)))
                             and isinstance(value.get("bert"), (str, type(None))))


def _tokenizer(value) -> bool:
    return value is None or is_tokenizer_identity(value) and _is_int(value["vocab_size"])


def _model_source(value) -> bool:
    """None, or what `user_models.source.model_source` gives (path, sha256 and files, path -> sha256), as the one
    reader of a recorded source reads it (`user_models.source.recorded_files`): a card whose digests were not 64 hex
    digits passed here, and predict then took it for no record of the model's code."""
    return value is None or recorded_files(value) is not None


def _string(value) -> bool:
    return isinstance(value, str)


def _bool(value) -> bool:
    return isinstance(value, bool)


def _task(value) -> bool:
    return value in ("regression", "classification")


# field -> (its check, what it must be): the card's own fields, then those of its spec.
CARD_FIELDS = {
    "model": (lambda v: isinstance(v, str) and 0 < len(v) <= 64, "a model name"),
    "dataset": (lambda v: isinstance(v, str) and 0 < len(v) <= 64, "a dataset name"),
    "task": (_task, "regression or classification"),
    "config": (lambda v: isinstance(v, dict), "an object of config key -> value"),
    "feature_dims": (_dims, "an object of text, audio and vision -> a positive integer"),
    "seq_lens": (_dims, "an object of text, audio and vision -> a positive integer"),
    "label_names": (_label_names, "null or a list of class names"),
    "extractor": (_extractor, "null or an extractor record (name, version, config_hash)"),
    "tokenizer": (_tokenizer, "null or a tokenizer record (file, sha256, vocab_size)"),
    "spec": (lambda v: isinstance(v, dict), "an object (the dataset spec)"),
}
SPEC_FIELDS = {
    "name": (_string, "a dataset name"), "task": (_task, "regression or classification"),
    "num_classes": (_is_int, "a positive integer"), "label_range": (_label_range, "null or [low, high]"),
    "feature_dims": CARD_FIELDS["feature_dims"], "seq_lens": CARD_FIELDS["seq_lens"],
    "aligned": (_bool, "true or false"), "language": (_string, "a string"), "key_metric": (_string, "a string"),
    "has_text_bert": (_bool, "true or false"), "has_text_features": (_bool, "true or false"),
    "unimodal_labels": (_bool, "true or false"), "source": (_string, "a string"), "path": (_string, "a string"),
    "split_sizes": (lambda v: isinstance(v, dict), "an object"), "label_names": CARD_FIELDS["label_names"],
    "synthetic": (_bool, "true or false"), "extractor": CARD_FIELDS["extractor"],
    "condition": (lambda v: isinstance(v, dict), "an object"),
}


def _check_card(card: dict, path: Path) -> None:
    """DataError (one line) unless the fields predict reads have their types and agree with the spec."""
    def bad(field: str, what: str, value):
        raise DataError(f"{path}: {field} must be {what}, got {show(value)}: {NOT_OURS}")

    for field, (ok, what) in CARD_FIELDS.items():
        if field not in card:
            raise DataError(f"{path} has no {field}: {NOT_OURS}")
        if not ok(card[field]):
            bad(field, what, card[field])
    if not _model_source(card.get("model_source")):        # optional: cards written before it have none
        bad("model_source", "null or a model source record (path, sha256, files)", card["model_source"])
    spec = card["spec"]
    required = {f.name for f in dataclasses.fields(DatasetSpec)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    missing, unknown = sorted(required - set(spec)), sorted(set(spec) - set(SPEC_FIELDS))
    if missing or unknown:
        raise DataError(f"{path}: spec "
                        f"{f'lacks {missing[0]}' if missing else f'has an unknown field {show(unknown[0])}'}"
                        f": {NOT_OURS}")
    for field, value in spec.items():
        ok, what = SPEC_FIELDS[field]
        if not ok(value):
            bad(f"spec.{field}", what, value)
    for field in ("task", "feature_dims", "seq_lens", "label_names"):
        if spec.get(field) != card[field]:
            raise DataError(f"{path}: {field} and spec.{field} differ: {NOT_OURS}")
    if spec["name"] != str(card["dataset"]).lower():
        raise DataError(f"{path}: dataset and spec.name differ: {NOT_OURS}")
    if card["label_names"] is not None and card["task"] == "classification" \
            and len(card["label_names"]) != spec["num_classes"]:
        raise DataError(f"{path}: {len(card['label_names'])} label names for {spec['num_classes']} classes: {NOT_OURS}")


_CLASS_NAME = re.compile(r"[^\x00-\x1f\x7f-\x9f]{1,200}")      # one line, no terminal control character


def _check_label_names(names, declared, path: Path) -> None:
    """DataError (one line) unless a card's class names are names predictions.csv may list as they are (its
    `class_name` column: one line each, none a spreadsheet runs as a formula, `data/formula_ids.py`'s rule for ids)
    and, where the dataset declares its classes (configs/datasets.yaml `label_names`, or a --datasets FILE), those."""
    if names is None:
        return
    for i, name in enumerate(names):
        if not _CLASS_NAME.fullmatch(name):
            raise DataError(f"{path}: label_names[{i}] must be a class name of one line (1 to 200 characters, no "
                            f"control character), got {show(name)}: {NOT_OURS}")
    refuse_formula_ids(names, lambda i: f"{path}: label_names[{i}]",
                       "train the run again with the class renamed in its dataset's label_names")
    if declared is not None and list(names) != list(declared):
        raise DataError(f"{path}: its {len(names)} label_names are not the {len(declared)} classes its dataset "
                        f"declares, in that order (configs/datasets.yaml, or a --datasets FILE): {NOT_OURS}")


def spec_from_card(card: dict) -> DatasetSpec:
    """The DatasetSpec the model was built from (JSON lists back to tuples)."""
    fields = dict(card["spec"])
    for key in ("label_range", "label_names"):
        if fields.get(key) is not None:
            fields[key] = tuple(fields[key])
    return DatasetSpec(**fields)
