"""Reimplemented baselines, one model per file; importing the package registers every one of them.

A module that fails to import (e.g. a broken optional dependency) is remembered by the registry
and listed by `run.py list`; the other baselines still load.
"""
from ...registry import import_submodules

import_submodules(__name__, __path__)
