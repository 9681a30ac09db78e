"""Atsuko's modality letters and the names of what it exports per modality: one home for model.py,
mcm.py and diagnostics.py (docs/atsuko.md §0). No torch, so the diagnostics read it for free.

The letters come in the order L (text), V (vision), A (audio): every (B, 3) tensor of the routers and
of MCM has its columns in that order.
"""
MODALITIES = ("L", "V", "A")
BATCH_KEY = {"L": "text", "V": "vision", "A": "audio"}     # batch/spec keys (and the stress recipes') are these
# What a user reads (a message, a figure) names the modalities and orders them as MMSA's feature files do: text, audio,
# vision. The letters and their order stay inside the model.
READING_ORDER = ("L", "A", "V")
# The per-sample modality weights as they are exported: the columns of predictions_test.csv, and of every
# CSV of explain that holds them (one name per number, wherever it is written).
MODALITY_WEIGHT_COLUMNS = {m: f"modality_weight_{m}" for m in MODALITIES}
# The per-sample band weights (B, K), low..high, unmasked, as they are exported (with SBN only).
BAND_WEIGHT_EXPORTS = {m: f"band_weights_{m}" for m in MODALITIES}


def per_modality_text(values: dict) -> str:
    """Per-letter `values` as a user reads them: 'text 8, audio 12, vision 10'."""
    return ", ".join(f"{BATCH_KEY[m]} {values[m]}" for m in READING_ORDER)
