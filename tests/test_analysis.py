"""Issue 7: explain / robustness / tsne figures from small synthetic runs (Agg backend)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import mmsa_atsuko
from mmsa_atsuko import analysis
from mmsa_atsuko.data.conditions import make_condition
from mmsa_atsuko.errors import DataError, UsageError
from mmsa_atsuko.models.common.bert import reads_bert_tokens
from mmsa_atsuko.results import read_records
from mmsa_atsuko.training.trainer import evaluate

pytest.importorskip("matplotlib")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """One full Atsuko run and one without the MCM (same data and seed), 2 epochs each."""
    out = tmp_path_factory.mktemp("analysis-results")
    full = mmsa_atsuko.run("atsuko", "sims", seeds=[1111], synthetic=True, preset="small", max_epochs=2,
                           out=out, quiet=True)[0]
    no_mcm = mmsa_atsuko.run("atsuko_sbn", "sims", seeds=[1111], synthetic=True, preset="small", max_epochs=2,
                             out=out, quiet=True)[0]
    return out, full, no_mcm


def run_in_process(capsys, *args) -> subprocess.CompletedProcess:
    """`run.py args` through `cli.main` in this process: its exit code and what it printed, as `run_cli` gives
    them. For the tests about a command's figures and lines, not its process: a fresh interpreter is seconds of
    imports each (tests/test_readme.py and `run_cli` below run these commands as processes)."""
    import warnings
    from mmsa_atsuko.cli import main
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        code = main([str(a) for a in args])
    printed, err = capsys.readouterr()
    # The warnings a process would have printed on its stderr (Python's default filters hide these four kinds).
    hidden = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)
    err += "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line)
                   for w in caught if not issubclass(w.category, hidden))
    return subprocess.CompletedProcess(["run.py", *args], code, printed, err)


def run_cli(*args, threads_from_env=True):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    if not threads_from_env:          # torch's own default: every core
        del env["OMP_NUM_THREADS"]
    return subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def assert_figure(folder: Path, name: str) -> pd.DataFrame:
    for ext in ("png", "pdf", "csv"):
        path = folder / f"{name}.{ext}"
        assert path.is_file() and path.stat().st_size > 0, path
    return pd.read_csv(folder / f"{name}.csv")


def trace_of(record: dict) -> list:
    """What each analysis CSV row says of its run: its id, the record's data id, and its commit cut as the
    leaderboard's code column cuts it (10 digits, +dirty kept; no commit: the package version)."""
    commit = record.get("git_commit")
    code = commit[:10] + ("+dirty" if commit.endswith("+dirty") else "") if commit else \
        f"version {record['package_version']}"
    return [record["run_id"], record["data"], code]


def test_explain_writes_every_figure_with_the_model_numbers(results, tmp_path, capsys):
    out, full, no_mcm = results
    figures = tmp_path / "figures"
    done = run_in_process(capsys, "explain", "-m", "atsuko", "-d", "sims", "--run", full["run_id"], "--samples", "4",
                          "--results", str(out), "--out", str(figures))
    assert done.returncode == 0, done.stderr[-3000:]

    # The numbers behind the figures are what a forward pass of the checkpoint gives.
    run = analysis.load_run(out, full["run_id"])
    partner = analysis.load_run(out, no_mcm["run_id"])
    test = run.data.test
    # Not on a terminal, its progress is lines on stderr, one each tenth of its test batches: two passes over
    # the test split (this run's, for its tables and modality_weights.csv; the partner's weights), in eval batches.
    batches = -(-len(test) // run.eval_batch_size) + -(-len(partner.data.test) // partner.eval_batch_size)
    step = -(-batches // 10)
    said = [line for line in done.stderr.splitlines() if line.startswith(f"explain {full['run_id']}: ")]
    assert [int(line.split(": ")[1].split("/")[0]) for line in said] == [*range(step, batches, step), batches], said
    assert all(f"/{batches} test batches, " in line for line in said), said
    assert "test batches" not in done.stdout
    with torch.no_grad():
        batch = test.batch(torch.arange(len(test)))
        outputs = run.model(batch, return_spectral=True)
        q = run.model.loss(outputs, batch)["q"].numpy()
        partner_w = partner.model(batch)["modality_weights"].numpy()
    w = outputs["modality_weights"].numpy()                     # (N, 3): the model's order, text (L), vision, audio
    names = ["text", "vision", "audio"]
    # One layout, predictions_test.csv's: the weights are modality_weight_L/V/A there and in every explain CSV.
    columns = ["modality_weight_L", "modality_weight_V", "modality_weight_A"]
    trained = pd.read_csv(out / full["run_dir"] / "predictions_test.csv")
    np.testing.assert_allclose(trained[columns].to_numpy(), w, rtol=1e-5, atol=1e-6)

    distribution = assert_figure(figures, "modality_weight_distribution")
    assert list(distribution.id) == list(test.ids) == list(trained.id.astype(str))
    np.testing.assert_allclose(distribution[columns].to_numpy(), w, rtol=1e-5, atol=1e-6)
    assert distribution[["run_id", "data", "code"]].drop_duplicates().values.tolist() == [trace_of(full)]

    # modality_weights.csv: predictions_test.csv's columns and numbers, every test sample, then the trace. The
    # numbers are the trainer's to the last digit written (the same forward on the same batches, on this CPU).
    every = pd.read_csv(figures / "modality_weights.csv")
    assert list(every.columns) == ["id", "label", "pred", *columns, "run_id", "data", "code", "condition"]
    as_written = pd.read_csv(figures / "modality_weights.csv", dtype=str)
    trained_text = pd.read_csv(out / full["run_dir"] / "predictions_test.csv", dtype=str)
    assert as_written[["id", "label", "pred", *columns]].equals(trained_text[["id", "label", "pred", *columns]])
    assert every[["run_id", "data", "code"]].drop_duplicates().values.tolist() == [trace_of(full)]

    weights = assert_figure(figures, "modality_weights_mcm")
    assert set(weights.variant) == {"with MCM", "without MCM"}
    # The "without MCM" weights are another run's: the CSV names it (it named no run at all), its data and code.
    assert list(weights.run_id) == [full["run_id"]] * 4 + [no_mcm["run_id"]] * 4
    assert weights[["run_id", "data", "code"]].drop_duplicates().values.tolist() == [trace_of(full), trace_of(no_mcm)]
    np.testing.assert_allclose(weights[weights.variant == "with MCM"][columns].to_numpy(), w[:4], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(weights[weights.variant == "without MCM"][columns].to_numpy(), partner_w[:4],
                               rtol=1e-5, atol=1e-6)

    target = assert_figure(figures, "mcm_target")        # q beside w, one row per sample
    assert list(target.id) == list(test.ids[:4])
    np.testing.assert_allclose(target[["q_L", "q_V", "q_A"]].to_numpy(), q[:4], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(target[columns].to_numpy(), w[:4], rtol=1e-5, atol=1e-6)

    bands = assert_figure(figures, "band_weights")
    for i, m in enumerate("LVA"):
        rows = bands[bands.modality == names[i]]
        band_w = outputs["band_weights"][m].numpy()
        np.testing.assert_allclose(rows[rows.id == "test mean"][["band_0", "band_1", "band_2"]].to_numpy()[0],
                                   band_w.mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(rows[rows.id != "test mean"][["band_0", "band_1", "band_2"]].to_numpy(),
                                   band_w[:4], rtol=1e-5, atol=1e-6)

    energy = assert_figure(figures, "spectral_energy")
    components = assert_figure(figures, "band_components")
    for i, m in enumerate("LVA"):
        np.testing.assert_allclose(energy[energy.modality == names[i]].mean_energy.to_numpy(),
                                   outputs["energy_mean"][m].numpy(), rtol=1e-5)
        rows = components[components.modality == names[i]]
        channel = int(rows.channel.iloc[0])
        np.testing.assert_allclose(rows.signal.to_numpy(), outputs["features"][m][0, :, channel].numpy(),
                                   rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(rows[["band_0", "band_1", "band_2"]].to_numpy(),
                                   outputs["band_components"][m][0, :, :, channel].T.numpy(), rtol=1e-4, atol=1e-5)


def test_explain_reads_the_store_once(results, tmp_path, monkeypatch, capsys):
    """explain read runs.jsonl three times: for its run, for the partner without the MCM, for the partner's record."""
    from mmsa_atsuko.cli import main
    out, full, _ = results
    opened = []
    real_open = os.open

    def counting_open(path, *args, **kwargs):
        if Path(path).name == "runs.jsonl":
            opened.append(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", counting_open)
    assert main(["explain", "--run", full["run_id"], "--samples", "2", "--results", str(out),
                 "--out", str(tmp_path / "figures")]) == 0
    assert "note: no run of the same data" not in capsys.readouterr().out       # the partner was found and loaded
    assert len(opened) == 1, opened


def test_explain_runs_the_model_once_over_each_test_split(results, tmp_path):
    """The tables and modality_weights.csv read one pass over the run's test split (they were two, the second
    through the trainer's evaluate: 28 s each at SIMS's real size); the partner's split, and --feature-path's,
    is a pass of its own. Counted as calls of each model's forward, one per batch of eval_batch_size."""
    from mmsa_atsuko.data.synthetic import write_synthetic
    out, full, no_mcm = results
    run, partner = analysis.load_run(out, full["run_id"]), analysis.load_run(out, no_mcm["run_id"])
    calls = {run.run_id: 0, partner.run_id: 0}
    for loaded in (run, partner):
        loaded.model.register_forward_hook(lambda *_, run_id=loaded.run_id: calls.__setitem__(run_id, calls[run_id] + 1))
    batch_size = full["config"]["batch_size"]            # eval_batch_size is null in the small preset
    assert full["config"]["eval_batch_size"] is None and no_mcm["config"]["batch_size"] == batch_size
    own = -(-len(run.data.test) // batch_size)
    assert own >= 2                                      # several batches: the layout of each pass is exercised
    analysis.explain_run(run, 4, partner, progress=False)
    assert calls == {run.run_id: own, partner.run_id: own}

    other = write_synthetic("sims", tmp_path / "other.pkl", seed=7)
    other_size = len(mmsa_atsuko.data.load_dataset("sims", feature_path=other).test)
    calls.update({run.run_id: 0, partner.run_id: 0})
    _, weights = analysis.explain_run(run, 4, None, feature_path=other, progress=False)
    assert calls == {run.run_id: own + -(-other_size // batch_size), partner.run_id: 0}
    assert len(weights) == other_size


def test_robustness_clean_row_makes_its_loss_as_the_run_did(tmp_path, capsys):
    """A run whose Loss is MMSA's (`valid_loss: mmsa`: the mean of batch means, rounded to 4 places) records its
    test Loss so; the clean row, "evaluated as training did", made it per sample, another number."""
    out = tmp_path / "store"
    (record,) = mmsa_atsuko.run("tfn", "sims", seeds=[1111], synthetic=True, preset="small", max_epochs=1,
                                out=out, quiet=True, config={"valid_loss": "mmsa"})
    assert record["metrics"]["Loss"] == round(record["metrics"]["Loss"], 4)
    done = run_in_process(capsys, "robustness", "--run", record["run_id"], "--results", str(out),
                          "--out", str(tmp_path / "fig"))
    assert done.returncode == 0, done.stderr[-3000:]
    table = assert_figure(tmp_path / "fig", f"robustness_{record['run_id']}")
    clean = table[table.corruption == "clean"].iloc[0]
    assert {key: clean[key] for key in record["metrics"]} == record["metrics"]


def test_robustness_clean_reproduces_test_metrics_and_zeroing_changes_predictions(results, tmp_path, capsys):
    out, full, no_mcm = results
    done = run_in_process(capsys, "robustness", "--run", full["run_id"], no_mcm["run_id"], "--results", str(out),
                          "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    table = assert_figure(tmp_path, f"robustness_{full['run_id']}")
    assert set(table.corruption) == {"clean", "noise", "zero", "frame_drop"}
    # Every row's level has a unit (clean and zero rows had an empty one).
    units = table.groupby("corruption").level_unit.agg(lambda u: sorted(set(u))).to_dict()
    assert units == {"clean": ["none"], "noise": ["SNR dB"], "zero": ["fraction zeroed"], "frame_drop": ["drop rate"]}
    # Not on a terminal, each run's progress is lines on stderr, the last counting that run's rows of the CSV.
    for record in (full, no_mcm):
        said = [line for line in done.stderr.splitlines() if line.startswith(f"robustness {record['run_id']}: ")]
        n = int((table.run_id == record["run_id"]).sum())
        assert len(said) >= 2 and said[-1].startswith(f"robustness {record['run_id']}: {n}/{n} test passes, "), said
    # Each run's rows name the data it was tested on and the code it trained with.
    assert table[["run_id", "data", "code"]].drop_duplicates().values.tolist() == [trace_of(full), trace_of(no_mcm)]
    for record in (full, no_mcm):
        clean = table[(table.run_id == record["run_id"]) & (table.corruption == "clean")].iloc[0]
        for key, value in record["metrics"].items():       # exactly, not approximately
            assert clean[key] == value or (value is None and np.isnan(clean[key])), key

    run = analysis.load_run(out, full["run_id"])
    test = run.data.test
    assert evaluate(run.model, test, "sims", run.eval_batch_size).metrics == full["metrics"]
    clean_pred = analysis.predictions(run, test)
    for modality in ("text", "vision", "audio"):
        zeroed = analysis.predictions(run, analysis.corrupt_split(test, "zero", modality, 1.0))
        assert np.abs(zeroed - clean_pred).max() > 1e-6, modality
    noisy = analysis.corrupt_split(test, "noise", "audio", 10.0)
    signal, noise = test.tensors["audio"], noisy.tensors["audio"] - test.tensors["audio"]
    real = test.tensors["audio_mask"]
    assert not real.all() and (noise[~real] == 0).all()        # padded frames are left alone
    snr = 10 * torch.log10(signal[real].pow(2).mean() / noise[real].pow(2).mean())
    assert abs(float(snr) - 10.0) < 0.5                          # the SNR holds on the real frames


def test_tsne_one_panel_per_variant(results, tmp_path, capsys):
    out, full, no_mcm = results
    done = run_in_process(capsys, "tsne", "-d", "sims", "--results", str(out), "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    # Named by the run of the fullest variant, so another panel set (another seed) never overwrites it.
    table = assert_figure(tmp_path, f"tsne_{full['run_id']}")
    assert set(table.variant) == {"+SBN", "full Atsuko (SBN + MCM)"}
    # Each panel says which run and config it draws, from the records themselves: the config hash whole (12 hex
    # digits), as the sweep's plan and runs.jsonl show it (its first 8 were shown here alone).
    for variant, record in (("+SBN", no_mcm), ("full Atsuko (SBN + MCM)", full)):
        assert len(record["config_hash"]) == 12
        assert (f"tsne panel {variant}: run {record['run_id']} (seed {record['seed']}, config "
                f"{record['config_hash']}, max_epochs {record['config']['max_epochs']}, best epoch "
                f"{record['best_epoch']})") in done.stdout.splitlines()
    assert set(table.run_id) == {full["run_id"], no_mcm["run_id"]}
    assert sorted(table[["run_id", "data", "code"]].drop_duplicates().values.tolist()) == \
        sorted([trace_of(full), trace_of(no_mcm)])
    assert sorted(table.id) == sorted(list(analysis.load_run(out, full["run_id"]).data.test.ids) * 2)
    assert set(table.label_class) <= {"negative", "neutral", "positive"}


def test_tsne_says_which_variants_are_on_the_other_feature_file(results, tmp_path, capsys):
    """On a paper-protocol store Table 4's variants are on the aligned file alone: `tsne -d mosi` drew atsuko's one
    panel and said nothing of the three others (found in a researcher's trial)."""
    import shutil
    from mmsa_atsuko.results import append_record
    out, full, no_mcm = results
    store = tmp_path / "store"
    shutil.copytree(out, store)

    def aligned(model, sbn, mcm, seed=1111, dataset="sims"):
        return {**full, "run_id": f"{model}-aligned-{seed}-{dataset}", "model": model, "aligned": True, "seed": seed,
                "dataset": dataset, "config": {**full["config"], "use_sbn": sbn, "use_mcm": mcm}}
    for rec in (aligned("atsuko", True, True), aligned("atsuko_base", False, False),
                aligned("atsuko_mcm", False, True, seed=1112), aligned("atsuko_sbn", True, False, dataset="mosi")):
        append_record(store, rec)
    # unaligned panels: +SBN and full Atsuko; on the aligned file of sims: full Atsuko, base, and +MCM at seed 1112
    assert analysis.variants_elsewhere(store, "sims", None, False, ["+SBN", "full Atsuko (SBN + MCM)"]) == \
        "2 ablation variants are on the aligned file: add --aligned (base (no SBN, no MCM); +MCM)"
    assert analysis.variants_elsewhere(store, "sims", 1111, False, ["+SBN", "full Atsuko (SBN + MCM)"]) == \
        "1 ablation variant is on the aligned file: add --aligned (base (no SBN, no MCM))"
    assert analysis.variants_elsewhere(store, "sims", None, True, ["full Atsuko (SBN + MCM)"]) == \
        "1 ablation variant is on the unaligned file: drop --aligned (+SBN)"
    assert analysis.variants_elsewhere(out, "sims", None, False, ["+SBN", "full Atsuko (SBN + MCM)"]) == ""
    done = run_in_process(capsys, "tsne", "-d", "sims", "--results", str(store), "--out", str(tmp_path / "figures"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert ("tsne: 2 ablation variants are on the aligned file: add --aligned (base (no SBN, no MCM); +MCM)"
            in done.stdout.splitlines()), done.stdout
    done = run_in_process(capsys, "tsne", "-d", "sims", "--results", str(out), "--out", str(tmp_path / "plain"))
    assert done.returncode == 0 and "tsne: " not in done.stdout, done.stdout


def test_each_command_names_the_code_that_made_its_figures(results, tmp_path, capsys):
    """A CSV row's `code` is the code its run trained with; the analysis may run on other code, and
    robustness_<id>.json, tsne_<id>.json and explain's explain.json name it (the checkout's HEAD, as a run record
    does), with the command and its options. The runs here are made to have trained on another commit."""
    import json
    import shutil
    from mmsa_atsuko.cli import main
    out, full, no_mcm = results
    store = tmp_path / "store"
    shutil.copytree(out, store)
    other_code = "abcdef0123" * 4
    lines = [json.loads(line) for line in (store / "runs.jsonl").read_text().splitlines()]
    (store / "runs.jsonl").write_text("".join(json.dumps({**r, "git_commit": other_code}) + "\n" for r in lines))
    figures = tmp_path / "figures"
    commands = {"robustness": (["--run", full["run_id"]], figures, f"robustness_{full['run_id']}"),
                "tsne": (["-d", "sims", "--tsne-seed", "3"], figures, f"tsne_{full['run_id']}"),
                "explain": (["--run", full["run_id"], "--samples", "2"], figures / "explain", "explain")}
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    for command, (options, folder, name) in commands.items():
        assert main([command, *options, "--results", str(store), "--out", str(folder)]) == 0, capsys.readouterr().err
        made_by = json.loads((folder / f"{name}.json").read_text())
        assert made_by["command"] == command and made_by["package_version"] == mmsa_atsuko.__version__
        assert (made_by["options"]["results"], made_by["options"]["out"]) == (str(store), str(folder))
        if head.returncode == 0:           # a checkout: its HEAD, '+dirty' when it has local changes
            assert made_by["git_commit"] in (head.stdout.strip(), head.stdout.strip() + "+dirty"), made_by
            assert not made_by["git_commit"].startswith(other_code)
        if command != "explain":
            assert set(pd.read_csv(folder / f"{name}.csv").code) == {other_code[:10]}     # the runs' own code
    assert made_by["options"]["samples"] == 2
    assert set(pd.read_csv(figures / "explain" / "modality_weights.csv").code) == {other_code[:10]}
    assert json.loads((figures / f"tsne_{full['run_id']}.json").read_text())["options"]["tsne_seed"] == 3


def test_bad_input_is_one_line_and_non_zero(results, tmp_path, capsys):
    out, full, _ = results
    unknown = run_in_process(capsys, "explain", "--run", "no-such-run", "--results", str(out))
    assert unknown.returncode != 0 and unknown.stderr.strip().count("\n") == 0 and "unknown run id" in unknown.stderr
    missing = run_in_process(capsys, "explain", "--checkpoint", str(tmp_path / "best.pt"), "--results", str(out))
    assert missing.returncode != 0 and "not found" in missing.stderr and missing.stderr.strip().count("\n") == 0
    not_atsuko = run_in_process(capsys, "explain", "-m", "tfn", "--run", full["run_id"], "--results", str(out))
    assert not_atsuko.returncode != 0 and "not atsuko" in not_atsuko.stderr
    # -m is checked against the run's record, as -d is: it drew the full model's figures without a word.
    other_variant = run_in_process(capsys, "explain", "-m", "atsuko_sbn", "--run", full["run_id"], "--results",
                                   str(out), "--out", str(tmp_path / "other-variant"))
    assert (other_variant.returncode, other_variant.stdout, other_variant.stderr) == \
        (2, "", f"error: run {full['run_id']} is model atsuko, not atsuko_sbn\n")
    assert not (tmp_path / "other-variant").exists()

    # A bad --feature-path fails before the first figure: an earlier explain of the run stays as it was.
    figures = tmp_path / "figures"
    figures.mkdir()
    (figures / "modality_weights.csv").write_text("earlier output\n")
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes((Path(full["data_path"]).read_bytes())[:5000])
    bad_features = run_in_process(capsys, "explain", "--run", full["run_id"], "--results", str(out), "--out",
                                  str(figures), "--feature-path", str(truncated))
    assert bad_features.returncode != 0 and "truncated or corrupt" in bad_features.stderr
    assert bad_features.stdout == "" and bad_features.stderr.strip().count("\n") == 0
    assert sorted(p.name for p in figures.iterdir()) == ["modality_weights.csv"]
    assert (figures / "modality_weights.csv").read_text() == "earlier output\n"


def test_an_output_folder_at_a_file_is_one_line_before_any_work(results, tmp_path, capsys):
    """--out at a file (or below one) was a traceback from the figure writer, after the runs were loaded and
    re-tested (sensitivity: after training them); now one line, exit 2, before any work."""
    from mmsa_atsuko.cli import main
    out, full, _ = results
    (tmp_path / "a file").write_text("")
    trained = tmp_path / "sensitivity-results"
    for command in (["explain", "--run", full["run_id"], "--samples", "2", "--results", str(out)],
                    ["robustness", "--run", full["run_id"], "--results", str(out)],
                    ["tsne", "-d", "sims", "--results", str(out)],
                    ["sensitivity", "-d", "sims", "--param", "lambda_ent", "--values", "0", "-s", "1111",
                     "--synthetic", "--preset", "small", "--max-epochs", "1", "--results", str(trained)]):
        for where in (tmp_path / "a file", tmp_path / "a file" / "below"):
            code = main([*command, "--out", str(where)])
            printed, err = capsys.readouterr()
            assert code == 2 and printed == "" and len(err.strip().splitlines()) == 1, (command, err)
            assert f"{tmp_path / 'a file'} is a file, not a folder; choose another --out" in err
    assert not trained.exists()                     # sensitivity trained nothing
    # Without --out the figures go to <results>/analysis: a file there is the same one line.
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "analysis").write_text("")
    code = main(["robustness", "--run", full["run_id"], "--results", str(tmp_path / "store")])
    assert code == 2 and "analysis is a file where the toolkit writes a folder" in capsys.readouterr().err


def analysis_commands(out, full, trained):
    """Each analysis command on `results`, and a file it writes into its --out."""
    return {"explain": (["explain", "--run", full["run_id"], "--samples", "2", "--results", str(out)],
                        "modality_weights.csv"),
            "robustness": (["robustness", "--run", full["run_id"], "--results", str(out)],
                           f"robustness_{full['run_id']}.csv"),
            "tsne": (["tsne", "-d", "sims", "--results", str(out)], None),
            "sensitivity": (["sensitivity", "-d", "sims", "--param", "lambda_ent", "--values", "0", "-s", "1111",
                             "--synthetic", "--preset", "small", "--max-epochs", "1", "--results", str(trained)],
                            "sensitivity_atsuko_sims-synthetic.pdf")}


@pytest.mark.parametrize("command", ["explain", "robustness", "tsne", "sensitivity"])
def test_a_link_at_a_file_of_the_out_folder_is_one_line_before_any_work(results, tmp_path, capsys, command):
    """explain wrote modality_weights.csv through a link planted in --out (measured: a file elsewhere
    replaced by the weights table), after all the work; the figures' links were refused only when their
    turn came, after the files before them were written (sensitivity: after training)."""
    from mmsa_atsuko.cli import main
    out, full, _ = results
    trained = tmp_path / "sensitivity-results"
    argv, name = analysis_commands(out, full, trained)[command]
    if name is None:                                 # tsne is named by the fullest variant's run
        name = f"tsne_{full['run_id']}.png"
    (tmp_path / "victim.txt").write_text("precious\n")
    figures = tmp_path / "figures"
    figures.mkdir()
    (figures / name).symlink_to(tmp_path / "victim.txt")
    code = main([*argv, "--out", str(figures)])
    printed, err = capsys.readouterr()
    assert code == 2 and printed == "" and err == (
        f"error: output folder {figures}: {figures / name} is a symbolic link; the toolkit writes only inside "
        "the output folder (replace it with a real file)\n")
    assert (tmp_path / "victim.txt").read_text() == "precious\n"
    assert [p.name for p in figures.iterdir()] == [name] and not trained.exists()


@pytest.mark.parametrize("case", ["full-disk", "proc"])
def test_a_full_disk_or_an_unmakeable_out_is_one_line_and_leaves_no_file(results, tmp_path, capsys, monkeypatch,
                                                                         case):
    """A full disk was an OSError traceback that left half a PNG (measured on a 60 KiB tmpfs: 61,440 bytes of
    robustness_<run>.png), and --out /proc/xx a FileNotFoundError traceback; now one line and no file."""
    import errno
    from mmsa_atsuko.cli import main
    out, full, _ = results
    argv, _ = analysis_commands(out, full, tmp_path / "unused")["robustness"]
    figures = tmp_path / "figures"
    if case == "proc":
        if not Path("/proc/version").is_file():
            pytest.skip("no /proc here")
        figures = Path("/proc/xx")
    else:
        real_write_bytes = Path.write_bytes

        def no_space_on_the_third(self, data):
            if len(list(figures.iterdir())) >= 2:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_write_bytes(self, data)
        monkeypatch.setattr(Path, "write_bytes", no_space_on_the_third)
    code = main([*argv, "--out", str(figures)])
    printed, err = capsys.readouterr()
    why = "No space left on device" if case == "full-disk" else "No such file or directory"
    *progress, line = err.splitlines()                # off a terminal, robustness reports its passes first
    assert code == 1 and "wrote" not in printed and err.endswith("\n") and line == (
        f"error: output folder {figures} could not be written ({why}); choose another --out")
    assert all(p.startswith("robustness ") and " test passes, " in p for p in progress), progress
    assert case == "proc" or list(figures.iterdir()) == []


def test_sensitivity_runs_through_the_sweep_and_plots_mean_and_std(tmp_path):
    args = ["sensitivity", "-d", "sims", "--param", "lambda_ent", "--values", "0", "1", "-s", "1111", "1112",
            "--synthetic", "--preset", "small", "--max-epochs", "1", "--results", str(tmp_path / "results"),
            "--out", str(tmp_path)]
    done = run_cli(*args, threads_from_env=False)
    assert done.returncode == 0, done.stderr[-3000:]
    table = assert_figure(tmp_path, "sensitivity_atsuko_sims-synthetic")
    records = [r for r in read_records(tmp_path / "results")]
    assert len(records) == 4
    # --threads' default, as run and sweep have it (torch's default, every core, on a machine of two or more)
    assert {r["torch_threads"] for r in records} == {1}
    for _, row in table.iterrows():
        scores = [r["metrics"]["MAE"] for r in records if r["config"]["lambda_ent"] == row.value]
        assert row["mean"] == pytest.approx(np.mean(scores)) and row["std"] == pytest.approx(np.std(scores, ddof=1))


def test_runs_are_matched_on_their_whole_config(tmp_path):
    """explain's partner without the MCM, tsne's panels and a sensitivity value each take only
    runs whose config differs in what they compare: not a later run that changed something else."""
    from types import SimpleNamespace

    from mmsa_atsuko.training.trainer_config import resolve_config
    from mmsa_atsuko.config import config_hash
    from mmsa_atsuko.results import append_record

    def record(run_id, model, mae, **changes):
        config = resolve_config(model, "sims", preset="small", max_epochs=1, overrides=list(changes.items()))
        return {"run_id": run_id, "status": "ok", "model": model, "dataset": "sims", "aligned": False, "seed": 1,
                "synthetic": True, "preset": "small", "data": "synthetic:sims-small-unaligned-seed0-v2",
                "config": dict(config), "config_hash": config_hash(config), "metrics": {"MAE": mae, "Mult_acc_2": 0.5}}

    rows = [record("full", "atsuko", 0.50),
            record("sbn", "atsuko_sbn", 0.60),
            record("sbn-lr", "atsuko_sbn", 0.70, learning_rate=0.01),      # later, another lr
            record("full-ent2", "atsuko", 0.80, lambda_ent=2.0),          # later, a sensitivity run
            record("full-ent2-lr", "atsuko_sbn", 0.90, lambda_ent=2.0, learning_rate=0.01)]
    for r in rows:
        append_record(tmp_path, r)

    assert analysis.find_partner_without_mcm(tmp_path, SimpleNamespace(record=rows[0])) == "sbn"
    assert analysis.find_partner_without_mcm(tmp_path, SimpleNamespace(record=rows[3])) is None
    assert analysis.ablation_runs(tmp_path, "sims") == {"+SBN": "sbn", "full Atsuko (SBN + MCM)": "full"}
    with pytest.raises(UsageError, match="no Atsuko runs on sims aligned"):
        analysis.ablation_runs(tmp_path, "sims", aligned=True)
    # band_mask_rate=0.1 is atsuko's default: the default run counts, not the lambda_ent=2 one.
    table = analysis.sensitivity_table(tmp_path, "atsuko", "sims", "band_mask_rate", [0.1], [1],
                                       synthetic=True, preset="small", max_epochs=1)
    assert list(table.run_ids) == ["full"] and list(table["mean"]) == [0.50]
    assert np.isnan(table["std"][0]) and list(table.seeds) == [1]      # one seed: no spread, not 0
    table = analysis.sensitivity_table(tmp_path, "atsuko", "sims", "lambda_ent", [2.0], [1],
                                       synthetic=True, preset="small", max_epochs=1)
    assert list(table.run_ids) == ["full-ent2"]
    # A value with no run of its own, and runs trained with another max_epochs: each message says why.
    default = rows[0]["config"]["lambda_ent"]          # the "full" run's: atsuko's own value
    assert default < 2.0
    with pytest.raises(DataError, match=rf"with lambda_ent=3.0 in .*; the runs of this config have "
                                                 rf"lambda_ent = {default!r}, 2.0$"):
        analysis.sensitivity_table(tmp_path, "atsuko", "sims", "lambda_ent", [3.0], [1], synthetic=True,
                                   preset="small", max_epochs=1)
    with pytest.raises(DataError, match=r"the closest stored run differs in max_epochs: give the --preset"):
        analysis.sensitivity_table(tmp_path, "atsuko", "sims", "lambda_ent", [2.0], [1], synthetic=True,
                                   preset="small", max_epochs=2)
    with pytest.raises(DataError, match=r"no stored run of this model, dataset, layout, data kind and "
                                                 r"these seeds at all"):
        analysis.sensitivity_table(tmp_path, "atsuko", "sims", "lambda_ent", [2.0], [1], aligned=True)


def test_runs_are_matched_on_their_data_file_and_protocol_condition_too(tmp_path):
    """A later run of the same config at a missing rate, or on another data file, took the place of the plain
    one: in a sensitivity point (even mixing two files in one mean), tsne's panels and explain's partner."""
    from types import SimpleNamespace

    from mmsa_atsuko.training.trainer_config import resolve_config
    from mmsa_atsuko.config import config_hash
    from mmsa_atsuko.results import append_record

    standard, corrupt = "synthetic:sims-small-unaligned-seed0-v2", "synthetic:corrupt-s2-sims-small-unaligned-seed0-v2"

    def record(run_id, model, mae, seed=1, data=standard, missing_rate=0.0):
        config = resolve_config(model, "sims", preset="small", max_epochs=1)
        return {"run_id": run_id, "status": "ok", "model": model, "dataset": "sims", "aligned": False, "seed": seed,
                "synthetic": True, "preset": "small", "data": data, "config": dict(config),
                "config_hash": config_hash(config), "metrics": {"MAE": mae, "Mult_acc_2": 0.5},
                "condition": make_condition(missing_rate).as_dict()}

    def store(name, *rows):
        folder = tmp_path / name
        for r in rows:
            append_record(folder, r)
        return folder

    def sensitivity(folder, seeds, **kw):
        return analysis.sensitivity_table(folder, "atsuko", "sims", "band_mask_rate", [0.1], seeds, synthetic=True,
                                          preset="small", max_epochs=1, **kw)

    full, sbn = record("full", "atsuko", 0.50), record("sbn", "atsuko_sbn", 0.60)
    full_masked, sbn_masked = (record("full-mr", "atsuko", 0.90, missing_rate=0.5),
                               record("sbn-mr", "atsuko_sbn", 0.95, missing_rate=0.5))
    two_files = store("sensitivity", full, full_masked, record("seed2", "atsuko", 0.40, seed=2),
                      record("seed2-corrupt", "atsuko", 0.30, seed=2, data=corrupt))
    assert list(sensitivity(two_files, [1]).run_ids) == ["full"]
    with pytest.raises(DataError, match=rf"come from 2 data files \({corrupt}, {standard}\): give each its own"):
        sensitivity(two_files, [1, 2])
    table = sensitivity(two_files, [1, 2], data=standard)
    assert list(table.run_ids) == ["full seed2"] and list(table["mean"]) == [pytest.approx(0.45)]

    assert analysis.ablation_runs(store("tsne", full, sbn, full_masked), "sims") == \
        {"+SBN": "sbn", "full Atsuko (SBN + MCM)": "full"}
    # tsne's default dataset is that of the latest run under the condition drawn, not of the latest run
    later_elsewhere = dict(record("mosi-mr", "atsuko", 0.90, missing_rate=0.5), dataset="mosi")
    assert analysis.ablation_runs(store("tsne-default", full, sbn, later_elsewhere)) == \
        {"+SBN": "sbn", "full Atsuko (SBN + MCM)": "full"}
    partners = store("explain", full, sbn, sbn_masked)
    assert analysis.find_partner_without_mcm(partners, SimpleNamespace(record=full)) == "sbn"
    assert analysis.find_partner_without_mcm(partners, SimpleNamespace(record=full_masked)) == "sbn-mr"


def test_a_sensitivity_point_is_the_leaderboards_cell_when_a_seed_has_no_value(tmp_path):
    """A seed whose key metric is undefined (null in the store: the Corr of constant predictions) made the point NaN,
    mean and std, where the leaderboard's cell leaves that seed out: the figure and the table disagreed on one run."""
    from mmsa_atsuko.training.trainer_config import resolve_config
    from mmsa_atsuko.config import config_hash
    from mmsa_atsuko.results import Cell, append_record

    config = resolve_config("atsuko", "sims", preset="small", max_epochs=1)
    for seed, mae in ((1, 0.5), (2, 0.7), (3, None)):
        append_record(tmp_path, {"run_id": f"seed{seed}", "status": "ok", "model": "atsuko", "dataset": "sims",
                                 "aligned": False, "seed": seed, "synthetic": True, "preset": "small",
                                 "data": "synthetic:sims-small-unaligned-seed0-v2", "config": dict(config),
                                 "config_hash": config_hash(config), "metrics": {"MAE": mae, "Mult_acc_2": 0.5}})
    table = analysis.sensitivity_table(tmp_path, "atsuko", "sims", "band_mask_rate", [0.1], [1, 2, 3],
                                       synthetic=True, preset="small", max_epochs=1)
    # 0.5 and 0.7: mean 0.6, squared deviations 0.01 + 0.01 over n-1 = 1 -> std sqrt(0.02); the null seed is no value
    assert list(table["mean"]) == [pytest.approx(0.6)] and list(table["std"]) == [pytest.approx(0.02 ** 0.5)]
    assert list(table.seeds) == [2] and list(table.run_ids) == ["seed1 seed2 seed3"]
    leaderboard_cell = Cell.of(read_records(tmp_path), "MAE")
    assert (table["mean"][0], table["std"][0], table.seeds[0]) == (leaderboard_cell.mean, leaderboard_cell.std,
                                                                   leaderboard_cell.n)


def test_explain_checkpoint_help_says_its_record_comes_from_results():
    """--checkpoint's help said 'as predict takes it', but a run folder copied out of the store was
    'error: unknown run id ...': explain reads the run's record from --results (found in a user's trial)."""
    from mmsa_atsuko.cli.analysis import explain_parser
    action = next(a for a in explain_parser()._actions if "--checkpoint" in a.option_strings)
    assert action.help == ("a run folder (or its best.pt) whose record is in --results: the folder's name is the run "
                           "id looked up there (unlike predict, which takes a folder from anywhere)")


def test_tsne_panels_share_one_training_seed(tmp_path):
    """A sweep with --jobs 2 appends seeds as they finish: atsuko's seed 1111 landed after its seed 1112, and
    `tsne` (no -s) showed atsuko's seed 1111 beside the other variants' seed 1112 (found in a user's trial)."""
    from mmsa_atsuko.training.trainer_config import resolve_config
    from mmsa_atsuko.config import config_hash
    from mmsa_atsuko.results import append_record

    def record(model, seed):
        config = resolve_config(model, "sims", preset="small", max_epochs=1)
        return {"run_id": f"{model}-{seed}", "status": "ok", "model": model, "dataset": "sims", "aligned": False,
                "seed": seed, "synthetic": True, "preset": "small", "data": "synthetic:sims-small-unaligned-seed0-v2",
                "config": dict(config), "config_hash": config_hash(config), "metrics": {"MAE": 0.5}}

    order = [("atsuko", 1112), ("atsuko", 1111), ("atsuko_base", 1111), ("atsuko_base", 1112),
             ("atsuko_sbn", 1111), ("atsuko_sbn", 1112), ("atsuko_mcm", 1111), ("atsuko_mcm", 1112)]
    for model, seed in order:
        append_record(tmp_path, record(model, seed))
    # Both seeds hold all four variants; seed 1112's group holds the latest run.
    assert analysis.ablation_runs(tmp_path, "sims") == {
        "base (no SBN, no MCM)": "atsuko_base-1112", "+SBN": "atsuko_sbn-1112", "+MCM": "atsuko_mcm-1112",
        "full Atsuko (SBN + MCM)": "atsuko-1112"}
    assert analysis.ablation_runs(tmp_path, "sims", seed=1111) == {
        "base (no SBN, no MCM)": "atsuko_base-1111", "+SBN": "atsuko_sbn-1111", "+MCM": "atsuko_mcm-1111",
        "full Atsuko (SBN + MCM)": "atsuko-1111"}
    # A seed with more variants wins over a later seed with fewer.
    append_record(tmp_path, record("atsuko", 1113))
    assert set(analysis.ablation_runs(tmp_path, "sims").values()) == {
        "atsuko_base-1112", "atsuko_sbn-1112", "atsuko_mcm-1112", "atsuko-1112"}


def test_band_weight_figure_takes_any_number_of_bands(tmp_path):
    """num_bands is a config key; the stacked bars' transparency went below 0 from the fifth band."""
    from mmsa_atsuko.plots.common import MODALITIES
    from mmsa_atsuko.plots.explain import plot_band_weights
    rows = [{"id": sid, "modality": m, **{f"band_{k}": 1 / 6 for k in range(6)}}
            for sid in ("test mean", "a$_$1", "a$_$2") for m in MODALITIES]
    fig = plot_band_weights(pd.DataFrame(rows), "sims", data_tag="synthetic data")
    fig.savefig(tmp_path / "bands.png")
    assert (tmp_path / "bands.png").stat().st_size > 0


def test_classification_runs_through_robustness_and_tsne(tmp_path, capsys):
    """MIntRec (20 classes): clean robustness equals the recorded metrics; t-SNE colours by intent."""
    out = tmp_path / "results"
    record = mmsa_atsuko.run("atsuko", "mintrec", seeds=[1111], synthetic=True, preset="small", max_epochs=1,
                             out=out, quiet=True)[0]
    done = run_in_process(capsys, "robustness", "--run", record["run_id"], "--results", str(out),
                          "--out", str(tmp_path / "rob"))
    assert done.returncode == 0, done.stderr[-3000:]
    table = assert_figure(tmp_path / "rob", f"robustness_{record['run_id']}")
    clean = table[table.corruption == "clean"].iloc[0]
    assert {k: clean[k] for k in ("acc", "f1", "precision", "recall")} == \
        {k: record["metrics"][k] for k in ("acc", "f1", "precision", "recall")}
    done = run_in_process(capsys, "tsne", "-d", "mintrec", "--results", str(out), "--out", str(tmp_path / "tsne"))
    assert done.returncode == 0, done.stderr[-3000:]
    tsne = assert_figure(tmp_path / "tsne", f"tsne_{record['run_id']}")
    from mmsa_atsuko.data.mintrec import label_names
    test_size = len(pd.read_csv(out / record["run_dir"] / "predictions_test.csv"))
    assert set(tsne.label_class) <= set(label_names()) and len(tsne) == test_size


def test_bert_text_runs_corrupt_the_tokens_they_read(tmp_path):
    """The synthetic files carry both `text` and `text_bert`: a BERT model must get its tokens zeroed."""
    out = tmp_path / "results"
    record = mmsa_atsuko.run("atsuko", "sims", seeds=[1111], synthetic=True, preset="small", max_epochs=1,
                             config={"use_bert": True}, out=out, quiet=True)[0]
    run = analysis.load_run(out, record["run_id"])
    assert reads_bert_tokens(run.model)
    table = analysis.robustness_table(run)
    text_rows = table[table.modality == "text"]
    assert list(text_rows.corruption) == ["zero"]           # no noise or frame drops on token ids
    test = run.data.test
    zeroed = analysis.corrupt_split(test, "zero", "text", 1.0, bert_text=True)
    ids, mask = zeroed.tensors["text_bert"][:, 0], zeroed.tensors["text_bert"][:, 1]
    assert int(ids.abs().sum()) == 0 and mask[:, 0].eq(1).all() and int(mask[:, 1:].sum()) == 0
    assert torch.equal(zeroed.tensors["text"], test.tensors["text"])    # the unread features are untouched
    assert np.abs(analysis.predictions(run, zeroed) - analysis.predictions(run, test)).max() > 1e-6


def test_sensitivity_of_a_model_without_the_parameter_is_one_line(tmp_path, capsys):
    # tfn has no lambda_ent: said as such, not as an unknown -c key the user never typed.
    done = run_in_process(capsys, "sensitivity", "-m", "tfn", "-d", "sims", "--param", "lambda_ent", "--synthetic",
                          "--results", str(tmp_path / "results"))
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0
    assert "tfn has no config key lambda_ent" in done.stderr and "-c" not in done.stderr.replace("-m atsuko", "")
    assert not (tmp_path / "results").exists()


def test_a_checkpoint_is_a_run_folder_or_its_best_pt(results):
    # explain takes --checkpoint as predict does: the run folder, or the best.pt inside it.
    out, full, _ = results
    folder = out / full["run_dir"]
    for checkpoint in (folder, folder / "best.pt"):
        run = analysis.load_run(out, checkpoint=checkpoint)
        assert run.run_id == full["run_id"] and run.run_dir == analysis.load_run(out, full["run_id"]).run_dir
    with pytest.raises(UsageError, match="not found"):
        analysis.load_run(out, checkpoint=out / "no-such-run")


@pytest.mark.parametrize("argv, message", [
    (["-d", "sims"], "error: --synthetic-recipe corrupt makes synthetic data: add --synthetic\n"),
    (["-d", "mintrec", "--synthetic"], "error: the corrupt synthetic recipe exists for mosi, mosei, sims, simsv2 "
                                       "only; synthetic mintrec has the standard recipe: drop --synthetic-recipe\n")])
def test_sensitivity_takes_the_synthetic_recipe_with_runs_checks(tmp_path, capsys, argv, message):
    """sensitivity had no --synthetic-recipe: a stress recipe's sensitivity could not be trained or read. It takes
    run's option with run's checks, before any work, --read-only too (nothing to train, the same wrong request)."""
    from mmsa_atsuko.cli import main
    code = main(["sensitivity", *argv, "--synthetic-recipe", "corrupt", "--read-only",
                 "--results", str(tmp_path / "results"), "--out", str(tmp_path / "figures")])
    assert code == 2 and capsys.readouterr().err == message
    assert list(tmp_path.iterdir()) == []


def test_sensitivity_reads_the_runs_of_its_synthetic_recipe(tmp_path, capsys):
    """A store with runs of the standard and the corrupt recipe: each recipe's figure reads its own runs (the
    standard one said '2 data files' and stopped), names the recipe, and sits beside the other's."""
    from mmsa_atsuko.training.trainer_config import resolve_config
    from mmsa_atsuko.cli import main
    from mmsa_atsuko.config import config_hash
    from mmsa_atsuko.results import append_record

    standard, corrupt = "synthetic:sims-small-unaligned-seed0-v2", "synthetic:corrupt-s2-sims-small-unaligned-seed0-v2"
    config = resolve_config("atsuko", "sims", preset="small", max_epochs=1, overrides=[("lambda_ent", 1.0)])
    for run_id, seed, data, mae in (("std-1", 1, standard, 0.50), ("std-2", 2, standard, 0.70),
                                    ("cor-1", 1, corrupt, 0.90), ("cor-2", 2, corrupt, 0.60)):
        append_record(tmp_path / "results", {
            "run_id": run_id, "status": "ok", "model": "atsuko", "dataset": "sims", "aligned": False, "seed": seed,
            "synthetic": True, "preset": "small", "data": data, "config": dict(config),
            "config_hash": config_hash(config), "metrics": {"MAE": mae, "Mult_acc_2": 0.5},
            "git_commit": "c" * 40, "package_version": "0.0.0"})
    argv = ["sensitivity", "-d", "sims", "--synthetic", "--param", "lambda_ent", "--values", "1", "-s", "1", "2",
            "--preset", "small", "--max-epochs", "1", "--read-only", "--results", str(tmp_path / "results"),
            "--out", str(tmp_path / "figures")]
    assert main([*argv, "--synthetic-recipe", "corrupt"]) == 0
    assert main(argv) == 0
    capsys.readouterr()
    stress = assert_figure(tmp_path / "figures", "sensitivity_atsuko_sims-synthetic-corrupt")
    plain = assert_figure(tmp_path / "figures", "sensitivity_atsuko_sims-synthetic")
    for table, run_ids, data, scores in ((stress, "cor-1 cor-2", corrupt, [0.90, 0.60]),
                                         (plain, "std-1 std-2", standard, [0.50, 0.70])):
        assert list(table.run_ids) == [run_ids] and list(table.data) == [data] and list(table.code) == ["c" * 10]
        assert table["mean"][0] == pytest.approx(sum(scores) / 2)
        assert table["std"][0] == pytest.approx(abs(scores[0] - scores[1]) / 2 ** 0.5)   # sample std of two


def test_sensitivity_names_the_code_that_made_its_figures(tmp_path, capsys):
    """As robustness, tsne and explain do: sensitivity_<model>_<dataset>.json beside the figure names the code that
    plotted it (the checkout's HEAD), while the CSV's rows keep the code their runs trained with (here another)."""
    import json
    from mmsa_atsuko.training.trainer_config import resolve_config
    from mmsa_atsuko.cli import main
    from mmsa_atsuko.config import config_hash
    from mmsa_atsuko.results import append_record

    other_code = "c" * 40
    config = resolve_config("atsuko", "sims", preset="small", max_epochs=1, overrides=[("lambda_ent", 1.0)])
    for run_id, seed in (("run-1", 1), ("run-2", 2)):
        append_record(tmp_path / "results", {
            "run_id": run_id, "status": "ok", "model": "atsuko", "dataset": "sims", "aligned": False, "seed": seed,
            "synthetic": True, "preset": "small", "data": "synthetic:sims-small-unaligned-seed0-v2",
            "config": dict(config), "config_hash": config_hash(config), "metrics": {"MAE": 0.5, "Mult_acc_2": 0.5},
            "git_commit": other_code, "package_version": "0.0.0"})
    figures = tmp_path / "figures"
    assert main(["sensitivity", "-d", "sims", "--synthetic", "--param", "lambda_ent", "--values", "1", "-s", "1", "2",
                 "--preset", "small", "--max-epochs", "1", "--read-only", "--results", str(tmp_path / "results"),
                 "--out", str(figures)]) == 0, capsys.readouterr().err
    assert list(assert_figure(figures, "sensitivity_atsuko_sims-synthetic").code) == [other_code[:10]]
    made_by = json.loads((figures / "sensitivity_atsuko_sims-synthetic.json").read_text())
    assert made_by["command"] == "sensitivity" and made_by["package_version"] == mmsa_atsuko.__version__
    assert (made_by["options"]["param"], made_by["options"]["seeds"], made_by["options"]["read_only"]) == (
        ["lambda_ent"], [1, 2], True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode == 0:               # a checkout: its HEAD, '+dirty' when it has local changes
        assert made_by["git_commit"] in (head.stdout.strip(), head.stdout.strip() + "+dirty"), made_by
    assert sorted(p.name for p in figures.iterdir()) == [f"sensitivity_atsuko_sims-synthetic.{ext}"
                                                         for ext in ("csv", "json", "pdf", "png")]


def test_sensitivity_trains_on_its_synthetic_recipe(tmp_path, capsys):
    """The runs sensitivity trains through the sweep are on the recipe asked, and its CSV reads them."""
    done = run_in_process(capsys, "sensitivity", "-d", "sims", "--param", "lambda_ent", "--values", "1", "-s", "1111",
                          "--synthetic", "--synthetic-recipe", "corrupt", "--preset", "small", "--max-epochs", "1",
                          "--results", str(tmp_path / "results"), "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sims synthetic (corrupt recipe) seed 1111" in done.stdout      # the sweep's progress line names it
    (record,) = read_records(tmp_path / "results")
    assert record["data"].startswith("synthetic:corrupt-") and record["config"]["lambda_ent"] == 1.0
    table = assert_figure(tmp_path, "sensitivity_atsuko_sims-synthetic-corrupt")
    assert list(table.run_ids) == [record["run_id"]] and list(table.data) == [record["data"]]
    assert table["mean"][0] == record["metrics"]["MAE"]


def _stored(store: Path, run_id: str, model: str, dataset: str) -> None:
    """A finished run's record alone (no run folder): what robustness reads before it loads any run."""
    from mmsa_atsuko.metrics.names import metric_keys
    from mmsa_atsuko.results import append_record
    append_record(store, {"run_id": run_id, "status": "ok", "model": model, "dataset": dataset, "aligned": False,
                          "seed": 1111, "synthetic": True, "metrics": {k: 0.5 for k in metric_keys(dataset)},
                          "config_hash": f"c-{model}", "config": {}, "data": f"synthetic:{dataset}-small-unaligned",
                          "started_at": "2026-01-01T00:00:01+00:00"})


def test_robustness_refuses_runs_on_several_datasets_and_unknown_ids_from_the_records(tmp_path, capsys, monkeypatch):
    """User trial #3: `robustness --run <tfn on mosi> <atsuko on sims>` ran every test pass of both runs, then said
    'robustness compares runs on one dataset'. #14: `--run nope` said "'nope' is not a run id (expected one like
    ...)" where predict and explain say 'unknown run id'. Both now come from the records, before any run is loaded."""
    from mmsa_atsuko.cli import main
    store = tmp_path / "store"
    mosi, sims = "tfn-mosi-s1111-20260101T000001-abcdef", "atsuko-sims-s1111-20260101T000002-abcdef"
    _stored(store, mosi, "tfn", "mosi")
    _stored(store, sims, "atsuko", "sims")

    def no_work(*args, **kwargs):
        raise AssertionError("a run was loaded before the refusal")
    monkeypatch.setattr(analysis, "load_run", no_work)
    code = main(["robustness", "--run", mosi, sims, "--results", str(store)])
    assert (code, capsys.readouterr().err) == (2, f"error: robustness compares runs on one dataset; these are on 2 "
                                                  f"({mosi} on mosi, {sims} on sims): give the runs of one dataset, "
                                                  f"and run it once per dataset\n")
    unknown = f"error: unknown run id 'nope': no finished run of that id in {store / 'runs.jsonl'}\n"
    assert main(["robustness", "--run", "nope", mosi, "--results", str(store)]) == 2
    assert capsys.readouterr().err == unknown
    # predict and explain say it in the same words, from the same home.
    assert main(["predict", "--run", "nope", "--results", str(store), "--features", "f.pkl",
                 "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == unknown
    assert main(["explain", "--run", "nope", "--results", str(store)]) == 2
    assert capsys.readouterr().err == unknown
    assert not (tmp_path / "out").exists()


def test_the_robustness_figure_shows_a_second_runs_dashes_in_its_legend_and_bars_from_zero():
    """Two runs: the second's noise lines were dashed but its legend entries, two font sizes long with the marker in
    the middle, drew as solid lines; and the zeroed-modality bars started at 90% of the lowest score (0.675 here), so
    0.80 against 0.75 looked three times as tall."""
    from mmsa_atsuko.plots.analyses import plot_robustness
    rows = []
    for run_id, model, clean in (("run-aaaaaa", "tfn", 0.80), ("run-bbbbbb", "lmf", 0.78)):
        rows.append(dict(run_id=run_id, model=model, corruption="clean", modality="", level=0.0, Acc_2=clean))
        for modality in ("text", "audio", "vision"):
            rows += [dict(run_id=run_id, model=model, corruption="noise", modality=modality, level=0.0,
                          Acc_2=clean - 0.01),
                     dict(run_id=run_id, model=model, corruption="frame_drop", modality=modality, level=0.5,
                          Acc_2=clean - 0.02),
                     dict(run_id=run_id, model=model, corruption="zero", modality=modality, level=0.0,
                          Acc_2=clean - 0.05)]
    fig = plot_robustness(pd.DataFrame(rows), "Acc_2", True, False)
    try:
        for ax in fig.axes[:2]:
            legend = ax.get_legend()
            handles = legend.legend_handles
            assert [h.get_linestyle() for h in handles] == ["-"] * 3 + ["--"] * 3
            for line in handles[3:]:
                # points of line each side of the marker, against one dash and its gap (dash pattern x linewidth)
                side = (legend.handlelength * legend.prop.get_size() - line.get_markersize()) / 2
                assert side >= sum(line._dash_pattern[1]), (side, line._dash_pattern)
        low, high = fig.axes[2].get_ylim()
        assert low == 0 and high >= 0.80
    finally:
        import matplotlib.pyplot as plt
        plt.close(fig)


def test_two_runs_with_equal_robustness_lines_are_both_seen():
    """Two runs whose noise and frame-drop lines are equal drew the second's dashed line and round markers exactly over
    the first's solid ones, which it hid. Each run has its marker (the second's hollow), and the second's lines sit 4
    points to the side of the first's on screen, their values unmoved and inside the axes' limits."""
    from mmsa_atsuko.plots.analyses import plot_robustness
    rows = []
    for run_id in ("run-aaaaaa", "run-bbbbbb"):                       # the same model, the same numbers
        rows.append(dict(run_id=run_id, model="tfn", corruption="clean", modality="", level=0.0, Acc_2=0.80))
        for modality in ("text", "audio", "vision"):
            rows += [dict(run_id=run_id, model="tfn", corruption="noise", modality=modality, level=10.0, Acc_2=0.78),
                     dict(run_id=run_id, model="tfn", corruption="frame_drop", modality=modality, level=0.5,
                          Acc_2=0.77),
                     dict(run_id=run_id, model="tfn", corruption="zero", modality=modality, level=0.0, Acc_2=0.75)]
    fig = plot_robustness(pd.DataFrame(rows), "Acc_2", "", False)
    try:
        for ax in fig.axes[:2]:
            first, second = ax.get_lines()[:3], ax.get_lines()[3:]
            assert len(second) == 3
            for a, b in zip(first, second):
                assert a.get_marker() == "o" and a.get_markerfacecolor() == a.get_color()
                assert b.get_marker() == "s" and b.get_markerfacecolor() == "none"
                assert np.array_equal(a.get_xydata(), b.get_xydata())         # the values are where they were
                on_a = a.get_transform().transform(a.get_xydata())
                on_b = b.get_transform().transform(b.get_xydata())
                assert np.allclose(on_b[:, 0] - on_a[:, 0], 4 * fig.dpi / 72) and np.allclose(on_b[:, 1], on_a[:, 1])
            low, high = ax.get_ylim()
            values = np.concatenate([line.get_ydata() for line in ax.get_lines()])
            assert low < values.min() and high > values.max()               # the limits hold every value
    finally:
        import matplotlib.pyplot as plt
        plt.close(fig)


@pytest.mark.parametrize("argv, says", [
    (["explain", "--run", "nope"], "unknown run id 'nope'"),
    (["explain", "-d", "mosi", "--run", "atsuko-sims-s1111-20260101T000002-abcdef"], "is on sims, not mosi"),
    (["robustness", "--run", "nope"], "unknown run id 'nope'"),
    (["tsne", "-d", "mosi"], "no Atsuko runs on mosi"),
    (["sensitivity", "-d", "sims", "--param", "lambda_ent", "--values", "0", "-s", "1111", "--read-only"],
     "no finished atsuko run on sims with lambda_ent=0.0"),
])
def test_an_analysis_command_refuses_before_it_makes_a_folder(tmp_path, capsys, argv, says):
    """explain made <results>/analysis before it looked the run id up, so `explain --run nope` left an empty
    analysis/ beside the store; tsne and sensitivity too. A refusal writes nothing."""
    from mmsa_atsuko.cli import main
    store = tmp_path / "store"
    _stored(store, "atsuko-sims-s1111-20260101T000002-abcdef", "atsuko", "sims")
    before = sorted(p.name for p in store.iterdir())
    code = main([*argv, "--results", str(store)])
    printed, err = capsys.readouterr()
    assert code != 0 and printed == "" and len(err.strip().splitlines()) == 1 and says in err, err
    assert sorted(p.name for p in store.iterdir()) == before


def test_tsne_draws_the_plain_runs_unless_a_condition_is_asked(tmp_path):
    """A store of a plain atsuko run and a later one at missing rate 0.6: `tsne -d mosi` drew the 0.6 run (one
    variant each: the tie went to the latest) and its line, title and CSV never named the condition (found in a
    new user's trial). The plain run is drawn by default, as sensitivity reads plain runs alone."""
    from mmsa_atsuko.training.trainer_config import resolve_config
    from mmsa_atsuko.config import config_hash
    from mmsa_atsuko.results import append_record

    def record(run_id, missing_rate):
        config = resolve_config("atsuko", "sims", preset="small", max_epochs=1)
        return {"run_id": run_id, "status": "ok", "model": "atsuko", "dataset": "sims", "aligned": False,
                "seed": 1111, "synthetic": True, "preset": "small", "data": "synthetic:sims-small-unaligned-seed0-v2",
                "config": dict(config), "config_hash": config_hash(config), "metrics": {"MAE": 0.5},
                "condition": make_condition(missing_rate).as_dict()}
    for run_id, rate in (("plain", 0.0), ("masked", 0.6)):
        append_record(tmp_path, record(run_id, rate))
    assert analysis.ablation_runs(tmp_path, "sims") == {"full Atsuko (SBN + MCM)": "plain"}
    assert analysis.ablation_runs(tmp_path, "sims", condition=make_condition(0.6)) == \
        {"full Atsuko (SBN + MCM)": "masked"}
    with pytest.raises(UsageError, match=r"no Atsuko runs on sims under missing_rate=0.3 in .*; its runs are under "
                                         r"the plain condition, missing_rate=0.6: choose one with --missing-rate"):
        analysis.ablation_runs(tmp_path, "sims", condition=make_condition(0.3))


def test_tsne_names_the_condition_of_the_runs_it_draws(results, tmp_path):
    import shutil
    out, full, no_mcm = results
    store = tmp_path / "store"
    shutil.copytree(out, store)
    masked = mmsa_atsuko.run("atsuko", "sims", seeds=[1111], synthetic=True, preset="small", max_epochs=1,
                             out=store, quiet=True, conditions=(make_condition(0.6),))[0]
    done = run_cli("tsne", "-d", "sims", "--missing-rate", "0.6", "--results", str(store), "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    table = assert_figure(tmp_path, f"tsne_{masked['run_id']}")
    assert set(table.run_id) == {masked["run_id"]} and set(table.condition) == {"missing_rate=0.6"}
    assert (f"tsne panel full Atsuko (SBN + MCM): run {masked['run_id']} (seed 1111, condition missing_rate=0.6, "
            f"config {masked['config_hash']}, max_epochs 1, best epoch {masked['best_epoch']})") in done.stdout
    # Without a condition: the plain runs, their condition column empty (the leaderboard CSV's plain condition).
    done = run_cli("tsne", "-d", "sims", "--results", str(store), "--out", str(tmp_path / "plain"))
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(tmp_path / "plain" / f"tsne_{full['run_id']}.csv", keep_default_na=False)
    assert set(table.run_id) == {full["run_id"], no_mcm["run_id"]} and set(table.condition) == {""}
    assert ", condition " not in done.stdout
    done = run_cli("tsne", "-d", "sims", "--modalities", "TX", "--results", str(store), "--out", str(tmp_path / "x"))
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "--modalities" in done.stderr
    assert not (tmp_path / "x").exists()


def test_robustness_has_no_rows_of_a_modality_the_run_never_saw(tmp_path):
    """A tfn run trained with --modalities TA got 9 vision rows of one MAE (an empty input corrupted is still
    empty), nothing marking vision as absent: they are left out, said in a line, and every row names the
    condition."""
    out = tmp_path / "results"
    record = mmsa_atsuko.run("tfn", "sims", seeds=[1111], synthetic=True, preset="small", max_epochs=1, out=out,
                             quiet=True, conditions=(make_condition(0.0, None, "TA"),))[0]
    assert analysis.modalities_present(record) == ("text", "audio")
    assert analysis.modalities_present({"condition": make_condition(0.3, "A").as_dict()}) == ("text", "vision")
    done = run_cli("robustness", "--run", record["run_id"], "--results", str(out), "--out", str(tmp_path / "rob"))
    assert done.returncode == 0, done.stderr[-3000:]
    table = assert_figure(tmp_path / "rob", f"robustness_{record['run_id']}")
    assert set(table.modality) == {"none", "text", "audio"} and set(table.condition) == {"modalities=TA"}
    assert (f"robustness {record['run_id']}: no vision rows: the run never saw it (modalities=TA), so corrupting "
            f"it would change nothing") in done.stdout.splitlines()
    from mmsa_atsuko.plots.analyses import plot_robustness
    fig = plot_robustness(table, "MAE", "synthetic data", True)           # the CSV read back, as a user would
    assert [t.get_text() for t in fig.axes[2].get_xticklabels()] == \
        ["clean", "text\nzeroed", "audio\nzeroed", "vision\nnever seen"]
    assert "Robustness of tfn [modalities=TA]: " in fig._suptitle.get_text()


@pytest.mark.parametrize("seed", ["-1", "4294967296"])
def test_a_tsne_seed_sklearn_refuses_is_one_line_before_any_work(tmp_path, capsys, monkeypatch, seed):
    """--tsne-seed -1 (and 2**32) was sklearn's InvalidParameterError traceback, exit 1, after every panel's
    forward pass: now one line, exit 2, before the store is read."""
    from mmsa_atsuko.cli import main

    def no_work(*args, **kwargs):
        raise AssertionError("read the store")
    monkeypatch.setattr(analysis, "ablation_runs", no_work)
    code = main(["tsne", "-d", "sims", "--aligned", "--tsne-seed", seed, "--results", str(tmp_path / "store")])
    printed, err = capsys.readouterr()
    assert (code, printed, err) == (2, "", f"error: --tsne-seed must be in 0..4294967295 (sklearn's random_state), "
                                           f"got {seed}\n")
    assert not (tmp_path / "store").exists()
    monkeypatch.undo()
    assert main(["tsne", "--tsne-seed", "4294967295", "--results", str(tmp_path / "store")]) == 2    # no runs, so
    assert "no Atsuko runs" in capsys.readouterr().err                                             # past the seed


@pytest.mark.parametrize("read_only", [[], ["--read-only"]])
def test_a_sensitivity_value_out_of_range_blames_values(tmp_path, capsys, read_only):
    """`sensitivity --param band_mask_rate --values 1.5` blamed "command-line override -c", which the user never
    passed (found in a new user's trial): --values is named, before anything is trained or read."""
    from mmsa_atsuko.cli import main
    code = main(["sensitivity", "-d", "sims", "--param", "band_mask_rate", "--values", "0.1", "1.5", "-s", "1111",
                 "--synthetic", "--preset", "small", "--max-epochs", "1", "--results", str(tmp_path / "r"),
                 *read_only])
    assert (code, *capsys.readouterr()) == (2, "", "error: --values: band_mask_rate must be in [0, 1), got 1.5\n")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv, message", [
    (["--param", "lambda_ent", "--values", "0.1", "0.5", "0.10"], "--values repeats 0.1"),
    (["--param", "lambda_ent", "--values", "2", "1e-1", "2", "0.1"], "--values repeats 2, 0.1"),
    (["--param", "lambda_ent", "band_mask_rate", "lambda_ent"], "--param repeats lambda_ent")])
def test_a_repeated_sensitivity_value_is_refused_and_named(tmp_path, capsys, argv, message):
    """`--values 0.1 0.1` swept the value twice and wrote its point twice: refused in one line naming the value
    (as a float: 0.10 and 1e-1 are 0.1), before anything is trained or read; never dropped without a word."""
    from mmsa_atsuko.cli import main
    code = main(["sensitivity", "-d", "sims", *argv, "-s", "1111", "--synthetic", "--preset", "small",
                 "--max-epochs", "1", "--results", str(tmp_path / "r")])
    assert (code, *capsys.readouterr()) == (2, "", f"error: {message}: each is one point of the figure, so give "
                                                   f"each once\n")
    assert not (tmp_path / "r").exists()


def test_tsne_on_a_modality_subset_is_refused_naming_the_models_that_train_on_one(tmp_path, capsys):
    """`tsne --modalities TA` was taken, though no Atsuko variant trains on a subset: its line told the user to choose
    a condition "as run.py took them", which run.py refuses for Atsuko, and a hand-made record under TA was drawn.
    One line now, before torch, naming the models that can (their registrations' `modality_subsets`)."""
    import json

    from mmsa_atsuko.cli import main
    store = tmp_path / "store"
    store.mkdir()
    hand_made = {"run_id": "atsuko-mosi-s1111-20260101T000000-aaaaaa", "status": "ok", "model": "atsuko",
                 "dataset": "mosi", "aligned": False, "seed": 1111, "synthetic": True, "metrics": {"MAE": 0.5},
                 "config_hash": "h", "config": {"use_sbn": True, "use_mcm": True},
                 "data": "synthetic:mosi-small-unaligned-seed0-v2", "condition": {"modalities": "TA"}}
    (store / "runs.jsonl").write_text(json.dumps(hand_made) + "\n")
    assert main(["tsne", "--modalities", "TA", "--results", str(store)]) == 2
    assert capsys.readouterr() == ("", "error: tsne reads runs of atsuko, atsuko_base, atsuko_sbn, atsuko_mcm, none "
                                       "of which trains on a modality subset (--modalities TA; run.py refuses them), "
                                       "so there are none to draw; only emoe, late_fusion, lmf, misa, mult, self_mm, "
                                       "tfn train on subsets: drop --modalities\n")
    assert sorted(p.name for p in store.iterdir()) == ["runs.jsonl"]


def test_explain_refuses_an_out_folder_holding_another_runs_explain(results, tmp_path, capsys, monkeypatch):
    """`explain --out DIR` writes into DIR itself: a second run explained into the same DIR replaced the first's
    files (found in a new user's trial). Refused before any work; the same run again replaces its own files."""
    from mmsa_atsuko.cli import main
    out, full, no_mcm = results
    figures = tmp_path / "figures"
    figures.mkdir()
    earlier = f"id,label,pred,run_id\na,0.5,0.4,{no_mcm['run_id']}\n"
    (figures / "modality_weights.csv").write_text(earlier)

    def no_work(*args, **kwargs):
        raise AssertionError("loaded the run")
    monkeypatch.setattr(analysis, "load_run", no_work)
    code = main(["explain", "--run", full["run_id"], "--samples", "2", "--results", str(out), "--out", str(figures)])
    assert (code, *capsys.readouterr()) == (2, "", (
        f"error: output folder {figures} holds the explain figures of run {no_mcm['run_id']}; explaining run "
        f"{full['run_id']} there would replace them: give it its own --out (or none: "
        f"<results>/analysis/explain_<run id>, a folder per run)\n"))
    assert [p.name for p in figures.iterdir()] == ["modality_weights.csv"]
    assert (figures / "modality_weights.csv").read_text() == earlier
    monkeypatch.undo()
    (figures / "modality_weights.csv").write_text(earlier.replace(no_mcm["run_id"], full["run_id"]))
    assert main(["explain", "--run", full["run_id"], "--samples", "2", "--results", str(out),
                 "--out", str(figures)]) == 0
    assert set(pd.read_csv(figures / "modality_weights.csv").run_id) == {full["run_id"]}
