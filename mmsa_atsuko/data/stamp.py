"""The synthetic generator's stamp: what proves that a dataset is one it wrote.

A run record's data id is the file's sha256, or `synthetic:<recipe>` for generated data, so
that results on generated data never pass for, or skip, real runs. Sample ids prove nothing
(anyone can name a clip 'synthetic_...'), so the generator stores a stamp with the data:
its recipe and the sha256 of the content it wrote. The loader recomputes that hash; a stamp
that does not match, or none at all, means a real file, named by its sha256. (A check
against accidents: real files whose ids look synthetic, generated files edited by hand. It is
no signature; whoever means to forge a stamp can.)

- MMSA pickles carry the stamp under the top-level key STAMP_KEY, beside 'train', 'valid'
  and 'test'. MMSA reads only `data[mode]` and the loader here only the three splits, so the
  file stays a valid MMSA file. The hash covers every split, key and value (`content_sha256`).
- A MIntRec folder's stamp is in its synthetic.json, hashing the five data files' digests
  (see mintrec.folder_digest).
"""
from __future__ import annotations

import hashlib
import struct

import numpy as np

STAMP_KEY = "__synthetic__"
STAMP_FORMAT = 1
SYNTHETIC_DATA_PREFIX = "synthetic:"


def synthetic_data_id(recipe: str) -> str:
    """The data id of data whose stamp holds: 'synthetic:<recipe>'."""
    return SYNTHETIC_DATA_PREFIX + recipe


def is_synthetic(data_id) -> bool:
    """Whether a data id (a run record's `data`, a spec's `source`) names generated data: the one test,
    for every label, table and rule that treats synthetic data apart. A sha256 id, and anything that is
    no string (a stored record is read from a file), is not. A synthetic sample's id starts with its
    data id, so it answers for sample ids too."""
    return isinstance(data_id, str) and data_id.startswith(SYNTHETIC_DATA_PREFIX)


def data_kind(data_id, dataset: str | None = None, aligned: bool = False, split_sizes=None) -> str:
    """The word a CSV's `data_kind` column holds for the runs of `dataset` (its aligned or unaligned file) on data
    `data_id`: 'synthetic' (`is_synthetic`), 'yours' (a dataset of your own, `config.own_dataset`: no published file
    to be), 'not published' (a file other than the one whose sha256 MMSA publishes for the dataset and setting: your
    own videos extracted, a subset, an edited copy), 'not real' (no published sha256, and `split_sizes`, the record's
    {split: N}, differ from datasets.yaml's `real_sizes`: a SIMS v2 subset) or 'real'. Without `dataset`, 'synthetic'
    or 'real'; without `split_sizes` (a record made before records held them) sizes say nothing.
    The one home of the rule: normal/'s file names, every table's title and note, figure titles."""
    if is_synthetic(data_id):
        return "synthetic"
    if dataset is None:
        return "real"
    from ..config import own_dataset, published_sha256, real_sizes_mismatch   # here: the stamp needs numpy only
    if own_dataset(dataset):
        return "yours"
    published = published_sha256(dataset, aligned)
    if published is not None:
        return "not published" if data_id != f"sha256:{published}" else "real"
    if isinstance(split_sizes, dict) and real_sizes_mismatch(dataset, split_sizes):
        return "not real"
    return "real"


def kind_text(kind: str, dataset: str | None = None) -> str:
    """How a title says a `data_kind` word: 'synthetic data', 'your data', 'not the published mosi data', 'not the
    real simsv2 data' or 'real data'."""
    return {"yours": "your data", "not published": f"not the published {dataset} data",
            "not real": f"not the real {dataset} data"}.get(kind, f"{kind} data")


def data_kind_text(data_id, dataset: str | None = None, aligned: bool = False, split_sizes=None) -> str:
    """How every table's title (leaderboard, curves, ablation, comparison, run.py's end table) and figure's says what
    its rows were run on, by `data_kind`."""
    return kind_text(data_kind(data_id, dataset, aligned, split_sizes), dataset)


def recipe_name_of(data_id) -> str | None:
    """The recipe name a synthetic data id holds ('mosi-small-unaligned-seed0-v2'), None for other data."""
    return data_id[len(SYNTHETIC_DATA_PREFIX):] if is_synthetic(data_id) else None


class _Unhashable(Exception):
    """The content holds a value `content_sha256` has no encoding for."""


def _feed(h, value) -> None:
    # Each value is written with its type and length, so no two different contents feed the
    # same bytes. Dicts keep their order: pickle keeps it, so writer and loader agree.
    t = type(value)
    if t is str:
        data = value.encode("utf-8", "surrogatepass")
        h.update(b"s%d:" % len(data))
        h.update(data)
    elif t is dict:
        h.update(b"d%d:" % len(value))
        for key, item in value.items():
            _feed(h, key)
            _feed(h, item)
    elif t is list or t is tuple:
        h.update(b"l%d:" % len(value))
        for item in value:
            _feed(h, item)
    elif t is np.ndarray:
        h.update(f"a{value.dtype.str}{value.shape}:".encode())
        if value.dtype.hasobject:
            for item in value.flat:
                _feed(h, item)
        else:
            h.update(np.ascontiguousarray(value).reshape(-1).view(np.uint8))
    elif t is bool or t is int:
        h.update(b"i%d:" % value)
    elif t is float:
        h.update(b"f" + struct.pack("<d", value))
    elif t is bytes:
        h.update(b"b%d:" % len(value))
        h.update(value)
    elif value is None:
        h.update(b"n")
    else:
        raise _Unhashable(t.__name__)


def content_sha256(content) -> str | None:
    """sha256 of `content` (dicts, lists, tuples, numpy arrays, strings, numbers), or None
    when it holds anything else (such content cannot carry a valid stamp)."""
    h = hashlib.sha256()
    try:
        _feed(h, content)
    except _Unhashable:
        return None
    return h.hexdigest()


def is_recipe_name(recipe) -> bool:
    """Whether `recipe` may name a synthetic recipe (a stamp's, a data id's after `synthetic:`): 1 to 200 printable
    characters (no newline, no terminal control) and no '|', which would split the Markdown table row it is shown in.
    The generator's names ('corrupt-s2-mosi-small-unaligned-seed0-v2') are letters, digits and '-'."""
    return type(recipe) is str and 0 < len(recipe) <= 200 and recipe.isprintable() and "|" not in recipe


def make_stamp(recipe: str, content_digest: str) -> dict:
    return {"format": STAMP_FORMAT, "recipe": recipe, "content_sha256": content_digest}


def stamped_recipe(stamp, content_digest: str | None) -> str | None:
    """The recipe of a stamp that matches `content_digest`, else None (unstamped, malformed,
    or content changed since the generator wrote it)."""
    if (type(stamp) is dict and stamp.get("format") == STAMP_FORMAT and is_recipe_name(stamp.get("recipe"))
            and content_digest is not None and stamp.get("content_sha256") == content_digest):
        return stamp["recipe"]
    return None
