"""MISA: builds from every dataset config, CMD and diff losses by hand, lengths, both task losses, BERT
fine-tuning, fitting. The generic model checks (shapes, gradients, seeds, a batch of one, reload) are
test_model_contract.py."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmsa_atsuko.models.baselines.misa import cmd, diff_loss
from conftest import make_dataset, with_text_bert
from mmsa_atsuko.config import load_config
from mmsa_atsuko.registry import build_model
from mmsa_atsuko.training.trainer import build_optimizer

def bert_dataset(**kw):
    return with_text_bert(make_dataset(**kw))


@pytest.fixture(scope="module")
def bert_path(tiny_bert):
    return tiny_bert


def small_config(bert_path, *overrides, dataset="mosi"):
    return load_config("misa", dataset, preset="small", overrides=[f"pretrained={bert_path}", *overrides])


# --- losses on hand-checked inputs ---------------------------------------------------------------------


def cmd_by_loops(x1, x2, n_moments):
    """CMD written out element by element, independently of baselines.misa."""
    rows1, rows2, dim = len(x1), len(x2), len(x1[0])
    mean1 = [sum(r[j] for r in x1) / rows1 for j in range(dim)]
    mean2 = [sum(r[j] for r in x2) / rows2 for j in range(dim)]
    total = math.sqrt(sum((mean1[j] - mean2[j]) ** 2 for j in range(dim)))
    for k in range(2, n_moments + 1):
        m1 = [sum((r[j] - mean1[j]) ** k for r in x1) / rows1 for j in range(dim)]
        m2 = [sum((r[j] - mean2[j]) ** k for r in x2) / rows2 for j in range(dim)]
        total += math.sqrt(sum((m1[j] - m2[j]) ** 2 for j in range(dim)))
    return total


def diff_by_loops(x1, x2):
    """MMSA's DiffLoss written out: centre over the batch, divide rows by (norm + 1e-6), mean((X1^T X2)^2)."""
    def normalise(x):
        rows, dim = len(x), len(x[0])
        mean = [sum(r[j] for r in x) / rows for j in range(dim)]
        centred = [[r[j] - mean[j] for j in range(dim)] for r in x]
        return [[v / (math.sqrt(sum(u * u for u in r)) + 1e-6) for v in r] for r in centred]

    a, b = normalise(x1), normalise(x2)
    d1, d2 = len(a[0]), len(b[0])
    products = [sum(a[i][p] * b[i][q] for i in range(len(a))) for p in range(d1) for q in range(d2)]
    return sum(v * v for v in products) / (d1 * d2)


def test_cmd_hand_example():
    # Equal means; x1's central moments are (-1, 1)^k -> 1 for even k, 0 for odd k; x2's are all 0.
    # CMD = |mean diff| + sum_{k=2..5} |m_k(x1) - m_k(x2)| = 0 + 1 + 0 + 1 + 0 = 2.
    x1 = torch.tensor([[0.0], [2.0]])
    x2 = torch.tensor([[1.0], [1.0]])
    assert cmd(x1, x2, 5).item() == pytest.approx(2.0)
    assert cmd(x1, x1, 5).item() == 0.0


def test_cmd_matches_loops():
    g = torch.Generator().manual_seed(3)
    x1, x2 = torch.rand(5, 3, generator=g), torch.rand(5, 3, generator=g)
    expected = cmd_by_loops(x1.tolist(), x2.tolist(), 5)
    assert cmd(x1.double(), x2.double(), 5).item() == pytest.approx(expected, rel=1e-12)


def test_cmd_gradient_is_finite_for_a_batch_of_one():
    # One sample: every central moment is 0 on both sides; MMSA's sqrt would give a NaN gradient.
    x1 = torch.rand(1, 4, requires_grad=True)
    x2 = torch.rand(1, 4)
    cmd(x1, x2, 5).backward()
    assert torch.isfinite(x1.grad).all()


def test_diff_loss_hand_example():
    # Centred rows of norm 1: X1^T X2 = [[0, 2], [0, 0]], so mean of squares = 4 / 4 = 1 (up to the 1e-6).
    x1 = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    x2 = torch.tensor([[0.0, 1.0], [0.0, -1.0]])
    assert diff_loss(x1, x2).item() == pytest.approx(1.0 / (1 + 1e-6) ** 4, rel=1e-6)
    # A code that is constant over the batch centres to 0, so it is orthogonal to anything.
    x3 = torch.tensor([[1.0, -1.0], [1.0, -1.0]])
    assert diff_loss(x1, x3).item() == 0.0


def test_diff_loss_matches_loops():
    g = torch.Generator().manual_seed(4)
    x1, x2 = torch.rand(6, 3, generator=g), torch.rand(6, 4, generator=g)
    expected = diff_by_loops(x1.tolist(), x2.tolist())
    assert diff_loss(x1.double(), x2.double()).item() == pytest.approx(expected, rel=1e-10)


# --- the model -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["mosi", "mosei", "sims", "simsv2"])
def test_builds_from_each_dataset_config(bert_path, dataset):
    data = bert_dataset(name=dataset)
    config = load_config("misa", dataset, overrides=[f"pretrained={bert_path}"])
    model = build_model("misa", config, data.spec)
    hidden = config.hidden_size
    assert model.project["text"][0].in_features == 768
    # audio/vision LSTMs are as wide as the raw features; the utterance is both layers, both directions
    assert model.project["audio"][0].in_features == 4 * data.spec.feature_dims["audio"]
    assert model.project["vision"][0].in_features == 4 * data.spec.feature_dims["vision"]
    assert model.fusion[0].in_features == 6 * hidden and model.fusion[-1].out_features == 1
    assert (config.grad_accum, config.grad_clip_mode, config.weight_decay) == (2, "value", 0.0)


def test_mmsa_weights_per_dataset(bert_path):
    expected = {"mosi": (0.1, 0.3, 1.0), "mosei": (0.3, 0.8, 1.0), "sims": (0.3, 1.0, 0.8), "simsv2": (0.5, 1.0, 0.5)}
    for dataset, weights in expected.items():
        c = load_config("misa", dataset)
        assert (c.diff_weight, c.sim_weight, c.recon_weight) == weights


def test_losses_in_both_task_modes(bert_path):
    reg = bert_dataset()
    model = build_model("misa", small_config(bert_path), reg.spec).eval()
    batch = reg.train.batch(torch.arange(8))
    out = model(batch)
    losses = model.loss(out, batch)
    assert torch.allclose(losses["task"], F.mse_loss(out["pred"], batch["label"]))
    c = model.config
    assert torch.allclose(losses["total"], losses["task"] + c.diff_weight * losses["diff"]
                          + c.sim_weight * losses["cmd"] + c.recon_weight * losses["recon"])

    cls = with_text_bert(make_dataset(task="classification", name="mosi", num_classes=20))
    model = build_model("misa", small_config(bert_path), cls.spec).eval()
    batch = cls.train.batch(torch.arange(8))
    out = model(batch)
    assert torch.allclose(model.loss(out, batch)["task"], F.cross_entropy(out["pred"], batch["label"]))


def test_av_lengths_own_reads_the_own_frames_text_reads_the_token_count(bert_path):
    data = bert_dataset()
    batch = data.train.batch(torch.arange(4))
    batch["text_bert"][:, 1] = 0
    batch["text_bert"][:, 1, :2] = 1                    # 2 tokens per sample
    batch["audio_lengths"] = torch.full((4,), batch["audio"].shape[1])
    changed = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in batch.items()}
    changed["audio"][:, 5:] += 1.0                       # frames past the token count, inside the track
    for mode, should_change in (("own", True), ("text", False)):
        model = build_model("misa", small_config(bert_path, f"av_lengths={mode}"), data.spec).eval()
        a, b = model(batch)["pred"], model(changed)["pred"]
        assert (not torch.allclose(a, b)) == should_change, mode


def test_bert_is_fine_tuned(bert_path):
    data = bert_dataset()
    model = build_model("misa", small_config(bert_path), data.spec).train()
    batch = data.train.batch(torch.arange(8))
    model.loss(model(batch), batch)["total"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.text_encoder.parameters())


def test_overfits_32_samples(bert_path):
    # BERT frozen here to keep the test fast on 2 cores (test_bert_is_fine_tuned covers fine-tuning);
    # the heads and LSTMs must still memorise 32 labels through the full MISA objective.
    torch.manual_seed(0)
    data = bert_dataset(n=(32, 16, 16))
    config = small_config(bert_path, "use_finetune=false", "dropout=0.0", "learning_rate=1e-3")
    model = build_model("misa", config, data.spec)
    optimizer = build_optimizer(model, config)
    batch = data.train.batch(torch.arange(32))
    model.eval()
    first = model.loss(model(batch), batch)["task"].item()
    for _ in range(60):
        model.train()
        loss = model.loss(model(batch), batch)["total"]
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_value_(model.parameters(), config.grad_clip)
        optimizer.step()
    model.eval()     # the fusion transformer keeps torch's dropout 0.1 in training mode
    with torch.no_grad():
        final = model.loss(model(batch), batch)["task"].item()
    # labels are 3*tanh(.) with variance ~2: predicting their mean gives MSE ~2; memorised is far below 0.1
    assert final < 0.1 < first
