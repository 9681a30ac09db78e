"""Where an analysis command's figures go, their files checked before any work and written all at once, and the
JSON beside them that names the command and the code that made them (`provenance`): explain, robustness, tsne and
sensitivity share these."""
from __future__ import annotations


def check_figures_folder(args, names=(), out=None, make=True) -> None:
    """Where a command's figures go (`out`, else --out, else <results>/analysis), and the files `names` it
    writes there, checked before any run is loaded or trained: otherwise a file there would surface as a traceback
    after all the work is done, and a link or a folder at one of the names after some files are written.
    `make=False`: <results>/analysis is not made yet (robustness refuses run ids after this check)."""
    from ..results import ANALYSIS_DIR, analysis_dir, check_output_folder, refuse_a_file_as_results
    refuse_a_file_as_results(args.results)     # the store file given for its folder: said as the tables say it
    if not (out or args.out):
        check_output_folder(args.results, "results folder", entries=(ANALYSIS_DIR,), option="--results")
        if not make:
            return
    check_output_folder(out or args.out or analysis_dir(args.results), "output folder", entries=names)


def write_figures(files: dict, out) -> None:
    """All of a command's files at once (`atomic.write_files`): a full disk or an unwritable --out is one
    line, and leaves none of them half written."""
    from ..atomic import write_files
    for path in write_files(out, files, f"output folder {out}", "--out"):
        print(f"wrote {path}")


def check_figure_files(args, name: str) -> None:
    """The files of the figure `name` (`figure_names`, and `<name>.json`: its `provenance`) in --out or
    <results>/analysis, checked before any work (`check_figures_folder`); `write_figure` writes them."""
    from ..plots.common import figure_names
    check_figures_folder(args, [*figure_names(name), f"{name}.json"])


def write_figure(args, name: str, fig, table, made_by: bytes) -> None:
    """The files `check_figure_files` checked: the figure, the numbers it draws and `made_by` (its `provenance`)."""
    from ..plots.common import figure_files
    from ..results import analysis_dir
    write_figures({**figure_files(fig, table, name), f"{name}.json": made_by}, args.out or analysis_dir(args.results))


def provenance(command: str, args) -> bytes:
    """The JSON beside a command's figures (`<name>.json`; explain: `explain.json` in its folder): the command, its
    options as parsed, and the code that made the figures, named as a run record names a run's (`git_commit`, the
    one home `code_version.git_commit`, read here before any work; `package_version`). Each CSV row names the code
    its run trained with (`code`); the analysis may run on other code, and this says which."""
    import json
    from ..code_version import git_commit
    from ..version import __version__
    return json.dumps({"command": command, "options": vars(args), "git_commit": git_commit(),
                       "package_version": __version__}, indent=1, sort_keys=True).encode() + b"\n"
