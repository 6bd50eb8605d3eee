"""The relevance-ledger example on the backend page shows what running it prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ledger_example_output_is_current():
    r = subprocess.run([sys.executable, str(ROOT / "docs/_static/make_ledger_example.py"), "--check"], cwd=ROOT)
    assert r.returncode == 0, "run: python3 docs/_static/make_ledger_example.py"


def test_ledger_example_shows_the_account_and_the_warning():
    text = (ROOT / "docs" / "pages" / "ledger_example.inc").read_text()
    assert "inputs receive" in text and "(ratio 1)" in text
    assert "ConservationWarning" in text and "F.layer_norm" in text
