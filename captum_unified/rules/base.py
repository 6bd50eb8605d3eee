r"""The :class:`Rule` base class: what replaces an op's derivative.

A rule decides, for one attribution call,

* what replaces the derivative :math:`f'(z)` of each element-wise function
  (:meth:`Rule.multiplier`, Ancona et al. 2018, Eq. 5);
* how a product of two input-dependent values is differentiated
  (:meth:`Rule.product_factors`, the *product policy*);
* what max-pooling / max, normalisation and softmax backpropagate (the
  ``maxima``, ``norm`` and ``softmax`` fields; :meth:`Rule.norm_backward`,
  the *norm policy*, and :meth:`Rule.lse_weights`, the multiplier of
  ``logsumexp`` inside softmax and log-softmax).

Every other op keeps its ordinary gradient (linear ops) or is decomposed into
these (composite ops); see :mod:`captum_unified.ops`. The backend calls a
rule only through these methods and fields, so the fused kernels of
:mod:`captum_unified.ops.fused` serve every rule.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import Tensor

from captum_unified.rules.logsumexp import lse_gradient
from captum_unified.rules.norms import NORM_POLICIES, Backward, NormFamily
from captum_unified.rules.opcall import OpCall, derivative
from captum_unified.rules.products import PRODUCT_POLICIES

__all__ = ["Rule", "OpCall", "derivative"]


def _takes_op(method: Callable) -> bool:
    try:
        params = inspect.signature(method).parameters
    except (TypeError, ValueError):  # no signature to read (a C function): trust it
        return True
    return "op" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


class Rule:
    r"""Base class of all rules.

    Subclass it and implement :meth:`multiplier` to change what element-wise
    functions backpropagate; override :meth:`product_factors` (or set
    ``products`` to a registered policy name) to change products.

    Attributes:
        needs_reference (bool): :meth:`multiplier` / :meth:`product_factors`
            use the values the same op sees when the baseline is fed; the
            backend then runs one extra forward pass on the baseline (without
            gradients) and pairs its ops with the input pass by call order.
        modifies_gradient (bool): ``False`` only for
            :class:`~captum_unified.rules.GradientRule`; lets the backend skip
            interception altogether.
        applies_to_output (bool): also apply the rule at the explained output
            as an identity "nonlinearity" :math:`f(z) = z` (epsilon-LRP
            stabilises the last linear layer), unless the output is itself the
            result of an element-wise function (then the rule has been applied
            there already).
        eps (float): differences :math:`|z - \bar z|` at or below ``eps``
            count as zero where a rule divides by them (Rescale's secant,
            DeepLIFT's max rule). Default 1e-10 (Captum's ``DeepLift``).
        products (str): the product policy, a key of
            :data:`captum_unified.rules.products.PRODUCT_POLICIES`
            (``"gradient"``, ``"shapley"``, ``"uniform"``, ``"gate"``).
        maxima (str): max and max-pooling: ``"deeplift"`` (DeepLIFT's max
            rule; needs the reference pass), ``"tree"`` (decomposed into
            :math:`b + \mathrm{relu}(a - b)`) or ``"gradient"``.
        norm (str): LayerNorm / RMSNorm / GroupNorm / batch statistics and
            the same written by hand: a key of
            :data:`~captum_unified.rules.norms.NORM_POLICIES` (``"constant"``:
            the scale :math:`1/\sigma` held constant; ``"secant"``,
            ``"integrated"``: exact and bounded), ``"decompose"`` (the Shapley
            split of ``c * rsqrt(mean(c * c) + eps)``) or ``"gradient"``.
        softmax (str): softmax / log-softmax / logsumexp: ``"logsumexp"``
            (:math:`\exp(z - \mathrm{LSE}(z))` with :meth:`lse_weights` at
            ``LSE`` and the rule's multiplier at ``exp``), ``"shift"`` (the
            Shapley split of ``exp(z - c) * reciprocal(sum exp(z - c))`` with a
            shift ``c`` shared by both passes) or ``"gradient"``.

    A subclass's :meth:`multiplier` must accept the ``op`` keyword argument
    (checked when the class is created).
    """

    needs_reference: bool = False
    modifies_gradient: bool = True
    applies_to_output: bool = False
    eps: float = 1e-10
    products: str = "gradient"
    maxima: str = "gradient"
    norm: str = "gradient"
    softmax: str = "gradient"

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        method = cls.__dict__.get("multiplier")
        if method is not None and not _takes_op(method):
            raise TypeError(
                f"{cls.__qualname__}.multiplier{inspect.signature(method)} does not accept the op it is applied "
                "to: the backend always passes it as op=OpCall(...). Add `op=None` as the last parameter: "
                "def multiplier(self, f, z, out, ref_z=None, ref_out=None, op=None)."
            )

    def check(self, op: OpCall, f: Callable[[Tensor], Tensor], z: Tensor) -> str | None:
        """Return a warning message if this rule should not be trusted on the
        element-wise op ``op`` (``f`` with its arguments bound, ``z`` its
        input), else ``None``. Called once per op name per attribution call."""
        return None

    def multiplier(
        self,
        f: Callable[[Tensor], Tensor],
        z: Tensor,
        out: Tensor,
        ref_z: Tensor | None = None,
        ref_out: Tensor | None = None,
        op: OpCall | None = None,
    ) -> Tensor:
        r"""Return :math:`g(z)`, same shape as ``z`` (or broadcastable to it).

        Args:
            f (Callable): the element-wise function, extra arguments bound.
            z (Tensor): its input for the explained inputs.
            out (Tensor): ``f(z)``.
            ref_z (Tensor, optional): its input when the baselines are fed
                (only if ``needs_reference``); batch 1 when the baseline is shared.
            ref_out (Tensor, optional): ``f(ref_z)``.
            op (OpCall, optional): which op this is (its name and closed-form
                derivative). The backend always passes it; it is optional only
                for calling a rule by hand.
        """
        raise NotImplementedError

    def product_factors(
        self,
        op: OpCall,
        a: Tensor,
        b: Tensor,
        ref_a: Tensor | None = None,
        ref_b: Tensor | None = None,
    ) -> tuple[Tensor | None, Tensor | None]:
        r"""The product policy for a bilinear op :math:`y = a \star b` of two
        input-dependent factors (``mul``, ``matmul``, ``einsum``, ...).

        Returns ``(a_, b_)``: the backward pass uses :math:`\partial(a \star
        b_)/\partial a` for ``a`` and :math:`\partial(a_ \star b)/\partial b`
        for ``b``. The ordinary product rule is ``(a, b)``; ``None`` means
        that factor gets no gradient. The default looks up ``self.products``
        in :data:`~captum_unified.rules.products.PRODUCT_POLICIES`.
        """
        try:
            policy = PRODUCT_POLICIES[self.products]
        except KeyError:
            raise ValueError(
                f"Unknown product policy {self.products!r}; choose one of {sorted(PRODUCT_POLICIES)}."
            ) from None
        return policy(op, a, b, ref_a, ref_b)

    def lse_weights(self, op: OpCall, z: Tensor, ref_z: Tensor | None, dim: int) -> Tensor:
        r"""The multiplier ``m`` of :math:`\mathrm{LSE}(z)` along ``dim`` (same
        shape as ``z``): the backward pass of ``LSE`` is :math:`m\,g`, that of
        log-softmax :math:`g - m \sum g`. Default: the ordinary gradient,
        ``softmax(z)`` (:mod:`captum_unified.rules.logsumexp`).

        Args:
            op (OpCall): the op (``"softmax"``, ``"log_softmax"``, ``"logsumexp"``).
            z (Tensor): its logits in the input pass.
            ref_z (Tensor, optional): the logits in the baseline pass (only if
                ``needs_reference``).
            dim (int): the reduced dimension.
        """
        return lse_gradient(z, dim)

    def norm_backward(
        self,
        op: OpCall,
        c: Tensor,
        ref_c: Tensor | None,
        y: Tensor,
        ref_y: Tensor | None,
        dims: tuple[int, ...],
        family: NormFamily,
    ) -> Backward:
        r"""The norm policy for :math:`y = c\,h(q(c))` over ``dims``: a map
        :math:`g \mapsto M^\top g` (see :mod:`captum_unified.rules.norms`).
        The default looks up ``self.norm`` in
        :data:`~captum_unified.rules.norms.NORM_POLICIES`.

        Args:
            op (OpCall): the normalisation (``"layer_norm"``, ``"rms_norm"``, ...).
            c (Tensor): its (centred) input in the input pass.
            ref_c (Tensor, optional): the same in the baseline pass (only if
                ``needs_reference``; batch 1 when the baseline is shared).
            y (Tensor): :math:`c\,h(q(c))` as the model computed it.
            ref_y (Tensor, optional): the same in the baseline pass.
            dims (tuple of int): the normalised dimensions.
            family: the scale :math:`h` (``h(q)``, ``dh(q)``, ``floor``).
        """
        try:
            policy = NORM_POLICIES[self.norm]
        except KeyError:
            raise ValueError(f"Unknown norm policy {self.norm!r}; choose one of {sorted(NORM_POLICIES)}.") from None
        if policy is not NORM_POLICIES["constant"] and (ref_c is None or ref_y is None):
            raise RuntimeError(
                f"The {self.norm!r} norm policy needs the baseline pass (a rule with needs_reference); "
                "use norm='constant' for a rule without one."
            )
        return policy(c, ref_c, y, ref_y, dims, family)

    def product_warning(self, op: OpCall) -> str | None:
        """A warning for products met in a call, or ``None`` (default)."""
        return None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"
