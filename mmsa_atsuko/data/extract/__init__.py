"""Raw videos + transcripts -> an MMSA-format feature pickle (issue 19); see `pipeline`.

`media` decodes one video within limits (`mpeg4_vol` reads the frame size an MPEG-4 part 2 header declares),
`frame_features` describes its audio and frames, `text` encodes the transcripts with BERT, `transcripts`
reads the CSV and splits it, `videos` runs
`frame_features` in processes with a per-video cache, `report` writes and prints what was skipped, and
`pipeline` runs them over a folder and writes the file. The libraries they need are the `[extract]` extra,
imported only when used.
"""
from .pipeline import (EXTRACTOR_KEY, EXTRACTOR_NAME, EXTRACTOR_VERSION, NO_FACE_KEY, ExtractConfig, ExtractResult,
                       extract, resolve_bert, skipped_report_path)
from .transcripts import DEFAULT_SPLIT

__all__ = ["extract", "ExtractConfig", "ExtractResult", "EXTRACTOR_KEY", "EXTRACTOR_NAME", "EXTRACTOR_VERSION",
           "NO_FACE_KEY", "DEFAULT_SPLIT", "resolve_bert", "skipped_report_path"]
