"""The discovery of model files of your own: the folders of $MMSA_ATSUKO_MODELS (`--models DIR`), imported.

Every `*.py` of those folders is imported after the toolkit's model packages (the registry's `discover`
calls `import_folders`), as `mmsa_atsuko_user_models.<stem>`, and a model registered there reads its YAML
from that folder (`registry.model_yaml_path`). A folder that is missing or holds no model file, and a name
the toolkit already has, are one line (UsageError); a file that fails to import is kept like a baseline's.
The folders are that package's path, so a file imports the one beside it as `from .mylayers import Block`;
`from mylayers import Block` gets the same module (`_SiblingFinder`) where Python finds no other
`mylayers`, and where it does (a file named like a module of the standard library, the toolkit or an
installed package), discovery says so in one line instead of handing the model the other module.

What a run records of these files, read from the tables below, is `source.py`'s. This module imports nothing of
the registry: the registry calls it, and hands it the models registered so far.
"""
from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types
from pathlib import Path
from typing import Callable, Mapping

from ..errors import UsageError

# Folders of models of your own, os.pathsep-separated: `--models DIR` on the command line sets it, so
# that sweep workers (other processes) import the same files.
MODELS_ENV = "MMSA_ATSUKO_MODELS"
USER_PACKAGE = "mmsa_atsuko_user_models"     # what a user's model file is imported as: no real package's name
_USER_MODELS: dict[str, Path] = {}           # model name registered from a folder of $MMSA_ATSUKO_MODELS -> its file
_USER_FILES: dict[str, Path] = {}            # module name (mmsa_atsuko_user_models.<stem>) -> its file
_USER_DIGESTS: dict[Path, str] = {}          # each .py imported from the folders -> its sha256 then (no git knows it)
_USER_BASES: dict[str, set[Path]] = {}       # model name -> the files of yours that define its class and its bases
_user_done: dict[str, str] = {}              # folder imported -> '' (or the one-line error it gave, raised again)
_loading: Path | None = None                 # the user's model file being imported now

# What discovery does with a file that fails to import: (module, error, file) -> kept as a baseline's failure.
KeepFailure = Callable[[str, Exception, Path], None]


def model_folders() -> list[Path]:
    """The folders of models of your own: $MMSA_ATSUKO_MODELS (`--models DIR`), in order."""
    folders = [Path(f).expanduser().resolve() for f in os.environ.get(MODELS_ENV, "").split(os.pathsep) if f]
    return list(dict.fromkeys(folders))


def import_folders(registered: Mapping[str, type], keep_failure: KeepFailure) -> None:
    """Import the model files of the folders in $MMSA_ATSUKO_MODELS, each folder once (a bad folder raises
    its line on every call). `registered`: the registry's models, read to learn which names a file adds."""
    folders = model_folders()
    if folders:
        _user_package(folders)
    for folder in folders:
        key = str(folder)
        if key not in _user_done:
            _user_done[key] = ""
            try:
                _import_folder(folder, registered, keep_failure)
            except UsageError as e:
                _user_done[key] = str(e)
        if _user_done[key]:
            raise UsageError(_user_done[key])


def loading() -> Path | None:
    """The model file of your own being imported now (a name it registers must be free), or None."""
    return _loading


def model_origin(name: str) -> Path | None:
    """The model file of your own that registered `name`, or None for the toolkit's models."""
    return _USER_MODELS.get(name)


def model_file(module: str) -> str:
    """How a message names model module `module`: its dotted name, or the path of a model file of your own."""
    return str(_USER_FILES.get(module, module))


class _SiblingLoader(importlib.abc.Loader):
    """`import mylayers` -> the module mmsa_atsuko_user_models.mylayers itself: one module, one set of classes."""

    def create_module(self, spec):
        return importlib.import_module(f"{USER_PACKAGE}.{spec.name}")

    def exec_module(self, module):
        pass                                      # imported (run) once, under its package's name


class _SiblingFinder(importlib.abc.MetaPathFinder):
    """A top-level name no other finder knows that is a file of a models folder (`from mylayers import Block`),
    asked for by a file of a models folder. Last on sys.meta_path: a file of yours never shadows a module of the
    standard library, the toolkit or an installed package (`_check_sibling_imports` says when a file of yours
    is shadowed by one); and only your files get yours, so a library's optional `try: import mylayers` elsewhere
    in the process still finds nothing, as it would without --models."""

    def find_spec(self, fullname, path=None, target=None):
        if path is not None or USER_PACKAGE not in sys.modules or not _imported_by_a_user_file() \
                or importlib.util.find_spec(f"{USER_PACKAGE}.{fullname}") is None:
            return None
        return importlib.util.spec_from_loader(fullname, _SiblingLoader())


# The import machinery's own frames between an `import` statement (or importlib.import_module) and a finder.
_IMPORT_MACHINERY = frozenset({"importlib", "importlib._bootstrap", "importlib._bootstrap_external",
                               "_frozen_importlib", "_frozen_importlib_external", "importlib.util", __name__})


def _imported_by_a_user_file() -> bool:
    """Whether the import being resolved was asked for by a module of the models folders: the first frame
    outside the import machinery (and this module) is the importer's."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") in _IMPORT_MACHINERY:
        frame = frame.f_back
    importer = frame.f_globals.get("__name__", "") if frame is not None else ""
    return importer == USER_PACKAGE or importer.startswith(USER_PACKAGE + ".")


def _user_package(folders: list[Path]) -> None:
    """mmsa_atsuko_user_models, a package whose path is the models folders (relative imports between their
    files), and `_SiblingFinder` last on sys.meta_path (absolute ones); sweep workers get both from discover."""
    package = sys.modules.get(USER_PACKAGE)
    if package is None:
        package = sys.modules[USER_PACKAGE] = types.ModuleType(USER_PACKAGE, "models of your own (--models DIR)")
        package.__spec__ = importlib.machinery.ModuleSpec(USER_PACKAGE, None, is_package=True)
    package.__path__ = package.__spec__.submodule_search_locations = [str(f) for f in folders]
    if not any(isinstance(finder, _SiblingFinder) for finder in sys.meta_path):
        sys.meta_path.append(_SiblingFinder())


# What parsing a file raises where it is no Python the parser can read: unreadable (OSError), bad syntax
# (SyntaxError), a NUL byte (ValueError), nested past the parser's stack ('x = ---...1' 200,000 deep: MemoryError,
# or RecursionError). Its import raises the same, which discovery keeps like a baseline's failure: one line.
UNPARSABLE = (OSError, SyntaxError, ValueError, MemoryError, RecursionError)


def parse_source(file: Path) -> ast.Module | None:
    """`file`'s syntax tree, read without importing it (model_names, the sibling-import check); None where it
    cannot be parsed (UNPARSABLE): importing it then says why."""
    try:
        return ast.parse(file.read_bytes(), str(file))
    except UNPARSABLE:
        return None


def _check_sibling_imports(folder: Path, files: list[Path]) -> None:
    """`import X` in a file of a models folder where X.py is beside it but Python finds another X first (the
    standard library's, the toolkit's, an installed one): the model would get that X without a word."""
    stems = {f.stem for f in files} | {d.name for d in folder.iterdir() if (d / "__init__.py").is_file()}
    for file in files:
        tree = parse_source(file)
        if tree is None:
            continue                   # its import says so, kept like a baseline's failure
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            for top in {name.partition(".")[0] for name in names} & stems:
                found = sys.modules.get(top) or importlib.util.find_spec(top)
                spec = getattr(found, "__spec__", found)
                if spec is None or isinstance(spec.loader, _SiblingLoader) or spec.name.startswith(USER_PACKAGE):
                    continue
                other = spec.origin if os.path.isabs(spec.origin or "") else f"Python's own {top} ({spec.origin})"
                yours = folder / f"{top}.py" if (folder / f"{top}.py").is_file() else folder / top
                raise UsageError(f"{file}, line {node.lineno}: `import {top}` gets {other}, not {yours} beside it; "
                                 f"write `from .{top} import ...` for yours, or rename it")


def _import_folder(folder: Path, registered: Mapping[str, type], keep_failure: KeepFailure) -> None:
    if not folder.is_dir():
        raise UsageError(f"model folder {folder} does not exist (--models DIR or ${MODELS_ENV}: a folder of "
                         f"model files <name>.py, each with its <name>.yaml beside it)")
    files = sorted(folder.glob("*.py"))
    if not files:
        raise UsageError(f"model folder {folder} holds no .py file: put a model file <name>.py that registers "
                         f"its model with @register_model, and its <name>.yaml, in it")
    _check_sibling_imports(folder, files)
    for file in files:
        _import_file(file, registered, keep_failure)
    for name, module in list(sys.modules.items()):     # a package beside them that one imported (layers/)
        path = Path(getattr(module, "__file__", None) or folder)
        if name.startswith(USER_PACKAGE + ".") and path.is_relative_to(folder) and path.is_file() \
                and path not in _USER_DIGESTS:
            _USER_DIGESTS[path] = _sha256(path)


def _sha256(file: Path) -> str:
    return hashlib.sha256(file.read_bytes()).hexdigest()


def _import_file(file: Path, registered: Mapping[str, type], keep_failure: KeepFailure) -> None:
    """Import one model file of your own as mmsa_atsuko_user_models.<stem> (in sys.modules before it runs,
    so that dataclasses and pickling find it); a failure is kept as a baseline's is."""
    global _loading
    module = f"{USER_PACKAGE}.{file.stem}"
    if _USER_FILES.get(module, file) != file:
        raise UsageError(f"{file} and {_USER_FILES[module]}: two model files of one name; rename one")
    _USER_FILES[module] = file
    before = set(registered)
    _loading = file
    try:
        _USER_DIGESTS[file] = _sha256(file)
        if module in sys.modules:      # imported already by a file beside it (`from .mylayers import Block`)
            return
        spec = importlib.util.spec_from_file_location(module, file)
        sys.modules[module] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[module])
    except UsageError:                 # a name the toolkit has: one line, the command does not start
        sys.modules.pop(module, None)
        raise
    except Exception as e:             # as a baseline's: its models are unavailable, the others load
        sys.modules.pop(module, None)
        keep_failure(module, e, file)
    finally:
        _loading = None
    for name in set(registered) - before:   # a model of a file imported by this one is that file's
        _USER_MODELS[name] = Path(getattr(sys.modules.get(registered[name].__module__), "__file__", None) or file)
        modules = {sys.modules.get(c.__module__) for c in registered[name].__mro__
                   if c.__module__.startswith(USER_PACKAGE + ".")}
        _USER_BASES[name] = {Path(m.__file__) for m in modules if getattr(m, "__file__", None)}
