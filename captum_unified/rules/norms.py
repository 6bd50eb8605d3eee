r"""Norm policies: what a rule backpropagates through a normalisation.

Every normalisation the backend knows (LayerNorm, RMSNorm, GroupNorm,
InstanceNorm, BatchNorm with batch statistics, and the same written by hand:
``x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)``,
``(x - mean) / torch.sqrt(var + eps)``, ``(x - mean) / (std + eps)``, ...) is,
after its linear centring and before its linear affine part, the vector op

.. math::

    y = c \, h(q(c)), \qquad q(c) = \tfrac1n \textstyle\sum_{i} c_i^2

over a row of :math:`n` features, with a decreasing scale :math:`h` (for
LayerNorm :math:`h(q) = (q + \epsilon)^{-1/2}`). Its Jacobian is
:math:`J(c) = h(q) I + \tfrac{2}{n} h'(q)\, c c^\top`. A policy returns the
backward map :math:`g \mapsto M^\top g` of a multiplier matrix :math:`M`.

.. list-table::
   :header-rows: 1

   * - policy
     - :math:`M`
     - exact / bounded
   * - ``"constant"``
     - :math:`h(q(c))\,I`: the scale held constant (Ali et al., ICML 2022;
       AttnLRP)
     - conservative for LRP; not DeepLIFT-complete
   * - ``"secant"``
     - on the side :math:`s` (input or baseline) with the smaller scale,
       :math:`h_s I + v\,\sigma\,(c + \bar c)^\top / n`, where :math:`v` is
       the other side's :math:`c` and :math:`\sigma = (h(q) - h(\bar q)) /
       (q - \bar q)` the secant of :math:`h`
     - exact; bounded: where the baseline sits at the norm's singular point
       (a zero or constant row, :math:`\bar c = 0`) it is the constant-scale
       rule at the input, :math:`M = h(q) I`
   * - ``"integrated"``
     - the path-averaged Jacobian :math:`\int_0^1 J(\bar c + t\,\Delta c)\,dt`
       (Integrated Gradients of the op alone; four scalar integrals a row,
       computed by panelled Gauss-Legendre quadrature refined where :math:`q`
       is smallest)
     - exact; bounded per op (entries of the order of :math:`\log(q/\epsilon)
       / \sqrt q`), but successive norms whose baselines are all at the
       singular point multiply these factors (measured: attributions
       :math:`10^4\times |\Delta f|` on a bias-free LLaMA with a zero embedding
       baseline, against :math:`\le 1\times` for ``"secant"``)

Both exact policies are made exact to rounding by a rank-one correction
:math:`M \leftarrow M + (\Delta y - M\Delta c)\,\Delta c^\top / \|\Delta c\|^2`
with the op's actual :math:`\Delta y` (the correction is rounding, or the
op's own float32 arithmetic in models that normalise in float32). All
per-row quantities are computed in float64.

The Shapley split of the decomposition ``c * rsqrt(mean(c * c) + eps)``
(``norm="decompose"``) is exact too, but multiplies :math:`\Delta c` by
:math:`\tfrac12(h + \bar h)`; when the baseline's variance is about 0,
:math:`\bar h \approx \epsilon^{-1/2}` (about 300 to 1,000) and the terms
cancel to give a :math:`\Delta y` of order 1 -- per norm, compounding over
layers.

Adding a policy: a function ``(c, ref_c, y, ref_y, dims, family) -> backward``
and one line in :data:`NORM_POLICIES`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Protocol

import torch
from torch import Tensor

from captum_unified.rules.logsumexp import gauss_legendre

__all__ = ["NormFamily", "NORM_POLICIES", "constant_norm", "secant_norm", "integrated_norm", "norm_integrals"]

Backward = Callable[[Tensor], Tensor]


class NormFamily(Protocol):
    """The scale of a normalisation as a function of the mean square ``q``."""

    floor: float  # where h' is steepest, q is of this order (eps for rsqrt(q + eps))

    def h(self, q: Tensor) -> Tensor: ...

    def dh(self, q: Tensor) -> Tensor: ...


def _secant(family: NormFamily, q: Tensor, rq: Tensor, hq: Tensor, hr: Tensor) -> Tensor:
    r"""The secant :math:`(h(q) - h(\bar q)) / (q - \bar q)` of the family's
    scale, :math:`h'` where the two are equal to rounding. A family with a
    closed form without cancellation (``secant(q, rq, hq, hr)``, e.g.
    :class:`~captum_unified.ops.norms.RsqrtScale`) gives it; otherwise the
    quotient, with :math:`h'` at the midpoint where :math:`|q - \bar q|` is
    at the rounding of :math:`q + \bar q`."""
    closed = getattr(family, "secant", None)
    if closed is not None:
        return closed(q, rq, hq, hr)
    dq = q - rq
    tiny = dq.abs() <= 1e-12 * (q + rq + family.floor)
    return torch.where(tiny, family.dh(0.5 * (q + rq)), (hq - hr) / torch.where(tiny, torch.ones_like(dq), dq))


def _rows(dims: tuple[int, ...], c: Tensor) -> int:
    return math.prod(c.shape[d] for d in dims)


def _msq(c: Tensor, dims: tuple[int, ...]) -> Tensor:
    return (c * c).mean(dims, keepdim=True)


def constant_norm(c, ref_c, y, ref_y, dims, family) -> Backward:
    """The scale held constant at the input: :math:`M = h(q(c)) I`."""
    scale = family.h(_msq(c.double(), dims)).to(c.dtype)
    return lambda g: g * scale


def _exact(c64: Tensor, rc64: Tensor, y: Tensor, ref_y: Tensor, dims, apply: Callable[..., Tensor]) -> Backward:
    """``apply`` (float64 ``v -> M v``, ``M`` symmetric or given as its own
    transpose map) plus the rank-one correction that makes ``M dc = dy``."""
    dc = c64 - rc64
    return _corrected(dc, _change(y, ref_y) - apply(dc), dims, lambda g64: apply(g64, transpose=True))


def _change(y: Tensor, ref_y: Tensor) -> Tensor:
    r""":math:`\Delta y` in float64 (a batch-1 ``ref_y`` broadcast), a new tensor."""
    y64 = y.double()
    return y64 - ref_y if y64 is y else y64.sub_(ref_y.double())


def _corrected(dc: Tensor, rho: Tensor, dims, transpose: Callable[[Tensor], Tensor]) -> Backward:
    r"""The backward map ``g -> M^T g + dc (rho . g) / |dc|^2`` (float64 inside,
    ``g``'s dtype out): ``M`` plus the rank-one correction :math:`\rho\,
    \Delta c^\top / \|\Delta c\|^2`, :math:`\rho = \Delta y - M \Delta c`."""
    # 1 / |dc|^2, and 0 where dc = 0 (1 / 0 = inf -> 0; a NaN -> 0)
    inv = (dc * dc).sum(dims, keepdim=True).reciprocal_().nan_to_num_(0.0, 0.0, 0.0)
    rho_inv = rho.mul_(inv)

    def backward(g: Tensor) -> Tensor:
        g64 = g.double()
        return transpose(g64).addcmul_(dc, (rho_inv * g64).sum(dims, keepdim=True)).to(g.dtype)

    return backward


def secant_norm(c, ref_c, y, ref_y, dims, family) -> Backward:
    r"""The secant policy (see the module docstring): exact and bounded.

    :math:`M \Delta c` needs no sum over the row: :math:`(c + \bar c)\cdot
    \Delta c = n\,(q - \bar q)`, so :math:`M\Delta c = h_s \Delta c + v\,
    \sigma\,(q - \bar q)`. The baseline's row statistics are computed at its
    own (batch-1) size; full-size float64 temporaries are few (each costs an
    allocation, on the CPU the larger part of an element-wise op)."""
    n = _rows(dims, c)
    c64, rc_own = c.double(), ref_c.double()
    rc64 = rc_own.expand(c.shape)
    q, rq = _msq(c64, dims), _msq(rc_own, dims)
    hq, hr = family.h(q), family.h(rq)
    sec = _secant(family, q, rq, hq, hr)
    at_input = hq <= hr
    scale = torch.where(at_input, hq, hr)
    other = torch.where(at_input, rc64, c64)  # v: the other side's c
    dc = c64 - rc64
    # rho = dy - M dc, with M dc = scale dc + other sec dq
    rho = _change(y, ref_y).addcmul_(scale, dc, value=-1.0).addcmul_(other, sec * (q - rq), value=-1.0)
    weight = (c64 + rc64).mul_(sec / n)  # M^T = scale I + (c + c_bar) sec other^T / n

    def transpose(g64: Tensor) -> Tensor:
        return (g64 * scale).addcmul_(weight, (other * g64).sum(dims, keepdim=True))

    return _corrected(dc, rho, dims, transpose)


def _panels(tau: Tensor, width: Tensor, per_side: int = 12, order: int = 8) -> tuple[Tensor, Tensor]:
    """Nodes and weights (rows x N) on ``[0, 1]``: Gauss-Legendre panels whose
    widths grow geometrically away from ``tau`` (where the integrand peaks,
    with half-width of the order of ``width``)."""
    lo = torch.clamp(width / 4, max=1.0).clamp_min(1e-300)
    frac = torch.linspace(0, 1, per_side, dtype=torch.float64, device=tau.device)
    offs = torch.exp(torch.log(lo)[:, None] * (1 - frac)[None, :])
    right = (tau[:, None] + offs).clamp(max=1.0)
    left = (tau[:, None] - offs.flip(1)).clamp(min=0.0)
    zero, one = torch.zeros_like(tau)[:, None], torch.ones_like(tau)[:, None]
    edges = torch.cat([zero, left, tau[:, None], right, one], 1)
    a, b = edges[:, :-1], edges[:, 1:]
    x, w = gauss_legendre(order)
    xs = torch.tensor(x, dtype=torch.float64, device=tau.device)
    ws = torch.tensor(w, dtype=torch.float64, device=tau.device)
    nodes = a[:, :, None] + (b - a)[:, :, None] * xs
    weights = (b - a)[:, :, None] * ws
    return nodes.flatten(1), weights.flatten(1)


def norm_integrals(alpha: Tensor, beta: Tensor, gamma: Tensor, family) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r""":math:`A = \int_0^1 h(Q)\,dt` and :math:`B_k = \int_0^1 t^k h'(Q)\,dt`
    (:math:`k = 0, 1, 2`) for :math:`Q(t) = \alpha t^2 + \beta t + \gamma`, one
    row per element of the 1-d float64 arguments."""
    pos = alpha > 0
    safe = torch.where(pos, alpha, torch.ones_like(alpha))
    tau = torch.where(pos, -beta / (2 * safe), torch.zeros_like(alpha)).clamp(0, 1)
    q_tau = ((alpha * tau + beta) * tau + gamma).clamp_min(0)
    width = torch.where(pos, torch.sqrt((q_tau + family.floor) / safe), torch.full_like(alpha, math.inf))
    t, w = _panels(tau, width)
    q = ((alpha[:, None] * t + beta[:, None]) * t + gamma[:, None]).clamp_min(0)
    hv, dv = family.h(q), family.dh(q)
    return (w * hv).sum(1), (w * dv).sum(1), (w * t * dv).sum(1), (w * t * t * dv).sum(1)


def integrated_norm(c, ref_c, y, ref_y, dims, family) -> Backward:
    r"""The path-averaged Jacobian (see the module docstring): exact, bounded per op."""
    n = _rows(dims, c)
    c64, rc64 = c.double(), ref_c.double().expand(c.shape)
    dc = c64 - rc64
    alpha = _msq(dc, dims)
    beta = 2 * (rc64 * dc).mean(dims, keepdim=True)
    gamma = _msq(rc64, dims)
    shape = alpha.shape
    ints = norm_integrals(alpha.reshape(-1), beta.reshape(-1), gamma.reshape(-1), family)
    a_, b0, b1, b2 = (v.reshape(shape) for v in ints)
    k = 2.0 / n

    def apply(v: Tensor, transpose: bool = False) -> Tensor:  # the path-averaged Jacobian is symmetric
        rv = (rc64 * v).sum(dims, keepdim=True)
        dv = (dc * v).sum(dims, keepdim=True)
        return a_ * v + k * (b0 * rv * rc64 + b1 * (dv * rc64 + rv * dc) + b2 * dv * dc)

    return _exact(c64, rc64, y, ref_y, dims, apply)


#: name -> policy (read-only). A rule's ``norm`` field names one of these (or
#: ``"decompose"``: the Shapley split of the decomposition; ``"gradient"``).
NORM_POLICIES: Mapping[str, Callable[..., Backward]] = MappingProxyType(
    {
        "constant": constant_norm,
        "secant": secant_norm,
        "integrated": integrated_norm,
    }
)
