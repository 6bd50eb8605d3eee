"""The package's import graph: no circles, the layers of the architecture
page (docs/pages/04_architecture.rst) hold, the page's picture places every
part where :data:`LAYERS` does, and an import sits inside a function only
where it keeps an optional dependency out of ``import captum_unified``.

The graph is built from the source with :mod:`ast`, not by importing: every
``import`` / ``from ... import`` of a ``captum_unified`` module anywhere in a
file (module level and inside functions; a function-level import hides a
circle from Python but not from this test). ``if TYPE_CHECKING:`` blocks do
not run and are left out. ``from package import name`` is an edge to the
submodule ``package.name`` when there is one, else to the package; importing
``a.b.c`` also runs the ``__init__`` of every package above it that the
importer is not itself inside.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "captum_unified"
ARCHITECTURE_PAGE = PACKAGE.parent / "docs" / "pages" / "04_architecture.rst"

#: The rows and columns of the architecture page's picture: part -> (row, column).
#: A part is the first name below ``captum_unified`` (``captum_unified.ops.fused``
#: belongs to ``ops``); ``""`` is the package's own ``__init__`` (the public API).
#: An import must point to a lower row, or to the right within a row. The picture of
#: the architecture page names each part (``backend/``, ``data.py``, ``__init__.py``)
#: first at its place: lower rows further down, higher columns further right.
LAYERS: dict[str, tuple[int, int]] = {
    "__main__": (-1, 0),
    "cli": (0, 0),
    "experiments": (1, 0),
    "integrations": (1, 2),
    "text": (1, 1),
    "data": (1, 1),
    "models": (1, 1),
    "plots": (1, 1),
    "": (2, -1),
    "attr": (2, 0),
    "taylor": (2, 1),
    "metrics": (2, 2),
    "backend": (3, 0),
    "perturbation": (3, 1),
    "feature_groups": (3, 1),
    "ops": (4, 0),
    "rules": (4, 1),
    "canonizers": (4, 2),
    "_utils": (5, 0),
    "registry": (5, 1),
    "recipes": (5, 1),
}

#: Circles that exist in code under restructuring in parallel (issue 19: the
#: rules and ops packages); each entry must still exist, so it is removed here
#: when its circle is gone, and no new circle may appear.
KNOWN_CIRCLES: list[frozenset[str]] = []


#: Imports that may sit inside a function: optional dependencies that are not
#: requirements of the package (the import line says so in a comment).
LAZY_ALLOWED = {
    "pyarrow",
    "pyarrow.parquet",
    # the ``text`` extra (captum_unified.text)
    "transformers",
    "tokenizers",
    "vaderSentiment",
    "pydoc_data.topics",  # the standard library's help() text: absent from some Python builds
    "lxt",  # LXT (AttnLRP), an optional comparison of reproduce transformers, never a requirement
}


def _with_comment(lines: list[str], lineno: int) -> str:
    """The import line, with the comment line just above it (or two above, past a ``try:``)."""
    above = [lines[i].strip() for i in (lineno - 2, lineno - 3) if i >= 0 and lines[i].strip().startswith("#")]
    return " ".join([*above[:1], lines[lineno - 1].strip()])


#: Packages whose own job is to stay torch-free until a command runs (the
#: command line answers ``--help`` without importing torch): they may import
#: lazily, each such line saying why in a comment.
LAZY_PACKAGES = ("cli/",)

#: Files restructured in parallel (issue 19: the CLI, the runner and the metric
#: registry, the op table and the rules) whose function-level imports their
#: restructuring audits; each must still have one, so an entry is removed here
#: when its file is clean.
LAZY_PENDING = {
    "experiments/common.py",
    "metrics/runner.py",
}


def _module_name(path: Path, package: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                lines.update(range(inner.lineno, (inner.end_lineno or inner.lineno) + 1))
    return lines


def _ancestors(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the package modules it imports (anywhere in its file)."""
    files = {_module_name(p, package): p for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for module, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        skip = _type_checking_lines(tree)
        here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skip:
                continue
            targets: set[str] = set()
            if isinstance(node, ast.Import):
                targets = {a.name for a in node.names if a.name in files}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = ".".join(here[: len(here) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    if sub in files:
                        targets.add(sub)
                    elif base in files:
                        targets.add(base)
            for t in targets:
                graph[module].add(t)
                graph[module] |= {a for a in _ancestors(t) if a in files and a not in _ancestors(module)}
            graph[module].discard(module)
    return graph


def circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(frozenset(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _path(graph: dict[str, set[str]], comp: frozenset[str]) -> str:
    """One circle through the component, as ``a -> b -> a``."""
    start = min(comp)
    path, seen = [start], {start}
    while True:
        nxt = min(w for w in graph[path[-1]] if w in comp)
        if nxt in seen:
            return " -> ".join(path[path.index(nxt) :] + [nxt])
        path.append(nxt)
        seen.add(nxt)


def test_no_new_import_circles():
    graph = import_graph()
    assert "captum_unified.experiments.deng.pipeline" in graph  # the graph sees subpackages
    found = circles(graph)
    new = [c for c in found if c not in KNOWN_CIRCLES]
    assert not new, "import circles (break them; a function-level import does not):\n" + "\n".join(
        _path(graph, c) for c in new
    )
    gone = [sorted(c) for c in KNOWN_CIRCLES if c not in found]
    assert not gone, f"these circles are gone: remove them from KNOWN_CIRCLES in {__file__}: {gone}"


def test_imports_follow_the_architecture_layers():
    graph = import_graph()
    unknown = sorted({_part(m) for m in graph} - set(LAYERS))
    assert not unknown, (
        f"parts of the package missing from the architecture picture: {unknown}. Place each in "
        f"LAYERS ({__file__}) and in the picture of docs/pages/04_architecture.rst."
    )
    upward = []
    for module, targets in graph.items():
        for t in targets:
            a, b = LAYERS[_part(module)], LAYERS[_part(t)]
            if _part(module) != _part(t) and not (b[0] > a[0] or (b[0] == a[0] and b[1] >= a[1])):
                upward.append(f"{module} -> {t}")
    assert not upward, "imports against the layers of docs/pages/04_architecture.rst:\n" + "\n".join(sorted(upward))


def picture(page: Path = ARCHITECTURE_PAGE) -> list[str]:
    """The lines of the architecture page's picture (its first ``code-block:: text``)."""
    m = re.search(r"^\.\. code-block:: text\n(?:[ \t]+:\w+:.*\n)*\n((?:[ \t]+.*\n|[ \t]*\n)+)", page.read_text(), re.M)
    assert m, f"no picture (a `.. code-block:: text`) in {page}"
    return m.group(1).splitlines()


def part_token(part: str, package: Path = PACKAGE) -> str:
    """How the picture names a part: ``backend/`` (a package), ``data.py``, ``__init__.py`` (``""``)."""
    if not part:
        return "__init__.py"
    return f"{part}/" if (package / part).is_dir() else f"{part}.py"


def placement_problems(lines: list[str], layers: dict[str, tuple[int, int]], package: Path = PACKAGE) -> list[str]:
    """Where the picture disagrees with ``layers``: each part is named (its first
    mention is its place), a lower row is further down, and within a row a
    column further right is further right."""
    where: dict[str, tuple[int, int]] = {}
    problems = []
    for part in layers:
        token = part_token(part, package)
        pattern = re.compile(rf"(?<![\w/.]){re.escape(token)}")
        hits = [(i, m.start()) for i, line in enumerate(lines) for m in pattern.finditer(line)]
        if hits:
            where[part] = hits[0]
        else:
            problems.append(f"{token} is not in the picture")
    for a in where:
        for b in where:
            (ra, ca), (rb, cb) = layers[a], layers[b]
            ta, tb = part_token(a, package), part_token(b, package)
            if ra < rb and not where[a][0] < where[b][0]:
                problems.append(f"{ta} (row {ra}) is not above {tb} (row {rb})")
            if ra == rb and ca < cb and not where[a][1] < where[b][1]:
                problems.append(f"{ta} (column {ca}) is not left of {tb} (column {cb})")
    return problems


def test_the_architecture_picture_places_the_parts_as_LAYERS_does():
    problems = placement_problems(picture(), LAYERS)
    assert not problems, f"the picture of {ARCHITECTURE_PAGE.name} and LAYERS ({__file__}) disagree:\n" + "\n".join(
        problems
    )


def test_placement_problems_are_found(tmp_path):
    (tmp_path / "a").mkdir()
    layers = {"a": (0, 0), "b": (1, 0), "c": (1, 1)}
    assert placement_problems(["  a/", "  b.py  c.py"], layers, tmp_path) == []
    assert placement_problems(["  b.py", "  a/", "     c.py"], layers, tmp_path) == [
        "a/ (row 0) is not above b.py (row 1)"
    ]
    assert placement_problems(["  a/", "  c.py  b.py"], layers, tmp_path) == [
        "b.py (column 0) is not left of c.py (column 1)"
    ]
    assert placement_problems(["  a/  b.py"], layers, tmp_path) == [
        "c.py is not in the picture",
        "a/ (row 0) is not above b.py (row 1)",
    ]


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from pkg import b\n", {"pkg.b"}),  # a submodule by name
        ("from pkg.b import f\n", {"pkg.b"}),  # pkg's __init__ has run already (a is inside pkg)
        ("from pkg.sub.d import f\n", {"pkg.sub.d", "pkg.sub"}),  # pkg.sub's __init__ runs first
        ("import pkg.sub as s\n", {"pkg.sub"}),
        ("def f():\n    from pkg.c import g\n", {"pkg.c"}),  # function level counts
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.c import g\n", set()),
        ("from . import c\n", {"pkg.c"}),
        ("from .sub.d import f\n", {"pkg.sub.d", "pkg.sub"}),
    ],
)
def test_graph_builder(tmp_path, source, expected):
    """The edges the builder draws, on a scratch package ``pkg`` (``pkg/a.py``
    importing ``b``, ``c`` or ``sub.d``); and the circle ``a <-> c`` is found."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(source)
    (pkg / "b.py").write_text("def f():\n    pass\n")
    (pkg / "c.py").write_text("def g():\n    from pkg.a import x\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "d.py").write_text("def f():\n    pass\n")
    graph = import_graph(pkg)
    assert graph["pkg.a"] == expected
    assert (frozenset({"pkg.a", "pkg.c"}) in circles(graph)) == ("pkg.c" in expected)


def function_level_imports(package: Path = PACKAGE) -> list[tuple[str, int, str, str]]:
    """``(file, line, imported module, source line)`` of every import inside a function."""
    found = []
    for path in sorted(package.rglob("*.py")):
        text = path.read_text()
        lines = text.splitlines()
        for fn in ast.walk(ast.parse(text, str(path))):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    names = [node.module or ""]
                else:
                    continue
                rel = path.relative_to(package).as_posix()
                found += [(rel, node.lineno, n, _with_comment(lines, node.lineno)) for n in names]
    return found


def test_function_level_imports_only_keep_optional_dependencies_out():
    """A function-level import only where it keeps an optional dependency out
    of ``import captum_unified``, with a comment saying so; everything else at
    the top of the file."""
    found = function_level_imports()
    bad = [
        f"{f}:{line}: {src}"
        for f, line, name, src in found
        if f not in LAZY_PENDING and not ((name in LAZY_ALLOWED or f.startswith(LAZY_PACKAGES)) and "#" in src)
    ]
    assert not bad, (
        "imports inside functions: move them to the top of the file (a circle they hide is "
        "test_no_new_import_circles' business), or, for an optional dependency, add it to LAZY_ALLOWED "
        f"in {__file__} with a comment on the import line:\n" + "\n".join(bad)
    )
    clean = sorted(LAZY_PENDING - {f for f, *_ in found})
    assert not clean, f"no function-level imports left in {clean}: remove them from LAZY_PENDING in {__file__}"


def test_function_level_import_finder(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(
        "import os\n\n\ndef f():\n    import pyarrow  # optional: Parquet\n    from pkg import b\n    from . import c\n"
    )
    found = function_level_imports(pkg)
    assert [(f, line, name) for f, line, name, _ in found] == [("a.py", 5, "pyarrow"), ("a.py", 6, "pkg")]
    assert found[0][3] == "import pyarrow  # optional: Parquet"
