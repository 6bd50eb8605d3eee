r"""Sensitivity-n (Ancona et al., ICLR 2018, §4.1).

An attribution method satisfies *Sensitivity-n* when, for every subset
:math:`S` of :math:`n` features,

.. math::

    \sum_{i \in S} R_i^c(x) = S_c(x) - S_c(x_{[x_S = \bar x_S]}).

No method satisfies it for all :math:`n` on a nonlinear model (Proposition 4),
so the metric measures *how well* it holds: for each sample and each :math:`n`,
draw random subsets :math:`S_1, \dots, S_T` of :math:`n` features (uniformly,
without replacement within a subset) and report the Pearson correlation

.. math::

    \rho_n(x) = \operatorname{PCC}_{t=1..T}\Big(\sum_{i \in S_t} R_i^c(x),\;
    S_c(x) - S_c(x_{[x_{S_t} = \bar x_{S_t}]})\Big).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import torch
from torch import Tensor

from captum_unified._utils.common import (
    AttributionWarning,
    format_additional_args,
    format_baselines,
    format_inputs,
    run_forward,
)
from captum_unified.metrics._groups import (
    format_attributions,
    format_feature_mask,
    group_sums,
    groups_to_masks,
)
from captum_unified.perturbation import choose_chunk, iter_perturbed_outputs

__all__ = ["SensitivityNResult", "sensitivity_n", "default_n_list", "pearson"]


@dataclass
class SensitivityNResult:
    """Result of :func:`sensitivity_n`.

    Attributes:
        n: the subset sizes, in the order of the columns.
        correlations: Pearson correlation per sample and subset size, shape
            ``(batch, len(n))``, float64; NaN where undefined.
        mean: mean over samples per ``n``, ignoring NaN (``nanmean``), shape ``(len(n),)``.
        n_nan: how many samples had an undefined (NaN) correlation, per ``n``.
        n_features: the number of features (groups) ``N`` the subsets were drawn from.
        pooled: per ``n``, the correlation over all ``(sample, subset)`` pairs
            together, shape ``(len(n),)``. Unlike the per-sample correlation it
            is defined at ``n = N`` (one possible subset per sample), where it
            measures Completeness across samples.
        attribution_sums: ``(len(n), n_subsets, batch)`` sums of attributions over each subset.
        output_changes: ``(len(n), n_subsets, batch)`` output variations
            :math:`S_c(x) - S_c(x_{[x_S=\\bar x_S]})`.
    """

    n: List[int]
    correlations: Tensor
    mean: Tensor
    n_nan: Tensor
    n_features: int
    pooled: Tensor
    attribution_sums: Tensor = field(repr=False)
    output_changes: Tensor = field(repr=False)

    def to_dict(self) -> Dict[str, Any]:
        """Plain-Python summary (lists, JSON-ready).

        Returns:
            ``{"n", "mean", "n_nan", "pooled", "correlations"}``, each a list
            (``correlations`` a list of per-sample lists); NaN stays ``nan``.
        """
        return {
            "n": list(self.n),
            "mean": self.mean.tolist(),
            "n_nan": self.n_nan.tolist(),
            "pooled": self.pooled.tolist(),
            "correlations": self.correlations.tolist(),
        }

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


def default_n_list(n_features: int, num: int = 16, max_fraction: float = 0.8) -> List[int]:
    r"""Log-spaced subset sizes from 1 to ``max_fraction * n_features`` (unique ints).

    ``num`` values are spaced evenly on a log scale between 1 and
    ``floor(max_fraction * n_features)``, rounded to integers; duplicates
    (frequent at the small end) are dropped, so the list can be shorter than
    ``num``. ``n = N`` is not included: add it yourself and read the
    ``pooled`` correlation there (the per-sample one is undefined).

    For example ``default_n_list(784)`` is ``[1, 2, 4, 6, 9, 13, 20, 31, 48, 73,
    113, 173, 266, 408, 627]`` (15 sizes); ``default_n_list(64)`` is ``[1, 2,
    3, 4, 5, 6, 8, 11, 14, 18, 23, 30, 39, 51]``.

    Args:
        n_features: the number of features (groups) ``N``, at least 1.
        num: how many log-spaced values to draw before rounding (an upper bound
            on the length of the list).
        max_fraction: the largest size as a fraction of ``N`` (Ancona et al.:
            "about 80%").

    Returns:
        The sorted list of distinct subset sizes, each in ``1..N``; ``[1]``
        when ``max_fraction * N < 2``.
    """
    if n_features < 1:
        raise ValueError("n_features must be >= 1.")
    top = max(1, int(math.floor(max_fraction * n_features)))
    if top == 1:
        return [1]
    vals = torch.logspace(0, math.log10(top), num, dtype=torch.float64).round().long()
    return sorted({int(v) for v in vals.clamp(1, top)})


def pearson(a: Tensor, b: Tensor, dim: int = 0, rtol: Optional[float] = None) -> Tensor:
    r"""Pearson correlation along ``dim``, NaN where either side is constant.

    A side counts as constant when its standard deviation is at most ``rtol``
    times its mean absolute value (rounding noise of a constant sum), or zero.
    ``rtol`` defaults to ``100 * eps`` of the inputs' dtype (float32: ~1.2e-5).
    The computation is in float64 and the result is clipped to ``[-1, 1]``.

    Args:
        a: first tensor.
        b: second tensor, same shape as ``a``.
        dim: the dimension to correlate along (the paired observations).
        rtol: relative tolerance of the constant test (see above); default
            ``100 * eps`` of ``a``'s dtype (float32 when ``a`` is not floating).

    Returns:
        The correlation, a float64 tensor of the shape of ``a`` without
        ``dim``, NaN where ``a`` or ``b`` is constant along ``dim``. No
        warning is raised here (:func:`sensitivity_n` warns).
    """
    if rtol is None:
        rtol = 100 * torch.finfo(a.dtype if a.is_floating_point() else torch.float32).eps
    a = a.to(torch.float64)
    b = b.to(torch.float64)
    ac = a - a.mean(dim, keepdim=True)
    bc = b - b.mean(dim, keepdim=True)
    sa = ac.pow(2).mean(dim).sqrt()
    sb = bc.pow(2).mean(dim).sqrt()
    const = (sa <= rtol * a.abs().mean(dim)) | (sa == 0) | (sb <= rtol * b.abs().mean(dim)) | (sb == 0)
    r = (ac * bc).mean(dim) / (sa * sb)
    r = r.clamp(-1.0, 1.0)
    return torch.where(const, torch.full_like(r, float("nan")), r)


def _subset_membership(n: int, n_subsets: int, batch: int, n_groups: int, seed: int, device) -> Tensor:
    """``(n_subsets, batch, G)`` bool: ``n`` uniform random groups per subset.

    The generator is seeded from ``(seed, n)`` so that the subsets of one ``n``
    do not depend on the other sizes asked for; the global RNG is untouched.
    """
    gen = torch.Generator(device="cpu")
    gen.manual_seed((int(seed) * 1_000_003 + int(n)) % (2**63 - 1))
    noise = torch.rand(n_subsets, batch, n_groups, generator=gen)
    idx = noise.topk(n, dim=-1).indices
    member = torch.zeros(n_subsets, batch, n_groups, dtype=torch.bool)
    member.scatter_(-1, idx, True)
    return member.to(device)


def sensitivity_n(
    forward_func: Callable,
    inputs: Any,
    attributions: Any,
    n: Union[int, Sequence[int], None] = None,
    baselines: Any = None,
    target: Any = None,
    additional_forward_args: Any = None,
    feature_mask: Any = None,
    n_subsets: int = 100,
    seed: int = 0,
    perturbations_per_eval: Optional[int] = None,
    max_batch_size: Optional[int] = None,
    max_memory_mb: Optional[float] = None,
    show_progress: bool = False,
) -> SensitivityNResult:
    r"""Sensitivity-n of any attribution (Ancona et al. 2018, §4.1).

    For each sample :math:`x` and each subset size :math:`n`, draws
    ``n_subsets`` subsets :math:`S_t` of :math:`n` features uniformly at random
    and computes the Pearson correlation

    .. math::

        \rho_n(x) = \operatorname{PCC}_t\Big(\sum_{i \in S_t} R_i,\;
        S_c(x) - S_c(x_{[x_{S_t} = \bar x_{S_t}]})\Big).

    Each subset is drawn uniformly without replacement among the ``N``
    features (groups); the ``n_subsets`` subsets of a sample are drawn
    independently, so for ``n`` close to ``N`` the same subset can occur
    twice. A group's attribution :math:`R_g` is the sum of the attributions
    of its features, and removing it sets all its features to the baseline.
    All perturbed copies go through the batched perturbation engine
    (:func:`captum_unified.perturbation.iter_perturbed_outputs`), under
    ``torch.no_grad``; the engine's batch bounds change the speed, not the
    numbers (up to floating-point rounding in the model).

    Args:
        forward_func: the model (or any callable) returning ``(batch, ...)`` outputs.
        inputs: tensor or tuple of tensors, batch first.
        attributions: attributions of ``inputs`` (same shapes), from Captum or
            this package.
        n: a subset size or a list of sizes, each in ``1..N``. Default:
            :func:`default_n_list` of ``N``, log-spaced from 1 to 80% of the
            number of features.
        baselines: the value :math:`\bar x` that removed features take (Captum
            format: number, tensor or tuple). Default 0.
        target: output index to explain (Captum format).
        additional_forward_args: extra model arguments, not perturbed.
        feature_mask: Captum-style integer group ids per input; a group is one
            "feature": its attributions are summed and its features are removed
            together (for images, ``(1, 1, H, W)`` ids make a pixel with all its
            channels one feature). Equal ids in different input tensors form
            one group; negative ids are never removed and their attributions
            are ignored. ``N`` is the number of distinct non-negative ids in
            the whole mask; with a per-sample mask (batch dimension > 1) a
            sample that lacks some of the ids can draw them, and they remove
            nothing (fewer than ``n`` groups are then removed from it).
            Default: every scalar is a feature.
        n_subsets: subsets per sample and size (the paper uses 100).
        seed: seeds a private ``torch.Generator`` per ``n`` (the global RNG
            is untouched); same seed, same subsets, same numbers. The subsets
            of one ``n`` depend on ``seed``, ``n``, the batch size and ``N``,
            not on the other sizes asked for nor on the attributions, so
            methods scored on the same batch with the same seed share their
            subsets.
        perturbations_per_eval: perturbed copies of the batch per forward pass
            (Captum's argument); overrides the two bounds below.
        max_batch_size: bound on rows per forward pass.
        max_memory_mb: bound on the memory of one perturbed batch.
        show_progress: show a tqdm progress bar.

    Returns:
        :class:`SensitivityNResult` with ``correlations`` ``(batch, len(n))``,
        ``mean`` (nanmean over samples), ``n_nan`` and ``pooled``. At ``n = N``
        every subset is the full set, so the per-sample correlation is NaN;
        use ``pooled`` there. Where the attribution sums
        or the output changes are constant over the subsets the correlation is
        undefined: NaN, with an :class:`~captum_unified.AttributionWarning`.
    """
    inputs = format_inputs(inputs)
    attrs = format_attributions(attributions, inputs)
    baselines = format_baselines(baselines, inputs)
    args = format_additional_args(additional_forward_args)
    groups, n_groups = format_feature_mask(feature_mask, inputs)
    batch = inputs[0].shape[0]
    if n is None:
        n_list = default_n_list(n_groups)
    elif isinstance(n, int):
        n_list = [n]
    else:
        n_list = [int(v) for v in n]
    for v in n_list:
        if not 1 <= v <= n_groups:
            raise ValueError(f"subset size n={v} is outside 1..{n_groups} (the number of features).")
    if int(n_subsets) < 2:
        raise ValueError("n_subsets must be >= 2 to compute a correlation.")
    n_subsets = int(n_subsets)
    device = inputs[0].device

    member = torch.cat(
        [_subset_membership(v, n_subsets, batch, n_groups, seed, device) for v in n_list]
    )  # (len(n) * T, B, G)
    n_masks = member.shape[0]
    R = group_sums(attrs, groups, n_groups)  # (B, G) float64
    sums = torch.empty(n_masks, batch, dtype=torch.float64, device=device)
    for s in range(0, n_masks, n_subsets):
        sums[s : s + n_subsets] = (member[s : s + n_subsets].to(torch.float64) * R.unsqueeze(0)).sum(-1)

    def masks(start: int, stop: int):
        return groups_to_masks(member[start:stop], groups, inputs)

    with torch.no_grad():
        original = run_forward(forward_func, inputs, target, args)
    chunk = choose_chunk(n_masks, inputs, perturbations_per_eval, max_batch_size, max_memory_mb)
    changes = torch.empty(n_masks, batch, dtype=torch.float64, device=device)
    for start, stop, _, out in iter_perturbed_outputs(
        forward_func, inputs, baselines, masks, n_masks, target, args, chunk, show_progress, "Sensitivity-n"
    ):
        changes[start:stop] = (original.unsqueeze(0) - out).to(torch.float64)

    sums = sums.reshape(len(n_list), n_subsets, batch)
    changes = changes.reshape(len(n_list), n_subsets, batch)
    rtol = 100 * torch.finfo(original.dtype if original.is_floating_point() else torch.float32).eps
    corr = pearson(sums, changes, dim=1, rtol=rtol).t().contiguous()  # (B, len(n))
    pooled = pearson(sums.reshape(len(n_list), -1), changes.reshape(len(n_list), -1), dim=1, rtol=rtol)
    nan = torch.isnan(corr)
    n_nan = nan.sum(0)
    if bool(nan.any()):
        warnings.warn(
            f"Sensitivity-n: {int(nan.sum())} of {corr.numel()} (sample, n) correlations are "
            "undefined (NaN) because the attribution sums or the output changes are constant "
            "over the subsets (e.g. an input equal to the baseline, or constant attributions); "
            "they are left out of the mean.",
            AttributionWarning,
            stacklevel=2,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = torch.nanmean(corr, dim=0)
    return SensitivityNResult(
        n=n_list,
        correlations=corr,
        mean=mean,
        n_nan=n_nan,
        n_features=n_groups,
        pooled=pooled,
        attribution_sums=sums,
        output_changes=changes,
    )
