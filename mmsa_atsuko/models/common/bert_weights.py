"""A BERT folder's config.json, weights and tokenizer JSON, read so that no small file in it can hang or exhaust the
process.

transformers' `from_pretrained` takes config.json's sizes as they are (a `vocab_size` of 1e9 tried to
allocate 3 TB) and reads a pytorch_model.bin with torch.load(weights_only=True), whose unpickler a 680-byte
file hangs for good (safe_checkpoint.py says how). So here config.json is read bounded and its sizes
held to `BERT_SIZE_LIMITS` and to the values the weights file can hold; the weights are read by the toolkit,
once (pytorch_model.bin through `safe_checkpoint.load_weights`, model.safetensors through safetensors,
whose every tensor must lie inside its file); and `from_pretrained` is handed the config and the state dict,
so it opens no file of the folder. Anything wrong with them is one DataError line. The tokenizer's JSON files
(`tokenizer_json`) are read bounded too, for its identity and before transformers reads them.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

from ...atomic import file_sparse_problem, not_a_file, read_small_file
from ...safe_checkpoint import load_weights
from ...errors import DataError, one_line

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")      # transformers' order: the first present is read
MAX_CONFIG_BYTES = 1 << 20
# Well above every BERT published: BERT-large is 30,522 tokens (multilingual BERT 119,547), 1,024 wide, 24 layers
# of 16 heads, 4,096 intermediate, 512 positions and 2 segment types.
BERT_SIZE_LIMITS = {"vocab_size": 1 << 18, "hidden_size": 8192, "num_hidden_layers": 128,
                    "num_attention_heads": 128, "intermediate_size": 32768, "max_position_embeddings": 16384,
                    "type_vocab_size": 64}
SMALLEST_VALUE_BYTES = 2        # a weight stored as float16 or bfloat16
# bert-base-uncased's tokenizer.json is 466 KB, multilingual BERT's 2 MB; the largest published tokenizers some 30 MB.
MAX_TOKENIZER_BYTES = 64 << 20
TOKENIZER_JSON_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")


def _fix(folder) -> str:
    return f"{folder} is not a BERT folder as save_pretrained writes it; download or save it again"


def weights_file(folder) -> Path | None:
    """The file of `WEIGHT_FILES` the folder's weights are read from, or None."""
    return next((Path(folder) / name for name in WEIGHT_FILES if (Path(folder) / name).is_file()), None)


def no_weights_line(folder) -> str:
    """What a message says of a BERT folder without a weights file to read: the first of `WEIGHT_FILES` that is there
    but no regular file, as `not_a_file` says it ('.../model.safetensors is a pipe, not a file'), else that the folder
    has none. A named pipe there was 'has no model.safetensors or pytorch_model.bin', which sent the user looking
    for a file that was in plain sight."""
    for name in WEIGHT_FILES:
        what = not_a_file(Path(folder) / name)
        if what != "not found":
            return f"{Path(folder) / name} {what}"
    return f"BERT folder {folder} has no {' or '.join(WEIGHT_FILES)}"


def encoder_values(config) -> int:
    """How many values BertModel without its pooler holds for `config`: embeddings, then each layer's
    attention (query, key, value, output), feed-forward and two LayerNorms."""
    h, i = config.hidden_size, config.intermediate_size
    embeddings = (config.vocab_size + config.max_position_embeddings + config.type_vocab_size) * h + 2 * h
    layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 2 * 2 * h
    return embeddings + config.num_hidden_layers * layer


def bert_config(folder):
    """The folder's config.json as a BertConfig: read at most MAX_CONFIG_BYTES, every size of
    `BERT_SIZE_LIMITS` a whole number from 1 to its limit, and the model it describes no larger than its
    weights file holds at 2 bytes a value (else `from_pretrained` allocates the model before finding so)."""
    from transformers import BertConfig

    path = Path(folder) / "config.json"
    try:
        raw = json.loads(read_small_file(path, MAX_CONFIG_BYTES, follow_links=True))
    except (OSError, ValueError, RecursionError) as e:      # ValueError: too large, not a file, bad JSON
        raise DataError(f"cannot read {path} as a BERT config ({one_line(e, 120)}): {_fix(folder)}") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path} holds a {type(raw).__name__}, not a JSON object: {_fix(folder)}")
    for key, limit in BERT_SIZE_LIMITS.items():
        value = raw.get(key, 1)
        if type(value) is not int or not 1 <= value <= limit:
            shown = repr(value)[:40]
            raise DataError(f"{path}: {key} is {shown}, not a whole number from 1 to {limit:,} (BERT-large's "
                            f"sizes are far below): {_fix(folder)}")
    try:
        config = BertConfig.from_dict(raw)
    except Exception as e:                  # a field transformers cannot take (its own checks)
        raise DataError(f"transformers cannot read {path} ({one_line(e, 120)}): {_fix(folder)}") from None
    weights = weights_file(folder)
    if weights is not None:
        values, size = encoder_values(config), weights.stat().st_size
        if values * SMALLEST_VALUE_BYTES > size:
            raise DataError(f"{path} describes a BERT of {values:,} values, more than the {size:,} bytes of "
                            f"{weights.name} can hold: {_fix(folder)}")
    return config


def tokenizer_json(folder, name: str) -> dict | None:
    """The JSON object of a tokenizer file of a BERT folder (tokenizer.json, tokenizer_config.json), read bounded, or
    None where the folder has no such file. One DataError line for a file that is no JSON object: transformers took
    a tokenizer_config.json of `[]` as a dict (AttributeError, TypeError), which MIntRec's loader blamed on
    vocab.txt."""
    path = Path(folder) / name
    if not path.is_file():
        return None
    try:
        raw = json.loads(read_small_file(path, MAX_TOKENIZER_BYTES, follow_links=True))
    except (OSError, ValueError, RecursionError) as e:      # ValueError: too large, bad UTF-8, bad JSON
        raise DataError(f"cannot read {path} as a tokenizer file ({one_line(e, 120)}): {_fix(folder)}") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path} holds a {type(raw).__name__}, not a JSON object: {_fix(folder)}")
    return raw


def vocab_txt_size(folder) -> int | None:
    """The entries of a BERT folder's vocab.txt, as transformers counts them (a line each), or None without one.
    One DataError line for a file that is not UTF-8: it was a UnicodeDecodeError traceback (the tokenizer's
    identity) after a run had made its folder, and a bare Exception from tokenizers' WordPiece."""
    path = Path(folder) / "vocab.txt"
    if not path.is_file():
        return None
    try:
        text = read_small_file(path, MAX_TOKENIZER_BYTES, follow_links=True).decode("utf-8")
    except (OSError, ValueError) as e:       # UnicodeDecodeError is a ValueError
        raise DataError(f"cannot read {path} as a BERT vocabulary ({one_line(e, 120)}): {_fix(folder)}") from None
    return sum(1 for _ in io.StringIO(text, newline=None))     # lines as open() reads them, as transformers does


def check_tokenizer_files(folder) -> None:
    """The tokenizer's files of a BERT folder read (`tokenizer_json`, `vocab_txt_size`) before transformers reads
    them, so that one it cannot take is a line that names it."""
    for name in TOKENIZER_JSON_FILES:
        tokenizer_json(folder, name)
    vocab_txt_size(folder)


def _state_dict(weights: Path, folder) -> dict:
    if weights.suffix == ".safetensors":
        from safetensors.torch import load_file
        try:
            sparse = file_sparse_problem(weights)     # its header's offsets are held to the size a hole fakes
        except OSError as e:
            raise DataError(f"cannot read {weights} ({e.strerror or type(e).__name__}): {_fix(folder)}") from None
        if sparse:
            raise DataError(f"cannot read {weights} ({sparse}): {_fix(folder)}")
        try:
            return load_file(str(weights))
        except Exception as e:          # safetensors' own errors: a header or offsets past the file
            raise DataError(f"cannot read {weights} ({one_line(e, 120)}): {_fix(folder)}") from None
    return load_weights(weights, fix=_fix(folder))


def check_values_held(config, state, weights: Path, folder) -> None:
    """DataError unless the state dict read holds at least the values `config` describes: `bert_config` held
    them to the file's size, but a file renamed over it since may be smaller, and the model is allocated
    before transformers finds its weights missing."""
    import torch
    held = sum(v.numel() for v in state.values() if isinstance(v, torch.Tensor)) if isinstance(state, dict) else 0
    values = encoder_values(config)
    if values > held:
        raise DataError(f"{Path(folder) / 'config.json'} describes a BERT of {values:,} values, more than the "
                        f"{held:,} that {weights.name} holds: {_fix(folder)}")


def load_bert(folder):
    """(BertModel without its pooler, transformers' loading info) from a BERT folder: config.json through
    `bert_config`, the weights read by the toolkit and handed over as a state dict. DataError (one line)
    for anything in the files that cannot be loaded."""
    import torch
    from transformers import BertModel

    config = bert_config(folder)
    weights = weights_file(folder)
    if weights is None:
        raise DataError(f"{no_weights_line(folder)}: {_fix(folder)}")
    state = _state_dict(weights, folder)
    check_values_held(config, state, weights, folder)
    # transformers would print a load report listing the checkpoint's pooler (and MLM head) weights as
    # unexpected on every build, and a "Loading weights" bar: a model is built once per check and once per
    # seed, so they would fill the terminal (and --quiet runs) for nothing. What matters in the report,
    # weights the encoder lacks, is in the loading info returned.
    from transformers.utils import logging as hf_logging
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        # float32 whatever the folder says: transformers 5 builds in the weights' or config.json's dtype ("auto"), so
        # a BERT saved in float16 was a half-precision encoder under a float32 model (a dtype-mismatch traceback
        # mid-run); float16 and bfloat16 values are exact in float32, and --precision decides what runs in less.
        # `torch_dtype`: the argument's name in transformers 4.x, which 5.x still takes (its `dtype` is 4.56+ only).
        return BertModel.from_pretrained(None, config=config, state_dict=state, add_pooling_layer=False,
                                         output_loading_info=True, torch_dtype=torch.float32)
    except MemoryError:
        raise DataError(f"ran out of memory building the BERT of {folder}: this machine needs more") from None
    except Exception as e:              # shapes that do not fit the config, tensors that are not weights
        raise DataError(f"transformers cannot load the weights of {weights} ({one_line(e, 160)}): "
                        f"{_fix(folder)}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
