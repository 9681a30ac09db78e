"""extract -> train -> predict end to end; model.json provenance; predict's refusals (issue 19)."""
import dataclasses
import hashlib
import json
import os
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_dataset, with_text_bert, write_run_folder
from easydict import EasyDict
from media_fixtures import CLIPS, require_extract, write_corpus

from mmsa_atsuko.cli import main
from mmsa_atsuko.config import load_config
from mmsa_atsuko.data.extract import EXTRACTOR_KEY, ExtractConfig, extract
from mmsa_atsuko.data.tiny_bert import write_tiny_bert
from mmsa_atsuko.predict.checkpoint import load_checkpoint
from mmsa_atsuko.registry import build_model, list_models
from mmsa_atsuko.results import read_records
from mmsa_atsuko.training.checked_model import _stored_values
from mmsa_atsuko.training.model_card import spec_from_card

SMALL = ExtractConfig(text_len=12, audio_len=40, vision_len=15)
QUIET = lambda _: None  # noqa: E731


def _train(features, results, model="tfn", *extra) -> dict:
    assert main(["-m", model, "-d", "mosi", "--feature-path", str(features), "--max-epochs", "1", "-s", "1111",
                 "--preset", "small", "--out", str(results), "--quiet", *extra]) == 0
    return read_records(results)[-1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    require_extract()
    root = tmp_path_factory.mktemp("predict")
    videos, transcripts = write_corpus(root)
    bert = write_tiny_bert(root / "bert")
    features = root / "features.pkl"
    extract(videos, transcripts, features, bert=bert, config=SMALL, echo=QUIET)
    record = _train(features, root / "results")
    return {"root": root, "videos": videos, "transcripts": transcripts, "bert": bert, "features": features,
            "record": record, "run_dir": root / "results" / "runs" / record["run_id"]}


def _predict(capsys, *args) -> tuple[int, str]:
    code = main(["predict", *map(str, args)])
    return code, capsys.readouterr().err


def test_a_run_writes_model_json_and_weights_only_best_pt(trained):
    run_dir, features = trained["run_dir"], trained["features"]
    card = json.loads((run_dir / "model.json").read_text())
    with open(features, "rb") as f:
        meta = pickle.load(f)[EXTRACTOR_KEY]
    assert card["model"] == "tfn" and card["task"] == "regression" and card["label_range"] == [-3.0, 3.0]
    assert card["feature_dims"] == {"text": 768, "audio": 25, "vision": 74}
    assert card["seq_lens"] == {"text": 12, "audio": 40, "vision": 15}
    assert card["data_sha256"] == hashlib.sha256(features.read_bytes()).hexdigest()
    assert card["extractor"]["config_hash"] == meta["config_hash"]
    assert card["config"]["max_epochs"] == 1
    # The run record carries the extractor too.
    assert trained["record"]["extractor"]["config_hash"] == meta["config_hash"]
    state = torch.load(run_dir / "best.pt", weights_only=True)
    assert state and all(torch.is_tensor(v) for v in state.values())


def test_predict_by_run_id_covers_every_split_and_matches_the_runs_test_predictions(trained, capsys, tmp_path):
    code, err = _predict(capsys, "--run", trained["record"]["run_id"], "--results", trained["root"] / "results",
                         "--features", trained["features"], "--out", tmp_path)
    assert code == 0, err
    table = pd.read_csv(tmp_path / "predictions.csv")
    assert list(table.columns) == ["id", "split", "pred", "label"]
    assert table.split.tolist() == ["train"] * 5 + ["valid"] * 2 + ["test"]
    assert sorted(table.id) == sorted(CLIPS)
    assert table.label.tolist() == [CLIPS[i][2] for i in table.id]
    # predictions.json says where they came from: worked out from the fixture, not read from the code.
    provenance = json.loads((tmp_path / "predictions.json").read_text())
    sha = hashlib.sha256(trained["features"].read_bytes()).hexdigest()
    assert {k: provenance[k] for k in ("run_id", "run_folder", "model", "dataset", "trained_on", "features",
                                       "features_sha256", "samples")} == {
        "run_id": trained["record"]["run_id"], "run_folder": str(trained["run_dir"].resolve()), "model": "tfn",
        "dataset": "mosi", "trained_on": f"sha256:{sha}", "features": str(trained["features"].resolve()),
        "features_sha256": sha, "samples": {s: sum(c[3] == s for c in CLIPS.values()) for s in ("train", "valid", "test")}}
    assert provenance["features_data"] == f"sha256:{sha}"          # an extracted file is real data
    # The trainer's own test predictions, from the same weights.
    trainer = pd.read_csv(trained["run_dir"] / "predictions_test.csv")
    test = table[table.split == "test"]
    assert test.id.tolist() == trainer.id.tolist()
    assert np.allclose(test.pred, trainer.pred, atol=1e-6)


def test_predict_from_videos_extracts_with_the_runs_settings(trained, capsys, tmp_path, monkeypatch):
    import mmsa_atsuko.predict.checkpoint as predict_module
    loads = []
    load = predict_module.load_checkpoint
    monkeypatch.setattr(predict_module, "load_checkpoint", lambda folder: loads.append(folder) or load(folder))
    _, unlabelled = write_corpus(trained["root"], labels=False, splits=False)
    code = main(["predict", "--checkpoint", str(trained["run_dir"]), "--videos", str(trained["videos"]),
                 "--transcripts", str(unlabelled), "--out", str(tmp_path), "--jobs", "2"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    # The last line counts what predictions.csv holds: it said only 'wrote .../predictions.csv', its skips scrolled by.
    assert captured.out.splitlines()[-1] == (f"wrote {tmp_path / 'predictions.csv'} (test {len(CLIPS)}; 2 skipped, "
                                             f"listed in {(tmp_path / 'features.skipped.txt').resolve()}) and "
                                             f"predictions.json")         # BROKEN and GHOST
    assert len(loads) == 1          # checked before extracting, then used to predict: read and built once
    table = pd.read_csv(tmp_path / "predictions.csv")
    assert list(table.columns) == ["id", "split", "pred"] and set(table.split) == {"test"}
    # predictions.json named only <out>/features.pkl: not the videos, the transcripts, what was skipped, nor the code.
    provenance = json.loads((tmp_path / "predictions.json").read_text())
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parents[1], capture_output=True,
                          text=True).stdout.strip()
    assert provenance["git_commit"] in (head, f"{head}+dirty")
    assert {k: provenance[k] for k in ("videos", "transcripts", "transcripts_sha256", "skipped", "skipped_list")} == {
        "videos": str(trained["videos"].resolve()), "transcripts": str(unlabelled.resolve()),
        "transcripts_sha256": hashlib.sha256(unlabelled.read_bytes()).hexdigest(),
        "skipped": 2, "skipped_list": str((tmp_path / "features.skipped.txt").resolve())}   # BROKEN and GHOST
    code, _ = _predict(capsys, "--checkpoint", trained["run_dir"], "--features", trained["features"],
                       "--out", tmp_path / "from-features")
    assert "videos" not in json.loads((tmp_path / "from-features" / "predictions.json").read_text())
    known = pd.read_csv(tmp_path / "from-features" / "predictions.csv").set_index("id").pred
    assert np.allclose(table.pred, known[table.id].to_numpy(), atol=1e-6)


def test_the_python_api_returns_the_paths_it_did_before_the_provenance(trained, tmp_path):
    """README lists predict.predict_file as public: it returned predictions.csv's path, and then a (path, dict)
    pair, so `pd.read_csv(predict_file(...))` broke; predict.extract_for (the features' path) was no longer
    importable from predict. The CLI gets what predictions.json says another way."""
    from mmsa_atsuko.predict import extract_for, predict_file
    path = predict_file(trained["run_dir"], trained["features"], tmp_path / "p")
    assert path == tmp_path / "p" / "predictions.csv"
    assert sorted(pd.read_csv(path).id) == sorted(CLIPS)
    _, unlabelled = write_corpus(trained["root"], labels=False, splits=False)
    features = extract_for(trained["run_dir"], trained["videos"], unlabelled, tmp_path / "v", echo=QUIET)
    assert isinstance(features, Path) and features.resolve() == (tmp_path / "v" / "features.pkl").resolve()
    table = pd.read_csv(predict_file(trained["run_dir"], features, tmp_path / "v"))
    assert sorted(table.id) == sorted(CLIPS) and set(table.split) == {"test"}


def test_predict_from_videos_takes_the_clip_limit_of_extract(trained, capsys, tmp_path, monkeypatch):
    # A cache of its own: the clips are extracted afresh and refused by their headers, not taken from the cache
    # extract keeps in the user's (where a cached clip over the limit is skipped by its stored length).
    monkeypatch.setenv("MMSA_ATSUKO_CACHE", str(tmp_path.parent / f"{tmp_path.name}-cache"))
    _, unlabelled = write_corpus(trained["root"], labels=False, splits=False)
    code = main(["predict", "--checkpoint", str(trained["run_dir"]), "--videos", str(trained["videos"]),
                 "--transcripts", str(unlabelled), "--out", str(tmp_path), "--max-clip-seconds", "1"])
    captured = capsys.readouterr()
    assert code == 1 and len(captured.err.strip().splitlines()) == 1 and "could be extracted" in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.skipped.txt"]    # no empty cache folder
    # Every clip lasts 1.2 s (its header says so): skipped with extract's line, one for all (the report lists each).
    ids = sorted(CLIPS)
    assert (f"skipped {len(ids)} videos ({', '.join(ids[:3])}{', ...' if len(ids) > 3 else ''}): longer than the 1 s "
            f"limit of a clip (its header declares 1.2 s): cut it into utterances, or raise --max-clip-seconds"
            ) in captured.out
    assert not (tmp_path / "predictions.csv").exists()


def test_predict_refuses_other_dims(trained, capsys, tmp_path):
    other = tmp_path / "long.pkl"
    extract(trained["videos"], trained["transcripts"], other, bert=trained["bert"],
            config=dataclasses.replace(SMALL, vision_len=20), echo=QUIET)
    code, err = _predict(capsys, "--checkpoint", trained["run_dir"], "--features", other, "--out", tmp_path)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "vision is (length, dim) (20, 74), the checkpoint expects (15, 74)" in err
    assert not (tmp_path / "predictions.csv").exists()


def test_predict_refuses_another_extractor(trained, capsys, tmp_path):
    other = tmp_path / "fps.pkl"         # same shapes, other settings: only the extractor record differs
    extract(trained["videos"], trained["transcripts"], other, bert=trained["bert"],
            config=dataclasses.replace(SMALL, fps=8.0), echo=QUIET)
    code, err = _predict(capsys, "--checkpoint", trained["run_dir"], "--features", other, "--out", tmp_path)
    assert code == 2 and len(err.strip().splitlines()) == 1
    with open(other, "rb") as f:
        other_hash = pickle.load(f)[EXTRACTOR_KEY]["config_hash"]
    assert f"comes from mmsa_atsuko.extract v1, config {other_hash}" in err
    assert trained["record"]["extractor"]["config_hash"] in err


def test_ids_from_another_tokenizer_are_refused_by_training_and_by_predict(trained, capsys, tmp_path):
    """MulT reading text_bert through a BERT whose vocabulary is not the one the ids were made with:
    training on such a file ran, on one vocabulary's ids looked up in another's embeddings (MAE 1.862
    against 1.866 with the right BERT, in a user's trial); only predict refused the pairing."""
    from mmsa_atsuko.data.extract.text import tokenizer_identity
    chinese = write_tiny_bert(tmp_path / "bert-cn", language="cn")
    results = tmp_path / "results"
    argv = ["-m", "mult", "-d", "mosi", "--feature-path", str(trained["features"]), "--max-epochs", "1", "-s",
            "1111", "--preset", "small", "--out", str(results), "--quiet", "-c", "use_bert=true",
            "-c", f"pretrained={chinese}"]
    assert main(argv) == 2
    english, other = tokenizer_identity(trained["bert"]), tokenizer_identity(chinese)
    assert capsys.readouterr().err.strip() == (
        f"error: {trained['features']}: its text ids come from another tokenizer ({english['file']} of "
        f"{english['vocab_size']} tokens, sha256 {english['sha256'][:12]}) than the BERT {chinese} "
        f"({other['vocab_size']} tokens, sha256 {other['sha256'][:12]}): give -c pretrained= the BERT the file "
        f"was extracted with (extract --bert), or extract it again with this one")
    assert not results.exists()
    # Trained on ids of its own BERT, the model refuses the English file at predict time: the BERT is part
    # of the extractor's settings, so the file's extractor record is not the run's.
    own = tmp_path / "cn.pkl"
    extract(trained["videos"], trained["transcripts"], own, bert=chinese, config=SMALL, echo=QUIET)
    record = _train(own, results, "mult", "-c", "use_bert=true", "-c", f"pretrained={chinese}")
    run_dir = results / "runs" / record["run_id"]
    code, err = _predict(capsys, "--checkpoint", run_dir, "--features", trained["features"], "--out", tmp_path)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "use features from the same extractor settings" in err and not (tmp_path / "predictions.csv").exists()
    card = json.loads((run_dir / "model.json").read_text())
    assert card["tokenizer"]["vocab_size"] == len((chinese / "vocab.txt").read_text(encoding="utf-8").splitlines())


def test_predict_refuses_an_id_a_spreadsheet_would_run_as_a_formula(tmp_path, capsys):
    """predictions.csv starts each row with the feature file's id as it is: '=HYPERLINK(...)' there ran as a formula in
    a spreadsheet that opened it. The file is refused in one line, before anything is written."""
    from mmsa_atsuko.data.synthetic import write_synthetic
    write_run_folder(tmp_path / "run", "tfn", make_dataset(), load_config("tfn", "mosi", preset="small"))
    write_synthetic("mosi", tmp_path / "generated.pkl")
    with open(tmp_path / "generated.pkl", "rb") as f:
        data = pickle.load(f)               # the toolkit's own generated file
    data["valid"]["id"][3] = '=HYPERLINK("x")'
    (tmp_path / "f.pkl").write_bytes(pickle.dumps(data, protocol=4))
    code, err = _predict(capsys, "--checkpoint", tmp_path / "run", "--features", tmp_path / "f.pkl",
                         "--out", tmp_path / "out")
    assert (code, err) == (1, f"error: {tmp_path / 'f.pkl'}: split 'valid', key 'id', sample 3 has the id "
                              f"'=HYPERLINK(\"x\")', which starts with '=': a spreadsheet would run it as a formula in "
                              f"the CSVs that list ids, such as predictions.csv; give the sample another id in the "
                              f"file so that it starts with a letter or a digit (after '-' only letters, digits and "
                              f"_.$- are fine, as in MOSI's ids)\n")
    assert not (tmp_path / "out").exists()


def test_features_that_are_no_mintrec_folder_say_what_predict_takes(tmp_path, capsys):
    """A mintrec run's --features x.pkl ended "..., or run with --synthetic": predict has no such flag."""
    assert main(["-m", "tfn", "-d", "mintrec", "--synthetic", "--preset", "small", "--max-epochs", "1",
                 "-s", "1111", "--out", str(tmp_path / "results"), "--quiet"]) == 0
    record = read_records(tmp_path / "results")[-1]
    (tmp_path / "file.pkl").write_bytes(b"")
    os.mkfifo(tmp_path / "pipe")
    for features, what in ((tmp_path / "x.pkl", "not found"), (tmp_path / "file.pkl", "is a file, not a folder"),
                           (tmp_path / "pipe", "is a pipe, not a folder")):
        code, err = _predict(capsys, "--run", record["run_id"], "--results", tmp_path / "results",
                             "--features", features, "--out", tmp_path / "out")
        assert (code, err) == (1, f"error: --features {features} {what}: a mintrec run predicts on a MIntRec folder "
                                  f"holding train.tsv, dev.tsv, test.tsv, video_data/video_feats.pkl, "
                                  f"audio_data/audio_feats.pkl; give one, such as the data_path of the run's record "
                                  f"in runs.jsonl\n")
    assert not (tmp_path / "out").exists()


def test_classification_writes_class_names_and_probabilities(tmp_path, capsys):
    # No [extract] extra needed: synthetic MIntRec, a folder without an extractor record.
    assert main(["-m", "tfn", "-d", "mintrec", "--synthetic", "--preset", "small", "--max-epochs", "1",
                 "-s", "1111", "--out", str(tmp_path / "results"), "--quiet"]) == 0
    record = read_records(tmp_path / "results")[-1]
    run_dir = tmp_path / "results" / "runs" / record["run_id"]
    card = json.loads((run_dir / "model.json").read_text())
    assert card["task"] == "classification" and card["extractor"] is None and record["extractor"] is None
    code, err = _predict(capsys, "--run", record["run_id"], "--results", tmp_path / "results",
                         "--features", record["data_path"], "--split", "test", "--out", tmp_path)
    assert code == 0, err
    table = pd.read_csv(tmp_path / "predictions.csv")
    assert list(table.columns) == ["id", "split", "pred", "class_name", "probability", "label"]
    trainer = pd.read_csv(run_dir / "predictions_test.csv")
    logits = trainer[[c for c in trainer.columns if c.startswith("logit_")]].to_numpy()
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    assert table.id.tolist() == trainer.id.tolist()
    assert table.pred.tolist() == trainer.pred.tolist()
    assert table.class_name.tolist() == [card["label_names"][i] for i in trainer.pred]
    assert np.allclose(table.probability, probs.max(axis=1), atol=1e-6)


# ------------------------------------------------------------------------------------------
# the checked load (model.json checked, the model compared with best.pt on the meta device
# first) gives the very model, and predictions, that building and loading it plainly gave
# ------------------------------------------------------------------------------------------
def every_tensor(model) -> dict:
    """Parameters and every buffer, the non-persistent ones (Atsuko's band projectors) too."""
    return {**dict(model.named_parameters()), **dict(model.named_buffers())}


@pytest.mark.parametrize("name, use_bert", [(n, False) for n in list_models()] + [("atsuko", True)])
def test_the_checked_load_is_bit_identical_to_the_plain_one(name, use_bert, tmp_path, tiny_bert):
    data = with_text_bert(make_dataset())
    overrides = [("pretrained", tiny_bert)] + ([("use_bert", True)] if use_bert else [])
    config = load_config(name, "mosi", preset="small", overrides=overrides)
    trained = write_run_folder(tmp_path / "run", name, data, config)
    card, loaded = load_checkpoint(tmp_path / "run")
    plain = build_model(name, EasyDict(card["config"]), spec_from_card(card))     # what predict did before
    state = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    plain.load_state_dict(state)
    plain.eval()
    # Each tensor of a trained model's best.pt has a storage of its own, exactly its size: what
    # checked_model counts the weights' values by (a crafted file's shapes may claim far more).
    assert _stored_values(state) == sum(t.numel() for t in state.values())
    got = every_tensor(loaded)
    want = every_tensor(plain)
    assert got.keys() == want.keys()
    assert [k for k in want if not torch.equal(got[k], want[k])] == []
    # And the trained model's: its weights, and what is derived from them (Atsuko's projectors from
    # the calibrated band bounds; Self-MM's label store is one fit's state, empty in any fresh build).
    want = {k: v for k, v in every_tensor(trained).items() if k in trained.state_dict() or "projectors" in k}
    assert [k for k in want if not torch.equal(got[k], want[k])] == []
    assert name not in ("atsuko", "atsuko_sbn") or any("projectors" in k for k in want)
    batch = data.test.batch(torch.arange(len(data.test)))
    with torch.no_grad():
        assert torch.equal(loaded(batch)["pred"], plain(batch)["pred"])


def test_every_model_holds_few_values_beside_its_weights(tiny_bert):
    """What `load_checkpoint` allows a model beyond its state dict (training.checked_model.EXTRA_ELEMENTS_PER_WEIGHT)
    is far above what any shipped model holds, Atsuko's band projectors at MOSEI's lengths included."""
    from mmsa_atsuko.training.checked_model import EXTRA_ELEMENTS, EXTRA_ELEMENTS_PER_WEIGHT
    spec = dataclasses.replace(make_dataset().spec, seq_lens={"text": 50, "audio": 500, "vision": 500})
    for name in list_models():
        config = load_config(name, "mosei", preset="small", overrides=[("pretrained", tiny_bert)])
        with torch.device("meta"):
            model = build_model(name, config, dataclasses.replace(spec, has_text_bert=True))
        weights = sum(t.numel() for t in model.state_dict().values())
        beside = sum(t.numel() for t in (*model.parameters(), *model.buffers())) - weights
        assert beside <= 2 * weights + 1000 < EXTRA_ELEMENTS_PER_WEIGHT * weights + EXTRA_ELEMENTS, name


def test_predict_gives_the_trainers_atsuko_test_predictions_exactly(tmp_path, capsys):
    """Atsuko's band projectors are rebuilt from the loaded band bounds (non-persistent buffers):
    predict's numbers are the trainer's, to the last digit written."""
    assert main(["-m", "atsuko", "-d", "mosi", "--synthetic", "--preset", "small", "--max-epochs", "1",
                 "-s", "1111", "--out", str(tmp_path / "results"), "--quiet"]) == 0
    record = read_records(tmp_path / "results")[-1]
    run_dir = tmp_path / "results" / "runs" / record["run_id"]
    code, err = _predict(capsys, "--checkpoint", run_dir, "--features", record["data_path"], "--split", "test",
                         "--out", tmp_path / "out")
    assert code == 0, err
    table = pd.read_csv(tmp_path / "out" / "predictions.csv", dtype={"pred": str})
    trainer = pd.read_csv(run_dir / "predictions_test.csv", dtype={"pred": str})
    assert table.id.tolist() == trainer.id.tolist()
    assert table.pred.tolist() == trainer.pred.tolist()


def test_predictions_json_says_when_the_features_are_synthetic(tmp_path, capsys):
    """predictions.json named the run's data as synthetic (trained_on) but the file predicted on only by path and
    sha256: predictions on generated data are labelled as such, by the stamp, as a record's data id is."""
    import pickle
    assert main(["-m", "tfn", "-d", "sims", "--synthetic", "--preset", "small", "--max-epochs", "1", "-s", "1111",
                 "--out", str(tmp_path / "results"), "--quiet"]) == 0
    record = read_records(tmp_path / "results")[-1]
    assert record["data"] == "synthetic:sims-small-unaligned-seed0-v2"
    # The same samples with one label changed: the stamp's content hash no longer holds, so it is a real file.
    with open(record["data_path"], "rb") as f:
        edited = pickle.load(f)             # the toolkit's own generated file, not a downloaded one
    edited["test"]["regression_labels"][0] = 0.0 if edited["test"]["regression_labels"][0] else 0.2
    (tmp_path / "edited.pkl").write_bytes(pickle.dumps(edited, protocol=4))
    for features, data in ((record["data_path"], record["data"]),
                           (tmp_path / "edited.pkl",
                            "sha256:" + hashlib.sha256((tmp_path / "edited.pkl").read_bytes()).hexdigest())):
        code, err = _predict(capsys, "--run", record["run_id"], "--results", tmp_path / "results",
                             "--features", features, "--split", "test", "--out", tmp_path / "out")
        assert code == 0, err
        provenance = json.loads((tmp_path / "out" / "predictions.json").read_text())
        assert (provenance["trained_on"], provenance["features_data"]) == (record["data"], data)


def test_a_checkpoint_folder_that_is_no_run_is_said_so(trained, capsys, tmp_path):
    """A results folder, or any other folder, was reported as a run from before model.json existed: 'train again'."""
    results = trained["run_dir"].parent.parent
    code, err = _predict(capsys, "--checkpoint", results, "--features", trained["features"], "--out", tmp_path / "a")
    assert code == 2 and err.count("\n") == 1 and "train again" not in err, err
    assert (f"--checkpoint {results} is a results folder, not a run folder: give --run RUN_ID --results {results}, "
            f"or --checkpoint {results / 'runs' / 'RUN_ID'}") in err
    code, err = _predict(capsys, "--checkpoint", tmp_path, "--features", trained["features"], "--out", tmp_path / "b")
    assert code == 2 and err.count("\n") == 1 and "train again" not in err, err
    assert f"--checkpoint {tmp_path} is not a run folder (no model.json or best.pt in it)" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_run_that_kept_no_weights_says_why_in_predict_and_robustness(trained, capsys, tmp_path):
    """predict and robustness on a --save-checkpoint none run said only that best.pt was missing,
    as if the folder were damaged: the record says why, and what to do."""
    results = tmp_path / "results"
    record = _train(trained["features"], results, "tfn", "--save-checkpoint", "none")
    why = (f"error: run {record['run_id']} kept no weights: it was trained with --save-checkpoint none; train it "
           f"again with --save-checkpoint best (and --rerun) to use its model")
    code, err = _predict(capsys, "--run", record["run_id"], "--results", results, "--features", trained["features"],
                         "--out", tmp_path / "preds")
    assert code == 2 and err.strip() == why and not (tmp_path / "preds").exists()
    code = main(["robustness", "--run", record["run_id"], "--results", str(results), "--out", str(tmp_path / "fig")])
    assert code == 2 and capsys.readouterr().err.strip() == why and not (tmp_path / "fig").exists()
    # A folder alone (no record) can only say that the weights are not there, and the likely cause.
    weights = results / record["run_dir"] / "best.pt"
    code, err = _predict(capsys, "--checkpoint", results / record["run_dir"], "--features", trained["features"],
                         "--out", tmp_path / "preds")
    assert code == 1 and err.strip() == (f"error: {weights} not found: the run folder holds no weights (a run trained "
                                         f"with --save-checkpoint none keeps none; train it again with "
                                         f"--save-checkpoint best)")


def test_predict_checks_the_ids_against_the_cards_tokenizer():
    """Training now refuses a file whose ids come from another tokenizer than its BERT, but a model.json
    written before (or a file that does not say) still meets predict's own check."""
    import torch

    from mmsa_atsuko.errors import UsageError
    from mmsa_atsuko.predict.features import _check_tokenizer

    card = {"file": "vocab.txt", "sha256": "a" * 64, "vocab_size": 30}
    made_by = {"config": {"text": {"tokenizer": {**card, "sha256": "b" * 64, "vocab_size": 40}}}}
    ids = lambda top: {"test": type("Split", (), {"tensors": {"text_bert": torch.tensor([[[top]], [[1]]])}})()}
    with pytest.raises(UsageError, match=r"^f.pkl: its text ids come from another tokenizer \(vocab.txt of 40 tokens, "
                                         r"sha256 bbbbbbbbbbbb\) than the model's BERT \(30 tokens, sha256 aaaaaaaaaaaa\)"):
        _check_tokenizer(card, made_by, ids(3), "f.pkl")
    _check_tokenizer(card, {"config": {"text": {"tokenizer": card}}}, ids(3), "f.pkl")     # the same tokenizer
    _check_tokenizer(card, None, ids(29), "f.pkl")                # no record: ids inside the vocabulary pass
    with pytest.raises(UsageError, match="text id 30 is outside the model's BERT vocabulary of 30 tokens"):
        _check_tokenizer(card, None, ids(30), "f.pkl")


@pytest.mark.parametrize("extractor", [None, {"config": "text"}, {"config": {"text": "x"}},
                                       {"config": {"text": {"tokenizer": {"file": "vocab.txt"}}}},
                                       {"config": {"text": {"tokenizer": {"file": "v", "sha256": 5, "vocab_size": 3}}}},
                                       ["not", "a", "dict"]])
def test_a_malformed_tokenizer_record_says_nothing_instead_of_a_traceback(extractor):
    """A feature file is hostile: its extractor record reached `run` as AttributeError / KeyError tracebacks."""
    from mmsa_atsuko.data.extract.text import tokenizer_of
    assert tokenizer_of(extractor) is None
    good = {"file": "vocab.txt", "sha256": "a" * 64, "vocab_size": 30}
    assert tokenizer_of({"config": {"text": {"tokenizer": good}}}) == good


@pytest.mark.parametrize("condition", [["--modalities", "TA"], ["--drop-modality", "V"]])
def test_predict_feeds_the_model_the_modalities_it_was_trained_on(condition, tmp_path, capsys):
    """A run trained on a modality subset (or with a modality dropped) never saw that modality: predict used to
    feed it the file's real vision anyway, and its predictions differed from the run's own test predictions."""
    results = tmp_path / "results"
    assert main(["-m", "late_fusion", "-d", "mosi", "--synthetic", "--preset", "small", "--max-epochs", "1",
                 "-s", "1111", "--out", str(results), "--quiet", *condition]) == 0
    record = read_records(results)[-1]
    code, err = _predict(capsys, "--run", record["run_id"], "--results", results, "--features",
                         record["data_path"], "--split", "test", "--out", tmp_path / "pred")
    assert code == 0, err
    test = pd.read_csv(tmp_path / "pred" / "predictions.csv")
    trainer = pd.read_csv(results / "runs" / record["run_id"] / "predictions_test.csv")
    assert test.id.tolist() == trainer.id.tolist()
    assert np.allclose(test.pred, trainer.pred, atol=1e-6)


def test_predict_on_labelled_videos_of_one_split_gives_no_training_advice(trained, capsys, tmp_path):
    """extract's 'warning: no sample in train: the file can be predicted on, not trained on' was printed by
    predict --videos too, for a labelled CSV of test clips: advice on training, to someone predicting."""
    transcripts = tmp_path / "two.csv"
    transcripts.write_text("id,text,label,split\nclip00,w001,1.0,test\nclip01,w002,-1.0,test\n")
    code = main(["predict", "--checkpoint", str(trained["run_dir"]), "--videos", str(trained["videos"]),
                 "--transcripts", str(transcripts), "--out", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    assert code == 0 and "warning" not in printed and "trained on" not in printed, printed
    table = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert table.id.tolist() == ["clip00", "clip01"] and table.label.tolist() == [1.0, -1.0]


def test_predict_from_videos_says_which_bert_it_cannot_find(trained, capsys, tmp_path):
    """A file extracted before extract recorded a BERT folder as an absolute path names it as typed, relative
    to wherever extract ran: predict --videos from elsewhere said only that the BERT was not found."""
    import shutil
    run = tmp_path / "run"
    shutil.copytree(trained["run_dir"], run)
    card = json.loads((run / "model.json").read_text())
    card["extractor"]["bert"] = "old-session/bert"
    (run / "model.json").write_text(json.dumps(card))
    code, err = _predict(capsys, "--checkpoint", run, "--videos", trained["videos"], "--transcripts",
                         trained["transcripts"], "--out", tmp_path / "out")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: the run's features were extracted with --bert old-session/bert, which cannot be "
                          "used from here: BERT weights 'old-session/bert' are neither a local folder"), err
    assert not (tmp_path / "out" / "features.pkl").exists()
    # Extracted with the tiny synthetic BERT of a cache that is not here: it was told to download
    # bert-synthetic-en from the Hub, which has no such model; a --synthetic run writes one.
    gone = tmp_path / "other-cache" / "synthetic" / "mosi-small-unaligned-seed0-v2" / "bert-synthetic-en"
    card["extractor"]["bert"] = str(gone)
    (run / "model.json").write_text(json.dumps(card))
    code, err = _predict(capsys, "--checkpoint", run, "--videos", trained["videos"], "--transcripts",
                         trained["transcripts"], "--out", tmp_path / "out")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"BERT folder {gone} does not exist; it is named as the toolkit's tiny synthetic BERT" in err, err
    assert "huggingface-cli" not in err and "any run with --synthetic writes one" in err, err
    assert not (tmp_path / "out" / "features.pkl").exists()


def test_predict_on_one_split_reads_that_split_alone_and_needs_no_labels(tmp_path, capsys):
    """`predict --run <atsuko sims run> --features f.pkl --split test` failed on f.pkl's train split lacking
    regression_labels_T: predict reads no label to predict, and no split but the one asked for. The split it reads is
    checked as before (a NaN there is refused)."""
    assert main(["-m", "atsuko", "-d", "sims", "--synthetic", "--preset", "small", "--max-epochs", "1",
                 "-s", "1111", "--out", str(tmp_path / "results"), "--quiet"]) == 0
    record = read_records(tmp_path / "results")[-1]
    run_dir = tmp_path / "results" / "runs" / record["run_id"]
    with open(record["data_path"], "rb") as f:
        data = pickle.load(f)               # the toolkit's own generated file
    for split in ("train", "valid", "test"):
        for key in ("regression_labels", "regression_labels_T", "regression_labels_A", "regression_labels_V"):
            del data[split][key]
    data["train"]["audio"] = "not features"                      # never read with --split test
    (tmp_path / "f.pkl").write_bytes(pickle.dumps(data, protocol=4))
    code, err = _predict(capsys, "--run", record["run_id"], "--results", tmp_path / "results",
                         "--features", tmp_path / "f.pkl", "--split", "test", "--out", tmp_path / "out")
    assert code == 0, err
    table = pd.read_csv(tmp_path / "out" / "predictions.csv", dtype={"pred": str})
    trainer = pd.read_csv(run_dir / "predictions_test.csv", dtype={"pred": str})
    assert list(table.columns) == ["id", "split", "pred"]                       # no label column: none was read
    assert table.id.tolist() == trainer.id.tolist() and table.pred.tolist() == trainer.pred.tolist()
    # Without --split every split is read: train's audio is refused, in one line.
    code, err = _predict(capsys, "--run", record["run_id"], "--results", tmp_path / "results",
                         "--features", tmp_path / "f.pkl", "--out", tmp_path / "out2")
    assert code != 0 and err.count("\n") == 1 and "split 'train', key 'audio'" in err
    data["test"]["vision"][0, 0, 0] = float("nan")
    (tmp_path / "f.pkl").write_bytes(pickle.dumps(data, protocol=4))
    code, err = _predict(capsys, "--run", record["run_id"], "--results", tmp_path / "results",
                         "--features", tmp_path / "f.pkl", "--split", "test", "--out", tmp_path / "out3")
    assert code != 0 and err.count("\n") == 1 and "split 'test', key 'vision'" in err and "NaN" in err
    del data["test"]
    (tmp_path / "f.pkl").write_bytes(pickle.dumps(data, protocol=4))
    code, err = _predict(capsys, "--run", record["run_id"], "--results", tmp_path / "results",
                         "--features", tmp_path / "f.pkl", "--split", "test", "--out", tmp_path / "out4")
    assert (code, err) == (2, f"error: {tmp_path / 'f.pkl'} has no test split (it has train, valid)\n")


def test_predict_warns_of_huge_features_and_refuses_a_non_finite_prediction(tmp_path):
    """M3: a test split whose sample 0 holds audio of 3e38 (finite, float32) was predicted with exit 0 and an empty
    pred cell (NaN), the huge-value warning run.py prints was never shown, and numpy printed two RuntimeWarning lines
    of its own. Now: run.py's warning line, then one error line naming the sample, nothing written."""
    import re
    import sys
    from mmsa_atsuko.data import load_dataset
    from mmsa_atsuko.data.synthetic import write_synthetic
    write_synthetic("mosi", tmp_path / "generated.pkl")
    data = load_dataset("mosi", feature_path=tmp_path / "generated.pkl")
    write_run_folder(tmp_path / "run", "tfn", data, load_config("tfn", "mosi", preset="small"))
    with open(tmp_path / "generated.pkl", "rb") as f:
        raw = pickle.load(f)                # the toolkit's own generated file
    raw["test"]["audio"][0] = 3e38
    first_id = raw["test"]["id"][0]
    huge = raw["test"]["audio"][0].size     # every value of sample 0; the generator writes none above 1e6
    (tmp_path / "f.pkl").write_bytes(pickle.dumps(raw, protocol=4))
    done = subprocess.run([sys.executable, "-m", "mmsa_atsuko", "predict", "--checkpoint", str(tmp_path / "run"),
                           "--features", str(tmp_path / "f.pkl"), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=Path(__file__).parents[1], timeout=300)
    lines = done.stderr.splitlines()
    assert done.returncode == 1 and len(lines) == 2, done.stderr
    assert re.fullmatch(rf"\d\d:\d\d:\d\d mosi test audio: {huge} feature values above 1e\+06 in magnitude "
                        r"\(largest 3e\+38\); models may overflow on them \(a non-finite loss stops the run\)",
                        lines[0]), lines[0]
    assert lines[1] == (f"error: {tmp_path / 'f.pkl'}: split 'test', sample 0 (id {first_id!r}): its prediction is "
                        f"nan, not a finite number: the model overflows on the sample's features; fix or remove the "
                        f"sample and predict again (nothing was written)")
    assert not (tmp_path / "out").exists() and done.stdout == ""


def test_a_non_finite_feature_is_one_error_and_no_numpy_warning(tmp_path):
    """The range check summed the array to find a non-finite value, and numpy printed 'overflow' and 'invalid value
    encountered in reduce' before the +inf refusal; a huge finite array printed them with no refusal at all."""
    import warnings
    from mmsa_atsuko.data.mmsa_format import load_for_prediction
    from mmsa_atsuko.data.synthetic import write_synthetic
    from mmsa_atsuko.errors import DataError
    write_synthetic("mosi", tmp_path / "generated.pkl")
    with open(tmp_path / "generated.pkl", "rb") as f:
        raw = pickle.load(f)                # the toolkit's own generated file
    raw["test"]["audio"][0] = 3e38          # sums past float32: overflow
    (tmp_path / "huge.pkl").write_bytes(pickle.dumps(raw, protocol=4))
    raw["test"]["audio"][0, 0, 0] = np.inf
    raw["test"]["audio"][0, 0, 1] = -np.inf          # inf - inf in the sum: invalid value
    (tmp_path / "inf.pkl").write_bytes(pickle.dumps(raw, protocol=4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_for_prediction("mosi", tmp_path / "huge.pkl", split="test")
        with pytest.raises(DataError, match=r"split 'test', key 'audio': expected no \+inf, found 1 \+inf"):
            load_for_prediction("mosi", tmp_path / "inf.pkl", split="test")


def test_features_of_other_lengths_are_worded_for_generated_data_too(tmp_path, capsys):
    """#14: a generated (--synthetic) file of other lengths was told to 'extract the features with the settings it
    was trained with', though no file of the run was ever extracted."""
    from mmsa_atsuko.data import load_dataset
    from mmsa_atsuko.data.synthetic import write_synthetic
    write_synthetic("mosi", tmp_path / "generated.pkl")
    data = load_dataset("mosi", feature_path=tmp_path / "generated.pkl")
    write_run_folder(tmp_path / "run", "tfn", data, load_config("tfn", "mosi", preset="small"))
    with open(tmp_path / "generated.pkl", "rb") as f:
        raw = pickle.load(f)                # the toolkit's own generated file
    padded, dim = raw["test"]["vision"].shape[1:]
    raw["test"]["vision"] = raw["test"]["vision"][:, :5]
    raw["test"]["vision_lengths"] = np.minimum(raw["test"]["vision_lengths"], 5)
    (tmp_path / "f.pkl").write_bytes(pickle.dumps(raw, protocol=4))
    code, err = _predict(capsys, "--checkpoint", tmp_path / "run", "--features", tmp_path / "f.pkl", "--split", "test",
                         "--out", tmp_path / "out")
    assert (code, err) == (2, f"error: {tmp_path / 'f.pkl'}: vision is (length, dim) (5, {dim}), the checkpoint "
                              f"expects ({padded}, {dim}), as in the data it was trained on ({data.spec.source}): give "
                              f"features made as that data was (run.py extract with the run's settings, or the same "
                              f"--synthetic size and recipe)\n")
    assert data.spec.source.startswith("synthetic:mosi-small-") and not (tmp_path / "out").exists()
