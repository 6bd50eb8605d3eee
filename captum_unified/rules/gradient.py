r"""The gradient rule: :math:`g(z) = f'(z)` (plain backpropagation)."""

from __future__ import annotations

from captum_unified.rules.base import Rule
from captum_unified.rules.opcall import OpCall

__all__ = ["GradientRule"]


class GradientRule(Rule):
    r"""The ordinary derivative :math:`g(z) = f'(z)` and the ordinary product
    rule: Saliency, Gradient*Input, Integrated Gradients (Ancona et al. 2018,
    Table 1). The backend does not intercept anything for it."""

    modifies_gradient = False

    def multiplier(self, f, z, out, ref_z=None, ref_out=None, op=None):
        return (op or OpCall("")).fprime(f, z, out)
