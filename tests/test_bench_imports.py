"""Every name a bench script imports from the project still exists.

The bench scripts are not run by the suite (they time things), and most import the project inside
their functions, so a rename in the library leaves them broken until someone runs them: the GPU
bench, prepared for a lease of a few minutes, once failed its first line that way. This reads each
script's `from mmsa_atsuko... import name` / `import mmsa_atsuko...` statements, wherever they
stand, and resolves each against the library as it is.
"""
import ast
import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
OURS = ("mmsa_atsuko", "baselines")


def project_imports(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, module, name or None) of every import of ours in the script."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] in OURS:
            found += [(node.lineno, node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, None) for alias in node.names if alias.name.split(".")[0] in OURS]
    return found


def unresolved(path: Path) -> list[str]:
    missing = []
    for line, module, name in project_imports(path):
        try:
            target = importlib.import_module(module)
        except ImportError as error:
            missing.append(f"{path.name}:{line}: import {module} ({error})")
            continue
        if name is None or hasattr(target, name):
            continue
        try:                                          # `from package import submodule`
            importlib.import_module(f"{module}.{name}")
        except ImportError:
            missing.append(f"{path.name}:{line}: {module} has no {name}")
    return missing


SCRIPTS = sorted(BENCH.glob("*.py"))


def test_every_bench_script_is_read():
    # The check below is only as good as its reach: the bench scripts that use the library are found.
    assert any(project_imports(p) for p in SCRIPTS)
    assert {"gpu_bench.py", "profile_step.py", "bench_atsuko.py"} <= {p.name for p in SCRIPTS}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bench_script_imports_resolve(script):
    assert unresolved(script) == []


def test_a_stale_import_is_reported(tmp_path):
    script = tmp_path / "stale.py"
    script.write_text("def main():\n"
                      "    from mmsa_atsuko.data.synthetic import ensure_synthetic, synthetic_bert_folder\n"
                      "    import mmsa_atsuko.no_such_module\n"
                      "    from mmsa_atsuko import data\n")
    assert unresolved(script) == [
        "stale.py:2: mmsa_atsuko.data.synthetic has no synthetic_bert_folder",
        "stale.py:3: import mmsa_atsuko.no_such_module (No module named 'mmsa_atsuko.no_such_module')",
    ]
