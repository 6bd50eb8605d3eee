"""Every tutorials/*.py script runs to the end (quick sizes) and prints what it
demonstrates; the scripts themselves assert the facts they show, so a broken
library fails here."""

import ast
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))

#: What each tutorial must print (substrings; a run of spaces matches any
#: whitespace, so column alignment is not pinned).
EXPECTED_OUTPUT = {
    "01_unified_backend.py": [
        "DeepLIFT completeness |delta| max:",
        "max |ours - Captum DeepLift|:",
        "LSTM completeness |delta| max, Shapley product rule:",
        "with i0 in the op table, completeness |delta| max:",
    ],
    "02_taylor_decomposition.py": [
        "relative error, second order",
        "log-log slopes near the input: first order",
        "interaction matrices: (2, 49, 49)",
        "warning: The second-order Taylor terms are identically zero",
        "GI       d =    0.000 %",
        "DL with exact remainders",
        "5 figures written to tutorial02_figures/ (no display)",
    ],
    "03_evaluating_methods.py": [
        "AttributionWarning: epsilon-LRP through sigmoid",
        "max |Captum DeepLift - DeepLiftRescale|:",
        "Captum Saliency (gradient), multiply_by_inputs=False:",
        "resumed run: 108 rows, calls {'GI': 0, 'Occlusion-1': 0, 'IG': 2}",
        "sensitivity_n.csv: 108 rows + header",
        "Summary: Sensitivity-1 of Occlusion-1 = 1.000",
        "5 figures written to tutorial03_figures/ (no display)",
    ],
    "04_language_models.py": [
        "DeepLIFT deltas per generated token:",
        "largest |row sum - (log p(x) - log p(baseline))| over 5 tokens:",
        "FeatureAblation vs DeepLIFT token attributions: Pearson",
        "as shipped: |sum R / logit - 1| =",
        "canonized : |sum R / logit - 1| =",
        "after the block the model's modules compute as shipped: True",
        "1 figures written to tutorial04_figures/ (no display)",
    ],
}


def _run(script: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        CAPTUM_UNIFIED_QUICK="1",
        CAPTUM_UNIFIED_CACHE=str(tmp_path / "cache"),
        MPLBACKEND="Agg",
        # run against this checkout, whatever copy of the package is installed
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    # small models: one intra-op thread avoids OpenMP oversubscription when the
    # suite shares the machine (several times faster there); overridable
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("script", TUTORIALS, ids=[p.name for p in TUTORIALS])
def test_tutorial_runs(script, tmp_path):
    r = _run(script, tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    for line in EXPECTED_OUTPUT.get(script.name, []):
        pattern = re.sub(r"(?:\\ )+", lambda m: r"\s+", re.escape(line))
        assert re.search(pattern, r.stdout), f"{script.name} did not print {line!r}:\n{r.stdout[-3000:]}"
    # headless (Agg): the figures are written as PNG files, as many as it says
    m = re.search(r"(\d+) figures written to (tutorial\d\d_figures)/", r.stdout)
    if m:
        import matplotlib.image

        pngs = sorted((tmp_path / m.group(2)).glob("*.png"))
        assert len(pngs) == int(m.group(1)) > 0
        for png in pngs:
            h, w = matplotlib.image.imread(png).shape[:2]
            assert h > 100 and w > 100, png


def test_every_tutorial_is_run_documented_and_rendered(docs_conf):
    """Each tutorial is named in the README, converts for the docs gallery, and
    the expected-output table names only tutorials that exist."""
    assert len(TUTORIALS) >= 3, "tutorials/[0-9][0-9]_*.py are missing"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for script in TUTORIALS:
        assert script.name in readme, f"README does not mention {script.name}"
    assert set(EXPECTED_OUTPUT) <= {p.name for p in TUTORIALS}
    assert re.search(docs_conf["sphinx_gallery_conf"]["filename_pattern"], "/x/" + TUTORIALS[0].name)


@pytest.fixture(scope="module")
def docs_conf(tmp_path_factory):
    """docs/conf.py's namespace, without its side effects on this process."""
    saved = dict(os.environ)
    try:
        ns = runpy.run_path(str(ROOT / "docs" / "conf.py"), run_name="captum_unified_docs_conf")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return ns


@pytest.mark.parametrize("script", TUTORIALS, ids=[p.name for p in TUTORIALS])
def test_tutorial_converts_for_sphinx_gallery(script, docs_conf):
    """The docs build turns the Markdown cells into a sphinx-gallery script:
    a module docstring with an rST title, the code unchanged."""
    text = script.read_text(encoding="utf-8")
    out = docs_conf["convert_tutorial"](text)
    tree = ast.parse(out)
    doc = ast.get_docstring(tree)
    assert doc, "no module docstring"
    title, underline = doc.strip().splitlines()[:2]
    assert title and set(underline) == {"="} and len(underline) == len(title)
    original = ast.parse(text)
    assert ast.dump(ast.Module(body=tree.body[1:], type_ignores=[])) == ast.dump(original), (
        "the conversion must not change the code"
    )
    assert "# %% [markdown]" not in out and "\n# #" not in out


def test_markdown_to_rst(docs_conf):
    rst, title = docs_conf["markdown_to_rst"](
        [
            "# A title",
            "",
            "## Section",
            "Use `x`s and $\\delta$ or :math:`a`, ``b``, [site](https://e.org).",
            "",
            "$$",
            "a = b",
            "$$",
            "",
            "| h1 | h2 |",
            "|---|---|",
            "| `c` | $d$ |",
        ]
    )
    assert title == "A title"
    text = "\n".join(rst)
    assert "A title\n=======" in text and "Section\n-------" in text
    assert "``x``\\ s" in text and ":math:`\\delta`" in text and ":math:`a`" in text and "``b``" in text
    assert "`site <https://e.org>`__" in text
    assert ".. math::\n\n    a = b" in text
    assert ".. list-table::" in text and "   * - h1" in text and "     - :math:`d`" in text
