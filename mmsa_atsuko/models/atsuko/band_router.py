"""Band Router and Stochastic Band Masking (paper §3.1, Eq. 2; docs/atsuko.md §5).

For one modality with features X (B, T', d) and band components X_k = P_k X (B, K, T', d):

    s_k  = pool_t X_k                                   (B, d)     mean over time (paper) or rms
    z    = concat_k s_k                                 (B, K d)
    w^b  = softmax( MLP(z) / tau_b )                    (B, K)     Eq. 2; MLP = Linear(Kd, d), ReLU, Linear(d, K)
    w~   = mask(w^b)                                    (B, K)     training only, renormalised
    X'   = K sum_k w~_k X_k                             (B, T', d) band_combine = scaled_sum

Each modality has its own router (DECISION, §5: the band entropy is per modality and the
spectra differ). With uniform weights, scaled_sum gives X' = X, so SBN starts as the identity.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .spectral import PathGraphSpectrum

# The cases of pool_bands and combine_bands; configs/atsuko.yaml checks: refuses any other value before a build.
BAND_POOLS = ("mean", "rms")
BAND_COMBINES = ("scaled_sum", "sum", "residual")


def pool_bands(bands: torch.Tensor, how: str) -> torch.Tensor:
    """Time pooling of each band, (B, K, T', d) -> (B, K, d).

    `mean` is the paper's average pooling. Its pitfall (§5): for the path graph the
    time-mean of a mid/high band is almost 0, so those summaries carry little signal; `rms`
    (sqrt(mean_t X_k^2)) keeps their magnitude.
    """
    if how == "mean":
        return bands.mean(dim=2)
    if how == "rms":
        # the epsilon keeps the gradient of sqrt finite at an all-zero band
        return bands.pow(2).mean(dim=2).add(1e-12).sqrt()
    raise ValueError(f"unknown band_pool {how!r}")


def stochastic_band_mask(weights: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic Band Masking (paper §3.1; docs/atsuko.md §5): w~ = m * w^b / sum_k(m * w^b), the w~ of Eq. 2's
    X' = K sum_k w~_k X_k.

    m_k ~ Bernoulli(1 - rate) independently per sample and band, drawn from torch's global RNG
    (so a fixed seed fixes the masks). DECISION: renormalise so w~ stays a distribution and X'
    keeps its scale between training and evaluation; a sample whose bands are all masked keeps
    w~ = w^b. Outside training (or at rate 0) w~ = w^b with no random draw.
    """
    if not training or rate <= 0.0:
        return weights
    keep = (torch.rand(weights.shape, device=weights.device) >= rate).to(weights.dtype)
    kept = keep * weights
    mass = kept.sum(dim=-1, keepdim=True)
    all_masked = mass <= 0
    # Divide by a safe mass so the branch that `where` discards has no 0/0 (which would turn
    # the gradient into NaN). masked_fill selects as where(all_masked, 1, mass) does, in one op
    # instead of two, and its backward is one op instead of where's two.
    renormalised = kept / mass.masked_fill(all_masked, 1.0)
    return torch.where(all_masked, weights, renormalised)


def combine_bands(bands: torch.Tensor, x: torch.Tensor, weights: torch.Tensor, how: str) -> torch.Tensor:
    """Weighted band sum (Eq. 2 output): bands (B, K, T', d), weights (B, K) -> X' (B, T', d).

    scaled_sum: X' = K sum_k w_k X_k (DECISION default; identity at uniform w);
    sum:        X' = sum_k w_k X_k;
    residual:   X' = X + sum_k w_k X_k.
    """
    weighted = torch.einsum("bk,bktd->btd", weights, bands)
    if how == "scaled_sum":
        return bands.shape[1] * weighted
    if how == "sum":
        return weighted
    if how == "residual":
        return x + weighted
    raise ValueError(f"unknown band_combine {how!r}")


class SpectralBandRouter(nn.Module):
    """The whole spectral-band routing network of one modality (§2-§5).

    Holds the modality's graph spectrum and partition (`spectrum`, buffers) and its band
    router MLP (`router`). forward(X) returns a dict with
    `refined` X' (B, T', d), `bands` (B, K, T', d), `weights` w^b (B, K) unmasked,
    `weights_used` w~ (B, K) after masking.
    """

    def __init__(self, length: int, dim: int, num_bands: int, temperature: float = 1.0,
                 pool: str = "mean", combine: str = "scaled_sum", mask_rate: float = 0.1):
        super().__init__()
        self.spectrum = PathGraphSpectrum(length, num_bands)
        # Eq. 2's "lightweight" router: hidden width d, no normalisation (DECISION, §5).
        self.router = nn.Sequential(
            nn.Linear(num_bands * dim, dim), nn.ReLU(), nn.Linear(dim, num_bands),
        )
        self.temperature = temperature
        self.pool = pool
        self.combine = combine
        self.mask_rate = mask_rate

    def band_weights(self, bands: torch.Tensor) -> torch.Tensor:
        """Eq. 2: w^b = softmax(MLP(concat_k pool_t X_k) / tau_b), (B, K)."""
        summary = pool_bands(bands, self.pool).flatten(1)          # (B, K*d), band-major concat
        logits = self.router(summary)
        # x / 1.0 is x exactly, so at the default tau_b the division and its backward (two
        # launches a modality) are skipped without changing a bit.
        return F.softmax(logits if self.temperature == 1.0 else logits / self.temperature, dim=-1)

    def forward(self, x: torch.Tensor) -> dict:
        bands = self.spectrum.split(x)                             # X_k = P_k X (§4)
        weights = self.band_weights(bands)
        weights_used = stochastic_band_mask(weights, self.mask_rate, self.training)
        refined = combine_bands(bands, x, weights_used, self.combine)
        return {"refined": refined, "bands": bands, "weights": weights, "weights_used": weights_used}
