"""The toolkit imports on systems without `fcntl` (Windows): locks come from filelock, not flock."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

IMPORT_ALL = """
import importlib, pkgutil, sys
sys.modules["fcntl"] = None            # `import fcntl` now raises ImportError, as where it does not exist
import mmsa_atsuko
names = [m.name for pkg in (mmsa_atsuko,) for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")
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
    """Only lock_files uses flock (`probe`, a read-only look at another's lock, and `remove_free`), imported where it
    is used and with a way without it."""
    offenders = [p for package in ("mmsa_atsuko",) for p in (ROOT / package).rglob("*.py")
                 if any(s in p.read_text(encoding="utf-8") for s in ("import fcntl", "from fcntl"))]
    assert offenders == [ROOT / "mmsa_atsuko" / "lock_files.py"]


PROBE = """
import sys
sys.modules["fcntl"] = None
from pathlib import Path
from filelock import FileLock
from mmsa_atsuko.lock_files import probe, remove_free
folder = Path(sys.argv[1])
held = FileLock(folder / "held.lock")
held.acquire()
print(probe(folder / "none.lock"), probe(folder / "held.lock"))
print(remove_free(folder / "none.lock"), remove_free(folder / "held.lock"), (folder / "held.lock").exists())
"""


def test_probe_without_flock_takes_the_lock_for_a_moment(tmp_path):
    """Without fcntl (Windows) `probe` raised ImportError: it takes the lock as filelock does instead. (With fcntl
    hidden here filelock falls back to its soft lock, a file that exists while held: a free lock file left behind
    reads as held there, so only no file and a held lock are asked of it.) `remove_free` leaves the held one."""
    done = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True", "None", "False", "True"]
