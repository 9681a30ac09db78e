"""The restricted unpickler: pickle's own, with every opcode that can call, hash, allocate or
build checked first.

It is the pure-Python one (`pickle._Unpickler`), the only one whose opcodes can be checked;
on a feature file its cost is noise, since nearly all the bytes are a few large array payloads
that it reads with one `read` each. `find_class` resolves only the globals of `allowed`; calls
go through the checks of `calls`; `budgets` charges all of it.

BUILD may touch only numpy dtypes (and only to restore a plain dtype's byte order: no fields,
no flags of the file's choosing) and arrays fresh from `_reconstruct`, once. That matters
because numpy trusts pickled dtype flags: a dtype whose state says "holds no objects" while
its fields say otherwise turns raw bytes from the file into object pointers, and touching such
an array crashes the interpreter or worse.
"""
from __future__ import annotations

import collections
import pickle
import struct

import numpy as np

from ..opcode_costs import Metered
from . import limits
from .allowed import _ALLOWED_GLOBALS, _RECONSTRUCT_NAMES, _latin1_encode, _multiarray, _ndarray_marker, _numeric
from .budgets import _Budgets
from .calls import _CallChecks, _element_count
from .refusals import LIMIT_HINT, Refused, _shown, sized


class RestrictedUnpickler(_CallChecks, _Budgets, pickle._Unpickler):
    """`pickle._Unpickler` checking calls (`_CallChecks`) and charging budgets (`_Budgets`)."""

    def __init__(self, file, size: int):
        super().__init__(file)
        self._start_budgets(size)
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
        if (module, name) in _RECONSTRUCT_NAMES:
            return self._reconstruct_call
        if (module, name) == ("numpy", "ndarray"):
            return _ndarray_marker
        if (module, name) not in _ALLOWED_GLOBALS:
            raise Refused(f"{_shown(module)}.{_shown(name)}")
        return _ALLOWED_GLOBALS[(module, name)]

    def persistent_load(self, pid):
        raise Refused("a persistent id")

    def _reconstruct(self, subtype, shape, dtype):
        if subtype is not _ndarray_marker:
            raise Refused(f"numpy _reconstruct of {type(subtype).__name__}")
        array = _multiarray._reconstruct(np.ndarray, shape, dtype)
        self._unbuilt_arrays[id(array)] = array
        return array

    # -- BUILD: the states it may set ---------------------------------------------------------

    def _check_array_state(self, state):
        # numpy's state: (version, shape, dtype, is_fortran, data) or, older, without version.
        if type(state) is not tuple or len(state) not in (4, 5):
            raise Refused(f"a numpy array state that is {sized(state)}")
        shape, dtype, _, data = state[-4:]
        if not isinstance(dtype, np.dtype):
            raise Refused(f"a numpy array state whose dtype is {sized(dtype)}")
        count = _element_count(shape, "a numpy array state")
        if dtype.hasobject:
            if type(data) is not list or len(data) != count:
                raise Refused(f"an object array declaring {count} elements whose state holds {sized(data)}",
                              LIMIT_HINT)
            self._charge(8 * count, f"an object array of {count} elements")
            return
        if dtype.itemsize == 0 and count:
            raise Refused(f"a numpy array of {count} elements that take no bytes", LIMIT_HINT)
        have = len(data) if type(data) in (bytes, bytearray) else None
        if have is None or have != count * dtype.itemsize:
            raise Refused(f"a numpy {dtype.str} array declaring {count * dtype.itemsize} bytes whose state "
                          f"holds {'%d bytes' % have if have is not None else sized(data)}", LIMIT_HINT)
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
            raise Refused(f"a numpy dtype state other than a plain dtype's ({sized(state)})")

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
            raise Refused(f"setting items of {sized(target)}")
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
            raise Refused(f"adding items to {sized(target)}")
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
        if len(self.metastack) >= limits.MAX_MARKS:
            raise Refused(f"a file with containers nested more than {limits.MAX_MARKS} deep (MARK opcodes)",
                          LIMIT_HINT)
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
            raise Refused(f"a state for {type(target).__name__}")
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
