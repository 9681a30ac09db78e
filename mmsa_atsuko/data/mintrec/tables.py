"""MIntRec's three TSV tables read and checked: sample keys, raw texts and labels, one line per problem.

A TSV is read bounded and as MIntRec reads it (quoting off); the keys (the samples' ids) must be unique across the
splits, none a formula to a spreadsheet (formula_ids), and every label one of the 20 intents. These are the cheap
checks, made before the big feature pickles are opened (frames.py), and they give what both the text and the frames
are keyed by.
"""
from __future__ import annotations

import csv
import difflib
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import DataError
from ..formula_ids import refuse_formula_ids
from .folder import NAMED_AT_MOST, SPLITS, TSV_FILES, TSV_HEADER, label_names


@dataclass
class Rows:
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
            raise DataError(f"{path}: split '{split}', line {reader.line_num}: "
                            f"not a MIntRec TSV row ({e})") from None
        yield row


MAX_TSV_BYTES = 64 << 20     # MIntRec's train.tsv is about 100 KB, MIntRec 2.0's under 1 MB


def read_tsv(path: Path, split: str) -> Rows:
    with open(path, "rb") as f:     # bounded: a 3 GB file was read whole, a MemoryError traceback under ulimit -v 4 GB
        raw = f.read(MAX_TSV_BYTES + 1)
    if len(raw) > MAX_TSV_BYTES:
        raise DataError(f"{path}: split '{split}': over {MAX_TSV_BYTES >> 20} MiB, far more than a MIntRec "
                        "TSV holds; give the folder of the real TSV files")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: split '{split}': expected UTF-8 text, "
                        f"found a bad byte at offset {e.start}") from None
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
                raise DataError(f"{path}: split '{split}': expected the header {' '.join(TSV_HEADER)} "
                                f"(tab-separated), found {' '.join(header)[:120]!r}")
            continue
        if len(row) != len(TSV_HEADER):
            raise DataError(f"{path}: split '{split}', line {reader.line_num}: expected "
                            f"{len(TSV_HEADER)} tab-separated fields ({' '.join(TSV_HEADER)}), found {len(row)}")
        season, episode, clip, utterance, label = row
        keys.append("_".join((season.strip(), episode.strip(), clip.strip())))
        texts.append(utterance)
        labels.append(label.strip())
        lines.append(reader.line_num)
    if header is None or not keys:
        raise DataError(f"{path}: split '{split}': expected a header and at least one sample, found "
                        f"{'an empty file' if header is None else 'the header only'}")
    refuse_formula_ids(keys, lambda i: f"{path}: split '{split}', line {lines[i]}",
                       "change its season, episode or clip (the id is season_episode_clip)")
    return Rows(keys, texts, labels, lines, hashlib.sha256(raw).hexdigest())


def check_keys_unique(folder: Path, rows: dict) -> None:
    seen = {}
    for split in SPLITS:
        for key, line in zip(rows[split].keys, rows[split].lines):
            if key in seen:
                where = seen[key]
                raise DataError(f"{folder}: key {key!r} appears twice ({where} and {TSV_FILES[split]} "
                                f"line {line}): every clip must be one sample of one split")
            seen[key] = f"{TSV_FILES[split]} line {line}"


def label_ids(folder: Path, rows: dict) -> dict:
    """{split: (N,) int64} label indices; every unknown label is counted, the first few named."""
    index = {name: i for i, name in enumerate(label_names())}
    unknown = [(split, line, label) for split in SPLITS
               for label, line in zip(rows[split].labels, rows[split].lines) if label not in index]
    if unknown:
        named = ", ".join(f"{TSV_FILES[s]} line {n} {lab!r}" for s, n, lab in unknown[:NAMED_AT_MOST])
        more = f" and {len(unknown) - NAMED_AT_MOST} more" if len(unknown) > NAMED_AT_MOST else ""
        close = difflib.get_close_matches(unknown[0][2], list(index), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DataError(f"{folder}: {len(unknown)} rows have a label that is not one of MIntRec's 20 intents: "
                        f"{named}{more}{hint}; the labels are {', '.join(index)}")
    return {split: np.array([index[label] for label in rows[split].labels], dtype=np.int64) for split in SPLITS}
