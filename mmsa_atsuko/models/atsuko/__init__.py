"""Atsuko, split the way the paper is: spectral basis and partition (Eq. 1), band router (Eq. 2),
modality router (Eq. 3), Marginal Complementarity Module (Eq. 5-9), losses (Eq. 10-12), model;
the modality letters and export names are modalities.py's.
A bare §N in these files is a section of docs/atsuko.md, which walks through them."""
from .modalities import MODALITY_WEIGHT_COLUMNS
from .model import ATSUKO_FAMILY, Atsuko

__all__ = ["ATSUKO_FAMILY", "MODALITY_WEIGHT_COLUMNS", "Atsuko"]
