"""The built HTML docs: they work offline and on a phone.

The docs are built once per test session (``sphinx -W``, the tutorials run in
the build), or read from ``$CAPTUM_UNIFIED_DOCS_HTML`` when that names a
finished build: ``.ci/run`` builds the docs first and points the tests at that
build, so CI builds them once.

* no page, script or style sheet loads anything from outside the build (links a
  reader clicks are fine);
* no page shows the build machine's paths (tutorial output included);
* the footer names the project, the year and the license;
* the getting-started page's code runs and its stated trend holds; every name
  on the "Coming from Captum" page exists;
* in headless Chromium (Debian's package, installed by scripts/install.sh):
  the home, results and one tutorial page typeset their math (MathJax output,
  no raw ``\\(``), show their figures (``naturalWidth > 0``), request nothing
  from outside the local server, and fit a phone's width (code blocks wrap
  between words, continuations indented); the results page's tables fit the
  column and wide figures are shown wider than it, linked to the original.
"""

from __future__ import annotations

import html.parser
import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

pytestmark = pytest.mark.docs

#: the pages the browser check opens (relative to the HTML root)
BROWSER_PAGES = ["index.html", "pages/50_results.html", "tutorials/02_taylor_decomposition.html"]


@pytest.fixture(scope="module")
def html_dir(tmp_path_factory) -> Path:
    given = os.environ.get("CAPTUM_UNIFIED_DOCS_HTML")
    if given:
        path = Path(given)
        assert (path / "index.html").is_file(), f"CAPTUM_UNIFIED_DOCS_HTML={given} holds no built docs (index.html)"
        return path
    pytest.importorskip("sphinx_gallery", reason="the docs build needs the dev extras (sphinx-gallery)")
    out = tmp_path_factory.mktemp("docs")
    env = dict(os.environ, MPLBACKEND="Agg")
    t0 = time.perf_counter()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "-q",
            "-b",
            "html",
            "-d",
            str(out / "doctrees"),
            str(DOCS),
            str(out / "html"),
        ],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=ROOT,
        env=env,
    )
    assert r.returncode == 0, f"docs build failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    print(f"docs built in {time.perf_counter() - t0:.0f} s")
    return out / "html"


# ------------------------------------------------------------------ offline


_LOAD_ATTRS = {
    "script": ("src",),
    "img": ("src", "srcset"),
    "source": ("src", "srcset"),
    "iframe": ("src",),
    "embed": ("src",),
    "video": ("src", "poster"),
    "audio": ("src",),
    "track": ("src",),
    "object": ("data",),
    "input": ("src",),
}
#: <link rel=...> values whose href the browser fetches
_FETCHED_LINKS = {
    "stylesheet",
    "icon",
    "shortcut",
    "preload",
    "modulepreload",
    "prefetch",
    "manifest",
    "apple-touch-icon",
    "mask-icon",
    "dns-prefetch",
    "preconnect",
}
_EXTERNAL = r"(?:https?:)?//"
_CSS_LOADS = re.compile(rf"""url\(\s*['"]?{_EXTERNAL}[^)'"]*|@import\s+(?:url\()?\s*['"]?{_EXTERNAL}[^;'")]*""", re.I)
#: in scripts: a ``src`` set to a remote URL, ``fetch``/``import`` of one; an
#: ``href`` in a script builds a link the reader clicks (MathJax's "About" box)
_JS_LOADS = re.compile(
    rf"""(?:\bsrc\s*[=:]\s*|\b(?:fetch|import|importScripts|loadScript)\s*\(\s*|\bfrom\s+)"""
    rf"""['"`]{_EXTERNAL}[^'"`]*""",
    re.I,
)


def _is_external(url: str) -> bool:
    return bool(re.match(_EXTERNAL, url.strip(), re.I))


class _LoadCollector(html.parser.HTMLParser):
    """URLs an HTML page makes the browser fetch (not the links a reader clicks)."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        for name in _LOAD_ATTRS.get(tag, ()):
            if name in a:
                urls = [part.strip().split(" ")[0] for part in a[name].split(",")] if name == "srcset" else [a[name]]
                self.loads += [u for u in urls if _is_external(u)]
        if tag == "link" and set(a.get("rel", "").lower().split()) & _FETCHED_LINKS and _is_external(a.get("href", "")):
            self.loads.append(a["href"])
        if (
            tag == "meta"
            and a.get("http-equiv", "").lower() == "refresh"
            and re.search(_EXTERNAL, a.get("content", ""))
        ):
            self.loads.append(a["content"])
        if "style" in a:
            self.loads += _CSS_LOADS.findall(a["style"])

    def handle_data(self, data):  # inline <style> and <script> bodies
        if self.lasttag == "style":
            self.loads += _CSS_LOADS.findall(data)
        elif self.lasttag == "script":
            self.loads += _JS_LOADS.findall(data)


def external_loads(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".html":
        parser = _LoadCollector()
        parser.feed(text)
        return parser.loads
    if path.suffix == ".css":
        return _CSS_LOADS.findall(text)
    return _JS_LOADS.findall(text)


def test_the_scanner_finds_external_loads(tmp_path):
    """The check below can fail: planted loads are found, clicked links are not."""
    page = tmp_path / "p.html"
    page.write_text(
        '<html><head><script src="https://cdn.example.org/x.js"></script>'
        '<link rel="stylesheet" href="//fonts.example.org/f.css"><style>@import url("https://e.org/s.css");</style>'
        '</head><body><a href="https://captum.ai">Captum</a><img src="_images/ok.png">'
        '<img srcset="a.png 1x, https://e.org/b.png 2x"><div style="background: url(http://e.org/bg.png)"></div>'
        "</body></html>"
    )
    found = external_loads(page)
    assert len(found) == 5, found
    assert not any("captum.ai" in u for u in found)
    css = tmp_path / "s.css"
    css.write_text('@font-face { src: url("https://e.org/font.woff2"); } a { color: red }')
    assert external_loads(css)
    js = tmp_path / "s.js"
    js.write_text(
        'var s = document.createElement("script"); s.src = "https://cdn.e.org/mathjax.js";'
        " const about = '<a href=\"https://www.mathjax.org\">MathJax</a>';"
    )
    assert len(external_loads(js)) == 1


def _built_files(html_dir: Path, suffixes):
    return [p for p in html_dir.rglob("*") if p.is_file() and p.suffix in suffixes and ".doctrees" not in p.parts]


def test_no_page_loads_an_external_resource(html_dir):
    files = _built_files(html_dir, {".html", ".css", ".js"})
    assert any(p.suffix == ".html" for p in files)
    bad = {str(p.relative_to(html_dir)): loads for p in files if (loads := external_loads(p))}
    assert not bad, f"pages that load resources from outside the build: {bad}"


def test_math_is_served_from_the_build(html_dir):
    page = (html_dir / "pages" / "20_taylor.html").read_text(encoding="utf-8")
    scripts = re.findall(r'<script[^>]*src="([^"]*mathjax[^"]*)"', page, re.I)
    assert scripts, "no MathJax script on a page with math"
    for src in scripts:
        assert not _is_external(src)
        # a rebuild over an earlier build adds Sphinx's cache-busting "?v=<checksum>"
        assert (html_dir / "pages" / src.split("?")[0]).resolve().is_file(), src
    assert (html_dir / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()


def _machine_paths():
    paths = {
        str(ROOT),
        os.path.expanduser("~"),
        sys.prefix,
        sys.base_prefix,
        tempfile.gettempdir(),
        str(Path(importlib.import_module("torch").__file__).parents[1]),
    }
    return sorted(p.rstrip("/") + "/" for p in paths if p and p != "/")


def test_no_page_shows_the_build_machines_paths(html_dir):
    paths = _machine_paths()
    hits = {}
    for p in _built_files(html_dir, {".html"}):
        text = p.read_text(encoding="utf-8", errors="replace")
        found = sorted({m for path in paths for m in re.findall(re.escape(path) + r"[^\s<\"']*", text)})
        if found:
            hits[str(p.relative_to(html_dir))] = found[:5]
    assert not hits, f"build-machine paths in the rendered docs: {hits}"
    # the tutorials' warnings name the tutorial as a reader runs it, with its own line numbers
    tut = (html_dir / "tutorials" / "01_unified_backend.html").read_text(encoding="utf-8")
    tut = re.sub(r"<[^>]+>", "", tut)  # the text a reader sees (code is marked up per word)
    m = re.search(r"tutorials/01_unified_backend\.py:(\d+): AttributionWarning", tut)
    assert m, "tutorial 01's AttributionWarning is not shown with a relative path"
    source = (ROOT / "tutorials" / "01_unified_backend.py").read_text(encoding="utf-8").splitlines()
    assert "EpsilonLRP" in source[int(m.group(1)) - 1], "the warning's line number is not the tutorial's"


def test_footer_names_project_year_and_license(html_dir):
    import captum_unified

    page = (html_dir / "index.html").read_text(encoding="utf-8")
    footer = re.search(r'<div class="footer"[^>]*>(.*?)</div>', page, re.S)
    assert footer, "no footer"
    text = re.sub(r"<[^>]+>", " ", footer.group(1))
    text = re.sub(r"\s+", " ", text.replace("&#169;", "©")).strip()
    assert "captum_unified" in text and "BSD-3-Clause" in text and captum_unified.__version__ in text, text
    assert re.search(r"©\s*20\d\d", text), text
    assert not re.search(r"©\s*\.", text), f"empty copyright: {text}"


def test_tutorial_02_figures_are_in_the_build(html_dir):
    page = (html_dir / "tutorials" / "02_taylor_decomposition.html").read_text(encoding="utf-8")
    images = re.findall(r'<img[^>]+src="([^"]*sphx_glr_02_taylor_decomposition_\d+\.png)"', page)
    assert len(images) >= 4, images
    for src in images:
        assert (html_dir / "tutorials" / src).resolve().stat().st_size > 1000, src


# ------------------------------------------------------------------ pages


def _code_blocks(rst: Path, language: str):
    blocks, lines, i = [], rst.read_text(encoding="utf-8").splitlines(), 0
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


def test_getting_started_code_runs_and_its_trend_holds():
    import warnings

    import torch

    blocks = _code_blocks(DOCS / "pages" / "00_getting_started.rst", "python")
    assert len(blocks) == 3
    ns: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for code in blocks:
            exec(compile(code, "00_getting_started.rst", "exec"), ns)  # noqa: S102 - the page's own code
    assert ns["delta"].abs().max() < 1e-5
    assert (ns["dl"] - ns["theirs"]).abs().max() < 1e-5
    res = ns["res"]
    first = {name: float(r.mean[0]) for name, r in res.items()}
    last = {name: float(r.mean[-1]) for name, r in res.items()}
    # "Occlusion-1 scores highest at n = 1"
    assert max(first, key=first.get) == "Occlusion-1", first
    # "at the largest n the complete methods (IG, DeepLIFT) score at least as high as Occlusion-1"
    assert last["IG"] >= last["Occlusion-1"] and last["DeepLIFT"] >= last["Occlusion-1"], last
    assert isinstance(ns["smooth"], torch.Tensor)


def _resolve(dotted: str):
    import captum_unified as cu

    head, *rest = dotted.split(".")
    obj = {"cu": cu, "captum_unified": cu}.get(head)
    if obj is None:
        obj = importlib.import_module(head)
    for k, part in enumerate(rest):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            obj = importlib.import_module(".".join([head, *rest[: k + 1]]))
    return obj


def test_every_name_on_the_captum_page_exists():
    import csv

    with open(DOCS / "pages" / "captum_map.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) >= 14
    captum_names = set()
    for row in rows:
        for column in ("Captum", "captum_unified"):
            for name in re.findall(r"\b((?:captum_unified|captum|cu)(?:\.[A-Za-z_]\w*)+)", row[column]):
                _resolve(name)  # raises if a class was renamed or removed
                if column == "Captum":
                    captum_names.add(name.split(".")[-1])
    wanted = {
        "Saliency",
        "InputXGradient",
        "IntegratedGradients",
        "DeepLift",
        "LRP",
        "Occlusion",
        "FeatureAblation",
        "NoiseTunnel",
        "LayerDeepLift",
        "LayerGradientXActivation",
        "LayerLRP",
        "infidelity",
        "sensitivity_max",
        "visualization",
    }
    assert wanted <= captum_names, f"Captum classes without a row: {sorted(wanted - captum_names)}"


# ------------------------------------------------------------------ browser


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


_CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-extensions",
]


#: what the browser tests read from a page: math, figures, tables, code blocks
_MEASURE_JS = """() => {
    const imgs = [...document.querySelectorAll('div.body img')];
    const pres = [...document.querySelectorAll('div.body pre')];
    const body = document.querySelector('div.body');
    const tables = [...body.querySelectorAll('table')];
    // code blocks (issue 21): words kept whole, wrapped lines indented
    const split = [], flush = [];
    let codeLines = 0;
    for (const pre of body.querySelectorAll('div.highlight pre')) {
      const lines = [...pre.querySelectorAll('span.cu-line')];
      codeLines += lines.length;
      // one row's height: the lowest word box (a word broken over rows is taller)
      const row = Math.min(...[...pre.querySelectorAll('span.cu-w')].map(w => w.getBoundingClientRect().height));
      for (const ln of lines) {
        const words = [...ln.querySelectorAll('span.cu-w')];
        if (!words.length) continue;
        const first = words[0].getBoundingClientRect();
        for (const w of words) {
          const b = w.getBoundingClientRect();
          if (b.width < pre.clientWidth * 0.8 && b.height > 1.5 * row) split.push(w.textContent);
          if (b.top > first.top + row / 2 && b.left < first.left + 1) flush.push(ln.textContent.slice(0, 60));
        }
      }
    }
    return {
      body_width: body.clientWidth,
      tables: tables.length,
      tables_overflow: tables.filter(t => t.scrollWidth > t.clientWidth + 1)
                             .map(t => (t.querySelector('caption') || t).innerText.slice(0, 60)),
      code_pres: body.querySelectorAll('div.highlight pre').length,
      code_lines: codeLines,
      split_words: split,
      flush_continuations: flush,
      math_sources: document.querySelectorAll('.math').length,
      mjx: document.querySelectorAll('mjx-container').length,
      mjx_errors: document.querySelectorAll('mjx-merror, [data-mjx-error]').length,
      raw_tex: /\\\\\\(|\\\\\\[/.test(document.querySelector('div.body').innerText),
      images: imgs.map(i => ({src: i.getAttribute('src'), complete: i.complete,
                              width: i.naturalWidth, shown: i.clientWidth,
                              link: i.closest('a.image-reference')
                                    ? i.closest('a.image-reference').getAttribute('href') : null})),
      pre_overflow: pres.filter(p => p.scrollWidth > p.clientWidth + 1).length,
      pres: pres.length,
      page_width: document.documentElement.scrollWidth,
      viewport: window.innerWidth,
    };
}"""


@pytest.fixture(scope="module")
def browser_pages(html_dir):
    """Each page of BROWSER_PAGES opened in headless Chromium over a local
    server, on a desktop and on a phone-sized viewport: {page: measurements}."""
    chromium = _chromium()
    if chromium is None:
        pytest.skip(
            "no Chromium on this machine: `bash scripts/install.sh` installs Debian's chromium (as root, with apt-get)"
        )
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright's Python client is a dev extra (pip install -e '.[dev]')"
    )
    handler = partial(SimpleHTTPRequestHandler, directory=str(html_dir))
    handler.log_message = lambda *a, **k: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}/"
    results = {}
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=_CHROMIUM_ARGS)
            try:
                for name, viewport in (
                    ("desktop", {"width": 1280, "height": 900}),
                    ("phone", {"width": 375, "height": 740}),
                ):
                    context = browser.new_context(viewport=viewport, device_scale_factor=1)
                    for page_name in BROWSER_PAGES:
                        page = context.new_page()
                        requests: list[str] = []
                        page.on("request", lambda r, requests=requests: requests.append(r.url))
                        page.goto(base + page_name, wait_until="load", timeout=60_000)
                        page.wait_for_function(
                            "() => !document.querySelector('script[src*=mathjax]') || "
                            "(window.MathJax && MathJax.startup && MathJax.startup.promise)",
                            timeout=60_000,
                        )
                        page.evaluate(
                            "() => window.MathJax && MathJax.startup ? MathJax.startup.promise.then(() => true) : true"
                        )
                        results[(name, page_name)] = dict(
                            requests=requests,
                            base=base,
                            **page.evaluate(_MEASURE_JS),
                        )
                        page.close()
                    context.close()
            finally:
                browser.close()
    finally:
        server.shutdown()
    return results


@pytest.mark.browser
@pytest.mark.parametrize("page_name", BROWSER_PAGES)
def test_browser_renders_math_and_figures_offline(browser_pages, page_name):
    r = browser_pages[("desktop", page_name)]
    outside = [u for u in r["requests"] if not u.startswith(r["base"]) and not u.startswith(("data:", "blob:"))]
    assert not outside, f"{page_name} requested {outside}"
    assert r["math_sources"] > 0, f"{page_name} has no math to render"
    assert r["mjx"] >= r["math_sources"], f"{page_name}: {r['mjx']} of {r['math_sources']} formulas typeset"
    assert r["mjx_errors"] == 0 and not r["raw_tex"], f"{page_name} shows raw or broken TeX"
    assert r["images"], f"{page_name} has no figure"
    broken = [i["src"] for i in r["images"] if not (i["complete"] and i["width"] > 0)]
    assert not broken, f"{page_name}: figures not rendered: {broken}"


@pytest.mark.browser
@pytest.mark.parametrize("page_name", BROWSER_PAGES)
def test_browser_pages_fit_a_phone(browser_pages, page_name):
    r = browser_pages[("phone", page_name)]
    assert r["pre_overflow"] == 0, f"{page_name}: {r['pre_overflow']} of {r['pres']} code blocks cut off at 375 px"
    assert r["page_width"] <= r["viewport"] + 1, f"{page_name} is {r['page_width']} px wide on a 375 px screen"
    assert r["mjx"] >= r["math_sources"] and not r["raw_tex"]


@pytest.mark.browser
def test_browser_results_tables_fit_and_wide_figures_link_their_original(browser_pages):
    """Issue 21: the results page's tables fit the text column (long notes as
    footnotes, wide tables split); a figure wider than the column is shown
    wider than the column on a desktop and links to its full-size image."""
    for page_name in ("index.html", "pages/50_results.html"):
        r = browser_pages[("desktop", page_name)]
        assert not r["tables_overflow"], f"{page_name}: tables wider than the column: {r['tables_overflow']}"
        wide = [i for i in r["images"] if i["width"] > 700]
        assert wide, f"{page_name} has no wide figure"
        for i in wide:
            assert i["link"] and i["link"].split("/")[-1] == i["src"].split("/")[-1], f"{page_name}: {i} has no link"
            assert i["shown"] > r["body_width"] or i["shown"] >= i["width"], (
                f"{page_name}: {i} squeezed into the column"
            )
    assert browser_pages[("desktop", "pages/50_results.html")]["tables"] >= 8


@pytest.mark.browser
@pytest.mark.parametrize("page_name", BROWSER_PAGES)
def test_browser_code_wraps_between_words_with_a_hanging_indent(browser_pages, page_name):
    """Issue 21: on a phone a long code line wraps at a space, never inside a
    word that fits the line (``--quick`` stays whole), and its continuation is
    indented past the line's start instead of restarting at column 0."""
    r = browser_pages[("phone", page_name)]
    if not r["code_pres"]:
        pytest.skip(f"{page_name} has no code block")
    assert r["code_lines"] > 0, f"{page_name}: code blocks without line markup (docs/conf.py's formatter not used)"
    assert not r["split_words"], f"{page_name}: words broken across lines: {r['split_words'][:5]}"
    assert not r["flush_continuations"], f"{page_name}: continuations at column 0: {r['flush_continuations'][:5]}"


def test_no_public_name_collides_with_a_different_captum_name():
    """A public name that Captum also has must be its twin: the "Coming from
    Captum" table pairs ``captum...<name>`` with ``cu...<name>`` in one row."""
    import csv

    import captum.attr
    import captum.metrics
    from captum.attr._utils import lrp_rules

    import captum_unified as cu

    with open(DOCS / "pages" / "captum_map.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    ours = {(name, "") for name in cu.__all__} | {(name, "metrics.") for name in cu.metrics.__all__}
    collisions = []
    for name, prefix in sorted(ours):
        if not any(hasattr(m, name) for m in (captum.attr, captum.metrics, lrp_rules)):
            continue
        paired = any(
            re.search(rf"\bcaptum\.[\w.]*\b{name}\b", row["Captum"])
            and re.search(rf"\bcu\.{re.escape(prefix)}{name}\b", row["captum_unified"])
            for row in rows
        )
        if not paired:
            collisions.append(prefix + name)
    assert not collisions, f"public names that Captum uses for something else (or unpaired twins): {collisions}"
