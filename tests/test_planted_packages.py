"""A folder one runs the toolkit from may hold anything (a downloaded dataset, a results folder from someone else):
`python -m` puts it first on sys.path, so no module of ours may be imported by a name a folder there can take.

The baselines were a top-level package `baselines` (also the name of OpenAI's distribution): a `baselines/` beside
the user ran its `__init__.py` on `python -m mmsa_atsuko list`. They are `mmsa_atsuko.models.baselines` now."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_baselines_folder_where_the_command_runs_is_never_imported(tmp_path):
    planted = tmp_path / "baselines"
    planted.mkdir()
    marker = tmp_path / "ran"
    (planted / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "mmsa_atsuko", "list"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "tfn" in done.stdout and "late_fusion" in done.stdout       # the shipped baselines are all listed
    assert not marker.exists()


def test_no_top_level_package_but_mmsa_atsuko_is_shipped():
    setup = (ROOT / "setup.py").read_text()
    assert '"baselines"' not in setup
    tops = sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file())
    assert tops == ["mmsa_atsuko"]
