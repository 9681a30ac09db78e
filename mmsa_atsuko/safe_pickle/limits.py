"""The limits on what a file may make the unpickler build and run, in proportion to its size.

A file must not exhaust time or memory, and a pickle is small beside what it can build:
`bytearray(10**9)` takes a dozen bytes, a memo reference repeats an object for two, and
hashing a tuple visits every path through it, which for tuples made of memo references to one
another doubles with every level (700 bytes hang for minutes). So every call a file makes is
checked against what that callable is for (`calls`), and charged (`budgets`):

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

The other modules read these as `limits.NAME` when they run, never a copy made at import, so
that setting one here (as a test does) changes what every unpickler made afterwards allows.
"""
from __future__ import annotations

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
