"""Hostile pickles: small files that would take unbounded time or memory to unpickle.

Each file is written here opcode by opcode (or, for numpy's calls, by pickle from a
`__reduce__` that returns exactly the call). Each must fail with a one-line DataError, in
under 1 s and under 200 MB of extra memory. They are loaded in one child process (hostile_loads.py), so that
a limit that regresses fails these tests (the child is killed or its results are missing)
instead of hanging or crashing pytest (hashing a tuple nested a million deep overflows the
C stack). A full-size synthetic file, and the MIntRec layout, still load.
"""
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hostile_loads import assert_refused_small_and_in_one_line, load_each_in_a_child
from mmsa_atsuko import safe_pickle
from mmsa_atsuko.data import load_dataset
from mmsa_atsuko.data.synthetic import write_synthetic
from mmsa_atsuko.data.synthetic_mintrec import write_synthetic_mintrec
from mmsa_atsuko.errors import DataError

ROOT = Path(__file__).resolve().parents[1]

PROTO2, STOP, NONE, POP, MARK = b"\x80\x02", b".", b"N", b"0", b"("
EMPTY_DICT, EMPTY_LIST, EMPTY_TUPLE = b"}", b"]", b")"
TUPLE1, TUPLE2, TUPLE3, LIST, DICT = b"\x85", b"\x86", b"\x87", b"l", b"d"
SETITEM, SETITEMS, APPEND, REDUCE, BUILD = b"s", b"u", b"a", b"R", b"b"
FROZENSET, EMPTY_SET, ADDITEMS = b"\x91", b"\x8f", b"\x90"
NEWFALSE, NEWTRUE = b"\x89", b"\x88"


def glob(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def binint(n):
    return b"J" + struct.pack("<i", n)


def long1(n):
    data = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data


def short_unicode(text):
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def put(i):
    return b"q" + bytes([i]) if i < 256 else b"r" + struct.pack("<I", i)      # BINPUT, LONG_BINPUT


def get(i):
    return b"h" + bytes([i]) if i < 256 else b"j" + struct.pack("<I", i)      # BINGET, LONG_BINGET


def shared(levels, wrap=TUPLE2, first=0):
    """t[0] = (), t[i] = (t[i-1], t[i-1]) from memo references: `levels` * 13 bytes whose tree
    (what hash, == and repr walk) has 2**levels leaves. Leaves t[levels] on the stack."""
    out = EMPTY_TUPLE + put(first) + POP
    for i in range(1, levels + 1):
        out += get(first + i - 1) + get(first + i - 1) + wrap + put(first + i) + (POP if i < levels else b"")
    return out


def shared_wide(levels, width):
    """Like `shared`, each level a `width`-tuple of the one below: width**levels leaves, few levels."""
    out = EMPTY_TUPLE + put(0) + POP
    for i in range(1, levels + 1):
        out += MARK + get(i - 1) * width + b"t" + put(i) + (POP if i < levels else b"")
    return out


def shared_lists(levels):
    out = EMPTY_LIST + put(0) + POP
    for i in range(1, levels + 1):
        out += MARK + get(i - 1) + get(i - 1) + LIST + put(i) + (POP if i < levels else b"")
    return out


class Call:
    """Pickles as exactly `func(*args)`, then `__setstate__(state)` if a state is given."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


_core = "numpy._core" if np.__version__ >= "2" else "numpy.core"
_multiarray = __import__(f"{_core}.multiarray", fromlist=["_reconstruct"])
_numeric = __import__(f"{_core}.numeric", fromlist=["_frombuffer"])


def numpy_case(payload):
    return pickle.dumps(payload, protocol=2)


GIB = 1 << 30
DTYPE_F8 = glob("numpy", "dtype") + short_unicode("f8") + NEWFALSE + NEWTRUE + TUPLE3 + REDUCE
HOSTILE = {
    # hashing a memo-shared tuple walks all 2**30 paths: as a dict key, by each opcode that hashes
    "tuple_key_setitem": PROTO2 + EMPTY_DICT + shared(30) + NONE + SETITEM + STOP,
    "tuple_key_setitems": PROTO2 + EMPTY_DICT + MARK + shared(30) + NONE + SETITEMS + STOP,
    "tuple_key_dict": PROTO2 + MARK + shared(30) + NONE + DICT + STOP,
    "tuple_in_frozenset": PROTO2 + MARK + shared(30) + FROZENSET + STOP,
    "tuple_in_set_additems": PROTO2 + EMPTY_SET + MARK + shared(30) + ADDITEMS + STOP,
    "wide_tuple_key": PROTO2 + EMPTY_DICT + shared_wide(6, 60) + NONE + SETITEM + STOP,     # 6 levels deep
    "tuple_in_set_call": PROTO2 + glob("__builtin__", "set") + MARK + shared(30) + LIST + TUPLE1 + REDUCE + STOP,
    "tuple_key_dict_call": PROTO2 + glob("__builtin__", "dict") + MARK + shared(30) + NONE + TUPLE2 + LIST
                           + TUPLE1 + REDUCE + STOP,
    # the same tuple, returned: whoever hashes, compares or prints it later would hang
    "shared_tuple_returned": PROTO2 + shared(60) + STOP,
    "shared_lists_returned": PROTO2 + shared_lists(25) + STOP,        # np.asarray(...) = 2**25 items
    "wide_tuple_returned": PROTO2 + shared_wide(6, 60) + STOP,
    # huge allocations from a dozen bytes
    "bytearray_1_5e9": PROTO2 + glob("__builtin__", "bytearray") + binint(1_500_000_000) + TUPLE1 + REDUCE + STOP,
    "bytes_2e8": PROTO2 + glob("__builtin__", "bytes") + binint(200_000_000) + TUPLE1 + REDUCE + STOP,
    "list_of_bytes_1e7": PROTO2 + glob("__builtin__", "list") + glob("__builtin__", "bytes") + binint(10_000_000)
                         + TUPLE1 + REDUCE + TUPLE1 + REDUCE + STOP,
    "list_copies": PROTO2 + glob("__builtin__", "list") + put(0) + POP + glob("__builtin__", "bytes")
                   + binint(1_000_000) + TUPLE1 + REDUCE + put(1) + POP
                   + b"".join(get(0) + get(1) + TUPLE1 + REDUCE + POP for _ in range(10)) + NONE + STOP,
    "bytearray8_length": b"\x80\x05\x96" + struct.pack("<Q", 1 << 40) + STOP,
    "binbytes8_length": b"\x80\x04\x8e" + struct.pack("<Q", 1 << 36) + STOP,
    "frame_length": b"\x80\x04\x95" + struct.pack("<Q", 1 << 36) + NONE + STOP,
    "binunicode8_length": b"\x80\x04\x8d" + struct.pack("<Q", 1 << 36) + STOP,
    # nesting: hashing a tuple a million deep overflows the C stack (100000 keeps the file quick
    # to read; the limit is the same)
    "deep_tuple_key": PROTO2 + EMPTY_DICT + NONE + TUPLE1 * 100_000 + NONE + SETITEM + STOP,
    "deep_tuple_returned": PROTO2 + NONE + TUPLE1 * 100_000 + STOP,
    "deep_lists": PROTO2 + MARK * 100_000 + LIST * 100_000 + STOP,
    "list_holding_itself": PROTO2 + EMPTY_LIST + put(0) + get(0) + APPEND + STOP,
    # numbers' hashes collide by design: 20000 int keys that all hash to 0
    "colliding_int_keys": PROTO2 + EMPTY_DICT + MARK
                          + b"".join(long1(k * (2**61 - 1)) + NONE for k in range(1, 20_001)) + SETITEMS + STOP,
    # numpy: a declared size the stream does not hold
    "array_state_claims_1e9": numpy_case(Call(_multiarray._reconstruct, (np.ndarray, (0,), b"b"),
                                              (1, (10**9,), np.dtype("f8"), False, b"\0" * 8))),
    "reconstruct_allocates_8gb": numpy_case(Call(_multiarray._reconstruct, (np.ndarray, (GIB,), "f8"))),
    "frombuffer_claims_1e9": numpy_case(Call(_numeric._frombuffer, (b"\0" * 8, np.dtype("f8"), (10**9,), "C"))),
    "zero_size_items": numpy_case(Call(_multiarray._reconstruct, (np.ndarray, (0,), b"b"),
                                       (1, (10**12,), np.dtype("V0"), False, b""))),
    "object_array_claims_1e9": numpy_case(Call(_multiarray._reconstruct, (np.ndarray, (0,), b"b"),
                                               (1, (10**9,), np.dtype("O"), False, [None]))),
    "scalar_without_data": numpy_case(Call(_multiarray.scalar, (np.dtype("V1000000000"), b""))),
    # error paths that used to print what they refused: str() of the memo-shared tuple is 2**40 long
    "dtype_state_shared_tuple": PROTO2 + DTYPE_F8 + shared(40, first=10) + BUILD + STOP,
    "str_of_shared_tuple": PROTO2 + glob("__builtin__", "str") + shared(40, first=10) + TUPLE1 + REDUCE + STOP,
    "dtype_of_shared_tuple": PROTO2 + glob("numpy", "dtype") + shared(40, first=10) + TUPLE1 + REDUCE + STOP,
    "long_global_name": PROTO2 + glob("x" * 1_000_000, "y") + STOP,
    # a file of one-byte opcodes builds up to 216 bytes a byte and runs a million opcodes a MB: these
    # took 1.3-2.4 s and up to 313 MB before the opcode and object limits; 10 MB of NONE, POP 4.2 s
    "opcodes_1mb_empty_sets": PROTO2 + MARK + b"\x8f" * 1_000_000 + LIST + STOP,
    "opcodes_1mb_empty_dicts": PROTO2 + MARK + EMPTY_DICT * 1_000_000 + LIST + STOP,
    "opcodes_1mb_empty_lists": PROTO2 + MARK + EMPTY_LIST * 1_000_000 + LIST + STOP,
    "opcodes_1mb_marks": PROTO2 + MARK * 1_000_000 + NONE + STOP,
    "opcodes_1mb_tuple1": PROTO2 + NONE + TUPLE1 * 1_000_000 + STOP,
    "opcodes_1mb_memoize": b"\x80\x04" + (NONE + b"\x94" + POP) * 333_333 + NONE + STOP,
    "opcodes_10mb_nop_pairs": PROTO2 + (NONE + POP) * 5_000_000 + NONE + STOP,
    "setitem_on_array": numpy_case(Call(_multiarray._reconstruct, (np.ndarray, (0,), b"b"),
                                        (1, (1,), np.dtype("f8"), False, b"\0" * 8)))[:-1]
                        + shared(40, wrap=TUPLE2, first=50) + NONE + SETITEM + STOP,
}
EXPECTED = {   # what each must be refused for (a fragment of the message)
    "tuple_key_setitem": "a dict key or set element (tuple) that holds more than",
    "tuple_key_setitems": "that holds more than",
    "tuple_key_dict": "that holds more than",
    "tuple_in_frozenset": "that holds more than",
    "tuple_in_set_additems": "that holds more than",
    "wide_tuple_key": "that holds more than",
    "tuple_in_set_call": "that holds more than",
    "tuple_key_dict_call": "that holds more than",
    "shared_tuple_returned": "nested more than 32 deep",
    "shared_lists_returned": "a file that holds more than",
    "wide_tuple_returned": "a file that holds more than",
    "bytearray_1_5e9": "bytearray(1500000000)",
    "bytes_2e8": "bytes(200000000)",
    "list_of_bytes_1e7": "a list of 10000000 elements",
    "list_copies": "a list of 1000000 elements",
    "bytearray8_length": "a bytearray of 1099511627776 bytes in a 12-byte file",
    "binbytes8_length": "a length of 68719476736 bytes where the file has",
    "frame_length": "a length of 68719476736",
    "binunicode8_length": "a length of 68719476736",
    "deep_tuple_key": "a dict key or set element (tuple) with containers nested more than 32 deep",
    "deep_tuple_returned": "nested more than 32 deep",
    "deep_lists": "nested more than 64 deep (MARK opcodes)",
    "list_holding_itself": "a container that holds itself",
    "colliding_int_keys": "more than 1000 dict keys",
    "array_state_claims_1e9": "declaring 8000000000 bytes whose state holds 8 bytes",
    "reconstruct_allocates_8gb": "a numpy array of 1073741824 elements",
    "frombuffer_claims_1e9": "declaring 1000000000 elements over 8 bytes",
    "zero_size_items": "1000000000000 elements that take no bytes",
    "object_array_claims_1e9": "an object array declaring 1000000000 elements whose state holds a list of 1 items",
    "scalar_without_data": "scalar of a bytes",
    "dtype_state_shared_tuple": "a numpy dtype state other than a plain dtype's (a tuple of 2 items)",
    "str_of_shared_tuple": "str() of a tuple of 2 items",
    "dtype_of_shared_tuple": "numpy.dtype() with a dtype given as a tuple",
    "long_global_name": "xxxxxxxx....y",
    "setitem_on_array": "setting items of a ndarray",
    "opcodes_1mb_empty_sets": "opcodes that build more than",
    "opcodes_1mb_empty_dicts": "opcodes (the most a",
    "opcodes_1mb_empty_lists": "opcodes (the most a",
    "opcodes_1mb_marks": "nested more than 64 deep (MARK opcodes)",
    "opcodes_1mb_tuple1": "opcodes (the most a",
    "opcodes_1mb_memoize": "opcodes (the most a",
    "opcodes_10mb_nop_pairs": "opcodes (the most a",
}

@pytest.fixture(scope="module")
def results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    paths = []
    for name, blob in HOSTILE.items():
        paths.append(folder / f"{name}.pkl")
        paths[-1].write_bytes(blob)
    return load_each_in_a_child("mmsa_atsuko.safe_pickle.load", paths)


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_pickle_is_refused_small_and_in_one_line(results, name):
    assert_refused_small_and_in_one_line(results, name, f"{name}.pkl", EXPECTED[name])


def test_sizes_of_the_hostile_files():
    # Small files all: what they could build comes from opcodes, not from their bytes.
    assert max(len(blob) for name, blob in HOSTILE.items()
               if not name.startswith(("long_global", "colliding", "deep_", "opcodes_"))) < 1000


def test_the_shared_tuple_is_what_the_old_unpickler_hung_on():
    # Independent of the loader: with 22 levels (not 60) plain pickle builds it, and its tree
    # has 2**22 leaves, which is what hash() and repr() walk.
    t = pickle.loads(PROTO2 + shared(22) + STOP)
    depth, node = 0, t
    while node:
        node, depth = node[0], depth + 1
    assert depth == 22 and t[0] is t[1]


def test_limits_scale_with_the_file_not_with_the_allowances(tmp_path, monkeypatch):
    """With the fixed allowances gone, a file's own size must admit it: so a full-size file of
    the same make-up (MMSA pickles, MIntRec's many small frame arrays) is admitted too."""
    monkeypatch.setattr(safe_pickle.limits, "BYTES_ALLOWANCE", 0)
    monkeypatch.setattr(safe_pickle.limits, "ELEMENTS_ALLOWANCE", 0)
    monkeypatch.setattr(safe_pickle.limits, "WORK_ALLOWANCE", 0)
    monkeypatch.setattr(safe_pickle.limits, "OBJECT_BYTES_ALLOWANCE", 0)
    mmsa = write_synthetic("sims", tmp_path / "sims.pkl", size="small")
    assert set(safe_pickle.load(mmsa)) == {"__synthetic__", "train", "valid", "test"}
    folder = write_synthetic_mintrec(tmp_path / "MIntRec", size="small")
    for name in ("video_data/video_feats.pkl", "audio_data/audio_feats.pkl"):
        with open(folder / name, "rb") as f:
            expected = pickle.load(f)
        loaded = safe_pickle.load(folder / name)
        assert list(loaded) == list(expected) and len(loaded) == 280
        key = next(iter(expected))
        np.testing.assert_array_equal(np.asarray(loaded[key]), np.asarray(expected[key]))


def test_full_size_synthetic_file_loads(tmp_path):
    path = write_synthetic("mosi", tmp_path / "mosi-full.pkl", size="full")
    assert path.stat().st_size > 300 << 20
    data = load_dataset("mosi", feature_path=path)
    assert data.spec.split_sizes == {"train": 1284, "valid": 229, "test": 686}
    assert data.spec.source == "synthetic:mosi-full-unaligned-seed0-v2"


def test_refused_hostile_file_in_the_mmsa_layout(tmp_path):
    path = tmp_path / "hostile.pkl"
    path.write_bytes(HOSTILE["tuple_key_setitem"])
    with pytest.raises(DataError, match=r"refused to unpickle a dict key or set element \(tuple\) that holds"):
        load_dataset("mosi", feature_path=path)


def test_cli_prints_one_line_for_a_hostile_file(tmp_path):
    path = tmp_path / "hostile.pkl"
    path.write_bytes(HOSTILE["tuple_key_setitem"])
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "-m", "tfn", "-d", "mosi", "--feature-path",
                           str(path), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env=dict(os.environ, HF_HUB_OFFLINE="1"))
    output = (proc.stdout + proc.stderr).strip()
    assert proc.returncode != 0 and "Traceback" not in output
    assert len(output.splitlines()) == 1 and "refused to unpickle" in output and str(path) in output, output
