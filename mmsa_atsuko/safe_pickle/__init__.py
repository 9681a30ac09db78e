"""Unpickle feature files without letting them run code or exhaust the machine.

A pickle is a small program: GLOBAL opcodes import any callable, REDUCE calls it and BUILD
calls `__setstate__` on whatever is on the stack, so `pickle.load` on a downloaded file runs
whatever its author chose. The feature files this toolkit reads (MMSA's `.pkl`) only ever
hold numpy arrays, numpy scalars, strings, numbers and plain containers, so `load` unpickles
them with a restricted unpickler that:

- resolves only the globals those need and refuses every other one before it is imported
  or called, and hands out `numpy.ndarray` only as the marker numpy's `_reconstruct` expects
  (`allowed`);
- checks every call against what that callable is for (`calls`), and lets BUILD touch only
  plain numpy dtypes and arrays fresh from `_reconstruct`, once (`unpickler`);
- charges every call, array, dict key and opcode against budgets in proportion to the file's
  size (`budgets`, with the numbers in `limits` and the opcodes' costs in `opcode_costs`), and
  counts the result as a tree once it is loaded (`tree`), so that no small file can exhaust
  time or memory, now or when something walks the result later.

Anything refused raises `DataError` naming the file and what was refused (`refusals`), and
none of the file's code has run; MemoryError and RecursionError become a one-line DataError
too.

`load(path, hasher=h)` also feeds every byte it reads to `h` (e.g. `hashlib.sha256()`), so a
caller gets the file's digest without reading the file a second time (`reader`);
`load_hashing` returns before that hash is finished, so the caller's own checks can run
beside it.

A second restricted unpickler (safe_checkpoint.py, for torch checkpoints) builds on the
same parts: it subclasses `RestrictedUnpickler`, reads through a `BoundedReader`, refuses with
`Refused` (naming loaded objects with `sized`, errors with `describe_error`), and loads with
`run`.
"""
from __future__ import annotations

import gc
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..atomic import sparse_problem
from ..errors import DataError
# The limits are importable from here too, but the unpickler reads them from `limits`
# when it starts: set them there, not here.
from .limits import (BYTES_ALLOWANCE, BYTES_PER_FILE_BYTE, BYTES_PER_WORK, ELEMENT_BYTES, ELEMENTS_ALLOWANCE,
                     ELEMENTS_PER_FILE_BYTE, MAX_CODE_CHARS, MAX_DEPTH, MAX_MARKS, MAX_OTHER_KEYS,
                     OBJECT_BYTES_ALLOWANCE, OBJECT_BYTES_PER_FILE_BYTE, WORK_ALLOWANCE)
from .reader import BoundedReader
from .refusals import LIMIT_HINT, REFUSAL_HINT, SHOWN_CHARS, Refused, describe_error, sized
from .tree import _tree_size
from .unpickler import RestrictedUnpickler

__all__ = ["load", "load_hashing", "run", "RestrictedUnpickler", "BoundedReader", "Refused", "sized", "describe_error",
           "REFUSAL_HINT", "LIMIT_HINT", "BYTES_PER_FILE_BYTE", "BYTES_ALLOWANCE",
           "ELEMENT_BYTES", "ELEMENTS_PER_FILE_BYTE", "ELEMENTS_ALLOWANCE", "MAX_DEPTH", "WORK_ALLOWANCE",
           "BYTES_PER_WORK", "OBJECT_BYTES_PER_FILE_BYTE", "OBJECT_BYTES_ALLOWANCE", "MAX_MARKS", "MAX_OTHER_KEYS",
           "MAX_CODE_CHARS", "SHOWN_CHARS"]


def load(path, *, hasher=None):
    """Unpickle `path` allowing only numpy arrays/scalars/dtypes and plain containers, within
    the limits that `limits` describes.

    With `hasher` (a hashlib object), every byte of the file is fed to it, so after the call
    `hasher.hexdigest()` is the file's digest. Raises DataError when the file cannot be read,
    is truncated or corrupt, holds anything else or breaks a limit.
    """
    obj, reader = _unpickle(Path(path), hasher)
    reader.wait()
    return obj


def load_hashing(path, hasher):
    """Like `load(path, hasher=hasher)`, but returns before the hash is done, so the caller
    can check the arrays while the last of the file is hashed. Returns (object, digest):
    `digest()` waits for the hash and returns `hasher.hexdigest()`.

    Until `digest()` returns, the hasher may still be reading the arrays' memory: read them,
    never change them in place.
    """
    obj, reader = _unpickle(Path(path), hasher)

    def digest() -> str:
        reader.wait()
        return hasher.hexdigest()

    return obj, digest


def _unpickle(path: Path, hasher):
    """-> (object, reader). The file is fully read and closed on return; the hashing of the
    last blocks may still be running on the reader's worker."""
    try:
        raw = open(path, "rb")
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        _check_pickle_header(raw, path)
        sparse = sparse_problem(raw.fileno(), os.fstat(raw.fileno()).st_size)   # every budget is in proportion to it
        if sparse:
            raise DataError(f"{path} is {sparse}")
    except DataError:
        raw.close()
        raise
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pickle-hash") if hasher is not None else None
    with raw:
        size = os.fstat(raw.fileno()).st_size
        reader = BoundedReader(raw, size, hasher, pool)
        try:
            return run(RestrictedUnpickler(reader, size), path, reader.read_rest if hasher else None), reader
        finally:
            if pool is not None:
                pool.shutdown(wait=False)   # the worker exits once its queue is done


def _check_pickle_header(raw, path: Path) -> None:
    """A file that is no pickle at all (a CSV, a video, a web page) is said to be so, in one line, before the
    unpickler reads its text as opcodes (`refused to unpickle d,text,label...`, `KeyError: 0`). Every feature
    file and checkpoint is protocol 2 or later, which opens with the PROTO opcode, byte 0x80."""
    head = raw.read(1)
    raw.seek(0)
    if head != b"\x80":
        what = "empty" if not head else "not a pickle (a feature file opens with byte 0x80)"
        raise DataError(f"{path} is {what}: give the .pkl that MMSA publishes or that `run.py extract` wrote")


def run(unpickler: RestrictedUnpickler, where, then=None, fix: str = "re-download or re-extract it"):
    """`unpickler.load()` and the limits on what it returned (then `then()`), every failure a
    one-line DataError naming `where`, with `fix` for a truncated or corrupt stream."""
    # The cyclic GC runs after every 700 containers made, and walks the ones it has not yet
    # promoted: half the time of a file of small containers. A file makes no garbage cycles
    # (one that holds itself is refused, and collected later).
    collecting = gc.isenabled()
    gc.disable()
    try:
        obj = unpickler.load()
        _tree_size(obj, unpickler.elements_limit, "a file")
        if then is not None:
            then()
        return obj
    except Refused as e:
        raise DataError(f"refused to unpickle {e.what} from {where}: {e.hint}") from None
    except MemoryError:
        raise DataError(f"ran out of memory unpickling {where}: the file may be corrupt "
                        f"(a damaged length field), or this machine needs more memory") from None
    except RecursionError:
        raise DataError(f"{where} nests objects too deeply to unpickle: {LIMIT_HINT}") from None
    except Exception as e:   # whatever a damaged byte stream makes the unpickler raise
        raise DataError(f"{where} is truncated or corrupt ({describe_error(e)}): {fix}") from None
    finally:
        if collecting:
            gc.enable()
        # The memo, `_checks` and the metered `dispatch` hold the unpickler itself: left alone,
        # that cycle keeps every loaded array alive until the next garbage collection.
        unpickler.memo.clear()
        for name in ("_checks", "dispatch", "_reconstruct_call"):
            unpickler.__dict__.pop(name, None)

