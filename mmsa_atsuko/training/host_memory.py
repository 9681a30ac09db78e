"""Keep freed host memory for reuse instead of handing it back to the kernel at every free.

By default glibc serves allocations above 128 KB with a fresh `mmap` (raising that threshold
only after a block of a size has been freed once) and trims the top of its heap once more than
twice that threshold is free. A CPU training step allocates and frees the same large
activations every step (TFN's fusion vector is 32 x 140,481 floats, 18 MB), so each step pays
the page faults of touching brand-new memory again. Fixing the mmap threshold at 128 MB and the
trim threshold at 256 MB keeps those blocks in the heap, where the next step reuses them: the
page-fault cost that jemalloc and tcmalloc, which PyTorch's CPU tuning guide recommends, also
avoid. Numbers are unchanged; measured effect in bench/README.md ("Host allocator").

Set MMSA_ATSUKO_KEEP_FREED_MEMORY=0 to leave glibc's defaults alone. Peak RSS measured the
same for TFN and 0.6 GB higher for a MulT step; up to 256 MB of freed memory stays with the
process.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger("mmsa_atsuko")

ENV = "MMSA_ATSUKO_KEEP_FREED_MEMORY"
# mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Blocks up to 128 MB come from the heap, MulT's 118 MB cross-modal attention maps among them;
# larger ones (a dataset's arrays) keep their own mmap and are returned at once. Against 32 MB
# (glibc's own ceiling for its dynamic threshold), a full-size MulT CPU step takes 0.72-0.79x the
# time for 0.6 GB more peak RSS (fragmentation). 256 MB / 1 GB was a little faster over whole
# epochs but peaked above MMSA's own RSS. TFN and LMF are the same at either value
# (bench/README.md, "Host allocator").
MMAP_THRESHOLD = 128 * 2**20
TRIM_THRESHOLD = 256 * 2**20      # free memory kept at the top of the heap before trimming

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process. True where it took effect;
    False on a libc without `mallopt` (musl, macOS) or when switched off by the env var."""
    global _applied
    if _applied is None:
        _applied = False
        if os.environ.get(ENV, "1") != "0":
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                mallopt = libc.mallopt
            except (OSError, AttributeError):
                log.debug("no mallopt in this libc; host allocator left as it is")
            else:
                _applied = (bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
                            and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)))
    return _applied
