"""Every name a bench script takes from the project, or from a sibling script, still exists.

The bench scripts are not run by the suite (they time things), and most import the project inside
their functions, so a rename in the library leaves them broken until someone runs them: the GPU
bench, prepared for a lease of a few minutes, once failed its first line that way. This reads each
script, wherever its imports stand, and resolves against the library as it is:

- `from mmsa_atsuko... import name` and `import mmsa_atsuko...`;
- attribute chains on a module so bound (`safe_checkpoint._data_pkl`, `mmsa_atsuko.run`), as far
  as they run through modules;
- `from sibling import name`, for a sibling bench script, against the names it defines.

A changed signature is not caught: `python bench/gpu_bench.py --device cpu --tiny` runs the GPU
bench's plumbing on a CPU in about half a minute.
"""
import ast
import importlib
import types
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
OURS = ("mmsa_atsuko",)
SCRIPTS = sorted(BENCH.glob("*.py"))


def _resolve(module: str, name: str):
    """module.name as an object (a submodule is imported), or None."""
    target = importlib.import_module(module)
    if hasattr(target, name):
        return getattr(target, name)
    try:
        return importlib.import_module(f"{module}.{name}")
    except ImportError:
        return None


def _top_level_names(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def _chain(node: ast.Attribute) -> tuple[str, list[str]] | None:
    """(root name, [attr, ...]) of `a.b.c`, or None when the root is not a plain name."""
    attrs = []
    while isinstance(node, ast.Attribute):
        attrs.append(node.attr)
        node = node.value
    return (node.id, attrs[::-1]) if isinstance(node, ast.Name) else None


def unresolved(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    siblings = {p.stem: p for p in path.parent.glob("*.py")}
    missing, bound = [], {}                  # bound: local name -> project module it names
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            root = node.module.split(".")[0]
            for alias in node.names:
                if alias.name == "*":
                    continue
                where = f"{path.name}:{node.lineno}"
                if root in OURS:
                    try:
                        value = _resolve(node.module, alias.name)
                    except ImportError as error:
                        missing.append(f"{where}: import {node.module} ({error})")
                        break
                    if value is None:
                        missing.append(f"{where}: {node.module} has no {alias.name}")
                    elif isinstance(value, types.ModuleType):
                        bound[alias.asname or alias.name] = value
                elif node.module in siblings and alias.name not in _top_level_names(siblings[node.module]):
                    missing.append(f"{where}: bench/{node.module}.py has no {alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in OURS:
                    try:
                        module = importlib.import_module(alias.name)
                    except ImportError as error:
                        missing.append(f"{path.name}:{node.lineno}: import {alias.name} ({error})")
                        continue
                    # `import a.b as c` binds c to a.b; `import a.b` binds a
                    root = alias.name.split(".")[0]
                    bound[alias.asname or root] = module if alias.asname else importlib.import_module(root)
    for node in ast.walk(tree):
        found = _chain(node) if isinstance(node, ast.Attribute) else None
        if not found or found[0] not in bound or bound[found[0]] is None:
            continue
        value, walked = bound[found[0]], found[0]
        for attr in found[1]:
            if not isinstance(value, types.ModuleType):
                break                        # past the modules: a class's or an object's attribute
            nxt = _resolve(value.__name__, attr)
            if nxt is None:
                missing.append(f"{path.name}:{node.lineno}: {walked} has no {attr}")
                break
            value, walked = nxt, f"{walked}.{attr}"
    return sorted(set(missing))


def test_every_bench_script_is_read():
    # The check below is only as good as its reach: the bench scripts that use the library are found.
    assert {"gpu_bench.py", "profile_step.py", "bench_atsuko.py"} <= {p.name for p in SCRIPTS}
    reads_ours = [p for p in SCRIPTS if "mmsa_atsuko" in p.read_text(encoding="utf-8")]
    assert len(reads_ours) >= 15


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bench_script_imports_resolve(script):
    assert unresolved(script) == []


def test_a_stale_import_is_reported(tmp_path):
    (tmp_path / "helper.py").write_text("def kept():\n    pass\nVALUE = 1\n")
    script = tmp_path / "stale.py"
    script.write_text("from helper import kept, VALUE, gone\n"
                      "from mmsa_atsuko.data import *\n"
                      "def main():\n"
                      "    from mmsa_atsuko.data.synthetic import ensure_synthetic, synthetic_bert_folder\n"
                      "    import mmsa_atsuko.no_such_module\n"
                      "    from mmsa_atsuko import safe_checkpoint\n"
                      "    import mmsa_atsuko\n"
                      "    safe_checkpoint.no_such_private(mmsa_atsuko.run, mmsa_atsuko.no_such_run)\n"
                      "    safe_checkpoint.load_weights.__doc__.strip()\n")
    assert unresolved(script) == [
        "stale.py:1: bench/helper.py has no gone",
        "stale.py:4: mmsa_atsuko.data.synthetic has no synthetic_bert_folder",
        "stale.py:5: import mmsa_atsuko.no_such_module (No module named 'mmsa_atsuko.no_such_module')",
        "stale.py:8: mmsa_atsuko has no no_such_run",
        "stale.py:8: safe_checkpoint has no no_such_private",
    ]
