"""A command's start-up: run `run.py ARGS` in process and exit at the first line it prints (stdout or stderr),
after writing that line and the heavy modules imported by then to stderr. Timed as a whole process, it is
the wait before a user sees anything:

    /usr/bin/time -f '%e s' python bench/first_line.py sweep -m tfn -d mosi --synthetic --preset small -s 1111 --out /tmp/o

It imports the package of the checkout it lies in (its parent folder), so a copy of it in an older checkout
times that checkout. bench/README.md, "Start-up of the long commands".
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HEAVY = ("torch", "pandas", "scipy", "sklearn", "matplotlib", "optuna", "transformers", "av", "ray")


class _StopAtFirstLine:
    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        if text.strip():
            loaded = ", ".join(m for m in HEAVY if m in sys.modules) or "none"
            sys.__stderr__.write(f"first line: {text.strip()[:100]}\nheavy modules by then: {loaded}\n")
            sys.__stderr__.flush()
            os._exit(0)
        return len(text)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def main() -> int:
    sys.stdout, sys.stderr = _StopAtFirstLine(sys.stdout), _StopAtFirstLine(sys.stderr)
    from mmsa_atsuko.cli import main as run_py
    return run_py(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
