r"""Product policies: how a product of two input-dependent values backpropagates.

For a bilinear op :math:`y = a \star b` (``a * b``, ``a @ b``, ``einsum``), a
policy returns the values ``(a_, b_)`` at which the two partial derivatives are
taken: ``a`` receives :math:`\partial(a \star b_)/\partial a`, ``b`` receives
:math:`\partial(a_ \star b)/\partial b`.

.. list-table::
   :header-rows: 1

   * - policy
     - ``(a_, b_)``
     - source
   * - ``"gradient"``
     - :math:`(a, b)`
     - the ordinary product rule; Ancona et al.'s modified chain rule (2018, §3.1)
   * - ``"shapley"``
     - :math:`(\tfrac12(a+\bar a), \tfrac12(b+\bar b))`
     - two-player Shapley split of :math:`ab - \bar a\bar b`: exactly complete
       (shap's DeepExplainer uses the same split for multiplications)
   * - ``"uniform"``
     - :math:`(\tfrac12 a, \tfrac12 b)`
     - each factor gets half (AttnLRP, Achtibat et al., ICML 2024)
   * - ``"gate"``
     - the gate factor gets nothing, the signal the ordinary gradient
     - Arras et al. 2017 (LSTM gates); Ali et al. 2022 (attention weights as
       constants). Gates are outputs of sigmoid-like functions or softmax;
       without exactly one gate the uniform rule applies

Check of the Shapley split: :math:`\tfrac12(b+\bar b)(a-\bar a) +
\tfrac12(a+\bar a)(b-\bar b) = ab - \bar a\bar b`. A self-product (``a * a``)
gets :math:`a + \bar a`, the Rescale multiplier of :math:`z^2`.

Adding a policy: a function ``(op, a, b, ref_a, ref_b) -> (a_, b_)`` and one
line in :data:`PRODUCT_POLICIES`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from torch import Tensor

from captum_unified.rules.opcall import OpCall

Policy = Callable[[OpCall, Tensor, Tensor, Tensor | None, Tensor | None], tuple[Tensor | None, Tensor | None]]


def gradient_products(op, a, b, ref_a=None, ref_b=None):
    """The ordinary product rule."""
    return a, b


def shapley_products(op, a, b, ref_a=None, ref_b=None):
    """The two-player Shapley split (needs the reference pass)."""
    if ref_a is None or ref_b is None:
        raise RuntimeError("The 'shapley' product policy needs the baseline pass (a rule with needs_reference).")
    return 0.5 * (a + ref_a), 0.5 * (b + ref_b)


def uniform_products(op, a, b, ref_a=None, ref_b=None):
    """Half of the ordinary gradient to each factor (AttnLRP)."""
    return 0.5 * a, 0.5 * b


def gate_products(op, a, b, ref_a=None, ref_b=None):
    """Gates are constant weights: all of the product's share to the signal."""
    gates = tuple(op.gates) + (False, False)
    if gates[0] and not gates[1]:
        return a, None
    if gates[1] and not gates[0]:
        return None, b
    return uniform_products(op, a, b, ref_a, ref_b)


#: name -> policy (read-only). The rules' ``products`` attribute is one of
#: these keys; a rule with its own policy overrides ``Rule.product_factors``.
PRODUCT_POLICIES: Mapping[str, Policy] = MappingProxyType(
    {
        "gradient": gradient_products,
        "shapley": shapley_products,
        "uniform": uniform_products,
        "gate": gate_products,
    }
)

__all__ = ["PRODUCT_POLICIES", *(policy.__name__ for policy in PRODUCT_POLICIES.values())]
