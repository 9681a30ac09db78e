"""Whether a feature file fits a checkpoint, and what of it the run's model sees.

Before anything runs, the features must fit the checkpoint, or predict stops with one line
(`check_features`): the same feature dims and padded lengths per modality, the text input the model
reads (`text_bert` for a BERT model, `text` otherwise), the same extractor (name, version, config
hash; or both without one, e.g. MMSA's own files), and for a BERT model, ids made by its tokenizer.

What the model sees: the file's frames, less what the run never saw: a modality outside its
`--modalities` subset is absent and a `--drop-modality` one zeroed, as in training (`as_trained`).
"""
from __future__ import annotations

from ..config import dataset_facts
from ..data import load_dataset, warn_huge_splits
from ..data.conditions import OPTIONS, condition_tensors, make_condition
from ..data.extract.text import tokenizer_of
from ..data.mmsa_format import load_for_prediction
from ..data.spec import Split
from ..data.stamp import synthetic_data_id
from ..errors import UsageError
from ..models.common.bert import bert_input_problem, reads_bert_tokens, shorter_texts

# How a message names the run's condition fields when model.json holds a bad one.
CARD_CONDITION = {key: f"model.json's spec.condition.{key}" for key in OPTIONS}


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


def read_features(card: dict, features, split: str | None = None) -> tuple[dict, dict, dict | None, bool, str | None]:
    """(splits, shapes, extractor, labelled, data id) of a feature file (a folder for mintrec); the data id is
    `synthetic:<recipe>` for generated data, else None for an MMSA file (its sha256 is hashed once, later).
    `split`: of an MMSA file, that split alone is read and checked (predict needs no other, nor any label)."""
    name = card["dataset"]
    aligned = bool(card["spec"]["aligned"])
    if dataset_facts(name)["format"] == "mmsa":
        splits, shapes, extractor, recipe = load_for_prediction(name, features, aligned=aligned, split=split)
        warn_huge_splits(name, splits.values())      # as a run warns of them (load_dataset does, for a folder)
        labelled = (extractor or {}).get("labels", True) and all("label" in s.tensors for s in splits.values())
        return splits, shapes, extractor, labelled, recipe and synthetic_data_id(recipe)
    data = load_dataset(name, aligned=aligned, feature_path=features, pretrained=card["config"].get("pretrained"))
    spec = data.spec
    keys = tuple(k for k in ("text", "text_bert") if k in data.train.tensors)
    shapes = {"text_keys": keys, **{f"{m}_len": spec.seq_lens[m] for m in spec.seq_lens},
              **{f"{m}_dim": spec.feature_dims[m] for m in spec.feature_dims}}
    return data.splits(), shapes, spec.extractor, True, spec.source


def as_trained(card: dict, splits: dict) -> dict:
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
