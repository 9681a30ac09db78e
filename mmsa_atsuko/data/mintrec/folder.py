"""A MIntRec folder: where it is, the files it must hold, the facts of the dataset, how it is named.

thuiar/MIntRec's layout (its data/base.py reads the TSVs, its run.py names the feature files):

    train.tsv, dev.tsv, test.tsv     tab-separated, header `season episode clip text label`
    video_data/video_feats.pkl       {'S05_E16_329': list of (1, 256) arrays, or a (T, 256) array}
    audio_data/audio_feats.pkl       {'S05_E16_329': (T, 768) array}

Kept apart from the readers because the download check and the synthetic generator need the
layout and the names without reading anything, and every reader of the package shares its
one-line error (`one_line_error`).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ...config import datasets_table
from ...errors import DataError
from ..spec import MODALITIES

NAME = "mintrec"
SPLITS = ("train", "valid", "test")
TSV_FILES = {"train": "train.tsv", "valid": "dev.tsv", "test": "test.tsv"}
FEATURE_FILES = {"vision": "video_data/video_feats.pkl", "audio": "audio_data/audio_feats.pkl"}
TSV_HEADER = ("season", "episode", "clip", "text", "label")
# Written by the synthetic generator into its folder: its stamp (the recipe and the digest of
# the five files) and, for size 'small', padded lengths shorter than MIntRec's.
SYNTHETIC_MARKER = "synthetic.json"
SOURCE_HINT = "get the MIntRec folder as https://github.com/thuiar/MIntRec describes"
NAMED_AT_MOST = 5            # how many missing keys / unknown labels an error names


def one_line_error(message: str, kind: type[DataError] = DataError, **fields) -> DataError:
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
    wanted = [*TSV_FILES.values(), *FEATURE_FILES.values()]
    return [name for name in wanted if not (folder / name).is_file()]




def synthetic_marker(folder: Path) -> tuple[dict, dict | None, str | None]:
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
        raise one_line_error(f"{marker_path}: expected the synthetic generator's JSON with max_seq_lens "
                             f"for {', '.join(MODALITIES)} ({type(e).__name__}); delete the folder "
                             f"and write it again") from None
    return lens, marker.get("stamp"), hashlib.sha256(raw).hexdigest()


def folder_digest(digests: dict) -> str:
    """sha256 over {file name: sha256} of a folder's data files, in name order."""
    combined = "".join(f"{name} {digests[name]}\n" for name in sorted(digests))
    return hashlib.sha256(combined.encode()).hexdigest()
