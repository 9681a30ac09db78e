"""The globals a feature file may name, and what each one becomes.

A pickle is a small program: GLOBAL opcodes import any callable, REDUCE calls it and BUILD
calls `__setstate__` on whatever is on the stack, so `pickle.load` on a downloaded file runs
whatever its author chose. The feature files this toolkit reads (MMSA's `.pkl`) only ever
hold numpy arrays, numpy scalars, strings, numbers and plain containers, so the unpickler's
`find_class`:

- resolves only the globals those need (`_ALLOWED_GLOBALS`) and refuses every other one
  before it is imported or called;
- hands out `numpy.ndarray` only as the marker that numpy's `_reconstruct` expects
  (`_ndarray_marker`), so a file cannot call `ndarray(shape, dtype, buffer=...)` itself.

Resolving a global is not calling it: each call is checked again, against what that callable
is for (`calls`).
"""
from __future__ import annotations

import collections
import importlib
import pickle

import numpy as np

from .refusals import Refused, _shown

# numpy 2 renamed numpy.core to numpy._core. Files written by numpy 1.x (all of MMSA's) name
# numpy.core.multiarray; files written by numpy 2 name numpy._core.multiarray. Both spellings
# resolve to the module this numpy really has; going straight to it also avoids the
# DeprecationWarning that numpy 2 raises when anything touches numpy.core.
_NUMPY_CORE = "numpy._core" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core"
_multiarray = importlib.import_module(f"{_NUMPY_CORE}.multiarray")
_numeric = importlib.import_module(f"{_NUMPY_CORE}.numeric")


def _latin1_encode(text, encoding="latin1"):
    """Protocols 0-2 store `bytes` as `_codecs.encode(str, 'latin1')`; allow that codec only."""
    codec = encoding.lower().replace("-", "").replace("_", "") if isinstance(encoding, str) else None
    if codec not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"_codecs.encode with codec {_shown(encoding)} is not allowed")
    return text.encode("latin1")


# (module, name) as written in the pickle -> the object to use. Protocols 0-2 write Python 3
# builtins as `__builtin__` (pickle's fix_imports), hence both spellings. `numpy.ndarray` and
# `_reconstruct` are handled by the unpickler itself (see `RestrictedUnpickler.find_class`).
_ALLOWED_GLOBALS = {
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
    ("collections", "OrderedDict"): collections.OrderedDict,
}
for _core in ("numpy.core", "numpy._core"):
    _ALLOWED_GLOBALS[(f"{_core}.multiarray", "scalar")] = _multiarray.scalar           # numpy scalars
    _ALLOWED_GLOBALS[(f"{_core}.numeric", "_frombuffer")] = _numeric._frombuffer       # protocol 5 arrays
for _builtins in ("builtins", "__builtin__"):
    for _type in (list, dict, tuple, set, frozenset, str, bytes, bytearray, int, float, complex, bool):
        _ALLOWED_GLOBALS[(_builtins, _type.__name__)] = _type
del _core, _builtins, _type
_RECONSTRUCT_NAMES = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}


def _ndarray_marker(*args, **kwargs):
    """What the file's `numpy.ndarray` global becomes. numpy's own pickles only pass the
    class to `_reconstruct`, which puts the real class back; calling it is refused, since
    ndarray(shape, dtype, buffer) would read raw memory the file chose."""
    raise Refused("a call of numpy.ndarray")
