"""Atsuko's open readings (docs/atsuko.md §18) as switches: each changes what it should and nothing else.

router_input (refined | raw), router_detach, distill_form (softmax_mse | kl | off); entropy_norm,
lambda_ent, band_pool, lambda_comp and comp_temperature existed before and are covered by
test_atsuko_model/test_atsuko_spectral; here only what they must leave alone at their defaults.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from test_atsuko_model import make_config, make_model, make_spec, make_tensors
from mmsa_atsuko.errors import UsageError
from mmsa_atsuko.models.atsuko.mcm import distillation_loss


pytestmark = pytest.mark.usefixtures("one_torch_thread")     # these tensors are tiny: one thread is fastest


def _pair(**switch):
    """Two models with equal weights wherever they have the same parameter: the default one, and
    one with `switch`."""
    base, other = make_model(seed=3), make_model(seed=3, **switch)
    shared = {k: v for k, v in base.state_dict().items() if k in other.state_dict()
              and other.state_dict()[k].shape == v.shape}
    other.load_state_dict({**other.state_dict(), **shared})
    return base.eval(), other.eval()


def _router_input(model, batch):
    seen = {}
    handle = model.modality_router.register_forward_pre_hook(lambda _m, args: seen.setdefault("z", args[0]))
    out = model(batch)
    handle.remove()
    return seen["z"], out


def test_defaults_are_the_readings_chosen_on_valid():
    config = make_config()      # docs/atsuko_evidence.md, "open readings": the spec's, but log_m, lambda_ent 0.1, rms
    assert (config.router_input, config.router_detach, config.distill_form) == ("refined", False, "softmax_mse")
    assert (config.entropy_norm, config.lambda_ent, config.band_pool) == ("log_m", 0.1, "rms")
    assert (config.lambda_comp, config.comp_temperature) == (0.1, 1.0)


def test_router_input_raw_reads_the_inputs_before_dropout_and_changes_nothing_else():
    base, raw = _pair(router_input="raw")
    batch = make_tensors(make_spec(), 5, seed=1)
    z_base, out_base = _router_input(base, batch)
    z_raw, out_raw = _router_input(raw, batch)
    # refined: X' of the three modalities, time-aligned to T'_L = 8 (d = 8 each)
    assert z_base.shape == (5, 8 * 3 * 8)
    # raw: text (768) + vision (7) + audio (5) input features, aligned to the raw text length 10
    align = raw.router_input.align
    expected = torch.cat([batch["text"], align["V"](batch["vision"].transpose(1, 2)).transpose(1, 2),
                          align["A"](batch["audio"].transpose(1, 2)).transpose(1, 2)], dim=-1).flatten(1)
    torch.testing.assert_close(z_raw, expected)
    # everything but the router's input is the same computation
    for m in ("L", "V", "A"):
        torch.testing.assert_close(out_raw["h"][m], out_base["h"][m])
        torch.testing.assert_close(out_raw["band_weights"][m], out_base["band_weights"][m])
    # raw reads text before the dropout: in training its input is still the clean text
    raw.train()
    z_train, _ = _router_input(raw, batch)
    torch.testing.assert_close(z_train[:, :768], batch["text"][:, 0, :])


def test_router_input_raw_needs_the_pre_path():
    with pytest.raises(UsageError, match="route_path=pre"):
        make_model(router_input="raw", route_path="post")


@pytest.mark.parametrize("route_path", ["pre", "post"])
def test_router_detach_stops_the_routers_gradient_into_its_input_only(route_path):
    batch = make_tensors(make_spec(), 6, seed=2)
    grads, outputs = {}, {}
    for detach in (False, True):
        model = make_model(seed=4, route_path=route_path, router_detach=detach)
        model.train()
        torch.manual_seed(0)                       # the same masks and dropout in both
        out = model(batch)
        comp = model.loss(out, batch)["comp"]
        model.zero_grad()
        comp.backward()
        grads[detach] = {n: (p.grad.abs().sum().item() if p.grad is not None else 0.0)
                         for n, p in model.named_parameters()}
        outputs[detach] = out["pred"].detach()
    torch.testing.assert_close(outputs[True], outputs[False])          # the forward pass is unchanged
    upstream = "transformers." if route_path == "post" else "shared_conv."
    assert sum(v for n, v in grads[False].items() if n.startswith(upstream)) > 0
    assert sum(v for n, v in grads[True].items() if n.startswith(upstream)) == 0
    router = [n for n in grads[True] if n.startswith("modality_router.")]
    assert all(grads[True][n] > 0 for n in router if n.endswith("weight"))


def test_distill_form_kl_and_off_change_only_the_distillation_term():
    batch = make_tensors(make_spec(), 6, seed=5)
    model = make_model(seed=6).eval()
    out = model(batch)
    terms = {form: make_model(seed=6, distill_form=form).eval().loss(out, batch)
             for form in ("softmax_mse", "kl", "off")}
    p_t, p_s = F.softmax(out["teacher"], -1), F.softmax(out["c_proj"], -1)
    kl = (p_t * (p_t.log() - p_s.log())).sum(-1).mean()                # KL(softmax(t) || softmax(c_proj))
    torch.testing.assert_close(terms["kl"]["distill"], kl)
    torch.testing.assert_close(terms["softmax_mse"]["distill"], ((p_s - p_t) ** 2).mean())
    assert "distill" not in terms["off"]
    lambda_d = model.lambdas["lambda_distill"]
    for form in ("kl", "off"):
        for key in set(terms["softmax_mse"]) - {"distill", "total"}:
            torch.testing.assert_close(terms[form][key], terms["softmax_mse"][key])
        expected = terms["softmax_mse"]["total"] - lambda_d * terms["softmax_mse"]["distill"] + \
            (lambda_d * terms[form]["distill"] if form == "kl" else 0.0)
        torch.testing.assert_close(terms[form]["total"], expected)


def test_distill_kl_is_zero_at_equal_distributions():
    x = torch.randn(3, 7)
    assert distillation_loss(x, x.clone(), "kl").abs().item() < 1e-6
    assert distillation_loss(x, torch.randn(3, 7), "kl").item() > 0


def test_entropy_norm_and_lambda_ent_scale_only_the_entropy_terms():
    batch = make_tensors(make_spec(), 6, seed=7)
    out = make_model(seed=8).eval()(batch)
    emoe = make_model(seed=8, entropy_norm="emoe", lambda_ent=1.0).eval().loss(out, batch)
    log_m = make_model(seed=8, entropy_norm="log_m", lambda_ent=0.1).eval().loss(out, batch)
    for key in ("ent_mod", "ent_band"):        # emoe: N sum p log p; log_m: sum p log p / log N (N = 3)
        torch.testing.assert_close(log_m[key], emoe[key] / (3 * math.log(3)))
    for key in set(emoe) - {"ent_mod", "ent_band", "total"}:
        torch.testing.assert_close(log_m[key], emoe[key])
    expected = emoe["total"] - 1.0 * (emoe["ent_mod"] + emoe["ent_band"]) + 0.1 * (log_m["ent_mod"] + log_m["ent_band"])
    torch.testing.assert_close(log_m["total"], expected)
