"""What a file may still spend: bytes, elements, opcodes, and the objects opcodes make.

`_Budgets` is the part of `RestrictedUnpickler` that keeps the accounts. Each budget starts
from `limits`, in proportion to the file's size; the checks of `calls` charge what each call
and array state allocates (`_charge`), `opcode_costs.Metered` charges each opcode as it is
looked up and calls `over_budget` when one runs out, and every dict key or set element is
checked before it is hashed (`_check_key`).
"""
from __future__ import annotations

from ..opcode_costs import ITEM_BYTES
from . import limits
from .refusals import LIMIT_HINT, Refused
from .tree import _tree_size


class _Budgets:
    """The part of `RestrictedUnpickler` that keeps a file's accounts."""

    # A subclass for denser files (checkpoints) gives its own rates.
    bytes_per_work = limits.BYTES_PER_WORK
    object_bytes_per_file_byte = limits.OBJECT_BYTES_PER_FILE_BYTE

    def _start_budgets(self, size: int):
        """Budgets for a file of `size` bytes, which every limit and message is in proportion to."""
        self._size = size
        self._bytes_limit = limits.BYTES_PER_FILE_BYTE * size + limits.BYTES_ALLOWANCE
        self._bytes_left = self._bytes_limit
        self.elements_limit = limits.ELEMENTS_PER_FILE_BYTE * size + limits.ELEMENTS_ALLOWANCE
        self._elements_left = self.elements_limit
        self._other_keys = 0
        self.work_limit = limits.WORK_ALLOWANCE + size // self.bytes_per_work
        self.work_left = self.work_limit
        self.object_bytes_limit = limits.OBJECT_BYTES_ALLOWANCE + self.object_bytes_per_file_byte * size
        self.object_bytes_left = self.object_bytes_limit

    def _charge(self, nbytes: int, what: str):
        self._bytes_left -= nbytes
        if self._bytes_left < 0:
            raise Refused(f"{what} ({nbytes} bytes, past the {self._bytes_limit} that a {self._size}-byte "
                          f"file may build)", LIMIT_HINT)

    def over_budget(self):
        if self.work_left < 0:
            raise Refused(f"more than {self.work_limit} opcodes (the most a {self._size}-byte file may run)",
                          LIMIT_HINT)
        raise Refused(f"opcodes that build more than {self.object_bytes_limit} bytes of containers, memo "
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
        if self._other_keys > limits.MAX_OTHER_KEYS:
            raise Refused(f"more than {limits.MAX_OTHER_KEYS} dict keys or set elements other than strings",
                          LIMIT_HINT)
        if t is tuple or t is frozenset:
            self._elements_left -= _tree_size(key, self._elements_left, f"a dict key or set element ({t.__name__})")
