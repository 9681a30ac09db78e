"""`BoundedReader`: the file as the restricted unpickler reads it, never past its end, and hashed
beside the unpickler when the caller wants the file's digest."""
from __future__ import annotations

import pickle
from concurrent.futures import ThreadPoolExecutor


class BoundedReader:
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
