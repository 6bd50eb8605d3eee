r"""The rule's application to ops that couple the elements of a row: max and
max-pooling (DeepLIFT's max rule), ``logsumexp`` (the piece of softmax and
log-softmax that couples a row) and normalisations. A mixin of
:class:`~captum_unified.backend.RuleContext`, whose state (the rule, the
tape, the taint tracker) these methods use; decompositions and fused kernels
of :mod:`captum_unified.ops` call them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from captum_unified.backend.functions import MaxPoolRule, MaxRule, VectorRule
from captum_unified.ops.maxima import max_tree, min2
from captum_unified.rules import OpCall

__all__ = ["CoupledOps"]


class CoupledOps:
    """Max, max-pooling, ``logsumexp`` and normalisations with the rule (see
    the module docstring); mixed into :class:`~captum_unified.backend.RuleContext`."""

    # provided by RuleContext
    rule: Any
    tape: Any
    suspended: Callable[..., Any]
    taint: Callable[..., None]

    # --------------------------------------------------------------- maxima
    def kmax(self, v: Tensor, minimum: bool = False) -> Tensor:
        """The maximum (``minimum=True``: minimum) of ``v`` over its last
        dimension with the rule's max policy; called from decompositions (the
        mode is active there)."""
        policy = self.rule.maxima
        if policy == "tree":
            return max_tree(v, min2) if minimum else max_tree(v)
        if minimum:
            return -self.kmax(-v)
        if not self.rule.needs_reference:  # "deeplift" without a baseline pass: ordinary gradient
            return v.amax(-1)
        with self.suspended():
            if self.tape.recording:
                out = v.amax(-1)
                self.tape.record("max", (v,), out)
            else:
                rec = self.tape.next("max", (v,))
                if torch.is_grad_enabled() and v.requires_grad:
                    out = MaxRule.apply(v, rec.tensors[0], rec.out, self.rule.eps)
                else:
                    out = v.amax(-1)
            self.taint(out)
        return out

    def pooled_max(self, x: Tensor, pool: Callable[[Tensor], tuple[Tensor, Tensor]]) -> Tensor | None:
        """Max-pooling of a batched ``x`` with DeepLIFT's max rule, or ``None``
        when the rule's max policy is another one (the caller then builds the
        windows and uses :meth:`kmax`). ``pool(t)`` returns the values and the
        flat spatial indices (``return_indices=True``)."""
        if self.rule.maxima != "deeplift" or not self.rule.needs_reference:
            return None
        with self.suspended():
            if self.tape.recording:
                y, idx = pool(x)
                self.tape.record("max_pool", (x, idx), y)
            else:
                rec = self.tape.next("max_pool", (x, None))
                if torch.is_grad_enabled() and x.requires_grad:
                    y = MaxPoolRule.apply(x, rec.tensors[0], rec.out, rec.tensors[1], pool, self.rule.eps)
                else:
                    y = pool(x)[0]
            self.taint(y)
        return y

    # ----------------------------------------------------------- vector ops
    def logsumexp(self, z: Tensor, dim: int) -> Tensor:
        r""":math:`\mathrm{LSE}(z)` along ``dim`` (kept) with the rule's
        :meth:`~captum_unified.rules.Rule.lse_weights`; called from the
        softmax family's decompositions."""
        with self.suspended():
            if self.tape.recording:
                out = torch.logsumexp(z, dim, keepdim=True)
                self.tape.record("logsumexp", (z,), out)
            else:
                rule, op = self.rule, OpCall("logsumexp")
                ref_z = self.tape.next("logsumexp", (z,)).tensors[0] if rule.needs_reference else None
                if torch.is_grad_enabled() and z.requires_grad:
                    zd = z.detach()

                    def make_backward(out: Tensor) -> Callable[[Tensor], Tensor]:
                        # in float64: m . dz must equal dLSE far better than eps |dz| (see ops/softmax.py)
                        m = rule.lse_weights(op, zd, ref_z, dim).double()
                        return lambda g: (g.double() * m).to(g.dtype)

                    out = VectorRule.apply(z, lambda t: torch.logsumexp(t, dim, keepdim=True), make_backward)
                else:
                    out = torch.logsumexp(z, dim, keepdim=True)
            self.taint(out)
        return out

    def normalised(
        self,
        name: str,
        c: Tensor,
        dims: tuple[int, ...],
        family: Any,
        compute: Callable[[Tensor], Tensor],
        ref: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        r""":math:`y = c\,h(q(c))` over ``dims`` (``compute(c)``, the model's
        own arithmetic) with the rule's norm policy
        (:meth:`~captum_unified.rules.Rule.norm_backward`); called from the
        normalisations' decompositions, their fused kernels (which pass the
        baseline side, ``ref = (ref_c, ref_y)``, themselves) and for
        normalisations written by hand."""
        with self.suspended():
            if self.tape.recording and ref is None:
                out = compute(c)
                self.tape.record(name, (c,), out)
            else:
                rule, op = self.rule, OpCall(name)
                ref_c = ref_y = None
                if ref is not None:
                    ref_c, ref_y = ref
                elif rule.needs_reference:
                    rec = self.tape.next(name, (c,))
                    ref_c, ref_y = rec.tensors[0], rec.out
                if torch.is_grad_enabled() and c.requires_grad:
                    cd = c.detach()

                    def make_backward(y: Tensor) -> Callable[[Tensor], Tensor]:
                        return rule.norm_backward(op, cd, ref_c, y, ref_y, dims, family)

                    out = VectorRule.apply(c, compute, make_backward)
                else:
                    out = compute(c)
            self.taint(out)
        return out
