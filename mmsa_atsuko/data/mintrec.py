"""Load MIntRec (thuiar/MIntRec) from the folder layout it ships into a validated `Dataset`.

The folder (thuiar/MIntRec: its data/base.py reads the TSVs, its run.py names the feature files),
read as it is:

    train.tsv, dev.tsv, test.tsv     tab-separated, header `season episode clip text label`
    video_data/video_feats.pkl       {'S05_E16_329': list of (1, 256) arrays, or a (T, 256) array}
    audio_data/audio_feats.pkl       {'S05_E16_329': (T, 768) array}

A sample's key is `season_episode_clip`; `dev` is the valid split. Loading follows
thuiar/MIntRec's data code, with these differences:

- Text: the raw TSV text is tokenized with the BERT tokenizer of the configured local
  folder (`pretrained`, resolved without downloading) into `text_bert` (N, 3, 30):
  `[CLS] tokens [SEP]`, tokens cut to 28, zero-padded; mask and segment ids as MIntRec's
  `convert_examples_to_features`. The vocabulary is checked, because offline
  `from_pretrained` can hand back a 5-token stub without an error. Lower-casing follows the
  tokenizer's own config (bert-base-uncased lower-cases, as MIntRec asks).
- Video is cut or zero-padded at the end to 230 frames and audio to 480; the true lengths
  and masks are kept (MIntRec drops them). MIntRec's cut returns one row
  (`feat[max_len, :]`); here it is the first 230/480 frames.
- Models that read pre-extracted `text` (TFN, LMF, MulT without BERT) get the last hidden
  state of the configured BERT, frozen, with padding set to 0. It is computed once and
  cached in `<folder>/text_features/`, under a key made of the BERT's identity (sha256 of
  its config and weights) and the token ids, so another BERT or edited TSVs never reuse it.
- Pickles go through `safe_pickle` (no code in a file can run).
- Every problem is one line naming the file, split and key: a TSV key missing from a
  feature file (all of them counted, the first few named), an unknown label, a bad header,
  a frame array of the wrong shape, NaN or inf.

Labels are indices into the 20 intents in MIntRec's code order (configs/datasets.yaml
`label_names`). The dataset's `source` is `sha256:` + `folder_digest` (a sha256 over the five
files' sha256s, and over synthetic.json's when there is one: it sets the padded lengths), or
`synthetic:<recipe>` for a folder `synthetic_mintrec` wrote, proven by the stamp in its
synthetic.json: the recipe and the folder digest of the five files (see stamp.py).
"""
from __future__ import annotations

import csv
import difflib
import hashlib
import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..atomic import replace_with
from ..config import datasets_table
from ..errors import DataError, MissingDataError, UsageError
from ..cache import sha256_of
from . import safe_pickle
from .spec import MODALITIES, Dataset, DatasetSpec, Split
from .stamp import stamped_recipe

log = logging.getLogger("mmsa_atsuko")

NAME = "mintrec"
SPLITS = ("train", "valid", "test")
TSV_FILES = {"train": "train.tsv", "valid": "dev.tsv", "test": "test.tsv"}
FEATURE_FILES = {"vision": "video_data/video_feats.pkl", "audio": "audio_data/audio_feats.pkl"}
TSV_HEADER = ("season", "episode", "clip", "text", "label")
TEXT_CACHE_DIR = "text_features"
# Written by the synthetic generator into its folder: its stamp (the recipe and the digest of
# the five files) and, for size 'small', padded lengths shorter than MIntRec's.
SYNTHETIC_MARKER = "synthetic.json"
SOURCE_HINT = "get the MIntRec folder as https://github.com/thuiar/MIntRec describes"
TEXT_BATCH = 64              # samples per BERT forward pass when computing `text`
NAMED_AT_MOST = 5            # how many missing keys / unknown labels an error names



def _error(message: str, kind: type[DataError] = DataError, **fields) -> DataError:
    # One line, whatever the file's keys and texts hold.
    return kind(" ".join(message.split("\n")).replace("\r", " "), **fields)


def mintrec_facts() -> dict:
    """The `mintrec` entry of configs/datasets.yaml."""
    return datasets_table()[NAME]


def label_names() -> tuple:
    """The 20 intents in MIntRec's index order."""
    return tuple(mintrec_facts()["label_names"])


# ------------------------------------------------------------------------------ the folder

def resolve_mintrec_folder(data_root=None, feature_path=None) -> tuple[Path, str]:
    """The MIntRec folder, and where its location came from (for messages).

    `feature_path` is the folder itself. `data_root` is the folder holding `MIntRec/` (as
    for the MMSA datasets and MIntRec's own `--data_path`); a data root that is itself a
    MIntRec folder (it holds train.tsv) is taken as is. Without either, the data root is
    $MMSA_DATA_ROOT, else ~/MMSA/datasets.
    """
    from .mmsa_format import DATA_ROOT_ENV, DEFAULT_DATA_ROOT
    if feature_path is not None:
        return Path(feature_path).expanduser(), "given as the feature path"
    if data_root is not None:
        root, how = Path(data_root).expanduser(), "the data root given"
        if not (root / mintrec_facts()["files"]["unaligned"]).is_dir() and (root / TSV_FILES["train"]).is_file():
            return root, how
    elif os.environ.get(DATA_ROOT_ENV):
        root, how = Path(os.environ[DATA_ROOT_ENV]).expanduser(), f"${DATA_ROOT_ENV}"
    else:
        root, how = Path(DEFAULT_DATA_ROOT).expanduser(), f"the default data root; set ${DATA_ROOT_ENV} to change it"
    return root / mintrec_facts()["files"]["unaligned"], how


def missing_files(folder: Path) -> list[str]:
    """The files of MIntRec's layout that `folder` lacks (relative paths)."""
    wanted = [*TSV_FILES.values(), *FEATURE_FILES.values()]
    return [name for name in wanted if not (folder / name).is_file()]


def _synthetic_marker(folder: Path) -> tuple[dict, dict | None, str | None]:
    """(padded lengths {text, audio, vision}, the generator's stamp, the marker's sha256): MIntRec's
    lengths and (None, None) without synthetic.json, else what the marker says."""
    lens = dict(mintrec_facts()["max_seq_lens"])
    marker_path = folder / SYNTHETIC_MARKER
    if not marker_path.is_file():
        return lens, None, None
    raw = marker_path.read_bytes()
    try:
        marker = json.loads(raw.decode("utf-8"))
        lens.update({m: int(marker["max_seq_lens"][m]) for m in MODALITIES})
    except (ValueError, KeyError, TypeError) as e:
        raise _error(f"{marker_path}: expected the synthetic generator's JSON with max_seq_lens "
                     f"for {', '.join(MODALITIES)} ({type(e).__name__}); delete the folder "
                     f"and write it again") from None
    return lens, marker.get("stamp"), hashlib.sha256(raw).hexdigest()


def folder_digest(digests: dict) -> str:
    """sha256 over {file name: sha256} of a folder's data files, in name order."""
    combined = "".join(f"{name} {digests[name]}\n" for name in sorted(digests))
    return hashlib.sha256(combined.encode()).hexdigest()


# ------------------------------------------------------------------------------ TSV files

@dataclass
class _Rows:
    """One split's TSV: sample keys, raw texts, label strings, their line numbers, the file's sha256."""
    keys: list
    texts: list
    labels: list
    lines: list
    sha256: str


def _rows(reader, path: Path, split: str):
    """The reader's rows; a csv.Error (a field over csv's 128 KiB limit, a NUL byte) is a DataError."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise _error(f"{path}: split '{split}', line {reader.line_num}: not a MIntRec TSV row ({e})") from None
        yield row


MAX_TSV_BYTES = 64 << 20     # MIntRec's train.tsv is about 100 KB, MIntRec 2.0's under 1 MB


def _read_tsv(path: Path, split: str) -> _Rows:
    with open(path, "rb") as f:     # bounded: a 3 GB file was read whole, a MemoryError traceback under ulimit -v 4 GB
        raw = f.read(MAX_TSV_BYTES + 1)
    if len(raw) > MAX_TSV_BYTES:
        raise _error(f"{path}: split '{split}': over {MAX_TSV_BYTES >> 20} MiB, far more than a MIntRec TSV holds; "
                     "give the folder of the real TSV files")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _error(f"{path}: split '{split}': expected UTF-8 text, found a bad byte at offset {e.start}") from None
    # MIntRec reads the text column with quoting off (text_pre.py `quotechar=None`).
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    keys, texts, labels, lines = [], [], [], []
    header = None
    for row in _rows(reader, path, split):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue                                    # blank line
        if header is None:
            header = tuple(cell.strip() for cell in row)
            if header != TSV_HEADER:
                raise _error(f"{path}: split '{split}': expected the header {' '.join(TSV_HEADER)} "
                             f"(tab-separated), found {' '.join(header)[:120]!r}")
            continue
        if len(row) != len(TSV_HEADER):
            raise _error(f"{path}: split '{split}', line {reader.line_num}: expected "
                         f"{len(TSV_HEADER)} tab-separated fields ({' '.join(TSV_HEADER)}), found {len(row)}")
        season, episode, clip, utterance, label = row
        keys.append("_".join((season.strip(), episode.strip(), clip.strip())))
        texts.append(utterance)
        labels.append(label.strip())
        lines.append(reader.line_num)
    if header is None or not keys:
        raise _error(f"{path}: split '{split}': expected a header and at least one sample, found "
                     f"{'an empty file' if header is None else 'the header only'}")
    return _Rows(keys, texts, labels, lines, hashlib.sha256(raw).hexdigest())


def _check_keys_unique(folder: Path, rows: dict) -> None:
    seen = {}
    for split in SPLITS:
        for key, line in zip(rows[split].keys, rows[split].lines):
            if key in seen:
                where = seen[key]
                raise _error(f"{folder}: key {key!r} appears twice ({where} and {TSV_FILES[split]} line {line}): "
                             f"every clip must be one sample of one split")
            seen[key] = f"{TSV_FILES[split]} line {line}"


def _label_ids(folder: Path, rows: dict) -> dict:
    """{split: (N,) int64} label indices; every unknown label is counted, the first few named."""
    index = {name: i for i, name in enumerate(label_names())}
    unknown = [(split, line, label) for split in SPLITS
               for label, line in zip(rows[split].labels, rows[split].lines) if label not in index]
    if unknown:
        named = ", ".join(f"{TSV_FILES[s]} line {n} {lab!r}" for s, n, lab in unknown[:NAMED_AT_MOST])
        more = f" and {len(unknown) - NAMED_AT_MOST} more" if len(unknown) > NAMED_AT_MOST else ""
        close = difflib.get_close_matches(unknown[0][2], list(index), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise _error(f"{folder}: {len(unknown)} rows have a label that is not one of MIntRec's 20 intents: "
                     f"{named}{more}{hint}; the labels are {', '.join(index)}")
    return {split: np.array([index[label] for label in rows[split].labels], dtype=np.int64) for split in SPLITS}


# ------------------------------------------------------------------------------ text

def _tokenizer(bert_path: str):
    from transformers import BertTokenizer
    from transformers.utils import logging as hf_logging

    from ..models.common.bert import check_vocab
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()        # a folder without vocab.txt warns; check_vocab says it in one line
    try:
        tokenizer = BertTokenizer.from_pretrained(bert_path, local_files_only=True)
    except (OSError, ValueError, TypeError) as e:
        raise UsageError(f"cannot load a BERT tokenizer from {bert_path} ({type(e).__name__}); it needs "
                         f"vocab.txt: set -c pretrained=/path/to/bert-base-uncased") from None
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
    from ..models.common.bert import WEIGHT_FILES
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

    from ..models.common.bert import BertTextEncoder
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
    """{split: (N, L, hidden) float32 tensor}, from `<folder>/text_features/` when a file for
    this BERT and these token ids is there, else computed and saved there (atomically; a
    folder that cannot be written is only warned about)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

    key = text_feature_key(bert_path, text_bert)
    path = folder / TEXT_CACHE_DIR / f"bert-{key[:24]}.safetensors"
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
    except OSError as e:
        log.warning("cannot cache the text features in %s (%s): they will be computed again next time",
                    path.parent, e.strerror or e)
    return features


# ------------------------------------------------------------------------------ frame features

class _BadValue(Exception):
    """What is wrong with one key's value; the caller names the file, split and key."""


def _frames(value) -> np.ndarray:
    """A feature value as (T, D) float32: a (T, D) array, or a list of (1, D) arrays (MIntRec's
    video form), which numpy stacks to (T, 1, D)."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise _BadValue("an empty list (no frames)")
        try:
            array = np.asarray(value)
        except ValueError:
            raise _BadValue("a list of frames of different shapes") from None
    elif isinstance(value, np.ndarray):
        array = value
    else:
        raise _BadValue(f"a {type(value).__name__}")
    if array.dtype.kind not in "iuf":
        raise _BadValue(f"dtype {array.dtype}")
    if array.ndim == 3 and array.shape[1] == 1:
        array = array[:, 0, :]
    if array.ndim != 2 or array.shape[0] == 0:
        raise _BadValue(f"shape {array.shape}")
    return np.asarray(array, dtype=np.float32)


def _check_finite(path: Path, split: str, keys: list, padded: np.ndarray) -> None:
    # min and max propagate NaN: two fast passes over a clean array, the usual case.
    lo, hi = padded.min(), padded.max()
    if np.isfinite(lo) and np.isfinite(hi):
        return
    bad = ~np.isfinite(padded).reshape(len(padded), -1).all(axis=1)      # per sample
    i = int(np.argmax(bad))
    what = "NaN" if np.isnan(padded[i]).any() else "inf"
    raise _error(f"{path}: split '{split}', key {keys[i]!r}: expected finite values, found {what} "
                 f"(in {int(bad.sum())} samples of this split)")


def _feature_file(folder: Path, modality: str, rows: dict, max_len: int):
    """Read one feature pickle. -> ({split: ((N, max_len, D) float32, (N,) int64 lengths)}, sha256)."""
    rel = FEATURE_FILES[modality]
    path = folder / rel
    hasher = hashlib.sha256()
    feats = safe_pickle.load(path, hasher=hasher)
    if not isinstance(feats, dict):
        raise _error(f"{path}: expected a dict from season_episode_clip keys to frame arrays, "
                     f"found {type(feats).__name__}")

    missing = [(split, key) for split in SPLITS for key in rows[split].keys if key not in feats]
    if missing:
        named = ", ".join(f"{key} ({TSV_FILES[split]})" for split, key in missing[:NAMED_AT_MOST])
        more = f" and {len(missing) - NAMED_AT_MOST} more" if len(missing) > NAMED_AT_MOST else ""
        raise _error(f"{path}: {len(missing)} keys of the TSVs are missing from it: {named}{more}; "
                     f"every TSV row's season_episode_clip must be a key of {Path(rel).name} "
                     f"(is it the file that belongs with these TSVs?)")

    out, dim, cut = {}, None, 0
    for split in SPLITS:
        keys = rows[split].keys
        padded = lengths = None
        for i, key in enumerate(keys):
            # Keys are unique across splits (checked), so each value can be dropped once copied:
            # the file's arrays and the padded ones are never all in memory together.
            try:
                frames = _frames(feats.pop(key))
            except _BadValue as e:
                raise _error(f"{path}: split '{split}', key {key!r}: expected a (T, D) array or a list of "
                             f"(1, D) arrays of numbers, found {e}") from None
            if dim is None:
                dim = frames.shape[1]
            if frames.shape[1] != dim:
                raise _error(f"{path}: split '{split}', key {key!r}: expected {dim} features per frame like "
                             f"the other keys, found {frames.shape[1]}")
            if padded is None:
                padded = np.zeros((len(keys), max_len, dim), dtype=np.float32)
                lengths = np.zeros(len(keys), dtype=np.int64)
            n = min(len(frames), max_len)
            cut += len(frames) > max_len
            padded[i, :n] = frames[:n]
            lengths[i] = n
        _check_finite(path, split, keys, padded)
        out[split] = (padded, lengths)
    if cut:
        log.info("mintrec: cut %d %s sequences to %d frames", cut, modality, max_len)
    return out, hasher.hexdigest()


# ------------------------------------------------------------------------------ the loader

def load_mintrec(data_root=None, feature_path=None, *, pretrained=None, with_text_features: bool = True) -> Dataset:
    """Read, validate and convert a MIntRec folder; see the module docstring.

    `pretrained`: the BERT whose tokenizer (and, for `text`, encoder) is used: a local folder
    or a hub id already in the Hugging Face cache; default datasets.yaml's bert-base-uncased.
    `with_text_features=False` skips the `text` features (only `text_bert` is kept).
    """
    from ..models.common.bert import resolve_bert_path

    folder, how = resolve_mintrec_folder(data_root, feature_path)
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "not found"
        message = (f"mintrec folder {what} at {folder} ({how}): {SOURCE_HINT} and put it there, "
                   f"or run with --synthetic")
        if folder.exists():
            raise _error(message)
        raise _error(message, MissingDataError, what="mintrec folder", path=folder)
    lacking = missing_files(folder)
    if lacking:
        raise _error(f"mintrec folder {folder} ({how}) lacks {', '.join(lacking)}: it must hold "
                     f"{', '.join([*TSV_FILES.values(), *FEATURE_FILES.values()])}; {SOURCE_HINT}")
    max_lens, stamp, marker_sha256 = _synthetic_marker(folder)

    # Cheap checks first: TSVs, labels, the BERT path; the big pickles after.
    rows = {split: _read_tsv(folder / TSV_FILES[split], split) for split in SPLITS}
    _check_keys_unique(folder, rows)
    labels = _label_ids(folder, rows)
    bert_path = resolve_bert_path(pretrained or mintrec_facts()["config"]["pretrained"])
    tokenizer = _tokenizer(bert_path)
    text_bert = {split: tokenize(rows[split].texts, tokenizer, max_lens["text"]) for split in SPLITS}

    frames, digests = {}, {TSV_FILES[s]: rows[s].sha256 for s in SPLITS}
    for modality in ("audio", "vision"):
        frames[modality], digests[FEATURE_FILES[modality]] = _feature_file(folder, modality, rows, max_lens[modality])

    with open(Path(bert_path) / "config.json", encoding="utf-8") as f:
        hidden = int(json.load(f).get("hidden_size", 768))
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

    recipe = stamped_recipe(stamp, folder_digest(digests))
    synthetic = recipe is not None
    if synthetic:
        source = f"synthetic:{recipe}"
    else:
        if marker_sha256 is not None:       # it set the padded lengths: part of what was loaded
            digests[SYNTHETIC_MARKER] = marker_sha256
        source = "sha256:" + folder_digest(digests)

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
