"""Unpickle feature files without letting them run code.

A pickle is a small program: GLOBAL opcodes import any callable, REDUCE calls it and BUILD
calls `__setstate__` on whatever is on the stack, so `pickle.load` on a downloaded file runs
whatever its author chose. The feature files this toolkit reads (MMSA's `.pkl`) only ever
hold numpy arrays, numpy scalars, strings, numbers and plain containers, so `load`:

- resolves only the globals those need and refuses every other one before it is imported
  or called (`find_class`);
- hands out `numpy.ndarray` only as the marker that numpy's `_reconstruct` expects, so a
  file cannot call `ndarray(shape, dtype, buffer=...)` itself;
- lets BUILD touch only numpy dtypes (and only to restore a plain dtype's byte order: no
  fields, no flags of the file's choosing) and arrays fresh from `_reconstruct`, once.

The last two matter because numpy trusts pickled dtype flags: a dtype whose state says
"holds no objects" while its fields say otherwise turns raw bytes from the file into object
pointers, and touching such an array crashes the interpreter or worse.

Anything refused raises `DataError` naming the file and what was refused, and none of the
file's code has run. The unpickler is the pure-Python one (`pickle._Unpickler`), the only one
whose BUILD can be checked; on a feature file its cost is noise, since nearly all the bytes
are a few large array payloads that it reads with one `read` each.

`load(path, hasher=h)` also feeds every byte it reads to `h` (e.g. `hashlib.sha256()`), so a
caller gets the file's digest without reading the file a second time; `load_hashing` returns
before that hash is finished, so the caller's own checks can run beside it.
"""
from __future__ import annotations

import collections
import importlib
import pickle
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import DataError

REFUSAL_HINT = "feature pickles may only hold numpy arrays, numbers, strings, lists, tuples and dicts"

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
        raise pickle.UnpicklingError(f"_codecs.encode with codec {encoding!r} is not allowed")
    return text.encode("latin1")


# (module, name) as written in the pickle -> the object to use. Protocols 0-2 write Python 3
# builtins as `__builtin__` (pickle's fix_imports), hence both spellings. `numpy.ndarray` and
# `_reconstruct` are handled by the unpickler itself (see `_RestrictedUnpickler.find_class`).
_ALLOWED = {
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
    ("collections", "OrderedDict"): collections.OrderedDict,
}
for _core in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_core}.multiarray", "scalar")] = _multiarray.scalar           # numpy scalars
    _ALLOWED[(f"{_core}.numeric", "_frombuffer")] = _numeric._frombuffer       # protocol 5 arrays
for _builtins in ("builtins", "__builtin__"):
    for _type in (list, dict, tuple, set, frozenset, str, bytes, bytearray, int, float, complex, bool):
        _ALLOWED[(_builtins, _type.__name__)] = _type
del _core, _builtins, _type
_RECONSTRUCT = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}


class _Refused(Exception):
    """Raised inside the unpickler; `load` turns it into a DataError naming the file."""


def _ndarray_marker(*args, **kwargs):
    """What the file's `numpy.ndarray` global becomes. numpy's own pickles only pass the
    class to `_reconstruct`, which puts the real class back; calling it is refused, since
    ndarray(shape, dtype, buffer) would read raw memory the file chose."""
    raise _Refused("a call of numpy.ndarray")


class _RestrictedUnpickler(pickle._Unpickler):
    def __init__(self, file):
        super().__init__(file)
        self._unbuilt_arrays = {}      # id -> array from _reconstruct still waiting for its BUILD
        self._built_dtypes = {}        # id -> dtype already restored once (kept alive: ids stay unique)

    def find_class(self, module, name):
        # Every way a pickle names a callable (GLOBAL, STACK_GLOBAL, INST, OBJ, EXT*) comes
        # through here, so a refused name is never imported, let alone called.
        if (module, name) in _RECONSTRUCT:
            return self._reconstruct
        if (module, name) == ("numpy", "ndarray"):
            return _ndarray_marker
        if (module, name) not in _ALLOWED:
            raise _Refused(f"{module}.{name}")
        return _ALLOWED[(module, name)]

    def persistent_load(self, pid):
        raise _Refused("a persistent id")

    def _reconstruct(self, subtype, shape, dtype):
        if subtype is not _ndarray_marker:
            raise _Refused(f"numpy _reconstruct of {type(subtype).__name__}")
        array = _multiarray._reconstruct(np.ndarray, shape, dtype)
        self._unbuilt_arrays[id(array)] = array
        return array

    def _load_build(self):
        state = self.stack.pop()
        target = self.stack[-1]
        if isinstance(target, np.dtype):
            self._check_dtype_state(target, state)
            self._built_dtypes[id(target)] = target
        elif not (isinstance(target, np.ndarray) and self._unbuilt_arrays.pop(id(target), None) is target):
            raise _Refused(f"a state for {type(target).__name__}")
        target.__setstate__(state)

    def _check_dtype_state(self, dtype: np.dtype, state):
        # numpy writes (3, byteorder, subarray, names, fields, elsize, alignment, flags) and
        # trusts all of it. A plain dtype (float32, int64, '<U5', object...) round-trips with
        # no subarray/names/fields and the flags and sizes its constructor already gave it;
        # accept exactly that, once per dtype object, so only the byte order can change.
        # (`is` and exact int types: the state's items come from the file, and an array in
        # their place must not get to answer `==`.)
        plain = (type(state) is tuple and len(state) == 8 and type(state[1]) is str
                 and all(type(x) is int for x in (state[0], *state[5:]))
                 and state[0] == 3 and state[1] in ("<", ">", "|", "=")
                 and state[2] is None and state[3] is None and state[4] is None
                 and state[5] in (-1, dtype.itemsize) and state[6] in (-1, dtype.alignment)
                 and state[7] == dtype.flags and id(dtype) not in self._built_dtypes)
        if not plain:
            raise _Refused(f"a numpy dtype state other than a plain dtype's ({str(state)[:80]})")

    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.BUILD[0]] = _load_build


class _HashingReader:
    """A read-only file that feeds every byte it hands out to `hasher`, on a worker thread.

    Hashing (about 1.4 GB/s for sha256 here) is slower than reading a cached file, so it
    runs beside the unpickler (hashlib and file reads both release the GIL). Each block is
    hashed from the very object handed to the unpickler, and the queue holds a reference to
    it, so nothing is copied and nothing is freed under the hasher. Small reads (opcodes,
    64 KiB frames) are gathered into one block first: a thread hop per opcode costs more
    than hashing it.
    """

    GATHER = 1 << 20

    def __init__(self, raw, hasher, pool: ThreadPoolExecutor):
        self._raw = raw
        self._hasher = hasher
        self._pool = pool
        self._small = bytearray()
        self._last = None           # future of the latest block sent to the worker

    def _hash(self, data):
        if len(data) < self.GATHER:
            self._small += data
            if len(self._small) < self.GATHER:
                return
            data, self._small = self._small, bytearray()
        elif self._small:
            # One worker runs blocks in order, so the gathered bytes go first.
            self._last = self._pool.submit(self._hasher.update, self._small)
            self._small = bytearray()
        self._last = self._pool.submit(self._hasher.update, data)

    def read(self, size=-1):
        data = self._raw.read(size)
        self._hash(data)
        return data

    def readline(self, size=-1):
        data = self._raw.readline(size)
        self._hash(data)
        return data

    def readinto(self, buffer):
        n = self._raw.readinto(buffer)
        # A memoryview keeps its exporter alive, so the worker may hash it after we return.
        self._hash(memoryview(buffer).cast("B")[:n])
        return n

    def read_rest(self):
        """Send the bytes after the pickle's STOP too: the digest is of the whole file."""
        for block in iter(lambda: self._raw.read(self.GATHER), b""):
            self._hash(block)
        if self._small:
            self._last = self._pool.submit(self._hasher.update, self._small)
            self._small = bytearray()

    def wait(self):
        if self._last is not None:
            self._last.result()     # one worker, blocks in order: the last one done = all done


def _unpickle(path: Path, hasher):
    """-> (object, reader or None). The file is fully read and closed on return; the hashing
    of the last blocks may still be running on the reader's worker."""
    try:
        raw = open(path, "rb")
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pickle-hash") if hasher is not None else None
    with raw:
        reader = raw if hasher is None else _HashingReader(raw, hasher, pool)
        unpickler = _RestrictedUnpickler(reader)
        try:
            obj = unpickler.load()
            if hasher is not None:
                reader.read_rest()
            return obj, (reader if hasher is not None else None)
        except _Refused as e:
            raise DataError(f"refused to unpickle {e} from {path}: {REFUSAL_HINT}") from None
        except MemoryError:
            raise DataError(f"ran out of memory unpickling {path}: the file may be corrupt "
                            f"(a damaged length field), or this machine needs more memory") from None
        except Exception as e:   # whatever a damaged byte stream makes the unpickler raise
            detail = " ".join(f"{type(e).__name__}: {e}".split())[:200]
            raise DataError(f"{path} is truncated or corrupt ({detail}): "
                            f"re-download it or run with --synthetic") from None
        finally:
            # The memo holds the bound `_reconstruct`, i.e. the unpickler itself: left alone,
            # that cycle keeps every loaded array alive until the next garbage collection.
            unpickler.memo.clear()
            if pool is not None:
                pool.shutdown(wait=False)   # the worker exits once its queue is done


def load(path, *, hasher=None):
    """Unpickle `path` allowing only numpy arrays/scalars/dtypes and plain containers.

    With `hasher` (a hashlib object), every byte of the file is fed to it, so after the call
    `hasher.hexdigest()` is the file's digest. Raises DataError when the file cannot be read,
    is truncated or corrupt, or holds anything else.
    """
    obj, reader = _unpickle(Path(path), hasher)
    if reader is not None:
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
