"""The registries (captum_unified/registry.py) are complete and consistent:
every public attribution class and every Metric subclass is registered, the
zoo's builders match its entries, the entries build and run, the registry
imports no torch, and the docs' lists are the registry's."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
import warnings
from pathlib import Path

from captum.attr._utils.attribution import Attribution
from registry import METHODS, WRAPPERS

import captum_unified as cu
from captum_unified import registry

ROOT = Path(__file__).resolve().parents[2]


def test_every_public_attribution_class_is_registered():
    # aliases (InputXGradient = GradientXInput) are the same class
    public = {
        getattr(cu, name)
        for name in cu.__all__
        if inspect.isclass(getattr(cu, name)) and issubclass(getattr(cu, name), Attribution)
    }
    registered = {e.cls for e in registry.METHODS.values()} | set(WRAPPERS)
    missing = sorted(c.__name__ for c in public - registered)
    extra = sorted(c.__name__ for c in registered - public)
    assert not missing, f"add a MethodEntry to captum_unified/registry.py for: {missing}"
    assert not extra, f"registered but not public (export from captum_unified): {extra}"


def test_the_public_names_type_checkers_see_are_the_lazy_ones():
    """``captum_unified/__init__.py``: ``__all__`` is ``_PUBLIC`` (the names loaded on first
    use), and the ``TYPE_CHECKING`` block imports each of them, re-exported (``X as X``),
    from the module ``_PUBLIC`` names, and nothing else."""
    assert cu.__all__ == list(cu._PUBLIC)
    tree = ast.parse(Path(cu.__file__).read_text())
    (block,) = [n for n in tree.body if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)]
    seen: dict[str, str] = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.module, ast.unparse(node)
        for alias in node.names:
            assert alias.asname == alias.name, f"{ast.unparse(node)}: re-export it as `{alias.name} as {alias.name}`"
            module = f"{node.module}.{alias.name}" if node.module == "captum_unified" else node.module
            seen[alias.name] = module
    assert seen == cu._PUBLIC, (
        "captum_unified/__init__.py: the TYPE_CHECKING imports and _PUBLIC differ: "
        f"{sorted(set(seen.items()) ^ set(cu._PUBLIC.items()))}"
    )


def test_registry_entries_build_and_attribute():
    from conftest import make_mlp, randn

    model = make_mlp((4, 6, 5, 3))
    x = randn(3, 4, seed=0)
    for e in METHODS:
        method = e.make(model)
        assert isinstance(method, e.cls), e.name
        with warnings.catch_warnings():  # a ReLU MLP: TaylorAttribution says its Hessian is 0
            warnings.filterwarnings("ignore", "The second-order Taylor terms are identically zero")
            out = method.attribute(x, target=1, **e.kwargs)
        expected = (3, 6) if e.layer else (3, 4)
        assert tuple(out.shape) == expected, e.name


def test_method_labels_are_unique_and_the_defaults_are_ancona_figure_4():
    labels = [e.label for e in registry.METHODS.values()]
    assert len(set(labels)) == len(labels)  # the rows' method column
    assert [n for n, e in registry.METHODS.items() if e.default] == ["gi", "ig", "lrp", "deeplift", "occlusion1"]
    for e in registry.METHODS.values():
        if e.captum:
            assert issubclass(registry.load(e.captum), Attribution), e.name
        if e.steps:
            assert e.steps in inspect.signature(e.cls.attribute).parameters, e.name


def test_every_metric_class_is_registered_under_its_name():
    import captum_unified.metrics as m
    from captum_unified.metrics.base import Metric

    public = {getattr(m, n) for n in m.__all__ if inspect.isclass(getattr(m, n)) and issubclass(getattr(m, n), Metric)}
    public.discard(Metric)
    registered = {e.cls for e in registry.METRICS.values()}
    # a registered metric need not be exported from captum_unified.metrics (its module is public)
    assert public <= registered, f"register in captum_unified/registry.py METRICS: {public - registered}"
    for name, e in registry.METRICS.items():
        assert e.cls.name == name, (name, e.cls.name)
        init = inspect.signature(e.cls.__init__).parameters
        for opt in e.options:
            assert opt.param in init, f"{name}: option {opt.flag} sets {opt.param}, which {e.cls.__name__} lacks"
    flags = [o.flag for e in registry.METRICS.values() for o in e.options]
    assert len(set(flags)) == len(flags)


def test_the_zoo_builders_are_the_registered_models():
    from torch import nn

    from captum_unified import models

    assert list(models.MODEL_NAMES) == list(registry.ZOO)
    assert set(models._BUILDERS) == set(registry.ZOO), "a zoo model needs a builder and one ZooModel entry"
    for name, cls in registry.ACTIVATIONS.items():
        assert issubclass(getattr(nn, cls), nn.Module) and models.ACTIVATIONS[name] is getattr(nn, cls)
    for name, z in registry.ZOO.items():
        assert models.default_activation(name) == z.activation and models.default_hidden(name) == z.hidden


def test_the_registry_and_the_command_line_parser_import_no_torch():
    code = (
        "import sys, captum_unified, captum_unified.registry\n"
        "from captum_unified.cli import build_parser\n"
        "build_parser()\n"
        "print(sorted(m for m in ('torch', 'numpy', 'captum') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_docs_lists_are_the_registry():
    """docs/pages/registry.inc is written from the registry (docs/_static/make_registry_tables.py)."""
    sys.path.insert(0, str(ROOT / "docs" / "_static"))
    try:
        import make_registry_tables
    finally:
        sys.path.pop(0)
    committed = (ROOT / "docs" / "pages" / "registry.inc").read_text()
    assert committed == make_registry_tables.render(), "run: python3 docs/_static/make_registry_tables.py"
