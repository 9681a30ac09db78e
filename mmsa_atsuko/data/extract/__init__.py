"""Raw videos + transcripts -> an MMSA-format feature pickle (issue 19); see `pipeline`.

`media` extracts one video's audio and vision features, `text` encodes the transcripts with
BERT, `pipeline` runs them over a folder (processes, per-video cache, skipped report) and
writes the file. The libraries they need are the `[extract]` extra, imported only when used.
"""
from .pipeline import (DEFAULT_SPLIT, EXTRACTOR_KEY, EXTRACTOR_NAME, EXTRACTOR_VERSION, NO_FACE_KEY,
                       ExtractConfig, ExtractResult, extract, skipped_report_path)

__all__ = ["extract", "ExtractConfig", "ExtractResult", "EXTRACTOR_KEY", "EXTRACTOR_NAME", "EXTRACTOR_VERSION",
           "NO_FACE_KEY", "DEFAULT_SPLIT", "skipped_report_path"]
