r"""The metric protocol: every metric scores attributions batch by batch, per sample.

A metric is a :class:`Metric` subclass in its own file, registered by one
entry in :data:`captum_unified.registry.METRICS`. The evaluation runner
(:func:`~captum_unified.metrics.evaluate`) and the metric functions
(:func:`~captum_unified.metrics.sensitivity_n`, ...) call it the same way:

1. one :class:`EvalBatch` per batch: the inputs, baselines, target and extra
   model arguments formatted once (an
   :class:`~captum_unified._utils.call.AttributionCall`), the feature groups
   (:class:`~captum_unified.feature_groups.FeatureGroups`), the global index of
   each sample, and one shared
   :class:`~captum_unified.perturbation.PerturbationEngine` (one unperturbed
   forward pass for every metric);
2. :meth:`Metric.evaluate` with the attributions of *all* methods on that
   batch: a metric whose perturbations do not depend on the method
   (Sensitivity-n's subsets, infidelity's squares) runs its perturbed forward
   passes once and scores every method on them;
3. the result, per method, is a :class:`MetricScores`: per-sample values
   ``(batch,)`` keyed by ``(quantity, param)`` (the tidy rows), plus optional
   statistics from which :meth:`Metric.pool` computes data-set-level values
   (Sensitivity-n's pooled correlation) after the last batch.

Randomness comes from :func:`sample_generator`: a private generator per
sample, seeded from ``(seed, global sample index, ...)``, so a sample's
subsets or squares do not depend on the batch it is in, the batch size or the
number of processes that share the data.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from captum_unified._utils.call import AttributionCall
from captum_unified._utils.common import check_finite
from captum_unified.feature_groups import FeatureGroups
from captum_unified.perturbation import PerturbationEngine

__all__ = [
    "Metric",
    "MetricScores",
    "EvalBatch",
    "attribute_with",
    "sample_seed",
    "sample_generator",
    "format_attributions",
]

Key = tuple[str, int | None]


def sample_seed(seed: int, index: int, *salt: int) -> int:
    """A 63-bit seed from ``(seed, global sample index, *salt)`` (BLAKE2b).

    Independent of the batch, the batch size and the process: the same sample
    gets the same random draws wherever it is evaluated.
    """
    key = ",".join(str(int(v)) for v in (seed, index) + tuple(salt)).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1


def sample_generator(seed: int, index: int, *salt: int) -> torch.Generator:
    """A CPU :class:`torch.Generator` seeded with :func:`sample_seed` (the
    global RNG is never used)."""
    gen = torch.Generator(device="cpu")
    gen.manual_seed(sample_seed(seed, index, *salt))
    return gen


def format_attributions(
    attributions: Any, inputs: tuple[Tensor, ...], name: str = "attributions"
) -> tuple[Tensor, ...]:
    """Attributions as a tuple of finite tensors with the shapes of ``inputs``
    (on their devices, detached)."""
    if isinstance(attributions, Tensor):
        attributions = (attributions,)
    if not isinstance(attributions, tuple) or len(attributions) != len(inputs):
        got = len(attributions) if isinstance(attributions, tuple) else 1
        raise ValueError(
            f"{len(inputs)} input tensor(s) but {name} are {type(attributions).__name__} of length {got}; "
            "give one attribution tensor per input tensor, shaped like it."
        )
    out = []
    for k, (a, x) in enumerate(zip(attributions, inputs)):
        if not isinstance(a, Tensor):
            raise TypeError(f"{name}[{k}] is a {type(a).__name__}, expected a torch.Tensor.")
        if tuple(a.shape) != tuple(x.shape):
            raise ValueError(
                f"{name}[{k}] has shape {tuple(a.shape)} but inputs[{k}] has shape "
                f"{tuple(x.shape)}; attributions must have the shape of the inputs."
            )
        out.append(a.detach().to(x.device))
    check_finite(tuple(out), name)
    return tuple(out)


def attribute_with(method: Any, inputs: Any, target: Any) -> Any:
    """Attributions of ``method``: an object with ``.attribute(inputs, target=...)``
    (Captum's or this package's) or a callable ``(inputs, target) -> attributions``."""
    if hasattr(method, "attribute"):
        return method.attribute(inputs, target=target)
    if callable(method):
        return method(inputs, target)
    raise TypeError(
        f"a method must be a callable (inputs, target) -> attributions or an object "
        f"with .attribute(inputs, target=...), got {type(method).__name__}."
    )


@dataclass
class EvalBatch:
    """One batch of an evaluation, formatted once; what every metric reads.

    Attributes:
        forward_func: the model.
        call: inputs, baselines, target and additional model arguments.
        sample_ids: ``(batch,)`` int64 global index of each sample (seeds).
        seed: the evaluation's seed.
        feature_mask: Captum ``feature_mask`` of the metrics that remove
            feature groups (``None``: every scalar).
        extras: the rest of the data batch after ``(inputs, labels)`` (e.g.
            bounding boxes).
        engine_options: ``perturbations_per_eval``, ``max_batch_size``,
            ``max_memory_mb``, ``show_progress`` of the shared engine.
    """

    forward_func: Callable
    call: AttributionCall
    sample_ids: Tensor
    seed: int = 0
    feature_mask: Any = None
    extras: tuple[Any, ...] = ()
    engine_options: dict[str, Any] = field(default_factory=dict)
    _groups: FeatureGroups | None = field(default=None, repr=False)
    _engine: PerturbationEngine | None = field(default=None, repr=False)

    @classmethod
    def make(
        cls,
        forward_func: Callable,
        inputs: Any,
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        feature_mask: Any = None,
        sample_ids: Any = None,
        seed: int = 0,
        extras: tuple[Any, ...] = (),
        **engine_options: Any,
    ) -> EvalBatch:
        """Format Captum-style arguments once (``sample_ids`` default ``0..batch-1``).

        Raises:
            ValueError: an empty batch, NaN inputs, a bad baseline, or
                ``sample_ids`` of the wrong length.
        """
        call = AttributionCall.format(inputs, baselines, target, additional_forward_args)
        if sample_ids is None:
            ids = torch.arange(call.batch)
        else:
            ids = torch.as_tensor(sample_ids, dtype=torch.long).reshape(-1).cpu()
            if ids.numel() != call.batch:
                raise ValueError(f"{ids.numel()} sample_ids for a batch of {call.batch}; give one per sample.")
        return cls(forward_func, call, ids, int(seed), feature_mask, tuple(extras), dict(engine_options))

    @property
    def inputs(self) -> tuple[Tensor, ...]:
        return self.call.inputs

    @property
    def batch(self) -> int:
        return self.call.batch

    @property
    def groups(self) -> FeatureGroups:
        """The feature groups of :attr:`feature_mask` (built once)."""
        if self._groups is None:
            self._groups = FeatureGroups.from_mask(self.feature_mask, self.call.inputs)
        return self._groups

    @property
    def engine(self) -> PerturbationEngine:
        """The shared perturbation engine (one unperturbed forward pass)."""
        if self._engine is None:
            self._engine = PerturbationEngine(self.forward_func, self.call, **self.engine_options)
        return self._engine

    def generator(self, i: int, *salt: int) -> torch.Generator:
        """The private generator of sample ``i`` of the batch (see :func:`sample_generator`)."""
        return sample_generator(self.seed, int(self.sample_ids[i]), *salt)

    def attributions(self, attributions: Any, name: str = "attributions") -> tuple[Tensor, ...]:
        return format_attributions(attributions, self.call.inputs, name)


@dataclass
class MetricScores:
    """What a metric gives for one method on one batch.

    Attributes:
        values: ``(quantity, param) -> (batch,)`` float64 per-sample values;
            ``param`` is an int (Sensitivity-n's ``n``, region perturbation's
            ``k``) or ``None``. Each entry becomes one tidy row per sample.
        stats: JSON-able statistics of the batch for :meth:`Metric.pool`
            (``None`` when the metric has no data-set-level value).
    """

    values: dict[Key, Tensor]
    stats: Any = None


class Metric(ABC):
    """Base class of the metrics (see the module docs).

    Subclasses set :attr:`name` (the registry key and the default ``metric``
    column) and implement :meth:`evaluate`; metrics with data-set-level values
    implement :meth:`pool`. Settings are constructor arguments, reported by
    :meth:`config` (the evaluation runner stores them to check a resumed run).
    """

    name: ClassVar[str] = ""
    #: The metric draws random numbers (its rows depend on the seed).
    random: ClassVar[bool] = False

    @abstractmethod
    def evaluate(self, batch: EvalBatch, attributions: Mapping[str, tuple[Tensor, ...]]) -> dict[str, MetricScores]:
        """Score the attributions of every method on one batch.

        Args:
            batch: the formatted batch.
            attributions: ``method name -> attributions`` (tuples shaped like
                ``batch.inputs``, already checked by :meth:`EvalBatch.attributions`).

        Returns:
            ``method name -> MetricScores``, same keys.
        """

    def pool(self, stats: Sequence[Any]) -> dict[Key, float]:
        """Data-set-level values from the per-batch ``stats`` of one method (in
        batch order). Default: none."""
        return {}

    def config(self) -> dict[str, Any]:
        """The settings of this metric (JSON-able)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"
