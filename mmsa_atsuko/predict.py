"""`run.py predict`: a trained run's predictions on new features or new videos.

The run is rebuilt from its folder alone: `model.json` (training/model_card.py) gives the
model name, config and the dataset spec it was built with, `best.pt` the weights (read with
`weights_only=True`). Before anything runs, the features must fit the checkpoint, or predict
stops with one line: the same feature dims and padded lengths per modality, the text input
the model reads (`text_bert` for a BERT model, `text` otherwise), the same extractor (name,
version, config hash; or both without one, e.g. MMSA's own files), and for a BERT model, ids
made by its tokenizer.

Which samples: every sample of every split the file holds (train, valid, test, in that order;
a file extracted without labels holds only `test`), or the one `--split` names. With
`--videos`, the videos are first extracted into `<out>/features.pkl` with the checkpoint's
extractor settings (resumable, like `run.py extract`).

`predictions.csv`: id, split, prediction, and label where the file has labels; for
classification the prediction is the class index, with `class_name` and `probability`.

A run folder may come from anywhere. Before any work, `--out` must be a folder this user can
write whose `predictions.csv` (and, with --videos, `features.pkl`, its `.cache/` and
`features.skipped.txt`) is no symbolic link; predictions.csv is written whole through a fresh
temporary file. The card is checked as `read_model_card` says, and the model it describes is
compared with best.pt on the meta device before it is built (`load_checkpoint`).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from easydict import EasyDict

from .atomic import replace_with
from .config import dataset_facts
from .data import load_dataset
from .data.extract import skipped_report_path
from .data.mmsa_format import load_for_prediction
from .data.safe_checkpoint import load_weights
from .errors import DataError, ToolkitError, UsageError
from .models.common.bert import reads_bert_tokens
from .registry import build_model
from .results import check_output_folder, open_new, read_records, run_path, show
from .training.model_card import MODEL_CARD, NOT_OURS, read_model_card, spec_from_card
from .training.seed import resolve_device

SPLIT_ORDER = ("train", "valid", "test")
PREDICTIONS = "predictions.csv"
FEATURES = "features.pkl"
# What predict writes in --out: the predictions, and with --videos what extract writes beside its output.
OUTPUT_ENTRIES = (PREDICTIONS, FEATURES, f"{FEATURES}.cache/", skipped_report_path(Path(FEATURES)).name)


def run_folder(results=None, run_id: str | None = None, checkpoint=None) -> Path:
    """The run folder of `--run ID` (looked up in `<results>/runs.jsonl`) or of `--checkpoint DIR`."""
    if (run_id is None) == (checkpoint is None):
        raise UsageError("give exactly one of --run RUN_ID or --checkpoint DIR")
    if checkpoint is not None:
        folder = Path(checkpoint)
        folder = folder.parent if folder.is_file() else folder      # best.pt itself is fine too
        if not folder.is_dir():
            raise UsageError(f"checkpoint folder {checkpoint} not found")
        return folder
    results = Path(results or "results")
    matches = [r for r in read_records(results) if r.get("run_id") == run_id and r.get("status") == "ok"]
    if not matches:
        raise UsageError(f"unknown run id {run_id!r}: no finished run of that id in {results / 'runs.jsonl'}")
    return run_path(results, matches[-1])          # inside --results, whatever the record says


def load_checkpoint(folder) -> tuple[dict, torch.nn.Module]:
    """(model.json, the model with best.pt loaded, in eval mode, on the CPU).

    A run folder may come from anywhere, and a card's config sizes the model: so the card is
    checked (`read_model_card`), then best.pt read (`load_weights`, bounded by the file), then the
    model the card describes built on the meta device, within a budget set by the weights, and
    compared with them tensor by tensor; only a model whose every shape matches is built for
    real, at the cost of the weights the user holds (module docstring of models/common/meta.py)."""
    card = read_model_card(folder)
    card_path = Path(folder) / MODEL_CARD
    weights = Path(folder) / "best.pt"
    if not weights.is_file():
        raise DataError(f"{weights} not found: the run folder has model.json but no weights")
    state = load_weights(weights)          # checked first: a hostile best.pt is one line

    def not_these(why: str) -> DataError:
        return DataError(f"{weights} is not the weights of the {card['model']} in {card_path} ({why})")

    if not (isinstance(state, dict) and state
            and all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items())):
        raise not_these("it holds no state dict of named tensors")
    config, spec = EasyDict(card["config"]), spec_from_card(card)
    _check_sizes(card, spec, state, card_path)
    with torch.device("meta"):
        shapes = _build(card, config, spec, card_path, budget=len(state))
    wrong = _shape_difference(shapes, state)
    if wrong:
        raise not_these(wrong)
    persistent = sum(v.numel() for v in state.values())
    every = sum(t.numel() for t in (*shapes.parameters(), *shapes.buffers()))
    if every - persistent > EXTRA_ELEMENTS_PER_WEIGHT * persistent + EXTRA_ELEMENTS:
        raise DataError(f"{card_path}: its {card['model']} would hold {every:,} values beside the {persistent:,} "
                        f"of {weights}: not a model this toolkit trains; train the run again")
    del shapes
    model = _build(card, config, spec, card_path)
    try:
        model.load_state_dict(state)
    except Exception as e:          # shapes matched; a value the model itself refuses (e.g. Atsuko's lengths)
        raise not_these(f"{type(e).__name__}: {' '.join(str(e).split())[:160]}") from None
    return card, model.eval()


# What a model may hold beyond its state dict (non-persistent buffers, such as Atsuko's band
# projectors: num_bands times its spectral bases): this many values per value of the weights, plus
# a fixed allowance. Every shipped model stays under 2 per value (Atsuko at MOSEI's lengths: 1.2;
# tests/test_predict.py).
EXTRA_ELEMENTS_PER_WEIGHT = 8
EXTRA_ELEMENTS = 1 << 24


class _OverBudget(Exception):
    pass


def _build(card: dict, config, spec, card_path: Path, budget: int | None = None) -> torch.nn.Module:
    """`build_model` of the card, any failure one DataError line naming the card. With `budget`
    (the number of tensors of the weights), a build that registers far more tensors or modules than
    that is stopped as it goes: on the meta device, a card's layer count alone could take hours."""
    handles = []
    if budget is not None:
        counts = {"tensors": 0, "modules": 0}
        limit = 2 * budget + 64

        def count(kind: str):
            def hook(*_):
                counts[kind] += 1
                if counts[kind] > limit:
                    raise _OverBudget(f"more than {limit} {kind}")
            return hook

        registration = torch.nn.modules.module
        handles = [registration.register_module_parameter_registration_hook(count("tensors")),
                   registration.register_module_buffer_registration_hook(count("tensors")),
                   registration.register_module_module_registration_hook(count("modules"))]
    try:
        return build_model(card["model"], config, spec)
    except _OverBudget as e:
        raise DataError(f"{card_path}: its {card['model']} has {e}, and best.pt holds {budget} tensors: "
                        f"the card does not describe these weights") from None
    except ToolkitError as e:      # e.g. a kernel longer than the card's sequence length
        raise DataError(f"{card_path}: {e}") from None
    except Exception as e:         # values that pass the config checks but build no model
        raise DataError(f"{card_path}: its {card['model']} cannot be built "
                        f"({type(e).__name__}: {' '.join(str(e).split())[:160]})") from None
    finally:
        for handle in handles:
            handle.remove()


def _check_sizes(card: dict, spec, state: dict, card_path: Path) -> None:
    """DataError unless every integer of the card's config and dims is at most the number of values
    the weights hold: a model's sizes never exceed its parameter count, and a build loops over some
    of them in Python (one list entry per band), where no meta device helps."""
    total = sum(v.numel() for v in state.values())
    sizes = [(key, v) for key, value in card["config"].items() for v in (value if isinstance(value, list) else [value])]
    sizes += [(f"spec {name} {m}", n) for name in ("feature_dims", "seq_lens") for m, n in getattr(spec, name).items()]
    sizes.append(("spec num_classes", spec.num_classes))
    for key, value in sizes:
        if isinstance(value, int) and not isinstance(value, bool) and value > total:
            raise DataError(f"{card_path}: {key} is {show(value)}, more than the {total} values of its best.pt: "
                            f"the card does not describe these weights")


def _shape_difference(model: torch.nn.Module, state: dict) -> str | None:
    """What differs between the model's state dict (on any device) and `state`, or None."""
    want = model.state_dict()
    missing, unexpected = [k for k in want if k not in state], [k for k in state if k not in want]
    if missing:
        return f"it lacks {len(missing)} of the model's tensors, e.g. {show(missing[0])}"
    if unexpected:
        return f"it holds {len(unexpected)} tensors the model lacks, e.g. {show(unexpected[0])}"
    for key, tensor in want.items():
        if tuple(tensor.shape) != tuple(state[key].shape):
            return (f"{show(key)} is {tuple(state[key].shape)} in the weights and {tuple(tensor.shape)} "
                    f"in the model the card describes")
    return None


def _describe(extractor: dict | None) -> str:
    if not extractor:
        return "no extractor record (e.g. MMSA's published files)"
    return f"{extractor['name']} v{extractor['version']}, config {extractor['config_hash']}"


def _same_extractor(a: dict | None, b: dict | None) -> bool:
    keys = ("name", "version", "config_hash")
    return (a is None) == (b is None) and (a is None or all(a[k] == b[k] for k in keys))


def check_features(card: dict, model, shapes: dict, extractor: dict | None, splits: dict, path) -> None:
    """Raise UsageError (one line) unless the features are what the checkpoint was trained on."""
    text_key = "text_bert" if reads_bert_tokens(model) else "text"
    if text_key not in shapes["text_keys"]:
        raise UsageError(f"{path} has no '{text_key}', which {card['model']} reads "
                         f"(it holds {', '.join(shapes['text_keys'])})")
    for modality in ("text", "audio", "vision"):
        want = (card["seq_lens"][modality], card["feature_dims"][modality])
        got = (shapes[f"{modality}_len"], shapes[f"{modality}_dim"])
        if modality == "text" and text_key == "text_bert":
            want, got = want[:1], got[:1]        # BERT ids have no feature dim
        if tuple(want) != tuple(got):
            raise UsageError(f"{path}: {modality} is (length, dim) {tuple(got)}, the checkpoint expects "
                             f"{tuple(want)}: extract the features with the settings it was trained with")
    if not _same_extractor(card.get("extractor"), extractor):
        raise UsageError(f"{path} comes from {_describe(extractor)}, the checkpoint was trained on features "
                         f"from {_describe(card.get('extractor'))}: use features from the same extractor settings")
    if text_key == "text_bert" and card.get("tokenizer"):
        _check_tokenizer(card["tokenizer"], extractor, splits, path)


def _check_tokenizer(trained: dict, extractor: dict | None, splits: dict, path) -> None:
    made_by = ((extractor or {}).get("config") or {}).get("text", {}).get("tokenizer")
    if made_by is not None:
        if made_by["sha256"] != trained["sha256"]:
            raise UsageError(f"{path}: its text ids come from another tokenizer ({made_by['file']} of "
                             f"{made_by['vocab_size']} tokens, sha256 {made_by['sha256'][:12]}) than the model's "
                             f"BERT ({trained['vocab_size']} tokens, sha256 {trained['sha256'][:12]}): extract "
                             f"with the BERT the model was trained with")
        return
    # A file with no extractor record says nothing of its tokenizer; ids past the vocabulary surely differ.
    top = max(int(s.tensors["text_bert"][:, 0].max()) for s in splits.values())
    if top >= trained["vocab_size"]:
        raise UsageError(f"{path}: text id {top} is outside the model's BERT vocabulary of "
                         f"{trained['vocab_size']} tokens: the ids come from another tokenizer")


def _read_features(card: dict, features) -> tuple[dict, dict, dict | None, bool]:
    """(splits, shapes, extractor, labelled) of a feature file (a folder for mintrec)."""
    name = card["dataset"]
    aligned = bool(card["spec"]["aligned"])
    if dataset_facts(name)["format"] == "mmsa":
        splits, shapes, extractor = load_for_prediction(name, features, aligned=aligned)
        return splits, shapes, extractor, (extractor or {}).get("labels", True)
    data = load_dataset(name, aligned=aligned, feature_path=features, pretrained=card["config"].get("pretrained"))
    spec = data.spec
    keys = tuple(k for k in ("text", "text_bert") if k in data.train.tensors)
    shapes = {"text_keys": keys, **{f"{m}_len": spec.seq_lens[m] for m in spec.seq_lens},
              **{f"{m}_dim": spec.feature_dims[m] for m in spec.feature_dims}}
    return data.splits(), shapes, spec.extractor, True


@torch.no_grad()
def predict_file(folder, features, out, *, split: str | None = None, device="cpu") -> Path:
    """Predict every sample of `features` (or of its `split`) with the run in `folder`;
    write `<out>/predictions.csv` and return its path."""
    out = check_output(out)
    card, model = load_checkpoint(folder)
    splits, shapes, extractor, labelled = _read_features(card, features)
    check_features(card, model, shapes, extractor, splits, features)
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
        columns = {"id": data.ids, "split": name}
        if classification:
            probs = preds.softmax(dim=1)
            top, index = probs.max(dim=1)
            columns.update(prediction=index.numpy(), class_name=[names[i] if names else str(i) for i in index.tolist()],
                           probability=top.numpy())
        else:
            columns["prediction"] = preds.reshape(-1).numpy()
        if labelled:
            columns["label"] = data.tensors["label"].cpu().numpy()
        frames.append(pd.DataFrame(columns))
    table = pd.concat(frames, ignore_index=True)
    out.mkdir(parents=True, exist_ok=True)
    path = out / PREDICTIONS

    def write(tmp: Path) -> None:
        with open_new(tmp, "w", newline="", encoding="utf-8") as f:
            table.to_csv(f, index=False, float_format="%.9g")

    replace_with(path, write)      # whole or not at all, and a link planted since the check is replaced, not followed
    return path


def check_output(out) -> Path:
    """`out` as a Path, or a one-line UsageError before any work: a file where the folder goes, a
    folder this user cannot write, or a symbolic link (or a folder) where predict writes a file."""
    return check_output_folder(out, "output folder", OUTPUT_ENTRIES)


def extract_for(folder, videos, transcripts, out, *, bert=None, jobs: int = 1, max_clip_seconds: float | None = None,
                echo=print) -> Path:
    """Extract `videos` into `<out>/features.pkl` with the extractor settings of the run in `folder`
    (`max_clip_seconds`: extract's limit on a clip, None for its default)."""
    from .data.extract import ExtractConfig, extract, media
    check_output(out)
    card, _ = load_checkpoint(folder)      # card and weights checked before minutes of extraction
    trained = card.get("extractor")
    if not trained or not trained.get("config"):
        raise UsageError(f"the run in {folder} was trained on features that run.py extract did not write "
                         f"({card.get('data')}): its features cannot be made from videos here; pass --features")
    settings = trained["config"]
    kinds = {"str": (str,), "int": (int,), "float": (int, float)}
    for key, field in ExtractConfig.__dataclass_fields__.items():
        value = settings.get(key)
        if not isinstance(value, kinds[field.type]) or isinstance(value, bool):
            raise DataError(f"{Path(folder) / MODEL_CARD}: extractor.config.{key} must be a {field.type}, "
                            f"got {show(value)}: {NOT_OURS}")
    lengths = {m: settings[f"{m}_len"] for m in ("text", "audio", "vision")}
    if lengths != card["seq_lens"]:          # the padded lengths of the features the model was trained on
        raise DataError(f"{Path(folder) / MODEL_CARD}: the extractor's lengths {lengths} are not the card's "
                        f"seq_lens {card['seq_lens']}: {NOT_OURS}")
    config = ExtractConfig(**{k: settings[k] for k in ExtractConfig.__dataclass_fields__})
    result = extract(videos, transcripts, Path(out) / FEATURES, bert=bert or trained.get("bert"),
                     config=config, jobs=jobs, echo=echo,
                     max_clip_seconds=media.MAX_CLIP_SECONDS if max_clip_seconds is None else max_clip_seconds)
    return result.path
