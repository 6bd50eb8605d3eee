"""The method registry (tests/registry.py) lists every public attribution class."""

from __future__ import annotations

import inspect
import warnings

from captum.attr._utils.attribution import Attribution
from registry import METHODS, WRAPPERS

import captum_unified as cu


def test_every_public_attribution_class_is_registered():
    # aliases (InputXGradient = GradientXInput) are the same class
    public = {
        getattr(cu, name)
        for name in cu.__all__
        if inspect.isclass(getattr(cu, name)) and issubclass(getattr(cu, name), Attribution)
    }
    registered = {e.cls for e in METHODS} | set(WRAPPERS)
    missing = sorted(c.__name__ for c in public - registered)
    extra = sorted(c.__name__ for c in registered - public)
    assert not missing, f"add these to tests/registry.py: {missing}"
    assert not extra, f"registered but not public: {extra}"


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
