"""Errors that reach the user as one line.

Anything raised as a `ToolkitError` is printed by the CLI as a single line (no traceback)
and turned into its `exit_code`. Use `UsageError` for a bad command line or config (exit 2,
like argparse) and `DataError` for a bad or missing file (exit 1); `MissingDataError` is the
DataError of a feature file or folder that is not there at all, so a sweep can name every
missing file at once. A message is made one line where the error is made (`one_line_text`), whatever it quotes,
so a raise needs no care of its own; `one_line` is how a message quotes an error it caught.
"""

# Every character str.splitlines breaks a line at (\r\n is two of them).
_LINE_BREAKS = dict.fromkeys(map(ord, "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"), " ")


def one_line_text(text: str) -> str:
    """`text` with each line break in it a space, the rest as it is: a message quotes paths, keys and cells from
    the file system and from files, any of which may hold a newline, and the CLI prints a message as one line."""
    return text.translate(_LINE_BREAKS)


class ToolkitError(Exception):
    """What a user can cause: the CLI prints it as one line (its text arguments made one line here, `one_line_text`)
    and exits with `exit_code`."""

    exit_code = 1

    def __init__(self, *args):
        super().__init__(*(one_line_text(arg) if isinstance(arg, str) else arg for arg in args))


class UsageError(ToolkitError):
    """Bad command line, unknown model/dataset, unknown or wrongly typed config key."""

    exit_code = 2


class DataError(ToolkitError):
    """Missing, corrupt, hostile or inconsistent data file."""

    exit_code = 1


class TrainingError(ToolkitError):
    """A run that cannot go on, such as a non-finite loss: the line names the epoch and step."""

    exit_code = 1


class ModelContractError(UsageError):
    """A model whose `forward` or `loss` returns what the model contract does not allow (docs/design.md,
    Contracts: Model), found on the first training batch: the line names the model and the method.
    A fresh run that stops on it leaves no folder behind (`run_folders.run_folder`)."""


class ResumeRefused(DataError):
    """A dead run's folder that `--resume` may not continue: `run.py --resume` stops on it in one line (in process
    and with --jobs alike), a sweep says it and trains the run afresh (`sweep/execute.py`). A DataError (exit 1)
    whichever check refused it: the command was right, the shared folder's content or state is not."""


class FolderNotResumable(ResumeRefused):
    """The folder holds what no run writes (a link, a named pipe), or a live process holds its lock."""


class StateNotResumable(ResumeRefused):
    """Its last.pt is not a training state of this run (`training/resume_checks.py`)."""


class MissingDataError(DataError):
    """A dataset's feature file (or MIntRec folder) is not where it was looked for.

    `what` names the data ('mosi aligned features'), `path` where it was looked for."""

    def __init__(self, message: str, *, what: str, path):
        super().__init__(message)
        self.what, self.path = what, str(path)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, caught where the command can say what it kept and how to go on: the CLI prints "interrupted: " and
    the message, and exits 130 as for any Ctrl-C. A KeyboardInterrupt still, so whatever stops on one stops on it."""

    def __init__(self, message: str):
        super().__init__(one_line_text(message))


def one_line(error: BaseException, limit: int | None = 200) -> str:
    """How a message quotes an error it caught: "ErrorType: its text" on one line, its runs of whitespace one space
    and the text cut at `limit` characters (a library's message may run to pages, with newlines and indents); whole
    for `limit` None (a failed run's record). An error whose arguments may be loaded objects goes through
    `safe_pickle.describe_error` instead."""
    text = " ".join((str(error) if limit is None else str(error)[:4 * limit]).split())[:limit]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
