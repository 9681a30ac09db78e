"""Load a torch checkpoint (best.pt, last.pt) so that no small file can hang or exhaust the process.

`torch.load(weights_only=True)` runs no code from the file, but its unpickler hashes whatever
the file makes a dict key and writes whatever it refuses into its message: a 1.3 KB data.pkl
whose key, or whose refused callable, is a memo-shared tuple walks 2**30 paths or builds a
string of 2**40 characters (bench/bench_hostile.py: still running when killed after 10 s). It
also inflates deflated records, which torch itself never writes: a 1 MB file became 1 GB.
So `load_weights` reads the file once, checks those bytes, and hands torch the same bytes (a check of
the path followed by torch.load(path) would read whatever was renamed over it in between):

- a zip whose records are stored (not compressed), each name once, together no larger than
  the file;
- its data.pkl, as torch's own reader returns it, through `safe_pickle`'s restricted unpickler
  and its limits, with the few globals a state dict needs (torch's tensor rebuild, its storage
  types, OrderedDict) as stand-ins that check their arguments' types and build nothing. Its
  budgets are the feature files' plus one tensor's worth per storage record of the zip.

Anything refused, and anything torch then raises, is one DataError line.
"""
from __future__ import annotations

import collections
import io
import pickle
import sys
import warnings
import zipfile
from pathlib import Path

import torch

from .atomic import read_small_file
from .errors import DataError
from . import safe_pickle
from .safe_pickle import BoundedReader, Refused, RestrictedUnpickler, describe_error, sized

FIX = "it is not a checkpoint this toolkit wrote; train the run again"
# The largest checkpoint read. The read is sized by the file, so this allocates nothing: it is above a
# BERT-large run's last.pt (weights, AdamW's two moments and a best copy: about 5.4 GB).
MAX_CHECKPOINT_BYTES = 64 << 30
# What one tensor of a real last.pt costs the restricted unpickler: 39 units of work and 1.5 KB of
# memo and containers (bench/checkpoint_budget.py: 20,003 storages, 777,060 units and 29.3 MB),
# with headroom. A zip record takes at least 92 bytes of headers, so a hostile file of records
# buys at most about 0.7 units per byte (bench/README.md: 1.8 s for the worst 10 MB best.pt).
WORK_PER_STORAGE = 64
OBJECT_BYTES_PER_STORAGE = 2048
# torch.save names a tensor's storage by its type: torch.FloatStorage, torch.LongStorage, ...
STORAGE_TYPES = frozenset(f"{kind}Storage" for kind in (
    "Double", "Float", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool",
    "ComplexDouble", "ComplexFloat", "Untyped"))


class _StorageType:
    """What a file's `torch.<Kind>Storage` global becomes: a name to check, never called."""


class _Storage:
    """What a storage reference (BINPERSID) becomes."""


class _Tensor:
    """What `torch._utils._rebuild_tensor_v2(...)` becomes."""


_STORAGE_TYPE = _StorageType()


class _CheckpointUnpickler(RestrictedUnpickler):
    # An optimizer's state is keyed by parameter index: thousands of int keys. An int below the
    # hash modulus hashes to itself, so distinct ones never collide; other keys keep the limit.
    HASH_MODULUS = sys.hash_info.modulus

    def __init__(self, data: bytes, storages: int):
        super().__init__(BoundedReader(io.BytesIO(data), len(data)), len(data))
        # Beside the feature files' budgets (by data.pkl's size), each storage record of the zip
        # buys what one tensor's rebuild takes: a data.pkl is dense with small calls and memo entries.
        self.work_limit += WORK_PER_STORAGE * storages
        self.work_left += WORK_PER_STORAGE * storages
        self.object_bytes_limit += OBJECT_BYTES_PER_STORAGE * storages
        self.object_bytes_left += OBJECT_BYTES_PER_STORAGE * storages
        self._rebuild_call = self._rebuild          # one bound method, the object `_checks` knows
        self._checks[id(self._rebuild_call)] = (self._rebuild_call, self._check_rebuild)

    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return self._rebuild_call
        if module == "torch" and name in STORAGE_TYPES:
            return _STORAGE_TYPE
        return super().find_class(module, name)

    def persistent_load(self, pid):
        # torch writes ('storage', storage type, record name, location, element count)
        if not (type(pid) is tuple and len(pid) == 5 and type(pid[0]) is str and pid[0] == "storage"
                and pid[1] is _STORAGE_TYPE and type(pid[2]) is str and type(pid[3]) is str
                and type(pid[4]) is int):
            raise Refused(f"a persistent id other than a storage's ({sized(pid)})")
        return _Storage()

    def _check_key(self, key):
        if type(key) is int and -self.HASH_MODULUS < key < self.HASH_MODULUS:
            return
        super()._check_key(key)

    @staticmethod
    def _rebuild(*args):
        return _Tensor()

    def _check_rebuild(self, func, storage, offset, size, stride, requires_grad, hooks, metadata=None, /):
        shapes = all(type(x) is tuple and len(x) <= 64 and all(type(d) is int for d in x) for x in (size, stride))
        if not (type(storage) is _Storage and type(offset) is int and shapes and type(requires_grad) is bool
                and type(hooks) is collections.OrderedDict and type(metadata) in (dict, type(None))):
            raise Refused("a tensor rebuilt from other than a storage, an offset, a shape, strides and flags")

    def _load_build(self):
        # A module's state dict is an OrderedDict whose state is {'_metadata': OrderedDict of
        # {'version': n} per module}: plain values, already built within the limits; nothing to set.
        if type(self.stack[-2]) is collections.OrderedDict and type(self.stack[-1]) is dict:
            self.stack.pop()
            return
        super()._load_build()

    dispatch = dict(RestrictedUnpickler.dispatch)
    dispatch[pickle.BUILD[0]] = _load_build


def read_checkpoint(path, fix: str = FIX) -> bytes:
    """The file's bytes, read once from one open file (a link followed, a pipe or device refused); what
    `check_bytes` and torch.load are then given, so that both see the same file."""
    try:
        return read_small_file(path, MAX_CHECKPOINT_BYTES, follow_links=True)
    except (OSError, ValueError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise DataError(f"cannot read {path} ({reason}): {fix}") from None


def _data_pkl(blob: bytes, where, fix: str = FIX) -> tuple[bytes, int]:
    """The checkpoint's data.pkl, once the zip around it has passed the checks of the docstring,
    and how many storage records (`<archive>/data/<key>`) the zip holds."""
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            records = archive.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError, OSError) as e:
        raise DataError(f"{where} is not a zip archive as torch.save writes ({type(e).__name__}): {fix}") from None
    names = [r.filename for r in records]
    if len(set(names)) != len(names):
        raise DataError(f"{where} names a record twice: {fix}")
    if any(r.compress_type != zipfile.ZIP_STORED for r in records):
        raise DataError(f"{where} holds compressed records, which torch.save never writes: {fix}")
    if sum(r.file_size for r in records) > len(blob):
        raise DataError(f"{where}'s records declare more bytes than the file holds: {fix}")
    try:
        data = torch._C.PyTorchFileReader(io.BytesIO(blob)).get_record("data.pkl")   # what torch.load unpickles
    except RuntimeError as e:
        raise DataError(f"{where} has no data.pkl torch can read ({describe_error(e)[:160]}): {fix}") from None
    return data, sum(name.split("/")[1:2] == ["data"] for name in names)


def check_bytes(blob: bytes, where, fix: str = FIX) -> None:
    """Raise DataError (one line, naming `where`, ending in `fix`) unless `blob`, a checkpoint file's
    bytes, passes the checks of the module docstring."""
    data, storages = _data_pkl(blob, where, fix)
    unpickler = _CheckpointUnpickler(data, storages)
    try:
        safe_pickle.run(unpickler, f"{where} (its data.pkl)", fix=fix)
    finally:
        unpickler.__dict__.pop("_rebuild_call", None)


def load_weights(path, fix: str = FIX):
    """`torch.load(path, map_location="cpu", weights_only=True)` of the bytes `check_bytes` passed, read
    once (`read_checkpoint`); what torch raises then is a one-line DataError too, ending in `fix`."""
    blob = read_checkpoint(path, fix)
    check_bytes(blob, Path(path), fix)
    try:
        with warnings.catch_warnings():          # torch warns about a file's pickle protocol
            warnings.simplefilter("ignore")
            return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as e:
        raise DataError(f"torch cannot load {path} ({describe_error(e)[:160]}): {fix}") from None
