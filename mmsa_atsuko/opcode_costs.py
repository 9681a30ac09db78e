"""What each pickle opcode costs the restricted unpickler (`safe_pickle`): time and memory.

`Metered` is the unpickler's opcode table; `pickle._Unpickler.load` looks up every opcode in it,
and each lookup charges the unpickler `WORK[opcode]` of its opcode budget and `OBJECT_BYTES[opcode]`
of its object budget, both in proportion to the file's size (the limits are safe_pickle's).
"""
from __future__ import annotations

import pickle

CALL_WORK = 4                    # what a call or BUILD costs, in plain opcodes (checks and numpy's calls)
ITEM_BYTES = 64                  # what a dict entry or set element adds (its slot, the table's growth)


def _opcode_table(default: int, costs: dict) -> list:
    table = [default] * 256
    for codes, cost in costs.items():
        for code in codes:
            table[code[0]] = cost
    return table


P = pickle
# What each opcode costs in plain-opcode units, and about what it adds to memory beside its
# stack slot (CPython 3.11 on 64 bits: an empty set is 216 bytes, a list 56, a memo entry about
# 100 with its int key and the dict's growth). Strings' contents are not charged: read from the
# file, they take at most 4 bytes per byte.
_STRINGS = (P.SHORT_BINUNICODE, P.BINUNICODE, P.BINUNICODE8, P.UNICODE, P.SHORT_BINBYTES, P.BINBYTES, P.BINBYTES8,
            P.SHORT_BINSTRING, P.BINSTRING, P.STRING, P.BYTEARRAY8)
WORK = _opcode_table(1, {(P.REDUCE, P.BUILD, P.NEWOBJ, P.NEWOBJ_EX, P.INST, P.OBJ, P.GLOBAL, P.STACK_GLOBAL):
                         CALL_WORK,
                         _STRINGS: 2})        # a decode and an allocation: twice a plain opcode's time
OBJECT_BYTES = _opcode_table(8, {
    (P.EMPTY_SET, P.FROZENSET): 224, (P.EMPTY_DICT, P.DICT): 72, (P.EMPTY_LIST, P.LIST, P.MARK): 64,
    (P.TUPLE1, P.TUPLE, P.TUPLE2): 64, (P.TUPLE3,): 72,
    (P.MEMOIZE, P.PUT, P.BINPUT, P.LONG_BINPUT): 100,
    _STRINGS: 64,
    (P.BININT, P.BININT2, P.LONG1, P.LONG4, P.INT, P.LONG, P.BINFLOAT, P.FLOAT): 40,
})
del P


class Metered(dict):
    """The unpickler's opcode table, charging each opcode to its unpickler as it is looked up
    (`pickle._Unpickler.load` looks up every opcode in `self.dispatch`)."""

    def __init__(self, table: dict, unpickler):
        super().__init__(table)
        self.unpickler = unpickler

    def __getitem__(self, code):
        u = self.unpickler
        u.work_left -= WORK[code]
        u.object_bytes_left -= OBJECT_BYTES[code]
        if u.work_left < 0 or u.object_bytes_left < 0:
            u.over_budget()
        return dict.__getitem__(self, code)
