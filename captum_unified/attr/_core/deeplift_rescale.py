r"""DeepLIFT (Rescale) as a modified gradient (Ancona et al. Proposition 2)."""

from __future__ import annotations

from collections.abc import Callable

from captum_unified.attr._core.modified_gradient import ModifiedGradient
from captum_unified.ops import OpTable
from captum_unified.rules import RescaleRule

__all__ = ["DeepLiftRescale"]


class DeepLiftRescale(ModifiedGradient):
    r"""DeepLIFT with the Rescale rule (Shrikumar et al. 2017) computed as the
    modified gradient with :math:`g(z) = (f(z) - f(\bar z)) / (z - \bar z)`
    (Ancona et al., Proposition 2):

    .. math::

        R_i^c(x) = (x_i - \bar x_i) \cdot \frac{\partial^{g} S_c(x)}{\partial x_i}

    :math:`\bar z` is each op's input when the baseline is fed, taken from one
    forward pass on the baseline without gradients (on a batch of one when the
    baseline is shared by all samples).

    Beyond element-wise functions: products of two input-dependent
    values (LSTM gates, attention) use the two-player Shapley split, max and
    max-pooling use DeepLIFT's max rule (as Captum's ``DeepLift``), softmax and
    log-softmax are :math:`\exp(z - \mathrm{LSE}(z))` with a multiplier in the
    simplex at ``LSE``, normalisations (``F.layer_norm`` and the like, also
    written by hand) use the secant norm policy, and ``nn.LSTM`` / ``GRU`` /
    ``RNN`` and ``scaled_dot_product_attention`` are decomposed into those. The
    attributions then sum *exactly* to :math:`S_c(x) - S_c(\bar x)`
    (completeness) on CNNs with max-pooling, residual networks, recurrent
    networks and transformers, and every multiplier stays bounded by the op's
    own derivatives whatever the distance between input and baseline (trained
    attention, baselines far from the input, norms whose baseline row has zero
    variance): see :class:`~captum_unified.rules.RescaleRule`.
    ``products="gradient"`` gives Ancona et al.'s original rule (ordinary
    product rule; not complete through products, with a warning).

    Same results as Captum's :class:`~captum.attr.DeepLift` (Rescale) on the
    networks it supports (including max-pooling); unlike it, this also handles
    functional activations (``torch.tanh``, ``x.sigmoid()``), a module object
    used at several places and fused recurrent / attention ops.
    """

    def __init__(
        self,
        forward_func: Callable,
        multiply_by_inputs: bool = True,
        eps: float = 1e-10,
        products: str = "shapley",
        maxima: str = "deeplift",
        op_table: OpTable | None = None,
        norm: str = "secant",
        softmax: str = "logsumexp",
    ) -> None:
        r"""
        Args:
            forward_func (Callable): the model or any function built from torch ops.
            multiply_by_inputs (bool, optional): if False return the multipliers
                :math:`\partial^g S_c / \partial x` only. Default: True.
            eps (float, optional): below this :math:`|z - \bar z|` the rule uses
                :math:`f'(z)`. Default: 1e-10.
            products (str, optional): ``"shapley"`` (default, complete) or
                ``"gradient"`` (Ancona et al.'s original).
            maxima (str, optional): ``"deeplift"`` (default: DeepLIFT's max rule,
                complete, as Captum), ``"tree"`` (complete) or ``"gradient"``
                (max-pooling keeps its gradient).
            op_table (OpTable, optional): how the backend classifies ops.
            norm (str, optional): ``"secant"`` (default: exact and bounded),
                ``"integrated"`` (the op's path-averaged Jacobian), ``"decompose"``
                (the Shapley split of the decomposition: unbounded where a
                baseline row has variance about 0) or ``"gradient"``.
            softmax (str, optional): ``"logsumexp"`` (default: exact and
                bounded), ``"shift"`` (the Shapley split of ``exp(z - c) *
                reciprocal(sum exp(z - c))``: unbounded once the passes' logits
                are far apart) or ``"gradient"``.
        """
        super().__init__(
            forward_func,
            RescaleRule(eps, products=products, maxima=maxima, norm=norm, softmax=softmax),
            multiply_by_inputs=multiply_by_inputs,
            op_table=op_table,
        )
