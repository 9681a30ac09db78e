"""A Rust panic in Hugging Face tokenizers as one DataError line: a tokenizer.json whose pre-tokenizer regex
backtracks (`([a-z ]|[a-z ][a-z ])+[0-9]`) panics on a long enough text ('Onig: Regex search error:
retry-limit-in-match over').

pyo3 raises a panic as `pyo3_runtime.PanicException`, a BaseException that no `except Exception` takes, after Rust's
panic hook has written its message straight to file descriptor 2 (with RUST_BACKTRACE set, a backtrace of some 90
lines): 208 lines in all from extract. So the tokenizer runs with descriptor 2 sent to a temporary file, whose text
is passed on to stderr when no panic came (transformers' warnings) and dropped when one did, for the line saying it.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile

from ...errors import DataError, one_line


def _is_panic(error: BaseException) -> bool:
    return type(error).__name__ == "PanicException" and type(error).__module__ == "pyo3_runtime"


@contextlib.contextmanager
def _stderr_held():
    """File descriptor 2 sent to a temporary file meanwhile; -> a function that drops what it holds."""
    kept = {"drop": False}
    try:
        captured = tempfile.TemporaryFile()
    except OSError:          # no temporary file (a full disk): the panic's text goes to stderr, the line after it
        yield kept
        return
    with captured:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            yield kept
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if not kept["drop"]:
                captured.seek(0)
                for block in iter(lambda: captured.read(1 << 16), b""):
                    os.write(2, block)


@contextlib.contextmanager
def tokenizer_panics_as_line(bert_dir):
    """Run tokenizers inside: a PanicException is one DataError line naming the BERT folder, its panic text
    dropped; anything else passes through as it is."""
    panic = None
    with _stderr_held() as held:
        try:
            yield
        except BaseException as e:
            if not _is_panic(e):
                raise
            panic, held["drop"] = e, True
    if panic is not None:
        raise DataError(f"the tokenizer of {bert_dir} crashed on a text ({one_line(panic, 120)}): its tokenizer.json "
                        f"is not a tokenizer that runs on every text; download or save the BERT again") from None
