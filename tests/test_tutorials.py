"""Every tutorials/*.py script runs to the end (quick sizes)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = sorted((Path(__file__).resolve().parents[1] / "tutorials").glob("*.py"))


@pytest.mark.parametrize("script", TUTORIALS, ids=[p.name for p in TUTORIALS])
def test_tutorial_runs(script, tmp_path):
    env = dict(os.environ, CAPTUM_UNIFIED_QUICK="1", CAPTUM_UNIFIED_CACHE=str(tmp_path / "cache"),
               MPLBACKEND="Agg")
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]


def test_tutorials_exist():
    assert TUTORIALS, "no tutorials/*.py found"
