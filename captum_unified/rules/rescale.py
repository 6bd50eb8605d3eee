r"""DeepLIFT's Rescale rule (Shrikumar et al. 2017; Ancona et al. 2018, Proposition 2)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from captum_unified.rules.base import Rule
from captum_unified.rules.logsumexp import lse_simplex
from captum_unified.rules.opcall import OpCall

__all__ = ["RescaleRule", "rescale_multiplier"]

_PRODUCTS = ("shapley", "gradient")
_NORMS = ("secant", "integrated", "decompose", "gradient")
_SOFTMAX = ("logsumexp", "shift", "gradient")


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
    those, so the attributions sum *exactly* to
    :math:`S_c(x) - S_c(\bar x)` on any network of linear ops, element-wise
    functions, products, quotients, max, normalisations and softmax.

    Exact is not enough: the splits must stay bounded in floating point when
    input and baseline are far apart (trained attention, baselines far from
    the input, a norm whose baseline row has zero variance). Softmax and
    log-softmax are therefore written as :math:`\exp(z - \mathrm{LSE}(z))`
    with a multiplier in the simplex at ``LSE`` (``softmax="logsumexp"``,
    :func:`~captum_unified.rules.logsumexp.lse_simplex`) and normalisations
    use the secant norm policy (``norm="secant"``,
    :func:`~captum_unified.rules.norms.secant_norm`): every multiplier is
    bounded by the op's own derivatives, whatever the gap between the passes.

    ``products="gradient"`` is Ancona et al.'s original modified chain rule:
    products keep the ordinary product rule and DeepLIFT loses completeness
    through them (§3.1, finding 4); the backend then warns once per call.

    Args:
        eps (float): below this :math:`|z - \bar z|` the derivative is used.
            Default: 1e-10 (the threshold of Captum's ``DeepLift``).
        products (str): ``"shapley"`` (default) or ``"gradient"``.
        maxima (str): ``"deeplift"`` (default; complete, symmetric in the
            candidates, equal to Captum's max-pooling rule), ``"tree"``
            (complete; :math:`b + \mathrm{relu}(a - b)`, depends on
            the order of the candidates) or ``"gradient"`` (max-pooling keeps
            its gradient, Ancona et al. Appendix A.2; not complete).
        norm (str): ``"secant"`` (default; exact and bounded),
            ``"integrated"`` (the op's path-averaged Jacobian: exact, bounded
            per op, but compounding over norms whose baselines are all at the
            singular point), ``"decompose"`` (the Shapley split of the
            decomposition: exact in real arithmetic, unbounded) or
            ``"gradient"`` (not complete).
        softmax (str): ``"logsumexp"`` (default; exact and bounded),
            ``"shift"`` (the Shapley split of ``exp(z - c) / sum exp(z - c)``:
            exact in real arithmetic, unbounded) or ``"gradient"`` (not complete).
        softmax_nodes (int): Gauss-Legendre nodes of the path-averaged
            softmax inside :func:`~captum_unified.rules.logsumexp.lse_simplex`
            (default 4).
    """

    needs_reference = True
    norm = "secant"
    softmax = "logsumexp"

    def __init__(
        self,
        eps: float = 1e-10,
        products: str = "shapley",
        maxima: str = "deeplift",
        norm: str = "secant",
        softmax: str = "logsumexp",
        softmax_nodes: int = 4,
    ) -> None:
        if products not in _PRODUCTS:
            raise ValueError(f"products must be one of {_PRODUCTS}, got {products!r}.")
        if maxima not in ("deeplift", "tree", "gradient"):
            raise ValueError(f"maxima must be 'deeplift', 'tree' or 'gradient', got {maxima!r}.")
        if norm not in _NORMS:
            raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}.")
        if softmax not in _SOFTMAX:
            raise ValueError(f"softmax must be one of {_SOFTMAX}, got {softmax!r}.")
        if int(softmax_nodes) < 1:
            raise ValueError(f"softmax_nodes must be >= 1, got {softmax_nodes!r}.")
        self.eps = float(eps)
        self.products = products
        self.maxima = maxima
        self.norm = norm
        self.softmax = softmax
        self.softmax_nodes = int(softmax_nodes)

    def lse_weights(self, op: OpCall, z: Tensor, ref_z: Tensor | None, dim: int) -> Tensor:
        if ref_z is None:
            raise RuntimeError("RescaleRule needs the reference pass (ref_z).")
        return lse_simplex(z, ref_z, dim, self.softmax_nodes, lse=op.lse, wide=op.wide)

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
        return rescale_multiplier(z, out, ref_z, ref_out, self.eps, lambda: (op or OpCall("")).fprime(f, z, out))


def _minus(a: Tensor, b: Tensor) -> Tensor:
    """``a - b``; a batch-1 ``b`` (a shared baseline) is broadcast over the
    flattened batch (the same numbers; broadcasting one leading dimension of
    a 4-d tensor is ~10x slower on the CPU than of a 2-d one)."""
    if (
        b.dim() == a.dim() > 2
        and b.shape[0] == 1 != a.shape[0]
        and b.shape[1:] == a.shape[1:]
        and a.is_contiguous()
        and b.is_contiguous()
    ):
        return torch.sub(a.reshape(a.shape[0], -1), b.reshape(1, -1)).view(a.shape)
    return torch.sub(a, b)


def rescale_multiplier(
    z: Tensor, out: Tensor, ref_z: Tensor, ref_out: Tensor, eps: float, fprime: Callable[[], Tensor]
) -> Tensor:
    r""":math:`(f(z) - f(\bar z)) / (z - \bar z)`, and ``fprime()`` where
    :math:`|z - \bar z| \le` ``eps`` or is NaN (both passes at the same
    infinity, as masked attention scores).

    Written with floating-point ops only, in a few in-place buffers: on the CPU
    boolean masks (``>``, ``where``, ``all``) cost 5-20x a float kernel of the
    same size, and fewer temporaries mean fewer page faults.
    """
    # two buffers: ``g`` (the quotient, returned) and ``dz``, which becomes the
    # mask in place; new allocations are what costs on the CPU (page faults)
    dz = _minus(z, ref_z)
    g = _minus(out, ref_out).div_(dz)  # inf / NaN where dz ~ 0: replaced below
    # the common case, no |dz| <= eps and no NaN (amin propagates NaN), costs
    # one reduction; the mask below only where some element needs f'(z)
    if dz.numel() == 0 or float(dz.abs_().amin()) > eps:
        return g
    w = dz.sub_(eps).clamp_min_(0).sign_().nan_to_num_(0.0)  # 1 where the secant is used, else 0
    d = fprime().nan_to_num(0.0)  # finite, so that d * 0 = 0
    g.nan_to_num_(0.0, 0.0, 0.0).mul_(w)
    return g.addcmul_(d, w.neg_().add_(1.0))
