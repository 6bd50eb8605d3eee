"""evaluate() on several processes: ``torchrun --nproc_per_node=2 -m captum_unified
evaluate`` (gloo, CPU) gives exactly the rows of a one-process run, and a rerun
after one rank was killed mid-run resumes from the finished batches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from captum_unified.metrics import read_rows

HERE = Path(__file__).resolve().parents[1]  # tests/ (eval_helpers.py)
ROOT = HERE.parent
ARGS = [
    "evaluate",
    "--model",
    "eval_helpers:tiny",
    "--methods",
    "gi",
    "occlusion1",
    "ig",
    "--metrics",
    "sensitivity_n",
    "infidelity",
    "region_perturbation",
    "--batch-size",
    "3",
    "--subsets",
    "5",
    "--n-list",
    "1",
    "4",
    "20",
    "--perturbations",
    "3",
    "--region-steps",
    "4",
    "--quick",
    "--no-progress",
    "--threads",
    "1",
    "--device",
    "cpu",
    "--baseline",
    "0",
]


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE), env.get("PYTHONPATH", "")])
    env["CAPTUM_UNIFIED_BACKEND"] = "gloo"
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


def _torchrun(out, n=2, **env):
    cmd = (
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", "-m", "captum_unified"]
        + ARGS
        + ["--out", str(out)]
    )
    return subprocess.run(cmd, env=_env(**env), capture_output=True, text=True, timeout=180)


def _one_process(out):
    from captum_unified import cli

    sys.path.insert(0, str(HERE))  # eval_helpers
    assert cli.main(ARGS + ["--out", str(out)]) == 0
    return read_rows(out)


def _key(rows):
    return [(r["method"], r["metric"], r["param"], r["sample_index"], repr(r["value"])) for r in rows]


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return _one_process(tmp_path_factory.mktemp("one") / "rows.csv")


def test_two_gloo_processes_give_the_one_process_rows(single, tmp_path):
    out = tmp_path / "rows.csv"
    r = _torchrun(out)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = read_rows(out)
    assert len(rows) == len(single) > 0
    assert _key(rows) == _key(single)  # bitwise: same batches, per-sample seeds
    # both ranks worked: 8 batches of 3 (22 samples), rank r took batches b % 2 == r
    parts = sorted(p.name for p in (tmp_path / "rows.csv.parts").glob("batch_*.json"))
    assert len(parts) == 8


def test_rerun_after_a_killed_rank_resumes(single, tmp_path):
    out = tmp_path / "rows.csv"
    parts = tmp_path / "rows.csv.parts"
    first_of_rank1 = parts / "batch_0000001.json"
    r = _torchrun(out, CU_TEST_KILL_RANK="1", CU_TEST_KILL_AFTER=str(first_of_rank1))
    assert r.returncode != 0  # rank 1 died in its second batch; torchrun stopped the job
    assert not out.exists()
    done = {p.name: p.stat().st_mtime_ns for p in parts.glob("batch_*.json")}
    assert "batch_0000001.json" in done and "batch_0000003.json" not in done
    r = _torchrun(out)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _key(read_rows(out)) == _key(single)
    for name, mtime in done.items():  # finished batches were read back, not recomputed
        assert (parts / name).stat().st_mtime_ns == mtime, name


def test_evaluate_distributed_initialises_and_closes_its_own_group(tmp_path, monkeypatch):
    import socket

    import torch.distributed as dist
    from eval_helpers import Tiny, data

    from captum_unified.metrics import SensitivityN, evaluate

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for k, v in {
        "RANK": "0",
        "WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "CAPTUM_UNIFIED_BACKEND": "gloo",
    }.items():
        monkeypatch.setenv(k, v)
    model = Tiny().eval()
    methods = {"input": lambda i, t: i.clone()}
    kw = dict(metrics=[SensitivityN(n=[1, 4], n_subsets=3)], batch_size=5)
    rows = evaluate(model, methods, data(), distributed=True, out=tmp_path / "r.csv", **kw)
    assert not dist.is_initialized()  # the group it made is gone
    assert _key(rows) == _key(evaluate(model, methods, data(), **kw))
    assert _key(evaluate(model, methods, data(), distributed=True, **kw)) == _key(rows)  # gathered, no file
    with pytest.raises(RuntimeError, match="torchrun"):
        monkeypatch.delenv("RANK")
        evaluate(model, methods, data(), distributed=True, **kw)
