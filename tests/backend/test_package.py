"""The structure of the backend, rules and ops packages: no import circles
among their modules, no imports hidden inside functions, the public names
where users import them."""

from __future__ import annotations

import ast
from pathlib import Path

import captum_unified

PACKAGE = Path(captum_unified.__file__).parent
AREAS = ("backend", "rules", "ops")


def _module(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _runtime_imports(tree: ast.Module, name: str, is_package: bool, modules) -> tuple[set[str], list[int]]:
    """Modules imported at module level (not under TYPE_CHECKING), and the
    lines of imports inside functions."""
    found: set[str] = set()
    nested: list[int] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                if in_function:
                    nested.append(child.lineno)
                    continue
                if isinstance(child, ast.Import):
                    found.update(a.name for a in child.names)
                else:
                    base = child.module or ""
                    if child.level:
                        pkg = name if is_package else name.rsplit(".", 1)[0]
                        for _ in range(child.level - 1):
                            pkg = pkg.rsplit(".", 1)[0]
                        base = f"{pkg}.{base}" if base else pkg
                    for a in child.names:  # a submodule, or a name defined by the module itself
                        found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base)
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, False)
    return found, nested


def _graph() -> tuple[dict[str, set[str]], dict[str, list[int]]]:
    files = [p for area in AREAS for p in sorted((PACKAGE / area).rglob("*.py"))]
    modules = {_module(p): p for p in files}
    graph, nested = {}, {}
    for name, path in modules.items():
        imports, lines = _runtime_imports(ast.parse(path.read_text()), name, path.name == "__init__.py", modules)
        # an import of a submodule also runs its package's __init__ (not counted: that is not a circle of names)
        graph[name] = {m for m in imports if m in modules and m != name}
        nested[name] = lines
    return graph, nested


def test_no_import_circles_in_backend_rules_ops():
    graph, _ = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def dfs(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                dfs(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            dfs(node, [node])
    assert not cycles, f"import circles: {cycles}"


def test_no_function_level_imports_in_backend_rules_ops():
    _, nested = _graph()
    assert {m: lines for m, lines in nested.items() if lines} == {}


def test_public_names():
    from captum_unified.backend import BackendResult, RuleContext, modified_gradients

    assert captum_unified.RuleContext is RuleContext and captum_unified.modified_gradients is modified_gradients
    assert BackendResult.__module__ == "captum_unified.backend.gradients"


def test_backend_modules_hold_one_job_each():
    """Each module of the backend is small enough to read in one sitting."""
    for path in (PACKAGE / "backend").glob("*.py"):
        assert len(path.read_text().splitlines()) <= 300, path.name
