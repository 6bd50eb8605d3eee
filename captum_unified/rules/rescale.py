r"""DeepLIFT's Rescale rule (Shrikumar et al. 2017; Ancona et al. 2018, Proposition 2)."""
from __future__ import annotations

import torch
from torch import Tensor

from captum_unified.rules.base import OpCall, Rule

__all__ = ["RescaleRule"]

_PRODUCTS = ("shapley", "gradient")


class RescaleRule(Rule):
    r"""DeepLIFT (Rescale) as a modified gradient:
    :math:`g(z) = (f(z) - f(\bar z)) / (z - \bar z)`, and :math:`f'(z)` where
    :math:`|z - \bar z| \le` ``eps`` (the limit of the quotient).

    :math:`\bar z` is the input the same op sees when the baseline is fed;
    the backend records it in a forward pass on the baseline.

    Every element-wise function then satisfies its summation-to-delta
    :math:`\Delta y = g\,\Delta z`. With ``products="shapley"`` (default)
    products of two input-dependent values use the two-player Shapley split,
    max and max-pooling use DeepLIFT's max rule (``maxima="deeplift"``: the
    input's and the baseline's arg-max share the change, as Captum's
    ``DeepLift``; or ``"tree"``: a tree of :math:`b + \mathrm{relu}(a - b)`),
    and LayerNorm, softmax, LSTM/GRU/RNN and attention are decomposed into
    those (SPEC §5), so the attributions sum *exactly* to
    :math:`S_c(x) - S_c(\bar x)` on any network of linear ops, element-wise
    functions, products, quotients and max.

    ``products="gradient"`` is Ancona et al.'s original modified chain rule:
    products keep the ordinary product rule and DeepLIFT loses completeness
    through them (§3.1, finding 4); the backend then warns once per call.

    Args:
        eps (float): below this :math:`|z - \bar z|` the derivative is used.
            Default: 1e-10 (the threshold of Captum's ``DeepLift``).
        products (str): ``"shapley"`` (default) or ``"gradient"``.
        maxima (str): ``"deeplift"`` (default; complete, symmetric in the
            candidates, equal to Captum's max-pooling rule), ``"tree"``
            (complete; SPEC §5's :math:`b + \mathrm{relu}(a - b)`, depends on
            the order of the candidates) or ``"gradient"`` (max-pooling keeps
            its gradient, Ancona et al. Appendix A.2; not complete).
    """

    needs_reference = True
    norm = "decompose"
    softmax = "decompose"

    def __init__(self, eps: float = 1e-10, products: str = "shapley", maxima: str = "deeplift") -> None:
        if products not in _PRODUCTS:
            raise ValueError(f"products must be one of {_PRODUCTS}, got {products!r}.")
        if maxima not in ("deeplift", "tree", "gradient"):
            raise ValueError(f"maxima must be 'deeplift', 'tree' or 'gradient', got {maxima!r}.")
        self.eps = float(eps)
        self.products = products
        self.maxima = maxima

    def product_warning(self, op: OpCall):
        if self.products != "gradient":
            return None
        return (
            f"DeepLIFT (Rescale) with products='gradient' through a product of two input-dependent "
            f"values (torch op '{op.name}', e.g. gates or attention): the ordinary product rule does "
            "not sum to the product's change, so attributions no longer sum to S(x) - S(baseline) "
            "(Ancona et al. 2018, Sec. 3.1). Use products='shapley' (the default), which stays "
            "complete, or IntegratedGradients."
        )

    def multiplier(self, f, z, out, ref_z=None, ref_out=None, op=None) -> Tensor:
        if ref_z is None or ref_out is None:
            raise RuntimeError("RescaleRule needs the reference pass (ref_z, ref_out).")
        # two buffers, updated in place (fewer temporaries: fewer page faults in a fresh process)
        dz = torch.sub(z, ref_z)
        g = torch.sub(out, ref_out).div_(dz)  # inf / NaN where dz ~ 0: replaced below
        # NaN-safe: |dz| is NaN where both passes are at the same infinity
        # (masked attention scores); those elements take the derivative too.
        large = dz.abs_().gt_(self.eps)  # 1.0 where the secant is used
        if bool((large == 0).any()):
            fprime = (op or OpCall("")).fprime(f, z, out)
            return torch.where(large.bool(), g, fprime, out=g)
        return g
