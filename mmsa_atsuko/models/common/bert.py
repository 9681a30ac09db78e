"""BERT text encoder (MMSA's `BertTextEncoder`) and finding BERT weights without downloading.

Weights come from `config.pretrained`: a local folder holding `config.json` (what
`save_pretrained` or `huggingface-cli download --local-dir` writes), or a hub id such as
`bert-base-uncased` that is already in the standard Hugging Face cache, or
`synthetic:<recipe>/bert-synthetic-en`, a tiny BERT of the synthetic-data cache. Nothing is ever
downloaded: when neither has the weights, the run stops with one line saying what to set.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from ...atomic import not_a_file
from ...cache import CACHE_ENV, SYNTHETIC_BERT_PREFIX, names_tiny_bert, synthetic_bert_folder, synthetic_cache_dir
from ...errors import UsageError
from .bert_weights import bert_config, load_bert, no_weights_line, weights_file
from .meta import building_on_meta

MIN_VOCAB = 100


def _how_to_fix(pretrained, option: str = "-c pretrained=") -> str:
    """What to set for a BERT that cannot be used, by the kind of name it has: the toolkit's tiny synthetic
    BERT (no download has it; a --synthetic run writes it), a local folder, or a Hugging Face Hub id."""
    text = str(pretrained)
    if names_tiny_bert(text):
        if text.startswith(SYNTHETIC_BERT_PREFIX):      # synthetic:<recipe>/..., a folder of the cache
            recipe = text[len(SYNTHETIC_BERT_PREFIX):].split("/")[0]
            return (f"it is the toolkit's tiny synthetic BERT, which no download has: a run with --synthetic on the "
                    f"data of {recipe} writes it again")
        return (f"it is named as the toolkit's tiny synthetic BERT, which no download has: any run with --synthetic "
                f"writes one to {synthetic_cache_dir()}/<recipe>/{Path(text).name} (`run.py synth -d mintrec --out "
                f"DIR` one to DIR/MIntRec/bert-synthetic-en); give {option.rstrip()} that folder")
    if _names_a_path(text):
        return (f"check the path, or set {option}/path/to/bert (a folder with config.json, vocab.txt and the "
                f"weights: one saved with save_pretrained, or `huggingface-cli download HUB_ID --local-dir "
                f"/path/to/bert` on a machine with internet)")
    name = text.rstrip("/").rpartition("/")[2] or "bert"
    return (f"set {option}/path/to/{name} (a folder with config.json and the weights, e.g. from "
            f"`huggingface-cli download {text} --local-dir /path/to/{name}` on a machine with internet)")


def _names_a_path(text: str) -> bool:
    """Plainly a path, not a hub id (which may be 'org/name'), or a folder that is there."""
    return text.startswith(("/", "~", "./", "../")) or os.path.isdir(os.path.expanduser(text))


def _has_weights(folder: Path) -> bool:
    return weights_file(folder) is not None


def _cached_snapshot(repo_id: str) -> Path | None:
    """The HF-cache snapshot folder of `repo_id` if it holds config.json and weights, else None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        config_file = try_to_load_from_cache(repo_id, "config.json")
    except Exception:   # not a valid repo id (e.g. a path): not in the cache either
        return None
    if not isinstance(config_file, str):
        return None
    snapshot = Path(config_file).parent
    return snapshot if _has_weights(snapshot) else None


def resolve_bert_path(pretrained, option: str = "-c pretrained=") -> str:
    """A local folder with BERT's config.json and weights, for `from_pretrained`. Never downloads.

    `pretrained` is a folder, or a hub id looked up in the standard HF cache (HF_HOME /
    HF_HUB_CACHE are honoured by huggingface_hub). Raises UsageError (one line) otherwise, whose
    advice sets `option` (a command's own flag for it, e.g. extract's `--bert `).
    """
    if not pretrained:
        raise UsageError(f"no BERT weights configured (pretrained is empty); "
                         f"{_how_to_fix('bert-base-uncased', option)}")
    if str(pretrained).startswith(SYNTHETIC_BERT_PREFIX):      # a tiny BERT of the synthetic-data cache
        folder = synthetic_bert_folder(str(pretrained))
        cache = os.path.realpath(synthetic_cache_dir())
        if os.path.commonpath([cache, os.path.realpath(folder)]) != cache:
            raise UsageError(f"the synthetic BERT {pretrained} leads outside the synthetic cache "
                             f"{synthetic_cache_dir()}; such a name is synthetic:<recipe>/bert-synthetic-en, "
                             f"a folder inside it")
        if not _has_weights(folder):
            raise UsageError(f"the synthetic BERT {pretrained} is not in the cache at {folder} "
                             f"(${CACHE_ENV}); {_how_to_fix(pretrained, option)}")
        return str(folder)
    folder = Path(os.path.expanduser(str(pretrained)))
    if folder.is_dir():
        config = not_a_file(folder / "config.json")       # a pipe or a link to /dev/zero is there, not missing
        if config == "not found":
            raise UsageError(f"BERT folder {folder} has no config.json; {_how_to_fix(pretrained, option)}")
        if config is not None:
            raise UsageError(f"{folder / 'config.json'} {config}; {_how_to_fix(pretrained, option)}")
        if not _has_weights(folder):
            raise UsageError(f"{no_weights_line(folder)}; {_how_to_fix(pretrained, option)}")
        return str(folder)
    if _names_a_path(str(pretrained)):       # no cache lookup to mention
        raise UsageError(f"BERT folder {folder} does not exist; {_how_to_fix(pretrained, option)}")
    snapshot = _cached_snapshot(str(pretrained))
    if snapshot is not None:
        return str(snapshot)
    raise UsageError(f"BERT weights {pretrained!r} are neither a local folder nor in the Hugging Face cache; "
                     f"{_how_to_fix(pretrained, option)}")


def check_vocab(tokenizer, path) -> None:
    """Raise if `tokenizer` has a stub vocabulary.

    Offline, `BertTokenizer.from_pretrained` on a folder without vocab.txt can return a
    tokenizer with only the 5 special tokens instead of raising; every word would then map to
    [UNK].
    """
    size = len(tokenizer)
    if size < MIN_VOCAB:
        raise UsageError(f"the BERT tokenizer from {path} has only {size} tokens (vocab.txt missing or "
                         f"truncated); {_how_to_fix(path)}")


def load_encoder(path: str, pretrained=None, option: str = "-c pretrained=") -> nn.Module:
    """The BertModel of the resolved BERT folder `path` (as `pretrained` names it), without its pooler: MMSA uses
    only the last hidden state, and an unused pooler would be a parameter that never gets a gradient. The files are
    read bounded and checked first (bert_weights.py). One UsageError line when the weights file lacks any encoder
    weight: transformers leaves such a weight randomly initialised and says so only in its loading info, so a
    checkpoint of other names (every key renamed) would encode text as a random BERT does, without an error."""
    model, info = load_bert(path)
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        raise UsageError(f"the BERT checkpoint at {path} lacks {len(missing)} encoder weights "
                         f"(e.g. {missing[0]}); is it a BERT model? {_how_to_fix(pretrained or path, option)}")
    return model


class BertTextEncoder(nn.Module):
    """text_bert (B, 3, L) int64 [input ids, attention mask, segment ids] -> (B, L, hidden).

    The last hidden state of BERT (MMSA). Without `use_finetune` BERT runs under no_grad, so
    it receives no gradient (its parameters stay in the module; freeze them in the optimizer
    or not, it makes no difference).
    """

    def __init__(self, pretrained: str, use_finetune: bool, reads_padding: bool = True):
        super().__init__()
        # False for a model that cuts every batch to its longest text first (`trim_to_longest_text`):
        # then only the real tokens, not a file's padded length, need BERT's positions (`bert_input_problem`).
        self.reads_padding = reads_padding
        from transformers import BertModel   # imported here: the feature-input path never pays for it

        path = resolve_bert_path(pretrained)
        self.path, self.pretrained = path, pretrained
        self.use_finetune = use_finetune
        if building_on_meta():      # shapes only (models/common/meta.py): the architecture of config.json
            self.model = BertModel(bert_config(path), add_pooling_layer=False)
            self.hidden_size = self.model.config.hidden_size
            return
        self.model = self.pretrained_bert()
        self.hidden_size = self.model.config.hidden_size

    def pretrained_bert(self):
        """The BERT of the folder with its weights, as a real build holds it (an encoder built on the meta device
        asks it to check them: `check_bert_weights`); `load_encoder` refuses a folder lacking encoder weights."""
        return load_encoder(self.path, self.pretrained)

    def forward(self, text_bert: torch.Tensor) -> torch.Tensor:
        input_ids = text_bert[:, 0, :].long()
        attention_mask = text_bert[:, 1, :].float()
        segment_ids = text_bert[:, 2, :].long()
        if self.use_finetune:
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=segment_ids).last_hidden_state
        with torch.no_grad():
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=segment_ids).last_hidden_state


def trim_to_longest_text(text_bert: torch.Tensor) -> torch.Tensor:
    """`text_bert` (B, 3, L) cut after the last position any sample's attention mask covers.

    For a model that reads BERT only at real tokens (MISA's masked mean, Self-MM's [CLS]), the
    positions past every sample's text are pure cost: the attention mask takes them out of every
    real token's softmax and position embeddings are absolute, so each real token's hidden state
    is the same (to float rounding) with them or without them. MMSA feeds all L positions; the
    trim changes the cost, not the features. Models that read every position (Atsuko and EMOE
    with BERT, whose spectral basis and routers are sized for L) must not trim.
    """
    covered = (text_bert[:, 1, :] > 0).any(dim=0)                              # (L,)
    last = int(torch.arange(1, covered.numel() + 1, device=covered.device).mul(covered).max())
    return text_bert[:, :, :max(last, 1)]


class TextInput(nn.Module):
    """The text a model reads: BERT over `text_bert` (`use_bert: true`) or the file's `text` features.

    One place for the choice MulT, EMOE and Atsuko all make, and for its error when the
    dataset lacks what the config asks for. `dim` is the width of what `forward` returns.
    """

    def __init__(self, config, spec, model_name: str):
        super().__init__()
        self.use_bert = bool(config.use_bert)
        if self.use_bert:
            if not spec.has_text_bert:
                raise UsageError(f"{model_name} with use_bert=true needs BERT token ids (text_bert), which "
                                 f"{spec.path} lacks; set -c use_bert=false to use its text features")
            self.encoder = BertTextEncoder(config.pretrained, bool(config.use_finetune))
            self.dim = self.encoder.hidden_size
        else:
            if not spec.has_text_features:
                raise UsageError(f"{model_name} with use_bert=false reads `text` features, which {spec.path} "
                                 f"lacks; set -c use_bert=true")
            self.dim = int(spec.feature_dims["text"])

    def forward(self, batch: dict) -> torch.Tensor:
        """(B, L, dim)."""
        return self.encoder(batch["text_bert"]) if self.use_bert else batch["text"]


class BertInputProblem(NamedTuple):
    line: str                    # what the BERT cannot read, naming the split and the BERT
    positions: int | None        # BERT's positions, when a text is longer: another BERT would not help, a
                                 # file with shorter texts would; None for an id past a table
    padding: bool = False        # past them only with the padding, which Self-MM and MISA do not read


def bert_input_problem(model: nn.Module, splits: dict) -> BertInputProblem | None:
    """What in the splits' `text_bert` the model's BERT cannot look up, or None (also for a model
    that reads no BERT). A feature file's ids are only checked to be whole and non-negative when it is
    read (data/mmsa_checks.py), not against the BERT a run reads them with: a token id past its
    vocabulary, a segment id past its token types or more positions than it has would be a traceback from
    the first batch's embedding lookup (IndexError, or RuntimeError for the positions), after the run's
    folder is made, and in predict."""
    encoder = next((m for m in model.modules() if isinstance(m, BertTextEncoder)), None)
    if encoder is None:
        return None
    bert = encoder.model.config
    limits = ((0, "token id", bert.vocab_size, f"vocabulary of {bert.vocab_size} tokens"),
              (2, "segment id", bert.type_vocab_size, f"{bert.type_vocab_size} segment types"))
    for name, split in splits.items():
        ids = split.tensors["text_bert"]
        read = ids.shape[2] if encoder.reads_padding else int(trim_to_longest_text(ids).shape[2])
        if read > bert.max_position_embeddings:
            what = "is padded to" if encoder.reads_padding else "holds a text of"
            return BertInputProblem(f"split '{name}': text_bert {what} {read} tokens, past the "
                                    f"{bert.max_position_embeddings} positions of the BERT {encoder.path}",
                                    bert.max_position_embeddings, encoder.reads_padding)
        for row, what, size, limit in limits:
            top = int(ids[:, row].max()) if ids.numel() else 0
            if top >= size:
                return BertInputProblem(f"split '{name}': text_bert holds {what} {top}, past the {limit} of "
                                        f"the BERT {encoder.path}", None)
    return None


def shorter_texts(positions: int) -> str:
    """The fix for a text past BERT's positions: every BERT of a family has as many, so no -c pretrained=
    helps; a file whose texts are padded (and cut) to at most that many tokens does."""
    return f"make the file with at most {positions} tokens per text (extract --text-len {positions} or less)"


def check_bert_weights(model: nn.Module) -> None:
    """Each BERT folder `model` (built on the meta device, which reads no weights) reads, loaded once as its real
    build loads it and dropped: a folder whose weights cannot be loaded is the line it is in a real build."""
    for encoder in {m.path: m for m in model.modules() if isinstance(m, BertTextEncoder)}.values():
        encoder.pretrained_bert()


def reads_bert_tokens(model: nn.Module) -> bool:
    """Whether the model's text input is `text_bert` (through a BERT encoder) rather than `text`.

    Datasets often carry both. A run drops the `text` features a BERT model never reads
    (`api.jobs.prepare_job`), and robustness corrupts the input the model does read.
    """
    return any(isinstance(m, BertTextEncoder) for m in model.modules())
