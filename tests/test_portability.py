"""The toolkit imports on systems without `fcntl` (Windows): locks come from filelock, not flock."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

IMPORT_ALL = """
import importlib, pkgutil, sys
sys.modules["fcntl"] = None            # `import fcntl` now raises ImportError, as where it does not exist
import baselines, mmsa_atsuko
names = [m.name for pkg in (mmsa_atsuko, baselines) for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")
         if not m.name.endswith("__main__")]            # __main__ runs the command line when imported
for name in names:
    importlib.import_module(name)
print(len(names), "fcntl" in sys.modules and sys.modules["fcntl"] is not None)
"""


def test_every_module_imports_without_fcntl():
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", IMPORT_ALL], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    count, fcntl_loaded = done.stdout.split()
    assert int(count) >= 50 and fcntl_loaded == "False"


def test_no_module_of_ours_imports_fcntl():
    offenders = [p for package in ("mmsa_atsuko", "baselines") for p in (ROOT / package).rglob("*.py")
                 if any(s in p.read_text(encoding="utf-8") for s in ("import fcntl", "from fcntl"))]
    assert not offenders
