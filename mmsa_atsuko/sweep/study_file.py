"""A tune study's SQLite file (`<out>/tune/<study>.db`), checked before Optuna opens it.

A results folder may be someone else's, and Optuna opens, migrates and writes whatever file sits at
the study's name: SQLite follows a link there (writing the study into the file it points at), a
named pipe is a traceback, a trigger on a table Optuna writes runs its SQL on every trial (a recursive
one hangs the tune for good), so does an index on an expression (30 of them, each evaluated on every write of a
trial's row, took a 240 KB study's next tune to 14 GB and 126 s), a 178 MB file of one trial's intermediate values
took 8 GB and two minutes, and a value of 100,000 nested '[' is a RecursionError in Optuna's JSON reader. So,
before the study is created or loaded: no link or other non-regular file at the database or its journal's names, at
most MAX_STUDY_BYTES, only the schema objects the installed Optuna makes, each as it makes them (`optuna_schema`:
SQL stored in a trigger, an index's expression or WHERE, a table's CHECK, DEFAULT or generated column runs as rows
are written), and every JSON value Optuna will read within the JSON reader's depth. Anything refused is one
UsageError line.

Several processes write the study at once (the driver tells results, each trial's worker reports every epoch):
SQLite makes a writer wait for another's lock only up to its busy timeout, 5 s by default, then raises
"database is locked", a traceback to the user. Every connection of ours waits STUDY_BUSY_S (`study_storage`), and a
lock held longer stops the tune in one line that says the study is kept (`stop_if_locked`); a trial's worker that
meets it fails that trial with a line that says so (`locked_trial_error`).

What a study's trials were scored on (`search_facts`) is stored in it, and a tune that resumes it with other facts
stops in one line (`check_same_search`).
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import sqlite3
import stat
import tempfile
from pathlib import Path

from ..config import config_hash
from ..errors import ToolkitError, UsageError

# A trial stores its parameters, its value and one intermediate value per epoch, about 45 bytes each with
# its index (4,000,000 intermediate values took 178 MB): a study of 1,000 trials of 100 epochs takes about
# 5 MB. Optuna reads every row into Python objects, about 2 KB a row (those 178 MB took 8 GB and 2 minutes).
MAX_STUDY_BYTES = 32 << 20
# A write of a trial's report or result takes milliseconds; a minute covers many workers writing at once and a
# slow shared disk. Past it, something holds the file (an open sqlite3 shell in a transaction, a stuck process).
STUDY_BUSY_S = 60.0
SIDECARS = ("-journal", "-wal", "-shm")        # what SQLite writes beside a database, by its name
# The tables whose JSON Optuna decodes as it loads a study.
JSON_COLUMNS = (("study_user_attributes", "value_json"), ("study_system_attributes", "value_json"),
                ("trial_user_attributes", "value_json"), ("trial_system_attributes", "value_json"),
                ("trial_params", "distribution_json"))


def check_study_file(path: Path) -> None:
    """One UsageError line unless `path` (a study's database, which may not exist yet) passes the checks of
    the module docstring."""
    fix = "it is not a study this toolkit wrote; remove it, or give --study NAME for a new study"
    for entry in [path] + [path.with_name(path.name + suffix) for suffix in SIDECARS]:
        try:
            mode = entry.lstat().st_mode
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(mode):
            kind = "a symbolic link" if stat.S_ISLNK(mode) else "no regular file"
            raise UsageError(f"{entry} is {kind}; the toolkit writes only inside the results folder: {fix}")
    if not path.exists():
        return
    size = path.stat().st_size
    if size > MAX_STUDY_BYTES:
        raise UsageError(f"{path} holds {size:,} bytes, more than a study's {MAX_STUDY_BYTES:,}: {fix}")
    try:
        with contextlib.closing(_connect(path)) as db:
            _check_schema(db, path, fix)
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            for table, column in JSON_COLUMNS:
                if table in tables:
                    for (value,) in db.execute(f'SELECT "{column}" FROM "{table}"'):
                        _check_json(value, path, table, fix)
    except sqlite3.Error as e:
        if is_locked(e):           # busy, not broken: `stop_if_locked` says so (never "remove it")
            raise
        raise UsageError(f"{path} is not an SQLite database Optuna can read ({e}): {fix}") from None


def _check_schema(db: sqlite3.Connection, path: Path, fix: str) -> None:
    """One UsageError line naming the first schema object of `db` that is not one of `optuna_schema`'s as it is
    there: an object of another name (a trigger, a view, an index of one's own), or one of Optuna's names made
    otherwise (its index dropped and made again on an expression, a CHECK added to its table)."""
    made = optuna_schema()
    for kind, name, table, sql in db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"):
        if (kind, name) not in made:
            raise UsageError(f"{path} holds {kind} {name!r}, which Optuna never makes: {fix}")
        if made[kind, name] != (table, sql):
            version = optuna_module().__version__
            raise UsageError(f"{path} holds {kind} {name!r} other than Optuna {version} makes it "
                             f"({' '.join(str(sql).split())[:100]}): {fix}")


@functools.lru_cache(maxsize=1)
def optuna_schema() -> dict[tuple[str, str], tuple[str, str | None]]:
    """(type, name) -> (table, SQL) of every schema object the installed Optuna makes in a new study's SQLite file,
    read from one it makes in a temporary folder (0.1 s): so it is what the Optuna that opens the study would make,
    whichever version that is, and no copy of it here goes stale."""
    optuna = optuna_module()
    with tempfile.TemporaryDirectory(prefix="mmsa-atsuko-study-") as folder:
        fresh = Path(folder) / "fresh.db"
        optuna.storages.RDBStorage(f"sqlite:///{fresh}").engine.dispose()
        with contextlib.closing(sqlite3.connect(fresh)) as db:
            rows = db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
    return {(kind, name): (table, sql) for kind, name, table, sql in rows}


def _connect(path: Path) -> sqlite3.Connection:
    # Read-write as Optuna opens it (a hot journal left by a killed tune is rolled back here, as there);
    # only SELECTs run, so no trigger fires.
    db = sqlite3.connect(os.fspath(path), timeout=STUDY_BUSY_S)
    db.execute("PRAGMA trusted_schema = OFF")
    return db


def study_storage(optuna, url: str):
    """The study's storage at `url` (a sqlite:/// URL), its connections waiting STUDY_BUSY_S for another's lock."""
    return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": STUDY_BUSY_S}})


def is_locked(error: BaseException | None) -> bool:
    """Whether `error` or one it was raised from is SQLite's "database is locked" (Optuna wraps it in a
    StorageInternalError that says "invalid data", SQLAlchemy in an OperationalError)."""
    while error is not None:
        if "database is locked" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


@contextlib.contextmanager
def stop_if_locked(path: Path):
    """One line, instead of a traceback, when the study at `path` stayed locked past STUDY_BUSY_S."""
    try:
        yield
    except Exception as error:
        if not is_locked(error):
            raise
        raise ToolkitError(f"{path} stayed locked by another process for over {STUDY_BUSY_S:g} s (database is "
                           f"locked), so the tune stopped; the study is kept: run the same command again to resume "
                           f"it") from None


def locked_trial_error(url: str) -> str:
    """The error of a trial whose worker met the study's database (`url`, sqlite:///PATH) locked past STUDY_BUSY_S,
    in plain words: Optuna's own ("StorageInternalError: ... invalid data in the commit ...") blamed the data."""
    return (f"the study database {url.removeprefix('sqlite:///')} was locked by another writer for over "
            f"{STUDY_BUSY_S:g} s (database is locked), so this trial could not use it; close what holds it (an open "
            f"sqlite3 shell, another process) and run the same command again (a failed trial counts toward --trials)")


def _check_json(value, path: Path, table: str, fix: str) -> None:
    if not isinstance(value, str):
        raise UsageError(f"{path}: a value of {table} is no JSON text: {fix}")
    try:
        json.loads(value)
    except RecursionError:
        raise UsageError(f"{path}: a value of {table} is nested deeper than JSON is read: {fix}") from None
    except ValueError:
        raise UsageError(f"{path}: a value of {table} is no JSON: {fix}") from None


NO_OPTUNA = "run.py tune needs Optuna: pip install -c constraints.txt -e '.[tune]'"


def optuna_module():
    """Optuna, imported here: it is the optional [tune] extra."""
    try:
        import optuna
    except ImportError:
        raise UsageError(NO_OPTUNA) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def check_optuna() -> None:
    """Optuna installed, looked for and not imported (a second of a cold start): a tune without it is one line
    before its planning line."""
    if importlib.util.find_spec("optuna") is None:
        raise UsageError(NO_OPTUNA)


def search_facts(setting, config, trial_seed: int, space: dict, *, precision: str,
                  deterministic: bool, data_id: str) -> dict:
    """What a study's trials were scored on: a study resumed with other facts would mix two searches.
    (Torch threads per trial are not among them: they change a float sum's last bits, not the search.) The data id
    is stored as `data`, the name studies made before hold."""
    return {"model": setting.model, "dataset": setting.dataset, "aligned": setting.aligned, "data": data_id,
            "synthetic": setting.synthetic and f"{setting.synthetic_size}/{setting.synthetic_recipe}",
            "feature_path": setting.feature_path, "data_root": setting.data_root,
            "condition": setting.condition.key(), "config_hash": config_hash(config), "trial_seed": trial_seed,
            "space": space, "precision": precision, "deterministic": deterministic}


def _as_searched(fact: str, value):
    """A stored fact as the search used it: a space's range bound stored as a string (`low: 1e-4`, a string to YAML
    1.1, was searched as the number; the space file now gives it as 1.0e-4, `tune_space._bound`) is that number."""
    if fact != "space" or not isinstance(value, dict):
        return value
    return {key: {end: _number(bound) if end in ("low", "high") else bound for end, bound in spec.items()}
            if isinstance(spec, dict) and "choices" not in spec else spec for key, spec in value.items()}


def _number(bound):
    try:
        return float(bound) if isinstance(bound, str) else bound
    except ValueError:
        return bound


def check_same_search(study, facts: dict, storage: str, echo) -> None:
    stored = study.user_attrs.get("search", {})
    if not isinstance(stored, dict):
        raise UsageError(f"study {study.study_name} in {storage} holds a record of its search that is no mapping; it "
                         f"is not a study this toolkit wrote: remove it, or give --study NAME for a new study")
    differ = [key for key in facts if key in stored and _as_searched(key, stored[key]) != facts[key]]
    if differ:
        raise UsageError(f"study {study.study_name} in {storage} searched with other {', '.join(differ)} "
                         f"({', '.join(f'{k}: {stored[k]!r}' for k in differ)[:300]}); give the same options "
                         f"to resume it, or --study NAME for a new study")
    unknown = [key for key in facts if key not in stored]
    if unknown and study.get_trials(deepcopy=False):
        # A study begun by a tune that stored fewer of its options: nothing to check its trials against.
        echo(f"warning: study {study.study_name} has {len(study.trials)} trial(s) but no record of their "
             f"{', '.join(unknown)}; they count as searched with these")
    if unknown:
        study.set_user_attr("search", {**stored, **{key: facts[key] for key in unknown}})
