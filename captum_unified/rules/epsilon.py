r"""The epsilon-LRP rule (Bach et al. 2015; Ancona et al. 2018, Proposition 1)."""

from __future__ import annotations

import torch
from torch import Tensor

from captum_unified.rules.base import Rule

__all__ = ["EpsilonLRPRule", "epsilon_multiplier"]

_PRODUCTS = ("uniform", "gate", "gradient")
_NORMS = ("constant", "decompose", "gradient")


class EpsilonLRPRule(Rule):
    r"""epsilon-LRP as a modified gradient:
    :math:`g(z) = f(z) / (z + \epsilon\,\mathrm{sign}(z))`, :math:`\mathrm{sign}(0) = 1`.

    For nonlinearities with :math:`f(0) = 0` (ReLU, Tanh) :math:`g` is the
    average slope of :math:`f` on :math:`[0, z]`. Where :math:`f(0) \ne 0`
    (Sigmoid, Softplus, exp) it grows like :math:`1/\epsilon` near
    :math:`z = 0` (Ancona §4, point 5) and the backend warns.

    Beyond element-wise functions, the published conservative
    choices are offered:

    * ``products="uniform"`` (default): each factor of a product of two
      input-dependent values gets half of the ordinary gradient (AttnLRP,
      Achtibat et al., ICML 2024);
    * ``products="gate"``: gates (sigmoid outputs, softmax attention weights)
      are constant weights and the signal gets all the relevance (Arras et
      al. 2017; Ali et al., ICML 2022); f(0) warnings for gate functions are
      then dropped, since nothing flows into them;
    * ``products="gradient"``: the ordinary product rule (Ancona et al.'s
      original modified chain rule);
    * ``norm="constant"`` (default): LayerNorm's scale :math:`1/\sigma` is a
      constant (Ali et al. 2022; AttnLRP); ``"decompose"`` or ``"gradient"``.

    Softmax keeps its ordinary gradient, which is AttnLRP's softmax rule in
    modified-gradient form; max-pooling keeps its gradient (winner takes all,
    as Captum's ``LRP``).

    Args:
        epsilon (float): the stabiliser, > 0. Default: 1e-9 (Captum's LRP default).
        products (str): ``"uniform"``, ``"gate"`` or ``"gradient"``.
        norm (str): ``"constant"``, ``"decompose"`` or ``"gradient"``.
    """

    applies_to_output = True
    maxima = "gradient"
    softmax = "gradient"

    def __init__(self, epsilon: float = 1e-9, products: str = "uniform", norm: str = "constant") -> None:
        if not epsilon > 0:
            raise ValueError(f"epsilon must be > 0, got {epsilon!r}.")
        if products not in _PRODUCTS:
            raise ValueError(f"products must be one of {_PRODUCTS}, got {products!r}.")
        if norm not in _NORMS:
            raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}.")
        self.epsilon = float(epsilon)
        self.products = products
        self.norm = norm

    def check(self, op, f, z):
        if self.products == "gate" and op.name in ("sigmoid", "hardsigmoid"):
            return None
        try:
            f0 = f(torch.zeros((), dtype=z.dtype, device=z.device).expand_as(z))
        except Exception:  # a function that needs other shapes: no check
            return None
        worst = float(f0.abs().max()) if f0.numel() else 0.0
        if worst > 1e-12:
            return (
                f"epsilon-LRP through {op.name}, where f(0) = {float(f0.reshape(-1)[0]):.4g} != 0: "
                "g(z) = f(z)/z grows like 1/epsilon near z = 0, so relevance concentrates on a few "
                "features and is not a discrete gradient (Ancona et al. 2018, Sec. 4 point 5). "
                "Prefer DeepLiftRescale or IntegratedGradients for this model, or a larger epsilon."
            )
        return None

    def multiplier(self, f, z, out, ref_z=None, ref_out=None, op=None) -> Tensor:
        return epsilon_multiplier(z, out, self.epsilon)


def epsilon_multiplier(z: Tensor, out: Tensor, epsilon: float) -> Tensor:
    r""":math:`f(z) / (z + \epsilon\,\mathrm{sign}(z))` with :math:`\mathrm{sign}(0) = 1`,
    in one buffer and with floating-point ops only (boolean masks are slow on
    the CPU): ``sign(sign(z) + 1/2)`` is the sign with ``sign(0) = 1``."""
    denom = torch.sign(z).add_(0.5).sign_().mul_(epsilon).add_(z)
    return torch.div(out, denom, out=denom)
