r"""What a rule backpropagates through :math:`\mathrm{LSE}(z) = \log\sum_k e^{z_k}`,
the piece of softmax and log-softmax that couples a row.

Softmax and log-softmax are written as :math:`u = z - \mathrm{LSE}(z)` (the
log-softmax; :math:`u \le 0` in both passes) and :math:`\mathrm{softmax}(z) =
e^u`. The rule's element-wise multiplier handles :math:`e^u` (for Rescale the
secant of :math:`\exp` on :math:`u \le 0`, which lies in :math:`[0, 1]`), and
:meth:`~captum_unified.rules.Rule.lse_weights` gives the multiplier ``m`` of
``LSE``: the backward pass of :math:`u` is :math:`g - m \sum_k g_k`.

* The ordinary gradient of ``LSE`` is :math:`m = \mathrm{softmax}(z)`
  (:func:`lse_gradient`).
* DeepLIFT needs :math:`m \cdot \Delta z = \Delta \mathrm{LSE}` exactly.
  ``LSE`` is shift-equivariant and monotone, so :math:`\Delta\mathrm{LSE}`
  lies between :math:`\min_k \Delta z_k` and :math:`\max_k \Delta z_k`, and
  such an ``m`` exists in the simplex (entries in :math:`[0, 1]`, summing to
  1: bounded whatever the logits). :func:`lse_simplex` takes the
  path-averaged gradient :math:`p = \int_0^1 \mathrm{softmax}(\bar z + t\,\Delta z)\,dt`
  (Gauss-Legendre nodes) and tilts it towards the coordinate of the largest
  (or smallest) :math:`\Delta z` just enough to make it exact:
  :math:`m = (1 - \lambda) p + \lambda e_k`, :math:`\lambda =
  (\Delta\mathrm{LSE} - p\cdot\Delta z) / (\Delta z_k - p\cdot\Delta z)`.

The Shapley split of ``exp(z - c) * reciprocal(sum exp(z - c))`` is exact in
real arithmetic, but its two halves grow like :math:`e^{\text{gap}}`, gap being
how far a row's largest logit moves between input and baseline: in floating
point it breaks down (NaN or completeness off by many orders of magnitude)
once a model has learned something. The rule here never multiplies by more
than 1 at ``exp`` and by weights in the simplex at ``LSE``.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

__all__ = ["lse_gradient", "lse_simplex", "gauss_legendre", "logsumexp_kept"]


@lru_cache(maxsize=32)
def gauss_legendre(k: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Nodes and weights of the ``k``-point Gauss-Legendre rule on ``[0, 1]``."""
    x, w = np.polynomial.legendre.leggauss(int(k))
    return tuple(float(v) for v in (x + 1) / 2), tuple(float(v) for v in w / 2)


def lse_gradient(z: Tensor, dim: int) -> Tensor:
    """The ordinary gradient of ``LSE`` along ``dim``: ``softmax(z)``."""
    return torch.softmax(z, dim)


def logsumexp_kept(z: Tensor, dim: int) -> Tensor:
    r"""``torch.logsumexp(z, dim, keepdim=True)``, computed as :math:`t +
    \log\sum_k e^{\max(z_k - t,\ \frac12\log\mathrm{tiny})}` with :math:`t` the
    row's maximum (equal to rounding: a clamped term adds at most
    :math:`\sqrt{\mathrm{tiny}}`, about 1e-154 in float64, to a sum of at least
    1). The clamp keeps ``exp`` off its slow path (arguments below about -708,
    results in the subnormal range: masked attention logits at ``finfo.min``
    are half of a causal attention row). Measured in float64
    (``benchmarks/bench_logsumexp.py``): on rows of 16 logits, a third of the
    time of the row maximum minus ``log_softmax``; on rows of 512, the same;
    ``torch.logsumexp`` is as fast on unmasked rows and 2-3x slower on masked
    ones. A row of only ``-inf`` gives ``-inf`` (as
    ``torch.logsumexp``); a row holding ``+inf`` or NaN gives NaN (the callers
    treat both alike)."""
    if z.numel() == 0 or z.shape[dim] == 0:
        return torch.logsumexp(z, dim, keepdim=True)
    top = z.amax(dim, keepdim=True)
    finite = torch.isfinite(top)
    shift = torch.where(finite, top, torch.zeros_like(top))
    floor = 0.5 * math.log(torch.finfo(z.dtype).tiny)  # exp >= sqrt(tiny): far from the subnormal slow path
    out = (z - shift).clamp_min_(floor).exp_().sum(dim, keepdim=True).log_().add_(shift)
    if bool(finite.all()):
        return out
    return torch.where(finite, out, torch.where(torch.isneginf(top), top, torch.full_like(top, math.nan)))


def _any_inf(t: Tensor) -> bool:
    return t.numel() > 0 and not bool(torch.isfinite(t.amax() + t.amin()))


def lse_simplex(
    z: Tensor,
    ref_z: Tensor,
    dim: int,
    nodes: int = 4,
    lse: tuple[Tensor, Tensor | None] | None = None,
    wide: tuple[Tensor, Tensor | None] | None = None,
) -> Tensor:
    r"""The simplex multiplier ``m`` of ``LSE`` along ``dim`` with
    :math:`\sum_k m_k (z_k - \bar z_k) = \mathrm{LSE}(z) - \mathrm{LSE}(\bar z)`.

    The path average ``p`` is only a starting point (the tilt makes ``m``
    exact whatever ``p`` is), so it is computed in ``z``'s dtype; the change
    of ``LSE``, the tilt and so ``m`` in float64. A baseline with a batch of
    one (broadcast) keeps its own ``LSE`` at that size.

    Args:
        z (Tensor): the logits of the input pass.
        ref_z (Tensor): the logits of the baseline pass (broadcastable to ``z``).
        dim (int): the softmax dimension.
        nodes (int): Gauss-Legendre nodes of the path average (default 4).
        lse (tuple of Tensor, optional): :math:`\mathrm{LSE}(z)` and
            :math:`\mathrm{LSE}(\bar z)` in float64 (dimension kept), as
            :func:`logsumexp_kept` computes them, when the caller has them.
        wide (tuple of Tensor, optional): ``z`` and ``ref_z`` in float64,
            when the caller has them (not modified).

    Returns:
        ``m`` of ``z``'s shape, float64: entries in :math:`[0, 1]` summing to 1
        along ``dim``. Entries that are :math:`-\infty` in both passes (masked
        logits) get 0.
    """
    has_inf = _any_inf(z) or _any_inf(ref_z)
    # each cast once, the baseline's at its own (batch-1) size: fewer full-size temporaries
    if wide is not None and wide[1] is not None:
        z64, ref64 = wide[0], wide[1]
    else:
        z64, ref64 = z.double(), ref_z.double()
    ref_full = ref_z.expand_as(z)
    masked = (torch.isneginf(z) & torch.isneginf(ref_full)) if has_inf else None
    dz = z - ref_full
    if masked is not None:
        dz = torch.where(masked, torch.zeros_like(dz), dz)
    t, w = gauss_legendre(nodes)
    point = torch.empty_like(z)  # one buffer for the path's points
    p = torch.softmax(torch.add(ref_full, dz, alpha=t[0], out=point), dim).mul_(w[0])
    for tk, wk in zip(t[1:], w[1:]):
        p.add_(torch.softmax(torch.add(ref_full, dz, alpha=tk, out=point), dim), alpha=wk)
    del point
    if has_inf:
        p.nan_to_num_(0.0)  # rows masked whole in both passes
    dz64 = z64 - ref64.expand_as(z)
    if masked is not None:
        dz64 = torch.where(masked, torch.zeros_like(dz64), dz64)
    p64 = p.double()
    p64.div_(p64.sum(dim, keepdim=True).clamp_min_(1e-300))  # a simplex vector in float64
    if lse is not None and lse[1] is not None:
        d_lse = lse[0] - lse[1]
    else:
        d_lse = logsumexp_kept(z64, dim) - logsumexp_kept(ref64, dim)
    if has_inf:
        d_lse = torch.nan_to_num(d_lse, nan=0.0, posinf=0.0, neginf=0.0)  # whole row masked in both passes
    pd = (p64 * dz64).sum(dim, keepdim=True)
    residual = d_lse - pd
    # tilt towards the largest dz (residual > 0) or the smallest
    if masked is not None:
        top, hi = torch.where(masked, torch.full_like(dz, -math.inf), dz).max(dim, keepdim=True)
        bottom, lo = torch.where(masked, torch.full_like(dz, math.inf), dz).min(dim, keepdim=True)
    else:
        (top, hi), (bottom, lo) = dz.max(dim, keepdim=True), dz.min(dim, keepdim=True)
    k = torch.where(residual > 0, hi, lo)
    denom = dz64.gather(dim, k) - pd
    # a denominator at the rounding of dz (all dz about equal: a shift) needs no tilt (p is exact there);
    # the scale of that rounding from the extremes in z's dtype (a threshold, not part of m)
    extreme = torch.maximum(top.abs(), bottom.abs()).double()
    noise = 64 * torch.finfo(torch.float64).eps * extreme
    tilt = denom.abs() > noise
    lam = (residual / torch.where(tilt, denom, torch.ones_like(denom))).mul_(tilt).clamp_(0.0, 1.0)
    return p64.mul_(1 - lam).scatter_add_(dim, k, lam)
