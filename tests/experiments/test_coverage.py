"""The results page's table of every figure and table of both papers
(captum_unified.experiments.coverage): complete, honest about files, up to date."""

from pathlib import Path

import pytest

from captum_unified.experiments import coverage
from captum_unified.experiments.common import read_csv

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "_static" / "results"

#: Every figure and table of the two papers (captions in the papers' text).
PAPER_ITEMS = {
    "Ancona et al. 2018": ["Figure 1", "Figure 2", "Table 1", "Figure 3", "Figure 4"],
    "Deng et al. 2021": [
        "Table 1",
        "Figure 1",
        "Table 2",
        "Table 3",
        "Figure 2",
        "Figure 3",
        "Figure 4",
        "Table 4",
        "Figure 5",
    ],
}


def test_every_figure_and_table_of_both_papers_has_a_row():
    for paper, items in PAPER_ITEMS.items():
        have = [it.item for it in coverage.ITEMS if it.paper == paper]
        for item in items:
            assert any(h == item or h.startswith(item + ",") or h.startswith(item + "a") for h in have), (paper, item)
    # Ancona's Figure 4: all twelve panels accounted for (8 MNIST + CIFAR-10 + ImageNet + 2 IMDB)
    fig4 = [it for it in coverage.ITEMS if it.item.startswith("Figure 4,") and it.paper == "Ancona et al. 2018"]
    assert {it.item for it in fig4} >= {
        "Figure 4, MNIST panels (8 of 12)",
        "Figure 4, CIFAR-10 panel",
        "Figure 4, ImageNet panel",
        "Figure 4, IMDB MLP panel",
        "Figure 4, IMDB LSTM panel",
    }


def test_statuses_say_why():
    for it in coverage.ITEMS:
        assert it.status in coverage.STATUSES
        assert it.here, it.item  # what is shown, or why nothing
        if it.status in ("stand-in", "not reachable offline"):
            assert "download" in it.here or "not" in it.here, it.item
    with pytest.raises(ValueError, match="status must be one of"):
        coverage.Item("p", "Figure 9", "x", "done", "y")


def test_rows_do_not_claim_missing_files(tmp_path):
    item = coverage.Item("p", "Figure 9", "x", "reproduced", "shown", ("a/fig.png",))
    (row,) = coverage.coverage_rows(tmp_path, [item])
    assert row["status"] == "reproduced (not in these results yet)" and "a/fig.png" in row["here"]
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "fig.png").write_bytes(b"x")
    (row,) = coverage.coverage_rows(tmp_path, [item])
    assert row["status"] == "reproduced"


def test_docs_table_is_up_to_date():
    """docs/_static/results/coverage.csv is what the registry and the files give
    now (scripts/make_results.py --text-only rewrites it)."""
    rows = read_csv(RESULTS / "coverage.csv")
    assert rows == coverage.coverage_rows(RESULTS)
    for r in rows:
        if r["status"] in ("reproduced", "stand-in"):
            for f in filter(None, r["files"].split(", ")):
                assert (RESULTS / f).exists(), f
