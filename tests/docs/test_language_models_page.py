"""The "Explaining language models" page: its code runs and what its text says holds."""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
import torch

pytest.importorskip("transformers", reason="needs transformers (the dev / test extras)")
pytest.importorskip("inseq", reason="needs inseq (the dev / test extras)")

PAGE = Path(__file__).resolve().parents[2] / "docs" / "pages" / "60_language_models.rst"


def _blocks(path: Path, language: str) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].strip() == f".. code-block:: {language}":
            i += 1
            body = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith("   ")):
                body.append(lines[i][3:])
                i += 1
            blocks.append("\n".join(body).strip("\n"))
        else:
            i += 1
    return blocks


def test_the_pages_code_runs_and_its_claims_hold():
    code = _blocks(PAGE, "python")
    shown = _blocks(PAGE, "text")
    assert len(code) == 6 and len(shown) == 5
    ns: dict = {}
    printed = []
    for k, block in enumerate(code):
        buf = io.StringIO()
        with warnings.catch_warnings(), contextlib.redirect_stdout(buf):
            warnings.simplefilter("ignore")
            exec(compile(block, f"60_language_models.rst block {k + 1}", "exec"), ns)  # noqa: S102 - the page's code
        printed.append(buf.getvalue())
        if k == 1:  # DeepLIFT through Captum's LLM API: deltas at float64 rounding
            assert ns["deltas"].abs().max() < 1e-12
            assert ns["result"].token_attr.shape == (3, 6)
            assert printed[1].splitlines()[0] == shown[0].splitlines()[0]  # the tokens as shown
        if k == 2:  # "DeepLIFT's rows sum to the change of that log-probability"
            rows = ns["result"].token_attr.sum(1)
            assert (rows - torch.stack(ns["changes"])).abs().max() < 1e-12
        if k == 3:  # LRP on the logit: the delta is what the biases and position embeddings took
            assert ns["deltas"].shape == (1,)
        if k == 4:  # inseq: ten methods registered, DeepLIFT complete
            assert printed[4].splitlines()[0] == shown[3].splitlines()[0]
            assert ns["seq"].step_scores["deltas"].abs().max() < 1e-12
    plt.close("all")
    # "a bias-free model conserves its logit once the modules are reached as one op each -- as shipped, and
    # inside a canonize block", with no warning
    pattern = r"^(.*?)\|sum R / logit - 1\| = (\S+) \(shipped logit\), (\S+) \(logit in the block\), (\d+) warnings$"
    found = {m.group(1).strip(): m.groups()[1:] for m in re.finditer(pattern, printed[5], re.M)}
    assert set(found) == {"GPT-2 as shipped", "GPT-2 canonized", "LLaMA as shipped", "LLaMA canonized"}
    errors = {k: (float(v[0]), float(v[1])) for k, v in found.items()}
    assert all(v[2] == "0" for v in found.values()), found
    # GPT-2: its GELU through the backend's map, float64 throughout
    assert errors["GPT-2 as shipped"][0] < 1e-10 and errors["GPT-2 canonized"][0] < 1e-10, errors
    # LLaMA as shipped: its norms' float32 rounding; canonized: float64, against the logit in the block
    assert errors["LLaMA as shipped"][0] < 1e-6 and errors["LLaMA canonized"][0] < 1e-6, errors
    assert errors["LLaMA canonized"][1] < 1e-10, errors
    assert printed[5].strip() == shown[4].strip()  # the figures shown are the ones printed
