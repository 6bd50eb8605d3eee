r"""Rules: what replaces a nonlinearity's derivative in the modified chain rule.

Ancona et al. (ICLR 2018, §3, Eq. 5) show that epsilon-LRP and DeepLIFT (Rescale)
are the gradient of the network with each element-wise nonlinearity's derivative
:math:`f'(z)` replaced by a function :math:`g`:

.. math::

    \frac{\partial^g S_c(x)}{\partial x_i} = \sum_{p \in P_{ic}}
        \Big(\prod w_p \prod g(z)_p\Big)

.. list-table::
   :header-rows: 1

   * - rule
     - :math:`g(z)`
     - method
   * - :class:`GradientRule`
     - :math:`f'(z)`
     - Gradient*Input, Integrated Gradients
   * - :class:`EpsilonRule`
     - :math:`f(z) / (z + \epsilon\,\mathrm{sign}(z))`
     - epsilon-LRP
   * - :class:`RescaleRule`
     - :math:`(f(z) - f(\bar z)) / (z - \bar z)`
     - DeepLIFT (Rescale)

A rule only sees element-wise nonlinearities. Linear maps, pooling by averaging,
max-pooling and products keep their ordinary gradient (SPEC §1).

Writing your own rule: subclass :class:`Rule` and implement :meth:`Rule.multiplier`.
It receives the nonlinearity ``f`` (element-wise, with the call's extra arguments
bound), the pre-activation ``z`` and the output ``out = f(z)``; a rule that sets
``needs_reference = True`` also gets ``ref_z``/``ref_out`` from the baseline pass.
:func:`derivative` gives :math:`f'(z)` for any ``f``::

    class ClippedGradient(Rule):
        def multiplier(self, f, z, out, ref_z=None, ref_out=None):
            return derivative(f, z).clamp(min=0)
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

__all__ = ["Rule", "GradientRule", "EpsilonRule", "RescaleRule", "derivative"]


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


class Rule:
    r"""Base class of all rules.

    Attributes:
        needs_reference (bool): ``True`` if :meth:`multiplier` uses the
            pre-activation of the same nonlinearity when the baseline is fed
            (:math:`\bar z`); the backend then runs one extra forward pass on the
            baseline (without gradients) and records it.
        modifies_gradient (bool): ``False`` only for :class:`GradientRule`; lets
            the backend skip interception altogether.
        applies_to_output (bool): also apply the rule at the explained output,
            treated as an identity nonlinearity :math:`f(z) = z` (epsilon-LRP's
            Eq. 2 stabilises the last linear layer too).
        product_warning (str, optional): if set, the backend tracks which values
            depend on the inputs and warns with this message (``{op}`` is filled
            in) when two of them are multiplied.
    """

    needs_reference: bool = False
    modifies_gradient: bool = True
    applies_to_output: bool = False
    product_warning: Optional[str] = None

    def check(self, name: str, f: Callable[[Tensor], Tensor]) -> Optional[str]:
        """Return a warning message if this rule should not be trusted on the
        nonlinearity ``name`` (``f`` with its arguments bound), else ``None``.
        Called once per nonlinearity kind per attribution call."""
        return None

    def multiplier(
        self,
        f: Callable[[Tensor], Tensor],
        z: Tensor,
        out: Tensor,
        ref_z: Optional[Tensor] = None,
        ref_out: Optional[Tensor] = None,
    ) -> Tensor:
        r"""Return :math:`g(z)`, same shape as ``z`` (or broadcastable to it).

        Args:
            f (Callable): the nonlinearity, element-wise, extra arguments bound.
            z (Tensor): its input (pre-activation) for the explained inputs.
            out (Tensor): ``f(z)``.
            ref_z (Tensor, optional): its input when the baselines are fed
                (only if ``needs_reference``); batch 1 when the baseline is shared.
            ref_out (Tensor, optional): ``f(ref_z)``.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class GradientRule(Rule):
    r"""The ordinary derivative :math:`g(z) = f'(z)` (plain backpropagation)."""

    modifies_gradient = False

    def multiplier(self, f, z, out, ref_z=None, ref_out=None):
        return derivative(f, z)


def _sign_nonzero(z: Tensor) -> Tensor:
    return torch.where(z >= 0, torch.ones_like(z), -torch.ones_like(z))


class EpsilonRule(Rule):
    r"""epsilon-LRP (Bach et al. 2015; Ancona et al. Prop. 1):
    :math:`g(z) = f(z) / (z + \epsilon\,\mathrm{sign}(z))`, with
    :math:`\mathrm{sign}(0) = 1`.

    For nonlinearities with :math:`f(0) = 0` (ReLU, Tanh) this is the average
    slope of :math:`f` on :math:`[0, z]`. Where :math:`f(0) \ne 0` (Sigmoid,
    Softplus) it grows like :math:`1/\epsilon` near :math:`z = 0` (Ancona §4,
    point 5), and the backend warns.

    Args:
        epsilon (float): the stabiliser, > 0. Default: 1e-9 (Captum's LRP default).
    """

    applies_to_output = True

    def __init__(self, epsilon: float = 1e-9) -> None:
        if not epsilon > 0:
            raise ValueError(f"epsilon must be > 0, got {epsilon!r}.")
        self.epsilon = float(epsilon)

    def check(self, name, f):
        z0 = torch.zeros(1)
        try:
            f0 = float(f(z0))
        except Exception:  # a nonlinearity that needs other shapes: no check
            return None
        if abs(f0) > 1e-12:
            return (
                f"epsilon-LRP through {name}, where f(0) = {f0:.4g} != 0: g(z) = f(z)/z "
                "grows like 1/epsilon near z = 0, so relevance concentrates on a few "
                "features and is not a discrete gradient (Ancona et al. 2018, Sec. 4 "
                "point 5). Prefer DeepLiftRescale or IntegratedGradients for this model, "
                "or a larger epsilon."
            )
        return None

    def multiplier(self, f, z, out, ref_z=None, ref_out=None):
        return out / (z + self.epsilon * _sign_nonzero(z))


class RescaleRule(Rule):
    r"""DeepLIFT's Rescale rule (Shrikumar et al. 2017; Ancona et al. Prop. 2):
    :math:`g(z) = (f(z) - f(\bar z)) / (z - \bar z)`, and :math:`f'(z)` where
    :math:`|z - \bar z| \le` ``eps`` (the limit of the quotient).

    :math:`\bar z` is the pre-activation the same nonlinearity sees when the
    baseline is fed; the backend records it in a forward pass on the baseline.

    Args:
        eps (float): below this :math:`|z - \bar z|` the derivative is used.
            Default: 1e-10 (the threshold of Captum's ``DeepLift``).
    """

    needs_reference = True
    product_warning = (
        "DeepLIFT (Rescale) through a product of two input-dependent values "
        "(torch op '{op}', e.g. gates or attention): the modified chain rule keeps "
        "the product rule there, so attributions no longer sum to S(x) - S(baseline) "
        "(Ancona et al. 2018, Sec. 3.1). Use IntegratedGradients, which stays "
        "complete, or check return_convergence_delta=True."
    )

    def __init__(self, eps: float = 1e-10) -> None:
        self.eps = float(eps)

    def multiplier(self, f, z, out, ref_z=None, ref_out=None):
        if ref_z is None or ref_out is None:
            raise RuntimeError("RescaleRule needs the reference pass (ref_z, ref_out).")
        dz = z - ref_z
        small = dz.abs() <= self.eps
        quotient = (out - ref_out) / torch.where(small, torch.ones_like(dz), dz)
        if bool(small.any()):
            return torch.where(small, derivative(f, z), quotient)
        return quotient
