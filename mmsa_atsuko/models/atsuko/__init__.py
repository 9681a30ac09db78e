"""Atsuko, split the way the paper is: spectral basis and partition (Eq. 1), band router (Eq. 2),
modality router (Eq. 3), Marginal Complementarity Module (Eq. 5-9), losses (Eq. 10-12), model;
the modality letters and export names are modalities.py's, the names of Atsuko's runs family.py's.
A bare §N in these files is a section of docs/atsuko.md, which walks through them.

No torch at import: `Atsuko` is model.py's, imported on first use (the registry imports model.py itself), so
the leaderboard and the commands that only check a model's name read `ATSUKO_FAMILY` without torch."""
from .family import ATSUKO_FAMILY
from .modalities import MODALITY_WEIGHT_COLUMNS

__all__ = ["ATSUKO_FAMILY", "MODALITY_WEIGHT_COLUMNS", "Atsuko"]


def __getattr__(name: str):
    if name == "Atsuko":
        from .model import Atsuko
        return Atsuko
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
