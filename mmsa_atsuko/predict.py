"""`run.py predict`: a trained run's predictions on new features or new videos.

The run is rebuilt from its folder alone: `model.json` (training/model_card.py) gives the
model name, config and the dataset spec it was built with, `best.pt` the weights (read with
`weights_only=True`). Before anything runs, the features must fit the checkpoint, or predict
stops with one line: the same feature dims and padded lengths per modality, the text input
the model reads (`text_bert` for a BERT model, `text` otherwise), the same extractor (name,
version, config hash; or both without one, e.g. MMSA's own files), and for a BERT model, ids
made by its tokenizer.

What the model sees: the file's frames, less what the run never saw: a modality outside its
`--modalities` subset is absent and a `--drop-modality` one zeroed, as in training (`_as_trained`).

Which samples: every sample of every split the file holds (train, valid, test, in that order;
a file extracted without labels holds only `test`), or the one `--split` names. With
`--videos`, the videos are first extracted into `<out>/features.pkl` with the checkpoint's
extractor settings (resumable, like `run.py extract`; `extract_for`, in predict_videos.py).

`predictions.csv`: id, split, pred, and label where the file has labels; for
classification `pred` is the class index, with `class_name` and `probability`. Beside it,
`predictions.json` names the run (id, folder, model, the data it trained on), the feature file
(path, sha256) the predictions came from and the code that made them (`git_commit`), and with --videos the
videos folder, the transcript CSV (path, sha256) and how many videos or rows were skipped (listed in
`features.skipped.txt`), so that a copied folder of predictions still says.

A run folder may come from anywhere. Before any work, `--out` must be a folder this user can
write whose `predictions.csv`, `predictions.json` (and, with --videos, `features.pkl`, its `.cache/` and
`features.skipped.txt`) is no symbolic link; predictions.csv is written whole through a fresh
temporary file. The card is checked as `read_model_card` says, and the model it describes is
compared with best.pt on the meta device before it is built (`load_checkpoint`).

A model of your own (`--models DIR`) whose files differ from those the run was trained with (the
card's `model_source`: the model file and every file of its folder that discovery imported) is
predicted with, and each file that differs is a warning (`code_changes`): the weights still fit, an
edit may be a comment, and the run's record names the code that trained them.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch
from easydict import EasyDict

from .atomic import replace_with
from .cache import sha256_of
from .code_version import git_commit
from .config import dataset_facts
from .data import load_dataset
from .data.conditions import OPTIONS, condition_tensors, make_condition
from .data.extract import skipped_report_path
from .data.extract.text import tokenizer_of
from .data.mmsa_format import load_for_prediction
from .data.stamp import synthetic_data_id
from .data.safe_checkpoint import load_weights
from .data.spec import Split
from .errors import DataError, UsageError
from .models.common.bert import bert_input_problem, reads_bert_tokens, shorter_texts
from .predict_videos import FEATURES, extract_with_provenance
from .results import check_output_folder, no_weights, open_new, read_records, run_path
from .training.checked_model import Described, build_checked
from .training.model_card import MODEL_CARD, read_model_card, spec_from_card
from .training.seed import resolve_device
from .user_models.source import source_changes
from .version import __version__

SPLIT_ORDER = ("train", "valid", "test")
PREDICTIONS = "predictions.csv"
PROVENANCE = "predictions.json"     # which run, model and feature file made predictions.csv
# What predict writes in --out: the predictions, and with --videos what extract writes beside its output.
OUTPUT_ENTRIES = (PREDICTIONS, PROVENANCE, FEATURES, f"{FEATURES}.cache/", skipped_report_path(Path(FEATURES)).name)
# How a message names the run's condition fields when model.json holds a bad one.
CARD_CONDITION = {key: f"model.json's spec.condition.{key}" for key in OPTIONS}


def run_folder(results=None, run_id: str | None = None, checkpoint=None) -> Path:
    """The run folder of `--run ID` (looked up in `<results>/runs.jsonl`) or of `--checkpoint DIR`."""
    if (run_id is None) == (checkpoint is None):
        raise UsageError("give exactly one of --run RUN_ID or --checkpoint DIR")
    if checkpoint is not None:
        folder = Path(checkpoint)
        folder = folder.parent if folder.is_file() else folder      # best.pt itself is fine too
        if not folder.is_dir():
            raise UsageError(f"checkpoint folder {checkpoint} not found")
        # Said here, else the card's reader reports a missing model.json as a run from before model.json existed.
        if not (folder / MODEL_CARD).exists() and not (folder / "best.pt").exists():
            if (folder / "runs.jsonl").is_file():
                raise UsageError(f"--checkpoint {checkpoint} is a results folder, not a run folder: give --run RUN_ID "
                                 f"--results {folder}, or --checkpoint {folder / 'runs' / 'RUN_ID'}")
            raise UsageError(f"--checkpoint {checkpoint} is not a run folder (no model.json or best.pt in it): "
                             f"give a folder under <results>/runs/, or --run RUN_ID --results DIR")
        return folder
    results = Path(results or "results")
    matches = [r for r in read_records(results) if r.get("run_id") == run_id and r.get("status") == "ok"]
    if not matches:
        raise UsageError(f"unknown run id {run_id!r}: no finished run of that id in {results / 'runs.jsonl'}")
    folder = run_path(results, matches[-1])        # inside --results, whatever the record says
    if matches[-1].get("checkpoint") == "none":
        raise UsageError(no_weights(folder / "best.pt", matches[-1]))
    return folder


def load_checkpoint(folder) -> tuple[dict, torch.nn.Module]:
    """(model.json, the model with best.pt loaded, in eval mode, on the CPU).

    A run folder may come from anywhere, and a card's config sizes the model: so the card is
    checked (`read_model_card`, its config held to the training checks), then best.pt read
    (`load_weights`, bounded by the file), then the model built through
    `training.checked_model.build_checked`: compared with the weights on the meta device, within a
    budget set by them, and built for real only if every shape matches."""
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
    problem = bert_input_problem(model, splits) if text_key == "text_bert" else None
    if problem and problem.positions:
        raise UsageError(f"{path}: {problem.line}, which the run reads: {shorter_texts(problem.positions)}")
    if problem:
        raise UsageError(f"{path}: {problem.line}, which the run reads: the features were not made for its BERT; "
                         f"extract them with it")


def _check_tokenizer(trained: dict, extractor: dict | None, splits: dict, path) -> None:
    made_by = tokenizer_of(extractor)
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


def _read_features(card: dict, features) -> tuple[dict, dict, dict | None, bool, str | None]:
    """(splits, shapes, extractor, labelled, data id) of a feature file (a folder for mintrec); the data id is
    `synthetic:<recipe>` for generated data, else None for an MMSA file (its sha256 is hashed once, later)."""
    name = card["dataset"]
    aligned = bool(card["spec"]["aligned"])
    if dataset_facts(name)["format"] == "mmsa":
        splits, shapes, extractor, recipe = load_for_prediction(name, features, aligned=aligned)
        return splits, shapes, extractor, (extractor or {}).get("labels", True), recipe and synthetic_data_id(recipe)
    data = load_dataset(name, aligned=aligned, feature_path=features, pretrained=card["config"].get("pretrained"))
    spec = data.spec
    keys = tuple(k for k in ("text", "text_bert") if k in data.train.tensors)
    shapes = {"text_keys": keys, **{f"{m}_len": spec.seq_lens[m] for m in spec.seq_lens},
              **{f"{m}_dim": spec.feature_dims[m] for m in spec.feature_dims}}
    return data.splits(), shapes, spec.extractor, True, spec.source


def _as_trained(card: dict, splits: dict) -> dict:
    """`splits` with the modalities the run never saw taken away as in training: those outside its subset
    (`--modalities`) absent, a dropped one (`--drop-modality`) zeroed. Fed the file's real frames there, its
    branch for them gave values it was never trained on. The missing rate is a noise protocol drawn per data
    file, not part of what the model is: it is not applied."""
    stored = card["spec"].get("condition") or {}
    condition = make_condition(drop_modality=stored.get("drop_modality"), modalities=stored.get("modalities") or "TAV",
                               names=CARD_CONDITION)
    if condition.plain:
        return splits
    return {name: Split(name, condition_tensors(split.tensors, data_id=card["spec"]["source"], split=name,
                                                condition=condition), split.ids) for name, split in splits.items()}


def extract_for(folder, videos, transcripts, out, *, bert=None, jobs: int = 1, max_clip_seconds: float | None = None,
                echo=print, loaded=None) -> Path:
    """`<out>/features.pkl`, `videos` extracted with the run's settings (predict_videos.extract_with_provenance)."""
    check_output(out)
    return extract_with_provenance(folder, videos, transcripts, out, loaded=loaded or load_checkpoint(folder),
                                   bert=bert, jobs=jobs, max_clip_seconds=max_clip_seconds, echo=echo)[0]


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
    splits, shapes, extractor, labelled, data_id = _read_features(card, features)
    check_features(card, model, shapes, extractor, splits, features)
    splits = _as_trained(card, splits)
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
            columns.update(pred=index.numpy(), class_name=[names[i] if names else str(i) for i in index.tolist()],
                           probability=top.numpy())
        else:
            columns["pred"] = preds.reshape(-1).numpy()
        if labelled:
            columns["label"] = data.tensors["label"].cpu().numpy()
        frames.append(pd.DataFrame(columns))
    table = pd.concat(frames, ignore_index=True)
    out.mkdir(parents=True, exist_ok=True)
    path = out / PREDICTIONS
    # Written first: a predictions.csv is never beside the provenance of another call's.
    said = {**_provenance(folder, card, features, data_id, table), **(videos or {})}
    provenance = json.dumps(said, indent=1, ensure_ascii=False) + "\n"

    def write_provenance(tmp: Path) -> None:
        with open_new(tmp, "w", encoding="utf-8") as f:
            f.write(provenance)

    def write(tmp: Path) -> None:
        with open_new(tmp, "w", newline="", encoding="utf-8") as f:
            table.to_csv(f, index=False, float_format="%.9g")

    path.unlink(missing_ok=True)
    replace_with(out / PROVENANCE, write_provenance)
    replace_with(path, write)      # whole or not at all, and a link planted since the check is replaced, not followed
    return path, said


def _provenance(folder, card: dict, features, data_id: str | None, table: pd.DataFrame) -> dict:
    """What predictions.json says: the run (its folder, model and the data it trained on) and the feature
    file (path, sha256 and data id) behind predictions.csv, and how many samples of each split it holds.
    `features_data` is the data id as `trained_on` gives the run's: predictions on generated data say so."""
    features = Path(features).resolve()
    sha256 = sha256_of(features) if features.is_file() else None
    return {"run_id": Path(folder).resolve().name, "run_folder": str(Path(folder).resolve()), "model": card["model"],
            "dataset": card["dataset"], "trained_on": card.get("data"), "features": str(features),
            "features_sha256": sha256, "features_data": data_id or f"sha256:{sha256}",
            "samples": {name: int(n) for name, n in table.split.value_counts(sort=False).items()},
            "package_version": __version__, "git_commit": git_commit(),
            "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def check_output(out) -> Path:
    """`out` as a Path, or a one-line UsageError before any work: a file where the folder goes, a
    folder this user cannot write, or a symbolic link (or a folder) where predict writes a file."""
    return check_output_folder(out, "output folder", OUTPUT_ENTRIES)

