"""A results folder shared by someone else: its run folders, locks and studies, as the commands meet them.

Each case plants what a hostile folder may hold and runs the command line in process, asserting one
line on stderr (or the command's normal output), and that nothing outside the results folder changed
(a victim folder beside it is snapshotted).
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import die_before_last_pt_of_epoch

from mmsa_atsuko.cli import main

TINY = ["--synthetic", "--preset", "small", "--max-epochs", "1", "--quiet"]


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
            for p in sorted(folder.rglob("*"))}


@pytest.fixture
def victim(tmp_path):
    """A folder beside the results folder that no command may change."""
    folder = tmp_path / "victim"
    (folder / ".keep.partial").mkdir(parents=True)
    (folder / ".keep.partial" / "precious.txt").write_text("precious\n")
    (folder / "victim.txt").write_text("precious\n")
    before = snapshot(folder)
    yield folder
    assert snapshot(folder) == before, "something was written outside the results folder"


def cli(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line(code: int, err: str, *needles: str) -> None:
    assert code != 0, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_clean_never_removes_folders_where_a_runs_link_points(tmp_path, victim, capsys):
    """Before: `clean` followed a `runs` link and removed victim/.keep.partial ('removed .../runs/.keep.partial')."""
    out = tmp_path / "results"
    out.mkdir()
    (out / "runs").symlink_to(victim, target_is_directory=True)
    code, _, err = cli(capsys, "clean", "--results", out)
    assert_one_line(code, err, f"{out / 'runs'} is a symbolic link; the toolkit writes only inside the results folder")


@pytest.mark.parametrize("planted", ["link", "folder", "hard-link"])
def test_a_partial_folder_whose_lock_is_no_file_is_left_alone(tmp_path, victim, capsys, planted):
    """Before: a .partial folder's run.lock linked elsewhere (or a folder) was an OSError traceback ('Too many
    levels of symbolic links') from clean and from every run and sweep on the folder. A hard link was taken
    as a dead run's lock, and filelock before 4.2.1 empties a lock it takes (O_TRUNC in 3.29.x, ftruncate once
    locked in 3.30 to 4.2.0): that emptied victim.txt."""
    out = tmp_path / "results"
    folder = out / "runs" / ".tfn-mosi-s1-20260101T000000-abcdef.partial"
    folder.mkdir(parents=True)
    if planted == "link":
        (folder / "run.lock").symlink_to(victim / "victim.txt")
    elif planted == "hard-link":
        os.link(victim / "victim.txt", folder / "run.lock")
    else:
        (folder / "run.lock").mkdir()
    code, stdout, err = cli(capsys, "clean", "--results", out)
    assert code == 0 and err == "" and "removed 0 unfinished run folder(s)" in stdout, err
    code, _, err = cli(capsys, "-m", "tfn", "-d", "mosi", "-s", "1", *TINY, "--out", out)
    assert code == 0 and "Traceback" not in err, err
    assert folder.is_dir() and len((out / "runs.jsonl").read_text().splitlines()) == 1


def test_an_mmsa_csv_lock_that_is_a_link_is_one_line(tmp_path, victim, capsys):
    """Before: normal/<dataset>.csv.lock linked elsewhere was an OSError traceback after training."""
    out = tmp_path / "results"
    (out / "normal").mkdir(parents=True)
    lock = out / "normal" / "mosi-synthetic.csv.lock"
    lock.symlink_to(victim / "victim.txt")
    code, _, err = cli(capsys, "-m", "tfn", "-d", "mosi", "-s", "1", *TINY, "--out", out)
    assert_one_line(code, err, f"{lock} is a symbolic link; refusing to write through it")
    assert len((out / "runs.jsonl").read_text().splitlines()) == 1         # the run's record is kept
    assert not (out / "normal" / "mosi-synthetic.csv").exists()


@pytest.mark.parametrize("name", ["runs.jsonl", "runs.jsonl.lock"])
def test_a_store_that_is_a_hard_link_is_one_line_before_training(tmp_path, capsys, name):
    """Before: the record was appended to the store's other name too (here elsewhere.txt; a planted link, or
    a `cp -al` copy of the results folder), and filelock before 4.2.1 emptied a lock file's other name."""
    out = tmp_path / "results"
    out.mkdir()
    other = tmp_path / "elsewhere.txt"
    other.write_text("precious\n")
    os.link(other, out / name)
    code, _, err = cli(capsys, "-m", "tfn", "-d", "mosi", "-s", "1", *TINY, "--out", out)
    assert_one_line(code, err, f"results folder {out}: {out / name} is a file of 2 names (a hard link), which the "
                    "toolkit writes in place, changing it under its other names too; make it a file of its own "
                    "(copy it, then move the copy over it), or choose another --out")
    assert code == 2 and other.read_text() == "precious\n" and sorted(os.listdir(out)) == [name]


RESUMABLE = ["-m", "tfn", "-d", "mosi", "-s", "1", "--synthetic", "--preset", "small", "--max-epochs", "2", "--quiet"]


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A results folder holding a dead run's .partial folder with a last.pt after epoch 1."""
    out = tmp_path_factory.mktemp("interrupted") / "results"
    with pytest.MonkeyPatch.context() as monkeypatch:
        die_before_last_pt_of_epoch(monkeypatch, 2)
        assert main([*RESUMABLE, "--out", str(out)]) == 130
    return out


@pytest.fixture
def partial(interrupted, tmp_path):
    """A private copy of the interrupted results folder, and its .partial folder."""
    out = tmp_path / "results"
    shutil.copytree(interrupted, out, symlinks=True)
    (folder,) = (out / "runs").glob(".*.partial")
    return out, folder


@pytest.mark.parametrize("name", ["train.log", ".last.pt.tmp", ".best.pt.tmp", ".history.json.tmp", "model.json",
                                  "config.yaml", "predictions_test.csv", "tensorboard", "fifo:train.log"])
def test_resume_never_writes_through_what_is_planted_in_the_partial_folder(partial, victim, capsys, name):
    """Before: --resume of a shared .partial folder wrote through a link at any of these names (measured:
    victim.txt appended the run's log lines, or replaced by last.pt, best.pt, history.json, model.json,
    config.yaml or the predictions), and a named pipe at train.log blocked the run for good."""
    out, folder = partial
    fifo, _, name = name.rpartition(":")
    (folder / name).unlink(missing_ok=True)
    if fifo:
        os.mkfifo(folder / name)
    else:
        (folder / name).symlink_to(victim if name == "tensorboard" else victim / "victim.txt")
    code, _, err = cli(capsys, *RESUMABLE, "--out", out, "--resume")
    assert_one_line(code, err, f"{folder} holds {name}, {'no regular file' if fifo else 'a symbolic link'}, which "
                    f"no run writes", f"(python run.py clean --results {out}) or run without --resume")
    assert not (out / "runs.jsonl").exists() and folder.is_dir()


@pytest.mark.parametrize("name", ["train.log", "model.json", "config.yaml", ".last.pt.tmp", "predictions_test.csv",
                                  "run.json", "history.json", "last.pt"])
def test_resume_never_writes_through_a_hard_link_in_the_partial_folder(partial, tmp_path, capsys, name):
    """A hard link is no symbolic link: the check of what a dead run's folder holds let it through. Here the
    file's other name is elsewhere/<name>, as a planted link or a `cp -al` copy of the results folder leaves
    it. Before (measured): --resume appended the run's log lines to it through train.log, and rewrote it in
    place through model.json, config.yaml, .last.pt.tmp (torch.save of last.pt) and the predictions.
    The rest only broke the link (written by rename) or only read it, but no run's folder holds a hard link."""
    out, folder = partial
    if not (folder / name).exists():
        (folder / name).write_text("precious\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.link(folder / name, elsewhere / name)
    before = (elsewhere / name).read_bytes()
    code, _, err = cli(capsys, *RESUMABLE, "--out", out, "--resume")
    assert_one_line(code, err, f"{folder} holds {name}, a file of 2 names (a hard link), which no run writes",
                    f"(python run.py clean --results {out}) or run without --resume")
    assert (elsewhere / name).read_bytes() == before
    assert not (out / "runs.jsonl").exists() and folder.is_dir()


@pytest.mark.parametrize("link", ["hard", "symbolic"])
@pytest.mark.parametrize("name", ["train.log", "run.json", "config.yaml", "model.json", ".last.pt.tmp",
                                  ".history.json.tmp", "predictions_test.csv"])
def test_a_link_planted_after_resumes_check_is_never_written_through(partial, victim, monkeypatch, capsys, link, name):
    """The check of a dead run's folder is one moment; the writes come after, by name. Before, a link planted in
    between (by whoever shares the folder) was written through: train.log appended to the victim, run.json,
    config.yaml, model.json, the predictions and the fixed temporary names of last.pt and history.json rewrote
    it. Now each write refuses a link at its own open (or removes it first, for a temporary name of its own)."""
    from mmsa_atsuko import run_folders
    out, folder = partial
    check = run_folders.check_resumable

    def check_then_plant(work_dir):
        check(work_dir)
        (work_dir / name).unlink(missing_ok=True)
        if link == "hard":
            os.link(victim / "victim.txt", work_dir / name)
        else:
            (work_dir / name).symlink_to(victim / "victim.txt")
    monkeypatch.setattr(run_folders.working, "check_resumable", check_then_plant)
    code, _, err = cli(capsys, *RESUMABLE, "--out", out, "--resume")
    if code:             # refused where it writes the name; the victim fixture asserts victim.txt unchanged
        kind = "a file of 2 names (a hard link)" if link == "hard" else "a symbolic link"
        assert_one_line(code, err, f"{folder / name} is {kind}")
    else:                # a temporary name of the run's own: the link is removed, the run goes on
        assert name.endswith(".tmp") and len(list(out.glob("runs/*/best.pt"))) == 1


def test_resume_still_continues_a_folder_of_its_own(partial, capsys):
    out, folder = partial
    code, _, err = cli(capsys, *RESUMABLE, "--out", out, "--resume")
    assert code == 0, err
    assert "resumed after epoch 1" in (out / "runs" / folder.name[1:-len(".partial")] / "train.log").read_text()


# ------------------------------------------------------------------------------------------
# tune: a shared study's SQLite file
# ------------------------------------------------------------------------------------------
TUNE = ["tune", "-m", "tfn", "-d", "mosi", "--synthetic", "--preset", "small", "--max-epochs", "1", "--seeds", "1",
        "--trials", "1"]


def make_study(path: Path) -> Path:
    import optuna
    path.parent.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="tune-tfn-mosi", storage=f"sqlite:///{path}")
    study.set_user_attr("search", {"model": "tfn"})
    study.enqueue_trial({"learning_rate": 0.001})
    return path


def sql(path: Path, statement: str, *args) -> None:
    import sqlite3
    with sqlite3.connect(path) as db:
        db.execute(statement, args)
    db.close()


STUDY_CASES = {
    "link": ("is a symbolic link; the toolkit writes only inside the results folder",
             lambda db, elsewhere: db.symlink_to(make_study(elsewhere / "study.db"))),
    "journal-link": ("tune-tfn-mosi.db-journal is a symbolic link",
                     lambda db, elsewhere: (make_study(db), Path(f"{db}-journal").symlink_to(elsewhere / "x"))),
    "fifo": ("is no regular file", lambda db, elsewhere: os.mkfifo(db)),
    "trigger": ("holds trigger 'hog', which Optuna never makes",
                lambda db, elsewhere: sql(make_study(db), "CREATE TRIGGER hog AFTER INSERT ON trials BEGIN SELECT "
                                          "count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
                                          "FROM c) SELECT x FROM c); END")),
    "view": ("holds view 'v'", lambda db, elsewhere: sql(make_study(db), "CREATE VIEW v AS SELECT 1")),
    # SQL in the schema that runs as a row is written: 30 such indexes made a 240 KB study's next tune take 14 GB
    "expression-index": ("holds index 'ix_i', which Optuna never makes",
                         lambda db, elsewhere: sql(make_study(db), "CREATE INDEX ix_i ON trials(CASE WHEN number >= 0 "
                                                   "THEN length(replace(hex(zeroblob(1000)), '00', 'i')) END)")),
    "optunas-index-made-partial": (
        "holds index 'ix_trials_study_id' other than Optuna",
        lambda db, elsewhere: (sql(make_study(db), "DROP INDEX ix_trials_study_id"),
                               sql(db, "CREATE INDEX ix_trials_study_id ON trials (study_id) "
                                       "WHERE length(hex(zeroblob(1000))) > 0"))),
    "table-check": ("holds table 'trials' other than Optuna",
                    lambda db, elsewhere: sql(make_study(db), "ALTER TABLE trials ADD COLUMN x INTEGER DEFAULT 0 "
                                              "CHECK (length(hex(zeroblob(1000))) > 0)")),
    "deep-json": ("a value of study_user_attributes is nested deeper than JSON is read",
                  lambda db, elsewhere: sql(make_study(db), "UPDATE study_user_attributes SET value_json = ?",
                                            "[" * 100_000 + "]" * 100_000)),
    "huge": ("bytes, more than a study's 33,554,432",
             lambda db, elsewhere: (make_study(db), os.truncate(db, (32 << 20) + 1))),
    "garbage": ("is not an SQLite database Optuna can read (file is not a database)",
                lambda db, elsewhere: db.write_bytes(b"garbage" * 1000)),
    "search-no-mapping": ("holds a record of its search that is no mapping",
                          lambda db, elsewhere: sql(make_study(db), "UPDATE study_user_attributes SET value_json = ?",
                                                    '"model"')),
}


@pytest.mark.parametrize("case", list(STUDY_CASES))
def test_a_hostile_study_file_is_one_line_before_any_trial(tmp_path, victim, capsys, case):
    """Before: a link at tune/<study>.db sent the study into the file it points at (a database elsewhere written
    to), a named pipe was an sqlalchemy traceback, a trigger on trials hung the tune for good, 100,000 nested
    '[' in a study attribute were a RecursionError traceback, a 178 MB database took 8 GB (32 MiB + 1 is past
    the bound; a sparse file), and a search record that is a string a TypeError traceback. An index on an
    expression, one of Optuna's indexes made partial and a CHECK added to a table passed, and ran their SQL on
    every write of a row."""
    out = tmp_path / "results"
    (out / "tune").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    needle, plant = STUDY_CASES[case]
    plant(out / "tune" / "tune-tfn-mosi.db", elsewhere)
    before = snapshot(elsewhere)
    code, _, err = cli(capsys, *TUNE, "--out", out)
    assert_one_line(code, err, needle, "give --study NAME for a new study")
    assert snapshot(elsewhere) == before and not (out / "runs.jsonl").exists()


def test_a_tune_folder_that_is_a_link_is_one_line(tmp_path, victim, capsys):
    out = tmp_path / "results"
    out.mkdir()
    (out / "tune").symlink_to(victim, target_is_directory=True)
    code, _, err = cli(capsys, *TUNE, "--out", out)
    assert_one_line(code, err, f"{out / 'tune'} is a symbolic link; the toolkit writes only inside the results folder")


# ------------------------------------------------------------------------------------------
# --resume: a shared .partial folder's last.pt
# ------------------------------------------------------------------------------------------
def _first(mapping):
    return next(iter(mapping))


LAST_PT_CASES = {          # what a crafted last.pt changes -> what the line says
    "weight-shape": (lambda s: s["model"].__setitem__(_first(s["model"]), torch.zeros(3)),
                     "its weights give audio_subnet.norm.weight another shape or type than the model's"),
    "negative-epoch": (lambda s: s.__setitem__("epoch", -5), "its epoch is no finished epoch"),
    "history-no-list": (lambda s: s.__setitem__("history", "abc"), "its history does not list epochs 1 to 1"),
    "rng-size": (lambda s: s["rng"].__setitem__("torch", torch.zeros(3, dtype=torch.uint8)),
                 "its random states are not the streams a run draws from"),
    "python-rng": (lambda s: s["rng"].__setitem__("python", (3, (1, 2, 3), None)),
                   "its random states are not the streams a run draws from"),
    "buffer-forward": (lambda s: s.__setitem__("buffers", {"forward": torch.zeros(1)}), "its buffers are not the model's"),
    "lr-string": (lambda s: s["optimizer"]["param_groups"][0].__setitem__("lr", "x"),
                  "its optimizer groups are not the run's optimizer's"),
    "moment-stride-0": (lambda s: [v.__setitem__("exp_avg", torch.zeros(1).expand(10_000, 10_000))
                                   for v in s["optimizer"]["state"].values()],
                        "its optimizer state gives a parameter another shape than the model's"),
    "numpy-rng": (lambda s: s["rng"].__setitem__("numpy", {"bit_generator": "PCG64", "state": {}}),
                  "KeyError restoring it"),
}


@pytest.mark.parametrize("case", list(LAST_PT_CASES))
def test_a_crafted_last_pt_is_one_line_on_resume(partial, capsys, case):
    """Before: each was a traceback on --resume (RuntimeError from load_state_dict, TypeError/ValueError from the
    RNG, 'Tensor' object is not callable once forward was a buffer, a TypeError from Adam's step for a string lr,
    an AttributeError from history.append), except a negative epoch, which trained epochs -4 to 2 and recorded
    the run as if whole."""
    out, folder = partial
    craft, says = LAST_PT_CASES[case]
    state = torch.load(folder / "last.pt", weights_only=True)
    craft(state)
    torch.save(state, folder / "last.pt")
    code, _, err = cli(capsys, *RESUMABLE, "--out", out, "--resume")
    assert_one_line(code, err, f"{folder / 'last.pt'} is not a training state this toolkit wrote ({says}); remove "
                    f"the run's folder or run without --resume")
    assert not (out / "runs.jsonl").exists()


def test_a_kept_record_that_is_a_named_pipe_is_left_alone(tmp_path, capsys):
    """Before: runs/<id>/record.json as a named pipe blocked results --recover for good (and every run and
    sweep, which recover first): killed by timeout after 20 s with no output."""
    out = tmp_path / "results"
    folder = out / "runs" / "tfn-mosi-s1-20260101T000000-abcdef"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "record.json")
    done = subprocess.run([sys.executable, "run.py", "results", "--recover", "--results", str(out)],
                          cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"0 record(s) folded into {out / 'runs.jsonl'}"
    assert "Traceback" not in done.stderr and (folder / "record.json").exists()


@pytest.mark.parametrize("planted", ["link", "folder"])
@pytest.mark.parametrize("command", ["sweep", "tune"])
def test_a_sweep_lock_that_is_no_file_is_one_line_before_any_work(tmp_path, victim, capsys, planted, command):
    """Before: <out>/.sweep.lock linked elsewhere (or a folder) was an OSError/IsADirectoryError traceback from
    sweep and tune."""
    out = tmp_path / "results"
    out.mkdir()
    if planted == "link":
        (out / ".sweep.lock").symlink_to(victim / "victim.txt")
    else:
        (out / ".sweep.lock").mkdir()
    argv = TUNE if command == "tune" else ["sweep", "-m", "tfn", "-d", "mosi", "-s", "1", "--synthetic", "--preset",
                                           "small", "--max-epochs", "1"]
    code, _, err = cli(capsys, *argv, "--out", out)
    says = ("is a symbolic link; the toolkit writes only inside the results folder (replace it with a real file)"
            if planted == "link" else "is a folder where the toolkit writes a file")
    assert_one_line(code, err, f"{out / '.sweep.lock'} {says}")
    assert not (out / "runs.jsonl").exists()


@pytest.mark.parametrize("case", ["past-the-range", "a-key-the-space-does-not-search", "a-missing-key"])
def test_a_stored_trial_the_space_cannot_propose_is_one_line(tmp_path, capsys, case):
    """Before: a trial planted in a shared study with learning_rate 0.5 (the space stops at 0.01) and early_stop 1
    (not searched), scored -100, was the study's best, and the final runs trained with its params as their config
    (records with learning_rate 0.5, early_stop 1), the tune ending as if it had searched them."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    out = tmp_path / "results"
    make_study(out / "tune" / "tune-tfn-mosi.db")
    params = {"learning_rate": 0.001, "post_fusion_dim": 16, "text_out": 8, "batch_size": 16}
    spaces = {"learning_rate": FloatDistribution(1e-5, 1.0, log=True),
              "post_fusion_dim": CategoricalDistribution([16, 32, 64, 128]),
              "text_out": CategoricalDistribution([8, 32, 64, 128]), "batch_size": CategoricalDistribution([16, 32, 64])}
    says = {"past-the-range": "learning_rate 0.5, which configs/tune/tfn.yaml cannot propose",
            "a-key-the-space-does-not-search": "early_stop 1, which configs/tune/tfn.yaml cannot propose",
            "a-missing-key": "no text_out, which configs/tune/tfn.yaml searches"}[case]
    if case == "past-the-range":
        params["learning_rate"] = 0.5
    elif case == "a-key-the-space-does-not-search":
        params["early_stop"], spaces["early_stop"] = 1, IntDistribution(1, 100)
    else:
        del params["text_out"], spaces["text_out"]
    study = optuna.load_study(study_name="tune-tfn-mosi", storage=f"sqlite:///{out / 'tune' / 'tune-tfn-mosi.db'}")
    study.add_trial(optuna.trial.create_trial(params=params, distributions=spaces, value=-100.0))
    code, _, err = cli(capsys, *TUNE, "--out", out)
    assert_one_line(code, err, f"holds trial 1 with {says}: it is not a trial of this search; give --study NAME")
    assert not (out / "runs.jsonl").exists()


@pytest.mark.parametrize("name, line", [
    ("best.pt", "best.pt is no regular file, so it holds no weights this toolkit wrote; train the run again"),
    ("model.json", "model.json is no regular file: it is not a model.json this toolkit wrote; train the run again"),
])
def test_a_named_pipe_at_a_run_folders_weights_or_card_is_said_to_be_one(tmp_path, capsys, name, line):
    """It was one line, but a wrong one: 'best.pt not found: the run folder holds no weights (a run trained with
    --save-checkpoint none ...)' or 'model.json not found', for a file that is there and no regular file."""
    import mmsa_atsuko
    (record,) = mmsa_atsuko.run("tfn", "mosi", seeds=[1111], synthetic=True, preset="small", max_epochs=1,
                                out=tmp_path / "results", quiet=True)
    folder = tmp_path / "shared"
    shutil.copytree(tmp_path / "results" / record["run_dir"], folder)
    (folder / name).unlink()
    os.mkfifo(folder / name)
    code, _, err = cli(capsys, "predict", "--checkpoint", folder, "--features", record["data_path"],
                       "--out", tmp_path / "pred")
    assert_one_line(code, err, f"{folder / line}")
    assert not (tmp_path / "pred").exists()
