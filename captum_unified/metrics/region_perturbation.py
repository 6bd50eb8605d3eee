r"""Region perturbation (Samek et al. 2016; Ancona et al. 2018, Fig. 3c).

Features (or feature groups) are removed, i.e. set to the baseline
:math:`\bar x`, one after the other in the order of their attributions, and the
target output is traced. With :math:`\pi` the per-sample ordering (most
relevant first: decreasing :math:`R_g`; least relevant first: increasing) and
:math:`x^{(k)}` the input with the first :math:`k` groups of :math:`\pi`
removed, the curve of a sample is

.. math::

    c_k = S_c\big(x^{(k)}\big), \qquad k = 0, k_1, k_2, \dots

A good attribution makes the curve drop fast when the most relevant features
go first and stay flat when the least relevant go first. The *area over the
perturbation curve* summarises it (Samek et al.):

.. math::

    \operatorname{AOPC} = \frac{1}{L + 1} \sum_{l=0}^{L} \big(c_0 - c_{k_l}\big).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from captum_unified.metrics.base import EvalBatch, Metric, MetricScores

__all__ = ["RegionPerturbation", "RegionPerturbationResult", "region_perturbation"]

_ORDERS = ("most_relevant_first", "least_relevant_first")


@dataclass
class RegionPerturbationResult:
    """Result of :func:`region_perturbation`.

    Attributes:
        k: numbers of removed features (groups) of the columns, starting at 0.
        curves: target output after removing the first ``k`` features in
            attribution order, shape ``(batch, len(k))``; column 0 is the
            output of the unperturbed input.
        order: ``"most_relevant_first"`` or ``"least_relevant_first"``.
        n_features: the number of features (groups) ``G``; with a per-sample
            ``feature_mask`` whose samples have different numbers of groups,
            the largest of them (the last ``k``).
        aopc: area over the perturbation curve per sample, ``(batch,)``:
            the mean over the columns of ``curves[:, 0] - curves[:, j]``.
        ranking: per sample, the group indices in removal order, ``(batch,
            number of group ids)``; with a per-sample mask, a sample's own
            groups come first and the ids it lacks last.
        n_features_per_sample: ``(batch,)`` number of groups of each sample.
    """

    k: list[int]
    curves: Tensor
    order: str
    n_features: int
    aopc: Tensor
    ranking: Tensor
    n_features_per_sample: Tensor | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python summary (lists, JSON-ready).

        Returns:
            ``{"k", "order", "curves", "aopc"}``; ``curves`` is a list of
            per-sample lists. ``ranking`` is left out.
        """
        return {
            "k": list(self.k),
            "order": self.order,
            "curves": self.curves.tolist(),
            "aopc": self.aopc.tolist(),
        }

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


def _steps(n_steps: None | int | Sequence[int], n_groups: int) -> list[int]:
    if n_steps is None:
        return list(range(n_groups + 1))
    if isinstance(n_steps, int):
        if n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps}.")
        vals = torch.linspace(0, n_groups, n_steps + 1, dtype=torch.float64).round().long().tolist()
        return sorted(set(int(v) for v in vals))
    ks = [int(v) for v in n_steps]
    if ks and ks[0] == 0:
        ks = ks[1:]
    if not ks or any(b <= a for a, b in zip(ks, ks[1:])) or ks[0] < 1 or ks[-1] > n_groups:
        raise ValueError(
            f"n_steps as a list must be strictly increasing numbers of removed features in "
            f"1..{n_groups}, got {list(n_steps)}."
        )
    return [0] + ks


def region_perturbation(
    forward_func: Callable,
    inputs: Any,
    attributions: Any,
    baselines: Any = None,
    target: Any = None,
    additional_forward_args: Any = None,
    feature_mask: Any = None,
    order: str = "most_relevant_first",
    n_steps: None | int | Sequence[int] = None,
    perturbations_per_eval: int | None = None,
    max_batch_size: int | None = None,
    max_memory_mb: float | None = None,
    show_progress: bool = False,
) -> RegionPerturbationResult:
    r"""Trace the target output while removing features in attribution order.

    For each sample the groups are ranked by their attribution :math:`R_g`
    (summed over the features of the group given by ``feature_mask``),
    decreasing for ``"most_relevant_first"`` and increasing for
    ``"least_relevant_first"`` (ties keep the group order: a stable sort).
    Column :math:`j` of ``curves`` is :math:`S_c(x^{(k_j)})`, the output with
    the first :math:`k_j` groups of the ranking set to the baseline. All
    perturbed copies (cumulative top-:math:`k` masks, per sample) go through
    the batched perturbation engine under ``torch.no_grad``.

    Args:
        forward_func: the model (or any callable).
        inputs: tensor or tuple of tensors, batch first.
        attributions: attributions of ``inputs`` (same shapes).
        baselines: value :math:`\bar x` of removed features (Captum format). Default 0.
        target: output index to trace (Captum format).
        additional_forward_args: extra model arguments, not perturbed.
        feature_mask: Captum-style group ids per input
            (:class:`~captum_unified.feature_groups.FeatureGroups`; e.g. a
            ``(1, 1, H, W)`` mask makes a pixel with all its channels one
            feature). A per-sample mask (batch dimension ``batch``) may give
            the samples different groups: each sample ranks only its own
            groups (the ids present in its rows), so every step removes one of
            them; a sample with ``G_i`` groups has all of them removed for
            ``k >= G_i`` (its curve stays at the fully removed output) and
            ``G`` is the largest ``G_i``. Default: every scalar is a feature.
        order: ``"most_relevant_first"`` or ``"least_relevant_first"``.
        n_steps: ``None`` (default): remove one group at a time, ``k = 0..G``;
            an int ``L``: ``L`` about equal steps from 0 to ``G``; a list:
            the numbers of removed groups ``k_1 < k_2 < ...`` (0 is prepended).
        perturbations_per_eval: perturbed copies of the batch per forward pass;
            overrides the two bounds below.
        max_batch_size: bound on rows per forward pass.
        max_memory_mb: bound on the memory of one perturbed batch.
        show_progress: show a tqdm progress bar.

    Returns:
        :class:`RegionPerturbationResult` with ``curves`` ``(batch, len(k))``
        (the dtype of the model output), ``k``, ``aopc`` (float64: the mean
        over all columns, column 0 included, of ``curves[:, 0] - curves``) and
        ``ranking``.

    Raises:
        ValueError: an empty batch, NaN inputs or attributions, attributions
            that do not match the inputs, an unknown ``order`` or bad ``n_steps``.
    """
    metric = RegionPerturbation(order, n_steps)
    batch = EvalBatch.make(
        forward_func,
        inputs,
        baselines,
        target,
        additional_forward_args,
        feature_mask,
        perturbations_per_eval=perturbations_per_eval,
        max_batch_size=max_batch_size,
        max_memory_mb=max_memory_mb,
        show_progress=show_progress,
    )
    return metric.compute(batch, batch.attributions(attributions))


class RegionPerturbation(Metric):
    """Region perturbation (Samek et al. 2016) as a metric of
    :func:`~captum_unified.metrics.evaluate`; see :func:`region_perturbation`.

    Rows per sample: ``("region_perturbation", k)``, the target output after
    removing ``k`` groups (the curve), and ``("aopc", None)``, the area over
    the perturbation curve. The perturbed inputs depend on each method's
    ranking: one pass of forwards per method.

    Args:
        order: ``"most_relevant_first"`` or ``"least_relevant_first"``.
        n_steps: ``None`` (one group at a time), an int (about equal steps) or
            a list of numbers of removed groups.
    """

    name = "region_perturbation"

    def __init__(self, order: str = "most_relevant_first", n_steps: None | int | Sequence[int] = None) -> None:
        if order not in _ORDERS:
            raise ValueError(f"order must be one of {_ORDERS}, got {order!r}.")
        self.order = order
        self.n_steps = n_steps if n_steps is None or isinstance(n_steps, int) else [int(v) for v in n_steps]

    def compute(self, batch: EvalBatch, attrs: tuple[Tensor, ...]) -> RegionPerturbationResult:
        groups = batch.groups
        present, counts = groups.presence, groups.counts
        n_ids = groups.n_groups
        B = batch.batch
        device = present.device
        n_groups = int(counts.max())
        ks = _steps(self.n_steps, n_groups)
        R = groups.sums(attrs)  # (B, ids) float64
        key = -R if self.order == "most_relevant_first" else R
        ranking = torch.argsort(key, dim=1, stable=True)  # (B, ids): groups in removal order
        if not bool(present.all()):  # ids a sample lacks go last (never reached before k = G_i)
            lacks = (~present).gather(1, ranking).to(torch.uint8)
            ranking = ranking.gather(1, torch.argsort(lacks, dim=1, stable=True))
        position = torch.empty_like(ranking)
        position.scatter_(1, ranking, torch.arange(n_ids, device=device).expand(B, n_ids))
        k_removed = torch.tensor(ks[1:], dtype=torch.long, device=device)

        def masks(start: int, stop: int):
            member = position.unsqueeze(0) < k_removed[start:stop].view(-1, 1, 1)  # (k, B, G)
            return groups.member_masks(member)

        engine = batch.engine
        with engine:
            original = engine.original
            curves = torch.empty(B, len(ks), dtype=original.dtype, device=original.device)
            curves[:, 0] = original
            curves[:, 1:] = engine.outputs(masks, int(k_removed.numel()), "Region perturbation").t()
        aopc = (curves[:, :1] - curves).to(torch.float64).mean(dim=1)
        return RegionPerturbationResult(
            k=ks,
            curves=curves,
            order=self.order,
            n_features=n_groups,
            aopc=aopc,
            ranking=ranking,
            n_features_per_sample=counts.cpu(),
        )

    def evaluate(self, batch: EvalBatch, attributions: Mapping[str, tuple[Tensor, ...]]) -> dict[str, MetricScores]:
        out = {}
        for name, a in attributions.items():
            r = self.compute(batch, a)
            values: dict[tuple[str, int | None], Tensor] = {
                ("region_perturbation", k): r.curves[:, j].to(torch.float64) for j, k in enumerate(r.k)
            }
            values[("aopc", None)] = r.aopc
            out[name] = MetricScores(values)
        return out
