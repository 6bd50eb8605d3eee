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

import bisect
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from captum_unified._utils.common import (
    AttributionWarning,
    format_additional_args,
    format_baselines,
    format_inputs,
)
from captum_unified.metrics._groups import (
    format_attributions,
    format_groups,
    group_sums,
    groups_to_masks,
)
from captum_unified.perturbation import choose_chunk, iter_perturbed_outputs, measured_forward

__all__ = ["SensitivityNResult", "sensitivity_n", "default_n_list", "pearson"]

#: Random numbers per block of the subset draw (per ``n``): subsets are drawn
#: lazily, ``max(1, 2**24 // (batch * N))`` subsets at a time, which bounds the
#: memory of the draw for large inputs. Fixed (never derived from the batch
#: bounds), so the subsets do not depend on how the forwards are chunked.
_DRAW_BLOCK = 2**24


def _constant_rtol(dtype: torch.dtype) -> float:
    """Relative tolerance of the constant test of :func:`pearson` for values
    computed in ``dtype``: ``100 * eps`` (of float32 when ``dtype`` is not
    floating). Sensitivity-n uses the dtype of the model output, for the
    per-sample and the pooled correlations alike (and so does
    :func:`~captum_unified.metrics.evaluate` through ``SensitivityNResult.rtol``)."""
    return 100 * torch.finfo(dtype if dtype.is_floating_point else torch.float32).eps


@dataclass
class SensitivityNResult:
    """Result of :func:`sensitivity_n`.

    Attributes:
        n: the subset sizes, in the order of the columns.
        correlations: Pearson correlation per sample and subset size, shape
            ``(batch, len(n))``, float64; NaN where undefined.
        mean: mean over samples per ``n``, ignoring NaN (``nanmean``), shape ``(len(n),)``.
        n_nan: how many samples had an undefined (NaN) correlation, per ``n``.
        n_features: the number of features (groups) ``N`` the subsets were
            drawn from; with a per-sample ``feature_mask`` whose samples have
            different numbers of groups, the smallest of them (the largest
            ``n`` allowed).
        pooled: per ``n``, the correlation over all ``(sample, subset)`` pairs
            together, shape ``(len(n),)``. Unlike the per-sample correlation it
            is defined at ``n = N`` (one possible subset per sample), where it
            measures Completeness across samples.
        attribution_sums: ``(len(n), n_subsets, batch)`` sums of attributions over each subset.
        output_changes: ``(len(n), n_subsets, batch)`` output variations
            :math:`S_c(x) - S_c(x_{[x_S=\\bar x_S]})`.
        n_features_per_sample: ``(batch,)`` number of groups of each sample
            (they differ only with a per-sample ``feature_mask``);
            ``n_features`` is their minimum.
        rtol: relative tolerance of the constant test of :func:`pearson`
            used for ``correlations`` and ``pooled`` (``100 * eps`` of the
            model output's dtype).
    """

    n: List[int]
    correlations: Tensor
    mean: Tensor
    n_nan: Tensor
    n_features: int
    pooled: Tensor
    attribution_sums: Tensor = field(repr=False)
    output_changes: Tensor = field(repr=False)
    n_features_per_sample: Optional[Tensor] = field(default=None, repr=False)
    rtol: float = field(default=100 * torch.finfo(torch.float32).eps, repr=False)

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
        rtol = _constant_rtol(a.dtype)
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


def _n_features(inputs: Any, feature_mask: Any) -> int:
    """``N`` of :func:`sensitivity_n` for these inputs and mask (the smallest
    per-sample number of groups)."""
    return int(format_groups(feature_mask, format_inputs(inputs))[3].min())


def _seeded_generator(seed: int, n: int) -> torch.Generator:
    """The private generator of the subsets of size ``n`` (global RNG untouched)."""
    gen = torch.Generator(device="cpu")
    gen.manual_seed((int(seed) * 1_000_003 + int(n)) % (2**63 - 1))
    return gen


class _Subsets:
    """The random subsets of one :func:`sensitivity_n` call, drawn lazily.

    Layout of the evaluated subsets: size after size (``n_list`` order),
    ``n_subsets`` per size, except where every sample has exactly ``n`` groups:
    there the only subset (all groups) is evaluated once. Per size, one private
    generator seeded from ``(seed, n)`` draws ``torch.rand(t, batch, G)`` in
    fixed blocks of ``t`` subsets; the subset of a sample is its ``n`` groups
    with the largest draws (groups the sample lacks never qualify), taken with
    one ``topk`` per block for all samples and subsets (of the ``G - n``
    smallest, the complement, when ``n > G / 2``) and scattered into a boolean
    membership ``(t, batch, G)``. The attribution sums of every method are
    gathered from the same indices when a block is drawn.
    """

    def __init__(self, n_list: List[int], n_subsets: int, present: Tensor, seed: int,
                 R: Dict[Any, Tensor]) -> None:
        self.n_list = n_list
        self.T = n_subsets
        self.present = present  # (B, G) bool, on the device
        self.batch, self.G = present.shape
        self.all_present = bool(present.all())
        self.absent_cpu = None if self.all_present else ~present.cpu()
        self.device = present.device
        self.seed = seed
        counts = present.sum(1)
        self.single = [bool((counts == v).all()) for v in n_list]  # one possible subset
        n_eval = [1 if one else n_subsets for one in self.single]
        self.offsets = [sum(n_eval[:j]) for j in range(len(n_list))]
        self.total = sum(n_eval)
        self.block = max(1, min(n_subsets, _DRAW_BLOCK // max(1, self.batch * self.G)))
        self.R = R
        self.R_total = {k: r.sum(1) for k, r in R.items()}
        self.sums = {
            k: torch.empty(len(n_list), n_subsets, self.batch, dtype=torch.float64, device=self.device)
            for k in R
        }
        self.gens: Dict[int, torch.Generator] = {}
        self.drawn = [0] * len(n_list)  # blocks drawn per size
        self.cache: Dict[Tuple[int, int], Tensor] = {}

    def _draw(self, j: int, t0: int, t: int) -> Tensor:
        n, G = self.n_list[j], self.G
        if j not in self.gens:
            self.gens[j] = _seeded_generator(self.seed, n)
        noise = torch.rand(t, self.batch, G, generator=self.gens[j])
        if self.absent_cpu is not None:
            noise.masked_fill_(self.absent_cpu, -1.0)  # below every draw: never in a subset
        complement = 2 * n > G
        idx = noise.topk(G - n if complement else n, dim=-1, largest=not complement, sorted=False).indices
        idx = idx.to(self.device)
        if complement:
            member = torch.ones(t, self.batch, G, dtype=torch.bool, device=self.device)
            member.scatter_(-1, idx, False)
        else:
            member = torch.zeros(t, self.batch, G, dtype=torch.bool, device=self.device)
            member.scatter_(-1, idx, True)
        for k, R in self.R.items():
            part = R.unsqueeze(0).expand(t, self.batch, G).gather(-1, idx).sum(-1)
            self.sums[k][j, t0 : t0 + t] = self.R_total[k] - part if complement else part
        return member

    def _get_block(self, j: int, b: int) -> Tensor:
        key = (j, b)
        if key not in self.cache:
            for old in [k for k in self.cache if k < key]:  # consumed (the engine goes in order)
                del self.cache[old]
            if self.single[j]:
                for k in self.R:
                    self.sums[k][j] = self.R_total[k].unsqueeze(0)
                self.cache[key] = self.present.unsqueeze(0)
            else:
                while self.drawn[j] <= b:  # one generator per size: draw its blocks in order
                    bb = self.drawn[j]
                    t0 = bb * self.block
                    self.cache[(j, bb)] = self._draw(j, t0, min(self.block, self.T - t0))
                    self.drawn[j] += 1
        return self.cache[key]

    def member(self, start: int, stop: int) -> Tensor:
        """Membership ``(stop - start, batch, G)`` of evaluated subsets ``start..stop-1``."""
        pieces = []
        pos = start
        while pos < stop:
            j = bisect.bisect_right(self.offsets, pos) - 1
            t = pos - self.offsets[j]
            b = t // self.block
            blk = self._get_block(j, b)
            lo = t - b * self.block
            piece = blk[lo : min(blk.shape[0], lo + stop - pos)]
            pieces.append(piece)
            pos += piece.shape[0]
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces)

    def expand(self, evaluated: Tensor) -> Tensor:
        """``(total, batch)`` values of the evaluated subsets -> ``(len(n), n_subsets, batch)``."""
        out = torch.empty(len(self.n_list), self.T, self.batch, dtype=evaluated.dtype, device=evaluated.device)
        for j, off in enumerate(self.offsets):
            out[j] = evaluated[off : off + 1] if self.single[j] else evaluated[off : off + self.T]
        return out


def _correlations(sums: Tensor, changes: Tensor, rtol: float) -> Tuple[Tensor, Tensor]:
    """Per-sample ``(batch, len(n))`` and pooled ``(len(n),)`` correlations of
    ``(len(n), n_subsets, batch)`` pairs."""
    corr = pearson(sums, changes, dim=1, rtol=rtol).t().contiguous()
    return corr, _pooled_correlation(sums, changes, rtol)


def _pooled_correlation(sums: Tensor, changes: Tensor, rtol: float) -> Tensor:
    """Per ``n``, the correlation over all ``(subset, sample)`` pairs of
    ``(len(n), n_subsets, batch)`` tensors: ``(len(n),)``."""
    J = sums.shape[0]
    return pearson(sums.reshape(J, -1), changes.reshape(J, -1), dim=1, rtol=rtol)


def _pooled(results: Sequence["SensitivityNResult"]) -> Tensor:
    """The pooled correlation over the samples of several results (batches of
    one data set, same ``n`` list), with the results' tolerance."""
    sums = torch.cat([r.attribution_sums for r in results], dim=2)
    changes = torch.cat([r.output_changes for r in results], dim=2)
    return _pooled_correlation(sums, changes, results[0].rtol)


def _result(n_list: List[int], sums: Tensor, changes: Tensor, rtol: float, counts: Tensor,
            name: Any) -> SensitivityNResult:
    corr, pooled = _correlations(sums, changes, rtol)
    nan = torch.isnan(corr)
    if bool(nan.any()):
        who = "" if name is None else f" ({name!r})"
        warnings.warn(
            f"Sensitivity-n{who}: {int(nan.sum())} of {corr.numel()} (sample, n) correlations are "
            "undefined (NaN) because the attribution sums or the output changes are constant "
            "over the subsets (e.g. an input equal to the baseline, or constant attributions); "
            "they are left out of the mean.",
            AttributionWarning,
            stacklevel=3,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = torch.nanmean(corr, dim=0)
    return SensitivityNResult(
        n=list(n_list),
        correlations=corr,
        mean=mean,
        n_nan=nan.sum(0),
        n_features=int(counts.min()),
        pooled=pooled,
        attribution_sums=sums,
        output_changes=changes,
        n_features_per_sample=counts.cpu(),
        rtol=rtol,
    )


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
) -> Union[SensitivityNResult, Dict[Any, SensitivityNResult]]:
    r"""Sensitivity-n of any attribution (Ancona et al. 2018, §4.1).

    For each sample :math:`x` and each subset size :math:`n`, draws
    ``n_subsets`` subsets :math:`S_t` of :math:`n` features uniformly at random
    and computes the Pearson correlation

    .. math::

        \rho_n(x) = \operatorname{PCC}_t\Big(\sum_{i \in S_t} R_i,\;
        S_c(x) - S_c(x_{[x_{S_t} = \bar x_{S_t}]})\Big).

    Each subset is drawn uniformly without replacement among the ``N``
    features (groups) of the sample; the ``n_subsets`` subsets of a sample are
    drawn independently, so for ``n`` close to ``N`` the same subset can occur
    twice. A group's attribution :math:`R_g` is the sum of the attributions
    of its features, and removing it sets all its features to the baseline.
    All perturbed copies go through the batched perturbation engine
    (:func:`captum_unified.perturbation.iter_perturbed_outputs`), under
    ``torch.no_grad``; the engine's batch bounds change the speed, not the
    numbers (up to floating-point rounding in the model). Where every sample
    has exactly ``n`` groups (``n = N``) there is one possible subset: it is
    evaluated once and repeated ``n_subsets`` times in the result.

    **Several methods, one pass of forwards.** The perturbed forwards do not
    depend on the attributions. Pass ``attributions`` as a dict
    ``{name: attributions}`` to score several methods on the same subsets with
    one pass of perturbed forwards; the result is then a dict
    ``{name: SensitivityNResult}``, each entry identical to a separate call
    with that method's attributions and the same arguments (same ``seed``)::

        res = sensitivity_n(model, x, {"GI": a_gi, "IG": a_ig}, target=y,
                            feature_mask=pixels)
        res["IG"].mean

    Args:
        forward_func: the model (or any callable) returning ``(batch, ...)`` outputs.
        inputs: tensor or tuple of tensors, batch first.
        attributions: attributions of ``inputs`` (same shapes), from Captum or
            this package: a tensor or tuple of tensors, or a dict (any
            mapping) ``name -> attributions`` to score several methods with
            one pass of forwards.
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
            are ignored. With a mask shared by the batch (batch dimension 1)
            ``N`` is the number of distinct non-negative ids. A per-sample
            mask (batch dimension ``batch``, as Captum's ``FeatureAblation``
            accepts, e.g. superpixels per image) may give the samples
            different groups: each sample's subsets are drawn from its *own*
            groups (the ids present in its rows of the mask), so exactly
            ``n`` of them are removed, and ``N`` is the smallest per-sample
            number of groups (every ``n`` must fit every sample).
            Default: every scalar is a feature.
        n_subsets: subsets per sample and size (the paper uses 100).
        seed: seeds a private ``torch.Generator`` per ``n`` (the global RNG
            is untouched); same seed, same subsets, same numbers. The subsets
            of one ``n`` depend on ``seed``, ``n``, the batch size, the
            number of group ids and which groups each sample has, not on the
            other sizes asked for, the batch bounds, nor the attributions, so
            methods scored on the same batch with the same seed share their
            subsets.
        perturbations_per_eval: perturbed copies of the batch per forward pass
            (Captum's argument); overrides the two bounds below.
        max_batch_size: bound on rows per forward pass (default: 1024, and on
            the CPU as many rows as keep one pass's intermediate results within
            32 MiB; see :func:`captum_unified.perturbation.choose_chunk`).
        max_memory_mb: bound on the memory of one perturbed batch.
        show_progress: show a tqdm progress bar.

    Returns:
        :class:`SensitivityNResult` with ``correlations`` ``(batch, len(n))``,
        ``mean`` (nanmean over samples), ``n_nan`` and ``pooled``; for a dict
        of attributions, a dict ``name -> SensitivityNResult`` in the same
        order. At ``n = N`` every subset is the full set, so the per-sample
        correlation is NaN; use ``pooled`` there. Where the attribution sums
        or the output changes are constant over the subsets the correlation is
        undefined: NaN, with an :class:`~captum_unified.AttributionWarning`
        (one per method).

    Raises:
        ValueError: a size is outside ``1..N`` (with per-sample masks: larger
            than some sample's number of groups), ``n_subsets < 2``, a sample
            has no group to remove, the attributions do not match the inputs,
            or the dict of attributions is empty.
    """
    inputs = format_inputs(inputs)
    multi = isinstance(attributions, Mapping)
    if multi:
        if len(attributions) == 0:
            raise ValueError("attributions is an empty dict: give at least one name -> attributions.")
        named = {k: format_attributions(a, inputs) for k, a in attributions.items()}
    else:
        named = {None: format_attributions(attributions, inputs)}
    baselines = format_baselines(baselines, inputs)
    args = format_additional_args(additional_forward_args)
    groups, n_ids, present, counts = format_groups(feature_mask, inputs)
    batch = inputs[0].shape[0]
    n_groups = int(counts.min())
    if n is None:
        n_list = default_n_list(n_groups)
    elif isinstance(n, int):
        n_list = [n]
    else:
        n_list = [int(v) for v in n]
    for v in n_list:
        if not 1 <= v <= n_groups:
            if bool((counts != counts[0]).any()):
                i = int(torch.argmin(counts))
                raise ValueError(
                    f"subset size n={v} is outside 1..{n_groups}: with this per-sample feature_mask "
                    f"sample {i} has only {n_groups} groups (each sample's subsets are drawn from its "
                    "own groups, so n can be at most the smallest per-sample number of groups)."
                )
            raise ValueError(f"subset size n={v} is outside 1..{n_groups} (the number of features).")
    if int(n_subsets) < 2:
        raise ValueError("n_subsets must be >= 2 to compute a correlation.")
    n_subsets = int(n_subsets)
    device = inputs[0].device

    R = {k: group_sums(a, groups, n_ids) for k, a in named.items()}  # (B, G) float64 each
    subsets = _Subsets(n_list, n_subsets, present, seed, R)

    def masks(start: int, stop: int):
        return groups_to_masks(subsets.member(start, stop), groups, inputs)

    original, act_bytes = measured_forward(forward_func, inputs, target, args)
    chunk = choose_chunk(subsets.total, inputs, perturbations_per_eval, max_batch_size, max_memory_mb, act_bytes)
    evaluated = torch.empty(subsets.total, batch, dtype=torch.float64, device=device)
    for start, stop, _, out in iter_perturbed_outputs(
        forward_func, inputs, baselines, masks, subsets.total, target, args, chunk, show_progress,
        "Sensitivity-n",
    ):
        evaluated[start:stop] = (original.unsqueeze(0) - out).to(torch.float64)
    changes = subsets.expand(evaluated)
    rtol = _constant_rtol(original.dtype)
    results = {}
    for k in R:  # a loop, not a comprehension: the warning's stacklevel points at the caller
        results[k] = _result(n_list, subsets.sums[k], changes, rtol, counts, k if multi else None)
    return results if multi else results[None]
