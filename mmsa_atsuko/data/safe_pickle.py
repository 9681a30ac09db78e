"""Unpickle feature files without letting them run code or exhaust the machine.

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

A file must not exhaust time or memory either, and a pickle is small beside what it can
build: `bytearray(10**9)` takes a dozen bytes, a memo reference repeats an object for two,
and hashing a tuple visits every path through it, which for tuples made of memo references
to one another doubles with every level (700 bytes hang for minutes). So every call a file
makes is checked against what that callable is for, and charged:

- bytes that calls and array states allocate: at most BYTES_PER_FILE_BYTE per byte of the
  file plus BYTES_ALLOWANCE, all together (a real file's arrays take about its size once);
- an array's declared size must be exactly the bytes (or objects) its state holds, and no
  length field may reach past the end of the file (the read would allocate it first);
- dict keys and set elements are hashed, so tuples and frozensets among them are counted as
  trees (each path once) against ELEMENTS_PER_FILE_BYTE per byte plus ELEMENTS_ALLOWANCE,
  and at most MAX_OTHER_KEYS keys may be anything but strings (numbers' hashes can be made
  to collide);
- the result may nest containers at most MAX_DEPTH deep, hold no container inside itself,
  and count, as a tree, within the same element limit: whatever walks it later (a hash,
  np.asarray, a repr) meets no bomb; open MARK frames nest at most MAX_MARKS deep;
- opcodes, counted as they run (a call or BUILD as several, `opcode_costs`), at most
  WORK_ALLOWANCE plus one per BYTES_PER_WORK bytes of the file, and what they build without
  calls (containers, memo entries, strings' headers) at most OBJECT_BYTES_PER_FILE_BYTE per
  byte plus OBJECT_BYTES_ALLOWANCE. A one-byte EMPTY_SET makes a 216-byte set and the
  pure-Python unpickler runs about two million opcodes a second, so without these a 1 MB file
  of one-byte opcodes took 2.4 s and 313 MB, and 10 MB ones over 10 s. Real files run few
  opcodes for their size: one per 4 KB (MMSA's few large arrays) to one per 35 bytes
  (MIntRec's lists of one-frame arrays); bench/bench_hostile.py measures both.

Error messages describe loaded objects by type and size, never by their str(), which for such
a tuple is as large as its tree.

Anything refused raises `DataError` naming the file and what was refused, and none of the
file's code has run; MemoryError and RecursionError become a one-line DataError too. The
unpickler is the pure-Python one (`pickle._Unpickler`), the only one whose opcodes can be
checked; on a feature file its cost is noise, since nearly all the bytes are a few large
array payloads that it reads with one `read` each.

`load(path, hasher=h)` also feeds every byte it reads to `h` (e.g. `hashlib.sha256()`), so a
caller gets the file's digest without reading the file a second time; `load_hashing` returns
before that hash is finished, so the caller's own checks can run beside it.
"""
from __future__ import annotations

import collections
import gc
import importlib
import itertools
import os
import pickle
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import DataError
from .opcode_costs import ITEM_BYTES, Metered

REFUSAL_HINT = "feature pickles may only hold numpy arrays, numbers, strings, lists, tuples and dicts"
LIMIT_HINT = "the file is corrupt or hostile; re-download it, or run with --synthetic"

BYTES_PER_FILE_BYTE = 4
BYTES_ALLOWANCE = 64 << 20
ELEMENT_BYTES = 64               # charged per element of a container that a call builds
ELEMENTS_PER_FILE_BYTE = 1       # each element of a container costs the stream at least one byte
ELEMENTS_ALLOWANCE = 1 << 20
MAX_DEPTH = 32                   # real files nest 3 deep (file -> split -> list of strings)
WORK_ALLOWANCE = 1 << 17         # opcodes any file may run: about 0.1 s of the unpickler
BYTES_PER_WORK = 24              # and one more per 24 bytes: real files need one per 35 or more
OBJECT_BYTES_PER_FILE_BYTE = 2
OBJECT_BYTES_ALLOWANCE = 32 << 20
MAX_MARKS = 2 * MAX_DEPTH        # open MARK frames: a container's and, inside it, a call's arguments
MAX_OTHER_KEYS = 1000            # keys that are not strings: none in real files
MAX_CODE_CHARS = 32              # a dtype code such as '<f4' or 'U12'; codecs' names
SHOWN_CHARS = 80                 # of a name from the file, in a message

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

_SEQUENCES = (list, tuple, set, frozenset, dict, collections.OrderedDict, str, bytes, bytearray)
_NUMBERS = (int, float, complex, bool, str, bytes)
_LEAVES = frozenset({str, bytes, bytearray, int, float, complex, bool, type(None)})


class _Refused(Exception):
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


def _sized(obj) -> str:
    """'a tuple of 8 items': how a message names a loaded object (never by its str())."""
    name = type(obj).__name__
    article = "an" if name[:1] in ("a", "e", "i", "o", "u") else "a"
    if isinstance(obj, (list, tuple, dict, set, frozenset)):
        return f"{article} {name} of {len(obj)} items"
    return f"{article} {name}"


def _ndarray_marker(*args, **kwargs):
    """What the file's `numpy.ndarray` global becomes. numpy's own pickles only pass the
    class to `_reconstruct`, which puts the real class back; calling it is refused, since
    ndarray(shape, dtype, buffer) would read raw memory the file chose."""
    raise _Refused("a call of numpy.ndarray")


def _elements(shape, what: str) -> int:
    """The element count of a numpy shape from the file: a tuple of non-negative ints."""
    if type(shape) is tuple and len(shape) <= 64:
        count = 1
        for d in shape:
            if type(d) is not int or d < 0:
                break
            count *= d
        else:
            return count
    raise _Refused(f"{what} whose shape is {_sized(shape)} other than non-negative ints", LIMIT_HINT)


_DTYPE_CODES = {}


def _plain_dtype(dtype, what: str) -> np.dtype:
    """A dtype given to a numpy call: a dtype object or a short code, with no fields or subarray
    (numpy's pickles restore those through BUILD, which only plain dtypes may use)."""
    if type(dtype) is str or type(dtype) is bytes:
        known = _DTYPE_CODES.get(dtype)
        if known is None:
            if len(dtype) > MAX_CODE_CHARS:
                raise _Refused(f"{what} with a dtype code of {len(dtype)} characters")
            known = np.dtype(dtype)
            if len(_DTYPE_CODES) < 256:       # every array of a file names its dtype ('b' for most)
                _DTYPE_CODES[dtype] = known
        dtype = known
    if not isinstance(dtype, np.dtype):
        raise _Refused(f"{what} with a dtype given as {_sized(dtype)}")
    if dtype.fields is not None or dtype.subdtype is not None:
        raise _Refused(f"{what} with a structured or subarray dtype")
    return dtype


def _children(obj):
    """An iterator over the objects `obj` holds, or None when it holds none."""
    t = type(obj)
    if t is list or t is tuple or t is set or t is frozenset:
        return iter(obj)
    if t is dict or t is collections.OrderedDict:
        return itertools.chain.from_iterable(obj.items())
    if t is np.ndarray and obj.dtype.hasobject:
        return obj.flat
    return None


def _tree_size(root, limit: int, what: str) -> int:
    """How many objects `root` holds counted as a tree: one reached by k paths counts k times,
    as a hash, an equality test, a repr or np.asarray would visit it. Refused past `limit`,
    with containers nested deeper than MAX_DEPTH, or with one that holds itself. Linear in
    the distinct objects: a shared container's count is worked out once."""
    children = _children(root)
    if children is None:
        return 1
    counted = {}                      # id -> tree size of a finished container (all alive in root)
    on_path = {id(root)}
    stack = [[root, children, 1]]     # container, its iterator, its count so far
    while True:
        frame = stack[-1]
        for child in frame[1]:
            grandchildren = None if type(child) in _LEAVES else _children(child)
            if grandchildren is None:
                frame[2] += 1
                continue
            size = counted.get(id(child))
            if size is not None:
                frame[2] += size
                if frame[2] > limit:
                    raise _Refused(f"{what} that holds more than {limit} objects counted as a tree "
                                   f"(memo references repeated inside each other)", LIMIT_HINT)
                continue
            if id(child) in on_path:
                raise _Refused(f"{what} with a container that holds itself", LIMIT_HINT)
            if len(stack) >= MAX_DEPTH:
                raise _Refused(f"{what} with containers nested more than {MAX_DEPTH} deep", LIMIT_HINT)
            on_path.add(id(child))
            stack.append([child, grandchildren, 1])
            break
        else:
            stack.pop()
            on_path.discard(id(frame[0]))
            counted[id(frame[0])] = frame[2]
            if frame[2] > limit:
                raise _Refused(f"{what} that holds more than {limit} objects counted as a tree", LIMIT_HINT)
            if not stack:
                return frame[2]
            stack[-1][2] += frame[2]


class _RestrictedUnpickler(pickle._Unpickler):
    # A subclass for denser files (checkpoints) gives its own rates.
    bytes_per_work = BYTES_PER_WORK
    object_bytes_per_file_byte = OBJECT_BYTES_PER_FILE_BYTE

    def __init__(self, file, size: int):
        super().__init__(file)
        self._size = size
        self._bytes_limit = BYTES_PER_FILE_BYTE * size + BYTES_ALLOWANCE
        self._bytes_left = self._bytes_limit
        self.elements_limit = ELEMENTS_PER_FILE_BYTE * size + ELEMENTS_ALLOWANCE
        self._elements_left = self.elements_limit
        self._other_keys = 0
        self.work_limit = WORK_ALLOWANCE + size // self.bytes_per_work
        self.work_left = self.work_limit
        self.object_bytes_limit = OBJECT_BYTES_ALLOWANCE + self.object_bytes_per_file_byte * size
        self.object_bytes_left = self.object_bytes_limit
        self.dispatch = Metered(type(self).dispatch, self)
        self._unbuilt_arrays = {}      # id -> array from _reconstruct still waiting for its BUILD
        self._built_dtypes = {}        # id -> dtype already restored once (kept alive: ids stay unique)
        # One bound method, so find_class hands out the same object that `_checks` knows.
        self._reconstruct_call = self._reconstruct
        self._checks = {id(func): (func, check) for func, check in (
            *((t, self._check_collection) for t in (list, tuple, set, frozenset)),
            (dict, self._check_mapping), (collections.OrderedDict, self._check_mapping),
            (str, self._check_str), (bytes, self._check_bytes), (bytearray, self._check_bytes),
            *((t, self._check_number) for t in (int, float, complex, bool)),
            (np.dtype, self._check_dtype_call), (_latin1_encode, self._check_encode),
            (_multiarray.scalar, self._check_scalar), (_numeric._frombuffer, self._check_frombuffer),
            (self._reconstruct_call, self._check_reconstruct), (_ndarray_marker, _ndarray_marker))}

    def find_class(self, module, name):
        # Every way a pickle names a callable (GLOBAL, STACK_GLOBAL, INST, OBJ, EXT*) comes
        # through here, so a refused name is never imported, let alone called.
        if (module, name) in _RECONSTRUCT:
            return self._reconstruct_call
        if (module, name) == ("numpy", "ndarray"):
            return _ndarray_marker
        if (module, name) not in _ALLOWED:
            raise _Refused(f"{_shown(module)}.{_shown(name)}")
        return _ALLOWED[(module, name)]

    def persistent_load(self, pid):
        raise _Refused("a persistent id")

    def _reconstruct(self, subtype, shape, dtype):
        if subtype is not _ndarray_marker:
            raise _Refused(f"numpy _reconstruct of {type(subtype).__name__}")
        array = _multiarray._reconstruct(np.ndarray, shape, dtype)
        self._unbuilt_arrays[id(array)] = array
        return array

    # -- budgets ----------------------------------------------------------------------------

    def _charge(self, nbytes: int, what: str):
        self._bytes_left -= nbytes
        if self._bytes_left < 0:
            raise _Refused(f"{what} ({nbytes} bytes, past the {self._bytes_limit} that a {self._size}-byte "
                           f"file may build)", LIMIT_HINT)

    def over_budget(self):
        if self.work_left < 0:
            raise _Refused(f"more than {self.work_limit} opcodes (the most a {self._size}-byte file may run)",
                           LIMIT_HINT)
        raise _Refused(f"opcodes that build more than {self.object_bytes_limit} bytes of containers, memo "
                       f"entries and strings (the most a {self._size}-byte file may build)", LIMIT_HINT)

    def _charge_items(self, count: int):
        """Entries added to a dict or set: each takes more than the stack slot its opcode paid for."""
        self.object_bytes_left -= ITEM_BYTES * count
        if self.object_bytes_left < 0:
            self.over_budget()

    def _check_key(self, key):
        """Before `key` is hashed as a dict key or set element."""
        t = type(key)
        if t is str or t is bytes:        # hashed once, in linear time, with a random seed
            return
        self._other_keys += 1
        if self._other_keys > MAX_OTHER_KEYS:
            raise _Refused(f"more than {MAX_OTHER_KEYS} dict keys or set elements other than strings",
                           LIMIT_HINT)
        if t is tuple or t is frozenset:
            self._elements_left -= _tree_size(key, self._elements_left, f"a dict key or set element ({t.__name__})")

    # -- calls: each allowed callable, with the arguments it is there for --------------------

    def _check_call(self, func, args, kwargs):
        entry = self._checks.get(id(func))
        if entry is None or entry[0] is not func:
            raise _Refused(f"a call of {_sized(func)}")
        if type(args) is not tuple or type(kwargs) is not dict:
            raise pickle.UnpicklingError(f"call arguments are {_sized(args)} and {_sized(kwargs)}")
        entry[1](func, *args, **kwargs)

    def _check_collection(self, func, source=(), /):
        if type(source) not in _SEQUENCES:
            raise _Refused(f"a {func.__name__} built from {_sized(source)}")
        self._charge(ELEMENT_BYTES * len(source), f"a {func.__name__} of {len(source)} elements")
        if (func is set or func is frozenset) and type(source) not in (str, bytes, bytearray):
            for item in source:
                self._check_key(item)

    def _check_mapping(self, func, source=(), /, **kwargs):
        if type(source) is dict or type(source) is collections.OrderedDict:
            keys = list(source)
        elif type(source) is list or type(source) is tuple:
            if not all(type(pair) in (tuple, list) and len(pair) == 2 for pair in source):
                raise _Refused(f"a {func.__name__} built from {_sized(source)} of other than pairs")
            keys = [pair[0] for pair in source]
        else:
            raise _Refused(f"a {func.__name__} built from {_sized(source)}")
        self._charge(ELEMENT_BYTES * (len(keys) + len(kwargs)), f"a {func.__name__} of {len(keys)} items")
        for key in keys:
            self._check_key(key)

    def _check_str(self, func, obj="", encoding=None, errors=None, /):
        # str() of anything but text is its repr, whose size and time the object decides.
        if type(obj) is str and encoding is None and errors is None:
            return
        if type(obj) not in (bytes, bytearray) or not all(
                x is None or (type(x) is str and len(x) <= MAX_CODE_CHARS) for x in (encoding, errors)):
            raise _Refused(f"str() of {_sized(obj)}")
        self._charge(4 * len(obj), f"a str of {len(obj)} characters")

    def _check_bytes(self, func, source=b"", encoding=None, errors=None, /):
        t = type(source)
        if t is int:
            self._charge(max(source, 0), f"{func.__name__}({source})")
            return
        if t not in (bytes, bytearray, str, list, tuple):
            raise _Refused(f"a {func.__name__} built from {_sized(source)}")
        if not all(x is None or (type(x) is str and len(x) <= MAX_CODE_CHARS) for x in (encoding, errors)):
            raise _Refused(f"a {func.__name__} with an encoding that is {_sized(encoding)}")
        self._charge((4 if t is str else 1) * len(source), f"a {func.__name__} of {len(source)} bytes")

    def _check_number(self, func, *args):
        # int('9' * n) is capped by Python's digit limit; the rest parse in linear time.
        if len(args) > 2 or not all(type(a) in _NUMBERS for a in args):
            raise _Refused(f"{func.__name__}() of {', '.join(_sized(a) for a in args[:3])}")

    def _check_dtype_call(self, func, obj, align=False, copy=False, /):
        if type(align) not in (bool, int) or type(copy) not in (bool, int):
            raise _Refused("a numpy dtype with flags other than bools")
        _plain_dtype(obj, "numpy.dtype()")

    def _check_encode(self, func, text, encoding="latin1", /):
        if type(text) is not str:
            raise _Refused(f"_codecs.encode of {_sized(text)}")
        self._charge(len(text), f"bytes of {len(text)} characters")

    def _check_scalar(self, func, dtype, obj=None, /):
        dtype = _plain_dtype(dtype, "a numpy scalar")
        if not dtype.hasobject:
            if type(obj) is not bytes or len(obj) < dtype.itemsize:
                raise _Refused(f"a numpy {dtype.str} scalar of {_sized(obj)}", LIMIT_HINT)
            self._charge(dtype.itemsize, f"a numpy {dtype.str} scalar")

    def _check_frombuffer(self, func, buffer, dtype, shape, order, /):
        # A view of bytes the stream holds: nothing to charge once the size matches.
        if type(buffer) not in (bytes, bytearray, memoryview):
            raise _Refused(f"a numpy array over {_sized(buffer)}")
        dtype = _plain_dtype(dtype, "a numpy array")
        count = _elements(shape, "a numpy array")
        if dtype.hasobject or (dtype.itemsize == 0 and count) or memoryview(buffer).nbytes != count * dtype.itemsize:
            raise _Refused(f"a numpy {dtype.str} array of shape {len(shape)}-D declaring {count} elements "
                           f"over {memoryview(buffer).nbytes} bytes", LIMIT_HINT)

    def _check_reconstruct(self, func, subtype, shape, dtype, /):
        # numpy writes (ndarray, (0,), b'b') and sends the data with BUILD; anything larger
        # is memory the file did not pay for.
        dtype = _plain_dtype(dtype, "a numpy array")
        count = _elements(shape, "a numpy array")
        self._charge(count * max(dtype.itemsize, 1), f"a numpy array of {count} elements")

    def _check_array_state(self, state):
        # numpy's state: (version, shape, dtype, is_fortran, data) or, older, without version.
        if type(state) is not tuple or len(state) not in (4, 5):
            raise _Refused(f"a numpy array state that is {_sized(state)}")
        shape, dtype, _, data = state[-4:]
        if not isinstance(dtype, np.dtype):
            raise _Refused(f"a numpy array state whose dtype is {_sized(dtype)}")
        count = _elements(shape, "a numpy array state")
        if dtype.hasobject:
            if type(data) is not list or len(data) != count:
                raise _Refused(f"an object array declaring {count} elements whose state holds {_sized(data)}",
                               LIMIT_HINT)
            self._charge(8 * count, f"an object array of {count} elements")
            return
        if dtype.itemsize == 0 and count:
            raise _Refused(f"a numpy array of {count} elements that take no bytes", LIMIT_HINT)
        have = len(data) if type(data) in (bytes, bytearray) else None
        if have is None or have != count * dtype.itemsize:
            raise _Refused(f"a numpy {dtype.str} array declaring {count * dtype.itemsize} bytes whose state "
                           f"holds {'%d bytes' % have if have is not None else _sized(data)}", LIMIT_HINT)
        self._charge(have, f"a numpy array of {have} bytes")

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
            raise _Refused(f"a numpy dtype state other than a plain dtype's ({_sized(state)})")

    # -- opcodes that call, hash, allocate or build ------------------------------------------

    def _load_reduce(self):
        args = self.stack.pop()
        func = self.stack[-1]
        self._check_call(func, args, {})
        self.stack[-1] = func(*args)

    def _load_newobj(self):
        args = self.stack.pop()
        cls = self.stack.pop()
        self._check_call(cls, args, {})
        self.append(cls.__new__(cls, *args))

    def _load_newobj_ex(self):
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self._check_call(cls, args, kwargs)
        self.append(cls.__new__(cls, *args, **kwargs))

    def _instantiate(self, klass, args):          # INST and OBJ
        self._check_call(klass, tuple(args), {})
        super()._instantiate(klass, args)

    def _dict_target(self):
        target = self.stack[-1]
        if type(target) is not dict and type(target) is not collections.OrderedDict:
            # SETITEM on an array would index it with whatever the file chose.
            raise _Refused(f"setting items of {_sized(target)}")
        return target

    def _load_setitem(self):
        value = self.stack.pop()
        key = self.stack.pop()
        target = self._dict_target()
        self._check_key(key)
        self._charge_items(1)
        target[key] = value

    def _load_setitems(self):
        items = self.pop_mark()
        target = self._dict_target()
        self._charge_items(len(items) // 2)
        for i in range(0, len(items), 2):
            self._check_key(items[i])
            target[items[i]] = items[i + 1]

    def _load_dict(self):
        items = self.pop_mark()
        self._charge_items(len(items) // 2)
        for key in items[::2]:
            self._check_key(key)
        self.append({items[i]: items[i + 1] for i in range(0, len(items), 2)})

    def _load_additems(self):
        items = self.pop_mark()
        target = self.stack[-1]
        if type(target) is not set:
            raise _Refused(f"adding items to {_sized(target)}")
        self._charge_items(len(items))
        for item in items:
            self._check_key(item)
        target.update(items)

    def _load_frozenset(self):
        items = self.pop_mark()
        self._charge_items(len(items))
        for item in items:
            self._check_key(item)
        self.append(frozenset(items))

    def _load_mark(self):
        # A MARK opens a frame for a container or a call's arguments being built, so frames nest
        # as the result will; refused here, before a file of MARKs fills the metastack.
        if len(self.metastack) >= MAX_MARKS:
            raise _Refused(f"a file with containers nested more than {MAX_MARKS} deep (MARK opcodes)", LIMIT_HINT)
        super().load_mark()

    def _load_bytearray8(self):
        # pickle allocates the bytearray before reading into it.
        size, = struct.unpack("<Q", self.read(8))
        if size > self._size:
            raise pickle.UnpicklingError(f"a bytearray of {size} bytes in a {self._size}-byte file")
        data = bytearray(size)
        self.readinto(data)
        self.append(data)

    def _load_build(self):
        state = self.stack.pop()
        target = self.stack[-1]
        if isinstance(target, np.dtype):
            self._check_dtype_state(target, state)
            self._built_dtypes[id(target)] = target
        elif isinstance(target, np.ndarray) and self._unbuilt_arrays.pop(id(target), None) is target:
            self._check_array_state(state)
        else:
            raise _Refused(f"a state for {type(target).__name__}")
        target.__setstate__(state)

    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.REDUCE[0]] = _load_reduce
    dispatch[pickle.NEWOBJ[0]] = _load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = _load_newobj_ex
    dispatch[pickle.SETITEM[0]] = _load_setitem
    dispatch[pickle.SETITEMS[0]] = _load_setitems
    dispatch[pickle.DICT[0]] = _load_dict
    dispatch[pickle.ADDITEMS[0]] = _load_additems
    dispatch[pickle.FROZENSET[0]] = _load_frozenset
    dispatch[pickle.BYTEARRAY8[0]] = _load_bytearray8
    dispatch[pickle.BUILD[0]] = _load_build
    dispatch[pickle.MARK[0]] = _load_mark


class _Reader:
    """The file as the unpickler reads it.

    A read never asks for more than the file has left: pickle's length fields go straight to
    `read(n)`, which allocates n bytes before it finds the file shorter.

    With `hasher`, every byte handed out is fed to it on a worker thread. Hashing (about
    1.4 GB/s for sha256 here) is slower than reading a cached file, so it runs beside the
    unpickler (hashlib and file reads both release the GIL). Each block is hashed from the
    very object handed to the unpickler, and the queue holds a reference to it, so nothing is
    copied and nothing is freed under the hasher. Small reads (opcodes, 64 KiB frames) are
    gathered into one block first: a thread hop per opcode costs more than hashing it.
    """

    GATHER = 1 << 20

    def __init__(self, raw, size: int, hasher=None, pool: ThreadPoolExecutor | None = None):
        self._raw = raw
        self._left = size
        self._hasher = hasher
        self._pool = pool
        self._small = bytearray()
        self._last = None           # future of the latest block sent to the worker

    def _hash(self, data):
        self._left -= len(data)
        if self._hasher is None:
            return
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

    def _check_length(self, size: int):
        if size > self._left:
            raise pickle.UnpicklingError(f"a length of {size} bytes where the file has {self._left} left")

    def read(self, size=-1):
        if size is None or size < 0:
            size = self._left
        self._check_length(size)
        data = self._raw.read(size)
        self._hash(data)
        return data

    def readline(self, size=-1):
        data = self._raw.readline(size)
        self._hash(data)
        return data

    def readinto(self, buffer):
        view = memoryview(buffer).cast("B")
        self._check_length(len(view))
        n = self._raw.readinto(view)
        # A memoryview keeps its exporter alive, so the worker may hash it after we return.
        self._hash(view[:n])
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


def _describe(error: BaseException) -> str:
    """An unexpected error as a short line. Its args may be loaded objects (a KeyError's str()
    is its key's repr), so its text is shown only when they are strings and numbers."""
    if isinstance(error, UnicodeError) or all(type(a) in (str, int, float) for a in error.args):
        text = " ".join(str(error)[:400].split())[:200]
        return f"{type(error).__name__}: {text}" if text else type(error).__name__
    return type(error).__name__


def _unpickle(path: Path, hasher):
    """-> (object, reader). The file is fully read and closed on return; the hashing of the
    last blocks may still be running on the reader's worker."""
    try:
        raw = open(path, "rb")
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pickle-hash") if hasher is not None else None
    with raw:
        size = os.fstat(raw.fileno()).st_size
        reader = _Reader(raw, size, hasher, pool)
        try:
            return run(_RestrictedUnpickler(reader, size), path, reader.read_rest if hasher else None), reader
        finally:
            if pool is not None:
                pool.shutdown(wait=False)   # the worker exits once its queue is done


def run(unpickler: _RestrictedUnpickler, where, then=None, fix: str = "re-download it or run with --synthetic"):
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
    except _Refused as e:
        raise DataError(f"refused to unpickle {e.what} from {where}: {e.hint}") from None
    except MemoryError:
        raise DataError(f"ran out of memory unpickling {where}: the file may be corrupt "
                        f"(a damaged length field), or this machine needs more memory") from None
    except RecursionError:
        raise DataError(f"{where} nests objects too deeply to unpickle: {LIMIT_HINT}") from None
    except Exception as e:   # whatever a damaged byte stream makes the unpickler raise
        raise DataError(f"{where} is truncated or corrupt ({_describe(e)}): {fix}") from None
    finally:
        if collecting:
            gc.enable()
        # The memo, `_checks` and the metered `dispatch` hold the unpickler itself: left alone,
        # that cycle keeps every loaded array alive until the next garbage collection.
        unpickler.memo.clear()
        for name in ("_checks", "dispatch", "_reconstruct_call"):
            unpickler.__dict__.pop(name, None)


def load(path, *, hasher=None):
    """Unpickle `path` allowing only numpy arrays/scalars/dtypes and plain containers, within
    the limits of the module docstring.

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
