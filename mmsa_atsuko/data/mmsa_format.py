"""Load an MMSA feature pickle (MOSI, MOSEI, CH-SIMS, CH-SIMS v2) into a validated `Dataset`.

The file is one pickle `{'train': {...}, 'valid': {...}, 'test': {...}}` laid out as in
MMSA's README (thuiar/MMSA:README.md). Unlike MMSA, which unpickles the file once per split
and trusts its contents, this module:

- unpickles it once, with `safe_pickle` (no code in the file can run, and no small file can
  exhaust time or memory), hashing the bytes it reads on a worker thread, so the dataset's
  `source` is the file's sha256 without a second read; `synthetic:<recipe>` only for a file
  the generator wrote, proven by its stamp (stamp.py), never by what the sample ids say;
- checks every split before anything trains (`mmsa_checks`), and reports the first problem
  as one line naming the file, the split, the key and what was expected versus found;
- keeps the arrays' memory: float32 arrays become tensors with `torch.from_numpy`, so a
  loaded dataset costs about the file's size, not a multiple of it.

Dims and padded lengths are read from the data, never from a config (MMSA's SIMSv2 config
is wrong and it only works because the loader overwrites it).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from ..atomic import not_a_file
from ..cache import file_version, remember, remembered
from ..config import dataset_facts
from ..errors import DataError, MissingDataError, UsageError
from .. import safe_pickle
from .array_blocks import zero_neginf
from .mmsa_checks import SplitChecker, key_names
from .spec import MODALITIES, Dataset, DatasetSpec
from .stamp import STAMP_KEY, content_sha256, stamped_recipe, synthetic_data_id

log = logging.getLogger("mmsa_atsuko")


# Where feature files live when neither `data_root` nor `feature_path` is given: the
# folder named by $MMSA_DATA_ROOT, else ~/MMSA/datasets. Below it, each file sits at the
# relative path datasets.yaml gives (e.g. MOSI/Processed/unaligned_50.pkl), which is the
# layout of MMSA's published folder, so a downloaded copy can be used as is.
DATA_ROOT_ENV = "MMSA_DATA_ROOT"
DEFAULT_DATA_ROOT = "~/MMSA/datasets"

SPLITS = ("train", "valid", "test")
BERT_HIDDEN = 768             # the text dim models see when only `text_bert` (ids) is stored


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


def load_dataset(name: str, *, aligned: bool = False, data_root=None, feature_path=None,
                 strict_ids: bool = False) -> Dataset:
    """Read, validate and convert one MMSA feature pickle; see the module docstring.
    `strict_ids`: sample ids must also be strings and unique across the file (as in MMSA's
    files; `run.py download` checks a file with no published sha256 so)."""
    name = name.lower()
    facts = _facts(name)
    path, how = _resolve(name, aligned, data_root, feature_path)
    what = not_a_file(path)
    if what:
        # MMSA's datasets (`download:` in datasets.yaml) can be downloaded and have a synthetic version;
        # a dataset of your own has neither, so its fix is where the file goes.
        published = "download" in facts
        if feature_path is not None:
            fix = "check the path"
        elif published:
            fix = f"run `python run.py download {name}{' --aligned' if aligned else ''}` or put the file there"
        else:
            fix = "put the file there, or give --data-root DIR, the folder its `files:` entry is under"
        message = (f"{name} {_setting(aligned)} features {what} at {path} ({how}): {fix}"
                   + (", or run with --synthetic" if published else ""))
        if os.path.exists(path):        # Path.exists() raises for a name too long; os.path's says False
            raise DataError(message)
        raise MissingDataError(message, what=f"{name} {_setting(aligned)} features", path=path)

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
        raise DataError(f"{path}: expected a dict of splits {', '.join(SPLITS)}, "
                        f"found {type(raw).__name__}")
    stamp = raw.pop(STAMP_KEY, None)

    extractor = _extractor(path, raw)
    checker = SplitChecker(path, facts, aligned, strict_ids=strict_ids)
    splits, shapes = {}, None
    for split in SPLITS:
        if split not in raw:
            raise DataError(f"{path}: split '{split}' is missing: expected splits "
                            f"{', '.join(SPLITS)}, found {key_names(raw)}")
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
        replaced[modality][split] = zero_neginf(array)
    for modality, counts in replaced.items():
        if sum(counts.values()):
            per_split = ", ".join(f"{s} {c}" for s, c in counts.items())
            log.info(f"{name}: replaced {sum(counts.values())} -inf values in {modality} with 0 "
                     f"({per_split})")

    synthetic = recipe is not None
    source = synthetic_data_id(recipe) if synthetic else f"sha256:{sha256}"

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


# Written by `run.py extract` (data/extract): which extractor made the file and with what settings.
EXTRACTOR_KEY = "meta/extractor"


# The record goes into every run's model.json (at most 1 MiB) and runs.jsonl line: extract's is under 2 KiB.
MAX_EXTRACTOR_JSON = 64 << 10


# What an extractor record keeps (`run.py extract` writes these; anything else in a file's record is left out).
EXTRACTOR_FIELDS = ("name", "version", "config_hash", "config", "bert", "labels")


def _extractor_problem(meta: dict) -> str | None:
    """What in a file's extractor record is not what `run.py extract` writes (and model.json's reader takes back:
    training.model_card), or None. Unchecked, a record of other types or sizes trained, and the run's own
    model.json was then refused by predict ("not a model.json this toolkit wrote; train the run again")."""
    kept = {k: meta[k] for k in EXTRACTOR_FIELDS if k in meta}
    version = kept["version"]
    if not (type(kept["name"]) is str and type(kept["config_hash"]) is str
            and (type(version) is str or type(version) is int)):
        return "name and config_hash must be strings, version a string or a whole number"
    if type(kept.get("config", {})) not in (dict, type(None)) or type(kept.get("bert")) not in (str, type(None)) \
            or type(kept.get("labels", True)) is not bool:
        return "config must be a mapping, bert a string, labels true or false"
    try:
        text = json.dumps(kept, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as e:     # numpy values, NaN or infinity, a cycle, too deep
        return f"it is no plain JSON record ({type(e).__name__}: {str(e)[:80]})"
    if len(text) > MAX_EXTRACTOR_JSON:
        return f"it takes {len(text):,} characters as JSON, over the {MAX_EXTRACTOR_JSON:,} of any extract's record"
    return None


def _extractor(path: Path, raw: dict, for_training: bool = True) -> dict | None:
    """The file's extractor record without its library versions (what run records carry), or None."""
    meta = raw.get(EXTRACTOR_KEY)
    if meta is None:
        return None
    if not isinstance(meta, dict) or not all(k in meta for k in ("name", "version", "config_hash")):
        raise DataError(f"{path}: key '{EXTRACTOR_KEY}': expected a dict with name, version and config_hash")
    problem = _extractor_problem(meta)
    if problem:
        raise DataError(f"{path}: key '{EXTRACTOR_KEY}': {problem}, as `run.py extract` writes it; extract the "
                        f"file again")
    if for_training and meta.get("labels") is False:
        raise DataError(f"{path} was extracted without labels: it can be predicted on (run.py predict), not "
                        f"trained on; add a label column to the transcripts and extract again")
    return {k: meta[k] for k in EXTRACTOR_FIELDS if k in meta}


def load_for_prediction(name: str, path, *, aligned: bool = False,
                        split: str | None = None) -> tuple[dict, dict, dict | None, str | None]:
    """(splits, shapes, extractor, recipe) of a feature file that `predict` reads; `recipe` names
    generated data whose stamp holds, as `load_dataset`'s data id does (None: a real file).

    Unlike `load_dataset`, any of train/valid/test may be missing (a file extracted for
    prediction holds only `test`), and labels may be placeholders or absent (the unimodal ones are
    not read); every split read is checked just as strictly. `split`: read that one alone (the
    others are neither read nor checked), a UsageError where the file has none. `shapes` holds
    `<modality>_dim`, `<modality>_len` and `text_keys`, as read from the first split."""
    name, path = name.lower(), Path(path)
    facts = _facts(name)
    what = not_a_file(path)          # a named pipe or a link to /dev/zero was "not found", though it is there
    if what:
        raise DataError(f"feature file {path} {what}")
    raw = safe_pickle.load(path)
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a dict of splits {', '.join(SPLITS)}, found {type(raw).__name__}")
    stamp = raw.pop(STAMP_KEY, None)
    extractor = _extractor(path, raw, for_training=False)
    if split is not None and split not in raw:
        held = [s for s in SPLITS if s in raw]
        raise UsageError(f"{path} has no {split} split (it has {', '.join(held) or 'none of train, valid, test'})")
    checker = SplitChecker(path, facts, aligned, labels=False)
    splits, shapes = {}, None
    for which in (split,) if split is not None else SPLITS:
        if which in raw:
            splits[which], split_shapes = checker.split(which, raw[which], shapes)
            shapes = shapes or split_shapes
    if not splits:
        raise DataError(f"{path}: no split {', '.join(SPLITS)} in it (found {', '.join(map(str, raw)) or 'nothing'})")
    # Hashed before the -inf are zeroed in place, as load_dataset hashes it.
    recipe = stamped_recipe(stamp, content_sha256(raw)) if stamp is not None else None
    for array in checker.neginf.values():
        zero_neginf(array)
    return splits, shapes, extractor, recipe
