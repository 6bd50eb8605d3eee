"""The op-table listing in the docs is generated from the shipped table and current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_op_table_page_is_current():
    r = subprocess.run([sys.executable, str(ROOT / "docs/_static/make_op_table.py"), "--check"], cwd=ROOT)
    assert r.returncode == 0, "run: python3 docs/_static/make_op_table.py"


def test_every_op_kind_is_listed():
    from captum_unified.ops import OpKind, default_op_table

    kinds = {e.kind for e in default_op_table().values()}
    assert kinds == set(OpKind)
