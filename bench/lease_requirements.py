"""Whether this Python holds every requirement of setup.py at a version it allows: run first on a lent GPU.

    python3 bench/lease_requirements.py      # a line per problem; exit 2 when one the bench needs is missing

The lease image is not our virtual environment: it lacks easydict (gpu_lease.sh carries its wheel) and holds its own
versions of the rest. A missing package stopped gpu_bench.py at its first import, after the machine's start, and
gpu_lease.sh's second step then stopped on the same import: one missing wheel found per lease, in a session that has
one. This names every problem at once, in seconds, from setup.py's install_requires. A version outside setup.py's
range is said, not refused (the bench may still run; its figures then name that version); `gdown`, which only
`download` imports, is said when missing, not required.
"""
from __future__ import annotations

import ast
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import Requirement

SETUP = Path(__file__).resolve().parents[1] / "setup.py"
NOT_FOR_THE_BENCH = {"gdown"}


def install_requires(setup_py: Path = SETUP) -> list[str]:
    """setup.py's install_requires, read from its source (running setup.py would install nothing, but needs setuptools
    to be importable and says nothing of the list)."""
    for node in ast.walk(ast.parse(setup_py.read_text(encoding="utf-8"))):
        if isinstance(node, ast.keyword) and node.arg == "install_requires":
            return [ast.literal_eval(item) for item in node.value.elts]
    raise SystemExit(f"{setup_py} lists no install_requires")


def problems(requirements: list[str], installed=version) -> tuple[list[str], list[str]]:
    """(a line per requirement the bench needs that is not installed, a line per other problem: a version outside
    setup.py's range, or a package the bench does not import that is missing). `installed(name)`: its version."""
    missing, other = [], []
    for text in requirements:
        requirement = Requirement(text)
        try:
            have = installed(requirement.name)
        except PackageNotFoundError:
            needed = requirement.name not in NOT_FOR_THE_BENCH
            (missing if needed else other).append(
                f"{requirement.name} is not installed (setup.py: {text})"
                + ("; carry its wheel (bench/gpu_lease.sh's header)" if needed else "; the bench does not import it"))
            continue
        if not requirement.specifier.contains(have, prereleases=True):
            other.append(f"{requirement.name} {have} is outside setup.py's {text}: the figures are this version's")
    return missing, other


def main() -> int:
    requirements = install_requires()
    missing, other = problems(requirements)
    for line in missing + other:
        print(f"requirements: {line}", flush=True)
    if not missing and not other:
        print(f"requirements: all {len(requirements)} of setup.py installed, within its ranges", flush=True)
    return 2 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
