"""Load an MMSA feature pickle (MOSI, MOSEI, CH-SIMS, CH-SIMS v2) into a validated `Dataset`.

The file is one pickle `{'train': {...}, 'valid': {...}, 'test': {...}}` laid out as in
MMSA's README (reference/mmsa.md 1.1). Unlike MMSA, which unpickles the file once per split
and trusts its contents, this module:

- unpickles it once, with `safe_pickle` (no code in the file can run, and no small file can
  exhaust time or memory), hashing the bytes it reads on a worker thread, so the dataset's
  `source` is the file's sha256 without a second read; `synthetic:<recipe>` only for a file
  the generator wrote, proven by its stamp (stamp.py), never by what the sample ids say;
- checks every split before anything trains, and reports the first problem as one line
  naming the file, the split, the key and what was expected versus found;
- keeps the arrays' memory: float32 arrays become tensors with `torch.from_numpy`, so a
  loaded dataset costs about the file's size, not a multiple of it.

Dims and padded lengths are read from the data, never from a config (MMSA's SIMSv2 config
is wrong and it only works because the loader overwrites it).
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import torch

from ..cache import file_version, remember, remembered
from ..config import dataset_facts
from ..errors import DataError, MissingDataError, UsageError
from . import safe_pickle
from .spec import MODALITIES, Dataset, DatasetSpec, Split
from .stamp import STAMP_KEY, content_sha256, stamped_recipe

log = logging.getLogger("mmsa_atsuko")


# Where feature files live when neither `data_root` nor `feature_path` is given: the
# folder named by $MMSA_DATA_ROOT, else ~/MMSA/datasets. Below it, each file sits at the
# relative path datasets.yaml gives (e.g. MOSI/Processed/unaligned_50.pkl), which is the
# layout of MMSA's published folder, so a downloaded copy can be used as is.
DATA_ROOT_ENV = "MMSA_DATA_ROOT"
DEFAULT_DATA_ROOT = "~/MMSA/datasets"

SPLITS = ("train", "valid", "test")
UNIMODAL_LABEL_KEYS = {"label_T": "regression_labels_T", "label_A": "regression_labels_A",
                       "label_V": "regression_labels_V"}
LABEL_TOLERANCE = 1e-6        # labels stored as float32 may sit a hair outside the range
BERT_HIDDEN = 768             # the text dim models see when only `text_bert` (ids) is stored

# Checks that need a boolean temporary walk big arrays in blocks of about this many bytes,
# so validating a multi-GB MOSEI split never allocates a second copy of it.
_BLOCK_BYTES = 64 << 20


def _data_error(message: str, kind: type[DataError] = DataError, **fields) -> DataError:
    # The CLI prints a DataError as one line; key names and paths come from the file system
    # and the file, so a stray newline in them must not break that.
    return kind(message.replace("\r", " ").replace("\n", " "), **fields)


def _facts(name: str) -> dict:
    facts = dataset_facts(name)
    if facts["format"] != "mmsa":
        raise UsageError(f"dataset {name!r} is not in MMSA's pickle format (datasets.yaml format: {facts['format']})")
    return facts


def _setting(aligned: bool) -> str:
    return "aligned" if aligned else "unaligned"


def _resolve(name: str, aligned: bool, data_root, feature_path) -> tuple[Path, str]:
    """The file to read, and where its location came from (for the missing-file message)."""
    facts = _facts(name)
    if feature_path is not None:
        # An explicit file is taken as is, even an aligned one for a dataset MMSA publishes
        # only unaligned: the user has made one.
        return Path(feature_path).expanduser(), "given as the feature path"
    files = facts["files"]
    if _setting(aligned) not in files:
        have = " and ".join(files)
        raise UsageError(f"{name} has no {_setting(aligned)} feature file (MMSA publishes only {have}): "
                         f"drop --aligned, or pass your own aligned file as the feature path")
    if data_root is not None:
        root, how = data_root, "the data root given"
    elif os.environ.get(DATA_ROOT_ENV):
        root, how = os.environ[DATA_ROOT_ENV], f"${DATA_ROOT_ENV}"
    else:
        root, how = DEFAULT_DATA_ROOT, f"the default data root; set ${DATA_ROOT_ENV} to change it"
    return Path(root).expanduser() / files[_setting(aligned)], how


def resolve_feature_path(name: str, aligned: bool = False, data_root=None, feature_path=None) -> Path:
    """Where the feature file of `name` is: `feature_path` if given, else
    `<data_root>/<files[aligned|unaligned] in datasets.yaml>`, with data_root defaulting to
    $MMSA_DATA_ROOT, then ~/MMSA/datasets. Asking for aligned data that MMSA does not publish
    (sims, simsv2) is a UsageError."""
    return _resolve(name.lower(), aligned, data_root, feature_path)[0]


def load_dataset(name: str, *, aligned: bool = False, data_root=None, feature_path=None) -> Dataset:
    """Read, validate and convert one MMSA feature pickle; see the module docstring."""
    name = name.lower()
    facts = _facts(name)
    path, how = _resolve(name, aligned, data_root, feature_path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "not found"
        fix = ("check the path" if feature_path is not None else
               f"run `python run.py download {name}{' --aligned' if aligned else ''}` or put the file there")
        message = (f"{name} {_setting(aligned)} features {what} at {path} ({how}): {fix}, "
                   f"or run with --synthetic")
        if path.exists():
            raise _data_error(message)
        raise _data_error(message, MissingDataError, what=f"{name} {_setting(aligned)} features", path=path)

    # The file is read once; its sha256 is finished on a worker thread while the splits
    # are checked below (the check only reads the arrays until `digest()` has returned).
    # What was found for this very version of the file (cache.file_version) is reused: hashing
    # costs more than unpickling (sha256 runs at ~1.4 GB/s, a memcpy-bound load at ~2).
    version = file_version(path)
    known = remembered(path, version)
    if "sha256" in known:
        raw, digest = safe_pickle.load(path), lambda: known["sha256"]
    else:
        raw, digest = safe_pickle.load_hashing(path, hashlib.sha256())
    if not isinstance(raw, dict):
        raise _data_error(f"{path}: expected a dict of splits {', '.join(SPLITS)}, "
                          f"found {type(raw).__name__}")
    stamp = raw.pop(STAMP_KEY, None)

    extractor = _extractor(path, raw)
    checker = _Checker(path, facts, aligned)
    splits, shapes = {}, None
    for split in SPLITS:
        if split not in raw:
            raise _data_error(f"{path}: split '{split}' is missing: expected splits "
                              f"{', '.join(SPLITS)}, found {_key_names(raw)}")
        splits[split], split_shapes = checker.split(split, raw[split], shapes)
        shapes = shapes or split_shapes
    # Generated data is named by its recipe only if the stamp's hash of the content holds
    # (hashed before the -inf below are zeroed in place).
    if "synthetic" in known:
        recipe = known["synthetic"]
    else:
        recipe = stamped_recipe(stamp, content_sha256(raw)) if stamp is not None else None
    del raw    # drops what was not kept (raw_text, float text_bert, ...) before returning
    sha256 = digest()
    if known.keys() < {"sha256", "synthetic"}:
        remember(path, version, {"sha256": sha256, "synthetic": recipe})

    # Only now may arrays change in place. MMSA zeroes -inf in audio only (silent frames of
    # log-energy features); vision gets the same rather than letting -inf reach a model.
    replaced = {m: dict.fromkeys(SPLITS, 0) for m in ("audio", "vision")}
    for (split, modality), array in checker.neginf.items():
        replaced[modality][split] = _zero_neginf(array)
    for modality, counts in replaced.items():
        if sum(counts.values()):
            per_split = ", ".join(f"{s} {c}" for s, c in counts.items())
            log.info(f"{name}: replaced {sum(counts.values())} -inf values in {modality} with 0 "
                     f"({per_split})")

    synthetic = recipe is not None
    source = f"synthetic:{recipe}" if synthetic else f"sha256:{sha256}"

    has_text = "text" in splits["train"].tensors
    spec = DatasetSpec(
        name=name, task=facts["task"], num_classes=1,
        label_range=tuple(float(x) for x in facts["label_range"]),
        feature_dims={"text": shapes["text_dim"] if has_text else BERT_HIDDEN,
                      "audio": shapes["audio_dim"], "vision": shapes["vision_dim"]},
        seq_lens={m: shapes[f"{m}_len"] for m in MODALITIES},
        aligned=aligned, language=facts["language"],
        key_metric=facts.get("config", {}).get("key_eval", "Loss"),
        has_text_bert="text_bert" in splits["train"].tensors, has_text_features=has_text,
        unimodal_labels=bool(facts.get("unimodal_labels")), source=source, path=str(path),
        split_sizes={s: len(splits[s]) for s in SPLITS}, synthetic=synthetic, extractor=extractor)
    return Dataset(spec, splits["train"], splits["valid"], splits["test"])


def _key_names(mapping: dict, shown: int = 20) -> str:
    """A loaded dict's keys for a message: strings (shortened) by name, anything else by type;
    an arbitrary object's str() could take any time and memory."""
    names = [key[:40] if isinstance(key, str) else f"<{type(key).__name__}>" for key in list(mapping)[:shown]]
    more = f" and {len(mapping) - shown} more" if len(mapping) > shown else ""
    return ", ".join(names) + more if names else "nothing"


# Written by `run.py extract` (data/extract): which extractor made the file and with what settings.
EXTRACTOR_KEY = "meta/extractor"


def _extractor(path: Path, raw: dict, for_training: bool = True) -> dict | None:
    """The file's extractor record without its library versions (what run records carry), or None."""
    meta = raw.get(EXTRACTOR_KEY)
    if meta is None:
        return None
    if not isinstance(meta, dict) or not all(k in meta for k in ("name", "version", "config_hash")):
        raise _data_error(f"{path}: key '{EXTRACTOR_KEY}': expected a dict with name, version and config_hash")
    if for_training and meta.get("labels") is False:
        raise _data_error(f"{path} was extracted without labels: it can be predicted on (run.py predict), not "
                          f"trained on; add a label column to the transcripts and extract again")
    return {k: meta[k] for k in ("name", "version", "config_hash", "config", "bert", "labels") if k in meta}


def load_for_prediction(name: str, path, *, aligned: bool = False) -> tuple[dict, dict, dict | None]:
    """(splits, shapes, extractor) of a feature file that `predict` reads.

    Unlike `load_dataset`, any of train/valid/test may be missing (a file extracted for
    prediction holds only `test`), and labels may be placeholders; every split present is
    checked just as strictly. `shapes` holds `<modality>_dim`, `<modality>_len` and
    `text_keys`, as read from the first split."""
    name, path = name.lower(), Path(path)
    facts = _facts(name)
    if not path.is_file():
        raise _data_error(f"feature file {path} not found")
    raw = safe_pickle.load(path)
    if not isinstance(raw, dict):
        raise _data_error(f"{path}: expected a dict of splits {', '.join(SPLITS)}, found {type(raw).__name__}")
    extractor = _extractor(path, raw, for_training=False)
    checker = _Checker(path, facts, aligned)
    splits, shapes = {}, None
    for split in SPLITS:
        if split in raw:
            splits[split], split_shapes = checker.split(split, raw[split], shapes)
            shapes = shapes or split_shapes
    if not splits:
        raise _data_error(f"{path}: no split {', '.join(SPLITS)} in it (found {', '.join(map(str, raw)) or 'nothing'})")
    for array in checker.neginf.values():
        _zero_neginf(array)
    return splits, shapes, extractor


class _Checker:
    """Validates and converts one split at a time; every failure is one DataError line."""

    def __init__(self, path: Path, facts: dict, aligned: bool):
        self.path = path
        self.facts = facts
        self.aligned = aligned
        self.split_name, self.n, self.ids = None, None, None
        self.neginf = {}     # (split, modality) -> float32 array holding -inf, zeroed later

    def fail(self, key: str, expected: str, found: str):
        raise _data_error(f"{self.path}: split '{self.split_name}', key '{key}': "
                          f"expected {expected}, found {found}")

    def _sample(self, i: int) -> str:
        return f"sample {i} (id {self.ids[i][:80]!r})" if self.ids else f"sample {i}"

    # -- one split -------------------------------------------------------------------------

    def split(self, split: str, data, train_shapes: dict | None):
        """-> (Split, shapes). `train_shapes`: None for train itself."""
        self.split_name, self.n, self.ids = split, None, None
        if not isinstance(data, dict):
            raise _data_error(f"{self.path}: split '{split}': expected a dict of arrays, "
                              f"found {type(data).__name__}")
        self._require_keys(data)

        # The sentiment labels define N; every other key must agree with them.
        labels = self.array(data, "regression_labels", "vector")
        self.n = len(labels)
        self.ids = self._ids(data["id"])

        # Shapes first (cheap), so a mismatched file fails before any full pass over it.
        text = self.array(data, "text", 3) if "text" in data else None
        bert = self.array(data, "text_bert", 3) if "text_bert" in data else None
        audio = self.array(data, "audio", 3)
        vision = self.array(data, "vision", 3)
        if bert is not None and bert.shape[1] != 3:
            self.fail("text_bert", "shape (N, 3, L): input ids, attention mask, segment ids",
                      f"shape {bert.shape}")
        shapes = {"text_keys": tuple(k for k in ("text", "text_bert") if k in data),
                  "text_len": bert.shape[2] if bert is not None else text.shape[1],
                  "audio_len": audio.shape[1], "vision_len": vision.shape[1],
                  "text_dim": text.shape[2] if text is not None else None,
                  "audio_dim": audio.shape[2], "vision_dim": vision.shape[2]}
        if text is not None and bert is not None and text.shape[1] != bert.shape[2]:
            self.fail("text", f"{bert.shape[2]} time steps like 'text_bert'", f"shape {text.shape}")
        if self.aligned:
            for key, array in (("audio", audio), ("vision", vision)):
                if array.shape[1] != shapes["text_len"]:
                    self.fail(key, f"{shapes['text_len']} time steps like the text (aligned data)",
                              f"shape {array.shape}")
        if train_shapes is not None:
            self._same_as_train(shapes, train_shapes)

        tensors = {}
        if text is not None:
            text = self.features("text", text)
            tensors["text"] = torch.from_numpy(text)
        # Lengths and masks are computed in numpy and wrapped at the end: the first torch
        # reduction of a process starts torch's thread pool (tens of ms), which belongs to
        # training, not to reading a file.
        if bert is not None:
            bert = self.text_bert(bert)
            tensors["text_bert"] = torch.from_numpy(bert)
            # Row 1 is BERT's attention mask: its sum is the number of real tokens.
            text_lengths = bert[:, 1].sum(axis=1)
        else:
            # Without BERT inputs, a time step is real if its feature row is not all zeros
            # (padding is zeros). max/min along the feature axis find the non-zero rows
            # without a full-size boolean temporary.
            nonzero = (text.max(axis=2) != 0) | (text.min(axis=2) != 0)
            text_lengths = nonzero.sum(axis=1).astype(np.int64)
        for key, array in (("audio", audio), ("vision", vision)):
            tensors[key] = torch.from_numpy(self.features(key, array, neginf_ok=True))

        lengths = {"text": text_lengths}
        for key in ("audio", "vision"):
            # Aligned frames follow the text tokens; MMSA never reads stored lengths there.
            lengths[key] = (text_lengths.copy() if self.aligned
                            else self.lengths(data, f"{key}_lengths", shapes[f"{key}_len"]))
        for m in MODALITIES:
            tensors[f"{m}_lengths"] = torch.from_numpy(lengths[m])
            tensors[f"{m}_mask"] = torch.from_numpy(np.arange(shapes[f"{m}_len"])[None, :] < lengths[m][:, None])

        tensors["label"] = torch.from_numpy(self.labels("regression_labels", labels))
        if self.facts.get("unimodal_labels"):
            for name, key in UNIMODAL_LABEL_KEYS.items():
                tensors[name] = torch.from_numpy(self.labels(key, self.array(data, key, "vector")))
        return Split(split, tensors, self.ids), shapes

    def _require_keys(self, data: dict):
        required = ["audio", "vision", "regression_labels", "id"]
        if not self.aligned:
            required += ["audio_lengths", "vision_lengths"]
        if self.facts.get("unimodal_labels"):
            required += list(UNIMODAL_LABEL_KEYS.values())
        found = f"no such key (keys: {_key_names(data)})"
        if "text" not in data and "text_bert" not in data:
            self.fail("text", "'text' (features) or 'text_bert' (BERT inputs)", found)
        for key in required:
            if key not in data:
                if key in UNIMODAL_LABEL_KEYS.values():     # most likely another dataset's file, e.g. extract's
                    self.fail(key, "this key (this dataset's files carry unimodal labels T/A/V)",
                              f"{found}; is it a file of another dataset? (extract writes them only from "
                              f"label_T/A/V columns: train its files without them with -d mosi, or declare a "
                              f"dataset without unimodal_labels in a --datasets FILE)")
                self.fail(key, "this key", found)

    def _ids(self, value) -> list:
        if isinstance(value, np.ndarray):
            value = value.reshape(-1).tolist()
        elif not isinstance(value, (list, tuple)):
            self.fail("id", "a list or array of 'video$_$clip' strings", type(value).__name__)
        self._count("id", len(value))
        # A few thousand short strings: a Python pass over them is cheap.
        for i, item in enumerate(value):
            # str() of anything else could be as large as the object (numbers are fine).
            if not (isinstance(item, (str, bytes, np.integer)) or (type(item) is int and item.bit_length() <= 64)):
                self.fail("id", "'video$_$clip' strings", f"a {type(item).__name__} at sample {i}")
        return [i.decode("utf-8", "replace") if isinstance(i, bytes) else str(i) for i in value]

    def _same_as_train(self, shapes: dict, train: dict):
        # Models size buffers (positional tables, spectral bases) once per padded length, so
        # every split must be padded to the same length, hold the same text keys and, of
        # course, share feature dims.
        for key in ("text", "text_bert"):
            if (key in train["text_keys"]) != (key in shapes["text_keys"]):
                self.fail(key, f"text keys {', '.join(train['text_keys'])} as in train "
                               f"(every split must hold the same inputs)",
                          f"{', '.join(shapes['text_keys'])}")
        text_key = "text_bert" if "text_bert" in train["text_keys"] else "text"
        for what, key in (("text_len", text_key), ("text_dim", "text"), ("audio_len", "audio"),
                          ("audio_dim", "audio"), ("vision_len", "vision"), ("vision_dim", "vision")):
            if shapes[what] != train[what]:
                kind = "padded length" if what.endswith("_len") else "feature dim"
                self.fail(key, f"{kind} {train[what]} as in train (every split must be alike)",
                          f"{kind} {shapes[what]}")

    # -- arrays ----------------------------------------------------------------------------

    def _count(self, key: str, n: int):
        if self.n is not None and n != self.n:
            self.fail(key, f"{self.n} samples like 'regression_labels'", f"{n}")

    def array(self, data: dict, key: str, rank) -> np.ndarray:
        """`data[key]` as a real numeric ndarray of N samples (no copy). `rank` is the number
        of dims, or "vector" for a per-sample value stored as (N,) or (N, 1) (returned as (N,))."""
        value = data[key]
        try:
            array = np.asarray(value)
        except ValueError:
            self.fail(key, "a numeric array", f"a ragged {type(value).__name__}")
        if array.dtype.kind not in "iuf":
            self.fail(key, "a numeric (int or float) array", f"dtype {array.dtype}")
        if rank == "vector":
            ok = array.ndim == 1 or (array.ndim == 2 and array.shape[1] == 1)
            expected = "shape (N,) or (N, 1)"
        else:
            ok, expected = array.ndim == rank, f"a {rank}-D array"
        if not ok:
            self.fail(key, expected, f"shape {array.shape}")
        self._count(key, array.shape[0])
        if array.shape[0] == 0:
            self.fail(key, "at least one sample", "0")
        return array.reshape(-1) if rank == "vector" else array

    def labels(self, key: str, values: np.ndarray) -> np.ndarray:
        values = np.require(values, np.float32, ("C", "W", "A"))
        self.finite(key, values)
        lo, hi = self.facts["label_range"]
        outside = (values < lo - LABEL_TOLERANCE) | (values > hi + LABEL_TOLERANCE)
        if outside.any():
            i = int(outside.argmax())
            self.fail(key, f"labels in [{lo:g}, {hi:g}]",
                      f"{int(outside.sum())} outside, first {self._sample(i)} = {values[i]:g}")
        return values

    def lengths(self, data: dict, key: str, padded: int) -> np.ndarray:
        values = self.array(data, key, "vector")
        if values.dtype.kind == "f":
            self.finite(key, values)
            fractional = values != np.floor(values)
            if fractional.any():
                i = int(fractional.argmax())
                self.fail(key, "whole numbers of frames", f"{self._sample(i)} = {values[i]:g}")
        values = values.astype(np.int64)
        bad = (values < 0) | (values > padded)
        if bad.any():
            i = int(bad.argmax())
            self.fail(key, f"lengths in [0, {padded}] (the padded length of '{key[:-len('_lengths')]}')",
                      f"{self._sample(i)} = {values[i]}")
        return values

    def features(self, key: str, array: np.ndarray, neginf_ok: bool = False) -> np.ndarray:
        """float32, C-contiguous and writable (copied only when the file's array is not),
        checked for NaN/inf. With `neginf_ok`, an array holding -inf is noted in
        `self.neginf` for load_dataset to zero once the file's hash is done."""
        array = np.require(array, np.float32, ("C", "W", "A"))
        if self.finite(key, array, neginf_ok=neginf_ok):
            self.neginf[(self.split_name, key)] = array
        return array

    def text_bert(self, array: np.ndarray) -> np.ndarray:
        """MMSA stores BERT ids as float; cast to int64 after checking nothing is lost."""
        if array.dtype.kind == "f":
            self.finite("text_bert", array)
            as_int = array.astype(np.int64)
            lost = as_int != array
            if lost.any():
                i = int(lost.reshape(len(array), -1).any(axis=1).argmax())
                self.fail("text_bert", "whole-number token ids, mask and segment ids",
                          f"fractional values, first in {self._sample(i)}")
        else:
            as_int = np.require(array, np.int64, ("C", "W", "A"))
        if as_int.min() < 0:
            i = int((as_int < 0).reshape(len(as_int), -1).any(axis=1).argmax())
            self.fail("text_bert", "non-negative ids", f"{as_int.min()} in {self._sample(i)}")
        mask = as_int[:, 1]
        if not ((mask == 0) | (mask == 1)).all():
            self.fail("text_bert", "an attention mask (row 1) of 0s and 1s",
                      f"values {np.unique(mask)[:6].tolist()}")
        return as_int

    def finite(self, key: str, array: np.ndarray, neginf_ok: bool = False) -> bool:
        """Fail on NaN or +inf, and on -inf unless `neginf_ok`. Returns whether -inf is there."""
        if array.size == 0:
            return False
        # A sum propagates NaN and +-inf (and is non-finite on overflow), so a clean array,
        # nearly every array, costs one reduction with no temporary; only a non-finite sum
        # pays for the passes that say what is wrong.
        if np.isfinite(np.add.reduce(array, axis=None)):
            return False
        lo, hi = array.min(), array.max()
        if np.isnan(lo) or np.isnan(hi):
            count, first = _count_where(array, np.isnan)
            self.fail(key, "no NaN", f"{count} NaN, first in {self._sample(first)}")
        if hi == np.inf:
            count, first = _count_where(array, np.isposinf)
            self.fail(key, "no +inf", f"{count} +inf, first in {self._sample(first)}")
        if lo == -np.inf and not neginf_ok:
            count, first = _count_where(array, np.isneginf)
            self.fail(key, "no -inf", f"{count} -inf, first in {self._sample(first)}")
        return bool(lo == -np.inf)


def _blocks(array: np.ndarray):
    """(first sample, view) over `array` in blocks of about _BLOCK_BYTES along axis 0."""
    per_sample = max(1, array[0].nbytes if array.ndim > 1 else array.itemsize)
    step = max(1, _BLOCK_BYTES // per_sample)
    for start in range(0, len(array), step):
        yield start, array[start:start + step]


def _count_where(array: np.ndarray, predicate) -> tuple[int, int]:
    """How many elements satisfy `predicate`, and the first sample holding one."""
    count, first = 0, None
    for start, block in _blocks(array):
        hits = predicate(block)
        n = int(np.count_nonzero(hits))
        if n and first is None:
            first = start + int(hits.reshape(len(block), -1).any(axis=1).argmax())
        count += n
    return count, first


def _zero_neginf(array: np.ndarray) -> int:
    """Replace -inf with 0 in place (MMSA's silent-frame fix); return how many there were."""
    count = 0
    for _, block in _blocks(array):
        # `== -inf` and copyto(where=) are single ufunc passes; np.isneginf and boolean
        # indexing take several times longer on a MOSEI-sized audio array.
        hits = np.equal(block, -np.inf)
        n = int(np.count_nonzero(hits))
        if n:
            np.copyto(block, 0, where=hits)
            count += n
    return count
