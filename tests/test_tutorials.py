"""Every tutorials/*.py script runs to the end (quick sizes)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("*.py"))


@pytest.mark.parametrize("script", TUTORIALS, ids=[p.name for p in TUTORIALS])
def test_tutorial_runs(script, tmp_path):
    env = dict(os.environ, CAPTUM_UNIFIED_QUICK="1", CAPTUM_UNIFIED_CACHE=str(tmp_path / "cache"),
               MPLBACKEND="Agg",
               # run against this checkout, whatever copy of the package is installed
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]


def test_tutorials_exist():
    assert TUTORIALS, "no tutorials/*.py found"
