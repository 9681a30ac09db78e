"""The import graph of `mmsa_atsuko`: no cycle, and no import from a lower layer to a higher one.

Every import counts, at module level or inside a function (a lazy import is still a dependency),
except those under `if TYPE_CHECKING:`. The layers, bottom to top, are read from docs/design.md's table, so the
page and this test cannot differ; a module of the same layer may import another of its layer.
"""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "docs" / "design.md"


def design_layers(text: str) -> list[tuple[str, ...]]:
    """The layers of design.md's table, bottom to top, each a tuple of prefixes naming a module or a package: the
    backquoted names of a row's modules column outside parentheses, a package's trailing `/` dropped, and
    `mmsa_atsuko`, the package itself (its `run` is the API's front door), as ""."""
    rows = re.findall(r"^\| (\d+) \| ([^|]+) \|", text.split("## Layers", 1)[1].split("\n## ", 1)[0], re.M)
    assert [int(level) for level, _ in rows] == list(range(len(rows))), f"design.md's layers are not 0, 1, ...: {rows}"
    return [tuple("" if name == "mmsa_atsuko" else name.rstrip("/")
                  for name in re.findall(r"`([^`]+)`", re.sub(r"\([^)]*\)", "", modules)))
            for _, modules in rows]


LAYERS = design_layers(DESIGN.read_text(encoding="utf-8"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for package in ("mmsa_atsuko",) for p in (ROOT / package).rglob("*.py")}


def _type_checking_only(node, parents) -> bool:
    return any(isinstance(p, ast.If) and "TYPE_CHECKING" in ast.unparse(p.test) for p in parents)


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ours that `name` imports (a `from pkg import x` names pkg.x when that is a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()

    def visit(node, parents):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and not _type_checking_only(node, parents):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = package.split(".")
                if node.level:
                    base = base[:len(base) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module
                targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
                           for alias in node.names]
            found.update(t for t in targets if t in known and t != name)
        for child in ast.iter_child_nodes(node):
            visit(child, parents + [node])

    visit(tree, [])
    return found


def layer_of(name: str) -> int:
    inner = name.split(".", 1)[1] if name.startswith("mmsa_atsuko.") else "" if name == "mmsa_atsuko" else name
    best = None
    for level, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if inner == prefix or (prefix and inner.startswith(prefix + ".")):
                best = level
    if best is None:
        raise AssertionError(f"{name} is in no layer: add it to docs/design.md's layer table")
    return best


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def test_the_graph_is_read(graph):
    """The reader sees the imports it must (so an empty graph cannot pass the checks below)."""
    assert "mmsa_atsuko.errors" in graph["mmsa_atsuko.config"]
    assert "mmsa_atsuko.training.trainer" in graph["mmsa_atsuko.api.one_run"]
    assert len(graph) > 40 and sum(map(len, graph.values())) > 80


def test_every_module_has_a_layer(graph):
    for name in graph:
        layer_of(name)


def test_no_import_goes_up(graph):
    upward = sorted(f"{a} (layer {layer_of(a)}) imports {b} (layer {layer_of(b)})"
                    for a, targets in graph.items() for b in targets if layer_of(b) > layer_of(a))
    assert not upward, "\n".join(upward)


def test_no_import_cycle(graph):
    cycles, state = [], {}

    def walk(node, stack):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            # A package's __init__ importing its own submodules, which import siblings through the
            # package, is how Python packages work; only cycles through two modules of ours count.
            if state.get(target) == "open":
                cycles.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                walk(target, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            walk(node, [])
    assert not cycles, "\n".join(cycles)


# Packages that were one long file, split so that each piece reads in one sitting: (folder, pieces at least).
# sweep was one 735-line file, data/download 573, config 485, data/synthetic 508, data/mintrec 507, run_folders 342,
# metrics 347, plots 349, user_models 306, api 382, atomic 319.
SPLIT_PACKAGES = [("sweep", 5), ("data/download", 4), ("config", 4), ("data/synthetic", 4),
                  ("data/mintrec", 5), ("run_folders", 5), ("metrics", 7), ("plots", 4), ("user_models", 3),
                  ("api", 5), ("atomic", 4)]


@pytest.mark.parametrize("package,pieces", SPLIT_PACKAGES)
def test_split_packages_read_in_one_sitting(package, pieces):
    """Each module of a package that was split stays under 300 lines."""
    folder = ROOT / "mmsa_atsuko" / package
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in folder.glob("*.py")}
    assert len(sizes) >= pieces and max(sizes.values()) < 300, sizes


# The package's lines read without side-scrolling: 120 characters at most (55 ran past it before they were wrapped).
MAX_LINE = 120


def test_package_lines_fit_the_width():
    """No line of mmsa_atsuko/**/*.py runs past MAX_LINE characters; each that does is named file:line."""
    long = [f"{p.relative_to(ROOT)}:{n} ({len(line)} characters)"
            for p in sorted((ROOT / "mmsa_atsuko").rglob("*.py"))
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1) if len(line) > MAX_LINE]
    assert not long, "\n".join(long)


def test_reference_prose_lines_fit_the_width():
    """docs/reference.md's prose reads without side-scrolling too (a line of 171 characters came in with a new
    sentence): no line outside a table row or a fenced block runs past MAX_LINE; each that does is named by number."""
    fenced, long = False, []
    for n, line in enumerate((ROOT / "docs" / "reference.md").read_text(encoding="utf-8").splitlines(), start=1):
        fenced ^= line.startswith("```")
        if not fenced and not line.startswith("|") and len(line) > MAX_LINE:
            long.append(f"docs/reference.md:{n} ({len(line)} characters)")
    assert not long, "\n".join(long)
