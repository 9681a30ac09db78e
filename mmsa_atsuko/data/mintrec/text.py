"""MIntRec's text for the models: token ids from the TSV texts, and the frozen BERT's features, cached.

`tokenize` gives `text_bert` (N, 3, L): `[CLS] tokens [SEP]`, tokens cut to L - 2, zero-padded;
mask and segment ids as MIntRec's `convert_examples_to_features`. The tokenizer is that of the
configured local BERT folder, resolved without downloading; its vocabulary is checked, because
offline `from_pretrained` can hand back a 5-token stub without an error. Lower-casing follows the
tokenizer's own config (bert-base-uncased lower-cases, as MIntRec asks).

Models that read pre-extracted `text` (TFN, LMF, MulT without BERT) get the last hidden state of
the configured BERT, frozen, with padding set to 0. It is computed once and cached in the user's
cache folder (`<cache_dir()>/mintrec_text_features/`), under a key made of the BERT's identity
(sha256 of its config and weights) and the token ids, so another BERT or edited TSVs never reuse it.
Never in the data folder: the key is no secret (public BERT files, the folder's own TSVs), so a file
shipped there under it would stand in for the features unseen, and the data id covers only the five
data files; a `text_features/` there (where this cache was kept before) is ignored, with one info line.
The only part of the loader that runs a model, so it lives apart from the file readers.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from ...atomic import replace_with
from ...cache import cache_dir, sha256_of
from ...errors import UsageError, one_line
from .folder import SPLITS

log = logging.getLogger("mmsa_atsuko")

TEXT_CACHE_DIR = "mintrec_text_features"     # under cache_dir()
FOLDER_TEXT_CACHE = "text_features"          # where a data folder held this cache before: ignored
TEXT_BATCH = 64              # samples per BERT forward pass when computing `text`


def load_tokenizer(bert_path: str):
    from transformers import BertTokenizer
    from transformers.utils import logging as hf_logging

    from ...models.common.bert import check_vocab
    from ...models.common.bert_weights import check_tokenizer_files
    check_tokenizer_files(bert_path)        # a file of them it cannot read, in a line that names it
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()        # a folder without vocab.txt warns; check_vocab says it in one line
    try:
        tokenizer = BertTokenizer.from_pretrained(bert_path, local_files_only=True)
    except Exception as e:      # transformers' and tokenizers' own (a bare Exception for a WordPiece it cannot build)
        raise UsageError(f"cannot load a BERT tokenizer from {bert_path} ({one_line(e, 160)}); it needs vocab.txt "
                         f"or tokenizer.json: set -c pretrained=/path/to/bert-base-uncased") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    check_vocab(tokenizer, bert_path)
    return tokenizer


def tokenize(texts, tokenizer, max_len: int) -> np.ndarray:
    """(N, 3, max_len) int64: input ids, attention mask, segment ids, as MIntRec's
    `convert_examples_to_features` for a single sentence: [CLS] tokens [SEP], the tokens cut
    to max_len - 2, zeros after."""
    out = np.zeros((len(texts), 3, max_len), dtype=np.int64)
    for i, text in enumerate(texts):
        tokens = [tokenizer.cls_token, *tokenizer.tokenize(text)[:max_len - 2], tokenizer.sep_token]
        out[i, 0, :len(tokens)] = tokenizer.convert_tokens_to_ids(tokens)
        out[i, 1, :len(tokens)] = 1
    return out


def bert_identity(bert_path: str) -> dict:
    """{file: sha256} of a BERT folder's config.json and weight files: what the cached text
    features depend on besides the token ids. Hashed once per process and file version."""
    from ...models.common.bert_weights import WEIGHT_FILES
    folder = Path(bert_path)
    return {name: sha256_of(folder / name) for name in ("config.json", *WEIGHT_FILES) if (folder / name).is_file()}


def text_feature_key(bert_path: str, text_bert: dict) -> str:
    """The cache key of the `text` features: BERT identity + token ids of every split."""
    h = hashlib.sha256(json.dumps({"format": 1, "what": "last_hidden_state, padding zeroed",
                                   "bert": bert_identity(bert_path)}, sort_keys=True).encode())
    for split in SPLITS:
        array = np.ascontiguousarray(text_bert[split])
        h.update(f"{split}{array.shape}".encode())
        h.update(array.tobytes())
    return h.hexdigest()


def _compute_text_features(bert_path: str, text_bert: dict) -> dict:
    """{split: (N, L, hidden) float32}: frozen BERT's last hidden state, zero on padding."""
    from transformers.utils import logging as hf_logging

    from ...models.common.bert import BertTextEncoder
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()          # transformers' "Loading weights" bar, once per load
    try:
        encoder = BertTextEncoder(bert_path, use_finetune=False).eval()
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    out = {}
    with torch.inference_mode():
        for split in SPLITS:
            ids = torch.from_numpy(text_bert[split])
            chunks = []
            for start in range(0, len(ids), TEXT_BATCH):
                batch = ids[start:start + TEXT_BATCH]
                hidden = encoder(batch).float()
                chunks.append(hidden * batch[:, 1, :, None].to(hidden.dtype))
            out[split] = torch.cat(chunks).contiguous()
    return out


def cached_text_features(folder: Path, bert_path: str, text_bert: dict, hidden: int) -> dict:
    """{split: (N, L, hidden) float32 tensor}, from `<cache_dir()>/mintrec_text_features/` when a file for
    this BERT and these token ids is there, else computed and saved there (atomically; a cache folder
    that cannot be written is only warned about). Nothing in `folder`, the data folder, is read or written:
    it is named only to say that a `text_features/` there is ignored."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

    if os.path.lexists(folder / FOLDER_TEXT_CACHE):
        log.info("mintrec: ignoring %s (text features in a data folder are never read); they are cached in %s",
                 folder / FOLDER_TEXT_CACHE, cache_dir() / TEXT_CACHE_DIR)
    key = text_feature_key(bert_path, text_bert)
    path = cache_dir() / TEXT_CACHE_DIR / f"bert-{key[:24]}.safetensors"
    expected = {s: (len(text_bert[s]), text_bert[s].shape[2], hidden) for s in SPLITS}
    if path.is_file():
        try:
            cached = load_file(str(path))
            if {s: tuple(cached[s].shape) for s in SPLITS} == expected and all(
                    cached[s].dtype == torch.float32 for s in SPLITS):
                return {s: cached[s] for s in SPLITS}
            log.warning("%s does not hold the expected text features; computing them again", path)
        except (SafetensorError, KeyError, OSError) as e:
            log.warning("cannot read cached text features %s (%s); computing them again", path, e)

    log.info("mintrec: computing `text` features with the BERT at %s (once; cached in %s)", bert_path, path.parent)
    features = _compute_text_features(bert_path, text_bert)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_with(path, lambda tmp: save_file(features, str(tmp), metadata={"bert": str(bert_path), "key": key}))
    except (OSError, SafetensorError) as e:     # SafetensorError: its writer's I/O error (a full disk)
        log.warning("cannot cache the text features in %s (%s): they will be computed again next time",
                    path.parent, getattr(e, "strerror", None) or one_line(e))
    return features
