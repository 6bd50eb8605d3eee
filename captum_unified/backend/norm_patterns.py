r"""Normalisations written by hand, recognised among the ops a model calls.

``LlamaRMSNorm``, ``T5LayerNorm`` and many models' own norms compute
``hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + eps)`` with
plain ops: a product whose Shapley split is exact but unbounded when the
baseline's variance is about 0. :class:`NormPatterns` follows, during one pass,
what each tensor is in terms of another (aliases through casts and views; its
square; their mean or sum over some dimensions; plus a constant; ``rsqrt``,
``sqrt``, reciprocal; a centred copy ``x - x.mean(dims)``; ``var`` / ``std`` /
``norm``) and recognises the final ``c * h(q(c))`` or ``c / d(q(c))``, which
the dispatcher then computes with the rule's norm policy
(:meth:`~captum_unified.backend.RuleContext.normalised`), as for
``F.layer_norm``. Which op plays which part comes from the op table
(:data:`~captum_unified.ops.norms.PATTERN_ROLES`); what is recognised depends
only on the model's code, so both passes recognise the same ops. Recognised:
``c * rsqrt(m + eps)``, ``c * (m + eps) ** -0.5``, ``c / sqrt(m + eps)``,
``c / (sqrt(m) + eps)``, ``c / (std + eps)``, ``c / norm(c).clamp_min(eps)``,
reciprocal forms; ``m``: ``mean(c ** 2)``, scaled ``sum(c ** 2)`` or ``var(x)``
with ``c = x - x.mean(dims)``, over the same dims with ``keepdim=True``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partialmethod
from typing import Any

from torch import Tensor

from captum_unified.ops.calls import arg
from captum_unified.ops.norms import MaxNormScale, RsqrtScale, StdEpsScale

__all__ = ["NormPatterns", "NormMatch"]

Key = tuple  # what a tensor is, up to aliases: ("t", id) or ("c", key, dims)


@dataclass(frozen=True)
class NormMatch:
    """A recognised ``c * h(q(c))``: the normalised tensor, the normalised
    dimensions and the scale :math:`h`; ``weight`` a constant the model
    multiplied ``c`` by first (``w * c / sqrt(var + eps)``), and ``unweighted``
    the op on ``c`` itself (``c * h`` or ``c / d``) when there is one."""

    c: Tensor
    dims: tuple[int, ...]
    family: Any
    weight: Any = None
    unweighted: Callable[[], Tensor] | None = None


def _scalar(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, Tensor) and v.numel() == 1 and not v.requires_grad and v.dim() == 0:
        return float(v)
    return None


def _dims(dim: Any, ndim: int) -> tuple[int, ...] | None:
    if dim is None:
        return None
    d = (dim,) if isinstance(dim, int) else tuple(dim)
    return tuple(sorted(x % max(ndim, 1) for x in d))


def _times(h: Tensor) -> Callable[[Tensor], Tensor]:
    return lambda inner: inner * h


def _over(d: Tensor) -> Callable[[Tensor], Tensor]:
    return lambda inner: inner / d


class NormPatterns:
    """Tags of one pass: what each tensor is in terms of another (see the module
    docstring). The tensors are held until :meth:`release` (their ids stay unique).

    Args:
        tainted (Callable): whether a tensor depends on the explained inputs.
    """

    def __init__(self, tainted: Callable[[Any], bool]) -> None:
        self.tainted = tainted
        self._tags: dict[int, tuple[Tensor, tuple]] = {}

    def release(self) -> None:
        self._tags.clear()

    def _tag(self, t: Any, tag: tuple) -> None:
        if isinstance(t, Tensor):
            self._tags[id(t)] = (t, tag)

    def _get(self, t: Any) -> tuple | None:
        held = self._tags.get(id(t)) if isinstance(t, Tensor) else None
        return held[1] if held is not None and held[0] is t else None

    def statistic(self, t: Any) -> bool:
        """Whether ``t`` is a norm's statistic on its way to a scale (``mean(c ** 2) + eps``, ...)."""
        return (tag := self._get(t)) is not None and tag[0] in ("ms", "ms_eps", "sqrtms", "den")

    def key(self, t: Tensor) -> Key:
        """What ``t`` is, up to aliases."""
        tag = self._get(t)
        if tag is not None and tag[0] in ("alias", "centred"):
            return tag[1]
        self._tags.setdefault(id(t), (t, ("self",)))
        return ("t", id(t))

    # ------------------------------------------------------------ observe
    def observe(self, role: str, func: Callable, args: tuple, kwargs: dict, result: Any) -> None:
        """Tag ``result`` of an op playing ``role`` (after the op ran)."""
        if not isinstance(result, Tensor) or not result.is_floating_point() or not args:
            return
        a0 = args[0]
        handler = getattr(self, "_" + role, None)
        if handler is not None and isinstance(a0, Tensor):
            handler(func, a0, args, kwargs, result)

    def _alias(self, func, a0, args, kwargs, result):
        if result.shape != a0.shape or not self.tainted(a0):
            return
        tag = self._get(a0)
        self._tag(
            result, tag if tag is not None and tag[0] not in ("alias", "centred", "self") else ("alias", self.key(a0))
        )

    def _expand(self, func, a0, args, kwargs, result):
        tag = self._get(a0)
        if tag is not None and tag[0] in ("h", "den"):
            self._tag(result, tag)

    def _square(self, func, a0, args, kwargs, result):
        if self.tainted(a0):
            self._tag(result, ("sq", self.key(a0)))

    def _pow(self, func, a0, args, kwargs, result):
        e = _scalar(arg(args, kwargs, 1, "exponent"))
        if e == 2.0 and self.tainted(a0):
            self._tag(result, ("sq", self.key(a0)))
        elif e == -0.5:
            self._rsqrt(func, a0, args, kwargs, result)
        elif e == 0.5:
            self._sqrt(func, a0, args, kwargs, result)

    def _mul(self, func, a0, args, kwargs, result):
        b = arg(args, kwargs, 1, "other")
        if b is a0 and self.tainted(a0):
            self._tag(result, ("sq", self.key(a0)))
            return
        if self.tainted(a0) != self.tainted(b) and result.shape == (a0 if self.tainted(a0) else b).shape:
            c, w = (a0, b) if self.tainted(a0) else (b, a0)
            own = self._get(c)
            if own is None or own[0] in ("alias", "centred", "self"):
                self._tag(result, ("scaled", c, w))  # a constant times c: w * c / sqrt(var + eps)
                return
        self._rescaled(a0, result, _scalar(b))

    def _rescaled(self, a0, result, s: float | None) -> None:  # a mean square (or its root) times s > 0
        tag = self._get(a0)
        if s is not None and s > 0 and tag is not None and tag[0] in ("ms", "sqrtms"):
            self._tag(result, (tag[0], tag[1], tag[2], tag[3] * (s if tag[0] == "ms" else s * s)))

    def _div(self, func, a0, args, kwargs, result):
        name = getattr(func, "__name__", "")
        if name in ("__rtruediv__", "__rdiv__"):  # scalar / tensor
            if _scalar(args[1]) == 1.0:
                self._reciprocal(func, a0, args, kwargs, result)
            return
        s = _scalar(arg(args, kwargs, 1, "other"))
        self._rescaled(a0, result, 1.0 / s if s is not None and s > 0 else None)

    def _reduce(self, func, a0, args, kwargs, result, mean: bool):
        dims = _dims(arg(args, kwargs, 1, "dim"), a0.dim())
        if dims is None or not bool(arg(args, kwargs, 2, "keepdim", False)):
            return
        tag = self._get(a0)
        if tag is not None and tag[0] == "sq":
            n = math.prod(a0.shape[d] for d in dims)
            self._tag(result, ("ms", tag[1], dims, 1.0 if mean else float(n)))
        elif mean and self.tainted(a0):
            self._tag(result, ("mean", self.key(a0), dims))

    _mean = partialmethod(_reduce, mean=True)
    _sum = partialmethod(_reduce, mean=False)

    def _sub(self, func, a0, args, kwargs, result):
        m = self._get(arg(args, kwargs, 1, "other"))
        if m is not None and m[0] == "mean" and self.tainted(a0) and self.key(a0) == m[1]:
            self._tag(result, ("centred", ("c", m[1], m[2])))

    def _var(self, func, a0, args, kwargs, result):
        dim = arg(args, kwargs, 1, "dim")
        if isinstance(dim, bool):  # legacy var(x, unbiased)
            return
        dims = _dims(dim, a0.dim())
        if dims is None or not bool(kwargs.get("keepdim", arg(args, kwargs, 3, "keepdim", False))):
            return
        correction = kwargs.get("correction")
        if correction is None:
            correction = 1 if kwargs.get("unbiased", arg(args, kwargs, 2, "unbiased", True)) else 0
        n = math.prod(a0.shape[d] for d in dims)
        k = n / max(n - float(correction), 1e-300)
        std = "std" in getattr(func, "__name__", "")
        self._tag(result, ("sqrtms" if std else "ms", ("c", self.key(a0), dims), dims, k))

    def _norm2(self, func, a0, args, kwargs, result):
        name = getattr(func, "__name__", "")
        p = arg(args, kwargs, 1, "ord" if name == "vector_norm" else "p", 2)
        dims = _dims(arg(args, kwargs, 2, "dim"), a0.dim())
        keep = bool(arg(args, kwargs, 3, "keepdim", False))
        if p not in (2, 2.0, "fro") or dims is None or not keep or not self.tainted(a0):
            return
        n = math.prod(a0.shape[d] for d in dims)
        self._tag(result, ("sqrtms", self.key(a0), dims, float(n)))

    def _add(self, func, a0, args, kwargs, result):
        b = arg(args, kwargs, 1, "other")
        t, e = (a0, b) if self._get(a0) is not None else (b, a0)
        tag, eps = self._get(t), _scalar(e)
        if tag is None or eps is None or eps < 0 or _scalar(kwargs.get("alpha", 1)) != 1.0:
            return
        if tag[0] == "ms":
            self._tag(result, ("ms_eps", tag[1], tag[2], tag[3], eps))
        elif tag[0] == "sqrtms":
            self._tag(result, ("den", tag[1], tag[2], StdEpsScale(eps, tag[3])))

    def _clamp_min(self, func, a0, args, kwargs, result):
        tag = self._get(a0)
        name = getattr(func, "__name__", "")
        lo = _scalar(arg(args, kwargs, 1, "min"))
        hi = None if name.startswith("clamp_min") else arg(args, kwargs, 2, "max")
        if tag is not None and tag[0] == "sqrtms" and lo is not None and lo > 0 and hi is None:
            self._tag(result, ("den", tag[1], tag[2], MaxNormScale(lo, tag[3])))

    def _rsqrt(self, func, a0, args, kwargs, result):
        tag = self._get(a0)
        if tag is not None and tag[0] == "ms_eps":
            self._tag(result, ("h", tag[1], tag[2], RsqrtScale(tag[4], tag[3])))

    def _sqrt(self, func, a0, args, kwargs, result):
        tag = self._get(a0)
        if tag is not None and tag[0] == "ms_eps":
            self._tag(result, ("den", tag[1], tag[2], RsqrtScale(tag[4], tag[3])))
        elif tag is not None and tag[0] == "ms":
            self._tag(result, ("sqrtms",) + tag[1:])

    def _reciprocal(self, func, a0, args, kwargs, result):
        tag = self._get(a0)
        if tag is not None and tag[0] == "den":
            self._tag(result, ("h",) + tag[1:])

    # --------------------------------------------------------------- match
    def match(self, role: str, func: Callable, args: tuple, kwargs: dict) -> NormMatch | None:
        """A :class:`NormMatch` if this product / quotient is ``c * h(q(c))``
        or ``c / d(q(c))`` (before the op runs)."""
        if len(args) < 2 or not isinstance(args[0], Tensor) or not isinstance(args[1], Tensor) or kwargs:
            return None
        if role == "mul":
            for c, h in ((args[0], args[1]), (args[1], args[0])):
                tag = self._get(h)
                if tag is not None and tag[0] == "h" and self.tainted(c):
                    found = self._found(c, tag, _times(h))
                    if found is not None:
                        return found
        elif role == "div" and getattr(func, "__name__", "") not in ("__rtruediv__", "__rdiv__"):
            c, d = args
            tag = self._get(d)
            if tag is not None and tag[0] == "den" and self.tainted(c):
                return self._found(c, tag, _over(d))
        return None

    def _found(self, c: Tensor, tag: tuple, op: Callable[[Tensor], Tensor]) -> NormMatch | None:
        if self._fits(c, tag):
            return NormMatch(c, tag[2], tag[3])
        scaled = self._get(c)
        if scaled is not None and scaled[0] == "scaled" and self._fits(scaled[1], tag):
            inner = scaled[1]
            return NormMatch(inner, tag[2], tag[3], weight=scaled[2], unweighted=lambda: op(inner))
        return None

    def stray_scale(self, role: str, func: Callable, args: tuple) -> bool:
        """Whether a normalisation's scale (``rsqrt`` of a mean square, ...)
        multiplies, or divides, something other than the tensor it was
        computed from (``w * x * rsqrt(mean(x ** 2) + eps)``): not recognised,
        so op by op (exact, but not bounded); the backend says so."""
        if len(args) < 2:
            return False
        if role == "mul":
            return any((tag := self._get(t)) is not None and tag[0] == "h" for t in args[:2])
        tag = self._get(args[1])
        return role == "div" and tag is not None and tag[0] == "den"

    def _fits(self, c: Tensor, tag: tuple) -> bool:
        dims = tag[2]
        return self.key(c) == tag[1] and all(d < c.dim() for d in dims)
