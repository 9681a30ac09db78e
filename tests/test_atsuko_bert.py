"""The shared BERT text encoder and how its weights are found (never downloaded)."""
import pytest
import torch

from conftest import TINY_BERT_VOCAB, make_dataset, with_text_bert
from mmsa_atsuko.config import load_config
from mmsa_atsuko.errors import UsageError
from mmsa_atsuko.models.common.bert import BertTextEncoder, check_vocab, resolve_bert_path, trim_to_longest_text


def text_bert(n=3, length=9):
    ids = torch.randint(1, TINY_BERT_VOCAB, (n, length))
    mask = torch.ones(n, length, dtype=torch.int64)
    mask[0, 5:] = 0
    return torch.stack([ids * mask, mask, torch.zeros_like(ids)], dim=1)


@pytest.mark.parametrize("finetune", [True, False])
def test_encoder_gives_last_hidden_state(tiny_bert, finetune):
    encoder = BertTextEncoder(str(tiny_bert), use_finetune=finetune).eval()
    tokens = text_bert()
    out = encoder(tokens)
    assert out.shape == (3, 9, 768) and encoder.hidden_size == 768
    assert out.requires_grad == finetune                      # frozen BERT runs under no_grad
    expected = encoder.model(input_ids=tokens[:, 0], attention_mask=tokens[:, 1],
                             token_type_ids=tokens[:, 2]).last_hidden_state
    assert torch.allclose(out, expected, atol=1e-5)


def test_trim_to_longest_text_by_hand():
    def tokens(mask):
        mask = torch.tensor(mask)
        return torch.stack([mask * 7, mask, torch.zeros_like(mask)], dim=1)
    assert trim_to_longest_text(tokens([[1, 1, 0, 0, 0], [1, 1, 1, 0, 0]])).shape == (2, 3, 3)
    assert trim_to_longest_text(tokens([[1, 0, 0, 1, 0]])).shape == (1, 3, 4)     # a hole is kept
    assert trim_to_longest_text(tokens([[0, 0, 0]])).shape == (1, 3, 1)           # nothing real: one position
    full = tokens([[1, 1, 1]])
    assert torch.equal(trim_to_longest_text(full), full)


def test_trimmed_bert_gives_the_same_real_token_states(tiny_bert):
    torch.manual_seed(0)
    encoder = BertTextEncoder(str(tiny_bert), use_finetune=True).eval()
    tokens = text_bert(n=3, length=12)
    tokens[:, :2, 8:] = 0                                      # every sample ends by position 8
    tokens[1, :2, 4:] = 0
    trimmed = trim_to_longest_text(tokens)
    assert trimmed.shape[-1] == 8
    real = tokens[:, 1, :8].bool()
    torch.testing.assert_close(encoder(trimmed)[real], encoder(tokens)[:, :8][real], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["misa", "self_mm"])
def test_trimming_padded_tokens_leaves_predictions_unchanged(tiny_bert, name, monkeypatch):
    """MISA and Self-MM cut BERT's input after the batch's longest text; MMSA feeds every position."""
    import importlib

    from mmsa_atsuko.registry import build_model
    module = importlib.import_module(f"mmsa_atsuko.models.baselines.{name}")
    data = with_text_bert(make_dataset())
    config = load_config(name, "mosi", preset="small", overrides=[f"pretrained={tiny_bert}"])
    model = build_model(name, config, data.spec).eval()
    if hasattr(model, "on_fit_start"):
        model.on_fit_start(data.train)
    batch = data.train.batch(torch.arange(8))
    # Four more padding positions than any text needs, so the trim has something to cut.
    batch["text_bert"] = torch.cat([batch["text_bert"], batch["text_bert"].new_zeros(8, 3, 4)], dim=2)
    with torch.no_grad():
        trimmed = model(batch)["pred"]
        monkeypatch.setattr(module, "trim_to_longest_text", lambda text_bert: text_bert)
        untrimmed = model(batch)["pred"]
    torch.testing.assert_close(trimmed, untrimmed, rtol=1e-5, atol=1e-5)


def test_local_folder_resolves(tiny_bert):
    assert resolve_bert_path(str(tiny_bert)) == str(tiny_bert)


def test_missing_weights_raise_one_line(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    for missing in (str(tmp_path / "no-such-folder"), "bert-base-uncased", None):
        with pytest.raises(UsageError) as error:
            resolve_bert_path(missing)
        message = str(error.value)
        assert "\n" not in message and "-c pretrained=" in message
    with pytest.raises(UsageError, match=f"BERT folder {tmp_path}/no-such-folder does not exist"):
        resolve_bert_path(str(tmp_path / "no-such-folder"))
    with pytest.raises(UsageError, match="neither a local folder nor in the Hugging Face cache"):
        resolve_bert_path("google-bert/bert-base-uncased")      # a hub id with an org, not a path
    (tmp_path / "only-config").mkdir()
    (tmp_path / "only-config" / "config.json").write_text("{}")
    with pytest.raises(UsageError, match="model.safetensors"):
        resolve_bert_path(str(tmp_path / "only-config"))


def test_the_advice_for_a_missing_bert_fits_the_kind_of_name(tmp_path, monkeypatch):
    """Every missing BERT was told `huggingface-cli download <its folder's name>`: for the toolkit's tiny
    synthetic BERT (bert-synthetic-en, which no Hub has) and for any local folder that is no command that
    works, and for a Hub id with an org it downloaded the name without the org."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("MMSA_ATSUKO_CACHE", str(tmp_path / "cache"))

    def advice(name, option="-c pretrained="):
        with pytest.raises(UsageError) as error:
            resolve_bert_path(name, option=option)
        assert "\n" not in str(error.value)
        return str(error.value)

    # The name a --synthetic run's config holds: the run of that recipe writes it again.
    said = advice("synthetic:mosi-small-unaligned-seed0-v2/bert-synthetic-en")
    assert "a run with --synthetic on the data of mosi-small-unaligned-seed0-v2 writes it again" in said
    said = advice("synthetic:mintrec-small-unaligned-seed0-v1/MIntRec/bert-synthetic-en")
    assert said.endswith("on the data of mintrec-small-unaligned-seed0-v1 writes it again"), said
    # A tiny BERT's folder, as an extracted file or a `synth -d mintrec` run records it, gone from here.
    for language in ("en", "cn"):
        said = advice(str(tmp_path / "elsewhere" / f"bert-synthetic-{language}"), option="--bert ")
        assert "huggingface-cli" not in said and "which no download has" in said, said
        assert f"any run with --synthetic writes one to {tmp_path}/cache/synthetic/<recipe>/bert-synthetic-{language}" in said
        assert "run.py synth -d mintrec --out DIR" in said and said.endswith("give --bert that folder"), said
    # A local folder: its name is no Hub id to download.
    said = advice(str(tmp_path / "my-bert"))
    assert "huggingface-cli download HUB_ID --local-dir /path/to/bert" in said and "download my-bert" not in said
    # A Hub id: downloaded by its full id, org included.
    said = advice("google-bert/bert-base-uncased")
    assert ("`huggingface-cli download google-bert/bert-base-uncased --local-dir /path/to/bert-base-uncased`"
            in said and "-c pretrained=/path/to/bert-base-uncased" in said), said


def test_hub_id_found_in_the_cache(tiny_bert, tmp_path, monkeypatch):
    import shutil

    import huggingface_hub.constants

    cache = tmp_path / "hub"
    snapshot = cache / "models--bert-base-uncased" / "snapshots" / "0123abcd"
    shutil.copytree(tiny_bert, snapshot)
    (cache / "models--bert-base-uncased" / "refs").mkdir()
    (cache / "models--bert-base-uncased" / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    assert resolve_bert_path("bert-base-uncased") == str(snapshot)


def test_check_vocab_rejects_a_stub_tokenizer(tmp_path):
    from transformers import BertTokenizer

    words = [f"word{i}" for i in range(120)]
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words) + "\n")
    check_vocab(BertTokenizer(str(tmp_path / "vocab.txt")), tmp_path)

    class Stub:
        def __len__(self):
            return 5

    with pytest.raises(UsageError, match="only 5 tokens"):
        check_vocab(Stub(), tmp_path)


def test_a_checkpoint_without_encoder_weights_is_refused(tiny_bert, tmp_path):
    from safetensors.torch import load_file, save_file
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_bert, broken)
    weights = load_file(broken / "model.safetensors")
    save_file({k: v for k, v in weights.items() if "encoder.layer.0.output" not in k}, broken / "model.safetensors",
              metadata={"format": "pt"})
    with pytest.raises(UsageError, match="lacks"):
        BertTextEncoder(str(broken), use_finetune=True)
