"""Every registered metric runs through ``captum-unified evaluate`` on a tiny
model (tests/eval_helpers.py: ``tiny_boxes``, whose data carry a bounding box
per sample). Derived from the registry: a metric registered in
captum_unified/registry.py is run here with its required options (a
``pairs`` option gets ``gi=occlusion1``), without a line of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from captum_unified import cli
from captum_unified.metrics import read_rows
from captum_unified.registry import METRICS

HERE = Path(__file__).resolve().parents[1]  # tests/ (eval_helpers.py)
ROOT = HERE.parent
METHODS = ["gi", "occlusion1"]
BASE = ["evaluate", "--model", "eval_helpers:tiny_boxes", "--methods", *METHODS, "--batch-size", "3"]
BASE += ["--quick", "--no-progress", "--threads", "1", "--device", "cpu", "--baseline", "0"]


def _required_options(names):
    out = []
    for name in names:
        for opt in METRICS[name].options:
            if opt.kind == "pairs":  # a required option: a method and its reference
                out += [opt.flag, f"{METHODS[0]}={METHODS[1]}"]
    return out


def _check_rows(rows, names):
    for name in names:
        mine = [r for r in rows if r["metric"] == name]
        assert mine, f"no rows of {name}"
        assert {r["method"] for r in mine} <= {"Gradient*Input", "Occlusion-1"}
        assert any(r["value"] == r["value"] for r in mine), f"{name}: every value NaN"


@pytest.mark.parametrize("name", list(METRICS))
def test_each_registered_metric_runs_through_evaluate(name, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    out = tmp_path / "rows.csv"
    assert cli.main(BASE + ["--metrics", name, *_required_options([name]), "--out", str(out)]) == 0
    _check_rows(read_rows(out), [name])


def test_all_registered_metrics_through_python_m_captum_unified(tmp_path):
    """The real entry point, every metric at once."""
    names = list(METRICS)
    out = tmp_path / "rows.csv"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    argv = [sys.executable, "-m", "captum_unified", *BASE, "--metrics", *names, *_required_options(names)]
    r = subprocess.run(argv + ["--out", str(out)], capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    _check_rows(read_rows(out), names)
