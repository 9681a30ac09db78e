"""The tiny BERT of the synthetic datasets: its vocabulary, and writing it (and any folder) atomically.

Both generators use it (data/synthetic/ for the MMSA datasets, synthetic_mintrec.py for
MIntRec), so it lives apart from either and neither imports the other for it. The
vocabulary is part of the data: the generators plant the text signal in these ids.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from ..atomic import temp_sibling
from ..errors import UsageError

BERT_RECIPE_VERSION = "v1"    # the tiny BERT's own version: it did not change with the data's v2

# ---------------------------------------------------------------------------------------
# Vocabulary. The id layout copies bert-base where it matters to code that reads ids
# ([PAD]=0, [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103, [unusedN] filling 1..99); after
# [MASK] come the graded sentiment words, then neutral filler words. The layout is the same
# for both languages; only the token strings differ.
# ---------------------------------------------------------------------------------------
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = 0, 100, 101, 102, 103
FIRST_WORD_ID = 104
VALENCE_STEPS = 8            # sentiment words come in valences +-1/8, +-2/8, ..., +-8/8
SYNONYMS = 4                 # words per valence, so sentences are not all alike
FILLER_WORDS = 256
# Signed valence step of each sentiment word slot, most negative first: -8..-1, 1..8.
LEVELS = np.array([*range(-VALENCE_STEPS, 0), *range(1, VALENCE_STEPS + 1)])
FIRST_FILLER_ID = FIRST_WORD_ID + len(LEVELS) * SYNONYMS
VOCAB_SIZE = FIRST_FILLER_ID + FILLER_WORDS


def _valence_word(slot: int, language: str) -> str:
    level, synonym = LEVELS[slot // SYNONYMS], slot % SYNONYMS
    if language == "cn":
        # One CJK ideograph per word: bert-base-chinese tokenizes Chinese per character.
        return chr(0x4F00 + slot)
    return f"{'pos' if level > 0 else 'neg'}{abs(level)}{'abcd'[synonym]}"


def _filler_word(index: int, language: str) -> str:
    return chr(0x4E00 + index) if language == "cn" else f"w{index:03d}"


def synthetic_vocab(language: str = "en") -> list[str]:
    """The tiny BERT's vocabulary, in id order (id = position)."""
    if language not in ("en", "cn"):
        raise UsageError(f"unknown synthetic BERT language {language!r}; choose en or cn")
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(UNK_ID - 1)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += [_valence_word(slot, language) for slot in range(len(LEVELS) * SYNONYMS)]
    vocab += [_filler_word(i, language) for i in range(FILLER_WORDS)]
    assert len(vocab) == VOCAB_SIZE and vocab[CLS_ID] == "[CLS]" and vocab[FIRST_WORD_ID - 1] == "[MASK]"
    return vocab


def _bert_recipe(seed: int, language: str) -> str:
    return f"bert-synthetic-{language}-seed{seed}-{BERT_RECIPE_VERSION}"


MARKER_JSON = "synthetic.json"


def _write_bert_files(folder: Path, seed: int, language: str) -> None:
    # Imported here: writing and reading feature pickles should not pay for transformers.
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel, BertTokenizer

    vocab = synthetic_vocab(language)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # bert-base-uncased lower-cases, bert-base-chinese does not; mirror them.
    BertTokenizer(str(folder / "vocab.txt"), do_lower_case=(language == "en"),
                  model_max_length=512).save_pretrained(str(folder))

    # Hidden size 768 like bert-base, so models sized for its output need no change; one
    # layer and a narrow feed-forward keep it fast on a CPU.
    config = BertConfig(vocab_size=len(vocab), hidden_size=768, num_hidden_layers=1, num_attention_heads=12,
                        intermediate_size=256, max_position_embeddings=512, type_vocab_size=2,
                        pad_token_id=PAD_ID)
    recipe = _bert_recipe(seed, language)
    torch_seed = int.from_bytes(hashlib.sha256(recipe.encode()).digest()[:8], "little") >> 1
    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG state alone
        torch.manual_seed(torch_seed)
        model = BertModel(config)
    config.save_pretrained(str(folder))
    # safetensors written directly: same file from_pretrained reads, without the progress
    # bar save_pretrained prints.
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})

    (folder / "SYNTHETIC.txt").write_text(
        f"SYNTHETIC tiny BERT ({recipe}): random weights, not a trained language model.\n"
        "Written by mmsa_atsuko.data.tiny_bert for tests and synthetic runs only; results\n"
        "obtained with it say nothing about real data.\n", encoding="utf-8")
    # Written last: its presence means the folder is complete.
    (folder / MARKER_JSON).write_text(json.dumps({
        "synthetic": True, "recipe": recipe, "seed": seed, "language": language,
        "vocab_size": len(vocab), "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_hidden_layers,
        "ids": {"pad": PAD_ID, "unk": UNK_ID, "cls": CLS_ID, "sep": SEP_ID, "mask": MASK_ID,
                "sentiment_words": [FIRST_WORD_ID, FIRST_FILLER_ID - 1],
                "filler_words": [FIRST_FILLER_ID, VOCAB_SIZE - 1]},
    }, indent=2) + "\n", encoding="utf-8")


def write_folder_atomically(folder: Path, fill, *, replace: bool, complete_marker: str) -> Path:
    """Build a folder under a temporary name with `fill(tmp)`, then rename it into place.

    Readers never see a half-written folder. When `folder` already exists: with `replace` the
    new one takes its place; without, a complete one (holding `complete_marker`, written last)
    is kept, e.g. when another process finished first.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(folder)
    tmp.mkdir()
    try:
        fill(tmp)
        try:
            os.rename(tmp, folder)  # atomic; fails if `folder` exists and is not empty
        except OSError:
            if not folder.exists():
                raise
            if not replace and (folder / complete_marker).is_file():
                shutil.rmtree(tmp, ignore_errors=True)
                return folder
            old = temp_sibling(folder)
            os.rename(folder, old)
            os.rename(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def write_tiny_bert(out_dir, *, seed: int = 0, language: str = "en", replace: bool = True) -> Path:
    """Write a tiny random BERT loadable offline with `BertModel/BertTokenizer.from_pretrained`.

    The folder holds config.json, model.safetensors, vocab.txt (+ tokenizer files),
    SYNTHETIC.txt and synthetic.json (`"synthetic": true` and the recipe), and appears by
    atomic rename. An existing folder at `out_dir` is replaced, unless `replace` is false and
    it is complete (another process may just have written it).
    """
    if language not in ("en", "cn"):
        raise UsageError(f"unknown synthetic BERT language {language!r}; choose en or cn")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"synthetic seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    return write_folder_atomically(Path(out_dir), lambda tmp: _write_bert_files(tmp, seed, language),
                                   replace=replace, complete_marker=MARKER_JSON)
