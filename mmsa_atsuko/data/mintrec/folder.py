"""A MIntRec folder: where it is, the files it must hold, the facts of the dataset, how it is named.

thuiar/MIntRec's layout (its data/base.py reads the TSVs, its run.py names the feature files):

    train.tsv, dev.tsv, test.tsv     tab-separated, header `season episode clip text label`
    video_data/video_feats.pkl       {'S05_E16_329': list of (1, 256) arrays, or a (T, 256) array}
    audio_data/audio_feats.pkl       {'S05_E16_329': (T, 768) array}

Kept apart from the readers because the download check and the synthetic generator need the
layout and the names without reading anything.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from ...atomic import read_small_file
from ...cache import sha256_of
from ...config import datasets_table
from ...errors import DataError
from ..stamp import stamped_recipe

log = logging.getLogger("mmsa_atsuko")

NAME = "mintrec"
SPLITS = ("train", "valid", "test")
TSV_FILES = {"train": "train.tsv", "valid": "dev.tsv", "test": "test.tsv"}
FEATURE_FILES = {"vision": "video_data/video_feats.pkl", "audio": "audio_data/audio_feats.pkl"}
DATA_FILES = (*TSV_FILES.values(), *FEATURE_FILES.values())       # what a folder's digest and stamp cover
TSV_HEADER = ("season", "episode", "clip", "text", "label")
# Written by the synthetic generator into its folder: its stamp (the recipe and the digest of
# the five files) and, for size 'small', padded lengths shorter than MIntRec's (honoured only where the stamp holds).
SYNTHETIC_MARKER = "synthetic.json"
SOURCE_HINT = "get the MIntRec folder as https://github.com/thuiar/MIntRec describes"
NAMED_AT_MOST = 5            # how many missing keys / unknown labels an error names


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
    from ..mmsa_format import DATA_ROOT_ENV, DEFAULT_DATA_ROOT
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
    return [name for name in DATA_FILES if not (folder / name).is_file()]


MARKER_BYTES = 64 << 10      # the generator's synthetic.json is under 1 KiB
MIN_SEQ_LENS = {"text": 2, "audio": 1, "vision": 1}     # text: [CLS] and [SEP] at least


def _marker_of(folder: Path) -> dict | None:
    """synthetic.json's object, or None when there is none, or none that can be read as JSON."""
    try:
        marker = json.loads(read_small_file(folder / SYNTHETIC_MARKER, MARKER_BYTES).decode("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):       # a link, a pipe, too large, not UTF-8 JSON: no stamp can hold
        return {}
    return marker if isinstance(marker, dict) else {}


def _checked_lengths(marker: dict, marker_path: Path) -> dict:
    """The marker's padded lengths: integers from MIN_SEQ_LENS to datasets.yaml's (the generator writes no more)."""
    from ..spec import MODALITIES    # here: spec imports torch, and the sweep's planning line reads this module before
    wanted = mintrec_facts()["max_seq_lens"]
    try:
        lens = {m: marker["max_seq_lens"][m] for m in MODALITIES}
    except (KeyError, TypeError):
        lens = None
    if lens is None or not all(type(n) is int and MIN_SEQ_LENS[m] <= n <= int(wanted[m]) for m, n in lens.items()):
        bounds = ", ".join(f"{m} {MIN_SEQ_LENS[m]}-{wanted[m]}" for m in MODALITIES)
        raise DataError(f"{marker_path}: expected max_seq_lens of whole numbers within {bounds}, as the "
                        f"synthetic generator writes them; delete the folder and write it again")
    return lens


def synthetic_marker(folder: Path) -> tuple[dict, dict | None, str | None]:
    """(padded lengths {text, audio, vision}, the generator's stamp, the recipe it proves), read before the data.

    synthetic.json's lengths count only when its stamp holds for the five files as they are now (sha256_of,
    remembered per file version); they must then lie within datasets.yaml's (else one line). Without a marker,
    or with one whose stamp does not hold (an edited or planted file), the folder is real data, padded to
    datasets.yaml's lengths: its five files alone decide what is loaded, and they are all its data id covers.
    The caller checks the stamp again on the digests of the bytes it read (`stamped_recipe`)."""
    lens = dict(mintrec_facts()["max_seq_lens"])
    marker = _marker_of(folder)
    if marker is None:
        return lens, None, None
    stamp, recipe = marker.get("stamp"), None
    if isinstance(stamp, dict):         # the five files are hashed only for a stamp that can hold
        recipe = stamped_recipe(stamp, folder_digest({name: sha256_of(folder / name) for name in DATA_FILES}))
    if recipe is None:
        from ..spec import MODALITIES
        log.warning("mintrec: %s has no synthetic generator's stamp that holds for this folder's files; the folder "
                    "is read as real data, padded to datasets.yaml's lengths (%s)", folder / SYNTHETIC_MARKER,
                    ", ".join(f"{m} {lens[m]}" for m in MODALITIES))
        return lens, None, None
    return _checked_lengths(marker, folder / SYNTHETIC_MARKER), stamp, recipe


def folder_digest(digests: dict) -> str:
    """sha256 over {file name: sha256} of a folder's data files, in name order."""
    combined = "".join(f"{name} {digests[name]}\n" for name in sorted(digests))
    return hashlib.sha256(combined.encode()).hexdigest()
