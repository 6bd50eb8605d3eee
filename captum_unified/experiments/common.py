"""Shared pieces of the experiment pipelines: configuration, method table,
attribution computation, CSV/markdown writing, and the Sensitivity-n hook."""

from __future__ import annotations

import csv
import inspect
import warnings
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from captum.attr._utils.attribution import PerturbationAttribution
from torch import Tensor, nn

import captum_unified as cu
from captum_unified import registry as _registry
from captum_unified._utils.progress import iterate

__all__ = [
    "METHODS",
    "TARGETS",
    "ExperimentConfig",
    "make_method",
    "compute_attributions",
    "write_csv",
    "read_csv",
    "collect_attribution_warnings",
    "warnings_section",
    "draw_samples",
    "select_targets",
    "samples_line",
    "set_threads",
    "ModelSpec",
    "load_model",
    "recipe_for",
]

#: ``--target`` choices: which output each explained sample's attribution explains
#: (registered in :data:`captum_unified.registry.TARGETS`).
TARGETS = _registry.TARGETS

#: name -> (label, builder(model)): the methods a pipeline or the command line
#: runs by name, derived from :data:`captum_unified.registry.METHODS` (the
#: entries that need nothing but the model).
METHODS: dict[str, tuple] = {e.name: (e.label, e.make) for e in _registry.METHODS.values() if e.runs_by_name}

#: The five methods of Ancona et al.'s Figure 4 (the default of every run;
#: the registry's ``default`` entries).
PAPER_METHODS = tuple(e.name for e in _registry.METHODS.values() if e.default)


@dataclass
class ExperimentConfig:
    """Sizes of one reproduction run; ``quick()`` gives small sizes for tests."""

    samples: int = 100
    subsets: int = 100
    epochs: int | None = None  # None: the training recipe's
    batch_size: int | None = None  # None: the training recipe's
    seed: int = 0
    n_train: int | None = None
    cache_dir: str | None = None
    out: str = "results"
    methods: list[str] = field(default_factory=lambda: list(PAPER_METHODS))
    show_progress: bool = True
    ig_steps: int = 50
    baseline: float = -1.0  # each pipeline sets its own (DEFAULTS: ancona 0, deng 0)
    target: str = "true"
    threads: int | None = None  # torch threads; None: leave torch's setting
    pixel_range: tuple | None = None  # each pipeline sets its own
    recipe: str | None = None  # a models.RECIPES name; each pipeline sets its own
    small: bool = False  # set by quick(): small sizes (--quick)
    lxt_python: str | None = None  # reproduce transformers: the interpreter of LXT's rows (--lxt-python)

    @classmethod
    def quick(cls, **kw) -> ExperimentConfig:
        base: dict[str, Any] = dict(
            samples=10, subsets=8, epochs=1, n_train=300, ig_steps=16, batch_size=32, recipe="adam", small=True
        )
        base.update({k: v for k, v in kw.items() if v is not None})
        return cls(**base)

    def to_dict(self) -> dict:
        """The fields, with ``out`` and ``cache_dir`` relative to the working
        directory when inside it (reports do not show the machine's paths)."""
        d = asdict(self)
        for key in ("out", "cache_dir"):
            if d[key]:
                try:
                    d[key] = str(Path(d[key]).resolve().relative_to(Path.cwd().resolve()))
                except ValueError:
                    d[key] = Path(d[key]).name
        return d


@dataclass(frozen=True)
class ModelSpec:
    """One model row of a reproduction.

    Args:
        name: a zoo name (:data:`captum_unified.models.MODEL_NAMES`) or any key
            ``loader`` understands.
        activation: the activation (``None``: the model's default or none).
        label: the name reports use (e.g. ``"C-sg"``); default from name/activation.
        training: per recipe name (:data:`captum_unified.models.RECIPES`), the
            :class:`~captum_unified.recipes.TrainingRecipe` fields that differ
            for this model, e.g. ``{"adam": {"lr": 2e-4}}``.
        loader: ``loader(spec, cfg, data) -> (model, test accuracy)``; default:
            :func:`captum_unified.models.load_or_train` (cached).
        roles: which parts of a pipeline use the model.
        quick: part of ``--quick`` runs.
        extra_methods: methods run on this model in addition to the run's
            (keys of :data:`METHODS`), e.g. Ancona et al.'s original DeepLIFT on
            a model with products.
    """

    name: str
    activation: str | None = None
    label: str = ""
    training: Mapping = field(default_factory=dict)
    loader: Callable | None = None
    roles: tuple[str, ...] = ()
    quick: bool = True
    extra_methods: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.activation or "none")


def recipe_for(cfg: ExperimentConfig, spec: ModelSpec | None = None):
    """The :class:`~captum_unified.recipes.TrainingRecipe` of ``cfg.recipe`` with the
    model's own overrides and ``cfg.epochs`` / ``cfg.batch_size`` where given."""
    from captum_unified.models import RECIPES

    if cfg.recipe not in RECIPES:
        raise ValueError(f"Unknown training recipe {cfg.recipe!r}; choose from {list(RECIPES)}.")
    changes = dict(spec.training.get(cfg.recipe, {})) if spec is not None else {}
    if cfg.epochs is not None:
        changes["epochs"] = int(cfg.epochs)
    if cfg.batch_size is not None:
        changes.setdefault("batch_size", int(cfg.batch_size))
    return RECIPES[cfg.recipe].replace(**changes)


def load_model(spec: ModelSpec, cfg: ExperimentConfig, data: tuple):
    """Train (or load from the cache) the model of ``spec``; ``(model, test accuracy)``."""
    if spec.loader is not None:
        return spec.loader(spec, cfg, data)
    from captum_unified.models import load_or_train

    return load_or_train(
        spec.name,
        spec.activation,
        cache_dir=cfg.cache_dir,
        seed=cfg.seed,
        n_train=cfg.n_train,
        data=data,
        show_progress=cfg.show_progress,
        recipe=recipe_for(cfg, spec),
    )


def set_threads(cfg: ExperimentConfig) -> int:
    """Apply ``cfg.threads`` (if given) to torch; return the thread count in use.

    Results (training and attributions) are identical between runs with the
    same thread count; a different count changes the last bits of the sums
    inside matrix products, which training amplifies."""
    if cfg.threads is not None:
        torch.set_num_threads(int(cfg.threads))
    return torch.get_num_threads()


def draw_samples(test: tuple, n: int, seed: int):
    """The explained samples: ``n`` test digits drawn class-stratified (seeded;
    :func:`captum_unified.data.stratified_sample`). Returns ``(x, labels)``."""
    from captum_unified.data import stratified_sample

    x, y = test
    idx = torch.as_tensor(stratified_sample(y, n, seed))
    return x[idx], y[idx]


def select_targets(model: nn.Module, x: Tensor, labels: Tensor, mode: str) -> Tensor:
    """The output explained for each sample: the true label or the model's prediction."""
    if mode not in TARGETS:
        raise ValueError(f"target must be one of {list(TARGETS)}, got {mode!r}.")
    if mode == "true":
        return labels.clone()
    with torch.no_grad():
        return model(x).argmax(1)


def samples_line(labels: Tensor, seed: int, target: str, what: str = "test digits") -> str:
    """A report sentence saying what was drawn and explained."""
    from captum_unified.data import class_counts

    counts = class_counts(labels)
    return (
        f"Samples: {len(labels)} {what} drawn class-stratified (seed {seed}); count per class "
        + ", ".join(f"{c}: {k}" for c, k in counts.items())
        + f". Target: {TARGETS[target]}."
    )


def make_method(name: str, model: nn.Module):
    """The attribution object of method ``name`` (a key of :data:`METHODS`) on ``model``."""
    if name not in METHODS:
        raise ValueError(f"Unknown method {name!r}; choose from {list(METHODS)}.")
    return METHODS[name][1](model)


def compute_attributions(
    model: nn.Module, name: str, x: Tensor, target: Tensor, baseline: float = 0.0, ig_steps: int = 50
):
    """Attributions of ``name`` and, where defined, the completeness delta
    ``sum(attr) - (S(x) - S(baseline))`` per sample (perturbation methods: None).

    How the method is called follows from its registry entry and its class: a
    perturbation method gets the scalar ``baseline``; a method that takes
    ``baselines`` gets a tensor filled with ``baseline``; the others (GI,
    epsilon-LRP) have the zero baseline by definition. ``ig_steps`` goes to the
    entry's ``steps`` argument (Integrated Gradients' ``n_steps``)."""
    method = make_method(name, model)
    entry = _registry.METHODS[name]
    steps = {entry.steps: ig_steps} if entry.steps else {}
    if isinstance(method, PerturbationAttribution):
        return method.attribute(x, baselines=baseline, target=target, **steps), None
    base = torch.full_like(x, baseline)
    if "baselines" in inspect.signature(method.attribute).parameters:
        attr = method.attribute(x, baselines=base, target=target, **steps)
    else:  # gi, lrp: baseline 0 by definition
        attr = method.attribute(x, target=target, **steps)
        base = torch.zeros_like(x)
    with torch.no_grad():
        idx = torch.arange(len(x))
        diff = model(x)[idx, target] - model(base)[idx, target]
    delta = attr.flatten(1).sum(1) - diff
    return attr, delta


@contextmanager
def collect_attribution_warnings(sink: dict[str, list[str]], where: str):
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


def warnings_section(sink: dict[str, list[str]]) -> list[str]:
    """Markdown lines listing the recorded attribution warnings (empty if none)."""
    if not sink:
        return []
    lines = ["", "## Warnings given by the methods", ""]
    for message, places in sink.items():
        lines.append(f"- {', '.join(places)}: {message}")
    return lines


def write_csv(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    return path


def read_csv(path) -> list[dict]:
    """Rows of a CSV written by :func:`write_csv` (values as strings)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _item_label(item) -> str:
    if isinstance(item, ModelSpec):
        return item.label or " ".join(item.key)
    return str(item)


def progress(iterable, show: bool, desc: str = "models"):
    """Iterate with a progress display that names the item being worked on (a
    :class:`ModelSpec` by its label): a tqdm bar on a terminal, one line per
    item started and finished in a log (:mod:`captum_unified._utils.progress`)."""
    return iterate(iterable, show, desc, label=_item_label)
