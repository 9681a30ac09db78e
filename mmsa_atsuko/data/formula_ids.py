"""Sample ids a spreadsheet would read as a formula (OWASP's CSV injection), refused where ids are read.

Ids reach the first column of every CSV that lists samples as they are (predict's predictions.csv, the trainer's
predictions_test.csv, explain's modality_weights.csv), and a spreadsheet that opens one runs a cell starting with
'=', '+', '@', a tab or a carriage return as a formula (=HYPERLINK(...), +cmd|...). '-' starts one too, but MOSI's
and MOSEI's YouTube ids start with it ('-3g5yACwYnA_1'): such an id may hold only DASH_ID_CHARS, which call no
function and reach no other program (-HYPERLINK(...), -2+3+cmd|... are refused). Every loader of ids calls
`refuse_formula_ids` (extract's transcripts, an MMSA pickle's `id` arrays, MIntRec's TSVs), so the writers need no
check of their own.
"""
from __future__ import annotations

import re
import string
from typing import Callable, Sequence

from ..errors import DataError

FORMULA_STARTS = "=+@\t\r"       # an id's first characters a spreadsheet reads as a formula's
# What an id that starts with '-' may hold: YouTube's ids (MOSI, MOSEI: '-3g5yACwYnA_1') and MMSA's 'video$_$clip'.
DASH_ID_CHARS = string.ascii_letters + string.digits + "_.$-"
_DASH_ID = re.compile(f"-[{re.escape(DASH_ID_CHARS)}]*")
_LOOKED_AT = frozenset(FORMULA_STARTS + "-")      # the first characters worth a closer look
SHOWN_CHARS = 80                 # of an id quoted in a message: an id may be as long as its source allows


def _why_a_formula(sample_id: str) -> str | None:
    """Why a spreadsheet would read `sample_id` as a formula ("starts with '='"), or None where it would not."""
    first = sample_id[:1]
    if first and first in FORMULA_STARTS:
        return f"starts with {first!r}"
    if first == "-" and not _DASH_ID.fullmatch(sample_id):
        return f"starts with '-' and holds {next(c for c in sample_id if c not in DASH_ID_CHARS)!r}"
    return None


def refuse_formula_ids(ids: Sequence[str], where: Callable[[int], str], fix: str,
                       error: Callable[[str], Exception] = DataError) -> None:
    """Raise `error` (one line) for the first of `ids` a spreadsheet would read as a formula.

    `where(i)`: the file, split and row of `ids[i]` ("f.pkl: split 'test', key 'id', sample 3"); `fix`: what to
    rename, a phrase that "so that it starts with a letter or a digit" completes ("rename the video and its id")."""
    for i, sample_id in enumerate(ids):
        # A set lookup per id; a call only for the few ids that start with one of these characters.
        why = _why_a_formula(sample_id) if sample_id[:1] in _LOOKED_AT else None
        if why is not None:
            raise error(f"{where(i)} has the id {sample_id[:SHOWN_CHARS]!r}, which {why}: a spreadsheet would run it "
                        f"as a formula in the CSVs that list ids, such as predictions.csv; {fix} so that it starts "
                        f"with a letter or a digit (after '-' only letters, digits and _.$- are fine, as in MOSI's "
                        f"ids)")
