"""The synthetic-data generator: MMSA's exact format, realistic padding, a planted signal that
needs all three modalities, determinism, caching, and a tiny BERT that matches the ids."""
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mmsa_atsuko.data import synthetic as syn
from mmsa_atsuko.data import tiny_bert
from mmsa_atsuko.data.synthetic import planted_signal
from mmsa_atsuko.data.stamp import STAMP_KEY, content_sha256
from mmsa_atsuko.errors import UsageError

FACTS = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "datasets.yaml").read_text())["datasets"]
SETTINGS = [(ds, aligned) for ds in syn.SYNTHETIC_DATASETS for aligned in (False, True)
            if ("aligned" if aligned else "unaligned") in FACTS[ds]["files"]]
BASE_KEYS = {"raw_text", "text", "text_bert", "audio", "vision", "audio_lengths", "vision_lengths", "id",
             "annotations", "classification_labels", "regression_labels"}
UNIMODAL_KEYS = {"regression_labels_T", "regression_labels_A", "regression_labels_V"}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Every small dataset/setting, written to disk and read back as a consumer would."""
    folder = tmp_path_factory.mktemp("small")
    out = {}
    for ds, aligned in SETTINGS:
        path = syn.write_synthetic(ds, folder / f"{ds}-{aligned}.pkl", size="small", aligned=aligned)
        with open(path, "rb") as f:
            out[ds, aligned] = pickle.load(f)
        out[ds, aligned].pop(STAMP_KEY)          # test_file_carries_the_generators_stamp
    return out


@pytest.fixture(scope="module")
def mosi_full():
    """Full-size MOSI in memory (about 3 s, 0.4 GB): real shapes, and enough samples for OLS."""
    return syn.make_synthetic("mosi", size="full", seed=0)


def text_lengths(split):
    return split["text_bert"][:, 1, :].sum(1).astype(int)


# ----------------------------------------------------------------------------------- format

@pytest.mark.parametrize("ds,aligned", SETTINGS)
def test_small_keys_dtypes_shapes(small, ds, aligned):
    data = small[ds, aligned]
    shapes = syn.synthetic_shapes(ds, "small", aligned)
    L, La, Lv = (shapes["seq_lens"][m] for m in ("text", "audio", "vision"))
    Da, Dv = shapes["feature_dims"]["audio"], shapes["feature_dims"]["vision"]
    if aligned:
        assert L == La == Lv
    assert list(data) == ["train", "valid", "test"]
    for name, split in data.items():
        n = shapes["split_sizes"][name]
        assert set(split) == BASE_KEYS | (UNIMODAL_KEYS if FACTS[ds].get("unimodal_labels") else set())
        for key, shape in (("text", (n, L, 768)), ("text_bert", (n, 3, L)), ("audio", (n, La, Da)),
                           ("vision", (n, Lv, Dv)), ("regression_labels", (n,)),
                           ("classification_labels", (n,))):
            assert split[key].shape == shape and split[key].dtype == np.float32, key
        for key in ("raw_text", "id", "annotations", "audio_lengths", "vision_lengths"):
            assert isinstance(split[key], list) and len(split[key]) == n, key
        assert all(type(x) is int for x in split["audio_lengths"] + split["vision_lengths"])
        assert all(isinstance(x, str) for x in split["raw_text"] + split["id"] + split["annotations"])
    assert shapes["feature_dims"]["text"] == 768
    assert shapes["split_sizes"] == {"train": 96, "valid": 32, "test": 32}


@pytest.mark.parametrize("ds,aligned", SETTINGS)
def test_full_shapes_equal_datasets_yaml(ds, aligned):
    shapes = syn.synthetic_shapes(ds, "full", aligned)
    real = FACTS[ds]["real_shapes"]["aligned" if aligned else "unaligned"]
    assert shapes["split_sizes"] == FACTS[ds]["real_sizes"]
    for m in ("text", "audio", "vision"):
        assert [shapes["seq_lens"][m], shapes["feature_dims"][m]] == real[m]


def test_full_mosi_arrays_have_real_shapes(mosi_full):
    shapes = syn.synthetic_shapes("mosi", "full", False)
    for name, split in mosi_full.items():
        n = shapes["split_sizes"][name]
        assert split["text"].shape == (n, 50, 768) and split["text_bert"].shape == (n, 3, 50)
        assert split["audio"].shape == (n, 375, 5) and split["vision"].shape == (n, 500, 20)


# ---------------------------------------------------------------------------------- padding

@pytest.mark.parametrize("ds,aligned", SETTINGS)
def test_padding_lengths_and_special_tokens(small, ds, aligned):
    for split in small[ds, aligned].values():
        tb, lengths = split["text_bert"], text_lengths(split)
        L = tb.shape[2]
        assert lengths.min() >= max(3, int(np.ceil(0.3 * L))) and lengths.max() <= L
        assert lengths.min() < L  # lengths vary: some samples are padded
        positions = np.arange(L)[None, :]
        valid = positions < lengths[:, None]
        np.testing.assert_array_equal(tb[:, 1], valid.astype(np.float32))   # mask
        assert not tb[:, 2].any()                                           # segment ids
        ids = tb[:, 0].astype(int)
        assert (ids[:, 0] == tiny_bert.CLS_ID).all()
        assert (ids[np.arange(len(ids)), lengths - 1] == tiny_bert.SEP_ID).all()
        assert (ids[~valid] == tiny_bert.PAD_ID).all()
        inner = valid & (positions >= 1) & (positions < lengths[:, None] - 1)
        assert (ids[inner] >= tiny_bert.FIRST_WORD_ID).all() and (ids[inner] < tiny_bert.VOCAB_SIZE).all()
        # Features: exactly zero after each length, non-zero on every valid step.
        for key, lens in (("text", lengths), ("audio", np.array(split["audio_lengths"])),
                          ("vision", np.array(split["vision_lengths"]))):
            x = split[key]
            steps = np.arange(x.shape[1])[None, :] < lens[:, None]
            assert lens.min() >= 1 and lens.max() <= x.shape[1], key
            assert not x[~steps].any(), key
            assert (np.abs(x[steps]).sum(-1) > 0).all(), key
        if aligned:
            assert split["audio_lengths"] == split["vision_lengths"] == lengths.tolist()


@pytest.mark.parametrize("ds,aligned", SETTINGS)
def test_audio_neg_inf_only_inside_valid_frames_of_a_noise_column(small, ds, aligned):
    for split in small[ds, aligned].values():
        audio = split["audio"]
        samples, frames, columns = np.nonzero(np.isneginf(audio))
        assert len(samples) > 0                           # every split has some, like MMSA's
        assert len(set(samples)) <= 0.2 * len(audio)      # ... on a few samples only
        assert (frames < np.array(split["audio_lengths"])[samples]).all()
        assert set(columns) == {audio.shape[2] - 1}       # the reserved noise column
        assert not np.isnan(audio).any() and not np.isposinf(audio).any()
        assert np.isfinite(split["vision"]).all() and np.isfinite(split["text"]).all()


# ----------------------------------------------------------------------------------- labels

@pytest.mark.parametrize("ds,aligned", SETTINGS)
def test_labels_range_annotations_and_unimodal(small, ds, aligned):
    lo, hi = FACTS[ds]["label_range"]
    for split in small[ds, aligned].values():
        y = split["regression_labels"]
        assert lo <= y.min() and y.max() <= hi and y.std() > 0.2 * (hi - lo) / 2
        expected = np.where(y < 0, 0, np.where(y > 0, 2, 1))
        np.testing.assert_array_equal(split["classification_labels"], expected)
        names = ("Negative", "Neutral", "Positive")
        assert split["annotations"] == [names[c] for c in expected]
        if FACTS[ds].get("unimodal_labels"):
            for key in ("regression_labels", *sorted(UNIMODAL_KEYS)):
                v = split[key].astype(np.float64)
                assert lo <= v.min() and v.max() <= hi
                np.testing.assert_allclose(v * 5, np.rint(v * 5), atol=1e-5)  # 0.2 steps
                assert not np.signbit(v[v == 0]).any()                          # no -0.0
        else:
            assert not (UNIMODAL_KEYS & set(split))


def test_mosi_labels_have_some_exact_zeros(mosi_full):
    y = np.concatenate([s["regression_labels"] for s in mosi_full.values()])
    assert 0.02 < np.mean(y == 0) < 0.1              # so Has0 and Non0 metrics differ
    assert len(np.unique(y)) > 0.8 * len(y)           # otherwise continuous, like the real ones


# ------------------------------------------------------------------------- ids and recipes

def test_ids_are_labelled_synthetic_and_unique(small):
    for (ds, aligned), data in small.items():
        recipe = syn.synthetic_recipe(ds, "small", 0, aligned)
        assert recipe == f"{ds}-small-{'aligned' if aligned else 'unaligned'}-seed0-v2"
        ids = [i for split in data.values() for i in split["id"]]
        assert all(i.startswith(f"synthetic:{recipe}$_$") for i in ids)
        assert len(set(ids)) == len(ids)
        videos = [{i.split("$_$")[1].rsplit("_", 1)[0] for i in split["id"]} for split in data.values()]
        assert not (videos[0] & videos[1]) and not (videos[0] & videos[2])  # a video stays in one split


def test_the_data_kind_label_is_worded_in_one_place():
    """The leaderboard, curve, ablation (Markdown and LaTeX) and comparison titles each wrote
    `"synthetic data" if ... else "real data"`, and four CSV builders `"synthetic" if ... else "real"`."""
    import ast

    from mmsa_atsuko.data.stamp import data_kind, data_kind_text
    assert [data_kind(d) for d in ("synthetic:mosi-small-unaligned-seed0-v2", "sha256:" + "ab" * 32, None)] == \
        ["synthetic", "real", "real"]
    assert [data_kind_text(d) for d in ("synthetic:x", "sha256:x")] == ["synthetic data", "real data"]
    found = []
    for path in sorted((Path(__file__).resolve().parents[1] / "mmsa_atsuko" / "leaderboard").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.IfExp) and {getattr(node.body, "value", None), getattr(node.orelse, "value", None)} \
                    & {"synthetic data", "real data", "synthetic", "real"}:
                found.append(f"{path.name}:{node.lineno}")
    assert not found, found


def test_whether_data_is_synthetic_is_decided_in_one_place():
    """Records, tables, figures, tune's line and the missing-rate rule each tested `startswith("synthetic:")`
    themselves (and two bench scripts cut the recipe out with partition): a change to how a data id names
    generated data would have left some of them treating it as real, without an error."""
    import ast

    from mmsa_atsuko.data.stamp import is_synthetic, recipe_name_of, synthetic_data_id
    recipe = "corrupt-s2-mosi-small-unaligned-seed0-v2"
    assert synthetic_data_id(recipe) == "synthetic:corrupt-s2-mosi-small-unaligned-seed0-v2"
    assert is_synthetic("synthetic:" + recipe) and recipe_name_of("synthetic:" + recipe) == recipe
    assert is_synthetic("synthetic:mosi-small-unaligned-seed0-v2$_$vid00001_1")       # a sample id of it
    for other in ("sha256:" + "ab" * 32, "Synthetic:x", " synthetic:x", "", None, 1, ["synthetic:x"]):
        assert not is_synthetic(other) and recipe_name_of(other) is None, other
    # Only the home spells the prefix (cache.py's is a BERT's name, another thing that shares it).
    root = Path(__file__).resolve().parents[1]
    homes = {root / "mmsa_atsuko" / "data" / "stamp.py", root / "mmsa_atsuko" / "cache.py"}
    found = []
    for path in sorted([*(root / "mmsa_atsuko").rglob("*.py"), *(root / "bench").rglob("*.py")]):
        if path in homes:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            first = node.values[0] if isinstance(node, ast.JoinedStr) and node.values else node
            if isinstance(first, ast.Constant) and isinstance(first.value, str) and (
                    first.value == "synthetic:" or first.value.startswith("synthetic:") and first is not node):
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    assert not found, found


def test_file_carries_the_generators_stamp(tmp_path):
    path = syn.write_synthetic("sims", tmp_path / "s.pkl", seed=2)
    with open(path, "rb") as f:
        data = pickle.load(f)
    assert list(data) == [STAMP_KEY, "train", "valid", "test"]         # MMSA reads data[mode] only
    stamp = data.pop(STAMP_KEY)
    assert stamp == {"format": 1, "recipe": "sims-small-unaligned-seed2-v2", "content_sha256": content_sha256(data)}
    assert STAMP_KEY.encode() in path.read_bytes()[:64]                 # where ensure_synthetic looks


def test_cached_file_without_a_stamp_is_written_again(tmp_path):
    pkl, _ = syn.ensure_synthetic("mosi", tmp_path, seed=0)
    stamped = pkl.read_bytes()
    with open(pkl, "rb") as f:
        data = pickle.load(f)
    del data[STAMP_KEY]                                                 # as the v2 generator wrote it
    pkl.write_bytes(pickle.dumps(data, protocol=4))
    assert syn.ensure_synthetic("mosi", tmp_path, seed=0)[0] == pkl and pkl.read_bytes() == stamped


def test_writing_the_tiny_bert_says_so_once_per_cache_folder(tmp_path, caplog):
    """The first --synthetic run of a cache sat silent for 14 s (transformers' import) before its first line."""
    caplog.set_level("INFO", logger="mmsa_atsuko")
    _, bert = syn.ensure_synthetic("sims", tmp_path, seed=0)
    said = [r.getMessage() for r in caplog.records if "tiny synthetic BERT" in r.getMessage()]
    assert said == [f"writing the tiny synthetic BERT to {bert}, once per cache folder (importing transformers "
                    "takes 10-20 s on a busy CPU)"]
    caplog.clear()
    assert syn.ensure_synthetic("sims", tmp_path, seed=0)[1] == bert
    assert not [r for r in caplog.records if "tiny synthetic BERT" in r.getMessage()]


def test_same_arguments_same_bytes_and_seeds_differ(tmp_path):
    a = syn.write_synthetic("sims", tmp_path / "a.pkl", seed=3)
    b = syn.write_synthetic("sims", tmp_path / "b.pkl", seed=3)
    c = syn.write_synthetic("sims", tmp_path / "c.pkl", seed=4)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    other = pickle.loads(c.read_bytes())["train"]
    mine = pickle.loads(a.read_bytes())["train"]
    assert not np.array_equal(mine["audio"], other["audio"])
    assert not np.array_equal(mine["text_bert"], other["text_bert"])
    assert not list(tmp_path.glob(".*"))  # no temp files left behind


def test_bad_arguments_are_one_line_usage_errors(tmp_path):
    cases = [dict(dataset="iemocap"), dict(dataset="mosi", size="medium"), dict(dataset="sims", aligned=True),
             dict(dataset="mosi", seed=-1), dict(dataset="mosi", seed=1.5)]
    for kwargs in cases:
        dataset = kwargs.pop("dataset")
        with pytest.raises(UsageError) as err:
            syn.write_synthetic(dataset, tmp_path / "x.pkl", **kwargs)
        assert "\n" not in str(err.value)
    with pytest.raises(UsageError):
        tiny_bert.write_tiny_bert(tmp_path / "b", language="fr")
    assert not (tmp_path / "x.pkl").exists()


# ---------------------------------------------------------------------------------- signal

def summaries(split):
    """Per-sample means over the valid steps (MMSA's -inf -> 0 first), as OLS inputs."""
    out = []
    for key, lens in (("text", text_lengths(split)), ("audio", np.array(split["audio_lengths"])),
                      ("vision", np.array(split["vision_lengths"]))):
        x = np.where(np.isneginf(split[key]), 0.0, split[key]) if key == "audio" else split[key]
        out.append(x.sum(1).astype(np.float64) / lens[:, None])  # padding is 0: sum / length
    return out


def principal_subspace(x, k, iterations=8):
    """(D, k) orthonormal basis of x's top-k principal subspace, by subspace iteration.

    OLS only sees the span, so this is as good as an SVD here, and it is a few small matrix
    products instead of a LAPACK SVD that crawls on a busy 2-core machine.
    """
    basis = np.random.default_rng(0).standard_normal((x.shape[1], k))
    for _ in range(iterations):
        basis, _ = np.linalg.qr(x.T @ (x @ basis))
    return basis


def held_out_r2(train_x, train_y, test_x, test_y):
    design = np.c_[np.ones(len(train_x)), train_x]
    w = np.linalg.lstsq(design, train_y, rcond=None)[0]
    pred = np.c_[np.ones(len(test_x)), test_x] @ w
    return 1 - ((test_y - pred) ** 2).sum() / ((test_y - test_y.mean()) ** 2).sum()


def demodulated(split, key, layout):
    """Per sample and signal column, the cosine's coefficient in an OLS fit of the valid frames
    on (1, t, cos(2 pi t / P + phase)), with P and phase the recipe's: the oscillating part of
    the cue, with the baseline and trend (the drift) fitted away."""
    x = np.where(np.isneginf(split[key]), 0.0, split[key]).astype(np.float64)
    out = np.zeros((len(x), len(layout["columns"])))
    for i, n in enumerate(split[f"{key}_lengths"]):
        t = np.arange(n)
        for j, (col, period, phase) in enumerate(zip(layout["columns"], layout["periods"], layout["phases"])):
            design = np.c_[np.ones(n), t, np.cos(2 * np.pi * t / period + phase)]
            out[i, j] = np.linalg.lstsq(design, x[i, :n, col], rcond=None)[0][2]
    return out


def test_signal_needs_more_than_text_and_more_than_time_means(mosi_full):
    """OLS fitted on train, R^2 on valid+test.

    The text summary is the mean text feature reduced to its top 8 principal components
    (fitted on train): 768 raw dims would let OLS fit noise on 1284 samples. By construction
    text carries W_T^2 = 0.5 of the label's latent variance and audio and vision 0.25 each
    (noise 0.0625). Half of an audio/vision cue's power is a constant shift, which the
    baseline drift (std DRIFT_STD) buries in the time mean; the other half oscillates at a
    fixed period and phase. So a probe on time means only gets part of audio and vision, and
    one that also reads the oscillation gets nearly all. Measured over seeds 0-2: text
    0.41-0.44, text + time means 0.68-0.71, + demodulated oscillation 0.87-0.89. The bounds
    fail if the weights drift toward text, if the audio/vision signal is lost, or if the time
    means alone carry it all again (recipe v1: 0.87-0.90 from the means alone).
    """
    train, valid, test = (mosi_full[s] for s in ("train", "valid", "test"))
    world = planted_signal.world(syn.synthetic_recipe("mosi", "full", 0, False),
                                 syn.synthetic_shapes("mosi", "full")["feature_dims"])
    t_tr, a_tr, v_tr = summaries(train)
    t_te, a_te, v_te = (np.concatenate(pair) for pair in zip(summaries(valid), summaries(test)))
    centre = t_tr.mean(0)
    basis = principal_subspace(t_tr - centre, 8)
    t_tr, t_te = (t_tr - centre) @ basis, (t_te - centre) @ basis
    o_tr, o_te = (np.concatenate([np.c_[demodulated(split, "audio", world["audio"]),
                                        demodulated(split, "vision", world["vision"])] for split in splits])
                  for splits in ((train,), (valid, test)))
    y_tr, y_te = train["regression_labels"], np.r_[valid["regression_labels"], test["regression_labels"]]
    r2_text = held_out_r2(t_tr, y_tr, t_te, y_te)
    r2_means = held_out_r2(np.c_[t_tr, a_tr, v_tr], y_tr, np.c_[t_te, a_te, v_te], y_te)
    r2_all = held_out_r2(np.c_[t_tr, a_tr, v_tr, o_tr], y_tr, np.c_[t_te, a_te, v_te, o_te], y_te)
    assert 0.25 < r2_text < 0.6, r2_text
    assert r2_means - r2_text > 0.15, (r2_text, r2_means)
    assert r2_all > 0.8 and r2_all - r2_means > 0.1, (r2_means, r2_all)


def test_tiny_model_learns_small_mosi_in_a_few_epochs(small):
    """A 2-layer MLP on mean-pooled features, 20 epochs of 3 batches: the signal is learnable."""
    def tensors(split):
        x = torch.from_numpy(np.concatenate(summaries(split), axis=1)).float()
        return x, torch.from_numpy(split["regression_labels"])

    (x_tr, y_tr), (x_te, y_te) = (tensors(small["mosi", False][s]) for s in ("train", "test"))
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(x_tr.shape[1], 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(20):
        for batch in torch.randperm(len(x_tr), generator=g).split(32):
            loss = (net(x_tr[batch]).squeeze(1) - y_tr[batch]).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        pred = net(x_te).squeeze(1)
    assert np.corrcoef(pred.numpy(), y_te.numpy())[0, 1] > 0.6


# ------------------------------------------------------------------------------ tiny BERT

@pytest.mark.parametrize("ds,language", [("mosi", "en"), ("sims", "cn")])
def test_tiny_bert_loads_offline_and_matches_the_ids(small, tmp_path, ds, language):
    from transformers import BertModel, BertTokenizer

    folder = tiny_bert.write_tiny_bert(tmp_path / "bert", seed=0, language=language)
    assert (folder / "SYNTHETIC.txt").is_file()
    marker = json.loads((folder / "synthetic.json").read_text())
    assert marker["synthetic"] is True and marker["recipe"] == f"bert-synthetic-{language}-seed0-v1"
    vocab = (folder / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert len(vocab) == tiny_bert.VOCAB_SIZE > 5
    assert [vocab[i] for i in (0, 100, 101, 102, 103)] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

    tokenizer = BertTokenizer.from_pretrained(str(folder))
    model, info = BertModel.from_pretrained(str(folder), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    split = small[ds, False]["train"]
    ids, lengths = split["text_bert"][:, 0].astype(int), text_lengths(split)
    for i in range(len(ids)):
        words = tokenizer.tokenize(split["raw_text"][i])
        assert tokenizer.convert_tokens_to_ids(words) == ids[i, 1:lengths[i] - 1].tolist()
        assert tokenizer(split["raw_text"][i])["input_ids"] == ids[i, :lengths[i]].tolist()

    batch = torch.from_numpy(split["text_bert"][:8]).long()
    model.eval()
    with torch.no_grad():
        out = model(input_ids=batch[:, 0], attention_mask=batch[:, 1], token_type_ids=batch[:, 2])
    assert out.last_hidden_state.shape == (8, batch.shape[2], 768)


def test_tiny_bert_is_deterministic_and_replaces_an_existing_folder(tmp_path):
    a = tiny_bert.write_tiny_bert(tmp_path / "a", seed=1)
    b = tiny_bert.write_tiny_bert(tmp_path / "b", seed=1)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    state = torch.random.get_rng_state()
    tiny_bert.write_tiny_bert(a, seed=2)  # replaces; and leaves the caller's torch RNG alone
    assert torch.equal(state, torch.random.get_rng_state())
    assert (a / "model.safetensors").read_bytes() != (b / "model.safetensors").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


# -------------------------------------------------------------------------------- caching

def test_ensure_synthetic_writes_once(tmp_path):
    pkl, bert = syn.ensure_synthetic("mosi", tmp_path, size="small", seed=0)
    assert pkl == tmp_path / "mosi-small-unaligned-seed0-v2" / "MOSI/Processed/unaligned_50.pkl"
    assert bert == tmp_path / "mosi-small-unaligned-seed0-v2" / "bert-synthetic-en"
    before = {p: (os.stat(p).st_ino, os.stat(p).st_mtime_ns) for p in (pkl, bert / "model.safetensors")}
    again = syn.ensure_synthetic("mosi", tmp_path, size="small", seed=0)
    assert again == (pkl, bert)
    assert before == {p: (os.stat(p).st_ino, os.stat(p).st_mtime_ns) for p in before}
    assert pkl.read_bytes() == syn.write_synthetic("mosi", tmp_path / "direct.pkl", size="small").read_bytes()

    aligned, _ = syn.ensure_synthetic("mosei", tmp_path, aligned=True)
    assert aligned.relative_to(tmp_path).as_posix() == "mosei-small-aligned-seed0-v2/MOSEI/Processed/aligned_50.pkl"
    pkl_cn, bert_cn = syn.ensure_synthetic("simsv2", tmp_path)
    assert pkl_cn.name == "sims_unaligned.pkl" and bert_cn.name == "bert-synthetic-cn"
