"""api._prepare / api.run: what a job holds of its data."""
import gc
import weakref

import mmsa_atsuko
from mmsa_atsuko import api


def _prepare(model, loaded, **overrides):
    return api._prepare(model, "mosi", aligned=False, data_root=None, feature_path=None, synthetic=True,
                        synthetic_size="small", preset="small", overrides=list(overrides.items()),
                        max_epochs=None, loaded=loaded)


def test_a_bert_model_gets_no_text_features_and_a_feature_model_keeps_them():
    loaded = {}
    misa = _prepare("misa", loaded)
    tfn = _prepare("tfn", loaded)
    full = next(iter(loaded.values()))
    assert full.spec.has_text_features and "text" in full.train.tensors
    for split in misa.data.splits().values():
        assert "text" not in split.tensors and "text_bert" in split.tensors
    assert not misa.data.spec.has_text_features
    # every other tensor is the loaded one, shared rather than copied
    assert misa.data.train.tensors["audio"] is full.train.tensors["audio"]
    assert tfn.data is full


def test_text_features_no_job_reads_are_freed():
    loaded = {}
    job = _prepare("self_mm", loaded)
    text = weakref.ref(next(iter(loaded.values())).train.tensors["text"])
    loaded.clear()
    gc.collect()
    assert text() is None
    assert job.data.train.tensors["audio"].shape[0] == len(job.data.train)


def test_bert_and_feature_models_on_one_dataset_run_in_one_call(tmp_path):
    records = mmsa_atsuko.run(["misa", "tfn"], "mosi", seeds=[1], synthetic=True, preset="small",
                              max_epochs=1, out=tmp_path, quiet=True)
    assert [r["model"] for r in records] == ["misa", "tfn"]
    assert all(r["status"] == "ok" for r in records)
