r"""Rules: what replaces an op's derivative in the modified chain rule.

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
     - products
     - method
   * - :class:`GradientRule`
     - :math:`f'(z)`
     - ordinary
     - Gradient*Input, Integrated Gradients
   * - :class:`EpsilonLRPRule`
     - :math:`f(z) / (z + \epsilon\,\mathrm{sign}(z))`
     - uniform / gate / ordinary
     - epsilon-LRP
   * - :class:`RescaleRule`
     - :math:`(f(z) - f(\bar z)) / (z - \bar z)`
     - Shapley split / ordinary
     - DeepLIFT (Rescale)

Writing your own rule: subclass :class:`Rule` and implement :meth:`Rule.multiplier`
(and, for products, :meth:`Rule.product_factors` or a ``products`` policy name).
The multiplier always receives the op it is applied to (``op``, an
:class:`OpCall`). :func:`derivative` gives :math:`f'(z)` for any ``f``::

    class ClippedGradient(Rule):
        def multiplier(self, f, z, out, ref_z=None, ref_out=None, op=None):
            return derivative(f, z).clamp(min=0)

A rule's behaviour is its methods and its typed fields (``needs_reference``,
``eps``, ``products``, ``maxima``, ``norm``, ``softmax``); the backend and the
fused kernels of :mod:`captum_unified.ops` read nothing else, so a new rule
gets every fast path the shipped ones get.

Adding a shipped rule: its own file in this package and one line in
:data:`RULES`; the contract tests (``tests/rules``) and the docs' member list
are derived from :data:`RULES`.
"""

from collections.abc import Mapping
from types import MappingProxyType

from captum_unified.rules.base import OpCall, Rule, derivative
from captum_unified.rules.epsilon import EpsilonLRPRule
from captum_unified.rules.gradient import GradientRule
from captum_unified.rules.products import PRODUCT_POLICIES
from captum_unified.rules.rescale import RescaleRule

#: The shipped rules by name (read-only; a new rule is its own file plus one line here).
RULES: Mapping[str, type[Rule]] = MappingProxyType(
    {
        "gradient": GradientRule,
        "epsilon": EpsilonLRPRule,
        "rescale": RescaleRule,
    }
)

__all__ = ["Rule", "OpCall", "derivative", *(cls.__name__ for cls in RULES.values()), "RULES", "PRODUCT_POLICIES"]
