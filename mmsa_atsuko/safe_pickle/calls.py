"""The check of each callable a file may call, against the arguments it is there for.

Every call a file makes (REDUCE, NEWOBJ, NEWOBJ_EX, INST, OBJ) goes through `_check_call`
before it runs. It finds the callable in the unpickler's `_checks` table (built in
`RestrictedUnpickler.__init__`: each callable `find_class` hands out, with its check) and
refuses anything else. A check refuses arguments its callable is not there for and charges
what the call will allocate (`_Budgets._charge`), so nothing is built that the file did not
pay for: an array's declared size must be exactly the bytes its data holds, and numpy calls
take only plain dtypes (no fields, no subarray).
"""
from __future__ import annotations

import collections
import pickle

import numpy as np

from . import limits
from .refusals import LIMIT_HINT, Refused, sized

_SEQUENCES = (list, tuple, set, frozenset, dict, collections.OrderedDict, str, bytes, bytearray)
_NUMBERS = (int, float, complex, bool, str, bytes)


def _element_count(shape, what: str) -> int:
    """The element count of a numpy shape from the file: a tuple of non-negative ints."""
    if type(shape) is tuple and len(shape) <= 64:
        count = 1
        for d in shape:
            if type(d) is not int or d < 0:
                break
            count *= d
        else:
            return count
    raise Refused(f"{what} whose shape is {sized(shape)} other than non-negative ints", LIMIT_HINT)


_DTYPE_CODES = {}


def _plain_dtype(dtype, what: str) -> np.dtype:
    """A dtype given to a numpy call: a dtype object or a short code, with no fields or subarray
    (numpy's pickles restore those through BUILD, which only plain dtypes may use)."""
    if type(dtype) is str or type(dtype) is bytes:
        known = _DTYPE_CODES.get(dtype)
        if known is None:
            if len(dtype) > limits.MAX_CODE_CHARS:
                raise Refused(f"{what} with a dtype code of {len(dtype)} characters")
            known = np.dtype(dtype)
            if len(_DTYPE_CODES) < 256:       # every array of a file names its dtype ('b' for most)
                _DTYPE_CODES[dtype] = known
        dtype = known
    if not isinstance(dtype, np.dtype):
        raise Refused(f"{what} with a dtype given as {sized(dtype)}")
    if dtype.fields is not None or dtype.subdtype is not None:
        raise Refused(f"{what} with a structured or subarray dtype")
    return dtype


class _CallChecks:
    """The part of `RestrictedUnpickler` that checks calls; it charges them to `_Budgets`."""

    def _check_call(self, func, args, kwargs):
        entry = self._checks.get(id(func))
        if entry is None or entry[0] is not func:
            raise Refused(f"a call of {sized(func)}")
        if type(args) is not tuple or type(kwargs) is not dict:
            raise pickle.UnpicklingError(f"call arguments are {sized(args)} and {sized(kwargs)}")
        entry[1](func, *args, **kwargs)

    def _check_collection(self, func, source=(), /):
        if type(source) not in _SEQUENCES:
            raise Refused(f"a {func.__name__} built from {sized(source)}")
        self._charge(limits.ELEMENT_BYTES * len(source), f"a {func.__name__} of {len(source)} elements")
        if (func is set or func is frozenset) and type(source) not in (str, bytes, bytearray):
            for item in source:
                self._check_key(item)

    def _check_mapping(self, func, source=(), /, **kwargs):
        if type(source) is dict or type(source) is collections.OrderedDict:
            keys = list(source)
        elif type(source) is list or type(source) is tuple:
            if not all(type(pair) in (tuple, list) and len(pair) == 2 for pair in source):
                raise Refused(f"a {func.__name__} built from {sized(source)} of other than pairs")
            keys = [pair[0] for pair in source]
        else:
            raise Refused(f"a {func.__name__} built from {sized(source)}")
        self._charge(limits.ELEMENT_BYTES * (len(keys) + len(kwargs)), f"a {func.__name__} of {len(keys)} items")
        for key in keys:
            self._check_key(key)

    def _check_str(self, func, obj="", encoding=None, errors=None, /):
        # str() of anything but text is its repr, whose size and time the object decides.
        if type(obj) is str and encoding is None and errors is None:
            return
        if type(obj) not in (bytes, bytearray) or not all(
                x is None or (type(x) is str and len(x) <= limits.MAX_CODE_CHARS) for x in (encoding, errors)):
            raise Refused(f"str() of {sized(obj)}")
        self._charge(4 * len(obj), f"a str of {len(obj)} characters")

    def _check_bytes(self, func, source=b"", encoding=None, errors=None, /):
        t = type(source)
        if t is int:
            self._charge(max(source, 0), f"{func.__name__}({source})")
            return
        if t not in (bytes, bytearray, str, list, tuple):
            raise Refused(f"a {func.__name__} built from {sized(source)}")
        if not all(x is None or (type(x) is str and len(x) <= limits.MAX_CODE_CHARS) for x in (encoding, errors)):
            raise Refused(f"a {func.__name__} with an encoding that is {sized(encoding)}")
        self._charge((4 if t is str else 1) * len(source), f"a {func.__name__} of {len(source)} bytes")

    def _check_number(self, func, *args):
        # int('9' * n) is capped by Python's digit limit; the rest parse in linear time.
        if len(args) > 2 or not all(type(a) in _NUMBERS for a in args):
            raise Refused(f"{func.__name__}() of {', '.join(sized(a) for a in args[:3])}")

    def _check_dtype_call(self, func, obj, align=False, copy=False, /):
        if type(align) not in (bool, int) or type(copy) not in (bool, int):
            raise Refused("a numpy dtype with flags other than bools")
        _plain_dtype(obj, "numpy.dtype()")

    def _check_encode(self, func, text, encoding="latin1", /):
        if type(text) is not str:
            raise Refused(f"_codecs.encode of {sized(text)}")
        self._charge(len(text), f"bytes of {len(text)} characters")

    def _check_scalar(self, func, dtype, obj=None, /):
        dtype = _plain_dtype(dtype, "a numpy scalar")
        if not dtype.hasobject:
            if type(obj) is not bytes or len(obj) < dtype.itemsize:
                raise Refused(f"a numpy {dtype.str} scalar of {sized(obj)}", LIMIT_HINT)
            self._charge(dtype.itemsize, f"a numpy {dtype.str} scalar")

    def _check_frombuffer(self, func, buffer, dtype, shape, order, /):
        # A view of bytes the stream holds: nothing to charge once the size matches.
        if type(buffer) not in (bytes, bytearray, memoryview):
            raise Refused(f"a numpy array over {sized(buffer)}")
        dtype = _plain_dtype(dtype, "a numpy array")
        count = _element_count(shape, "a numpy array")
        if dtype.hasobject or (dtype.itemsize == 0 and count) or memoryview(buffer).nbytes != count * dtype.itemsize:
            raise Refused(f"a numpy {dtype.str} array of shape {len(shape)}-D declaring {count} elements "
                          f"over {memoryview(buffer).nbytes} bytes", LIMIT_HINT)

    def _check_reconstruct(self, func, subtype, shape, dtype, /):
        # numpy writes (ndarray, (0,), b'b') and sends the data with BUILD; anything larger
        # is memory the file did not pay for.
        dtype = _plain_dtype(dtype, "a numpy array")
        count = _element_count(shape, "a numpy array")
        self._charge(count * max(dtype.itemsize, 1), f"a numpy array of {count} elements")
