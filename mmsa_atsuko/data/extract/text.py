"""Transcripts -> MMSA's text keys with a local BERT: `text_bert` (N, 3, L) ids / mask / segment
ids, stored as float like MMSA's files, and `text` (N, L, hidden), BERT's last layer (zero
past the attention mask).

`tokenizer_identity` and `encoder_sha256` say which BERT made them without loading it: they go
into the extractor's config hash, and a checkpoint's model.json records the tokenizer of the
BERT it reads ids with, so `predict` can refuse ids from another vocabulary.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ...errors import DataError, one_line

# Every file transformers reads a BERT tokenizer from, in the order the identity hashes them. The first of the
# two vocabularies present defines the ids: transformers 5 builds a tokenizer from tokenizer.json, from vocab.txt
# only without it.
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json")
VOCABULARY_FILES = TOKENIZER_FILES[:2]
ENCODE_BATCH = 32


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tokenizer_identity(bert_dir) -> dict | None:
    """{'file', 'files', 'sha256', 'vocab_size', 'lowercase'} of the tokenizer in a BERT folder, or None without
    a vocabulary. `files`: the sha256 of each of TOKENIZER_FILES present, by name; `sha256`: one hash of them,
    names and all, in TOKENIZER_FILES' order (hashing vocab.txt alone, a tokenizer.json whose ids were swapped
    kept the identity); `file`: the vocabulary the ids come from, whose entries `vocab_size` counts."""
    folder = Path(bert_dir)
    present = [name for name in TOKENIZER_FILES if (folder / name).is_file()]
    name = next((name for name in VOCABULARY_FILES if name in present), None)
    if name is None:
        return None
    from ...models.common.bert_weights import tokenizer_json, vocab_txt_size
    vocab_size = vocab_txt_size(folder) if name == "vocab.txt" else _tokenizer_json_size(folder, tokenizer_json)
    lowercase = (tokenizer_json(folder, "tokenizer_config.json") or {}).get("do_lower_case")
    files = {name: _sha256(folder / name) for name in present}
    whole = hashlib.sha256("".join(f"{name} {digest}\n" for name, digest in files.items()).encode()).hexdigest()
    return {"file": name, "files": files, "sha256": whole, "vocab_size": vocab_size, "lowercase": lowercase}


def _tokenizer_json_size(folder: Path, tokenizer_json) -> int:
    """The entries of tokenizer.json's vocabulary (`model.vocab`: WordPiece's object, or a list), or one
    DataError line for a file without one."""
    vocab = (tokenizer_json(folder, "tokenizer.json").get("model") or {})
    vocab = vocab.get("vocab") if isinstance(vocab, dict) else None
    if not isinstance(vocab, (dict, list)):
        raise DataError(f"{folder / 'tokenizer.json'} has no vocabulary (model.vocab): download or save the BERT "
                        f"again")
    return len(vocab)


def same_tokenizer(recorded: dict, current: dict) -> bool:
    """Whether two tokenizer identities (`tokenizer_identity`, `tokenizer_of`) are one tokenizer. An identity
    recorded before every tokenizer file was hashed (no `files`: a feature file or model.json of then) holds the
    sha256 of its `file` alone, and is held to that file of the other: its runs and files still match their BERT,
    as strictly as they were recorded."""
    if isinstance(recorded.get("files"), dict) and isinstance(current.get("files"), dict):
        return recorded["sha256"] == current["sha256"]
    old, new = (current, recorded) if isinstance(recorded.get("files"), dict) else (recorded, current)
    if not isinstance(new.get("files"), dict):
        return old["sha256"] == new["sha256"]
    return new["files"].get(old["file"]) == old["sha256"]


def tokenizer_of(extractor: dict | None) -> dict | None:
    """The tokenizer identity an extracted feature file's `text_bert` ids come from (its extractor
    record, `tokenizer_identity` of the --bert it was extracted with), or None for a file that does
    not say (MMSA's pickles, synthetic data)."""
    record = extractor
    for key in ("config", "text", "tokenizer"):      # the file is hostile: any level may be anything
        record = record.get(key) if isinstance(record, dict) else None
    return record if is_tokenizer_identity(record) else None


def is_tokenizer_identity(record) -> bool:
    """Whether a recorded identity (a feature file's, a model.json's) is one `tokenizer_identity` writes: `file`,
    `sha256`, `vocab_size`, and `files` (name -> sha256) or none (an identity recorded before it)."""
    files = record.get("files") if isinstance(record, dict) else None
    return (isinstance(record, dict) and isinstance(record.get("sha256"), str) and isinstance(record.get("file"), str)
            and isinstance(record.get("vocab_size"), int) and not isinstance(record["vocab_size"], bool)
            and (files is None or isinstance(files, dict) and all(isinstance(k, str) and isinstance(v, str)
                                                                  for k, v in files.items())))


def encoder_sha256(bert_dir) -> str | None:
    """sha256 of the BERT weights file, so features of two different encoders never share a hash."""
    from ...models.common.bert_weights import weights_file
    weights = weights_file(bert_dir)
    return None if weights is None else _sha256(weights)


def encode_texts(texts: list[str], bert_dir: str, max_len: int, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """(text_bert (N, 3, L) float32, text (N, L, hidden) float32) for `texts`; `progress(n)` is called
    after each batch with the n texts it encoded."""
    # Imported here: torch and transformers belong to the text path of extraction only.
    import torch
    from transformers import AutoTokenizer

    from ...models.common.bert import load_encoder
    from ...models.common.bert_weights import check_tokenizer_files
    from ...models.common.tokenizer_panics import tokenizer_panics_as_line

    check_tokenizer_files(bert_dir)     # a file of them it cannot read, in a line that names it
    # trust_remote_code=False: a folder whose config.json maps to its own Python code (auto_map) is
    # refused outright; unset, transformers asks on a terminal whether to run that code.
    try:
        tokenizer = AutoTokenizer.from_pretrained(bert_dir, local_files_only=True, trust_remote_code=False)
    except Exception as e:      # transformers' and tokenizers' own (a bare Exception for a WordPiece it cannot build)
        raise DataError(f"the BERT folder {bert_dir} has no tokenizer transformers can load "
                        f"({one_line(e)})") from None
    with tokenizer_panics_as_line(bert_dir):
        encoded = tokenizer(list(texts), padding="max_length", truncation=True, max_length=max_len,
                            return_token_type_ids=True, return_tensors="np")
    ids, mask, segments = (encoded[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids"))
    model = load_encoder(bert_dir, option="--bert ").eval()     # refuses weights of other names
    features = np.zeros((len(texts), max_len, model.config.hidden_size), np.float32)
    with torch.no_grad():
        for start in range(0, len(texts), ENCODE_BATCH):
            part = slice(start, start + ENCODE_BATCH)
            hidden = model(input_ids=torch.from_numpy(ids[part]), attention_mask=torch.from_numpy(mask[part]),
                           token_type_ids=torch.from_numpy(segments[part])).last_hidden_state
            features[part] = (hidden * torch.from_numpy(mask[part])[..., None]).numpy()
            if progress is not None:
                progress(len(ids[part]))
    text_bert = np.stack([ids, mask, segments], axis=1).astype(np.float32)
    return text_bert, features
