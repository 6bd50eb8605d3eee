"""LXT's rows of ``reproduce transformers`` (issue #18, items 5-7): the worker protocol and the
merging of its attributions into the pipeline's rows with a fake worker (no LXT needed), and
the real worker on tiny untrained models when an interpreter where LXT imports is there
(``CAPTUM_UNIFIED_LXT_PYTHON``, or this one; skipped otherwise)."""

from __future__ import annotations

import dataclasses
import math
import os
import stat
import sys
from pathlib import Path

import pytest
import torch

import captum_unified as cu

pytest.importorskip("transformers")

from captum_unified.experiments import language_models as lm  # noqa: E402
from captum_unified.experiments import lxt_worker  # noqa: E402
from captum_unified.experiments.common import ExperimentConfig  # noqa: E402
from captum_unified.text.char_lm import CharLMSize, build_char_lm  # noqa: E402

#: A fake interpreter's worker: the real worker's model rebuilding and forward check, its
#: "LXT attribution" plain Gradient*Input (so its rows must equal the pipeline's "gi" rows).
FAKE_WORKER = """
import sys, json, torch
from captum_unified.experiments import lxt_worker as w
args = sys.argv[3:]  # after "-m captum_unified.experiments.lxt_worker"
if args == ["--probe"]:
    print(json.dumps({"lxt": "fake", "transformers": "fake", "torch": "fake"}))
    sys.exit(0)
job = torch.load(args[0], weights_only=True)
MODE = "MODE_VALUE"
if MODE == "crash":
    sys.exit("fake worker: crashed on purpose")
if job["variant"] == "cplrp":
    res = {"status": "not run (fake: no cp_LRP here)", "versions": {}}
else:
    f = w._build(job)
    diff = w._check_forward(f, job, "fake")
    _, a = w._gradient_x_input(f, job["x"], job["target"])
    res = {"status": "ok", "versions": {"lxt": "fake", "transformers": "fake", "torch": "fake"},
           "attributions": a, "seconds": 1.0, "gradient_seconds": 0.5, "forward_max_abs_diff": diff}
torch.save(res, args[1])
"""


def _fake_python(tmp_path: Path, mode: str = "ok") -> str:
    script = tmp_path / "fake_worker.py"
    script.write_text(FAKE_WORKER.replace("MODE_VALUE", mode))
    exe = tmp_path / "fake-python"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return str(exe)


@pytest.fixture(scope="module")
def sentiment_task():
    pytest.importorskip("vaderSentiment")
    cfg = ExperimentConfig.quick(samples=4, subsets=4)
    return lm._sentiment_task(cfg, "quick"), cfg


def test_fake_worker_rows_are_measured_like_ours(sentiment_task, tmp_path):
    """The worker's attribution goes through the same metrics: plain Gradient*Input from the
    fake worker gives the "gi" row's numbers; its time is against the worker's gradient."""
    task, cfg = sentiment_task
    python = _fake_python(tmp_path)
    gi = [m for m in lm.METHODS if m.name in ("gi", "lrp_uniform")]
    summary, curves, sens = lm._model_rows(task, gi, cfg, {}, python, "", 1)
    rows = {r["method"]: r for r in summary}
    assert list(rows) == ["lrp_uniform", "gi", "lxt_attnlrp", "lxt_cplrp"]
    ours, theirs = rows["gi"], rows["lxt_attnlrp"]
    assert theirs["status"] == "ok" and theirs["source"] == "lxt" and theirs["samples"] == len(task.x)
    for key in ("deletion_score", "sensitivity_n_mean", "spearman_mean", "conservation_median_rel"):
        assert math.isclose(theirs[key], ours[key], rel_tol=1e-6, abs_tol=1e-9), key
    assert theirs["time_x_gradient"] == 2.0 and theirs["gradient_seconds"] == 0.5
    assert not any(k.startswith("max_rel_diff_") for k in ours)
    assert theirs["max_rel_diff_lrp_uniform"] > 0 and "max_rel_diff_lrp_gate" not in theirs
    assert "S(x) within" in theirs["note"]
    assert rows["lxt_cplrp"]["status"] == "not run (fake: no cp_LRP here)"
    assert {r["method"] for r in curves} == {"gi", "lrp_uniform", "lxt_attnlrp"}
    assert {r["method"] for r in sens} == {"gi", "lrp_uniform", "lxt_attnlrp"}
    # the generated sentences state LXT's conservation and its distance from epsilon-LRP
    text = " ".join(lm.findings_sentences([dict(r, trained=True) for r in summary], []))
    assert "LXT's rows" in text and "LXT AttnLRP conservation" in text
    assert "largest difference from epsilon-LRP uniform" in text
    # the report says where the rows came from and which did not run
    line = lm._lxt_report_line(summary, "", python)
    assert "fake-python" in line and "not run (fake" in line


def test_a_failing_worker_fills_the_status_not_the_run(sentiment_task, tmp_path):
    task, cfg = sentiment_task
    python = _fake_python(tmp_path, mode="crash")
    gi = [m for m in lm.METHODS if m.name == "gi"]
    summary, _, _ = lm._model_rows(task, gi, cfg, {}, python, "", 1)
    rows = {r["method"]: r for r in summary}
    assert rows["gi"]["status"] == "ok"
    for name in lm.LXT_METHODS:
        assert rows[name]["status"].startswith("failed (the LXT worker failed (exit 1)")
        assert "crashed on purpose" in rows[name]["status"]


def test_status_without_an_lxt_interpreter(tmp_path):
    python, why = lm._lxt_status(_fake_python(tmp_path))
    assert why == "" and python.endswith("fake-python")
    try:
        import lxt  # noqa: F401
    except ImportError:
        python, why = lm._lxt_status(None)
        assert python is None and why.startswith("not importable") and "--lxt-python" in why
        # this interpreter has no LXT: its worker's probe fails and says so
        python, why = lm._lxt_status(sys.executable)
        assert python is None and why.startswith("not run (LXT's rules do not import") and "lxt" in why
    python, why = lm._lxt_status(str(tmp_path / "no-such-python"))
    assert python is None and "FileNotFoundError" in why


def test_the_worker_rejects_a_job_of_another_protocol():
    with pytest.raises(ValueError, match="protocol"):
        lxt_worker.attribute_job({"protocol": lxt_worker.PROTOCOL + 1})


# ----------------------------------------------------------------- the real worker
def _lxt_python() -> str:
    env = os.environ.get("CAPTUM_UNIFIED_LXT_PYTHON")
    if env:
        python = env
    else:
        try:
            import lxt  # noqa: F401
        except ImportError:
            pytest.skip(
                "no interpreter where LXT imports: set CAPTUM_UNIFIED_LXT_PYTHON to one "
                "(e.g. a venv with lxt==2.1 and transformers==4.52.4; see docs/pages/60_language_models.rst)"
            )
        python = sys.executable
    versions, why = lxt_worker.probe(python)
    if versions is None:
        pytest.skip(f"LXT's rules do not import in {python}: {why}")
    return python


def _tiny_task(arch: str, dtype: torch.dtype = torch.float32) -> lm._Task:
    """An untrained tiny character model and three windows (no training, no data files)."""
    size = CharLMSize(n_layer=1, width=16, n_head=2, context=12, batch_size=2, steps=1)
    model = lm._frozen(build_char_lm(arch, size, seed=0).to(dtype))
    table = model.get_input_embeddings().weight.detach()
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(4, table.shape[0], (3, 8), generator=gen)
    target = torch.randint(4, table.shape[0], (3,), generator=gen)
    prefix = table[model.config.bos_token_id]
    f = lm.TokenModel(lm.NextTokenLogProb(model, prefix)).eval()
    return lm._Task(
        f"tiny_{arch}",
        f"tiny {arch}",
        f,
        table[ids].clone(),
        target,
        {},
        True,
        "",
        "",
        [],
        arch=arch,
        builder={"kind": "char_lm", "size": dataclasses.asdict(size), "seed": 0},
        hf=model,
        prefix=prefix,
    )


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_the_real_lxt_worker_on_a_tiny_model(arch):
    """LXT's AttnLRP in its worker equals this package's epsilon-LRP with the uniform product
    policy up to epsilon and float32 rounding (the same rules); nothing is patched here."""
    import transformers.models.gpt2.modeling_gpt2 as modeling_gpt2

    python = _lxt_python()
    task = _tiny_task(arch)
    done, not_run = lm._lxt_attributions(task, python, threads=1)
    assert not not_run, not_run
    x, target = task.x, task.target
    ours = lm._lrp("uniform")(task.f, x, target).sum(-1)
    lxt = done["lxt_attnlrp"].attributions.sum(-1)
    assert lxt.shape == ours.shape and torch.isfinite(lxt).all()
    assert float((lxt - ours).abs().max() / ours.abs().max()) < 1e-3
    assert done["lxt_attnlrp"].gradient_seconds > 0 and "lxt 2" in done["lxt_attnlrp"].note
    # CP-LRP stops the gradient through the attention scores: not the same as AttnLRP
    cp = done["lxt_cplrp"].attributions.sum(-1)
    assert not torch.allclose(cp, lxt)
    # this process was never patched
    assert modeling_gpt2.GPT2MLP.forward.__module__ == "transformers.models.gpt2.modeling_gpt2"
    assert torch.nn.LayerNorm.forward.__module__ == "torch.nn.modules.normalization"


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_the_real_lxt_attnlrp_is_our_uniform_lrp_at_its_epsilon(arch):
    """In float64 and with LXT's epsilon (1e-10 in its identity rule), LXT's AttnLRP and
    this package's epsilon-LRP with the uniform product policy (under the module map) are
    the same rules: equal to 1e-6 relative (the reproduction's rows use epsilon 1e-6, which
    moves single attributions by up to about 1e-4 relative on the trained char GPT-2)."""
    from captum_unified.canonizers import canonize

    python = _lxt_python()
    task = _tiny_task(arch, torch.float64)
    done, not_run = lm._lxt_attributions(task, python, threads=1)
    assert not not_run, not_run
    with canonize(task.f):
        ours = cu.EpsilonLRP(task.f, epsilon=1e-10, products="uniform").attribute(task.x, target=task.target)
    lxt = done["lxt_attnlrp"].attributions
    assert lxt.dtype == torch.float64
    assert float((lxt - ours).abs().max() / ours.abs().max()) < 1e-6


def test_the_lxt_docs_section_is_generated_from_its_committed_csv(tmp_path):
    """The LXT comparison on the language-models page is what ``scripts/make_results.py``
    generates from the committed run's ``transformers_methods.csv``; that run has LXT's rows
    for every model (CP-LRP not for BERT: LXT 2.1 has none) and AttnLRP agrees with
    epsilon-LRP ``"uniform"`` (the same rules)."""
    import importlib.util
    import shutil

    from captum_unified.experiments.common import read_csv

    root = Path(__file__).resolve().parents[2]
    results = root / "docs" / "_static" / "results" / "transformers"
    spec = importlib.util.spec_from_file_location("make_results", root / "scripts" / "make_results.py")
    make_results = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_results)
    shutil.copy(results / "transformers_methods.csv", tmp_path / "transformers_methods.csv")
    make_results.write_lxt_fragments(tmp_path)
    for name in ("transformers_lxt.csv", "transformers_lxt_findings.rst"):
        assert (tmp_path / name).read_text() == (results / name).read_text(), name
    rows = {(r["model"], r["method"]): r for r in read_csv(results / "transformers_methods.csv")}
    for model in lm.MODELS:
        attn = rows[(model, "lxt_attnlrp")]
        assert attn["status"] == "ok" and int(attn["samples"]) >= 50
        assert float(attn["max_rel_diff_lrp_uniform"]) < 1e-3
        cp = rows[(model, "lxt_cplrp")]
        assert cp["status"] == "ok" if model != "sentiment_bert" else cp["status"].startswith("not run (LXT 2.1")
