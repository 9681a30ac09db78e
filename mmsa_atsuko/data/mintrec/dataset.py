"""`load_mintrec`: a MIntRec folder read, checked in order (cheap first) and assembled into a `Dataset`.

The dataset's `source` is `sha256:` + `folder_digest` (a sha256 over the five files' sha256s), or
`synthetic:<recipe>` for a folder `synthetic_mintrec` wrote, proven by the stamp in its synthetic.json:
the recipe and the folder digest of the five files (see stamp.py). Only such a folder's synthetic.json
sets the padded lengths (`synthetic_marker`); nothing else in the folder is read, and nothing is written
there (the text features are cached in the user's cache folder, text.py). The readers are tables.py,
text.py and frames.py; this module only orders them and builds the tensors and the spec.
"""
from __future__ import annotations


import torch

from ...errors import DataError, MissingDataError
from ..spec import MODALITIES, Dataset, DatasetSpec, Split
from ..stamp import stamped_recipe, synthetic_data_id
from .folder import (FEATURE_FILES, NAME, SOURCE_HINT, SPLITS, SYNTHETIC_MARKER, TSV_FILES, folder_digest, label_names,
                     missing_files, mintrec_facts, resolve_mintrec_folder, synthetic_marker)
from .frames import read_feature_file
from .tables import check_keys_unique, label_ids, read_tsv
from .text import cached_text_features, load_tokenizer, tokenize


def load_mintrec(data_root=None, feature_path=None, *, pretrained=None, with_text_features: bool = True) -> Dataset:
    """Read, validate and convert a MIntRec folder; see the module docstring.

    `pretrained`: the BERT whose tokenizer (and, for `text`, encoder) is used: a local folder
    or a hub id already in the Hugging Face cache; default datasets.yaml's bert-base-uncased.
    `with_text_features=False` skips the `text` features (only `text_bert` is kept).
    """
    from ...models.common.bert import resolve_bert_path
    from ...models.common.bert_weights import bert_config
    from ...models.common.tokenizer_panics import tokenizer_panics_as_line

    folder, how = resolve_mintrec_folder(data_root, feature_path)
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "not found"
        message = (f"mintrec folder {what} at {folder} ({how}): {SOURCE_HINT} and put it there, "
                   f"or run with --synthetic")
        if folder.exists():
            raise DataError(message)
        raise MissingDataError(message, what="mintrec folder", path=folder)
    lacking = missing_files(folder)
    if lacking:
        raise DataError(f"mintrec folder {folder} ({how}) lacks {', '.join(lacking)}: it must hold "
                        f"{', '.join([*TSV_FILES.values(), *FEATURE_FILES.values()])}; {SOURCE_HINT}")
    max_lens, stamp, marker_recipe = synthetic_marker(folder)

    # Cheap checks first: TSVs, labels, the BERT path; the big pickles after.
    rows = {split: read_tsv(folder / TSV_FILES[split], split) for split in SPLITS}
    check_keys_unique(folder, rows)
    labels = label_ids(folder, rows)
    bert_path = resolve_bert_path(pretrained or mintrec_facts()["config"]["pretrained"])
    hidden = bert_config(bert_path).hidden_size     # config.json read bounded, its sizes checked: the one reader
    tokenizer = load_tokenizer(bert_path)
    with tokenizer_panics_as_line(bert_path):
        text_bert = {split: tokenize(rows[split].texts, tokenizer, max_lens["text"]) for split in SPLITS}

    frames, digests = {}, {TSV_FILES[s]: rows[s].sha256 for s in SPLITS}
    for modality in ("audio", "vision"):
        frames[modality], digests[FEATURE_FILES[modality]] = read_feature_file(folder, modality, rows,
                                                                               max_lens[modality])

    text = cached_text_features(folder, bert_path, text_bert, hidden) if with_text_features else None

    splits = {}
    for split in SPLITS:
        tensors = {"text_bert": torch.from_numpy(text_bert[split])}
        if text is not None:
            tensors["text"] = text[split]
        tensors["text_lengths"] = tensors["text_bert"][:, 1].sum(dim=1)
        for modality in ("audio", "vision"):
            padded, lengths = frames[modality][split]
            tensors[modality] = torch.from_numpy(padded)
            tensors[f"{modality}_lengths"] = torch.from_numpy(lengths)
        for m in MODALITIES:
            tensors[f"{m}_mask"] = torch.arange(max_lens[m])[None, :] < tensors[f"{m}_lengths"][:, None]
        tensors["label"] = torch.from_numpy(labels[split])
        splits[split] = Split(split, tensors, rows[split].keys)

    recipe = stamped_recipe(stamp, folder_digest(digests)) if marker_recipe is not None else None
    if recipe != marker_recipe:             # the stamp held for the files hashed before, not for the bytes read
        raise DataError(f"mintrec folder {folder}: its files changed while they were read (the stamp in "
                        f"{SYNTHETIC_MARKER} held before, not after); load it again once nothing writes there")
    synthetic = recipe is not None
    source = synthetic_data_id(recipe) if synthetic else "sha256:" + folder_digest(digests)

    facts = mintrec_facts()
    spec = DatasetSpec(
        name=NAME, task=facts["task"], num_classes=int(facts["num_classes"]), label_range=None,
        feature_dims={"text": hidden, "audio": splits["train"].tensors["audio"].shape[2],
                      "vision": splits["train"].tensors["vision"].shape[2]},
        seq_lens=dict(max_lens), aligned=False, language=facts["language"],
        key_metric=facts["config"]["key_eval"], has_text_bert=True, has_text_features=text is not None,
        unimodal_labels=False, source=source, path=str(folder),
        split_sizes={s: len(splits[s]) for s in SPLITS}, label_names=label_names(), synthetic=synthetic)
    return Dataset(spec, splits["train"], splits["valid"], splits["test"])
