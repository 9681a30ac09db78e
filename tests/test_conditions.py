"""Protocol conditions (data/conditions.py, applied to the data by data/masking.py): missing frames, a dropped
modality, modality subsets; their place in run identity and records; the missing-rate leaderboard."""
import json
import logging
import math

import numpy as np
import pytest
import torch
import yaml

import mmsa_atsuko
from conftest import ROOT, die_before_last_pt_of_epoch, make_dataset, with_text_bert
from mmsa_atsuko.config import load_config
from mmsa_atsuko.analysis.runs import load_run
from mmsa_atsuko.data.conditions import PLAIN, Condition, condition_of, conditions, folder_condition_key, make_condition
from mmsa_atsuko.data.masking import UNK_ID, condition_tensors, missing_frames
from mmsa_atsuko.data.spec import Dataset, Split
from mmsa_atsuko.errors import UsageError
from mmsa_atsuko.leaderboard import leaderboard
from mmsa_atsuko.leaderboard.curves import missing_rate_tables
from mmsa_atsuko.registry import build_model, get_model_class, list_models
from mmsa_atsuko.results import identity, run_identity


@pytest.fixture(scope="module")
def data():
    return with_text_bert(make_dataset(n=(64, 16, 16)))


def test_masks_depend_only_on_data_split_modality_and_rate_and_are_nested():
    lengths = torch.tensor([5, 9, 2, 12] * 50)
    first = missing_frames("sha256:abc", "train", "audio", 0.3, lengths, 12)
    torch.manual_seed(7)
    np.random.seed(7)                    # global random state plays no part
    assert torch.equal(first, missing_frames("sha256:abc", "train", "audio", 0.3, lengths, 12))
    for other in (("sha256:abd", "train", "audio"), ("sha256:abc", "test", "audio"), ("sha256:abc", "train", "vision")):
        assert not torch.equal(first, missing_frames(*other, 0.3, lengths, 12))
    higher = missing_frames("sha256:abc", "train", "audio", 0.6, lengths, 12)
    assert (higher | ~first).all()       # missing at 0.3 -> missing at 0.6
    real = torch.arange(12)[None, :] < lengths[:, None]
    assert not (first & ~real).any()     # padding is never "missing"
    share = first.sum().item() / real.sum().item()
    assert 0.25 < share < 0.35
    assert not missing_frames("sha256:abc", "train", "audio", 0.0, lengths, 12).any()


def test_text_keeps_cls_and_sep_and_both_text_forms_lose_the_same_tokens(data):
    masked = data.under(make_condition(0.5))
    before, after = data.train.tensors, masked.train.tensors
    lengths = before["text_lengths"]
    dropped = after["text_bert"][:, 0] != before["text_bert"][:, 0]
    assert dropped.any()
    assert (after["text_bert"][:, 0][dropped] == UNK_ID).all()
    assert not dropped[:, 0].any()
    assert not dropped[torch.arange(len(lengths)), lengths - 1].any()                 # [SEP]
    assert torch.equal(after["text_bert"][:, 1:], before["text_bert"][:, 1:])         # mask, segments kept
    zeroed = (after["text"] == 0).all(dim=2) & (before["text"] != 0).any(dim=2)
    assert torch.equal(zeroed, dropped)
    for m in ("audio", "vision"):
        gone = (after[m] == 0).all(dim=2) & (before[m] != 0).any(dim=2)
        assert gone.any()
        kept = ~gone
        assert torch.equal(after[m][kept], before[m][kept])
        assert torch.equal(after[f"{m}_lengths"], before[f"{m}_lengths"])
        assert torch.equal(after[f"{m}_mask"], before[f"{m}_mask"])
    assert torch.equal(after["label"], before["label"])
    assert masked.spec.condition == make_condition(0.5) and data.spec.condition == PLAIN


def test_drop_modality_zeroes_every_real_frame_of_it_only(data):
    dropped = data.under(make_condition(0.0, "A")).test.tensors
    assert (dropped["audio"] == 0).all()
    assert torch.equal(dropped["audio_lengths"], data.test.tensors["audio_lengths"])
    assert dropped["vision"] is data.test.tensors["vision"] and dropped["text"] is data.test.tensors["text"]


def test_a_dropped_text_loses_every_text_feature_row_padding_cls_and_sep_included(data):
    """MMSA's `text` rows of [CLS] and [SEP] are BERT outputs computed from the whole sentence, and so are the rows
    of [PAD] tokens where BERT read the padding: kept, the 'dropped' text reached every model that reads `text`
    (before: 2 rows of every sample stayed, and every padding row)."""
    before = dict(data.test.tensors)
    lengths = before["text_lengths"]
    real = torch.arange(before["text"].shape[1])[None, :] < lengths[:, None]
    assert (before["text"] != 0).any(dim=2)[real].all()          # every real row held something to drop
    assert (~real).any()
    before["text"] = before["text"] + (~real)[:, :, None] * 0.5  # padding rows as BERT's outputs of [PAD]
    after = condition_tensors(before, data_id="sha256:x", split="test", condition=make_condition(0.0, "T"))
    assert (after["text"] == 0).all()
    ids = after["text_bert"][:, 0]
    words = real & (torch.arange(ids.shape[1])[None, :] > 0) & (torch.arange(ids.shape[1])[None, :] < lengths[:, None] - 1)
    assert (ids[words] == UNK_ID).all()                          # every word [UNK] ...
    assert torch.equal(ids[~words], before["text_bert"][:, 0][~words])          # ... [CLS], [SEP], padding kept
    assert torch.equal(after["text_lengths"], lengths) and torch.equal(after["text_mask"], before["text_mask"])
    assert after["audio"] is before["audio"] and after["vision"] is before["vision"]


def test_a_dropped_text_stored_by_an_older_version_is_a_condition_of_its_own_and_not_re_tested(data, tmp_path):
    """Records written before the rule above carry no `text_rows` mark, and zeroed fewer rows (words only, or words,
    [CLS] and [SEP]). Read as today's drop=T they were skipped as recorded and averaged with runs on other data;
    they are `drop=T,text_drop=older`, and re-testing one (explain, robustness, tsne) is refused in one line."""
    today = make_condition(0.0, "T")
    assert today.as_dict() == {"missing_rate": 0.0, "drop_modality": "T", "modalities": "TAV", "text_rows": "all"}
    run = {"model": "tfn", "dataset": "mosi", "aligned": False, "seed": 1, "config_hash": "h", "data": "d"}
    older = {**run, "condition": {"missing_rate": 0.0, "drop_modality": "T", "modalities": "TAV"}}
    assert identity({**run, "condition": today.as_dict()}) == run_identity(*run.values(), "drop=T")
    assert identity(older) == run_identity(*run.values(), "drop=T,text_drop=older")
    assert condition_of({**run, "condition": make_condition(0.0, "V").as_dict()}) == make_condition(0.0, "V")
    common = dict(seeds=[1111], synthetic=True, preset="small", max_epochs=1, quiet=True, out=tmp_path)
    first = mmsa_atsuko.run("tfn", "mosi", conditions=[today], **common)[0]
    store = tmp_path / "runs.jsonl"
    store.write_text(store.read_text().replace(', "text_rows": "all"', ""))    # as an older toolkit wrote it
    second = mmsa_atsuko.run("tfn", "mosi", conditions=[today], **common)[0]
    assert second["run_id"] != first["run_id"]              # trained again, not skipped as the older run
    assert second["metrics"] == first["metrics"]            # ... and it is today's dropped text again
    assert [condition_of(r).key() for r in map(json.loads, store.read_text().splitlines())] == \
        ["drop=T,text_drop=older", "drop=T"]
    load_run(tmp_path, second["run_id"])
    with pytest.raises(UsageError) as error:
        load_run(tmp_path, first["run_id"])
    assert str(error.value) == (f"run {first['run_id']} ran under an older toolkit's --drop-modality T, which zeroed "
                                f"fewer text rows than today's (its record has no text_rows mark), so its data "
                                f"cannot be rebuilt: train it again with --drop-modality T")


def _cut_in_epoch_2(out, common: dict):
    """A tfn run on mosi stopped (Ctrl-C) before its epoch 2's last.pt: its .partial folder and that folder's run.json."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        die_before_last_pt_of_epoch(monkeypatch, 2)
        with pytest.raises(KeyboardInterrupt):
            mmsa_atsuko.run("tfn", "mosi", out=out, **common)
    (folder,) = (out / "runs").glob(".*.partial")
    return folder, json.loads((folder / "run.json").read_text())


@pytest.mark.parametrize("made_by", ["an-older-toolkit", "today"])
def test_a_dropped_text_partial_folder_of_an_older_version_is_not_resumed(tmp_path, caplog, made_by):
    """A drop=T run interrupted under an older toolkit left a .partial folder whose run.json names only its
    identity, "drop=T" as today's. Before, --resume continued it: its first epoch had trained on the older
    zeroing, the rest on today's, and its record claimed today's drop=T. Like its record would be, it is
    `drop=T,text_drop=older` now: not resumed (said in a warning), a fresh run trains; today's folder resumes."""
    assert folder_condition_key("missing_rate=0.3,drop=T,modalities=TA", None) == \
        "missing_rate=0.3,drop=T,text_drop=older,modalities=TA"
    assert folder_condition_key("drop=T", {"text_rows": "all"}) == "drop=T"
    assert folder_condition_key("drop=A", None) == "drop=A"
    common = dict(seeds=[1111], synthetic=True, preset="small", max_epochs=2, quiet=True,
                  conditions=[make_condition(0.0, "T")])
    out = tmp_path / "results"
    folder, run_json = _cut_in_epoch_2(out, common)
    assert run_json["identity"][-1] == "drop=T" and run_json["condition"]["text_rows"] == "all"
    if made_by == "an-older-toolkit":
        del run_json["condition"]                               # as an older toolkit wrote it
        (folder / "run.json").write_text(json.dumps(run_json))
    with caplog.at_level(logging.WARNING, logger="mmsa_atsuko"):
        (record,) = mmsa_atsuko.run("tfn", "mosi", out=out, resume=True, **common)
    log = (out / "runs" / record["run_id"] / "train.log").read_text()
    if made_by == "today":
        assert record["run_id"] == folder.name[1:-len(".partial")] and "resumed after epoch 1" in log
        return
    assert record["run_id"] != folder.name[1:-len(".partial")] and "resumed" not in log and folder.is_dir()
    assert f"not resumed: {folder} was left by an older toolkit's --drop-modality T" in caplog.text
    (fresh,) = mmsa_atsuko.run("tfn", "mosi", out=tmp_path / "fresh", **common)
    assert record["metrics"] == fresh["metrics"] and record["condition"]["text_rows"] == "all"


def _glove_split(n=400, length=7, dim=300):
    """A split of GloVe-style text (300-d word vectors, no `text_bert`): every sample `length` real words, so
    position 0 and position length-1 are words like the others."""
    g = torch.Generator().manual_seed(3)
    text = torch.rand(n, length, dim, generator=g) + 0.1              # no all-zero row: every row a real word
    other = {m: torch.rand(n, 4, 2, generator=g) + 0.1 for m in ("audio", "vision")}
    tensors = {"text": text, **other, "label": torch.zeros(n)}
    for m, x in (("text", text), *other.items()):
        tensors[f"{m}_lengths"] = torch.full((n,), x.shape[1], dtype=torch.long)
        tensors[f"{m}_mask"] = torch.ones(n, x.shape[1], dtype=torch.bool)
    return tensors


def _draws_by_the_readme(data_id: str, split: str, modality: str, shape) -> np.ndarray:
    """The uniform draws as the README states them, written out here: numpy's default_rng seeded with the first
    8 bytes (little-endian) of sha256("<data id>|<split>|<modality>")."""
    import hashlib
    digest = hashlib.sha256(f"{data_id}|{split}|{modality}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little")).random(shape)


def test_glove_text_loses_its_first_and_last_words_as_often_as_the_others():
    """GloVe text has no [CLS] or [SEP]: its first and last rows are words, and the missing rate must reach them
    (they were spared as if they were BERT's). BERT-token text (with `text_bert`) still spares both."""
    before, rate = _glove_split(), 0.5
    n, length = before["text_lengths"].shape[0], before["text"].shape[1]
    after = condition_tensors(before, data_id="sha256:glove", split="train", condition=make_condition(rate))
    zeroed = (after["text"] == 0).all(dim=2)
    expected = torch.from_numpy(_draws_by_the_readme("sha256:glove", "train", "text", (n, length)) < rate)
    assert torch.equal(zeroed, expected)
    # about half of 400 first words and of 400 last words are missing (it was none of either)
    assert 150 < int(zeroed[:, 0].sum()) < 250 and 150 < int(zeroed[:, -1].sum()) < 250
    assert torch.equal(after["text"][~zeroed], before["text"][~zeroed])

    ids = torch.randint(1000, 2000, (n, length), generator=torch.Generator().manual_seed(4))
    bert = {**before, "text_bert": torch.stack([ids, torch.ones_like(ids), torch.zeros_like(ids)], dim=1)}
    after = condition_tensors(bert, data_id="sha256:glove", split="train", condition=make_condition(rate))
    inner = expected.clone()
    inner[:, 0] = inner[:, -1] = False                                 # [CLS] and [SEP] spared, the rest as above
    assert torch.equal((after["text"] == 0).all(dim=2), inner)
    assert torch.equal(after["text_bert"][:, 0] == UNK_ID, inner)


def test_a_missing_rate_run_stored_by_an_older_version_is_a_condition_of_its_own(tmp_path):
    """Records written before the rule above carry no `text_spared` mark and spared the first and last row of every
    text, GloVe's words too: they are `missing_rate=R,text_missing=older`, never skipped as recorded for, nor averaged
    with, today's runs. Their data is rebuilt as they had it: that rule is known (BERT text: the same as today's)."""
    run = {"model": "tfn", "dataset": "mosi", "aligned": False, "seed": 1, "config_hash": "h", "data": "d"}
    older = {**run, "condition": {"missing_rate": 0.3, "drop_modality": None, "modalities": "TAV"}}
    today = make_condition(0.3)
    assert identity({**run, "condition": today.as_dict()}) == run_identity(*run.values(), "missing_rate=0.3")
    assert identity(older) == run_identity(*run.values(), "missing_rate=0.3,text_missing=older")
    # No text masked at the rate, no rule changed: these keep their identity without the mark.
    for unchanged in (make_condition(0.3, "T"), make_condition(0.3, modalities="AV"), make_condition(0.0, "A")):
        stored = {k: v for k, v in unchanged.as_dict().items() if k != "text_spared"}
        assert "text_spared" not in unchanged.as_dict() and condition_of({**run, "condition": stored}) == unchanged
    assert condition_of({**run, "condition": make_condition(0.3, "V").as_dict()}) == make_condition(0.3, "V")

    # Data known to be BERT text, where the older rule spared what today's does, keeps its identity: synthetic
    # data, and MMSA's published file (its checksum from configs/datasets.yaml, read here from the YAML itself).
    published = yaml.safe_load((ROOT / "configs" / "datasets.yaml").read_text())["datasets"]["mosi"]["sha256"]["unaligned"]
    for data in ("synthetic:standard", f"sha256:{published}"):
        assert condition_of({**older, "data": data}) == today
    assert condition_of({**older, "data": f"sha256:{published}", "aligned": True}).older_text_missing

    rebuilt = condition_tensors(_glove_split(), data_id="sha256:glove", split="train",
                                condition=condition_of(older))
    assert not (rebuilt["text"][:, [0, -1]] == 0).all(dim=2).any()    # the older rule: ends spared

    # End to end: an older run on synthetic data (BERT text) is the run today's would be, so it is skipped as
    # recorded; the same record on a file of unknown text is a condition of its own.
    common = dict(seeds=[1111], synthetic=True, preset="small", max_epochs=1, quiet=True, out=tmp_path)
    first = mmsa_atsuko.run("tfn", "mosi", conditions=[today], **common)[0]
    store = tmp_path / "runs.jsonl"
    store.write_text(store.read_text().replace(', "text_spared": "bert_cls_sep"', ""))   # as an older toolkit wrote it
    assert mmsa_atsuko.run("tfn", "mosi", conditions=[today], **common)[0]["run_id"] == first["run_id"]
    assert len(store.read_text().splitlines()) == 1
    assert not load_run(tmp_path, first["run_id"]).data.spec.condition.older_text_missing
    unknown = {**json.loads(store.read_text()), "data": "sha256:" + "0" * 64}
    assert condition_of(unknown).key() == "missing_rate=0.3,text_missing=older"


@pytest.mark.parametrize("data_kind,made_by", [("synthetic", "an-older-toolkit"), ("unknown", "an-older-toolkit"),
                                               ("unknown", "today")])
def test_a_missing_rate_partial_folder_is_read_as_its_record_would_be(tmp_path, caplog, data_kind, made_by):
    """A missing-rate run interrupted under an older toolkit left a .partial folder whose run.json has no
    text_spared mark. Its folder was read as today's `missing_rate=R` whatever its data, while its record would be
    `missing_rate=R,text_missing=older` on a file not known to be BERT text: --resume continued it under today's
    rule after epochs under the older one, and its record claimed today's. On synthetic data (BERT text, where
    both rules spare the same rows) it is today's run, and resumes, as its record is skipped as recorded."""
    import pickle

    from mmsa_atsuko.data.stamp import STAMP_KEY
    from mmsa_atsuko.data.synthetic import write_synthetic
    published = yaml.safe_load((ROOT / "configs" / "datasets.yaml").read_text())["datasets"]["mosi"]["sha256"]["unaligned"]
    unknown = "sha256:" + "0" * 64
    assert folder_condition_key("missing_rate=0.3", None, data=unknown, dataset="mosi") == \
        "missing_rate=0.3,text_missing=older"
    assert folder_condition_key("missing_rate=0.3", {"text_spared": "bert_cls_sep"}, data=unknown) == "missing_rate=0.3"
    for known in ("synthetic:mosi-small-unaligned-seed0-v2", f"sha256:{published}"):
        assert folder_condition_key("missing_rate=0.3", None, data=known, dataset="mosi") == "missing_rate=0.3"
    assert folder_condition_key("missing_rate=0.3", None, data=f"sha256:{published}", dataset="mosi",
                                aligned=True) == "missing_rate=0.3,text_missing=older"     # another file's checksum
    for kept in ("missing_rate=0.3,modalities=AV", "missing_rate=0.3,text_missing=older"):    # no text masked; marked
        assert folder_condition_key(kept, None, data=unknown) == kept
    assert folder_condition_key("missing_rate=0.3,drop=T", None, data=unknown) == "missing_rate=0.3,drop=T,text_drop=older"

    common = dict(seeds=[1111], preset="small", max_epochs=2, quiet=True, conditions=[make_condition(0.3)])
    if data_kind == "synthetic":
        common["synthetic"] = True
    else:              # the generator's file without its stamp: named by its sha256, text of no known kind
        path = write_synthetic("mosi", tmp_path / "unstamped.pkl")
        with open(path, "rb") as f:
            content = pickle.load(f)
        del content[STAMP_KEY]
        path.write_bytes(pickle.dumps(content, protocol=4))
        common["feature_path"] = path
    out = tmp_path / "results"
    folder, run_json = _cut_in_epoch_2(out, common)
    assert run_json["identity"][-1] == "missing_rate=0.3" and run_json["condition"]["text_spared"] == "bert_cls_sep"
    assert run_json["identity"][5].startswith("synthetic:" if data_kind == "synthetic" else "sha256:")
    if made_by == "an-older-toolkit":
        del run_json["condition"]["text_spared"]                   # as an older toolkit wrote it
        (folder / "run.json").write_text(json.dumps(run_json))
    with caplog.at_level(logging.WARNING, logger="mmsa_atsuko"):
        (record,) = mmsa_atsuko.run("tfn", "mosi", out=out, resume=True, **common)
    log = (out / "runs" / record["run_id"] / "train.log").read_text()
    if data_kind == "synthetic" or made_by == "today":
        assert record["run_id"] == folder.name[1:-len(".partial")] and "resumed after epoch 1" in log
        assert "not resumed" not in caplog.text
        return
    assert record["run_id"] != folder.name[1:-len(".partial")] and "resumed" not in log and folder.is_dir()
    assert f"not resumed: {folder} was left by an older toolkit's --missing-rate, which spared the first" in caplog.text
    assert record["condition"]["text_spared"] == "bert_cls_sep" and condition_of(record) == make_condition(0.3)


def test_an_absent_modality_is_the_same_empty_input_for_every_sample(data):
    t = data.under(make_condition(modalities="T")).valid.tensors
    for m in ("audio", "vision"):
        assert (t[m] == 0).all() and (t[f"{m}_lengths"] == 1).all()
        assert t[f"{m}_mask"][:, 0].all() and not t[f"{m}_mask"][:, 1:].any()
    a = data.under(make_condition(modalities="AV")).valid.tensors
    ids = data.valid.tensors["text_bert"][:, 0]
    last = ids.gather(1, (data.valid.tensors["text_lengths"] - 1)[:, None])[:, 0]
    assert torch.equal(a["text_bert"][:, 0, 0], ids[:, 0]) and torch.equal(a["text_bert"][:, 0, 1], last)
    assert (a["text_bert"][:, 0, 2:] == 0).all() and (a["text_bert"][:, 1].sum(1) == 2).all()
    assert (a["text"] == 0).all() and (a["text_lengths"] == 2).all()


def _other_audio_and_vision(data: Dataset, seed: int) -> Dataset:
    """`data` with different audio and vision content and lengths; text and labels unchanged."""
    g = torch.Generator().manual_seed(seed)

    def swap(split):
        tensors = dict(split.tensors)
        for m in ("audio", "vision"):
            n, length, dim = tensors[m].shape
            lengths = torch.randint(1, length + 1, (n,), generator=g)
            mask = torch.arange(length)[None, :] < lengths[:, None]
            tensors.update({m: torch.randn(n, length, dim, generator=g) * 5 * mask[..., None],
                            f"{m}_lengths": lengths, f"{m}_mask": mask})
        return Split(split.name, tensors, split.ids)
    return Dataset(data.spec, swap(data.train), swap(data.valid), swap(data.test))


SUBSET_MODELS = [m for m in list_models() if get_model_class(m).registry_meta.get("modality_subsets")]


@pytest.mark.parametrize("name", SUBSET_MODELS)
def test_a_model_fed_only_text_gives_the_same_output_whatever_audio_and_vision_hold(name, data, tiny_bert):
    other = _other_audio_and_vision(data, 3)
    assert not torch.equal(other.test.tensors["audio"], data.test.tensors["audio"])
    only_t = make_condition(modalities="T")
    config = load_config(name, "mosi", preset="small", overrides=[("pretrained", tiny_bert)])
    torch.manual_seed(0)
    model = build_model(name, config, data.spec).eval()
    index = torch.arange(len(data.test))
    with torch.no_grad():
        first = model(data.under(only_t).test.batch(index))["pred"]
        second = model(other.under(only_t).test.batch(index))["pred"]
        full = model(other.test.batch(index))["pred"]
    assert torch.equal(first, second)
    assert not torch.equal(first, full)          # the subset did change what the model saw


def test_subsets_are_refused_with_one_line_for_a_model_that_needs_every_modality(tmp_path):
    with pytest.raises(UsageError, match="atsuko cannot run on a modality subset"):
        mmsa_atsuko.run("atsuko", "mosi", seeds=[1], synthetic=True, preset="small", out=tmp_path,
                        conditions=[make_condition(modalities="TA")])
    assert not (tmp_path / "runs.jsonl").exists()


def test_bad_conditions_are_usage_errors():
    for kwargs in ({"missing_rate": 1.0}, {"missing_rate": -0.1}, {"drop_modality": "X"}, {"modalities": "TT"},
                   {"modalities": "TAVX"}, {"drop_modality": "A", "modalities": "TV"}):
        with pytest.raises(UsageError):
            make_condition(**kwargs)
    assert make_condition(modalities="vt").modalities == "TV"
    assert conditions([0, 0.5], None, ["TAV", "T"]) == [Condition(0.0), Condition(0.5), Condition(0.0, None, "T"),
                                                        Condition(0.5, None, "T")]


def test_the_plain_condition_keeps_old_identities_and_records_carry_the_condition():
    old = {"model": "tfn", "dataset": "mosi", "aligned": False, "seed": 1, "config_hash": "h", "data": "d"}
    assert identity(old) == ("tfn", "mosi", False, 1, "h", "d") == run_identity("tfn", "mosi", False, 1, "h", "d")
    assert identity({**old, "condition": PLAIN.as_dict()}) == identity(old)
    masked = {**old, "condition": make_condition(0.3, "V").as_dict()}
    assert identity(masked) == ("tfn", "mosi", False, 1, "h", "d", "missing_rate=0.3,drop=V")


def test_rate_zero_equals_the_plain_run_and_a_condition_is_recorded_and_reproducible(tmp_path):
    common = dict(seeds=[1111], synthetic=True, preset="small", max_epochs=2, quiet=True)
    plain = mmsa_atsuko.run("tfn", "mosi", out=tmp_path / "plain", **common)[0]
    zero, half = mmsa_atsuko.run("tfn", "mosi", out=tmp_path / "rates", conditions=conditions([0.0, 0.5]), **common)
    assert zero["metrics"] == plain["metrics"] and identity(zero) == identity(plain)
    assert half["condition"] == {"missing_rate": 0.5, "drop_modality": None, "modalities": "TAV",
                                 "text_spared": "bert_cls_sep"}
    assert identity(half) == identity(plain) + ("missing_rate=0.5",)
    assert half["metrics"] != plain["metrics"]
    again = mmsa_atsuko.run("tfn", "mosi", out=tmp_path / "again", conditions=[make_condition(0.5)], **common)[0]
    assert again["metrics"] == half["metrics"]
    lines = []
    skipped = mmsa_atsuko.run("tfn", "mosi", out=tmp_path / "rates", conditions=[make_condition(0.5)],
                              echo=lines.append, **common)[0]
    assert skipped["run_id"] == half["run_id"] and "[missing_rate=0.5]" in lines[0]


def _record(model, rate, seed, mae, data="sha256:" + "e" * 64, chash="h1", drop=None):
    return {"run_id": f"{model}-{rate}-{seed}", "status": "ok", "model": model, "dataset": "mosi", "aligned": False,
            "seed": seed, "config_hash": chash, "config": {}, "data": data, "metrics": {"MAE": mae},
            "condition": make_condition(rate, drop).as_dict()}


def test_the_missing_rate_table_against_hand_computed_means_and_areas(tmp_path):
    records = [_record("tfn", 0.0, 1, 1.0), _record("tfn", 0.0, 2, 1.2),
               _record("tfn", 0.2, 1, 1.3), _record("tfn", 0.2, 2, 1.5),
               _record("tfn", 0.6, 1, 2.0), _record("tfn", 0.6, 2, 2.2),
               _record("lmf", 0.0, 1, 0.9), _record("lmf", 0.2, 1, 1.0), _record("lmf", 0.6, 1, 1.4),
               _record("lmf", 0.2, 1, 9.9, drop="A")]
    (table,) = missing_rate_tables(records)
    assert table.metric == "MAE" and table.rates == [0.0, 0.2, 0.6]
    curves = {c.label: c for c in table.curves}
    assert set(curves) == {"tfn", "lmf", "lmf [drop=A]"}
    tfn = curves["tfn"]
    assert [tfn.cells[r].mean for r in table.rates] == pytest.approx([1.1, 1.4, 2.1])
    assert tfn.cells[0.0].std == pytest.approx(math.sqrt(0.02))
    # (0.2 * (1.1 + 1.4) / 2 + 0.4 * (1.4 + 2.1) / 2) / 0.6 = (0.25 + 0.7) / 0.6
    assert tfn.auc == pytest.approx(0.95 / 0.6)
    # (0.2 * 1.9 / 2 + 0.4 * 2.4 / 2) / 0.6 = (0.19 + 0.48) / 0.6
    assert curves["lmf"].auc == pytest.approx(0.67 / 0.6)
    assert math.isnan(curves["lmf [drop=A]"].auc)
    assert [c.label for c in table.curves] == ["lmf", "tfn", "lmf [drop=A]"]    # lower MAE first, no AUC last
    import json
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    text = leaderboard(tmp_path, by="missing_rate")
    assert "| tfn | 1.1000 ± 0.1414 (n=2) | 1.4000 ± 0.1414 (n=2) | 2.1000 ± 0.1414 (n=2) | 1.5833 |" in text
    csv = leaderboard(tmp_path, by="missing_rate", fmt="csv")
    assert csv.splitlines()[0].startswith("dataset,aligned,data,data_kind,metric,model,config_hash,missing_rate")
    with pytest.raises(UsageError):
        leaderboard(tmp_path, by="missing_rate", fmt="latex")


def test_a_percent_metric_curve_reads_like_its_leaderboard_cell(tmp_path):
    """Curves printed 0.5500 for an accuracy the leaderboard prints as 55.00: the curve table now uses the
    leaderboard's display units (cells.number_text), and says so."""
    import json
    records = []
    for rate, accs in ((0.0, (0.50, 0.60)), (0.5, (0.40, 0.50))):
        for seed, acc in enumerate(accs, 1):
            r = _record("tfn", rate, seed, 1.0)
            r["metrics"]["Has0_acc_2"] = acc
            records.append(r)
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    text = leaderboard(tmp_path, by="missing_rate", key_metric="Has0_acc_2")
    # means 55 % and 45 %, std sqrt(((5)^2 + (5)^2) / 1) = 7.07 points; AUC (55 + 45) / 2 over a span of 0.5
    assert "| tfn | 55.00 ± 7.07 (n=2) | 45.00 ± 7.07 (n=2) | 50.00 |" in text
    assert "Test Has0_acc_2 in % (higher is better)" in text
    assert "55.00 ± 7.07" in leaderboard(tmp_path, key_metric="Has0_acc_2")      # the same cell, same text
    assert "Test MAE (lower is better)" in leaderboard(tmp_path, by="missing_rate")     # MAE: as stored, no %


def test_a_missing_rate_figure_says_synthetic_once(tmp_path):
    """The figure's title held the table's heading ("synthetic data (synthetic:...)") and then the
    figure's own tag: "synthetic data" twice. The table keeps its heading; the figure its tag."""
    import json

    from mmsa_atsuko.cli import main
    from mmsa_atsuko.plots.common import pyplot
    data = "synthetic:standard-abc"
    records = [_record(m, rate, seed, 1.0 + rate + seed / 10, data=data) for m in ("tfn", "lmf")
               for rate in (0.0, 0.5) for seed in (1, 2)]
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    titles = []
    plt = pyplot()
    real_savefig = plt.Figure.savefig

    def savefig(fig, *args, **kwargs):
        titles.append(fig._suptitle.get_text())
        return real_savefig(fig, *args, **kwargs)
    plt.Figure.savefig = savefig
    try:
        assert main(["leaderboard", "--results", str(tmp_path), "--by", "missing_rate",
                     "--figures", str(tmp_path / "figs")]) == 0
    finally:
        plt.Figure.savefig = real_savefig
    assert titles and all(t.count("synthetic data") == 1 for t in titles), titles
    assert "### mosi, unaligned: synthetic data (synthetic:standard-abc), MAE against the missing rate" in \
        leaderboard(tmp_path, by="missing_rate")


def test_leaderboard_rows_are_per_condition(tmp_path):
    import json
    records = [_record("tfn", 0.0, 1, 1.0), _record("tfn", 0.0, 2, 1.2), _record("tfn", 0.5, 1, 2.0),
               _record("tfn", 0.5, 2, 2.2)]
    records = [{**r, "metrics": {k: 0.5 for k in ("Has0_acc_2", "Has0_F1_score", "Non0_acc_2", "Non0_F1_score",
                                                   "Mult_acc_5", "Mult_acc_7", "Corr")} | r["metrics"]}
               for r in records]
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    text = leaderboard(tmp_path)
    assert "| tfn | 2 |" in text and "| tfn [missing_rate=0.5] | 2 |" in text


def test_sweep_files_and_lists_take_the_protocol_axes(tmp_path):
    from mmsa_atsuko.sweep import expand
    path = tmp_path / "sweep.yaml"
    path.write_text("missing_rate: [0.0, 0.3]\nexperiments:\n  - models: [tfn, lmf]\n    datasets: mosi\n"
                    "  - name: unimodal\n    models: tfn\n    datasets: mosi\n    modalities: [T, A]\n"
                    "    missing_rate: 0\n")
    got = [(name, s.model, s.condition.key()) for name, s, _ in expand(path)]
    assert got == [("#1", "tfn", ""), ("#1", "lmf", ""), ("#1", "tfn", "missing_rate=0.3"),
                   ("#1", "lmf", "missing_rate=0.3"), ("unimodal", "tfn", "modalities=T"),
                   ("unimodal", "tfn", "modalities=A")]
    cli = expand(models=["tfn"], datasets=["mosi"], missing_rates=[0.5], drop_modality=["V"])
    assert {s.condition.key() for _, s, _ in cli} == {"missing_rate=0.5,drop=V"}


@pytest.mark.parametrize("keys, line", [
    ("missing_rate: 1.5", "{where}: missing_rate must be in [0, 1), got 1.5 (to remove a whole modality use "
                          "--drop-modality T|A|V)"),
    ("drop_modality: V\n    modalities: TA", "{where}: drop_modality V drops a modality that modalities TA already "
                                             "leaves out"),
    ("drop_modality: X", "{where}: drop_modality must be T, A or V, got 'X'"),
])
def test_a_bad_protocol_value_in_a_sweep_file_names_the_file_experiment_and_key(tmp_path, keys, line):
    """It was blamed on --missing-rate / --drop-modality / --modalities, options the command line never gave."""
    from mmsa_atsuko.sweep import expand
    path = tmp_path / "sweep.yaml"
    path.write_text(f"experiments:\n  - models: [tfn]\n    datasets: [mosi]\n    {keys}\n")
    with pytest.raises(UsageError) as error:
        expand(path)
    assert str(error.value) == line.format(where=f"{path} experiment 1")
    with pytest.raises(UsageError) as error:          # the command line's value is its option's
        expand(models=["tfn"], datasets=["mosi"], missing_rates=[2])
    assert str(error.value).startswith("--missing-rate must be in [0, 1), got 2")


def test_a_sweep_file_takes_one_missing_rate_written_as_a_decimal(tmp_path):
    """`missing_rate: 0.3` in a sweep file (the README: 'a value or a list') was refused as 'missing_rate must be
    a name or a non-empty list, got 0.3': only strings, ints and bools counted as one value, so 0 worked and 0.3
    did not."""
    from mmsa_atsuko.sweep import expand
    path = tmp_path / "sweep.yaml"
    path.write_text("experiments:\n  - models: tfn\n    datasets: mosi\n    missing_rate: 0.3\n")
    assert [s.condition.key() for _, s, _ in expand(path)] == ["missing_rate=0.3"]
    path.write_text("experiments:\n  - models: tfn\n    datasets: mosi\n    missing_rate: []\n")
    with pytest.raises(UsageError) as e:
        expand(path)
    assert str(e.value) == f"{path} experiment 1: missing_rate must be a value or a non-empty list, got []"


def test_jobs_under_one_condition_share_one_masked_copy():
    from mmsa_atsuko.api.jobs import prepare_job
    loaded = {}

    def prepare(model, condition):
        return prepare_job(model, "mosi", aligned=False, data_root=None, feature_path=None, synthetic=True,
                           synthetic_size="small", preset="small", overrides=[], max_epochs=None, loaded=loaded,
                           condition=condition)
    tfn, lmf = prepare("tfn", make_condition(0.3)), prepare("lmf", make_condition(0.3))
    plain = prepare("tfn", PLAIN)
    assert tfn.data.train.tensors["audio"] is lmf.data.train.tensors["audio"]
    assert tfn.data.spec.condition == make_condition(0.3) and plain.data.spec.condition == PLAIN
    assert not torch.equal(tfn.data.train.tensors["audio"], plain.data.train.tensors["audio"])


def test_the_missing_rate_csv_on_stdout_is_the_csv_alone(tmp_path, capsys):
    """`leaderboard --by missing_rate --format csv > curves.csv` also got the figure's 'wrote ...' lines,
    which pandas then read as rows; they now go to stderr while the table is on stdout."""
    pytest.importorskip("matplotlib")
    import io

    import pandas as pd

    import json

    from mmsa_atsuko.cli import main
    records = [_record("tfn", 0.0, 1, 1.0), _record("tfn", 0.0, 2, 1.2), _record("tfn", 0.5, 1, 1.4),
               _record("tfn", 0.5, 2, 1.6)]
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert main(["leaderboard", "--results", str(tmp_path), "--by", "missing_rate", "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    table = pd.read_csv(io.StringIO(out))
    assert list(table.missing_rate) == [0.0, 0.5] and "wrote" not in out
    assert err.count("wrote ") == 3                     # the figure's PNG, PDF and CSV


def test_leaderboard_by_missing_rate_without_missing_rate_runs_is_one_line_and_no_files(tmp_path, capsys):
    """On a store of plain runs alone `leaderboard --by missing_rate` exited 0 and wrote single-point figures
    with AUC "–" (found in a new user's trial): one line and exit 2, as an empty selection, and no files. A
    dataset with missing-rate runs is still drawn beside a plain-only one, which is left out."""
    import json

    from mmsa_atsuko.cli import main
    plain = [_record(m, 0.0, seed, 1.0 + seed / 10) for m in ("tfn", "lmf") for seed in (1, 2)]
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in plain))
    for argv in ([], ["--figures", str(tmp_path / "figs")], ["--format", "csv"]):
        assert main(["leaderboard", "--results", str(tmp_path), "--by", "missing_rate", *argv]) == 2
        printed, err = capsys.readouterr()
        assert printed == "" and err == (f"error: no missing-rate runs in {tmp_path / 'runs.jsonl'}: --by "
                                         f"missing_rate draws runs trained with run.py --missing-rate R (or a "
                                         f"sweep's missing_rate axis)\n")
    assert not (tmp_path / "figs").exists()
    masked = [{**r, "run_id": "sims-" + r["run_id"], "dataset": "sims", "data": "synthetic:sims"} for r in
              (_record("tfn", 0.0, 1, 1.0), _record("tfn", 0.5, 1, 2.0))]
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in plain + masked))
    text = leaderboard(tmp_path, by="missing_rate")
    assert "### sims" in text and "### mosi" not in text
