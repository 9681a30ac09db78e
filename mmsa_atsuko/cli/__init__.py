"""Command line: `python run.py -m tfn -d sims`, `python run.py list`, `python run.py synth ...`.

One module per family of commands; `main` dispatches. Errors the user can fix are printed as one
line and exit non-zero (2 for a bad command line, 1 for bad data); tracebacks are kept for bugs.
"""
from __future__ import annotations

import difflib
import errno
import os
import sys
from pathlib import Path

from ..atomic import not_a_file
from ..config import DATASETS_ENV, datasets_table
from ..errors import Interrupted, ToolkitError, UsageError
from .analysis import cmd_robustness, cmd_tsne
from .common import COMMAND_HELP, overview
from .data import cmd_download, cmd_extract, cmd_predict
from .explain import cmd_explain
from .sensitivity import cmd_sensitivity
from .sweep import cmd_sweep, cmd_tune
from .tables import cmd_compare, cmd_leaderboard, cmd_verify
from .train import cmd_clean, cmd_list, cmd_results, cmd_synth, cmd_train, train_jobs, train_parser

__all__ = ["COMMANDS", "COMMAND_HELP", "main", "cmd_list", "train_parser", "train_jobs"]


COMMANDS = {"list": cmd_list, "synth": cmd_synth, "sweep": cmd_sweep, "leaderboard": cmd_leaderboard,
            "compare": cmd_compare, "download": cmd_download, "explain": cmd_explain,
            "robustness": cmd_robustness, "tsne": cmd_tsne, "sensitivity": cmd_sensitivity, "clean": cmd_clean,
            "extract": cmd_extract, "predict": cmd_predict,
            "results": cmd_results, "verify": cmd_verify, "tune": cmd_tune}


def _take_option(argv: list[str], option: str, needs: str) -> tuple[list[str], list[str]]:
    """`option VALUE` or `option=VALUE`, anywhere in `argv` and repeatable: (the other arguments, the values)."""
    rest, values = [], []
    args = iter(argv)
    for arg in args:
        if arg == option or arg.startswith(option + "="):
            value = arg.partition("=")[2] or next(args, None)
            if not value:
                raise UsageError(f"{option} needs {needs}")
            values.append(value)
        else:
            rest.append(arg)
    return rest, values


def _extend_environment(name: str, paths: list[str]) -> None:
    """Add `paths` to the os.pathsep-separated variable `name`, each once: sweep workers (other
    processes) inherit it and so read the same files."""
    for path in paths:
        # The variable would hold it as two: 'a:b.yaml' was read as 'a' ("not found") and 'b.yaml'.
        if os.pathsep in path:
            raise UsageError(f"{path} holds {os.pathsep!r}, which separates the paths of ${name} (read by sweep "
                             f"workers too): move or rename it to a path without one")
    listed = [f for f in os.environ.get(name, "").split(os.pathsep) if f]
    os.environ[name] = os.pathsep.join(dict.fromkeys(listed + paths))


def take_datasets_files(argv: list[str]) -> list[str]:
    """`--datasets FILE` (any command, repeatable): datasets of your own, declared as blocks like those of
    configs/datasets.yaml. Put in $MMSA_ATSUKO_DATASETS, so sweep workers read the same table."""
    rest, values = _take_option(argv, "--datasets", "a YAML file with a `datasets:` block")
    for value in values:
        what = not_a_file(value)
        if what:
            raise UsageError(f"--datasets {value}: no such file" if what == "not found"
                             else f"--datasets {value} {what}")
    if values:
        _extend_environment(DATASETS_ENV, [str(Path(value).resolve()) for value in values])
    if os.environ.get(DATASETS_ENV):
        datasets_table()        # a bad block or file, given or set by hand, is one line now, before any command starts
    return rest


def take_models_folders(argv: list[str]) -> list[str]:
    """`--models DIR` (any command, repeatable): a folder of models of your own (<name>.py registering its model,
    <name>.yaml beside it). Put in $MMSA_ATSUKO_MODELS, so sweep workers import the same files."""
    from ..registry import discover
    from ..user_models.discovery import MODELS_ENV
    rest, values = _take_option(argv, "--models", "a folder of model files (<name>.py with its <name>.yaml)")
    if values:
        _extend_environment(MODELS_ENV, [str(Path(value).expanduser().resolve()) for value in values])
        discover()              # a missing folder or a name the toolkit has is one line now, before any command
    return rest


# What a training command's Ctrl-C leaves, and how to go on: finished runs are recorded, a run cut short
# leaves its .partial folder (removed by the next call, or continued with --resume). Extract's while its clips are
# extracted is its own line (`errors.Interrupted`: how many are cached); this one is for a Ctrl-C before or after.
AFTER_INTERRUPT = {
    "extract": ": the videos extracted so far are in extract's cache; the same command again goes on from them",
    "run": ": finished runs are recorded; the same command again skips them (with --resume it continues the "
           "interrupted run from its last finished epoch)",
    # What the next call does with each run that was training depends on --resume (sweep/execute.py): say both.
    "sweep": ": finished runs are recorded; the same command again skips them and runs the rest, each run that "
             "was training from its first epoch, or with --resume from its last finished epoch",
    "tune": ": finished trials are stored in the study and finished final runs recorded; the same command again "
            "continues them, a final run that was training from its first epoch, or with --resume from its last "
            "finished epoch",
}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv == ["help"]:
        print(f"usage: run.py COMMAND ... | run.py -m MODEL -d DATASET [options]\n\n{overview()}",
              file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    command_name = None
    try:
        argv = take_models_folders(take_datasets_files(argv))
        command = COMMANDS.get(argv[0], None) if argv else None
        command_name = argv[0] if command else "run"
        if command is None and argv and not argv[0].startswith("-"):     # training takes no positional word
            close = difflib.get_close_matches(argv[0], COMMANDS, n=1)
            raise UsageError(f"unknown command {argv[0]!r}{f'; did you mean {close[0]}?' if close else ''} "
                             f"(commands: {', '.join(COMMANDS)}; or train with run.py -m MODEL -d DATASET)")
        return command(argv[1:]) if command else cmd_train(argv)
    except ToolkitError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:
        after = f": {e}" if isinstance(e, Interrupted) else AFTER_INTERRUPT.get(command_name, "")
        print(f"interrupted{after}", file=sys.stderr)
        return 130
    except BrokenPipeError:            # `run.py list | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as e:
        # pathlib's is_dir/is_file/exists raise ENAMETOOLONG (they say False for a missing file only), so a path too
        # long, typed (--out, --results, --checkpoint, --models ...) or read from a file, stopped nearly every
        # command in a traceback at its first look: the one cause, said once here.
        if e.errno != errno.ENAMETOOLONG:
            raise
        name = str(e.filename)
        print(f"error: {name[:200]}{'...' if len(name) > 200 else ''} is a path longer than the system allows (a "
              f"file or folder name over 255 bytes, or too many in all): give a shorter one", file=sys.stderr)
        return 2
