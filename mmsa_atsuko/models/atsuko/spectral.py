"""Temporal path-graph spectrum, band partition and band projectors (paper §3.1, Eq. 1; docs/atsuko.md §2-§4).

For a modality with T' time steps (after the projection conv) the time steps form a path graph
with edges (t, t+1). Its normalized Laplacian (Eq. 1)

    L = I - D^{-1/2} A D^{-1/2} = U diag(lambda) U^T

has ascending eigenvalues lambda_k = 1 - cos(pi k / (T'-1)), so the columns of U run from low to
high temporal frequency. The frequency axis is cut into K contiguous bands [b_k, b_{k+1});
band k of a signal X (T', d) is X_k = P_k X with the projector P_k = U_k U_k^T, U_k = U[:, b_k:b_{k+1}].
The projectors are orthogonal and sum to I, so sum_k X_k = X exactly ("zero information loss").

Everything that depends only on T' is built once per length (cached) in float64, then stored as
float32 buffers; no eigendecomposition happens in a training step.
"""
from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from ..common.meta import building_on_meta


def path_graph_laplacian(length: int) -> torch.Tensor:
    """Eq. 1: the normalized Laplacian I - D^{-1/2} A D^{-1/2} of the path graph, float64 (T', T')."""
    adjacency = torch.zeros(length, length, dtype=torch.float64)
    steps = torch.arange(length - 1)
    adjacency[steps, steps + 1] = 1.0
    adjacency[steps + 1, steps] = 1.0
    degree = adjacency.sum(1)
    inv_sqrt = torch.where(degree > 0, degree.rsqrt(), torch.zeros_like(degree))   # T'=1: degree 0
    return torch.eye(length, dtype=torch.float64) - inv_sqrt[:, None] * adjacency * inv_sqrt[None, :]


@lru_cache(maxsize=None)
def _path_graph_eigh(length: int) -> tuple[torch.Tensor, torch.Tensor]:
    if length == 1:   # a single node has degree 0: take U = [[1]], lambda = [0] (§2)
        return torch.zeros(1, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64)
    eigvals, basis = torch.linalg.eigh(path_graph_laplacian(length))   # ascending eigenvalues
    # Fix each column's sign so that U[0, k] > 0 (never 0 for the path graph: U[0,k] ∝ cos 0).
    basis = basis * torch.sign(basis[0]).unsqueeze(0)
    return eigvals, basis


def path_graph_basis(length: int, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 1 decomposition: (eigenvalues (T',), eigenvectors U (T', T') as columns), sign-fixed.

    Computed once per length in float64 with `eigh`, then cast to `dtype` (fresh tensors).
    """
    eigvals, basis = _path_graph_eigh(int(length))
    return eigvals.to(dtype).clone(), basis.to(dtype).clone()


def equidistant_bounds(length: int, num_bands: int) -> torch.Tensor:
    """Bands of (almost) equal width in frequency index: b_k = floor(k T' / K). Needs T' >= K."""
    return torch.tensor([k * length // num_bands for k in range(num_bands + 1)], dtype=torch.int64)


def equal_energy_bounds(energy: torch.Tensor, num_bands: int) -> torch.Tensor:
    """Equal-Energy Partitioning (§3): boundaries 0 = b_0 < ... < b_K = T' from a spectrum.

    With the cumulative energy fraction c[b] = sum_{j<b} e[j] / sum_j e[j], each inner boundary is
    b_k = argmin_{b in [b_{k-1}+1, T'-(K-k)]} |c[b] - k/K|, ties to the smaller b. The range keeps
    every band non-empty and contiguous (DECISION: nearest crossing, deterministic).
    """
    energy = energy.detach().to(torch.float64).cpu()
    length = energy.shape[0]
    if length < num_bands:
        raise ValueError(f"cannot cut {length} frequencies into {num_bands} non-empty bands")
    total = energy.sum()
    cumulative = torch.cat([torch.zeros(1, dtype=torch.float64), energy.cumsum(0)])
    cumulative = cumulative / total if total > 0 else torch.linspace(0, 1, length + 1, dtype=torch.float64)
    bounds = [0]
    for k in range(1, num_bands):
        candidates = torch.arange(bounds[-1] + 1, length - (num_bands - k) + 1)
        distance = (cumulative[candidates] - k / num_bands).abs()
        bounds.append(int(candidates[torch.argmin(distance)]))   # argmin returns the first minimum
    bounds.append(length)
    return torch.tensor(bounds, dtype=torch.int64)


def band_projectors(basis: torch.Tensor, bounds: torch.Tensor) -> torch.Tensor:
    """P_k = U_k U_k^T for each band (§4), stacked (K, T', T'); computed in float64."""
    basis64 = basis.to(torch.float64)
    cuts = bounds.tolist()
    projectors = [basis64[:, lo:hi] @ basis64[:, lo:hi].T for lo, hi in zip(cuts[:-1], cuts[1:])]
    return torch.stack(projectors).to(basis.dtype)


class PathGraphSpectrum(nn.Module):
    """One modality's graph spectrum and band partition, all as buffers (§2-§4).

    Persistent buffers (they land in the checkpoint): `basis` U (T', T'), `eigvals` (T'),
    `band_bounds` (K+1) int64, `energy_mean` (T') float32 (train-set spectrum, for the plots),
    `calibrated` (bool), `calibration_samples` (int64, N_train used). The projectors (K, T', T')
    are derived from U and the bounds, so they are a non-persistent buffer rebuilt on load.
    """

    def __init__(self, length: int, num_bands: int):
        super().__init__()
        if length < num_bands:
            raise ValueError(f"sequence length {length} is shorter than the {num_bands} bands")
        self.length = length
        self.num_bands = num_bands
        meta = building_on_meta()      # shapes only (models/common/meta.py): nothing computed, nothing cached
        eigvals, basis = (torch.empty(length), torch.empty(length, length)) if meta else path_graph_basis(length)
        self.register_buffer("basis", basis)
        self.register_buffer("eigvals", eigvals)
        self.register_buffer("band_bounds", equidistant_bounds(length, num_bands))   # until calibrated
        self.register_buffer("energy_mean", torch.zeros(length))
        self.register_buffer("calibrated", torch.tensor(False))
        self.register_buffer("calibration_samples", torch.tensor(0, dtype=torch.int64))
        projectors = (torch.empty(num_bands, length, length, dtype=basis.dtype) if meta
                      else band_projectors(basis, self.band_bounds))
        self.register_buffer("projectors", projectors, persistent=False)
        self.register_load_state_dict_post_hook(lambda module, _keys: module._rebuild_projectors())

    def _rebuild_projectors(self) -> None:
        self.projectors = band_projectors(self.basis, self.band_bounds).to(self.basis.device)

    def set_bounds(self, bounds: torch.Tensor) -> None:
        self.band_bounds.copy_(bounds.to(self.band_bounds.device))
        self._rebuild_projectors()

    def calibrate(self, energy_sum: torch.Tensor, num_samples: int, equal_energy: bool) -> None:
        """Store the train-set mean spectrum e[j] = (1/N) sum_n sum_c X_hat^2 and, for Equal-Energy
        Partitioning, the boundaries cut from it (§3). `energy_sum` is accumulated in float64."""
        if num_samples <= 0:
            raise ValueError("calibration saw no samples")
        mean = energy_sum.to(torch.float64) / num_samples
        self.energy_mean.copy_(mean.to(self.energy_mean.dtype))
        if equal_energy:
            self.set_bounds(equal_energy_bounds(mean, self.num_bands))
        self.calibration_samples.fill_(num_samples)
        self.calibrated.fill_(True)

    def spectrum(self, x: torch.Tensor) -> torch.Tensor:
        """Graph Fourier coefficients X_hat = U^T X: (B, T', d) -> (B, T', d), row j = frequency j."""
        return torch.einsum("tj,btd->bjd", self.basis, x)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """Per-sample spectral energy sum_c X_hat[j, c]^2: (B, T', d) -> (B, T')."""
        return self.spectrum(x).pow(2).sum(-1)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """Band components X_k = P_k X for all bands at once: (B, T', d) -> (B, K, T', d)."""
        return torch.einsum("kts,bsd->bktd", self.projectors, x)

    def extra_repr(self) -> str:
        return f"length={self.length}, num_bands={self.num_bands}"
