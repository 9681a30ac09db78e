"""Whether a file is a good copy of MMSA's, and whether one can be put where it goes.

What a file must be to be taken for MMSA's (`_verify`):

- where MMSA publishes a SHA-256 (MOSI and MOSEI both settings, SIMS), it must match;
- where it publishes none (SIMSv2), the file must load as the loader loads it (restricted
  unpickler, every split's keys, shapes and values validated), have the real file's split
  sizes and padded shapes (datasets.yaml `real_sizes`, `real_shapes`), unique string ids, and
  no generator's stamp: a truncated, wrong or synthetic file is not taken for the dataset;
- no file may be a web page (Google Drive answers a quota or permission problem with an
  HTML page, which would otherwise be saved as the dataset).

`_blocked` says what, if anything, stands where the file goes: a folder (or anything but a
regular file), or a file where one of its folders goes.
"""
from __future__ import annotations

import os
from pathlib import Path

from ...atomic import not_a_file
from ...cache import sha256_of
from ...config import real_sizes_mismatch
from ...errors import DataError
from .. import mmsa_format
from ..spec import MODALITIES
from .facts import _setting_of, published_sha256, real_layout_of


def _check_structure(path: Path, relpath: str) -> str | None:
    """None if `path` loads as the dataset of `relpath` (the checks every run makes, ids strings
    and unique) and has the real file's split sizes and padded shapes, else the first mismatch."""
    name, aligned = _setting_of(relpath)
    try:
        layout = real_layout_of(relpath)
    except DataError as e:
        return str(e)
    try:
        spec = mmsa_format.load_dataset(name, aligned=aligned, feature_path=path, strict_ids=True).spec
    except DataError as e:
        return f"it is not a valid {name} feature file: {e}"
    if spec.synthetic:
        return f"it is generated data ({spec.source}), not MMSA's {name} file"
    sizes = real_sizes_mismatch(name, spec.split_sizes, layout["split_sizes"])
    if sizes:
        return sizes
    for m in MODALITIES:
        found = (spec.seq_lens[m], spec.feature_dims[m])
        real = (layout["seq_lens"][m], layout["feature_dims"][m])
        if found != real:
            return (f"its {m} features are {found[0]} steps x {found[1]} dims per sample, the real {name} file's "
                    f"are {real[0]} x {real[1]} (configs/datasets.yaml real_shapes)")
    return None


def _blocked(dest: Path, root: Path) -> str | None:
    """What stands where the file `dest` goes, if anything: a folder, a broken link or a special
    file at `dest`, or a file where one of its folders under `root` goes."""
    if os.path.lexists(dest) and not dest.is_file():
        return f"{dest} {not_a_file(dest)}"
    for folder in dest.parents:
        if folder.is_dir():
            return None
        if os.path.lexists(folder):
            return f"{folder} is a file, not a folder"
        if folder == root:
            break
    return None


def _verify(path: Path, relpath: str, *, final: bool = True) -> str | None:
    """None if `path` is a good copy of `relpath`, else what is wrong with it: its published
    sha256, or where none is published, its structure as the loader checks it. `final`: `path`
    is where the file stays, so its sha256 is worth remembering (a download's temporary is not)."""
    with open(path, "rb") as f:
        head = f.read(512).lstrip()
    if not head:
        return "it is empty"
    if head.startswith(b"<"):        # no pickle opcode is '<'; Drive's quota and error pages are HTML
        return "it is a web page, not a pickle (Google Drive's answer when its quota is exceeded or the file moved)"
    expected = published_sha256(relpath)
    if expected is not None:
        try:
            actual = sha256_of(path, remember_it=final)
        except DataError as e:         # a sparse file, refused before a terabyte of holes is hashed
            return str(e).removeprefix(f"{path} is ")
        if actual != expected:
            return f"its sha256 is {actual}, MMSA publishes {expected}"
        return None
    return _check_structure(path, relpath)


def _verified_how(relpath: str) -> str:
    return ("sha256 verified" if published_sha256(relpath) else
            "structure, sizes and shapes verified; MMSA publishes no sha256")
