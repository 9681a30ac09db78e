"""`run.py predict --videos`: a folder of videos and a transcript CSV, extracted with a run's extractor settings.

The run's model.json records the settings its features were extracted with (`extractor.config`) and the
BERT (`extractor.bert`); `extract_with_provenance` checks them as a card from anywhere is checked (each
setting of the type ExtractConfig gives it, the padded lengths those of the card's `seq_lens`), extracts into
`<out>/features.pkl` (resumable, like `run.py extract`, with its cache and skipped list beside it), and says
what the features were made of for predictions.json (`on_features.predict_with_provenance`'s `videos`).
`extract_for` is the public form, the file's path alone.
"""
from __future__ import annotations

from pathlib import Path

from ..cache import sha256_of
from ..data.extract import ExtractConfig, extract, media, resolve_bert, skipped_report_path
from ..data.extract.pipeline import check_lengths
from ..errors import DataError, UsageError
from ..results import show
from ..training.model_card import MODEL_CARD, NOT_OURS
from .checkpoint import load_checkpoint
from .output import FEATURES, check_output


def extract_for(folder, videos, transcripts, out, *, bert=None, jobs: int = 1, max_clip_seconds: float | None = None,
                echo=print, loaded=None) -> Path:
    """`<out>/features.pkl`, `videos` extracted with the run's settings (`extract_with_provenance`)."""
    check_output(out)
    return extract_with_provenance(folder, videos, transcripts, out, loaded=loaded or load_checkpoint(folder),
                                   bert=bert, jobs=jobs, max_clip_seconds=max_clip_seconds, echo=echo)[0]


def extract_with_provenance(folder, videos, transcripts, out, *, loaded, bert=None, jobs: int = 1,
                            max_clip_seconds: float | None = None, echo=print) -> tuple[Path, dict]:
    """Extract `videos` into `<out>/features.pkl` with the extractor settings of the run in `folder`: the
    file's path, and what it was made of for predictions.json. `loaded`: `checkpoint.load_checkpoint(folder)`'s
    result, and `out` checked by `output.check_output`: the caller does both before minutes of extraction.
    `max_clip_seconds`: extract's limit on a clip, None for its default."""
    card, _ = loaded
    trained = card.get("extractor")
    if not trained or not trained.get("config"):
        raise UsageError(f"the run in {folder} was trained on features that run.py extract did not write "
                         f"({card.get('data')}): its features cannot be made from videos here; pass --features")
    settings = trained["config"]
    kinds = {"str": (str,), "int": (int,), "float": (int, float)}
    for key, field in ExtractConfig.__dataclass_fields__.items():
        value = settings.get(key)
        if not isinstance(value, kinds[field.type]) or isinstance(value, bool):
            raise DataError(f"{Path(folder) / MODEL_CARD}: extractor.config.{key} must be a {field.type}, "
                            f"got {show(value)}: {NOT_OURS}")
    lengths = {m: settings[f"{m}_len"] for m in ("text", "audio", "vision")}
    if lengths != card["seq_lens"]:          # the padded lengths of the features the model was trained on
        raise DataError(f"{Path(folder) / MODEL_CARD}: the extractor's lengths {lengths} are not the card's "
                        f"seq_lens {card['seq_lens']}: {NOT_OURS}")
    config = ExtractConfig(**{k: settings[k] for k in ExtractConfig.__dataclass_fields__})
    limit = media.MAX_CLIP_SECONDS if max_clip_seconds is None else max_clip_seconds
    try:        # before the BERT is resolved: the lengths come from a card that may be anyone's
        check_lengths(config, limit)
    except UsageError as e:
        raise UsageError(f"the run's extractor settings ({Path(folder) / MODEL_CARD}): {e}") from None
    if not bert and trained.get("bert"):
        bert = trained["bert"]
        try:        # a file extracted before extract recorded a folder as an absolute path names it as typed
            resolve_bert(bert)
        except UsageError as e:
            raise UsageError(f"the run's features were extracted with --bert {bert}, which cannot be used from "
                             f"here: {e}") from None
    result = extract(videos, transcripts, Path(out) / FEATURES, bert=bert,
                     config=config, jobs=jobs, echo=echo,
                     max_clip_seconds=limit)
    made_of = {"videos": str(Path(videos).resolve()), "transcripts": str(Path(transcripts).resolve()),
               "transcripts_sha256": sha256_of(transcripts, remember_it=False), "skipped": len(result.skipped),
               "skipped_list": str(skipped_report_path(result.path).resolve()) if result.skipped else None}
    return result.path, made_of
