"""Keep freed host memory for reuse instead of handing it back to the kernel at every free.

glibc serves every allocation above its mmap threshold (128 KB, raised dynamically to at most
32 MB) with a fresh `mmap` and returns it with `munmap` when freed. A CPU training step
allocates and frees the same large activations every step (TFN's fusion vector is 32 x 140,481
floats, 18 MB), so every step pays the page faults of touching brand-new memory again. Raising
the mmap and trim thresholds keeps those blocks in the heap, where the next step reuses them:
the page-fault cost is what jemalloc and tcmalloc, which PyTorch's CPU tuning guide recommends,
also avoid. Numbers are unchanged; measured effect in bench/README.md ("Host allocator").

Set MMSA_ATSUKO_KEEP_FREED_MEMORY=0 to leave glibc's defaults alone (peak RSS is the same either
way; what changes is that freed memory is kept by the process until it exits).
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
# Blocks up to 32 MB (glibc's own ceiling for its dynamic threshold) come from the heap; larger
# ones (a dataset's arrays, MulT's 160 MB attention maps) keep their own mmap and are returned at
# once. A 256 MB threshold made MulT's steps 0.87x but its peak RSS 1.3 GB higher (fragmentation);
# at 32 MB MulT's peak RSS is unchanged and TFN keeps the whole gain.
MMAP_THRESHOLD = 32 * 2**20
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
                _applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied
