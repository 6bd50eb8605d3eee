"""`python3 -m captum_unified.text`: one row per model with quality, attention and training cost."""

import json

import pytest

pytest.importorskip("transformers")
pytest.importorskip("vaderSentiment")

from captum_unified.text.report import describe, main


def test_report_rows(capsys):
    main(["--sizes", "quick"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["model"] for r in rows] == ["char_lm-gpt2", "char_lm-llama", "sentiment-bert"]
    for r in rows:
        assert r["size"] == "quick" and r["threads"] == 1 and r["parameters"] > 10_000
        assert 0 < r["attn_median_max_weight"] <= 1 and r["attn_median_gap"] >= 0
    assert rows[0]["val_loss"] < rows[0]["unigram_loss"] and rows[2]["test_accuracy"] > 0.5
    # sentiment rows hold the real query positions only (64 sentences, 2 layers, 4 heads)
    assert rows[2]["attn_rows"] < 64 * 13 * 8
    with pytest.raises(ValueError, match="kind"):
        describe("vision", "gpt2", "quick")
