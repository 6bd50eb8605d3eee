r"""Statistics shared by the metrics: Pearson correlation, and the mergeable
moments from which a correlation over a whole data set is computed batch by
batch (or process by process) without keeping the pairs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["pearson", "constant_rtol", "moments", "merge_moments", "moments_correlation"]


def constant_rtol(dtype: torch.dtype) -> float:
    """Relative tolerance of the constant test of :func:`pearson` for values
    computed in ``dtype``: ``100 * eps`` (of float32 when ``dtype`` is not
    floating)."""
    return 100 * torch.finfo(dtype if dtype.is_floating_point else torch.float32).eps


def pearson(a: Tensor, b: Tensor, dim: int = 0, rtol: float | None = None) -> Tensor:
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
        warning is raised here (:func:`~captum_unified.metrics.sensitivity_n` warns).
    """
    if rtol is None:
        rtol = constant_rtol(a.dtype)
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


def moments(a: Tensor, b: Tensor) -> list[float]:
    """Mergeable moments of the pairs ``(a_k, b_k)`` (flattened), float64:
    ``[count, mean_a, mean_b, M2_a, M2_b, C_ab, mean|a|, mean|b|]`` with
    ``M2`` and ``C`` the centred sums of squares and of products."""
    a = a.reshape(-1).to(torch.float64)
    b = b.reshape(-1).to(torch.float64)
    n = a.numel()
    if n == 0:
        return [0.0] * 8
    ma, mb = a.mean(), b.mean()
    ac, bc = a - ma, b - mb
    return [
        float(n),
        float(ma),
        float(mb),
        float((ac * ac).sum()),
        float((bc * bc).sum()),
        float((ac * bc).sum()),
        float(a.abs().mean()),
        float(b.abs().mean()),
    ]


def merge_moments(parts: Sequence[Sequence[float]]) -> list[float]:
    """Merge :func:`moments` of disjoint sets of pairs (Chan et al.'s parallel
    update), in the given order."""
    n, ma, mb, m2a, m2b, c, aa, ab = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    for p in parts:
        n2, ma2, mb2, m2a2, m2b2, c2, aa2, ab2 = (float(v) for v in p)
        if n2 == 0:
            continue
        tot = n + n2
        da, db = ma2 - ma, mb2 - mb
        m2a += m2a2 + da * da * n * n2 / tot
        m2b += m2b2 + db * db * n * n2 / tot
        c += c2 + da * db * n * n2 / tot
        ma += da * n2 / tot
        mb += db * n2 / tot
        aa += (aa2 - aa) * n2 / tot
        ab += (ab2 - ab) * n2 / tot
        n = tot
    return [n, ma, mb, m2a, m2b, c, aa, ab]


def moments_correlation(m: Sequence[float], rtol: float) -> float:
    """The Pearson correlation of merged :func:`moments`, with :func:`pearson`'s
    constant test (NaN when a side is constant or there are no pairs)."""
    n, _, _, m2a, m2b, c, aa, ab = (float(v) for v in m)
    if n == 0:
        return float("nan")
    sa, sb = (m2a / n) ** 0.5, (m2b / n) ** 0.5
    if sa == 0 or sb == 0 or sa <= rtol * aa or sb <= rtol * ab:
        return float("nan")
    return max(-1.0, min(1.0, (c / n) / (sa * sb)))
