"""Sphinx configuration for captum_unified."""

import os
import re
import sys
import time
import types
import warnings
from pathlib import Path

sys.path.insert(0, os.path.abspath(".."))

# The tutorials run during the build (sphinx-gallery): small sizes, no GUI.
os.environ.setdefault("CAPTUM_UNIFIED_QUICK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# One intra-op thread (before torch is imported): the tutorials are small, and
# on a busy machine OpenMP threads waiting for each other made them several
# times slower (the vmapped Hessian-vector products most: 83 s vs 4 s).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import captum_unified  # noqa: E402  (after the environment above)

project = "captum_unified"
author = "captum_unified developers"
release = version = captum_unified.__version__
_FIRST_YEAR = 2026
_year = time.gmtime(int(os.environ.get("SOURCE_DATE_EPOCH", time.time()))).tm_year
_years = str(_FIRST_YEAR) if _year <= _FIRST_YEAR else f"{_FIRST_YEAR}\u2013{_year}"
# alabaster's footer: "(c) <copyright>. | Powered by Sphinx & Alabaster | Page source"
copyright = f"{_years}, {author}. {project} {release}, BSD-3-Clause license"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    # Math offline: MathJax 3 (CommonHTML output, its web fonts) served from
    # _static/mathjax, copied from the sphinx-mathjax-offline wheel (a dev
    # extra) instead of Sphinx's default CDN script. Pure pip, no Node.js or
    # network at build or read time; the docs tests check that no page loads
    # anything from outside the build.
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",
    "sphinx.ext.viewcode",
    "sphinx.ext.intersphinx",
    "sphinx_gallery.gen_gallery",
]
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "none"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
intersphinx_mapping = {}
nitpicky = False
suppress_warnings = ["ref.python"]
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path = ["_static"]
# custom.css (alabaster links it): code blocks wrap at spaces with a hanging
# indent (see _CodeLines below), wide figures use the width right of the text
# column and link to their full-size original, tables fit the column, display
# math scrolls inside its box.


# -- Code blocks that wrap cleanly --------------------------------------------
#
# A long code line wraps on a narrow screen (custom.css: pre-wrap). Left to the
# browser it breaks inside tokens (after the "-" of "--quick") and continues
# at column 0, where it reads as a new line. The HTML formatter below marks
# each source line (span.cu-line, with its own indentation in --i) and each
# whitespace-separated word (span.cu-w) so that the CSS keeps words whole and
# indents a line's continuation 4 columns past the line's own indentation.
# Copying a block gives its text unchanged (the markup adds no characters).

_TAG_OR_TEXT = re.compile(r"<[^>]+>|[^<]+")
_SPACE_OR_WORD = re.compile(r"\s+|\S+")


def group_words(line_html: str) -> str:
    """Wrap each whitespace-separated word of one highlighted line in
    ``<span class="cu-w">``; token spans that a word boundary cuts are closed
    and reopened, so the nesting stays valid."""
    out, open_tags, in_word = [], [], False
    for piece in _TAG_OR_TEXT.findall(line_html):
        if piece.startswith("</"):
            out.append(piece)
            open_tags.pop()
        elif piece.startswith("<"):
            out.append(piece)
            open_tags.append(piece)
        else:
            for run in _SPACE_OR_WORD.findall(piece):
                if run.isspace() == in_word:  # a word starts or ends here
                    out += ["</span>"] * len(open_tags)
                    out.append("</span>" if in_word else '<span class="cu-w">')
                    out += open_tags
                    in_word = not in_word
                out.append(run)
    if in_word:
        out += ["</span>"] * len(open_tags) + ["</span>"] + open_tags
    return "".join(out)


def _code_lines_formatter():
    from pygments.formatters import HtmlFormatter

    class _CodeLines(HtmlFormatter):
        """Pygments' HTML with one span.cu-line per source line (its newline
        outside, so Sphinx's viewcode still finds one line per line)."""

        def wrap(self, source):
            def lines():
                for is_code, text in source:
                    if not is_code:
                        yield is_code, text
                        continue
                    k = text.rfind("\n")  # one per line, maybe inside a highlight span
                    body = text[:k] + text[k + 1 :] if k >= 0 else text
                    indent = len(re.match(r"(?:<[^>]+>)*( *)", body).group(1))
                    yield is_code, f'<span class="cu-line" style="--i:{indent}ch">{group_words(body)}</span>\n'

            return super().wrap(lines())

    return _CodeLines


# -- Wide figures ---------------------------------------------------------------
#
# A figure whose image is wider than the text column (about 660 px) gets the
# class "wide" (custom.css widens it into the space right of the column on
# wide screens) and, if it has no width of its own, width 100%, which makes
# Sphinx link it to its full-size original (custom.css labels the link).

WIDE_FIGURE_PX = 700


def _mark_wide_figures(app, doctree, docname):
    from docutils import nodes

    try:
        from PIL import Image  # matplotlib's dependency
    except ImportError:  # pragma: no cover - no Pillow: figures stay as they are
        return
    for figure in doctree.findall(nodes.figure):
        for image in figure.findall(nodes.image):
            path = Path(app.srcdir) / image["uri"]
            if not path.is_file():
                continue
            with Image.open(path) as im:
                if im.width <= WIDE_FIGURE_PX:
                    continue
            figure["classes"].append("wide")
            if not any(k in image for k in ("width", "height", "scale")):
                image["width"] = "100%"


# -- Results tables from CSV, with notes as footnotes ----------------------------


def _results_table_directive():
    import csv
    import fnmatch

    from docutils import nodes
    from docutils.parsers.rst import Directive, directives
    from docutils.statemachine import StringList

    class ResultsTable(Directive):
        """``.. results-table:: Title`` with ``:file:`` (a CSV with a header
        row), optional ``:columns:`` (comma-separated names or glob patterns,
        in order) and ``:notes:`` (a column whose non-empty cells become
        footnotes of their row: a long note would widen the table past the
        column). Underscores in column names read as spaces."""

        required_arguments = 1
        final_argument_whitespace = True
        option_spec = {"file": directives.path, "columns": directives.unchanged, "notes": directives.unchanged}
        has_content = False

        def run(self):
            env = self.state.document.settings.env
            rel, path = env.relfn2path(self.options["file"])
            env.note_dependency(rel)
            with open(path, newline="", encoding="utf-8") as fh:
                rows = list(csv.reader(fh))
            header, body = rows[0], rows[1:]
            note_col = self.options.get("notes")
            if note_col is not None and note_col not in header:
                raise self.error(f"{self.options['file']} has no column {note_col!r}")
            keep = [k for k, name in enumerate(header) if name != note_col]
            if "columns" in self.options:
                keep = []
                for pattern in (p.strip() for p in self.options["columns"].split(",")):
                    hits = [k for k, name in enumerate(header) if fnmatch.fnmatchcase(name, pattern) and k not in keep]
                    if not hits:
                        raise self.error(f"{self.options['file']} has no column matching {pattern!r}: {header}")
                    keep += hits
            stem = Path(path).stem.replace("_", "-")
            notes: dict[str, str] = {}
            lines = [f".. list-table:: {self.arguments[0]}", "   :header-rows: 1", ""]
            for r, row in enumerate([header] + body):
                cells = [row[k] if k < len(row) else "" for k in keep]
                if r == 0:
                    cells = [c.replace("_", " ") for c in cells]
                elif note_col is not None and row[header.index(note_col)].strip():
                    text = row[header.index(note_col)].strip()
                    label = notes.setdefault(text, f"{stem}-{self.lineno}-{len(notes) + 1}")
                    cells[0] = f"{cells[0]}\\ [#{label}]_"
                for k, cell in enumerate(cells):
                    lines.append(("   * - " if k == 0 else "     - ") + (cell or ".."))
            lines.append("")
            for text, label in notes.items():
                lines += [f".. [#{label}] {text}", ""]
            container = nodes.container(classes=["results-table"])
            self.state.nested_parse(StringList(lines, source=path), self.content_offset, container)
            return [container]

    return ResultsTable


# -- Tutorial output without the build machine's paths -----------------------
#
# A warning raised while a tutorial runs is printed with the absolute path of
# the file that raised it (the converted tutorial under _build/, or a library
# in site-packages), which would show this machine's layout in the rendered
# page. Paths are shown relative: a tutorial by its name under tutorials/, a
# module by its path below its sys.path entry (``captum/attr/...``).


def _tutorial_line(converted: Path, lineno: int):
    """The line of ``tutorials/<name>.py`` that is line ``lineno`` of its
    converted copy (code lines are copied verbatim and in order, so the k-th
    occurrence of a line's text maps to its k-th occurrence in the original)."""
    conv = converted.read_text(encoding="utf-8").splitlines()
    orig = (_TUTORIALS / converted.name).read_text(encoding="utf-8").splitlines()
    if not 0 < lineno <= len(conv):
        return None
    text = conv[lineno - 1]
    k = conv[: lineno - 1].count(text)
    hits = [i + 1 for i, ln in enumerate(orig) if ln == text]
    return hits[k] if k < len(hits) else None


def _relative_location(filename: str, lineno: int):
    path = os.path.abspath(filename)
    if os.path.dirname(path) == str(_GALLERY_SRC) and (_TUTORIALS / os.path.basename(path)).is_file():
        return "tutorials/" + os.path.basename(path), _tutorial_line(Path(path), lineno) or lineno
    roots = sorted({os.path.abspath(p) for p in sys.path if p and os.path.isdir(p)}, key=len, reverse=True)
    for root in roots:
        if path.startswith(root + os.sep):
            return os.path.relpath(path, root), lineno
    return os.path.basename(path), lineno


def _formatwarning_relative(message, category, filename, lineno, line=None, _orig=warnings.formatwarning):
    if line is None:  # the source line, read while the real path is known
        import linecache

        line = linecache.getline(filename, lineno)
    name, lineno = _relative_location(filename, lineno)
    return _orig(message, category, name, lineno, line)


def setup(app):
    """Relative warning paths for the build only (conf.py is also imported by
    the tests, where it must leave ``warnings`` alone)."""
    original = warnings.formatwarning

    def install(app):
        warnings.formatwarning = _formatwarning_relative

    def restore(app, exception):
        warnings.formatwarning = original

    def code_lines(app):
        highlighter = getattr(app.builder, "highlighter", None)
        if highlighter is not None and getattr(highlighter, "dest", "") == "html":
            highlighter.formatter = _code_lines_formatter()

    app.connect("builder-inited", install, priority=100)  # before sphinx-gallery runs the tutorials
    app.connect("builder-inited", code_lines)
    app.connect("build-finished", restore)
    app.connect("doctree-resolved", _mark_wide_figures)
    app.add_directive("results-table", _results_table_directive())


# -- Tutorials (sphinx-gallery) ---------------------------------------------
#
# The scripts in ../tutorials are written as ``# %%`` cells with Markdown
# comment cells (``# %% [markdown]``, Jupytext's "percent" format), which is
# what editors and Jupytext read. sphinx-gallery wants reStructuredText and a
# module docstring holding the title, so every build converts the scripts into
# _build/tutorials_src (code unchanged, Markdown cells turned into rST) and the
# gallery is generated from there into ``tutorials/`` (git-ignored).

_HERE = Path(__file__).resolve().parent
_TUTORIALS = _HERE.parent / "tutorials"
_GALLERY_SRC = _HERE / "_build" / "tutorials_src"
_CELL = re.compile(r"^# ?%%(?P<rest>.*)$")
_UNDERLINE = {1: "=", 2: "-", 3: "~", 4: "^"}


def _inline(text: str) -> str:
    """Markdown inline code, math and links -> rST (roles written in rST pass)."""
    out, pos = [], 0
    # `code` (not a role's backticks), $math$, [text](url)
    token = re.compile(
        r"(?P<role>:[\w-]+:`[^`\n]*`)|``[^`\n]+``"
        r"|`(?P<code>[^`\n]+)`(?!`)|(?<![\\$])\$(?P<math>[^$\n]+)\$"
        r"|\[(?P<ltext>[^\]\n]+)\]\((?P<url>[^)\s]+)\)"
    )
    for m in token.finditer(text):
        start = m.start()
        if m.group("code") is None and m.group("math") is None and m.group("ltext") is None:
            continue  # an rST role or an rST literal: kept as it is
        out.append(text[pos:start])
        if m.group("code") is not None:
            piece = "``" + m.group("code") + "``"
        elif m.group("math") is not None:
            piece = ":math:`" + m.group("math") + "`"
        else:
            piece = "`" + m.group("ltext") + " <" + m.group("url") + ">`__"
        before = text[start - 1] if start > 0 else " "
        after = text[m.end()] if m.end() < len(text) else " "
        if before.isalnum():
            piece = "\\ " + piece
        if after.isalnum():
            piece = piece + "\\ "
        out.append(piece)
        pos = m.end()
    out.append(text[pos:])
    return "".join(out)


def _table(rows):
    """Markdown table rows -> rST list-table."""
    cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
    header, body = cells[0], [c for c in cells[2:]]
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in [header] + body:
        for k, c in enumerate(row):
            lines.append(("   * - " if k == 0 else "     - ") + (_inline(c) or ".."))
    return lines + [""]


def markdown_to_rst(lines):
    """Convert the Markdown subset the tutorials use (ATX headings, inline
    code, ``$...$`` and ``$$...$$`` math, links, bullet lists, pipe tables) to
    reStructuredText. Returns the rST lines and the level-1 heading (or None)."""
    out, title, i = [], None, 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        heading = re.match(r"^(#{1,4})\s+(.*)$", stripped)
        if heading:
            level, text = len(heading.group(1)), _inline(heading.group(2).strip())
            if level == 1 and title is None:
                title = text
            out += [text, _UNDERLINE[level] * len(text), ""]
            i += 1
        elif stripped.startswith("$$"):
            body = stripped[2:]
            block = []
            if body.endswith("$$") and len(body) >= 2:
                block.append(body[:-2])
            else:
                if body:
                    block.append(body)
                i += 1
                while i < len(lines) and not lines[i].strip().endswith("$$"):
                    block.append(lines[i].strip())
                    i += 1
                if i < len(lines):
                    last = lines[i].strip()[:-2]
                    if last:
                        block.append(last)
            out += ["", ".. math::", ""] + ["    " + b for b in block if b.strip()] + [""]
            i += 1
        elif stripped.startswith("|") and i + 1 < len(lines) and re.match(r"^\|?\s*:?-{3,}", lines[i + 1].strip()):
            rows = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(lines[i])
                i += 1
            out += [""] + _table(rows)
        else:
            out.append(_inline(line))
            i += 1
    return out, title


def convert_tutorial(source: str) -> str:
    """A percent-format script with Markdown cells -> a sphinx-gallery script:
    the first Markdown cell becomes the module docstring (its ``#`` heading the
    title), the other Markdown cells become rST comment blocks."""
    cells, kind, buf = [], "code", []
    for line in source.splitlines():
        m = _CELL.match(line)
        if m:
            cells.append((kind, buf))
            kind = "markdown" if "[markdown]" in m.group("rest") else "code"
            buf = []
        else:
            buf.append(line)
    cells.append((kind, buf))
    # A Markdown cell is its comment lines; code right after them (no new
    # ``# %%``) is a code cell of its own.
    split = []
    for kind, buf in cells:
        if kind == "markdown":
            end = next((k for k, ln in enumerate(buf) if ln.strip() and not ln.startswith("#")), len(buf))
            split += [("markdown", buf[:end]), ("code", buf[end:])]
        else:
            split.append((kind, buf))
    out, have_doc = [], False
    for kind, buf in split:
        if kind == "code":
            code = "\n".join(buf).strip("\n")
            if code.strip():
                out += ["# %%", code, ""]
            continue
        text = [re.sub(r"^# ?", "", ln) if ln.startswith("#") else ln for ln in buf]
        while text and not text[-1].strip():
            text.pop()
        rst, title = markdown_to_rst(text)
        if not have_doc:
            if title is None:
                raise ValueError("the first Markdown cell of a tutorial must start with a '# Title' heading")
            body = "\n".join(rst).replace('"""', '\\"\\"\\"')
            out += ['r"""', body.strip("\n"), '"""', ""]
            have_doc = True
        else:
            out += ["# %%"] + [("# " + ln).rstrip() for ln in rst] + [""]
    if not have_doc:
        raise ValueError("a tutorial must start with a Markdown cell holding its '# Title'")
    return "\n".join(out).rstrip() + "\n"


def convert_tutorials(src: Path = _TUTORIALS, dst: Path = _GALLERY_SRC) -> None:
    """Write the converted tutorials and the gallery header into ``dst``
    (files rewritten only when their content changed)."""
    dst.mkdir(parents=True, exist_ok=True)
    wanted = {}
    for path in sorted(src.glob("*.py")):
        wanted[path.name] = convert_tutorial(path.read_text(encoding="utf-8"))
    header = src / "GALLERY_HEADER.rst"
    wanted["GALLERY_HEADER.rst"] = header.read_text(encoding="utf-8")
    for name, text in wanted.items():
        target = dst / name
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
    for stale in dst.iterdir():
        if stale.is_file() and stale.name not in wanted:
            stale.unlink()


def _reset_torch(gallery_conf, fname):
    """Undo global torch state a previous tutorial may have set (the gallery
    runs all tutorials in one process; none sets the default dtype today, this
    keeps it that way for new ones)."""
    import torch

    torch.set_default_dtype(torch.float32)


# sphinx-gallery takes callables by fully qualified name, which keeps the
# configuration picklable (Sphinx caches it); conf.py itself is no importable
# module, so the reset function is published under one.
_reset_module = types.ModuleType("captum_unified_docs_gallery")
_reset_module.reset_torch = _reset_torch
sys.modules[_reset_module.__name__] = _reset_module

convert_tutorials()

sphinx_gallery_conf = {
    "examples_dirs": os.path.relpath(_GALLERY_SRC, _HERE),
    "gallery_dirs": "tutorials",
    "filename_pattern": r"[\\/]\d\d_\w+\.py$",
    "within_subsection_order": "FileNameSortKey",
    "reset_modules": ("matplotlib", "captum_unified_docs_gallery.reset_torch"),
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "show_signature": False,
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
    # the execution-times page loads jQuery/DataTables/Bootstrap from CDNs
    "write_computation_times": False,
}
