"""Constructor checks that several baselines share: what the dataset must hold, which options a config may take.

Each lives here once, so that every model refuses the same problem in the same words (`model_name` says which).
"""
from __future__ import annotations

from ...errors import UsageError

TEMPORAL_MEAN_MODES = ("padded", "valid")


def require_text_features(spec, model_name: str) -> None:
    """Models that read the file's pre-extracted `text` features (TFN, LMF, late fusion), not BERT token ids."""
    if not spec.has_text_features:
        raise UsageError(f"{model_name} reads pre-extracted `text` features, which {spec.path} lacks")


def require_bert_token_ids(spec, model_name: str) -> None:
    """Models that fine-tune BERT on the file's `text_bert` token ids (MISA, Self-MM)."""
    if not spec.has_text_bert:
        raise UsageError(f"{model_name} fine-tunes BERT and needs 'text_bert' token ids, which {spec.path} lacks")


def require_temporal_mean_mode(config) -> None:
    """`temporal_mean` (TFN, LMF): `padded` (MMSA) or `valid`, as `tfn.temporal_mean` takes it."""
    if config.temporal_mean not in TEMPORAL_MEAN_MODES:
        raise UsageError(f"temporal_mean must be padded or valid, got {config.temporal_mean!r}")
