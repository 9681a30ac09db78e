"""The transcript CSV of `run.py extract`, and the split of its rows.

Columns: `id` (the video's file name without extension), `text`, and optionally `label`
(sentiment score), `label_T`/`label_A`/`label_V` (SIMS-style unimodal labels) and `split`
(train, valid or test; `dev` is read as valid). Every problem is one DataError line.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...errors import DataError, UsageError, one_line
from ..formula_ids import refuse_formula_ids

if TYPE_CHECKING:
    import pandas as pd

SPLITS = ("train", "valid", "test")
DEFAULT_SPLIT = "train=0.7,valid=0.15,test=0.15"
UNIMODAL = ("label_T", "label_A", "label_V")
MAX_BYTES = 256 << 20     # MOSEI's 23,000 transcripts take about 3 MB
# A row is one utterance of a clip of at most ten minutes (media.MAX_CLIP_SECONDS): some 1,500 words, 9,000
# characters. BERT's tokenizer reads a text whole before it truncates it to --text-len: a 40 MB cell took
# 90 s and 5.4 GB, and the CSV's cap lets a cell reach 256 MB.
MAX_TEXT_CHARS = 20_000
# A file name holds at most 255 bytes, less the extension ('.mp4', 4 at least): a longer id names no video.
MAX_ID_BYTES = 251


def parse_split(text: str) -> dict:
    """'train=0.7,valid=0.15,test=0.15' -> {split: ratio}; the ratios must sum to 1."""
    ratios = {}
    for part in str(text).split(","):
        name, _, value = part.partition("=")
        name = "valid" if name.strip() == "dev" else name.strip()
        try:
            ratios[name] = float(value)
        except ValueError:
            raise UsageError(f"--split {text!r}: expected train=R,valid=R,test=R with numbers R") from None
    if set(ratios) != set(SPLITS) or any(r < 0 for r in ratios.values()) or abs(sum(ratios.values()) - 1) > 1e-6:
        raise UsageError(f"--split {text!r}: give train, valid and test ratios, each >= 0, summing to 1")
    return ratios


def _not_utf8(data: bytes) -> str:
    """Where `data` is not UTF-8: pandas' error counts from the start of the chunk it was decoding."""
    try:
        data.decode("utf-8")
        return "not UTF-8 text"
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        return f"line {line} is not UTF-8 text (byte {data[e.start:e.start + 1]!r})"


def read_transcripts(path, split_ratios: dict | None = None) -> pd.DataFrame:
    """The CSV as a frame with id, text and (where present) label and split columns, checked."""
    import pandas as pd     # here, not at the top: extract's parser reads DEFAULT_SPLIT, for --help too
    path = Path(path)
    if not path.is_file():     # a named pipe or a link to /dev/zero would block or never end
        what = "is a folder" if path.is_dir() else "is no regular file" if path.exists() else "not found"
        raise DataError(f"transcripts {path} {what}: give a CSV with id, text, label and split columns")
    if path.stat().st_size > MAX_BYTES:     # read whole by pandas: a 3 GB file was a MemoryError traceback
        raise DataError(f"transcripts {path} is over {MAX_BYTES >> 20} MiB, far more than a transcript CSV "
                        "holds; give the CSV meant")
    try:
        table = pd.read_csv(path, dtype={"id": str, "text": str, "split": str}, keep_default_na=False)
    except UnicodeDecodeError:     # a spreadsheet's regional CSV (cp1252, GBK): else "not a readable CSV"
        raise DataError(f"{path}: {_not_utf8(path.read_bytes())}: save the file as UTF-8, e.g. 'CSV UTF-8' in "
                        f"Excel") from None
    except (ValueError, pd.errors.ParserError) as e:
        raise DataError(f"{path}: not a readable CSV ({one_line(e)})") from None
    if len(table.columns) == 1 and any(sep in table.columns[0] for sep in ";\t"):
        # Excel writes ';' where a comma is the decimal sign; the line said "no 'id' column (columns: id;text)"
        raise DataError(f"{path}: its header {table.columns[0][:60]!r} is one column: separate the columns with "
                        f"commas (id,text,label)")
    for column in ("id", "text"):
        if column not in table.columns:
            raise DataError(f"{path}: no '{column}' column (columns: {', '.join(table.columns)}); "
                            f"expected id, text, label and optionally split")
    # An empty id matches no video: without this check the row was skipped as "no video file named .*".
    blank = table.id.str.strip() == ""
    if blank.any():
        row = int(np.flatnonzero(blank.to_numpy())[0])
        text = table.text.iloc[row]
        shown = repr(text[:60]) + ("..." if len(text) > 60 else "")      # a cell may be pages long
        raise DataError(f"{path}: line {row + 2} (text {shown}) has an empty id; "
                        f"give the video's file name without extension")
    # Checked before any line quotes an id: printed whole, a 1 MB id was a 1 MB line.
    too_long = (table.id.map(lambda i: len(i.encode())) > MAX_ID_BYTES).to_numpy()
    if too_long.any():
        row = int(np.flatnonzero(too_long)[0])
        video_id = table.id.iloc[row]
        raise DataError(f"{path}: line {row + 2} has an id of {len(video_id.encode()):,} bytes (starting "
                        f"{video_id[:40]!r}), longer than a video's file name can be; give the video's file name "
                        f"without extension")
    # Ids reach predictions.csv as they are: none may be a formula to a spreadsheet that opens it.
    refuse_formula_ids(table.id.tolist(), lambda row: f"{path}: line {row + 2}", "rename the video and its id")
    long = table.text.str.len() > MAX_TEXT_CHARS
    if long.any():
        raise DataError(f"{path}: the text of id {table.id[long].iloc[0]!r} is {len(table.text[long].iloc[0]):,} "
                        f"characters, over the {MAX_TEXT_CHARS:,} of one utterance (ten minutes of speech is "
                        f"about 9,000): give each utterance its own row and clip")
    duplicated = table.id[table.id.duplicated()]
    if len(duplicated):
        raise DataError(f"{path}: id {duplicated.iloc[0]!r} appears more than once")
    for column in ("label", *UNIMODAL):
        if column in table.columns:
            values = pd.to_numeric(table[column], errors="coerce")
            bad = values.isna() | ~np.isfinite(values)
            if bad.any():
                raise DataError(f"{path}: column '{column}' row of id {table.id[bad].iloc[0]!r} "
                                f"is not a number ({table[column][bad].iloc[0]!r})")
            # Stored as float32: a label past its range (1e39) was written as inf, and trained on.
            huge = values.abs() > np.finfo(np.float32).max
            if huge.any():
                raise DataError(f"{path}: column '{column}' row of id {table.id[huge].iloc[0]!r} is "
                                f"{float(values[huge].iloc[0]):g}, past what a float32 label holds; give the "
                                f"sentiment score meant")
            table[column] = values.astype(np.float32)
    if "split" in table.columns:
        table["split"] = table.split.str.strip().str.lower().replace({"dev": "valid"})
        bad = ~table.split.isin(SPLITS)
        if bad.any():
            raise DataError(f"{path}: split {table.split[bad].iloc[0]!r} of id {table.id[bad].iloc[0]!r} "
                            f"is not train, valid or test")
        if split_ratios is not None:
            raise UsageError(f"{path} has a split column; drop --split (or the column)")
    return table


def assign_splits(table: pd.DataFrame, split_ratios: dict | None, seed: int) -> pd.Series:
    """The split of every row: the CSV's own, else `split_ratios` (default DEFAULT_SPLIT) over a
    seeded shuffle; a file without labels (for predict) goes wholly to test unless ratios are given.
    Called on the rows whose videos were extracted, so a skipped video leaves no split short."""
    import pandas as pd
    if "split" in table.columns:
        return table.split
    if "label" not in table.columns and split_ratios is None:
        return pd.Series("test", index=table.index)
    ratios = split_ratios or parse_split(DEFAULT_SPLIT)
    order = np.random.default_rng(seed).permutation(len(table))
    n_train = round(ratios["train"] * len(table))
    n_valid = round(ratios["valid"] * len(table))
    split = np.empty(len(table), dtype=object)
    split[order[:n_train]], split[order[n_train:n_train + n_valid]] = "train", "valid"
    split[order[n_train + n_valid:]] = "test"
    return pd.Series(split, index=table.index)
