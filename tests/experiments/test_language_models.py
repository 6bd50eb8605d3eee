"""``captum-unified reproduce transformers`` (issue #18, item 5): one quick run through the
command line on tiny settings, its rows checked against forward passes of the models and the
text package's own ground-truth correlation; the generated sentences against made-up rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("vaderSentiment")

from captum_unified import cli  # noqa: E402
from captum_unified.experiments import language_models as lm  # noqa: E402
from captum_unified.experiments.common import ExperimentConfig, read_csv  # noqa: E402
from captum_unified.registry import PAPERS  # noqa: E402

SAMPLES = 4


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("transformers")
    argv = ["reproduce", "transformers", "--quick", "--samples", str(SAMPLES), "--subsets", "4"]
    assert cli.main(argv + ["--threads", "1", "--no-progress", "--out", str(out)]) == 0
    return out


def test_the_run_writes_what_the_registry_says(run_dir):
    import fnmatch

    names = [p.name for p in run_dir.iterdir()]
    for pattern, _ in PAPERS["transformers"].writes:
        assert fnmatch.filter(names, pattern), pattern
    import matplotlib.image

    h, w = matplotlib.image.imread(run_dir / "transformers_deletion.png").shape[:2]
    assert h > 300 and w > 600


def test_every_model_and_method_has_a_row_and_lxt_says_why_not(run_dir):
    rows = read_csv(run_dir / "transformers_methods.csv")
    for model in lm.MODELS:
        got = {r["method"]: r for r in rows if r["model"] == model}
        assert set(got) == {m.name for m in lm.METHODS} | set(lm.LXT_METHODS)
        for m in lm.METHODS:
            r = got[m.name]
            assert r["status"] == "ok" and int(r["samples"]) == SAMPLES
            assert float(r["time_x_gradient"]) > 0 and math.isfinite(float(r["deletion_score"]))
        try:
            import lxt  # noqa: F401
        except ImportError:
            for name in lm.LXT_METHODS:
                assert got[name]["status"].startswith("not importable")
    # DeepLIFT is complete, measured with forward passes (float32: issue #18's goal 1e-4)
    for r in rows:
        if r["method"] == "deeplift":
            assert float(r["completeness_max_rel"]) < 1e-4, r


def test_deletion_curves_start_at_zero_and_end_at_the_zero_embedding(run_dir):
    """Every curve starts at change 0 (nothing removed) and ends, all tokens removed, at the
    same value for every method: S(0) - S(x) as the model computes it."""
    curves = read_csv(run_dir / "transformers_deletion.csv")
    for model in lm.MODELS:
        rows = [r for r in curves if r["model"] == model]
        last_k = max(int(r["k"]) for r in rows)
        starts = {float(r["mean_change"]) for r in rows if int(r["k"]) == 0}
        ends = [float(r["mean_change"]) for r in rows if int(r["k"]) == last_k]
        assert starts == {0.0}
        assert max(ends) - min(ends) < 1e-5 * max(1.0, abs(ends[0]))
        assert {r["order"] for r in rows} == {"MoRF", "LeRF"}
    sens = read_csv(run_dir / "transformers_sensitivity_n.csv")
    assert {r["model"] for r in sens} == set(lm.MODELS)


def test_the_report_states_the_models_and_does_not_conclude_from_few_samples(run_dir):
    text = (run_dir / "transformers_report.md").read_text()
    assert "validation loss" in text and "test accuracy" in text
    assert "not enough to conclude" in text
    assert "higher than" not in text  # no ranking from 4 samples
    assert "LXT" in text


def test_measured_numbers_against_independent_computations():
    """On the quick sentiment model: the deletion end point is S(0) - S(x) from forward passes,
    DeepLIFT's completeness from forward passes, and the Spearman column equals
    :func:`captum_unified.text.ground_truth_rank_correlation` (its own rank code)."""
    from captum_unified.text import SentimentData, ground_truth_rank_correlation

    cfg = ExperimentConfig.quick(samples=SAMPLES, subsets=4)
    task = lm._sentiment_task(cfg, "quick")
    methods = [m for m in lm.METHODS if m.name in ("deeplift", "gi")]
    res = lm._measure(task, methods, cfg, {})
    rows, _, _ = lm._method_rows(task, methods, res, cfg)
    with torch.no_grad():
        idx = torch.arange(len(task.x))
        fx = task.f(task.x)[idx, task.target].double()
        f0 = task.f(torch.zeros_like(task.x))[idx, task.target].double()
    dl = res["attrs"]["deeplift"].sum((1, 2)).double()
    assert torch.allclose(dl, fx - f0, atol=1e-4, rtol=1e-4)
    morf = res["curves"]["deeplift"]["most_relevant_first"].curves.double()
    assert torch.allclose(morf[:, -1], f0, atol=1e-5) and torch.allclose(morf[:, 0], fx, atol=1e-5)
    # the per-sentence Spearman of the pipeline against the text package's
    for row in rows:
        a = res["attrs"][row["method"]].sum(-1)
        n, length = a.shape
        data = SentimentData(
            [""] * n,
            torch.ones(n, length + 1, dtype=torch.long),
            torch.ones(n, length + 1, dtype=torch.long),
            torch.ones(n, dtype=torch.long),
            torch.cat([torch.zeros(n, 1, dtype=torch.float64), task.truth], 1),
        )
        ref = ground_truth_rank_correlation(torch.cat([torch.zeros(n, 1), a], 1), data, target=1).numpy()
        assert np.allclose(np.nan_to_num(row["_rhos"]), np.nan_to_num(ref), atol=1e-12)


def _rows(n, trained=True, scores=(3.0, 1.0)):
    return [
        {
            "model": "char_gpt2",
            "method": m,
            "method_label": m.upper(),
            "status": "ok",
            "samples": n,
            "trained": trained,
            "model_quality": "validation loss 2.0",
            "claims_completeness": m == "a",
            "completeness_max_rel": 1e-6,
            "deletion_score": s,
            "sensitivity_n_mean": 0.5,
            "time_x_gradient": 2.0,
        }
        for m, s in zip("ab", scores)
    ]


def test_sentences_follow_the_tests():
    tests = [{"model": "char_gpt2", "metric": "deletion_score", "best": "a", "other": "b", "diff": 2.0, "p": 1e-4}]
    text = " ".join(lm.findings_sentences(_rows(64), tests))
    assert "highest A (3)" in text and "higher than 1 of the 1 others" in text
    # not significant: no ranking
    tests[0]["p"] = 0.2
    text = " ".join(lm.findings_sentences(_rows(64), tests))
    assert "higher than" not in text and "not significantly different from B (p = 0.2)" in text
    # too few samples, or a model that did not learn: nothing concluded
    tests[0]["p"] = 1e-4
    assert "not enough to conclude a ranking" in " ".join(lm.findings_sentences(_rows(10), tests))
    text = " ".join(lm.findings_sentences(_rows(64, trained=False), tests))
    assert "not trained well enough" in text and "highest" not in text


def test_samples_below_three_is_a_usage_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        cli.main(["reproduce", "transformers", "--quick", "--samples", "2", "--out", str(tmp_path)])
    assert e.value.code == 2
    assert "--samples" in capsys.readouterr().err


def test_the_docs_section_is_generated_from_the_committed_csvs(tmp_path):
    """The language-models page shows the committed run: its sentences and table are what
    ``scripts/make_results.py`` generates from the committed CSVs (a rerun rewrites them)."""
    import importlib.util
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    results = root / "docs" / "_static" / "results" / "transformers"
    spec = importlib.util.spec_from_file_location("make_results", root / "scripts" / "make_results.py")
    make_results = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_results)
    for name in ("transformers_methods.csv", "transformers_tests.csv"):
        shutil.copy(results / name, tmp_path / name)
    make_results.write_transformers_fragments(tmp_path)
    for name in ("transformers_findings.rst", "transformers_summary.csv"):
        assert (tmp_path / name).read_text() == (results / name).read_text(), name
    rows = read_csv(results / "transformers_methods.csv")
    ok = [r for r in rows if r["status"] == "ok"]
    assert {r["model"] for r in ok} == set(lm.MODELS) and all(int(r["samples"]) >= 50 for r in ok)
    assert all(r["trained"] == "True" for r in ok)
