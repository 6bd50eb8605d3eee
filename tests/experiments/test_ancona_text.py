"""Ancona et al.'s IMDB panels stood in for offline: Sensitivity-n on the trained
sentiment transformer of captum_unified.text (experiments/ancona_text.py).

The wrapper that feeds word embeddings gives the model's own logits; Occlusion-1
removes a whole word (its embedding vector set to 0, App. C.4), checked against
a forward pass with that word removed by hand; DeepLIFT is complete; without the
text task the reproduction says why the panel is missing."""

import pytest
import torch

from captum_unified.experiments import ancona, ancona_text, findings
from captum_unified.experiments.common import ExperimentConfig


def test_without_the_text_task_the_report_says_why(monkeypatch, tmp_path):
    monkeypatch.setattr(ancona_text, "load_or_train_sentiment", None)
    cfg = ExperimentConfig.quick(out=str(tmp_path), cache_dir=str(tmp_path / "cache"), show_progress=False, samples=10)
    panel = ancona_text.text_panel(cfg, "quick")
    assert panel.skipped and not panel.sens and not panel.checks
    linear = [s for s in ancona.MODELS if s.name == "linear"]
    for k, v in ancona.QUICK_DEFAULTS.items():
        setattr(cfg, k, v)
    cfg.samples, cfg.subsets = 10, 4
    ancona.run(cfg, models=linear, text=True)
    report = (tmp_path / "ancona_report.md").read_text()
    assert "The sentiment transformer (the IMDB panels' stand-in) did not run: captum_unified.text" in report


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    pytest.importorskip(
        "captum_unified.text", reason="the sentiment task (captum_unified.text) is not here", exc_type=ImportError
    )
    pytest.importorskip("transformers")
    pytest.importorskip("vaderSentiment")
    cfg = ExperimentConfig.quick(
        cache_dir=str(tmp_path_factory.mktemp("cache")), show_progress=False, samples=10, subsets=8
    )
    cfg.ig_steps = 32
    return ancona_text.text_panel(cfg, "quick")


def test_text_panel_rows(panel):
    assert not panel.skipped and panel.accuracy > 0.8 and panel.n_words == 12
    checks = {r["method"]: r for r in panel.checks}
    assert set(checks) == {"gi", "ig", "lrp", "deeplift", "occlusion1"}
    assert float(checks["deeplift"]["max_rel_delta"]) < 1e-4  # complete through attention and LayerNorm
    assert float(checks["ig"]["median_rel_delta"]) < 0.01
    at1 = {r["method"]: r["mean_pcc"] for r in panel.sens if r["n"] == 1}
    assert at1["occlusion1"] > 0.999  # Sensitivity-1: a whole word removed, as Occlusion-1 removes it
    assert {r["n"] for r in panel.sens} >= {1, 9, 12}
    tables = findings.ancona_tables(panel.checks, panel.sens)
    assert {r["network"] for r in tables["sensitivity"]} == {"Sentiment BERT (VADER words)"}
    assert findings.ancona_panel_title(*ancona_text.MODEL) == "Sentiment BERT (VADER words)"


def test_word_embeddings_wrapper_and_word_occlusion_by_hand():
    text = pytest.importorskip(
        "captum_unified.text", reason="the sentiment task (captum_unified.text) is not here", exc_type=ImportError
    )
    pytest.importorskip("transformers")
    pytest.importorskip("vaderSentiment")
    import captum_unified as cu

    trained = text.load_or_train_sentiment("bert", "quick", seed=0)
    model = trained.model.eval()
    test = trained.info["test"]
    keep = test.attention_mask.bool().all(1)
    ids = test.input_ids[keep][:3]
    table = model.get_input_embeddings().weight.detach()
    f = ancona_text.WordEmbeddingClassifier(model, table[ids[0, 0]])
    words = table[ids[:, 1:]]
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        torch.testing.assert_close(f(words), ref, rtol=1e-5, atol=1e-5)
        target = ref.argmax(1)
        mask = torch.arange(words.shape[1]).view(1, -1, 1).expand(1, -1, words.shape[2])
        occ = cu.OcclusionPatch(f).attribute(words, feature_mask=mask, baselines=0.0, target=target)
        for j in (0, 5, 11):
            removed = words.clone()
            removed[:, j] = 0.0
            change = f(words)[torch.arange(3), target] - f(removed)[torch.arange(3), target]
            torch.testing.assert_close(occ[:, j, 0], change, rtol=1e-4, atol=1e-5)
