"""Counting what a loaded object holds as a tree, as whatever walks it later would.

A hash, an equality test, a repr or np.asarray visits an object once per path that reaches it,
which for tuples made of memo references to one another doubles with every level (700 bytes
hang a hash for minutes). The unpickler counts dict keys and set elements this way before they are hashed
(`_Budgets._check_key`), and `run` counts the whole result once it is loaded: at most the
file's element limit, nested at most MAX_DEPTH deep, and no container inside itself.
"""
from __future__ import annotations

import collections
import itertools

import numpy as np

from . import limits
from .refusals import LIMIT_HINT, Refused

_LEAVES = frozenset({str, bytes, bytearray, int, float, complex, bool, type(None)})


def _children(obj):
    """An iterator over the objects `obj` holds, or None when it holds none."""
    t = type(obj)
    if t is list or t is tuple or t is set or t is frozenset:
        return iter(obj)
    if t is dict or t is collections.OrderedDict:
        return itertools.chain.from_iterable(obj.items())
    if t is np.ndarray and obj.dtype.hasobject:
        return obj.flat
    return None


def _tree_size(root, limit: int, what: str) -> int:
    """How many objects `root` holds counted as a tree: one reached by k paths counts k times,
    as a hash, an equality test, a repr or np.asarray would visit it. Refused past `limit`,
    with containers nested deeper than MAX_DEPTH, or with one that holds itself. Linear in
    the distinct objects: a shared container's count is worked out once."""
    children = _children(root)
    if children is None:
        return 1
    counted = {}                      # id -> tree size of a finished container (all alive in root)
    on_path = {id(root)}
    stack = [[root, children, 1]]     # container, its iterator, its count so far
    while True:
        frame = stack[-1]
        for child in frame[1]:
            grandchildren = None if type(child) in _LEAVES else _children(child)
            if grandchildren is None:
                frame[2] += 1
                continue
            size = counted.get(id(child))
            if size is not None:
                frame[2] += size
                if frame[2] > limit:
                    raise Refused(f"{what} that holds more than {limit} objects counted as a tree "
                                  f"(memo references repeated inside each other)", LIMIT_HINT)
                continue
            if id(child) in on_path:
                raise Refused(f"{what} with a container that holds itself", LIMIT_HINT)
            if len(stack) >= limits.MAX_DEPTH:
                raise Refused(f"{what} with containers nested more than {limits.MAX_DEPTH} deep", LIMIT_HINT)
            on_path.add(id(child))
            stack.append([child, grandchildren, 1])
            break
        else:
            stack.pop()
            on_path.discard(id(frame[0]))
            counted[id(frame[0])] = frame[2]
            if frame[2] > limit:
                raise Refused(f"{what} that holds more than {limit} objects counted as a tree", LIMIT_HINT)
            if not stack:
                return frame[2]
            stack[-1][2] += frame[2]
