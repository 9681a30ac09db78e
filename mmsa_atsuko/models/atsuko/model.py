"""Atsuko: complementarity-supervised spectral-band routing. Module by module in docs/atsuko.md,
whose §N are the §N in this package's comments.

Data flow (§0), modality order L (text), V (vision), A (audio) everywhere:

    inputs --§1 encoders: text BERT/features, Conv1d per modality, one shared Conv1d--> X_m (B, T'_m, d)
      --§2-§5 spectral-band routing (Eq. 1-2), per modality--> X'_m (B, T'_m, d)
      --§7 Transformer_m, last position--> h_m (B, d)
    §6 modality router (Eq. 3): w (B, 3) from X' (pre path) or from [h_L; h_V; h_A] (post path)
    §8 c = sum_m w_m h_m -> residual MLP -> y_hat (Eq. 4); unimodal heads r_m, y_hat_m (EMOE)
    §9-§10 MCM (Eq. 5-9): bimodal heads, phi, q, KL(q || w), teacher, distillation
    §11 losses (Eq. 10-12)

Switches (§14) remove whole modules: with use_sbn=False there is no spectrum, band router
or band entropy; with use_mcm=False no bimodal heads, L_bi or L_comp.

Open readings (§18), each a config key; the defaults were chosen on validation MAE over the
standard and stress synthetic recipes (docs/atsuko_evidence.md):
- entropy_norm log_m | emoe, lambda_ent (default log_m, 0.1; the paper's reading is EMOE's xN at
  1.0, which pins both routers at uniform);
- band_pool rms | mean (default rms; the paper's mean leaves the mid/high summaries near 0);
- router_input refined | raw: the pre-path router reads X' after the text dropout (the paper's
  w = R(X'), default) or the input features before it (EMOE's router); router_detach stops
  the router's gradient into what it reads (default false);
- distill_form softmax_mse | kl | off: Eq. 9 as EMOE's softmax-MSE (default), KL between the
  softmaxes, or no L_d;
- lambda_comp, comp_temperature: L_comp's weight and its target's temperature (0.1, 1.0).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import UsageError
from ...registry import register_model, register_variant
from ..common.bert import TextInput
from ..common.heads import ResidualHead
from ..common.transformer import TransformerEncoder, check_heads
from .band_router import SpectralBandRouter
from .losses import per_sample_loss, routing_entropy, total_loss
from .mcm import (BimodalHeads, complementarity_importance, complementarity_loss, complementarity_target,
                  distillation_loss, distillation_teacher)
from .modalities import BAND_WEIGHT_EXPORTS, BATCH_KEY, MODALITIES, MODALITY_WEIGHT_COLUMNS, per_modality_text
from .modality_router import ROUTE_PATHS, ROUTER_INPUTS, ModalityRouter, PreAttentionInput

CONFIG_SUFFIX = {"L": "l", "V": "v", "A": "a"}             # EMOE's conv1d_kernel_size_l/_v/_a
ATTN_DROPOUT_KEY = {"L": "attn_dropout", "V": "attn_dropout_v", "A": "attn_dropout_a"}
# The values of the choice-valued keys this module dispatches on. configs/atsuko.yaml's `checks:` is the one place
# that refuses any other value (load_config and check_config, before a model is built); tests/test_atsuko_model.py
# holds its lists equal to these tuples and those of band_router, losses, mcm and modality_router.
BAND_PARTITIONS = ("equal_energy", "equidistant")
EEP_SOURCES = ("projected_init",)        # §3: on_fit_start calibrates on the §1 output of the fresh model


@register_model("atsuko", tasks=("regression", "classification"))
class Atsuko(nn.Module):
    """The Atsuko model. Built from (config, spec); see the module docstring for the data flow."""

    def __init__(self, config, spec):
        super().__init__()
        self.task = spec.task
        self.dim = d = int(config["d_model"])
        check_heads(d, int(config["nheads"]), "d_model and nheads")
        self.num_bands = int(config["num_bands"])
        out_dim = int(spec.num_classes)

        self.use_sbn = bool(config["use_sbn"])
        self.use_mcm = bool(config["use_mcm"])
        # use_distill: null follows use_mcm (DECISION, §14: distillation is MCM's feature half).
        self.use_distill = self.use_mcm if config["use_distill"] is None else bool(config["use_distill"])
        self.distill_form = config["distill_form"]
        self.use_distill = self.use_distill and self.distill_form != "off"
        # The config checks refuse these before any build; the dispatch below reads an unknown word as the
        # other branch, so a config made by hand is held to the same tuples here, never silently defaulted.
        for key, allowed in (("route_path", ROUTE_PATHS), ("router_input", ROUTER_INPUTS),
                             ("band_partition", BAND_PARTITIONS)):
            if config[key] not in allowed:
                raise UsageError(f"{key} must be one of {', '.join(allowed)}, got {config[key]!r}")
        self.route_path = config["route_path"]
        self.router_input_kind = config["router_input"]
        if self.router_input_kind == "raw" and self.route_path == "post":
            raise UsageError("router_input=raw reads the input features before the transformers: it needs "
                             "route_path=pre (the post path routes on the transformers' outputs)")
        self.router_detach = bool(config["router_detach"])
        self.band_partition = config["band_partition"]
        self.eep_source = config["eep_source"]              # what on_fit_start's calibration reads (§3)
        self.entropy_norm = config["entropy_norm"]
        self.text_dropout = float(config["text_dropout"])
        self.lambdas = dict(
            lambda_uni=float(config["lambda_uni"]), lambda_bi=float(config["lambda_bi"]),
            lambda_ent=float(config["lambda_ent"]),
            # null follows lambda_ent (one entropy weight, §11); a number frees the band term.
            lambda_ent_band=float(config["lambda_ent"] if config["lambda_ent_band"] is None
                                  else config["lambda_ent_band"]),
            lambda_comp=float(config["lambda_comp"]),
            lambda_distill=float(config["lambda_distill"]),
        )
        self.comp_temperature = float(config["comp_temperature"])
        self.calibration_batch_size = int(config["eval_batch_size"] or config["batch_size"])

        # §1 encoders -------------------------------------------------------------------------
        self.text_input = TextInput(config, spec, "atsuko")     # BERT over text_bert, or text features
        text_dim = self.text_input.dim
        input_dims = {"L": text_dim, "V": int(spec.feature_dims["vision"]), "A": int(spec.feature_dims["audio"])}

        # Per-modality temporal projection Conv1d(d_m, d, k_m, no padding, no bias), skipped
        # when d_m == d (EMOE); then one shared Conv1d(d, d, 1) for all three (EMOE encoder_c).
        self.proj = nn.ModuleDict()
        lengths = {}
        for m in MODALITIES:
            raw_length = int(spec.seq_lens[BATCH_KEY[m]])
            if input_dims[m] == d:
                lengths[m] = raw_length
                continue
            kernel = int(config[f"conv1d_kernel_size_{CONFIG_SUFFIX[m]}"])
            lengths[m] = raw_length - kernel + 1
            if lengths[m] < 1:
                raise UsageError(f"conv1d_kernel_size_{CONFIG_SUFFIX[m]}={kernel} is longer than the "
                                 f"{BATCH_KEY[m]} sequence ({raw_length} steps)")
            self.proj[m] = nn.Conv1d(input_dims[m], d, kernel_size=kernel, padding=0, bias=False)
        self.shared_conv = nn.Conv1d(d, d, kernel_size=1, bias=False)
        self.lengths = lengths
        # T'_L, T'_V, T'_A in the checkpoint, so that loading one built for other lengths fails clearly.
        self.register_buffer("projected_lengths", torch.tensor([lengths[m] for m in MODALITIES]))

        # §2-§5 spectral-band routing network (Eq. 1-2) ------------------------------------------
        if self.use_sbn:
            short = [m for m in MODALITIES if lengths[m] < self.num_bands]
            if short:
                raise UsageError(f"spectral bands need T' >= num_bands={self.num_bands}; "
                                 f"{', '.join(f'{BATCH_KEY[m]} has T={lengths[m]}' for m in short)} "
                                 f"(lower the conv kernel or set -c use_sbn=false)")
            self.sbn = nn.ModuleDict({
                m: SpectralBandRouter(
                    lengths[m], d, self.num_bands, temperature=float(config["band_temperature"]),
                    pool=config["band_pool"], combine=config["band_combine"],
                    mask_rate=float(config["band_mask_rate"]),
                ) for m in MODALITIES
            })
            if self.band_partition == "equidistant":   # fixed boundaries: nothing to calibrate
                for block in self.sbn.values():
                    block.spectrum.calibrated.fill_(True)

        # §6 modality router (Eq. 3) -----------------------------------------------------------
        if self.route_path == "pre" and self.router_input_kind == "raw":     # EMOE: raw features, T_L steps
            raw_lengths = {m: int(spec.seq_lens[BATCH_KEY[m]]) for m in MODALITIES}
            self.router_input = PreAttentionInput(raw_lengths)
            router_dim = self.router_input.input_dim(input_dims)
        elif self.route_path == "pre":
            self.router_input = PreAttentionInput(lengths)
            router_dim = self.router_input.input_dim(dict.fromkeys(MODALITIES, d))
        else:
            router_dim = 3 * d
        self.modality_router = ModalityRouter(router_dim, len(MODALITIES), float(config["router_temperature"]))

        # §7 one transformer per modality (MulT/DMD, as in EMOE) -------------------------------
        self.transformers = nn.ModuleDict({
            m: TransformerEncoder(
                embed_dim=d, num_heads=int(config["nheads"]), layers=int(config["nlevels"]),
                attn_dropout=float(config[ATTN_DROPOUT_KEY[m]]), relu_dropout=float(config["relu_dropout"]),
                res_dropout=float(config["res_dropout"]), embed_dropout=float(config["embed_dropout"]),
                attn_mask=bool(config["attn_mask"]),
            ) for m in MODALITIES
        })

        # §8 fusion head (Eq. 4) and unimodal heads; §9 bimodal heads (Eq. 5) -------------------
        output_dropout = float(config["output_dropout"])
        self.fusion_head = ResidualHead(d, out_dim, output_dropout)
        self.unimodal_heads = nn.ModuleDict({m: ResidualHead(d, out_dim, output_dropout) for m in MODALITIES})
        if self.use_mcm:
            self.mcm = BimodalHeads(d, out_dim, output_dropout)

        self._calibration_verified = False
        self.register_load_state_dict_post_hook(lambda module, _keys: setattr(module, "_calibration_verified", False))

    # ------------------------------------------------------------------------------------------
    # forward
    # ------------------------------------------------------------------------------------------
    def inputs(self, batch: dict) -> dict:
        """The input features (B, T_m, d_m) for m in L, V, A: text after BERT (or the text
        features), before the text dropout; what router_input=raw routes on."""
        dtype = self.shared_conv.weight.dtype
        return {"L": self.text_input(batch).to(dtype), "V": batch["vision"].to(dtype), "A": batch["audio"].to(dtype)}

    def encode(self, batch: dict, inputs: dict | None = None) -> dict:
        """§1: the batch -> X_m (B, T'_m, d) for m in L, V, A (the signal the bands are cut from).
        `inputs`: `self.inputs(batch)` when the caller has it already."""
        inputs = self.inputs(batch) if inputs is None else inputs
        raw = {**inputs, "L": F.dropout(inputs["L"], p=self.text_dropout, training=self.training)}   # EMOE text dropout
        features = {}
        for m in MODALITIES:
            x = raw[m].transpose(1, 2)                                        # (B, d_m, T_m)
            if m in self.proj:
                x = self.proj[m](x)                                           # (B, d, T'_m)
            x = self.shared_conv(x).transpose(1, 2)                           # (B, T'_m, d)
            if x.shape[1] != self.lengths[m]:
                raise ValueError(f"{BATCH_KEY[m]}: the model was built for {self.lengths[m]} steps after the "
                                 f"projection conv, the batch gives {x.shape[1]}")
            features[m] = x
        return features

    def forward(self, batch: dict, return_spectral: bool = False) -> dict:
        inputs = self.inputs(batch)
        x = self.encode(batch, inputs)
        out = {}

        # §2-§5 (Eq. 1-2): X'_m = K sum_k w~_k P_k X_m
        if self.use_sbn:
            if self.training and not self._calibration_verified:
                self._verify_calibration()
            sbn = {m: self.sbn[m](x[m]) for m in MODALITIES}
            x_prime = {m: sbn[m]["refined"] for m in MODALITIES}
            out["band_weights"] = {m: sbn[m]["weights"] for m in MODALITIES}
            out["band_weights_used"] = {m: sbn[m]["weights_used"] for m in MODALITIES}
        else:
            sbn = None
            x_prime = x                                                        # X' = X

        # §6 (Eq. 3) pre path: route on the band-refined sequences X' (router_input=refined, the
        # paper's w = R(X')) or on the input features before the text dropout (raw, EMOE), before
        # the transformers; router_detach stops the router's gradient into what it reads.
        if self.route_path == "pre":
            z = self.router_input(inputs if self.router_input_kind == "raw" else x_prime)
            weights = self.modality_router(z.detach() if self.router_detach else z)

        # §7: transformers run sequence-first; h_m is the last position (causal: it sees all)
        h = {m: self.transformers[m](x_prime[m].transpose(0, 1), last_only=True) for m in MODALITIES}

        if self.route_path == "post":                                          # §6 post path
            z = torch.cat([h[m] for m in MODALITIES], dim=-1)
            weights = self.modality_router(z.detach() if self.router_detach else z)

        # §8 (Eq. 4): c = sum_m w_m h_m, vectorised; residual MLP; heads
        h_stack = torch.stack([h[m] for m in MODALITIES], dim=1)              # (B, 3, d)
        fused = (weights.unsqueeze(-1) * h_stack).sum(1)
        fused_proj, logits_full = self.fusion_head(fused)
        r, logits_uni = {}, {}
        for m in MODALITIES:
            r[m], logits_uni[m] = self.unimodal_heads[m](h[m])
        # §10 (Eq. 8): the teacher, detached
        teacher = distillation_teacher(weights, torch.stack([r[m] for m in MODALITIES], dim=1))

        out.update({
            "pred": logits_full.squeeze(-1) if self.task == "regression" else logits_full,
            "logits_full": logits_full,
            "logits_uni": logits_uni,
            "modality_weights": weights,
            "h": h, "r": r, "c": fused, "c_proj": fused_proj, "teacher": teacher,
        })
        if self.use_mcm:                                                       # §9 (Eq. 5)
            out["logits_bi"] = self.mcm(h)

        # Per-sample values saved next to the test predictions, named so the columns say which
        # modality they are: modality_weight_L/V/A (B,), band_weights_L/V/A (B, K) low..high, unmasked.
        export = {MODALITY_WEIGHT_COLUMNS[m]: weights[:, i].detach() for i, m in enumerate(MODALITIES)}
        if self.use_sbn:
            for m in MODALITIES:
                export[BAND_WEIGHT_EXPORTS[m]] = out["band_weights"][m].detach()
        out["export"] = export

        if return_spectral:
            out["features"] = x
            out["features_refined"] = x_prime
            if self.use_sbn:
                out["spec_energy"] = {m: self.sbn[m].spectrum.energy(x[m]) for m in MODALITIES}
                out["band_components"] = {m: sbn[m]["bands"] for m in MODALITIES}
                out["energy_mean"] = {m: self.sbn[m].spectrum.energy_mean for m in MODALITIES}
                out["band_bounds"] = {m: self.sbn[m].spectrum.band_bounds for m in MODALITIES}
                out["eigvals"] = {m: self.sbn[m].spectrum.eigvals for m in MODALITIES}
        return out

    # ------------------------------------------------------------------------------------------
    # loss (§11, Eq. 10-12)
    # ------------------------------------------------------------------------------------------
    def loss(self, outputs: dict, batch: dict) -> dict:
        label = batch["label"]
        loss_full = per_sample_loss(self.task, outputs["logits_full"], label)   # (B,)
        terms = {
            "task": loss_full.mean(),                                           # L_full, Eq. 10
            "uni": torch.stack([per_sample_loss(self.task, outputs["logits_uni"][m], label).mean()
                                for m in MODALITIES]).mean(),                   # L_uni, Eq. 10
            "ent_mod": routing_entropy(outputs["modality_weights"], self.entropy_norm),   # L_ent^mod, Eq. 11
        }
        if self.use_sbn:                     # L_ent^band, Eq. 11: (1/M) sum_m Ent(w^b_m), on the unmasked w^b
            terms["ent_band"] = torch.stack([routing_entropy(outputs["band_weights"][m], self.entropy_norm)
                                             for m in MODALITIES]).mean()
        extras = {}
        if self.use_mcm:
            loss_bimodal = torch.stack([per_sample_loss(self.task, outputs["logits_bi"][f"-{m}"], label)
                                        for m in MODALITIES], dim=1)            # (B, 3), columns L, V, A
            terms["bi"] = loss_bimodal.mean()                                   # L_bi, Eq. 10
            phi = complementarity_importance(loss_bimodal, loss_full)           # sg(...)
            q = complementarity_target(phi, self.comp_temperature)              # Eq. 6
            terms["comp"] = complementarity_loss(q, outputs["modality_weights"])   # Eq. 7
            extras = {"phi": phi, "q": q}
        if self.use_distill:
            terms["distill"] = distillation_loss(outputs["c_proj"], outputs["teacher"], self.distill_form)   # Eq. 9
        terms["task_eq10"], terms["total"] = total_loss(terms, **self.lambdas)  # Eq. 10, Eq. 12
        return {**terms, **extras}

    # ------------------------------------------------------------------------------------------
    # equal-energy calibration (§3) and checkpoints
    # ------------------------------------------------------------------------------------------
    def is_calibrated(self) -> bool:
        return not self.use_sbn or all(bool(self.sbn[m].spectrum.calibrated) for m in MODALITIES)

    def _verify_calibration(self) -> None:
        """Raise on a training step before calibration. Reading the buffers syncs a GPU, so the
        answer is remembered until the next load_state_dict."""
        if not self.is_calibrated():
            raise RuntimeError("Atsuko: equal-energy band boundaries are not calibrated; call "
                               "model.on_fit_start(train_split) before training (or use band_partition=equidistant)")
        self._calibration_verified = True

    @torch.no_grad()
    def on_fit_start(self, train_split) -> None:
        """Equal-Energy Partitioning calibration (§3), once before epoch 1.

        One pass over the *training* split in eval() mode under no_grad (no dropout, no masking)
        through the §1 encoders of the freshly initialised model: e_m[j] = mean_n sum_c X_hat^2,
        accumulated in float64; the band boundaries are cut from it and then frozen. Parameters
        are not touched. With band_partition=equidistant only the mean spectrum is recorded.
        """
        if not self.use_sbn:
            return
        if self.eep_source != "projected_init":      # EEP_SOURCES' one case
            raise ValueError(f"unknown eep_source {self.eep_source!r}")
        was_training = self.training
        self.eval()
        try:
            device = self.shared_conv.weight.device
            energy_sums = {m: torch.zeros(self.lengths[m], dtype=torch.float64, device=device) for m in MODALITIES}
            num_samples = 0
            for batch in train_split.batches(self.calibration_batch_size):
                features = self.encode(batch)
                for m in MODALITIES:
                    spectrum = self.sbn[m].spectrum.spectrum(features[m]).to(torch.float64)
                    energy_sums[m] += spectrum.pow(2).sum(dim=(0, 2))
                num_samples += features["L"].shape[0]
            for m in MODALITIES:
                self.sbn[m].spectrum.calibrate(energy_sums[m], num_samples,
                                               equal_energy=self.band_partition == "equal_energy")
        finally:
            self.train(was_training)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # One clear error instead of torch's list of size mismatches when the checkpoint was
        # built for other sequence lengths (another dataset, alignment or conv kernel).
        saved = state_dict.get(prefix + "projected_lengths")
        if saved is not None and saved.tolist() != self.projected_lengths.tolist():
            got = dict(zip(MODALITIES, saved.tolist()))
            raise UsageError(f"checkpoint was built for sequence lengths T' {per_modality_text(got)} but this model "
                             f"has {per_modality_text(self.lengths)}; it belongs to another dataset, alignment or "
                             f"kernel size")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


# Table 4 ablations under readable names, as family.py names them without torch (tests/test_registry.py holds the
# two equal). One literal call a name: model_names reads a file's names and their registry_meta from its source,
# without importing it, so that a sweep or tune checks their configs before torch is imported.
register_variant("atsuko_base", Atsuko, config_name="atsuko", overrides={"use_sbn": False, "use_mcm": False})
register_variant("atsuko_sbn", Atsuko, config_name="atsuko", overrides={"use_sbn": True, "use_mcm": False})
register_variant("atsuko_mcm", Atsuko, config_name="atsuko", overrides={"use_sbn": False, "use_mcm": True})
