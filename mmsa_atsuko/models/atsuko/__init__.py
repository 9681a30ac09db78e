"""Atsuko, split the way the paper is: spectral basis and partition (Eq. 1), band router (Eq. 2),
modality router (Eq. 3), Marginal Complementarity Module (Eq. 5-9), losses (Eq. 10-12), model.
A bare §N in these files is a section of docs/atsuko.md, which walks through them."""
from .model import ATSUKO_FAMILY, MODALITY_WEIGHT_COLUMNS, Atsuko

__all__ = ["ATSUKO_FAMILY", "MODALITY_WEIGHT_COLUMNS", "Atsuko"]
