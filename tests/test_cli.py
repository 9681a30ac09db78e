"""End to end through the CLI: TFN on small synthetic sims and mosi; bad command lines."""
import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import (KILL_THE_SWEEP_AFTER_EPOCH_1, SPOILS, checkout_with, die_before_last_pt_of_epoch, history_scalars,
                      latefuse, run_in_checkout, same_scalars, spoil_resumable_folder, tensorboard_scalars)

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, cwd=None):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=env, timeout=600)


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    proc = cli("-m", "tfn", "-d", "sims", "mosi", "-s", "1111", "1112", "--synthetic", "--preset", "small",
               "--quiet", "--out", str(out))
    return proc, out


def test_e2e_records(e2e):
    proc, out = e2e
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert [(r["dataset"], r["seed"]) for r in records] == [("sims", 1111), ("sims", 1112), ("mosi", 1111), ("mosi", 1112)]
    for r in records:
        assert r["model"] == "tfn" and r["synthetic"] is True and r["status"] == "ok"
        assert r["data"].startswith("synthetic:")
        assert 1 <= r["best_epoch"] <= r["epochs_run"] <= 4            # small preset caps at 4 epochs
        assert r["config"]["max_epochs"] == 4 and len(r["config_hash"]) == 12
        assert r["run_dir"] == f"runs/{r['run_id']}" and (out / r["run_dir"] / "best.pt").exists()   # relative to --out
    keys = {"sims": {"Mult_acc_2", "Mult_acc_3", "Mult_acc_5", "F1_score", "MAE", "Corr", "Loss"},
            "mosi": {"Has0_acc_2", "Non0_acc_2", "Mult_acc_7", "Mult_acc_3", "MAE", "Corr", "Loss"}}
    for r in records:
        assert keys[r["dataset"]] <= set(r["metrics"])
    assert "(synthetic data)" in proc.stdout


def test_e2e_predictions_reproduce_the_recorded_metrics(e2e):
    from mmsa_atsuko.metrics import compute_metrics
    _, out = e2e
    for line in (out / "runs.jsonl").read_text().splitlines():
        r = json.loads(line)
        preds = pd.read_csv(out / r["run_dir"] / "predictions_test.csv", dtype={"id": str})
        assert list(preds.columns[:3]) == ["id", "label", "pred"]
        assert preds["id"].str.startswith("synthetic:").all()
        assert len(preds) == len(set(preds["id"]))
        again = compute_metrics(r["dataset"], preds["pred"].to_numpy("float32"), preds["label"].to_numpy("float32"))
        for k in ("MAE", "Mult_acc_5"):
            assert again[k] == pytest.approx(r["metrics"][k], abs=1e-6)


def test_e2e_mmsa_csv_rows(e2e):
    from mmsa_atsuko.results import mmsa_cell, mmsa_seed_value
    _, out = e2e
    records = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    with open(out / "normal" / "sims-synthetic.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["Model"] for r in rows] == ["tfn"]
    sims = [r for r in records if r["dataset"] == "sims"]
    assert rows[0]["MAE"] == mmsa_cell([mmsa_seed_value("sims", "MAE", r["metrics"]["MAE"]) for r in sims])
    # the row names the runs it averages, as runs.jsonl holds them
    assert (rows[0]["seeds"], rows[0]["run_ids"]) == ("1111 1112", " ".join(r["run_id"] for r in sims))
    assert (rows[0]["aligned"], rows[0]["config_hash"], rows[0]["data"]) == ("False", sims[0]["config_hash"],
                                                                             sims[0]["data"])
    assert not (out / "normal" / "sims.csv").exists()     # synthetic never shares a file with real


def test_determinism_through_the_api(tmp_path):
    import mmsa_atsuko
    kw = dict(seeds=[5], synthetic=True, preset="small", device="cpu", quiet=True)
    a = mmsa_atsuko.run("tfn", "mosi", out=tmp_path / "a", **kw)[0]
    b = mmsa_atsuko.run("tfn", "mosi", out=tmp_path / "b", **kw)[0]
    assert a["metrics"] == b["metrics"] and a["config_hash"] == b["config_hash"] and a["data"] == b["data"]
    import torch
    assert a["torch_threads"] == torch.get_num_threads()


@pytest.mark.parametrize("args, message", [
    (["-m", "tfnn", "-d", "sims"], "unknown model 'tfnn'"),
    (["-m", "tfn", "-d", "simz"], "unknown dataset 'simz'"),
    (["-m", "tfn", "-d", "sims", "-c", "learnin_rate=1"], "closest known: learning_rate"),
    (["-m", "tfn", "-d", "sims", "-c", "batch_size=big"], "batch_size must be an int"),
    (["-m", "tfn", "-d", "sims", "--device", "tpu"], "--device"),
    (["-m", "tfn", "-d", "sims", "--aligned", "--synthetic"], "aligned"),
    (["-m", "tfn"], "required: -d/--dataset"),
    (["-m", "tfn", "-d", "sims", "--preset", "huge"], "unknown preset 'huge'"),
    # Values that cannot train stop the request before it reads data or writes a folder.
    (["-m", "tfn", "-d", "sims", "--synthetic", "--max-epochs", "0"], "--max-epochs: max_epochs must be at least 1, got 0"),
    (["-m", "tfn", "-d", "sims", "--synthetic", "-c", "grad_accum=0"], "command-line override -c: grad_accum must be at least 1"),
    (["-m", "tfn", "-d", "sims", "--synthetic", "-c", "batch_size=-1"], "command-line override -c: batch_size must be at least 1"),
    (["-m", "tfn", "-d", "sims", "--synthetic", "-c", "early_stop=0"], "command-line override -c: early_stop must be at least 1"),
    (["-m", "tfn", "-d", "sims", "--synthetic", "-c", "learning_rate=-1"], "command-line override -c: learning_rate must be positive, got -1.0"),
    (["-m", "tfn", "-d", "sims", "--synthetic", "-c", "learning_rate=1e999"], "learning_rate must be a finite number"),
    (["-m", "tfn", "-d", "sims", "--synthetic", "-c", "learning_rate=nan"], "learning_rate must be a finite number"),
    (["-m", "tfn", "-d", "sims", "--synthetic", "-c", "scheduler=plateau", "-c", "scheduler_factor=2"],
     "command-line override -c: scheduler_factor must be between 0 and 1"),
    (["-m", "tfn", "-d", "sims", "--synthetic", "-c", "scheduler=cosine"], "command-line override -c: scheduler must be one of none, plateau"),
    (["-m", "tfn", "-d", "sims", "--synthetic", "-c", "grad_clip=0"], "command-line override -c: grad_clip must be null or positive, got 0.0"),
    (["-m", "tfn", "-d", "sims", "--synthetic", "-c", "weight_decay=-1"], "command-line override -c: weight_decay must be 0 or more"),
    (["-m", "tfn", "-d", "sims", "--synthetic", "-c", "eval_batch_size=0"],
     "command-line override -c: eval_batch_size must be null or at least 1, got 0"),
    (["-m", "tfn", "-d", "sims", "--synthetic", "-c", "scheduler_patience=-1"],
     "command-line override -c: scheduler_patience must be 0 or more"),
    (["-m", "tfn", "-d", "sims", "--synthetic", "-c", "grad_clip_mode=both"],
     "command-line override -c: grad_clip_mode must be one of value, norm"),
    # A metric of mosi but not of sims: the sims job fails before the mosi job trains.
    (["-m", "tfn", "-d", "mosi", "sims", "--synthetic", "-c", "key_eval=Has0_acc_2"], "command-line override -c: key_eval must be a metric of sims"),
    (["-m", "tfn", "-d", "sims", "--synthetic", "-s", "1111", "1111"], "seed 1111 is given twice"),
    # The last value won without a word.
    (["-m", "tfn", "-d", "sims", "--synthetic", "-c", "key_eval=MAE", "-c", "key_eval=Loss"],
     "-c key_eval is given twice ('MAE' and 'Loss'); give it once"),
    (["-m", "tfn", "-d", "sims", "--synthetic", "-s", "-5"], "seed -5 is out of range"),
])
def test_bad_command_lines_exit_2_with_one_line(tmp_path, capsys, args, message):
    # in process (the same main() run.py calls), to keep the suite fast; the exit code path
    # through a real process is covered by test_missing_data_file_... below
    from mmsa_atsuko.cli import main
    try:
        code = main([*args, "--out", str(tmp_path / "out")])
    except SystemExit as e:          # argparse errors leave through SystemExit, as in a real run
        code = e.code
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert not (tmp_path / "out").exists()


def test_every_help_names_the_datasets_and_models_options(capsys):
    # --datasets and --models are taken by main() before any parser, so each help has to say they exist.
    from mmsa_atsuko.cli import COMMANDS, main
    for command in [*COMMANDS, None]:
        with pytest.raises(SystemExit) as done:
            main([command, "--help"] if command else ["--help"])
        assert done.value.code == 0
        text = " ".join(capsys.readouterr().out.split())
        assert "--datasets FILE" in text and "--models DIR" in text, command


def test_a_misspelled_command_is_named_as_one(capsys):
    from mmsa_atsuko.cli import main
    assert main(["lst"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: unknown command 'lst'; did you mean list? (commands: list, synth,")
    assert main(["frobnicate", "-m", "tfn", "-d", "sims"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "unknown command 'frobnicate' (commands:" in line and "did you mean" not in line


def test_a_long_option_is_never_guessed_from_its_prefix(tmp_path, capsys):
    """`leaderboard --out DIR` (run and sweep call their results folder --out) was read as
    `--output DIR` by argparse's prefix matching: a file written where a folder was meant."""
    from mmsa_atsuko.cli import main
    target = tmp_path / "results"
    for args, guess in ((["leaderboard", "--out", str(target)], "--out"),
                        (["leaderboard", "--res", str(target)], "--res"),
                        (["-m", "tfn", "-d", "sims", "--synth", "--out", str(target)], "--synth")):
        try:
            code = main(args)
        except SystemExit as e:
            code = e.code
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and f"unrecognized arguments: {guess}" in err[0], err
    assert not target.exists()


@pytest.mark.parametrize("args", [["leaderboard", "--out", "r"], ["leaderboard", "--out=r"], ["verify", "--out", "r"]])
def test_out_on_a_command_that_reads_the_results_folder_names_results(args, capsys):
    """run and sweep write the results folder with --out; leaderboard reads it with --results, and its error
    said only `unrecognized arguments: --out r`."""
    from mmsa_atsuko.cli import main
    try:
        code = main(args)
    except SystemExit as e:
        code = e.code
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "; the results folder that run and sweep write with --out is --results here" in line


@pytest.mark.parametrize("args, line", [
    (["tune", "-m", "tfn", "-d", "mosi", "--trails", "2"],
     "run.py tune: error: unrecognized arguments: --trails 2; did you mean --trials?"),
    (["tune", "--trails", "2"], "run.py tune: error: unrecognized arguments: --trails 2; did you mean --trials?"),
    (["--seed", "3"], "run.py: error: unrecognized arguments: --seed 3; did you mean --seeds?"),   # -m, -d missing too
    (["predict", "--out", "o", "--feature", "x.pkl"],
     "run.py predict: error: unrecognized arguments: --feature x.pkl; did you mean --features?"),
    (["compare", "--against", "tfn", "--modle", "atsuko"],
     "run.py compare: error: unrecognized arguments: --modle atsuko; did you mean --model?"),
    (["tune", "-m", "tfn", "-d", "mosi"], "run.py tune: error: the following arguments are required: --trials"),
])
def test_an_unknown_option_is_named_before_a_required_one_it_hid(args, line, capsys):
    """`tune ... --trails 2` said only "the following arguments are required: --trials": argparse checks the
    required options first, so the typo that left one out went unnamed. Every command names it now, with the
    closest option name (`OneLineParser._close_options_hint`)."""
    from mmsa_atsuko.cli import main
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert (exit_.value.code, capsys.readouterr().err) == (2, f"{line} (see --help)\n")


@pytest.mark.parametrize("args, line", [
    (["-m", "tfn", "-d", "mosi", "--synthtic", "--preest=small"], "run.py: error: unrecognized arguments: --synthtic "
     "--preest=small; did you mean --synthetic for --synthtic, --preset for --preest?"),
    (["tsne", "--modalites", "TA"], "run.py tsne: error: unrecognized arguments: --modalites TA; did you mean "
                                    "--modalities?"),
    (["sensitivity", "-d", "mosi", "--value", "1"], "run.py sensitivity: error: unrecognized arguments: --value 1; "
                                                    "did you mean --values?"),
    (["leaderboard", "--dataset", "mosi", "--bogus"], "run.py leaderboard: error: unrecognized arguments: --bogus"),
    (["leaderboard", "--out", "r"], "run.py leaderboard: error: unrecognized arguments: --out r; the results folder "
                                    "that run and sweep write with --out is --results here"),   # not --output
    # main() takes --datasets FILE and --models DIR for every command; `--models` for `leaderboard --model tfn` then
    # said "model folder .../tfn does not exist": their singulars are said to be no option of the command
    (["clean", "--dataset", "d.yaml"], "run.py clean: error: unrecognized arguments: --dataset d.yaml; this command "
                                       "takes no --dataset (--datasets FILE is a YAML file of datasets of your own)"),
    (["leaderboard", "--model", "tfn"], "run.py leaderboard: error: unrecognized arguments: --model tfn; this command "
                                        "takes no --model (--models DIR is a folder of models of your own)"),
    (["clean", "--modle", "x"], "run.py clean: error: unrecognized arguments: --modle x; did you mean --models?"),
])
def test_an_unknown_option_gets_the_closest_option_name_in_every_command(args, line, capsys):
    """`tune --trails 2` got argparse's line alone, as did every command's typo: each names the closest of its own
    options and those every command takes, from one place (cli/common.py), and none where nothing is close."""
    from mmsa_atsuko.cli import main
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert (exit_.value.code, capsys.readouterr().err) == (2, f"{line} (see --help)\n")


def test_another_unknown_option_gets_no_results_hint(capsys):
    from mmsa_atsuko.cli import main
    try:
        code = main(["leaderboard", "--bogus"])
    except SystemExit as e:
        code = e.code
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "unrecognized arguments: --bogus" in line and "--results here" not in line


def test_every_config_is_checked_before_any_data_is_read(tmp_path, capsys, monkeypatch):
    """atsuko's config is fine; tfn's has no use_sbn. The error comes before atsuko's synthetic
    data is written (or real data read)."""
    from mmsa_atsuko.cli import main
    monkeypatch.setenv("MMSA_ATSUKO_CACHE", str(tmp_path / "cache"))
    code = main(["-m", "atsuko", "tfn", "-d", "sims", "--synthetic", "-c", "use_sbn=false",
                 "--out", str(tmp_path / "out")])
    assert code == 2 and "unknown config key 'use_sbn'" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, message", [
    (["-d", "mosi", "sims", "--synthetic", "--aligned"], "sims has no aligned setting"),
    (["-d", "mosi", "mintrec", "--synthetic", "--synthetic-recipe", "bands"], "synthetic mintrec has the standard recipe"),
    (["-d", "mosi", "sims", "--aligned"], "sims has no aligned feature file"),
])
def test_every_datasets_setting_is_checked_before_the_first_is_generated_or_read(tmp_path, capsys, monkeypatch,
                                                                                  argv, message):
    """A setting one dataset lacks was found only after the datasets before it were generated or read (with
    real data: all of MOSEI before `-d mosei sims --aligned` said that sims has no aligned file)."""
    from mmsa_atsuko.cli import main
    monkeypatch.setenv("MMSA_ATSUKO_CACHE", str(tmp_path / "cache"))
    where = [] if "--synthetic" in argv else ["--data-root", str(tmp_path / "data")]
    code = main(["-m", "tfn", *argv, "--preset", "small", "-s", "1", *where, "--out", str(tmp_path / "out")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, message", [
    (["--synthetic-size", "full"], "error: --synthetic-size full sizes generated data: add --synthetic, or drop "
                                   "--synthetic-size to train on the feature files"),
    (["--synthetic", "--data-root", "DATA"], "error: --synthetic generates its own data files (in the cache, "
                                             "$MMSA_ATSUKO_CACHE); drop --data-root, or drop --synthetic to train "
                                             "on the files under it"),
])
def test_a_data_option_that_synthetic_data_would_ignore_is_one_line(tmp_path, capsys, monkeypatch, argv, message):
    """Each was ignored: --synthetic-size full without --synthetic trained on the real file (here, a file of the
    small synthetic recipe put under the data root), --data-root with --synthetic on the cache's small file."""
    from mmsa_atsuko.cli import main
    from mmsa_atsuko.data.synthetic import write_synthetic
    monkeypatch.setenv("MMSA_ATSUKO_CACHE", str(tmp_path / "cache"))
    write_synthetic("mosi", tmp_path / "data" / "MOSI" / "Processed" / "unaligned_50.pkl", size="small")
    argv = [str(tmp_path / "data") if a == "DATA" else a for a in argv]
    where = [] if "--data-root" in argv else ["--data-root", str(tmp_path / "data")]
    code = main(["-m", "tfn", "-d", "mosi", *argv, *where, "--preset", "small", "-s", "1", "--max-epochs", "1",
                 "--quiet", "--out", str(tmp_path / "out")])
    assert (code, capsys.readouterr().err) == (2, message + "\n")
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()
    for kept in (["--synthetic", "--synthetic-size", "small"], ["--data-root", str(tmp_path / "data")]):
        assert main(["-m", "tfn", "-d", "mosi", *kept, "--preset", "small", "-s", "1", "--max-epochs", "1",
                     "--quiet", "--out", str(tmp_path / "out")]) == 0


def test_the_sweep_and_api_run_refuse_a_data_option_synthetic_data_would_ignore(tmp_path, capsys, monkeypatch):
    """run.py refused these; the sweep (options or its file's keys) and mmsa_atsuko.run(...) planned or trained
    without a word: on the cache's small synthetic file whatever --data-root said, on the real file whatever
    --synthetic-size said."""
    import mmsa_atsuko
    from mmsa_atsuko.cli import main
    from mmsa_atsuko.errors import UsageError
    monkeypatch.setenv("MMSA_ATSUKO_CACHE", str(tmp_path / "cache"))
    data, out = str(tmp_path / "data"), tmp_path / "out"
    sweep_file = tmp_path / "s.yaml"
    size_line = ("--synthetic-size full sizes generated data: add --synthetic, or drop --synthetic-size to train on "
                 "the feature files")
    root_line = ("--synthetic generates its own data files (in the cache, $MMSA_ATSUKO_CACHE); drop --data-root, or "
                 "drop --synthetic to train on the files under it")
    cases = [
        ([], ["--synthetic-size", "full"], size_line),
        ([], ["--synthetic", "--data-root", data], root_line),
        (["synthetic_size: full"], [], f"{sweep_file}: synthetic_size full sizes generated data: add --synthetic (or "
                                       f"synthetic: true), or drop synthetic_size to train on the feature files"),
        (["synthetic: true"], ["--data-root", data], f"{sweep_file}: synthetic generates its own data files (in the "
         f"cache, $MMSA_ATSUKO_CACHE); drop --data-root, or drop synthetic to train on the files under it"),
        ([f"data_root: {data}"], ["--synthetic"], f"{sweep_file}: --synthetic generates its own data files (in the "
         f"cache, $MMSA_ATSUKO_CACHE); drop data_root, or drop --synthetic to train on the files under it"),
    ]
    for keys, argv, message in cases:
        sweep_file.write_text("\n".join([*keys, "experiments:", "  - models: [tfn]", "    datasets: [mosi]"]) + "\n")
        where = [str(sweep_file)] if keys else ["-m", "tfn", "-d", "mosi"]
        for dry in ([], ["--dry-run"]):
            code = main(["sweep", *where, *argv, *dry, "-s", "1", "--preset", "small", "--out", str(out)])
            assert (code, capsys.readouterr().err) == (2, f"error: {message}\n"), (keys, argv, dry)
    for kwargs, message in (({"synthetic_size": "full"}, size_line), ({"synthetic": True, "data_root": data}, root_line)):
        with pytest.raises(UsageError) as error:
            mmsa_atsuko.run("tfn", "mosi", seeds=[1], preset="small", out=out, **kwargs)
        assert str(error.value) == message
    assert not (tmp_path / "cache").exists() and not out.exists()


def test_a_sweep_files_unknown_synthetic_size_is_one_line_before_planning(tmp_path, capsys, monkeypatch):
    """--synthetic-size has argparse's choices; a sweep file's synthetic_size had none: 'huge' printed the planning
    line and made the results folder, then the generator's line named neither the file nor the key."""
    import mmsa_atsuko
    from mmsa_atsuko.cli import main
    from mmsa_atsuko.errors import UsageError
    monkeypatch.setenv("MMSA_ATSUKO_CACHE", str(tmp_path / "cache"))
    out, sweep_file = tmp_path / "out", tmp_path / "s.yaml"
    for value, shown in (("huge", "'huge'"), ("Small", "'Small'"), ("[small]", "['small']"), ("2", "2")):
        sweep_file.write_text(f"synthetic: true\nsynthetic_size: {value}\n"
                              "experiments:\n  - models: [tfn]\n    datasets: [mosi]\n")
        for dry in ([], ["--dry-run"]):
            code = main(["sweep", str(sweep_file), *dry, "-s", "1", "--preset", "small", "--out", str(out)])
            captured = capsys.readouterr()
            assert (code, captured.err, captured.out) == (
                2, f"error: {sweep_file}: synthetic_size must be small or full, got {shown}\n", ""), (value, dry)
    with pytest.raises(UsageError) as error:            # the same check, where mmsa_atsuko.run is asked for it
        mmsa_atsuko.run("tfn", "mosi", seeds=[1], preset="small", synthetic=True, synthetic_size="huge", out=out)
    assert str(error.value) == "--synthetic-size must be small or full, got 'huge'"
    assert not (tmp_path / "cache").exists() and not out.exists()


def test_an_output_folder_that_cannot_be_written_is_one_line(tmp_path, capsys):
    from mmsa_atsuko.cli import main
    (tmp_path / "file").write_text("")
    for out in (tmp_path / "file", tmp_path / "file" / "below"):
        code = main(["-m", "tfn", "-d", "sims", "--synthetic", "-s", "1", "--out", str(out)])
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and f"{tmp_path / 'file'} is a file, not a folder" in lines[0]
    if os.geteuid() != 0:                   # root may write anywhere
        (tmp_path / "ro").mkdir(mode=0o555)
        code = main(["-m", "tfn", "-d", "sims", "--synthetic", "-s", "1", "--out", str(tmp_path / "ro" / "x")])
        assert code == 2 and "is not writable" in capsys.readouterr().err


def test_synth_prints_a_command_that_runs_as_printed(tmp_path, capsys):
    import shlex

    from mmsa_atsuko.cli import main
    (tmp_path / "file").write_text("")
    assert main(["synth", "-d", "sims", "--out", str(tmp_path / "file")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    out = tmp_path / "a folder"                                 # a space, so the path must be quoted
    assert main(["synth", "-d", "sims", "--out", str(out)]) == 0
    command = capsys.readouterr().out.strip().splitlines()[-1].split("run on it with: ", 1)[1]
    argv = shlex.split(command.replace("MODEL", "tfn"))[2:]      # drop "python run.py"
    assert argv[argv.index("--feature-path") + 1] == str(out / "SIMS/Processed/unaligned_39.pkl")
    assert main([*argv, "--preset", "small", "-s", "1", "--quiet", "--out", str(tmp_path / "results")]) == 0


def test_missing_data_file_exits_nonzero_and_writes_nothing(tmp_path):
    proc = cli("-m", "tfn", "-d", "mosi", "--data-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "unaligned_50.pkl" in lines[0] and "--synthetic" in lines[0]
    assert not (tmp_path / "out").exists()


def test_list_shows_models_and_datasets():
    proc = cli("list")
    assert proc.returncode == 0
    assert "tfn" in proc.stdout and "mosi" in proc.stdout and "sims" in proc.stdout


def test_a_dataset_file_set_by_hand_that_is_not_there_is_one_line_naming_the_variable(tmp_path, monkeypatch, capsys):
    """MMSA_ATSUKO_DATASETS=/nonexistent.yaml run.py list printed the models, then "config file ... not found",
    naming no variable (a missing --models folder names MMSA_ATSUKO_MODELS)."""
    from mmsa_atsuko.cli import cmd_list, main
    from mmsa_atsuko.errors import UsageError
    missing = tmp_path / "nonexistent.yaml"
    monkeypatch.setenv("MMSA_ATSUKO_DATASETS", str(missing))
    line = (f"dataset file {missing} not found (--datasets FILE or $MMSA_ATSUKO_DATASETS: a YAML file with a "
            f"`datasets:` block like configs/datasets.yaml's)")
    assert main(["list"]) == 2
    assert capsys.readouterr() == ("", f"error: {line}\n")
    with pytest.raises(UsageError) as err:        # list itself, past main's check: still nothing printed first
        cmd_list([])
    assert (str(err.value), capsys.readouterr().out) == (line, "")


def test_tensorboard_scalars_are_the_history(tmp_path):
    pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
    out = tmp_path / "results"
    proc = cli("-m", "tfn", "-d", "mosi", "-s", "1", "--synthetic", "--preset", "small", "--max-epochs", "2",
               "--quiet", "--tensorboard", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    (record,) = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    folder = out / record["run_dir"]
    history = json.loads((folder / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    got = tensorboard_scalars(folder / "tensorboard")
    assert {"train/total", "train/task", "valid/MAE", "valid/Loss", "lr/group0"} <= got.keys()
    assert same_scalars(got, history_scalars(history))


def test_tensorboard_without_the_package_is_one_line_before_any_data(tmp_path, capsys, monkeypatch):
    from mmsa_atsuko.cli import main
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)      # import fails as if not installed
    code = main(["-m", "tfn", "-d", "mosi", "--data-root", str(tmp_path / "nowhere"), "--tensorboard",
                 "--out", str(tmp_path / "out")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1
    assert "--tensorboard needs the tensorboard package" in lines[0] and "pip install" in lines[0]
    assert not (tmp_path / "out").exists()


def test_clean_removes_dead_partial_folders_only(tmp_path, capsys):
    from filelock import FileLock

    from mmsa_atsuko.cli import main
    runs = tmp_path / "runs"
    dead, old, live, done = (runs / name for name in (".a.partial", ".b.partial", ".c.partial", "d"))
    for folder in (dead, old, live, done):
        folder.mkdir(parents=True)
    (dead / "run.lock").write_text("{}")        # its process is gone; `old` predates run.lock
    (live / "run.lock").write_text("{}")
    lock = FileLock(live / "run.lock")
    lock.acquire()                               # a run still training (a sweep beside us)
    try:
        assert main(["clean", "--results", str(tmp_path)]) == 0
        assert sorted(p.name for p in runs.iterdir()) == [".c.partial", "d"]
        assert capsys.readouterr().out.splitlines()[-1] == (f"removed 2 unfinished run folder(s) from {runs}; "
                                                            "kept 1 of run(s) still running")
    finally:
        lock.release()
    assert main(["clean", "--results", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_clean_names_a_link_named_as_a_run_folder_a_link_not_a_running_run(tmp_path, capsys):
    """A symbolic link at runs/<x>.partial, which clean leaves alone, was counted 'kept 1 of run(s) still running'."""
    from mmsa_atsuko.cli import main
    runs, elsewhere = tmp_path / "runs", tmp_path / "elsewhere"
    runs.mkdir()
    elsewhere.mkdir()
    (elsewhere / "run.lock").write_text("{}")
    link = runs / ".x.partial"
    link.symlink_to(elsewhere)
    assert main(["clean", "--results", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"removed 0 unfinished run folder(s) from {runs}; left 1 symbolic link(s) named as run folders alone "
        f"({link}): no run makes a link, so none is running; remove them yourself")
    assert link.is_symlink() and (elsewhere / "run.lock").exists()


def test_clean_counts_as_running_only_a_folder_whose_run_lock_a_live_process_holds(tmp_path, capsys):
    """A folder whose run.lock is a link, a file of two names or a folder (which no run makes, and clean leaves alone)
    was counted 'kept 3 of run(s) still running' with no process running in any; each is named for what it is."""
    from filelock import FileLock

    from mmsa_atsuko.cli import main
    runs = tmp_path / "runs"
    live, linked, doubled, foldered = (runs / f".{name}.partial" for name in ("a", "b", "c", "d"))
    for folder in (live, linked, doubled, foldered):
        folder.mkdir(parents=True)
    (foldered / "run.lock").mkdir()
    (linked / "run.lock").symlink_to(tmp_path / "elsewhere.lock")
    (tmp_path / "other.lock").write_text("")
    os.link(tmp_path / "other.lock", doubled / "run.lock")
    lock = FileLock(live / "run.lock")
    lock.acquire()
    try:
        assert main(["clean", "--results", str(tmp_path)]) == 0
    finally:
        lock.release()
    assert sorted(p.name for p in runs.iterdir()) == [".a.partial", ".b.partial", ".c.partial", ".d.partial"]
    assert capsys.readouterr().out.splitlines() == [
        f"removed 0 unfinished run folder(s) from {runs}; kept 1 of run(s) still running; left 3 folder(s) alone "
        f"whose run.lock no run made ({linked / 'run.lock'} is a symbolic link, {doubled / 'run.lock'} is a file of 2 "
        f"names (a hard link), {foldered / 'run.lock'} is a folder): look at them yourself"]


def test_clean_removes_what_a_removal_killed_half_way_left(tmp_path, capsys):
    """A removal renames its folder `<name>.removing-<random>` before deleting it (run_folders.dead.remove); one
    killed half-way leaves that tombstone, which no run looks at again: clean removes it, and counts it apart."""
    from mmsa_atsuko.cli import main
    runs = tmp_path / "runs"
    tombstone = runs / ".tfn-mosi-s1-20260101T000000-0a1b2c.partial.removing-0badf00d"
    (tombstone / "tensorboard").mkdir(parents=True)
    (tombstone / "run.json").write_text("{}")
    (tombstone / "tensorboard" / "events").write_bytes(b"x")
    (runs / "d").mkdir()                        # a finished run: kept
    assert main(["clean", "--results", str(tmp_path)]) == 0
    assert [p.name for p in runs.iterdir()] == ["d"]
    assert capsys.readouterr().out.splitlines()[-1] == f"removed 0 unfinished run folder(s) from {runs}"


def test_clean_removes_a_folder_left_by_a_run_killed_while_making_it(tmp_path, capsys):
    """run_folder makes `.X.partial.new`, locks it, names its run in run.json and renames it `.X.partial`: a run killed
    in between left a `.new` folder that clean never matched. A dead one goes now: its lock free, and naming a run
    (written under the lock) or made over a minute ago; one made just now naming none may be a live run's before
    its lock, and stays, as does one whose lock is held."""
    import os
    import time

    from filelock import FileLock

    from mmsa_atsuko.cli import main
    runs = tmp_path / "runs"
    named, old, young, live = (runs / f".{name}.partial.new" for name in ("a", "b", "c", "d"))
    for folder in (named, old, young, live):
        folder.mkdir(parents=True)
    for folder in (named, live):
        (folder / "run.json").write_text("{}")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))    # killed right after its mkdir, an hour ago
    lock = FileLock(live / "run.lock")
    lock.acquire()
    try:
        assert main(["clean", "--results", str(tmp_path)]) == 0
        assert sorted(p.name for p in runs.iterdir()) == [".c.partial.new", ".d.partial.new"]
        lines = capsys.readouterr().out.splitlines()
        assert lines == [f"removed {named}", f"removed {old}",
                         f"removed 2 unfinished run folder(s) from {runs}; kept 1 of run(s) still running; kept 1 "
                         "folder(s) being made (under 60 s old and naming no run yet: a run may be starting in them)"]
    finally:
        lock.release()


def _cut_in_epoch_2(argv, out, monkeypatch):
    """`run.py *argv` (its results in `out`) stopped by Ctrl-C before epoch 2's last.pt: its .partial folder."""
    from mmsa_atsuko.cli import main
    die_before_last_pt_of_epoch(monkeypatch, 2)
    assert main(argv) == 130
    monkeypatch.undo()
    (partial,) = (out / "runs").glob(".*.partial")
    return partial


def test_resume_on_the_command_line_continues_the_leftover_and_notes_dead_others(tmp_path, capsys, monkeypatch):
    from mmsa_atsuko.cli import main
    argv = ["-m", "tfn", "-d", "mosi", "-s", "1", "--synthetic", "--preset", "small", "--max-epochs", "2",
            "--quiet", "--out", str(tmp_path)]
    partial = _cut_in_epoch_2(argv, tmp_path, monkeypatch)
    (tmp_path / "runs" / ".tfn-mosi-s9-old.partial").mkdir()      # another run's dead leftover
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 0
    (record,) = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert record["run_id"] == partial.name[1:-len(".partial")] and record["epochs_run"] == 2
    assert "resumed after epoch 1" in (tmp_path / record["run_dir"] / "train.log").read_text()
    (note,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
    assert "holds 1 .partial folder" in note and f"python run.py clean --results {tmp_path}" in note


def test_resume_with_jobs_continues_in_workers_as_an_uninterrupted_run_ends(tmp_path, capsys, monkeypatch):
    """run.py --jobs 2 --resume takes the sweep's worker path: seed 1 cut in epoch 2 (seed 2 never started) is
    continued in a worker from epoch 1's state, and both end bit for bit as in-process runs never cut short
    (CPU, 1 torch thread per run either way)."""
    from mmsa_atsuko.cli import main
    from mmsa_atsuko.results import read_records
    argv = ["-m", "tfn", "-d", "mosi", "-s", "1", "2", "--synthetic", "--preset", "small", "--max-epochs", "3",
            "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "whole")]) == 0
    partial = _cut_in_epoch_2([*argv, "--out", str(tmp_path / "cut")], tmp_path / "cut", monkeypatch)
    assert main([*argv, "--out", str(tmp_path / "cut"), "--jobs", "2", "--resume"]) == 0
    whole = {r["seed"]: r for r in read_records(tmp_path / "whole")}
    cut = {r["seed"]: r for r in read_records(tmp_path / "cut")}
    assert sorted(cut) == [1, 2] and cut[1]["run_id"] == partial.name[1:-len(".partial")]
    assert len(cut[1]["earlier_attempts"]) == 1 and "earlier_attempts" not in cut[2]
    for seed in (1, 2):
        for key in ("metrics", "valid_metrics", "best_epoch", "epochs_run"):
            assert repr(cut[seed][key]) == repr(whole[seed][key]), (seed, key)     # repr round-trips every float
    assert "resumed after epoch 1" in (tmp_path / "cut" / cut[1]["run_dir"] / "train.log").read_text()
    assert not list((tmp_path / "cut" / "runs").glob(".*"))


@pytest.mark.parametrize("jobs", [[], ["--jobs", "2"]], ids=["in-process", "jobs-2"])
@pytest.mark.parametrize("spoil", SPOILS)
def test_resume_stops_on_a_folder_it_may_not_continue_with_exit_1_in_process_and_in_workers(tmp_path, capsys,
                                                                                           monkeypatch, spoil, jobs):
    """A dead run's folder --resume may not continue stops run.py in one line, the run not trained afresh and the
    folder left as it was, in process and with --jobs 2 alike, and with one exit code: 1, a DataError, since
    what is wrong is the shared folder (a link planted in it, a last.pt not of this run), not what was typed.
    Before: a planted link was exit 2 in process (a UsageError) and exit 1 with --jobs 2."""
    from mmsa_atsuko.cli import main
    from mmsa_atsuko.results import read_records
    argv = ["-m", "tfn", "-d", "mosi", "-s", "1", "--synthetic", "--preset", "small", "--max-epochs", "2",
            "--quiet", "--out", str(tmp_path)]
    partial = _cut_in_epoch_2(argv, tmp_path, monkeypatch)
    victim = tmp_path / "victim.txt"
    says = spoil_resumable_folder(partial, spoil, victim)
    before = sorted(entry.name for entry in partial.iterdir())
    capsys.readouterr()
    assert main([*argv, *jobs, "--resume"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0] and "Traceback" not in err[0], err
    assert sorted(entry.name for entry in partial.iterdir()) == before and victim.read_text() == "precious\n"
    if spoil == "garbage last.pt":
        assert (partial / "last.pt").read_bytes() == b"not a checkpoint"
    assert not [r for r in read_records(tmp_path) if r["status"] == "ok"]      # no fresh run trained in its place


def main_in_process(capfd, monkeypatch, argv, hook=None, hook_in_driver=True, **env) -> tuple[int, str]:
    """`run.py argv` through `cli.main` in this process (a run.py process is seconds of imports): its exit code and
    stderr, its spawned workers' included (captured at the file descriptor, which they inherit). `hook`, a folder
    holding a sitecustomize.py, goes on PYTHONPATH, as in the command line's environment, for the workers that
    start afresh and read it; with `hook_in_driver` its code is run here too, undone after. `env`: more variables
    for this call and its workers."""
    from mmsa_atsuko.cli import main
    from mmsa_atsuko.training import trainer
    with monkeypatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        if hook is not None:
            patch.setenv("PYTHONPATH", os.pathsep.join([str(hook), str(ROOT)]))
            if hook_in_driver:
                patch.setattr(trainer, "save_training_state", trainer.save_training_state)    # restored on leaving
                exec((hook / "sitecustomize.py").read_text(encoding="utf-8"), {})
        capfd.readouterr()
        code = main([str(a) for a in argv])
        err = capfd.readouterr().err
    return code, err


def test_a_killed_worker_under_jobs_resume_names_what_run_py_takes_to_continue_it(tmp_path, capfd, monkeypatch):
    """run.py --jobs 2 --resume, seed 1112's worker killed alone (as the OOM killer would) after epoch 1's last.pt:
    the run fails, its folder kept, and the line names what run.py takes to go on. Before, it named sweep's
    `--retry-failed --resume`, which run.py refuses; run.py runs failed runs again by itself, so the same command
    again continues it from epoch 1's state under its run_id. The driver runs in this process (the workers train;
    the hook that kills one is theirs alone, since here it would kill the test's process)."""
    import signal
    from mmsa_atsuko.results import read_records
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILL_THE_SWEEP_AFTER_EPOCH_1, encoding="utf-8")
    argv = ["-m", "tfn", "-d", "mosi", "-s", "1111", "1112", "--synthetic", "--preset", "small", "--max-epochs", "2",
            "--quiet", "--jobs", "2", "--resume", "--out", str(tmp_path / "out")]
    code, err = main_in_process(capfd, monkeypatch, argv, hook=hook, hook_in_driver=False, KILL="worker",
                                HF_HUB_OFFLINE="1")
    assert code == 1, err
    (failed,) = [r for r in read_records(tmp_path / "out") if r["status"] == "failed"]
    said = (f"worker process died (exit code -{int(signal.SIGKILL)}); its folder is kept: the same command again "
            f"continues it from its last finished epoch")
    assert failed["seed"] == 1112 and failed["error"] == said
    (line,) = [line for line in err.splitlines() if line.startswith("error: ")]
    assert said in line and "--retry-failed" not in err

    code, err = main_in_process(capfd, monkeypatch, argv, HF_HUB_OFFLINE="1")
    assert code == 0, err
    (second,) = [r for r in read_records(tmp_path / "out") if r["seed"] == 1112 and r["status"] == "ok"]
    assert second["run_id"] == failed["run_id"] and len(second["earlier_attempts"]) == 1
    assert "resumed after epoch 1 " in (tmp_path / "out" / second["run_dir"] / "train.log").read_text()


# Seed 1112's training breaks the model contract (a UsageError), in the driver and in every spawned worker alike.
BREAK_THE_CONTRACT_IN_SEED_1112 = """
import mmsa_atsuko.training.trainer as trainer
from mmsa_atsuko.errors import ModelContractError
real = trainer.save_training_state

def save(path, *args):
    if "-s1112-" in str(path):
        raise ModelContractError("tfn.forward: pred is (16, 1), expected (16,) for regression")
    return real(path, *args)

trainer.save_training_state = save
"""


@pytest.mark.parametrize("jobs", [[], ["--jobs", "2"]], ids=["in-process", "jobs-2"])
def test_a_usage_error_inside_training_exits_2_in_process_and_in_workers(tmp_path, capfd, monkeypatch, jobs):
    """A ModelContractError (a UsageError: the model, not the data, is wrong) raised while seed 1112 of 1111-1113
    trains: exit 2 and one line with its message, in process and with --jobs 2. Before, --jobs gave 1, as for a
    crash: the error crossed the worker as its record's text. What differs stays what one process or several
    do: in process run.py stops there (1113 not trained), the workers finish the other seeds (1112 recorded
    failed, which the same command runs again); seed 1111's ok record is kept either way."""
    from mmsa_atsuko.results import read_records
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(BREAK_THE_CONTRACT_IN_SEED_1112, encoding="utf-8")
    argv = ["-m", "tfn", "-d", "mosi", "-s", "1111", "1112", "1113", "--synthetic", "--preset", "small",
            "--max-epochs", "1", "--quiet", *jobs, "--out", str(tmp_path / "out")]
    code, stderr = main_in_process(capfd, monkeypatch, argv, hook=hook, HF_HUB_OFFLINE="1")
    err = stderr.strip().splitlines()
    assert code == 2 and len(err) == 1 and "Traceback" not in stderr, stderr
    assert err[0].startswith("error: ") and "pred is (16, 1), expected (16,) for regression" in err[0], err
    status = {r["seed"]: r["status"] for r in read_records(tmp_path / "out")}
    assert status == ({1111: "ok", 1112: "failed", 1113: "ok"} if jobs else {1111: "ok"}), status
    if jobs:
        assert "seed 1112: ModelContractError: tfn.forward" in err[0], err


def test_jobs_without_resume_says_what_resume_would_do_with_a_run_cut_short(tmp_path, capsys, monkeypatch):
    """run.py offers --resume with --jobs too, so its plan line says what it does with a run cut short, as
    sweep's does; before, it said nothing of it (as for a caller that offers no --resume)."""
    from mmsa_atsuko.cli import main
    argv = ["-m", "tfn", "-d", "mosi", "-s", "1", "--synthetic", "--preset", "small", "--max-epochs", "2",
            "--quiet", "--out", str(tmp_path)]
    _cut_in_epoch_2(argv, tmp_path, monkeypatch)
    capsys.readouterr()
    assert main([*argv, "--jobs", "2"]) == 0
    (plan,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("sweep: ")]
    assert "1 of them cut short earlier, to start again from their first epoch (--resume continues them)" in plan


def test_run_skips_recorded_seeds_until_rerun(tmp_path, capsys):
    from mmsa_atsuko.cli import main
    from mmsa_atsuko.results import read_records

    def table_seeds(text):
        return [int(line.split()[1]) for line in text.splitlines() if line.startswith("tfn ") and "mean" not in line]

    argv = ["-m", "tfn", "-d", "mosi", "--synthetic", "--preset", "small", "--max-epochs", "1", "--quiet",
            "--out", str(tmp_path)]
    assert main([*argv, "-s", "1"]) == 0
    (first,) = read_records(tmp_path)
    capsys.readouterr()
    assert main([*argv, "-s", "1", "2", "--save-checkpoint", "none"]) == 0
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if line.startswith("skip")] == [
        f"skip tfn mosi seed 1: recorded as {first['run_id']} (--rerun trains it again)"]
    assert table_seeds(out) == [1, 2]
    assert f"1 record(s) appended to {tmp_path / 'runs.jsonl'}" in out      # seed 2's; seed 1's was there
    stored = read_records(tmp_path)
    assert [(r["seed"], r["checkpoint"]) for r in stored] == [(1, "best"), (2, "none")]
    assert main([*argv, "-s", "2", "1"]) == 0
    out = capsys.readouterr().out
    assert table_seeds(out) == [2, 1] and "appended to" not in out
    assert f"nothing appended: every run was already recorded in {tmp_path / 'runs.jsonl'}" in out
    assert main([*argv, "-s", "1", "--rerun"]) == 0
    out = capsys.readouterr().out
    assert not [line for line in out.splitlines() if line.startswith("skip")]
    assert table_seeds(out) == [1] and len(read_records(tmp_path)) == 3
    assert "1 record(s) appended" in out


# ------------------------------------------------------------------------------------------
# A user's own model (tests/fixtures/latefuse.*), with the mistakes a new user made in it
# ------------------------------------------------------------------------------------------
USER_RUN = ["-m", "latefuse", "-d", "mosi", "--synthetic", "--preset", "small", "-s", "1111", "--quiet"]
SEE = " (docs/design.md, Contracts: Model)"
DECORATOR_LINE = (ROOT / "tests" / "fixtures" / "latefuse.py").read_text().splitlines().index(
    '@register_model("latefuse", tasks=("regression", "classification"))') + 1


@pytest.mark.parametrize("edit,message", [
    # pred (B, 1): training ran (task_loss reshapes) and writing the predictions crashed in pandas after the
    # last epoch, leaving the .partial folder and no record
    (("torch.sigmoid(y.squeeze(-1))", "torch.sigmoid(y)"),
     "latefuse.forward: pred is (16, 1), expected (16,) for regression" + SEE),
    # KeyError: 'pred' from the model's own loss
    (('return {"pred": y,', 'return {"prediction": y,'),
     "latefuse.forward: returned a dict without 'pred' (keys: prediction, features); put the predictions "
     "under 'pred'" + SEE),
    # KeyError: 'total' in the trainer
    (('return {"total": task, "task": task}', 'return {"loss": task}'),
     "latefuse.loss: returned a dict without 'total' and 'task' (keys: loss), expected a dict of scalar terms "
     "with 'total' (what is optimised) and 'task' (the prediction loss alone)" + SEE),
    # IndexError in the trainer
    (('return {"total": task, "task": task}', 'return task'),
     "latefuse.loss: returned a Tensor of shape (), expected a dict of scalar terms with 'total'"),
], ids=["pred-B-1", "prediction-key", "loss-key", "bare-tensor"])
def test_a_user_model_that_breaks_the_contract_stops_on_its_first_batch_in_one_line(tmp_path, edit, message):
    checkout = checkout_with(tmp_path / "checkout", latefuse(py=[edit]))
    out = tmp_path / "results"
    done = run_in_checkout(checkout, *USER_RUN, "--out", out)
    lines = done.stderr.splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert message in lines[0] and done.stdout == ""
    assert not (out / "runs.jsonl").exists()
    assert not [p for p in out.rglob("*") if p.is_file()], "a failed run left files behind"    # no .partial folder


def test_the_user_model_as_written_trains_and_writes_its_predictions(tmp_path):
    checkout = checkout_with(tmp_path / "checkout", latefuse())
    out = tmp_path / "results"
    done = run_in_checkout(checkout, *USER_RUN, "--max-epochs", "1", "--out", out)
    assert done.returncode == 0, done.stderr
    (record,) = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    predictions = pd.read_csv(out / record["run_dir"] / "predictions_test.csv")
    assert list(predictions.columns) == ["id", "label", "pred"]


@pytest.mark.parametrize("py,yaml,message", [
    # AttributeError: 'EasyDict' object has no attribute 'fusion_dropout'. Did you mean: 'fusion_droput'?
    # (the misspelt key has a check, or loading the config would stop first: "fusion_droput has no check")
    ([], [("fusion_dropout: 0.2", "fusion_droput: 0.2"), ("checks:\n", 'checks:\n  fusion_droput: "[0.0, 1)"\n')],
     "error: latefuse: building the model failed: AttributeError: config has no key 'fusion_dropout' (did you "
     "mean 'fusion_droput'?); declare it in configs/latefuse.yaml"),
    # "...failed to import (RuntimeError: ...); install or fix what it needs": nothing to install
    ([('@register_model("latefuse"', '@register_model("LateFuse"')], [],
     "error: model 'latefuse' is unavailable: mmsa_atsuko.models.baselines.latefuse failed to import "
     "(RuntimeError: model name 'LateFuse' must be lowercase: register it as 'latefuse'); "
     "fix mmsa_atsuko/models/baselines/latefuse.py, line "
     f"{DECORATOR_LINE}"),
    ([('@register_model("latefuse", tasks=("regression", "classification"))\n', "")], [],
     "error: unknown model 'latefuse'. mmsa_atsuko/models/baselines/latefuse.py exists but registers no model "
     "'latefuse': decorate "
     'its class with @register_model("latefuse"). Did you mean late_fusion? Known models: '),
], ids=["misspelt-key", "uppercase-name", "no-decorator"])
def test_a_user_model_that_cannot_be_found_or_built_is_one_line_before_any_folder(tmp_path, py, yaml, message):
    checkout = checkout_with(tmp_path / "checkout", latefuse(py=py, yaml=yaml))
    out = tmp_path / "results"
    done = run_in_checkout(checkout, *USER_RUN, "--out", out)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith(message), done.stderr
    assert not list(out.glob("runs/*")) and not (out / "runs.jsonl").exists()


def test_a_contract_error_removes_a_fresh_run_folder_and_leaves_a_resumed_one(tmp_path):
    from mmsa_atsuko.errors import ModelContractError
    from mmsa_atsuko.run_folders import partial_dir, run_folder
    work, final = partial_dir(tmp_path, "r1"), tmp_path / "runs" / "r1"
    with pytest.raises(ModelContractError), run_folder(work, final, ("id",), resume=False) as folder:
        (folder / "config.yaml").write_text("x: 1\n")
        raise ModelContractError("m.forward: pred is (16, 1), expected (16,) for regression")
    assert not work.exists() and not final.exists()
    with pytest.raises(RuntimeError), run_folder(work, final, ("id",), resume=False) as folder:
        raise RuntimeError("any other failure keeps the folder, to resume or to read its train.log")
    assert work.is_dir()
    (work / "last.pt").write_bytes(b"epochs a resume continues from")
    with pytest.raises(ModelContractError), run_folder(work, final, ("id",), resume=True):
        raise ModelContractError("m.loss: ...")
    assert (work / "last.pt").is_file()


def test_each_attempt_at_a_run_is_noted_and_an_unnoted_one_counts_as_unknown(tmp_path):
    """A resumed run's record named only the resuming process's commit, though other code may have
    trained its first epochs. run.json now lists each process's attempt; one it cannot read (a
    folder of an older version, a damaged file) is an attempt of unknown code, never left out."""
    import json

    from mmsa_atsuko.run_folders import RUN_IDENTITY, attempts_of, partial_dir, run_folder
    work, final = partial_dir(tmp_path, "r1"), tmp_path / "runs" / "r1"
    first = {"git_commit": "aaa", "started_at": "t1", "torch_threads": 1, "precision": "fp32", "deterministic": True}
    second = {"git_commit": "bbb+dirty", "started_at": "t2", "torch_threads": 1, "precision": "fp32",
              "deterministic": True}
    with pytest.raises(RuntimeError), run_folder(work, final, ("id",), resume=False, attempt=first):
        raise RuntimeError("the process dies after some epochs")
    assert attempts_of(work) == [first]
    with run_folder(work, final, ("id",), resume=True, attempt=second) as folder:
        assert attempts_of(folder) == [first, second]
    unknown = {"git_commit": None, "started_at": None, "torch_threads": None, "precision": None, "deterministic": None}
    for text in ('{"identity": ["id"], "pid": 1, "host": "h"}', "{not json", '{"attempts": []}',
                 '{"attempts": [{"git_commit": 7}]}', '{"attempts": "aaa"}', '{"attempts": [{"deterministic": 1}]}',
                 '{"attempts": [{"precision": "bf16\\n### a heading"}]}'):
        (work / RUN_IDENTITY).parent.mkdir(parents=True, exist_ok=True)
        (work / RUN_IDENTITY).write_text(text)
        assert attempts_of(work) == [unknown], text
    with run_folder(work, final, ("id",), resume=True, attempt=second) as folder:
        assert json.loads((folder / RUN_IDENTITY).read_text())["attempts"] == [unknown, second]


def test_the_run_table_keeps_its_columns_under_long_condition_labels(capsys):
    """`tfn [modalities=TA]` is longer than the 12 characters the name column had: its row's metrics
    were shifted right of the header's."""
    from mmsa_atsuko.leaderboard.end_table import print_table
    metrics = {"Mult_acc_2": 0.5, "Mult_acc_3": 0.5, "Mult_acc_5": 0.5, "F1_score": 0.5, "MAE": 0.4, "Corr": 0.1}
    records = [{"run_id": f"r{i}", "model": "tfn", "dataset": "sims", "aligned": False, "synthetic": True,
                "seed": 1, "best_epoch": 2, "metrics": metrics,
                "condition": {"missing_rate": 0.0, "drop_modality": None, "modalities": subset}}
               for i, subset in enumerate(("TA", "TAV"))]
    print_table(records, "results", set())
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("model", "tfn"))]
    assert len(lines) == 3
    assert len({len(line) for line in lines}) == 1, lines        # every row ends under the header's last column


def test_the_closing_line_names_the_runs_another_process_recorded_while_this_one_ran(capsys):
    """A run.py that waited for another process's run and took its record closed with "nothing appended: every run
    was already recorded" (as if recorded before it started): the run ids in the store before the call tell them
    apart."""
    from mmsa_atsuko.leaderboard.end_table import print_table
    metrics = {"Mult_acc_2": 0.5, "Mult_acc_3": 0.5, "Mult_acc_5": 0.5, "F1_score": 0.5, "MAE": 0.4, "Corr": 0.1}
    records = [{"run_id": f"r{i}", "model": "tfn", "dataset": "sims", "aligned": False, "synthetic": True,
                "seed": i, "best_epoch": 2, "metrics": metrics} for i in (1, 2)]
    store = Path("results") / "runs.jsonl"
    last = []
    for appended, before in ((set(), set()), (set(), {"r1"}), ({"r1"}, set()), (set(), {"r1", "r2"})):
        print_table(records, "results", appended, before)
        last.append(capsys.readouterr().out.splitlines()[-1])
    assert last == [f"nothing appended: another process recorded every run in {store} while this one ran "
                    f"(--rerun trains them again)",
                    f"nothing appended: every run was already recorded in {store}, 1 of them by another process "
                    f"while this one ran (--rerun trains them again)",
                    f"1 record(s) appended to {store}; 1 more by another process while this one ran",
                    f"nothing appended: every run was already recorded in {store} (--rerun trains them again)"]


@pytest.mark.parametrize("command", [["clean"], ["results", "--recover"]])
def test_maintenance_commands_given_the_store_file_name_its_folder(tmp_path, capsys, command):
    """`clean --results results/runs.jsonl` said the folder 'does not exist', though it is right there."""
    from mmsa_atsuko.cli import main
    store = tmp_path / "runs.jsonl"
    store.write_text("")
    assert main([*command, "--results", str(store)]) == 2
    assert capsys.readouterr().err.strip() == (f"error: results folder {store} is a file, not a folder; give its "
                                               f"folder, --results {tmp_path}")
    assert main([*command, "--results", str(tmp_path / "none")]) == 2
    assert "does not exist; pass --results DIR" in capsys.readouterr().err


def test_clean_refuses_extract_cache_with_results_and_keeps_results_default_otherwise(tmp_path, capsys, monkeypatch):
    """`clean --extract-cache --results DIR` emptied extract's cache and ignored DIR, whose unfinished runs the user
    may have meant to clean: one line, exit 2, nothing removed. Without --extract-cache, --results stays results/."""
    from mmsa_atsuko.cli import main
    monkeypatch.setenv("MMSA_ATSUKO_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)                  # no results/ here
    cached = tmp_path / "cache" / "extract_features" / "a-1-2-stamp2.npz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"\0" * 10)
    for results in ("results", str(tmp_path)):     # the default's name given explicitly too
        assert main(["clean", "--extract-cache", "--results", results]) == 2
        assert capsys.readouterr() == ("", "error: --extract-cache empties extract's cache of video features, not a "
                                           "results folder: drop --results (or run clean --results without "
                                           "--extract-cache)\n")
    assert cached.exists()
    assert main(["clean"]) == 2
    assert capsys.readouterr().err == "error: results folder results does not exist; pass --results DIR\n"


@pytest.mark.parametrize("argv, line", [
    (["-m", "tfn", "-d", "mosi"], "interrupted: finished runs are recorded; the same command again skips them (with "
                                  "--resume it continues the interrupted run from its last finished epoch)"),
    (["tune", "-m", "tfn"], "interrupted: finished trials are stored in the study and finished final runs recorded; "
                            "the same command again continues them, a final run that was training from its first "
                            "epoch, or with --resume from its last finished epoch"),
    (["leaderboard"], "interrupted"),            # nothing to go on with
])
def test_ctrl_c_says_what_a_training_command_kept_and_how_to_go_on(monkeypatch, capsys, argv, line):
    """It said 'interrupted' alone, after a run or a tune had recorded its finished work."""
    import mmsa_atsuko.cli as cli

    def interrupted(*_):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "cmd_train", interrupted)
    if argv[0] in cli.COMMANDS:
        monkeypatch.setitem(cli.COMMANDS, argv[0], interrupted)
    assert cli.main(argv) == 130
    assert capsys.readouterr().err == line + "\n"


def test_commands_that_run_a_trained_model_use_one_torch_thread_unless_told(e2e, tmp_path, capsys):
    """predict and robustness ran at torch's default, every core: on a busy 2-core machine robustness took 40 s
    at 2 threads and 12 s at 1, the reason run.py's --threads defaults to 1. Both now take --threads, default 1."""
    import torch
    from mmsa_atsuko.cli import main
    _, out = e2e
    record = json.loads((out / "runs.jsonl").read_text().splitlines()[0])
    features = record["data_path"]
    commands = {"predict": ["predict", "--run", record["run_id"], "--results", str(out), "--features", features,
                            "--split", "test", "--out", str(tmp_path / "preds")],
                "robustness": ["robustness", "--run", record["run_id"], "--results", str(out),
                               "--out", str(tmp_path / "robust")]}
    before = torch.get_num_threads()
    try:
        for name, args in commands.items():
            torch.set_num_threads(2)                 # as torch starts on 2 cores
            assert main(args) == 0, name
            assert torch.get_num_threads() == 1, name
            assert main([*args, "--threads", "2"]) == 0, name
            assert torch.get_num_threads() == 2, name
        # The clean row re-tests the run as training tested it, at the thread count it trained with (1).
        table = pd.read_csv(tmp_path / "robust" / f"robustness_{record['run_id']}.csv")
        assert table.loc[table["corruption"] == "clean", "MAE"].item() == pytest.approx(record["metrics"]["MAE"],
                                                                                       abs=1e-6)
    finally:
        torch.set_num_threads(before)
    capsys.readouterr()
    for command in ("predict", "robustness", "explain", "tsne"):
        code = main([command, "--threads", "0", *{"predict": ["--run", record["run_id"], "--features", features,
                                                             "--out", str(tmp_path / "p0")],
                                                 "robustness": ["--run", record["run_id"]],
                                                 "explain": ["--run", record["run_id"]], "tsne": []}[command],
                     "--results", str(out)])
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and "--threads must be at least 1, got 0" in line, (command, line)
    assert not (tmp_path / "p0").exists()


def every_parser() -> list:
    """Each command's parser, as the cli modules define them (every `*_parser` function)."""
    import importlib
    import inspect
    import pkgutil
    import mmsa_atsuko.cli as cli_package
    parsers = []
    for info in pkgutil.iter_modules(cli_package.__path__):
        module = importlib.import_module(f"mmsa_atsuko.cli.{info.name}")
        parsers += [f for name, f in inspect.getmembers(module, inspect.isfunction)
                    if name.endswith("_parser") and f.__module__ == module.__name__]
    assert len(parsers) >= 14                      # every parser was found (run, synth, sweep, leaderboard, ...)
    return parsers


# Long options the README names by another spelling, with why.
README_SPELLS_OTHERWISE = {"--config": "the README writes its short form, `-c key=value`"}


def readme_and_its_docs_pages() -> str:
    """The README and the docs/ pages it links (its reference detail lives there), as one text."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    pages = sorted({m for m in re.findall(r"\]\((docs/[\w.]+\.md)", readme)})
    assert "docs/reference.md" in pages
    return "\n".join([readme, *((ROOT / page).read_text(encoding="utf-8") for page in pages)])


def test_every_long_option_of_every_command_is_in_the_readme():
    """`leaderboard -o/--output`, `tsne --tsne-seed` and `sensitivity --values` were in --help only: a first-time
    user reading the README never met them. The README's reference detail moved to the docs/ pages it links: an
    option is documented when it is in the README or one of those pages."""
    readme = readme_and_its_docs_pages()
    absent = {}
    for parser in every_parser():
        p = parser()
        options = [o for a in p._actions for o in a.option_strings if o.startswith("--") and o != "--help"]
        absent[p.prog] = [o for o in options if o not in README_SPELLS_OTHERWISE
                          and not re.search(re.escape(o) + r"(?![\w-])", readme)]
    assert not any(absent.values()), {k: v for k, v in absent.items() if v}
    assert all(re.search(re.escape(o) + r"(?![\w-])", readme) is None for o in README_SPELLS_OTHERWISE)


def test_every_option_of_every_command_says_what_it_is():
    """`--synthetic-size`, `leaderboard --format`, synth's options and others printed a bare name in --help, so the
    README's `--synthetic-size small|full` could not be looked up there."""
    silent = {}
    for parser in every_parser():
        p = parser()
        silent[p.prog] = [a.option_strings[-1] for a in p._actions if a.option_strings and not a.help]
    assert not any(silent.values()), {k: v for k, v in silent.items() if v}


def test_clean_removes_the_free_marks_of_killed_run_pys_but_not_a_new_or_held_one(tmp_path, capsys):
    """A killed run.py leaves its mark (runs/.run-py-<random>.lock, results.writers), which only the next sweep
    removed. clean removes a free one made over a minute ago; it keeps a held one (a run.py training) and a free
    one made just now (a run.py may be between making and taking it: clean holds no sweep lock that would stop it)."""
    import os
    import time

    from filelock import FileLock

    from mmsa_atsuko.cli import main
    runs = tmp_path / "runs"
    runs.mkdir()
    killed, young, held = (runs / f".run-py-{name}.lock" for name in ("0000000000000001", "0000000000000002",
                                                                      "0000000000000003"))
    for mark in (killed, young, held):
        mark.write_bytes(b"")
    an_hour_ago = time.time() - 3600
    for mark in (killed, held):
        os.utime(mark, (an_hour_ago, an_hour_ago))
    lock = FileLock(held)
    lock.acquire()                               # a run.py still training
    try:
        assert main(["clean", "--results", str(tmp_path)]) == 0
    finally:
        lock.release()
    assert sorted(p.name for p in runs.iterdir()) == sorted([young.name, held.name])
    assert capsys.readouterr().out.splitlines()[-1] == (f"removed 0 unfinished run folder(s) from {runs} and 1 "
                                                        "mark(s) of killed run.py's")


def test_the_count_of_another_users_dead_folders_skips_one_removed_since_it_was_listed(tmp_path, monkeypatch):
    """run.py's closing note counts the dead folders that are another user's: one removed after dead_folders listed
    it (its owner's clean) is no one's. Before, its lstat raised FileNotFoundError: a traceback after the table."""
    from mmsa_atsuko.run_folders import dead
    here, gone = tmp_path / ".a.partial", tmp_path / ".b.partial"
    here.mkdir()
    os.chown(here, 1234, 1234)
    monkeypatch.setattr(dead.os, "geteuid", lambda: 4321)      # not root: root may remove anyone's
    assert dead._others([here, gone]) == 1


def test_clean_never_counts_a_negative_number_of_running_runs(tmp_path, capsys, monkeypatch):
    """Another user's dead folder, which this user may not take, removed by its owner between clean's two looks at
    runs/: clean said 'kept -1 of run(s) still running' (the work folders, counted after, less the dead ones)."""
    import shutil

    import mmsa_atsuko.run_folders as run_folders
    from mmsa_atsuko.cli import main
    runs = tmp_path / "runs"
    theirs = runs / ".x.partial"
    theirs.mkdir(parents=True)
    (theirs / "run.lock").write_text("")
    real = run_folders.dead_folders

    def dead_then_removed(out):
        found = real(out)
        shutil.rmtree(theirs)          # its owner's clean, meanwhile
        return found
    monkeypatch.setattr(run_folders, "unfinished_runs", lambda out: [])     # as for a folder this user may not take
    monkeypatch.setattr(run_folders, "dead_folders", dead_then_removed)
    assert main(["clean", "--results", str(tmp_path)]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    # The counts only: the folder's path (pytest's basetemp, 'pytest-12/...') may itself hold "-1".
    assert "still running" not in line and "-1" not in line.replace(str(runs), "<runs>"), line
    assert line.startswith(f"removed 0 unfinished run folder(s) from {runs}; kept 1 of unfinished runs"), line


def test_a_rerun_that_appended_nothing_says_another_process_recorded_the_runs(capsys):
    """run.py --rerun appends nothing only where another process recorded every run after it began (api.pipeline's
    rule for a record taken meanwhile): its closing line says so. Before, it said the runs were already recorded
    and that --rerun trains them again, to a --rerun command."""
    from mmsa_atsuko.leaderboard.end_table import print_table
    metrics = {"Mult_acc_2": 0.5, "Mult_acc_3": 0.5, "Mult_acc_5": 0.5, "F1_score": 0.5, "MAE": 0.4, "Corr": 0.1}
    records = [{"run_id": "r1", "model": "tfn", "dataset": "sims", "aligned": False, "synthetic": True, "seed": 1,
                "best_epoch": 2, "metrics": metrics}]
    print_table(records, "results", set(), rerun=True)
    assert capsys.readouterr().out.splitlines()[-1] == (f"nothing appended: every run was recorded in "
                                                        f"{Path('results') / 'runs.jsonl'} by another process after "
                                                        f"this command began")


def test_jobs_2_with_a_csv_that_cannot_take_the_rows_stops_before_any_run(tmp_path, capsys):
    """run.py --jobs appends its MMSA rows after every run has trained: a normal/ CSV of other columns let
    `-m tfn lmf --jobs 2` train and record both models, then stopped on the header line. Now the plan's runs' CSVs are
    checked before any starts, in the line the in-process call gives (exit 2), and no run is recorded."""
    from mmsa_atsuko.cli import main
    (tmp_path / "normal").mkdir()
    mine = tmp_path / "normal" / "mosi-synthetic.csv"
    mine.write_text("Model,Acc\nmine,1\n")
    argv = ["-m", "tfn", "lmf", "-d", "mosi", "-s", "1", "--synthetic", "--preset", "small", "--max-epochs", "1",
            "--quiet", "--jobs", "2", "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mosi-synthetic.csv has columns Model,Acc, not MMSA's" in err[0], err
    assert "nothing was trained" in err[0]
    assert not (tmp_path / "runs.jsonl").exists() or not (tmp_path / "runs.jsonl").read_text().strip()
    assert mine.read_text() == "Model,Acc\nmine,1\n"


@pytest.mark.parametrize("argv", [
    ["-m", "tfn", "-d", "mosi", "--synthetic", "-s", "1", "--out", "{long}"],
    ["predict", "--checkpoint", "{long}", "--features", "f.pkl", "--out", "out"],
    ["list", "--models", "{long}"],
    ["sweep", "{long}"],
    ["clean", "--results", "{long}"],
], ids=["train-out", "predict-checkpoint", "models", "sweep-file", "clean"])
def test_a_path_longer_than_the_system_allows_is_one_line(tmp_path, capsys, monkeypatch, argv):
    """pathlib's is_dir/is_file/exists raise ENAMETOOLONG: a long path, typed or read from a file, stopped the
    command in an OSError traceback at its first look."""
    from mmsa_atsuko.cli import main
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MMSA_ATSUKO_MODELS", "")          # main() adds to it; monkeypatch restores it afterwards
    long = str(tmp_path / ("a" * 300))
    assert main([value.replace("{long}", long) for value in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {long[:200]}...") and \
        "is a path longer than the system allows" in err, err[-300:]
    assert list(tmp_path.iterdir()) == []


def test_run_py_s_end_table_names_a_cap_set_apart_from_the_preset_or_the_full_config(tmp_path, capsys):
    """`run.py --max-epochs 1` printed its end table with no word of the cap (the leaderboard notes it): at a preset
    its notes name the key set apart from the preset, at the full config the key set apart from configs/tfn.yaml."""
    from mmsa_atsuko.cli import main
    from mmsa_atsuko.config import load_config
    argv = ["-m", "tfn", "-d", "mosi", "-s", "1", "--synthetic", "--max-epochs", "1", "--quiet"]
    assert main([*argv, "--preset", "small", "--out", str(tmp_path / "small")]) == 0
    small_epochs = load_config("tfn", "mosi", preset="small")["max_epochs"]
    assert (f"- trainer keys set apart from the preset: max_epochs=1 (--preset small: {small_epochs}) in every row"
            in capsys.readouterr().out.splitlines())
    assert main([*argv, "--out", str(tmp_path / "full")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert ("- set apart from today's configs/<model>.yaml (each model's full config): max_epochs=1 in every row"
            in out), out[-6:]
