"""How the restricted unpickler says no, and how its messages name what a file holds.

A check raises `Refused` (what was refused, and a hint: REFUSAL_HINT for something a feature
file never holds, LIMIT_HINT for a limit broken); `run` turns it into a one-line DataError
naming the file.

Error messages describe loaded objects by type and size, never by their str(), which for a
tuple made of memo references to one another is as large as its tree (see `limits`). Names
from the file are shown short and on one line.
"""
from __future__ import annotations

from ..errors import one_line

REFUSAL_HINT = "feature pickles may only hold numpy arrays, numbers, strings, lists, tuples and dicts"
# Said of every feature file, downloaded or extracted from one's own videos, whatever the command.
LIMIT_HINT = "the file is corrupt or hostile; re-download or re-extract it"
SHOWN_CHARS = 80                 # of a name from the file, in a message


class Refused(Exception):
    """Raised inside the unpickler; `load` turns it into a DataError naming the file."""

    def __init__(self, what: str, hint: str = REFUSAL_HINT):
        super().__init__(what)
        self.what, self.hint = what, hint


def _shown(text) -> str:
    """A string from the file, short and on one line, for a message."""
    if not isinstance(text, str):
        return f"a {type(text).__name__}"
    short = " ".join(text[:SHOWN_CHARS].split())
    return short + ("..." if len(text) > SHOWN_CHARS else "")


def sized(obj) -> str:
    """'a tuple of 8 items': how a message names a loaded object (never by its str())."""
    name = type(obj).__name__
    article = "an" if name[:1] in ("a", "e", "i", "o", "u") else "a"
    if isinstance(obj, (list, tuple, dict, set, frozenset)):
        return f"{article} {name} of {len(obj)} items"
    return f"{article} {name}"


def describe_error(error: BaseException) -> str:
    """An unexpected error as a short line. Its args may be loaded objects (a KeyError's str()
    is its key's repr), so its text is shown only when they are strings and numbers."""
    if isinstance(error, UnicodeError) or all(type(a) in (str, int, float) for a in error.args):
        return one_line(error)
    return type(error).__name__
