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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from captum_unified._utils.common import AttributionWarning, warn
from captum_unified.metrics.base import EvalBatch, Metric, MetricScores
from captum_unified.metrics.stats import (
    constant_rtol,
    merge_moments,
    moments,
    moments_correlation,
    pearson,
)

__all__ = ["SensitivityN", "SensitivityNResult", "sensitivity_n", "default_n_list", "pearson"]

#: Random numbers per block of the subset draw (per ``n``): the subsets of all
#: samples are drawn lazily, ``max(1, 2**24 // (batch * G))`` subsets at a
#: time, which bounds the memory of the draw for large inputs. Each sample has
#: its own generator per ``n`` and torch's CPU generator fills tensors
#: serially, so the block size never changes the subsets.
_DRAW_BLOCK = 2**24


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

    n: list[int]
    correlations: Tensor
    mean: Tensor
    n_nan: Tensor
    n_features: int
    pooled: Tensor
    attribution_sums: Tensor = field(repr=False)
    output_changes: Tensor = field(repr=False)
    n_features_per_sample: Tensor | None = field(default=None, repr=False)
    rtol: float = field(default=100 * torch.finfo(torch.float32).eps, repr=False)

    def to_dict(self) -> dict[str, Any]:
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


def default_n_list(n_features: int, num: int = 16, max_fraction: float = 0.8) -> list[int]:
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


class _Subsets:
    """The random subsets of one batch, drawn lazily, sample by sample.

    Layout of the evaluated subsets: size after size (``n_list`` order),
    ``n_subsets`` per size, except where every sample has exactly ``n`` groups:
    there the only subset (all groups) is evaluated once. Sample ``i`` draws
    its subsets of size ``n`` from its own generator
    (:meth:`EvalBatch.generator` with salt ``n``: seeded from the evaluation
    seed, the sample's global index and ``n``): ``torch.rand(t, c_i)`` over its
    ``c_i`` own groups (in increasing group order), the ``n`` largest draws
    form the subset (the ``c_i - n`` smallest are the complement when
    ``n > c_i / 2``). A sample's subsets therefore depend on the seed, its
    index, ``n``, ``n_subsets`` and its own groups, never on the batch it is
    in. The attribution sums of every method are gathered when a block is drawn.
    """

    def __init__(self, batch: EvalBatch, n_list: list[int], n_subsets: int, R: dict[Any, Tensor]) -> None:
        groups = batch.groups
        self.batch = batch
        self.n_list = n_list
        self.T = n_subsets
        self.present = groups.presence  # (B, G) bool
        self.B, self.G = self.present.shape
        self.device = self.present.device
        counts = self.present.sum(1)
        self.counts = counts.tolist()
        self.present_cpu = self.present.cpu()
        self.own = [self.present_cpu[i].nonzero().squeeze(1) for i in range(self.B)]
        self.single = [bool((counts == v).all()) for v in n_list]  # one possible subset
        n_eval = [1 if one else n_subsets for one in self.single]
        self.offsets = [sum(n_eval[:j]) for j in range(len(n_list))]
        self.total = sum(n_eval)
        self.block = max(1, min(n_subsets, _DRAW_BLOCK // max(1, self.B * self.G)))
        self.R = {k: r.cpu() for k, r in R.items()}
        self.R_total = {k: r.sum(1) for k, r in self.R.items()}
        self.sums = {k: torch.empty(len(n_list), n_subsets, self.B, dtype=torch.float64) for k in R}
        self.gens: dict[tuple[int, int], torch.Generator] = {}
        self.drawn = [0] * len(n_list)  # blocks drawn per size
        self.cache: dict[tuple[int, int], Tensor] = {}

    def _generator(self, j: int, i: int) -> torch.Generator:
        gen = self.gens.get((j, i))
        if gen is None:
            gen = self.gens[(j, i)] = self.batch.generator(i, self.n_list[j])
        return gen

    def _draw(self, j: int, t0: int, t: int) -> Tensor:
        n = self.n_list[j]
        if len(set(self.counts)) == 1:  # every sample has c groups: one topk for the whole batch
            c = self.counts[0]
            noise = torch.stack([torch.rand(t, c, generator=self._generator(j, i)) for i in range(self.B)], dim=1)
            own = torch.stack(self.own)  # (B, c)
            member = self._pick(j, t0, noise, own, n, c, slice(None))
        else:
            member = torch.zeros(t, self.B, self.G, dtype=torch.bool)
            for i in range(self.B):
                c = self.counts[i]
                noise = torch.rand(t, c, generator=self._generator(j, i)).unsqueeze(1)
                member[:, i : i + 1] = self._pick(j, t0, noise, self.own[i].unsqueeze(0), n, c, slice(i, i + 1))
        return member.to(self.device)

    def _pick(self, j: int, t0: int, noise: Tensor, own: Tensor, n: int, c: int, rows: slice) -> Tensor:
        """Membership ``(t, b, G)`` of the subsets drawn by ``noise`` ``(t, b, c)``
        over the samples ``rows`` (own groups ``own`` ``(b, c)``); records the
        attribution sums of every method."""
        t, b, _ = noise.shape
        complement = 2 * n > c
        pick = noise.topk(c - n if complement else n, dim=-1, largest=not complement, sorted=False).indices
        idx = own.unsqueeze(0).expand(t, b, c).gather(-1, pick)  # (t, b, n or c - n) group numbers
        member = torch.zeros(t, b, self.G, dtype=torch.bool)
        member.scatter_(-1, idx, True)
        if complement:
            member = self.present_cpu[rows].unsqueeze(0) & ~member
        for k, R in self.R.items():
            part = R[rows].unsqueeze(0).expand(t, b, self.G).gather(-1, idx).sum(-1)
            self.sums[k][j, t0 : t0 + t, rows] = self.R_total[k][rows] - part if complement else part
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
                while self.drawn[j] <= b:  # one generator per sample and size: blocks in order
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
        out = torch.empty(len(self.n_list), self.T, self.B, dtype=evaluated.dtype, device=evaluated.device)
        for j, off in enumerate(self.offsets):
            out[j] = evaluated[off : off + 1] if self.single[j] else evaluated[off : off + self.T]
        return out


def _pooled_correlation(sums: Tensor, changes: Tensor, rtol: float) -> Tensor:
    """Per ``n``, the correlation over all ``(subset, sample)`` pairs of
    ``(len(n), n_subsets, batch)`` tensors: ``(len(n),)``."""
    J = sums.shape[0]
    return pearson(sums.reshape(J, -1), changes.reshape(J, -1), dim=1, rtol=rtol)


def _result(
    n_list: list[int], sums: Tensor, changes: Tensor, rtol: float, counts: Tensor, name: Any
) -> SensitivityNResult:
    corr = pearson(sums, changes, dim=1, rtol=rtol).t().contiguous()
    nan = torch.isnan(corr)
    if bool(nan.any()):
        who = "" if name is None else f" ({name!r})"
        warn(
            f"Sensitivity-n{who}: {int(nan.sum())} of {corr.numel()} (sample, n) correlations are "
            "undefined (NaN) because the attribution sums or the output changes are constant "
            "over the subsets (e.g. an input equal to the baseline, or constant attributions); "
            "they are left out of the mean.",
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
        pooled=_pooled_correlation(sums, changes, rtol),
        attribution_sums=sums,
        output_changes=changes,
        n_features_per_sample=counts.cpu(),
        rtol=rtol,
    )


class SensitivityN(Metric):
    r"""Sensitivity-n (Ancona et al. 2018, §4.1) as a metric of
    :func:`~captum_unified.metrics.evaluate`; see :func:`sensitivity_n`.

    Rows: ``("sensitivity_n", n)`` per sample (the correlation
    :math:`\rho_n(x)`) and, over the whole data set, the pooled correlation
    (``sample_index = "pooled"``). The perturbed forwards do not depend on the
    method: one pass per batch scores every method.

    Args:
        n: subset sizes (default: :func:`default_n_list` of the number of groups).
        n_subsets: subsets per sample and size (the paper: 100).
    """

    name = "sensitivity_n"
    random = True

    def __init__(self, n: int | Sequence[int] | None = None, n_subsets: int = 100) -> None:
        if isinstance(n, int):
            n = [n]
        self.n = None if n is None else [int(v) for v in n]
        if int(n_subsets) < 2:
            raise ValueError("n_subsets must be >= 2 to compute a correlation.")
        self.n_subsets = int(n_subsets)

    def n_list(self, counts: Tensor) -> list[int]:
        """The subset sizes for samples with ``counts`` groups (checked)."""
        n_groups = int(counts.min())
        n_list = default_n_list(n_groups) if self.n is None else list(self.n)
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
        return n_list

    def compute(
        self, batch: EvalBatch, attributions: Mapping[Any, tuple[Tensor, ...]], warn_names: bool = True
    ) -> dict[Any, SensitivityNResult]:
        """Full :class:`SensitivityNResult` per method (one pass of forwards)."""
        groups = batch.groups
        counts = groups.counts
        if bool((counts == 0).any()):
            i = int((counts == 0).nonzero()[0, 0])
            raise ValueError(f"sample {i} has no feature to remove (its inputs are empty).")
        n_list = self.n_list(counts)
        R = {k: groups.sums(a) for k, a in attributions.items()}  # (B, G) float64 each
        subsets = _Subsets(batch, n_list, self.n_subsets, R)
        engine = batch.engine
        with engine:
            evaluated = engine.changes(
                lambda start, stop: groups.member_masks(subsets.member(start, stop)),
                subsets.total,
                "Sensitivity-n",
            ).to(torch.float64)
            rtol = constant_rtol(engine.original.dtype)
        changes = subsets.expand(evaluated)
        results = {}
        for k in R:  # a loop, not a comprehension: the warning's stacklevel points at the caller
            sums = subsets.sums[k].to(changes.device)
            results[k] = _result(n_list, sums, changes, rtol, counts, k if warn_names else None)
        return results

    def evaluate(self, batch: EvalBatch, attributions: Mapping[str, tuple[Tensor, ...]]) -> dict[str, MetricScores]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AttributionWarning)  # NaN rows say it
            results = self.compute(batch, attributions)
        out = {}
        for name, r in results.items():
            values: dict[tuple[str, int | None], Tensor] = {
                ("sensitivity_n", n): r.correlations[:, j] for j, n in enumerate(r.n)
            }
            stats = {
                "rtol": r.rtol,
                "moments": [[n] + moments(r.attribution_sums[j], r.output_changes[j]) for j, n in enumerate(r.n)],
            }
            out[name] = MetricScores(values, stats)
        return out

    def pool(self, stats: Sequence[Any]) -> dict[tuple[str, int | None], float]:
        """The pooled correlation per ``n`` over all ``(sample, subset)`` pairs of the data."""
        if not stats:
            return {}
        by_n: dict[int, list[list[float]]] = {}
        for s in stats:
            for row in s["moments"]:
                by_n.setdefault(int(row[0]), []).append(row[1:])
        rtol = float(stats[0]["rtol"])
        return {("sensitivity_n", n): moments_correlation(merge_moments(parts), rtol) for n, parts in by_n.items()}


def sensitivity_n(
    forward_func: Callable,
    inputs: Any,
    attributions: Any,
    n: int | Sequence[int] | None = None,
    baselines: Any = None,
    target: Any = None,
    additional_forward_args: Any = None,
    feature_mask: Any = None,
    n_subsets: int = 100,
    seed: int = 0,
    perturbations_per_eval: int | None = None,
    max_batch_size: int | None = None,
    max_memory_mb: float | None = None,
    show_progress: bool = False,
    sample_ids: Sequence[int] | None = None,
) -> SensitivityNResult | dict[Any, SensitivityNResult]:
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
    (:class:`captum_unified.perturbation.PerturbationEngine`), under
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
        feature_mask: Captum-style group ids per input
            (:class:`~captum_unified.feature_groups.FeatureGroups`); a group is
            one "feature": its attributions are summed and its features are
            removed together (for images, ``(1, 1, H, W)`` ids make a pixel
            with all its channels one feature). Equal ids in different input
            tensors form one group; negative ids are ordinary groups (as in
            Captum). With a mask shared by the batch (batch dimension 1) ``N``
            is the number of distinct ids. A per-sample mask (batch dimension
            ``batch``, as Captum's ``FeatureAblation`` accepts, e.g.
            superpixels per image) may give the samples different groups: each
            sample's subsets are drawn from its *own* groups (the ids present
            in its rows of the mask), so exactly ``n`` of them are removed, and
            ``N`` is the smallest per-sample number of groups (every ``n`` must
            fit every sample). Default: every scalar is a feature.
        n_subsets: subsets per sample and size (the paper uses 100).
        seed: seeds a private ``torch.Generator`` per sample and ``n`` (the
            global RNG is untouched); same seed, same subsets, same numbers. The
            subsets of a sample depend on ``seed``, the sample's index
            (``sample_ids``), ``n``, ``n_subsets`` and the sample's own
            groups, not on the other samples of the batch, the other sizes
            asked for, the batch bounds, nor the attributions, so methods scored
            with the same seed share their subsets.
        perturbations_per_eval: perturbed copies of the batch per forward pass
            (Captum's argument); overrides the two bounds below.
        max_batch_size: bound on rows per forward pass (default: see
            :func:`captum_unified.perturbation.choose_chunk`).
        max_memory_mb: bound on the memory of one perturbed batch.
        show_progress: show a tqdm progress bar.
        sample_ids: the global index of each sample (default ``0..batch-1``),
            the source of its seed: pass the positions in the data set to get
            the subsets :func:`~captum_unified.metrics.evaluate` draws.

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
        ValueError: an empty batch, a size outside ``1..N`` (with per-sample
            masks: larger than some sample's number of groups),
            ``n_subsets < 2``, attributions that do not match the inputs or
            hold NaN, or an empty dict of attributions.
    """
    metric = SensitivityN(n, n_subsets)
    batch = EvalBatch.make(
        forward_func,
        inputs,
        baselines,
        target,
        additional_forward_args,
        feature_mask,
        sample_ids,
        seed,
        perturbations_per_eval=perturbations_per_eval,
        max_batch_size=max_batch_size,
        max_memory_mb=max_memory_mb,
        show_progress=show_progress,
    )
    multi = isinstance(attributions, Mapping)
    if multi:
        if len(attributions) == 0:
            raise ValueError("attributions is an empty dict: give at least one name -> attributions.")
        named = {k: batch.attributions(a, f"attributions[{k!r}]") for k, a in attributions.items()}
    else:
        named = {None: batch.attributions(attributions)}
    results = metric.compute(batch, named, warn_names=multi)
    return results if multi else results[None]
