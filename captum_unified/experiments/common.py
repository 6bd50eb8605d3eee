"""Shared pieces of the experiment pipelines: configuration, method table,
attribution computation, CSV/markdown writing, and the Sensitivity-n hook."""
from __future__ import annotations

import csv
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import torch
from torch import Tensor, nn

import captum_unified as cu

__all__ = ["METHODS", "ExperimentConfig", "make_method", "compute_attributions",
           "write_csv", "collect_attribution_warnings", "warnings_section"]

#: CLI name -> (label, builder(model))
METHODS: Dict[str, tuple] = {
    "gi": ("Gradient*Input", lambda m: cu.GradientXInput(m)),
    "ig": ("Integrated Gradients", lambda m: cu.IntegratedGradients(m)),
    "lrp": ("epsilon-LRP", lambda m: cu.EpsilonLRP(m, epsilon=1e-4)),
    "deeplift": ("DeepLIFT (Rescale)", lambda m: cu.DeepLiftRescale(m)),
    "occlusion1": ("Occlusion-1", lambda m: cu.Occlusion1(m)),
}


@dataclass
class ExperimentConfig:
    """Sizes of one reproduction run; ``quick()`` gives small sizes for tests."""

    samples: int = 100
    subsets: int = 100
    epochs: int = 5
    batch_size: int = 128
    seed: int = 0
    n_train: Optional[int] = None
    cache_dir: Optional[str] = None
    out: str = "results"
    methods: List[str] = field(default_factory=lambda: list(METHODS))
    show_progress: bool = True
    ig_steps: int = 50
    baseline: float = -1.0  # each pipeline sets its own (DEFAULTS: ancona 0, deng -1)

    @classmethod
    def quick(cls, **kw) -> "ExperimentConfig":
        base = dict(samples=4, subsets=8, epochs=1, n_train=300, ig_steps=16, batch_size=32)
        base.update({k: v for k, v in kw.items() if v is not None})
        return cls(**base)

    def to_dict(self) -> dict:
        return asdict(self)


def make_method(name: str, model: nn.Module):
    if name not in METHODS:
        raise ValueError(f"Unknown method {name!r}; choose from {list(METHODS)}.")
    return METHODS[name][1](model)


def compute_attributions(
    model: nn.Module, name: str, x: Tensor, target: Tensor, baseline: float = 0.0, ig_steps: int = 50
):
    """Attributions of ``name`` and, where defined, the completeness delta
    ``sum(attr) - (S(x) - S(baseline))`` per sample (Occlusion-1: None)."""
    method = make_method(name, model)
    base = torch.full_like(x, baseline)
    if name == "occlusion1":
        return method.attribute(x, baselines=baseline, target=target), None
    if name == "ig":
        attr = method.attribute(x, baselines=base, target=target, n_steps=ig_steps)
    elif name in ("deeplift",):
        attr = method.attribute(x, baselines=base, target=target)
    else:  # gi, lrp: baseline 0 by definition
        attr = method.attribute(x, target=target)
        base = torch.zeros_like(x)
    with torch.no_grad():
        idx = torch.arange(len(x))
        diff = model(x)[idx, target] - model(base)[idx, target]
    delta = attr.flatten(1).sum(1) - diff
    return attr, delta


@contextmanager
def collect_attribution_warnings(sink: Dict[str, List[str]], where: str):
    """Record the :class:`~captum_unified.AttributionWarning` messages raised in the
    block into ``sink`` (message -> list of ``where``) for the report, instead of
    printing the same expected warning once per model; other warnings pass on."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        if issubclass(w.category, cu.AttributionWarning):
            places = sink.setdefault(str(w.message), [])
            if where not in places:
                places.append(where)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def warnings_section(sink: Dict[str, List[str]]) -> List[str]:
    """Markdown lines listing the recorded attribution warnings (empty if none)."""
    if not sink:
        return []
    lines = ["", "## Warnings given by the methods", ""]
    for message, places in sink.items():
        lines.append(f"- {', '.join(places)}: {message}")
    return lines


def write_csv(path: Path, rows: List[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    keys: List[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    return path


def progress(iterable, show: bool, **kw):
    if not show:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, **kw)
