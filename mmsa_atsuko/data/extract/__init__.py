"""Raw videos + transcripts -> an MMSA-format feature pickle (issue 19); see `pipeline`.

`media` decodes one video within limits (`mpeg4_vol` reads the frame size an MPEG-4 part 2 header declares),
`frame_features` describes its audio and frames, `text` encodes the transcripts with BERT, `transcripts` reads the CSV
and splits it, `videos` runs `frame_features` in processes (`clip_workers`; `worker_start`: a worker that could not
start), `clip_features` takes each clip from the cache (`feature_cache`) or from `videos`, `report` writes and prints
what was skipped, and `pipeline` runs them over a folder and writes the file. The libraries they need are the
`[extract]` extra, imported only when used.

Importing the package costs nothing: its names are imported on first use (PEP 562), so that the parsers of
`run.py extract` and `predict` (`DEFAULT_SPLIT`, `media.MAX_CLIP_SECONDS`) do not import pandas for a --help, and
a worker process (`clip_workers`), which imports that module and with it this package afresh (forkserver), does not
import torch through `pipeline`.
"""
from __future__ import annotations

import importlib

_HOMES = {"EXTRACTOR_KEY": "pipeline", "EXTRACTOR_NAME": "pipeline", "EXTRACTOR_VERSION": "pipeline",
          "NO_FACE_KEY": "pipeline", "ExtractConfig": "pipeline", "ExtractResult": "pipeline", "extract": "pipeline",
          "resolve_bert": "pipeline", "skipped_report_path": "pipeline", "DEFAULT_SPLIT": "transcripts"}
__all__ = list(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
