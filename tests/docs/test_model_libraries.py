"""The "Using it with torchvision / timm / transformers models" page runs
(issue 21): its code blocks are executed in order, in one namespace, and what
its text says is checked on the results. The worked example uses transformers
(a dev and test extra, via the package's own dependencies) and the digits
that ship with scikit-learn; the torchvision/timm block runs only where both
import (they are not installed by default: see the page for why)."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "pages" / "05_model_libraries.rst"


def _python_blocks(rst: Path) -> list[str]:
    blocks, lines, i = [], rst.read_text(encoding="utf-8").splitlines(), 0
    while i < len(lines):
        if lines[i].strip() == ".. code-block:: python":
            i += 1
            body = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith("   ")):
                body.append(lines[i][3:])
                i += 1
            blocks.append("\n".join(body).strip("\n"))
        else:
            i += 1
    return blocks


def _usable(module: str) -> bool:
    if importlib.util.find_spec(module) is None:
        return False
    try:
        importlib.import_module(module)
    except Exception:  # e.g. PyPI's CUDA torchvision next to the CPU torch (the page explains)
        return False
    return True


@pytest.fixture(scope="module")
def page_run():
    pytest.importorskip("transformers", reason="the worked example needs transformers")
    pytest.importorskip("sklearn", reason="the worked example uses scikit-learn's digits")
    blocks = _python_blocks(PAGE)
    assert len(blocks) == 4, f"the page's code blocks changed ({len(blocks)}): update this test"
    ns: dict = {}
    skipped = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for code in blocks:
            needs = [m for m in ("torchvision", "timm") if f"import {m}" in code]
            if needs and not all(_usable(m) for m in needs):
                skipped.append(needs)
                continue
            exec(compile(code, str(PAGE.name), "exec"), ns)  # noqa: S102 - the page's own code
    ns["_skipped"] = skipped
    return ns


def test_the_vit_learns_the_digits(page_run):
    """ "a test accuracy above 90% with logits that differ between digits" """
    assert page_run["accuracy"] > 0.9, page_run["accuracy"]
    assert float(page_run["logits"].std(0).mean()) > 1.0
    assert page_run["logits"].argmax(1).unique().numel() == 10  # every class predicted somewhere


def test_deeplift_and_ig_are_complete_and_agree(page_run):
    """ "DeepLIFT and IG are complete to 1e-4 of the output change, and their
    maps agree (median correlation above 0.5)" """
    import torch

    change = page_run["change"]
    assert change.abs().min() > 1e-3, "the output change is too small to test completeness against"
    for name in ("dl", "ig"):
        attr = page_run[name]
        assert torch.isfinite(attr).all() and attr.abs().sum() > 0
        miss = (attr.flatten(1).sum(1) - change).abs() / change.abs()
        assert miss.max() < 1e-4, f"{name}: {miss}"
    assert torch.isfinite(page_run["lrp"]).all()
    assert page_run["agree"].median() > 0.5, page_run["agree"]
    # the maps explain different digits differently (not one map for all)
    dl = page_run["dl"].flatten(1)
    assert torch.corrcoef(dl).fill_diagonal_(0).abs().max() < 0.99


def test_the_torchvision_and_timm_block(page_run):
    if page_run["_skipped"]:
        pytest.skip("torchvision and timm are not installed (or not usable) here: the block was not run")
    assert page_run["delta"].abs().max() < 1e-3
