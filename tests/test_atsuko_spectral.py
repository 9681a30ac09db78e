"""Atsuko's spectral pieces, band router and shared blocks (docs/atsuko.md §17 items 1-4, 6-8, 9 in part).

Pure-tensor tests: no model, no data loader.
"""
import math

import pytest
import torch

from mmsa_atsuko.models.atsuko.band_router import (SpectralBandRouter, combine_bands, pool_bands,
                                                   stochastic_band_mask)
from mmsa_atsuko.models.atsuko.losses import per_sample_loss, routing_entropy
from mmsa_atsuko.models.atsuko.mcm import (complementarity_importance, complementarity_loss,
                                           complementarity_target, distillation_loss, distillation_teacher)
from mmsa_atsuko.models.atsuko.modality_router import ModalityRouter, PreAttentionInput
from mmsa_atsuko.models.atsuko.spectral import (PathGraphSpectrum, band_projectors, equal_energy_bounds,
                                                equidistant_bounds, path_graph_basis, path_graph_laplacian)
from mmsa_atsuko.errors import UsageError
from mmsa_atsuko.models.common.heads import ResidualHead
from mmsa_atsuko.models.common.transformer import TransformerEncoder, future_mask, sinusoidal_position_table




LENGTHS = (2, 3, 5, 46, 50)


# --- §17.1 basis -------------------------------------------------------------------------------
@pytest.mark.parametrize("length", LENGTHS)
def test_basis_is_the_eigenbasis_of_eq1(length):
    eigvals, basis = path_graph_basis(length)
    assert basis.dtype == torch.float32 and basis.shape == (length, length)
    assert torch.allclose(basis.T @ basis, torch.eye(length), atol=1e-5)                 # U^T U = I
    laplacian = path_graph_laplacian(length)
    assert torch.allclose(laplacian @ basis.double(), basis.double() * eigvals.double(), atol=1e-5)  # L U = U Λ
    assert torch.all(eigvals[1:] > eigvals[:-1])                                          # ascending, distinct
    assert eigvals[0].abs() < 1e-6 and abs(eigvals[-1] - 2) < 1e-5                        # λ_0 = 0, λ_max = 2
    k = torch.arange(length, dtype=torch.float64)
    closed_form = 1 - torch.cos(math.pi * k / (length - 1))
    assert torch.allclose(eigvals.double(), closed_form, atol=1e-5)
    assert torch.all(basis[0] > 0)                                                        # sign fixed


@pytest.mark.parametrize("length", LENGTHS)
def test_basis_vectors_match_the_closed_form(length):
    _, basis = path_graph_basis(length)
    degree = torch.full((length,), 2.0, dtype=torch.float64)
    degree[0] = degree[-1] = 1.0
    i = torch.arange(length, dtype=torch.float64)
    for k in range(length):
        expected = degree.sqrt() * torch.cos(math.pi * k * i / (length - 1))
        expected = expected / expected.norm()
        assert torch.allclose(basis[:, k].double(), expected, atol=1e-5)
    if length > 2:   # the lowest-frequency vector is ∝ sqrt(deg), which is not the constant vector
        assert not torch.allclose(basis[:, 0], torch.full((length,), basis[0, 0].item()))


def test_length_one_basis():
    eigvals, basis = path_graph_basis(1)
    assert basis.tolist() == [[1.0]] and eigvals.tolist() == [0.0]


def test_basis_is_cached_per_length_but_returned_fresh():
    _, first = path_graph_basis(7)
    first.zero_()
    _, second = path_graph_basis(7)
    assert torch.all(second[0] > 0)


# --- §17.2 Parseval, §17.3 perfect reconstruction -----------------------------------------------
def test_parseval():
    torch.manual_seed(0)
    spectrum = PathGraphSpectrum(46, 3)
    x = torch.randn(4, 46, 8)
    assert torch.allclose(spectrum.spectrum(x).norm(), x.norm(), rtol=1e-5)


@pytest.mark.parametrize("bounds", [[0, 1, 2, 20], [0, 5, 13, 20], [0, 18, 19, 20]])
def test_perfect_reconstruction(bounds):
    torch.manual_seed(1)
    spectrum = PathGraphSpectrum(20, 3)
    spectrum.set_bounds(torch.tensor(bounds))
    x = torch.randn(5, 20, 6)
    bands = spectrum.split(x)                                                   # (B, K, T, d)
    assert bands.shape == (5, 3, 20, 6)
    assert torch.allclose(bands.sum(1), x, atol=1e-5)                           # Σ_k X_k = X
    p = spectrum.projectors
    for j in range(3):
        assert torch.allclose(p[j] @ p[j], p[j], atol=1e-5)                     # idempotent
        for k in range(3):
            if j != k:
                assert torch.allclose(p[j] @ p[k], torch.zeros(20, 20), atol=1e-5)   # P_j P_k = 0
                assert abs((bands[:, j] * bands[:, k]).sum()) < 1e-3            # <X_j, X_k>_F = 0
    energies = bands.pow(2).sum(dim=(0, 2, 3))
    assert torch.allclose(energies.sum(), x.pow(2).sum(), rtol=1e-5)            # Σ ||X_k||² = ||X||²


def test_projectors_follow_bounds_and_survive_state_dict():
    source = PathGraphSpectrum(12, 3)
    source.set_bounds(torch.tensor([0, 2, 5, 12]))
    target = PathGraphSpectrum(12, 3)
    target.load_state_dict(source.state_dict())
    assert "projectors" not in source.state_dict()                               # derived, rebuilt on load
    assert target.band_bounds.tolist() == [0, 2, 5, 12]
    assert torch.equal(target.projectors, band_projectors(target.basis, target.band_bounds))


# --- §17.4 partition -------------------------------------------------------------------------------
def check_partition(bounds, length, num_bands):
    b = bounds.tolist()
    assert len(b) == num_bands + 1 and b[0] == 0 and b[-1] == length
    assert all(lo < hi for lo, hi in zip(b[:-1], b[1:]))                # non-empty, contiguous, cover [0, T')


def band_fractions(energy, bounds):
    b = bounds.tolist()
    return torch.stack([energy[lo:hi].sum() for lo, hi in zip(b[:-1], b[1:])]) / energy.sum()


def test_flat_spectrum_gives_thirds():
    energy = torch.ones(46, dtype=torch.float64)
    bounds = equal_energy_bounds(energy, 3)
    check_partition(bounds, 46, 3)
    assert torch.allclose(band_fractions(energy, bounds), torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.03)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("length", [3, 9, 46, 200])
def test_equal_energy_fraction_bound(seed, length):
    g = torch.Generator().manual_seed(seed)
    energy = torch.rand(length, generator=g, dtype=torch.float64) ** 2 + 1e-3
    bounds = equal_energy_bounds(energy, 3)
    check_partition(bounds, length, 3)
    # When no band is forced to a minimum size, each fraction is 1/K ± max_j e_j / Σ e
    # (a boundary moves at most one frequency away from the exact crossing).
    if length >= 9:
        slack = (energy.max() / energy.sum()).item()
        fractions = band_fractions(energy, bounds)
        assert torch.all((fractions - 1 / 3).abs() <= slack + 1e-12)


def test_dc_dominated_spectrum_degenerates_to_min_bands():
    energy = torch.tensor([1000.0] + [0.01] * 45, dtype=torch.float64)
    assert equal_energy_bounds(energy, 3).tolist() == [0, 1, 2, 46]


def test_ties_go_to_the_smaller_boundary():
    # c = [0, .25, .5, .75, 1] for K = 2: |c - 1/2| is 0 at b = 2 only
    assert equal_energy_bounds(torch.ones(4, dtype=torch.float64), 2).tolist() == [0, 2, 4]
    # two equally near candidates: c = [0, .25, .75, 1] -> |c - .5| = .25 at b = 1 and b = 2 -> b = 1
    assert equal_energy_bounds(torch.tensor([0.25, 0.5, 0.25], dtype=torch.float64), 2).tolist() == [0, 1, 3]


def test_equidistant_bounds():
    assert equidistant_bounds(46, 3).tolist() == [0, 15, 30, 46]
    for length in range(3, 40):
        check_partition(equidistant_bounds(length, 3), length, 3)


def test_too_short_sequences_are_refused():
    with pytest.raises(ValueError):
        equal_energy_bounds(torch.ones(2), 3)
    with pytest.raises(ValueError):
        PathGraphSpectrum(2, 3)


# --- §17.6-§17.8 band router, masking, SBN identity ---------------------------------------------------
def test_band_weights_are_distributions():
    torch.manual_seed(2)
    router = SpectralBandRouter(10, 8, 3, mask_rate=0.5).train()
    out = router(torch.randn(64, 10, 8))
    for key in ("weights", "weights_used"):
        w = out[key]
        assert w.shape == (64, 3) and torch.all(w >= 0)
        assert torch.allclose(w.sum(-1), torch.ones(64), atol=1e-6)
    assert torch.all(out["weights"] > 0)
    assert torch.all((out["weights_used"] > 0).sum(-1) >= 1)          # at least one band kept


def test_masking_is_train_only():
    torch.manual_seed(3)
    router = SpectralBandRouter(10, 8, 3, mask_rate=0.5)
    x = torch.randn(32, 10, 8)
    router.eval()
    first, second = router(x), router(x)
    assert torch.equal(first["refined"], second["refined"])          # bit-identical in eval()
    assert torch.equal(first["weights_used"], first["weights"])
    router.train()
    router.mask_rate = 0.0
    out = router(x)
    assert torch.equal(out["weights_used"], out["weights"])          # p = 0: nothing masked
    router.mask_rate = 1.0
    out = router(x)
    assert torch.equal(out["weights_used"], out["weights"])          # p = 1: all masked -> fallback w~ = w


@pytest.mark.parametrize("rate", [0.1, 0.3])
def test_empirical_keep_rate(rate):
    torch.manual_seed(4)
    weights = torch.full((60000, 3), 1 / 3)
    used = stochastic_band_mask(weights, rate, training=True)
    # an entry survives when kept, or when its whole row was masked (fallback): (1-p) + p^K
    assert abs((used > 0).float().mean().item() - ((1 - rate) + rate ** 3)) < 0.01
    kept_rows = used[(used > 0).sum(-1) < 3]
    assert torch.allclose(kept_rows.sum(-1), torch.ones(len(kept_rows)), atol=1e-6)


def test_masking_keeps_gradients_finite_in_the_fallback():
    logits = torch.randn(200, 3, requires_grad=True)
    used = stochastic_band_mask(torch.softmax(logits, -1), 0.9, training=True)
    used.pow(2).sum().backward()
    assert torch.isfinite(logits.grad).all()


def test_uniform_weights_scaled_sum_is_identity():
    torch.manual_seed(5)
    spectrum = PathGraphSpectrum(15, 3)
    spectrum.set_bounds(torch.tensor([0, 2, 7, 15]))
    x = torch.randn(3, 15, 4)
    uniform = torch.full((3, 3), 1 / 3)
    assert torch.allclose(combine_bands(spectrum.split(x), x, uniform, "scaled_sum"), x, atol=1e-5)
    assert torch.allclose(combine_bands(spectrum.split(x), x, uniform, "sum"), x / 3, atol=1e-5)
    assert torch.allclose(combine_bands(spectrum.split(x), x, uniform, "residual"), x + x / 3, atol=1e-5)


def test_band_pool_options():
    bands = torch.randn(2, 3, 5, 4)
    assert torch.allclose(pool_bands(bands, "mean"), bands.mean(2))
    assert torch.allclose(pool_bands(bands, "rms"), bands.pow(2).mean(2).sqrt(), atol=1e-5)


# --- §6 modality router ----------------------------------------------------------------------------
def test_modality_router_and_pre_path_input():
    torch.manual_seed(6)
    lengths = {"L": 4, "V": 6, "A": 4}
    pre = PreAttentionInput(lengths)
    assert set(pre.align) == {"V"}                                    # Align only where T'_m != T'_L
    x = {m: torch.randn(5, t, 8) for m, t in lengths.items()}
    z = pre(x)
    assert z.shape == (5, pre.input_dim(8)) == (5, 3 * 8 * 4)
    router = ModalityRouter(z.shape[1], 3, temperature=0.1)
    assert router.fc1.out_features == z.shape[1] // 8
    w = router(z)
    assert w.shape == (5, 3) and torch.all(w > 0) and torch.allclose(w.sum(-1), torch.ones(5))


# --- §17.9 losses ----------------------------------------------------------------------------------
def test_kl_is_non_negative_and_zero_at_equality():
    torch.manual_seed(7)
    q = torch.softmax(torch.randn(16, 3), -1)
    w = torch.softmax(torch.randn(16, 3), -1)
    assert complementarity_loss(q, w) >= 0
    assert complementarity_loss(q, q).abs() < 1e-6


def test_entropy_sign_and_minimum():
    torch.manual_seed(8)
    uniform = torch.full((4, 3), 1 / 3)
    random = torch.softmax(3 * torch.randn(64, 3), -1)
    one_hot = torch.eye(3)
    assert abs(routing_entropy(uniform, "emoe").item() - (-3 * math.log(3))) < 1e-5
    assert routing_entropy(random, "emoe") <= 0 and routing_entropy(random, "emoe") > -3 * math.log(3)
    assert abs(routing_entropy(one_hot, "emoe").item()) < 1e-6
    assert abs(routing_entropy(uniform, "log_m").item() + 1) < 1e-6
    assert -1 < routing_entropy(random, "log_m") <= 0


def test_target_q_is_a_monotone_distribution():
    phi = torch.tensor([[0.3, -0.2, 0.9], [0.0, 0.0, 0.0], [-1.0, 2.0, 1.0]])
    q = complementarity_target(phi, 1.0)
    assert torch.allclose(q.sum(-1), torch.ones(3))
    assert torch.equal(q.argsort(-1), phi.argsort(-1))
    assert torch.allclose(q[1], torch.full((3,), 1 / 3))


def test_phi_and_teacher_are_detached():
    loss_full = torch.rand(4, requires_grad=True)
    loss_bi = torch.rand(4, 3, requires_grad=True)
    phi = complementarity_importance(loss_bi, loss_full)
    assert not phi.requires_grad and torch.allclose(phi, loss_bi - loss_full[:, None])
    w = torch.softmax(torch.randn(4, 3, requires_grad=True), -1)
    teacher = distillation_teacher(w, torch.randn(4, 3, 5, requires_grad=True))
    assert not teacher.requires_grad
    assert distillation_loss(torch.randn(4, 5), teacher) >= 0


def test_per_sample_losses():
    pred = torch.tensor([[0.5], [1.0]])
    assert torch.allclose(per_sample_loss("regression", pred, torch.tensor([1.0, -1.0])), torch.tensor([0.5, 2.0]))
    logits = torch.randn(6, 20)
    ce = per_sample_loss("classification", logits, torch.arange(6))
    assert ce.shape == (6,) and torch.allclose(ce.mean(), torch.nn.functional.cross_entropy(logits, torch.arange(6)))


# --- shared blocks: transformer, heads --------------------------------------------------------------
def reference_transformer(encoder, x_q, x_k=None):
    """MulT's TransformerEncoder written out by hand (explicit softmax attention, -inf future mask)."""
    d = encoder.embed_dim

    def embed(x):
        positions = torch.arange(1, x.shape[0] + 1)
        return math.sqrt(d) * x + sinusoidal_position_table(positions, d).unsqueeze(1)

    x = embed(x_q)
    k_in = None if x_k is None else embed(x_k)
    for layer in encoder.layers:
        att = layer.attention
        heads, hd = att.num_heads, d // att.num_heads
        residual = x
        q_src = layer.norm_attn(x)
        kv_src = q_src if k_in is None else layer.norm_attn(k_in)
        w, b = att.in_proj_weight, att.in_proj_bias
        q = (q_src @ w[:d].T + b[:d]) * hd ** -0.5
        k = kv_src @ w[d:2 * d].T + b[d:2 * d]
        v = kv_src @ w[2 * d:].T + b[2 * d:]
        tq, bsz, tk = q.shape[0], q.shape[1], k.shape[0]
        q = q.reshape(tq, bsz * heads, hd).transpose(0, 1)
        k = k.reshape(tk, bsz * heads, hd).transpose(0, 1)
        v = v.reshape(tk, bsz * heads, hd).transpose(0, 1)
        scores = q @ k.transpose(1, 2)
        if layer.attn_mask:
            mask = torch.triu(torch.full((tq, tk), float("-inf")), 1 + abs(tk - tq))
            scores = scores + mask
        attended = (torch.softmax(scores, -1) @ v).transpose(0, 1).reshape(tq, bsz, d)
        x = residual + att.out_proj(attended)
        residual = x
        x = residual + layer.fc2(torch.relu(layer.fc1(layer.norm_ffn(x))))
    return encoder.final_norm(x)


@pytest.mark.parametrize("causal", [False, True])
def test_transformer_matches_handwritten_mult(causal):
    torch.manual_seed(9)
    encoder = TransformerEncoder(16, 4, 2, attn_mask=causal).eval()
    x = torch.randn(7, 3, 16)
    assert torch.allclose(encoder(x), reference_transformer(encoder, x), atol=1e-5)
    x_k = torch.randn(11, 3, 16)                                        # cross-modal, T_k != T_q
    assert encoder(x, x_k).shape == (7, 3, 16)
    assert torch.allclose(encoder(x, x_k, x_k), reference_transformer(encoder, x, x_k), atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("t_k", [None, 4, 11])                         # self; cross with T_k < T_q, T_k > T_q
def test_last_only_is_the_last_row_of_the_full_output_with_the_same_gradients(causal, t_k):
    torch.manual_seed(12)
    encoder = TransformerEncoder(16, 4, 3, attn_mask=causal)          # training mode, all dropouts 0
    x = torch.randn(7, 3, 16, requires_grad=True)
    x_k = None if t_k is None else torch.randn(t_k, 3, 16, requires_grad=True)
    inputs = (x,) if x_k is None else (x, x_k, x_k)
    weights = torch.randn(3, 16)                                       # a loss that weighs every output
    full = encoder(*inputs)[-1]
    grads_full = torch.autograd.grad((full * weights).sum(), [x, *encoder.parameters()] + ([x_k] if t_k else []))
    last = encoder(*inputs, last_only=True)
    grads_last = torch.autograd.grad((last * weights).sum(), [x, *encoder.parameters()] + ([x_k] if t_k else []))
    assert last.shape == (3, 16)
    assert torch.allclose(last, full, atol=1e-5)
    for g_full, g_last in zip(grads_full, grads_last):
        assert torch.allclose(g_last, g_full, atol=1e-5)
    # only the top layer is cut to one position: its feed-forward sees 1 row, the others all 7
    rows = []
    hooks = [layer.fc1.register_forward_hook(lambda m, args, out: rows.append(args[0].shape[0]))
             for layer in encoder.layers]
    encoder(*inputs, last_only=True)
    for hook in hooks:
        hook.remove()
    assert rows == [7, 7, 1]


def test_causal_mask_hides_the_future():
    torch.manual_seed(10)
    encoder = TransformerEncoder(8, 2, 1, attn_mask=True).eval()
    x = torch.randn(6, 2, 8)
    changed = x.clone()
    changed[4:] += torch.randn(2, 2, 8)   # not a constant shift, which LayerNorm would erase
    assert torch.allclose(encoder(x)[:4], encoder(changed)[:4], atol=1e-6)
    assert not torch.allclose(encoder(x)[4:], encoder(changed)[4:])
    assert future_mask(3, 5, "cpu").tolist() == [[True, True, True, False, False],
                                                  [True, True, True, True, False],
                                                  [True, True, True, True, True]]


def test_positions_none_table_or_from_input():
    torch.manual_seed(11)
    x = torch.randn(5, 2, 8)
    x[3, :, 0] = 0.0                                                    # a "padding-looking" frame
    plain = TransformerEncoder(8, 2, 0, positions="table").eval()
    quirk = TransformerEncoder(8, 2, 0, positions="from_input").eval()
    bare = TransformerEncoder(8, 2, 0, positions="none").eval()        # MMSA's MulT
    quirk.load_state_dict(plain.state_dict())
    bare.load_state_dict(plain.state_dict())
    assert torch.allclose(plain(x)[:3], quirk(x)[:3]) and not torch.allclose(plain(x)[3], quirk(x)[3])
    # With no layers the encoder is LayerNorm(sqrt(d) x [+ positions]): check each by hand.
    table = sinusoidal_position_table(torch.arange(1, 6), 8).unsqueeze(1)
    norm = plain.final_norm
    assert torch.allclose(bare(x), norm(math.sqrt(8) * x), atol=1e-6)
    assert torch.allclose(plain(x), norm(math.sqrt(8) * x + table), atol=1e-6)
    with pytest.raises(UsageError, match="positions must be one of none, table, from_input"):
        TransformerEncoder(8, 2, 0, positions="learned")


def test_attention_projections_are_xavier_initialised_as_in_mult():
    """MulT's reset_parameters: xavier_uniform_ on in_proj_weight AND out_proj.weight, zero biases.
    Xavier on a (fan_out, fan_in) weight is U(-a, a), a = sqrt(6 / (fan_in + fan_out)), std a/sqrt(3):
    sqrt(1/d) for out_proj (d, d), sqrt(1/(2d)) for the packed in_proj (3d, d). torch's default
    Linear init would give out_proj std sqrt(1/(3d))."""
    from mmsa_atsuko.models.common.transformer import MultiheadAttention
    torch.manual_seed(0)
    d = 256
    attention = MultiheadAttention(d, 8)
    for weight, fans in ((attention.out_proj.weight, 2 * d), (attention.in_proj_weight, 4 * d)):
        bound = math.sqrt(6 / fans)
        weight = weight.detach()
        assert weight.abs().max() <= bound
        assert abs(float(weight.std()) - bound / math.sqrt(3)) < 0.03 * bound / math.sqrt(3)
    assert not attention.out_proj.bias.any() and not attention.in_proj_bias.any()


def test_residual_head():
    torch.manual_seed(12)
    head = ResidualHead(6, 20, dropout=0.5).eval()
    x = torch.randn(4, 6)
    refined, logits = head(x)
    assert refined.shape == (4, 6) and logits.shape == (4, 20)
    assert torch.allclose(refined, x + head.fc2(torch.relu(head.fc1(x))))
