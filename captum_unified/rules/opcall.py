r"""What a rule is told about the op it is applied to (:class:`OpCall`), and
:func:`derivative`, the element-wise :math:`f'(z)` of any function."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["OpCall", "derivative"]


def derivative(f: Callable[[Tensor], Tensor], z: Tensor) -> Tensor:
    r"""Element-wise derivative :math:`f'(z)` of an element-wise function ``f``.

    One vector-Jacobian product with a vector of ones, which is exact because
    ``f`` is element-wise.
    """
    with torch.enable_grad():
        zz = z.detach().requires_grad_(True)
        out = f(zz)
        (d,) = torch.autograd.grad(out, zz, torch.ones_like(out))
    return d


@dataclass(frozen=True)
class OpCall:
    r"""What a rule is told about the op it is applied to.

    Attributes:
        name (str): the op's short name in the op table (``"relu"``,
            ``"sigmoid"``, ``"mul"``, ``"matmul"``, ``"pow"``, ...);
            ``"output"`` for the explained output when a rule
            ``applies_to_output``.
        gates (tuple of bool): for products, which factors are gates (outputs
            of sigmoid-like functions or of softmax); empty otherwise.
        derivative (Callable, optional): closed-form :math:`f'(z)` from
            ``(z, out)`` when the op table has one.
        lse (tuple of Tensor, optional): for the softmax family
            (:meth:`~captum_unified.rules.Rule.lse_weights`), the op's
            :math:`\mathrm{LSE}(z)` and :math:`\mathrm{LSE}(\bar z)` (float64,
            the reduced dimension kept; the second ``None`` without a baseline
            pass) when the backend has computed them, so a rule need not
            compute them again.
        wide (tuple of Tensor, optional): with ``lse``, the logits of both
            passes in float64 (read-only), for the same reason.
    """

    name: str
    gates: tuple[bool, ...] = ()
    derivative: Callable[[Tensor, Tensor], Tensor] | None = None
    lse: tuple[Tensor, Tensor | None] | None = None
    wide: tuple[Tensor, Tensor | None] | None = None

    def fprime(self, f: Callable[[Tensor], Tensor], z: Tensor, out: Tensor) -> Tensor:
        """:math:`f'(z)`, in closed form when known."""
        if self.derivative is not None:
            return self.derivative(z, out)
        return derivative(f, z)
