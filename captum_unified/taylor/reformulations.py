r"""Taylor reformulations of attribution methods (Deng et al. 2021, Theorems 1–5)
and the percentage-change metric of their Table 3.

Each function returns the attribution a method is *predicted* to give by the
second-order Taylor terms (Captum's signs; :math:`\delta = x - \bar x`,
expansion at :math:`x`):

=====================  ============================================================
method                 second-order reformulation of :math:`a_i`
=====================  ============================================================
Gradient*Input         :math:`g_i x_i` (first-order term, baseline 0; Thm. 1)
Occlusion-1            :math:`g_i\delta_i - \tfrac12 H_{ii}\delta_i^2` (Thm. 2)
Occlusion-patch        :math:`\sum_{j\in p} g_j\delta_j - \tfrac12\sum_{j,k\in p} H_{jk}\delta_j\delta_k`
                       for every :math:`i \in p` (Thm. 3)
DeepLIFT (Rescale)     per layer: first-order term + the layer's remainder shared
                       in proportion to :math:`z_{ji}-\bar z_{ji}` (Thm. 4)
Integrated Gradients   :math:`g_i\delta_i - \tfrac12\delta_i(H\delta)_i` (Thm. 5)
Expected Gradients     the IG reformulation averaged over the baselines (Cor.)
=====================  ============================================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from captum_unified._utils.common import select_target
from captum_unified._utils.state import preserve_model_state
from captum_unified.feature_groups import FeatureGroups
from captum_unified.metrics.percentage_change import percentage_change_per_sample
from captum_unified.taylor.attribution import TaylorAttribution
from captum_unified.taylor.interactions import _interactions
from captum_unified.taylor.terms import _flat, _split, format_call, gradient_and_hvp, taylor_decomposition

__all__ = [
    "gradient_x_input_reformulation",
    "occlusion1_reformulation",
    "occlusion_patch_reformulation",
    "deeplift_reformulation",
    "deeplift_layer_reformulation",
    "integrated_gradients_reformulation",
    "expected_gradients_reformulation",
    "percentage_change",
]

Attr = Tensor | tuple[Tensor, ...]


def gradient_x_input_reformulation(
    forward_func: Callable, inputs: Attr, target: Any = None, additional_forward_args: Any = None
) -> Attr:
    r"""Theorem 1: Gradient*Input is the first-order Taylor attribution with
    baseline :math:`\bar x = 0`, :math:`a_i = g_i (x_i - 0)`.

    Args:
        forward_func (Callable): the model.
        inputs (Tensor or tuple[Tensor, ...]): inputs, batch first.
        target (int, tuple, Tensor, list, optional): Captum's output selection.
        additional_forward_args (Any, optional): extra ``forward_func`` args.

    Returns:
        Attributions, same type and shapes as ``inputs``.
    """
    return TaylorAttribution(forward_func, order=1).attribute(inputs, None, target, additional_forward_args)


def occlusion1_reformulation(
    forward_func: Callable,
    inputs: Attr,
    baselines: Any = None,
    target: Any = None,
    additional_forward_args: Any = None,
    hessian_diagonal: str = "exact",
    n_samples: int = 64,
    seed: int | None = None,
    max_chunk: int | None = None,
) -> Attr:
    r"""Theorem 2: Occlusion-1 (feature :math:`i` set to :math:`\bar x_i`) is the
    first-order plus independent terms at the baseline
    :math:`x_{[x_i=\bar x_i]}`: :math:`a_i = g_i\delta_i - \tfrac12 H_{ii}\delta_i^2`.

    Args:
        forward_func (Callable): the model.
        inputs (Tensor or tuple[Tensor, ...]): inputs, batch first.
        baselines (scalar, Tensor, tuple, optional): occlusion values. Default: 0.
        target (int, tuple, Tensor, list, optional): Captum's output selection.
        additional_forward_args (Any, optional): extra ``forward_func`` args.
        hessian_diagonal (str, optional): ``"exact"`` or ``"hutchinson"``.
        n_samples (int, optional): Hutchinson vectors.
        seed (int, optional): Hutchinson seed.
        max_chunk (int, optional): HVPs per vectorised pass.

    Returns:
        Attributions, same type and shapes as ``inputs``.
    """
    dec = taylor_decomposition(
        forward_func, inputs, baselines, target, additional_forward_args, hessian_diagonal, n_samples, seed, max_chunk
    )
    return dec._combine(dec.first_order, dec.independent)


def occlusion_patch_reformulation(
    forward_func: Callable,
    inputs: Attr,
    feature_mask: Attr,
    baselines: Any = None,
    target: Any = None,
    additional_forward_args: Any = None,
    max_chunk: int | None = None,
) -> Attr:
    r"""Theorem 3: occluding patch :math:`p` gives every feature of :math:`p`
    the patch's first-order, independent and within-patch interactive terms,

    .. math::

        a_i = \sum_{j\in p} g_j\delta_j - \tfrac12 \sum_{j,k \in p} H_{jk}\delta_j\delta_k,
        \quad i \in p.

    Args:
        forward_func (Callable): the model.
        inputs (Tensor or tuple[Tensor, ...]): inputs, batch first.
        feature_mask (Tensor or tuple[Tensor, ...]): patch ids ``0..K-1``
            (Captum's ``feature_mask``).
        baselines (scalar, Tensor, tuple, optional): occlusion values. Default: 0.
        target (int, tuple, Tensor, list, optional): Captum's output selection.
        additional_forward_args (Any, optional): extra ``forward_func`` args.
        max_chunk (int, optional): HVPs per vectorised pass.

    Returns:
        Attributions, same type and shapes as ``inputs``.
    """
    call = format_call(inputs, baselines, target, additional_forward_args)
    fmt, batch = call.inputs, call.batch
    groups = FeatureGroups.from_mask(feature_mask, fmt)
    ids, n_groups = groups.flat_ids(), groups.n_groups
    _, grads, _ = gradient_and_hvp(forward_func, fmt, None, call.target, call.additional_args)
    first = _flat(tuple(g * d.detach() for g, d in zip(grads, call.deltas)), batch)  # (B, N)
    patch_first = torch.zeros(batch, n_groups, dtype=first.dtype, device=first.device).scatter_add_(1, ids, first)
    m = _interactions(forward_func, call, groups, max_chunk)
    patch = patch_first - 0.5 * m.diagonal(dim1=1, dim2=2)
    return call.output(_split(torch.gather(patch, 1, ids), fmt))


_LINEAR_TYPES = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.Flatten,
    nn.Unflatten,
    nn.Identity,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.Dropout,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
)


def _activation_derivatives(act: nn.Module, y: Tensor) -> tuple[Tensor, Tensor]:
    """:math:`\\sigma'(y)` and :math:`\\sigma''(y)` of an element-wise module."""
    y = y.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        s = act(y)
        if not s.requires_grad:
            return torch.zeros_like(y), torch.zeros_like(y)
        (d1,) = torch.autograd.grad(s.sum(), y, create_graph=True)
        if not d1.requires_grad:
            return d1.detach(), torch.zeros_like(y)
        (d2,) = torch.autograd.grad(d1.sum(), y, allow_unused=True)
    return d1.detach(), torch.zeros_like(y) if d2 is None else d2.detach()


def _deeplift_layers(
    model: nn.Sequential, inputs: Tensor, baselines: Any, target: Any, remainder: str, eps: float
) -> list[tuple[int, Tensor, Tensor, Tensor | None, Tensor]]:
    """Walk ``model`` back from the selected output with three multipliers:
    DeepLIFT's (exact Rescale at every activation), the Taylor one (the
    reformulated multiplier at every activation) and the local one (DeepLIFT's
    above the nearest activation, the reformulated one at it).

    Returns, for module 0 and for every module that starts a run of affine
    modules followed by an activation, ``(index, deeplift, taylor, local,
    delta)``: the three multipliers at that module's input and the input's
    difference to the baseline pass. The local multiplier is ``None`` where
    no activation lies above."""
    if not isinstance(model, nn.Sequential):
        raise TypeError("DeepLIFT's Taylor reformulation needs an nn.Sequential of affine layers and activations.")
    if remainder not in ("second", "exact"):
        raise ValueError(f"remainder must be 'second' or 'exact', got {remainder!r}.")
    call = format_call(inputs, baselines, target)
    if len(call.inputs) != 1:
        raise ValueError(f"DeepLIFT's Taylor reformulation takes one input tensor, got a tuple of {len(call.inputs)}.")
    (x,), (b,), target = call.inputs, call.baselines, call.target
    b = b.expand_as(x)
    layers: list[tuple[nn.Module, bool, Tensor, Tensor]] = []
    h, hb = x.detach(), b.detach()
    with torch.no_grad():
        for layer in model:
            layers.append((layer, isinstance(layer, _LINEAR_TYPES), h, hb))
            h, hb = layer(h), layer(hb)
    batch = x.shape[0]
    out = h.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        sel = select_target(out, target, batch)
        (m,) = torch.autograd.grad(sel.sum(), out)
    m_dl, m_tay, m_loc = m, m, None
    records = []
    for idx in range(len(layers) - 1, -1, -1):
        layer, is_linear, y, yb = layers[idx]
        if is_linear:
            yy = y.detach().clone().requires_grad_(True)
            with torch.enable_grad():
                z = layer(yy)
                grads = [g for g in (m_dl, m_tay, m_loc) if g is not None]
                vjps = [torch.autograd.grad(z, yy, grad_outputs=g, retain_graph=True)[0] for g in grads]
            m_dl, m_tay = vjps[0], vjps[1]
            if m_loc is not None:
                m_loc = vjps[2]
        else:
            d1, d2 = _activation_derivatives(layer, y)
            dy = y - yb
            with torch.no_grad():
                dx = layer(y) - layer(yb)
            safe = dy.abs() > eps
            rescale = torch.where(safe, dx / torch.where(safe, dy, torch.ones_like(dy)), d1)
            taylor = d1 - 0.5 * d2 * dy if remainder == "second" else rescale
            m_loc = m_dl * taylor
            m_tay = m_tay * taylor
            m_dl = m_dl * rescale
        starts_run = is_linear and (idx == 0 or not layers[idx - 1][1])
        if idx == 0 or (starts_run and m_loc is not None):
            records.append((idx, m_dl, m_tay, m_loc, (y - yb).detach()))
    return records[::-1]


def deeplift_reformulation(
    model: nn.Sequential,
    inputs: Tensor,
    baselines: Any = None,
    target: Any = None,
    remainder: str = "second",
    eps: float = 1e-10,
) -> Tensor:
    r"""Theorem 4: DeepLIFT (Rescale) layer by layer in Taylor terms, for an
    ``nn.Sequential`` of affine layers (Linear, Conv, Flatten, AvgPool, ...) and
    element-wise activations, propagated to the input.

    At an activation :math:`x_j = \sigma(y_j)` the output change splits into the
    first-order term and the layer's remainder, expanding at :math:`y_j`:
    :math:`\Delta x_j = \sigma'(y_j)\Delta y_j + T_j^\gamma`. DeepLIFT shares
    :math:`\Delta x_j` among the inputs of the layer in proportion to
    :math:`z_{ji} - \bar z_{ji}` (with :math:`\Delta y_j = \sum_i (z_{ji}-\bar z_{ji})`):

    .. math::

        a_{ij} = \sigma'(y_j)(z_{ji} - \bar z_{ji})
               + \frac{z_{ji} - \bar z_{ji}}{\sum_{i'} (z_{ji'} - \bar z_{ji'})} T_j^\gamma ,

    i.e. the Rescale multiplier :math:`\Delta x_j / \Delta y_j` is
    :math:`\sigma'(y_j) + T_j^\gamma / \Delta y_j`. With ``remainder="second"``
    the remainder is its second-order term
    :math:`T_j^\gamma \approx -\tfrac12\sigma''(y_j)\Delta y_j^2` (the Taylor
    reformulation); with ``remainder="exact"``,
    :math:`T_j^\gamma = \Delta x_j - \sigma'(y_j)\Delta y_j`, which reproduces
    DeepLIFT (Rescale) itself. Relevances are propagated from the selected
    output back to the input, the reformulated multiplier at every activation.
    :func:`deeplift_layer_reformulation` gives the same per layer (Deng et
    al.'s Table 3 protocol).

    Args:
        model (nn.Sequential): affine layers and element-wise activation
            modules (any module not in the affine list is treated as an
            element-wise activation).
        inputs (Tensor): inputs, batch first.
        baselines (scalar or Tensor, optional): :math:`\bar x`. Default: zeros.
        target (int, tuple, Tensor, list, optional): Captum's output selection.
        remainder (str, optional): ``"second"`` or ``"exact"``. Default: ``"second"``.
        eps (float, optional): below this :math:`|\Delta y|` the multiplier is
            :math:`\sigma'(y)`. Default: 1e-10.

    Returns:
        Tensor of ``inputs``' shape.
    """
    _, _, m_tay, _, delta = _deeplift_layers(model, inputs, baselines, target, remainder, eps)[0]
    return (m_tay * delta).detach()


def deeplift_layer_reformulation(
    model: nn.Sequential,
    inputs: Tensor,
    baselines: Any = None,
    target: Any = None,
    upstream: str = "deeplift",
    remainder: str = "second",
    eps: float = 1e-10,
) -> list[tuple[nn.Module, Tensor]]:
    r"""Theorem 4 per layer: the Taylor reformulation of DeepLIFT's relevance
    at the input of every layer that a nonlinearity follows.

    For a layer :math:`l` (the input :math:`x^{(l)}` of an affine run
    :math:`y^{(l)} = W x^{(l)} + b` followed by :math:`x^{(l+1)} = \sigma(y^{(l)})`)
    DeepLIFT gives :math:`a_i^{(l)} = \sum_j \frac{z_{ji} - \bar z_{ji}}{\Delta y_j}\,a_j^{(l+1)}`.
    The reformulation replaces the layer's multiplier
    :math:`\Delta x_j / \Delta y_j` by :math:`\sigma'(y_j) - \tfrac12\sigma''(y_j)\Delta y_j`
    (first-order term plus the second-order remainder, Theorem 4):

    * ``upstream="deeplift"`` (default): the relevance :math:`a_j^{(l+1)}` arriving
      from above is DeepLIFT's own, so each layer's comparison measures that
      layer's step only (Theorem 4 is stated for one layer);
    * ``upstream="taylor"``: every layer above is reformulated too (at the
      input this is :func:`deeplift_reformulation`).

    Deng et al. (Table 3): "As DeepLIFT attributes in a layer-wise manner, we
    compute the percentage change of each layer and then average them"; the
    paper does not say which of the two it did.

    Args:
        model (nn.Sequential): affine layers and element-wise activations.
        inputs (Tensor): inputs, batch first.
        baselines (scalar or Tensor, optional): :math:`\bar x`. Default: zeros.
        target (int, tuple, Tensor, list, optional): Captum's output selection.
        upstream (str, optional): ``"deeplift"`` or ``"taylor"``.
        remainder (str, optional): ``"second"`` or ``"exact"`` (``"exact"``
            reproduces DeepLIFT at every layer).
        eps (float, optional): Rescale threshold. Default: 1e-10.

    Returns:
        ``[(module, attributions), ...]`` from the input up: ``module`` is the
        first module of the affine run, ``attributions`` has the shape of its
        input. Compare with
        ``LayerDeepLiftRescale(model, module).attribute(..., attribute_to_layer_input=True)``.
    """
    if upstream not in ("deeplift", "taylor"):
        raise ValueError(f"upstream must be 'deeplift' or 'taylor', got {upstream!r}.")
    out = []
    for idx, _, m_tay, m_loc, delta in _deeplift_layers(model, inputs, baselines, target, remainder, eps):
        if m_loc is None:  # module 0 with no nonlinearity above it
            continue
        m = m_loc if upstream == "deeplift" else m_tay
        out.append((model[idx], (m * delta).detach()))
    return out


def integrated_gradients_reformulation(
    forward_func: Callable,
    inputs: Attr,
    baselines: Any = None,
    target: Any = None,
    additional_forward_args: Any = None,
) -> Attr:
    r"""Theorem 5: Integrated Gradients is first-order + independent + half of
    every pairwise interactive term, :math:`a_i = g_i\delta_i - \tfrac12\delta_i(H\delta)_i`
    (= :class:`~captum_unified.taylor.TaylorAttribution` of order 2).

    Args:
        forward_func (Callable): the model.
        inputs (Tensor or tuple[Tensor, ...]): inputs, batch first.
        baselines (scalar, Tensor, tuple, optional): path start. Default: 0.
        target (int, tuple, Tensor, list, optional): Captum's output selection.
        additional_forward_args (Any, optional): extra ``forward_func`` args.

    Returns:
        Attributions, same type and shapes as ``inputs``.
    """
    return TaylorAttribution(forward_func, order=2).attribute(inputs, baselines, target, additional_forward_args)


def expected_gradients_reformulation(
    forward_func: Callable,
    inputs: Attr,
    baselines: Attr,
    target: Any = None,
    additional_forward_args: Any = None,
) -> Attr:
    r"""Corollary of Theorem 5: Expected Gradients
    :math:`a_i = \mathbb E_{\bar x}[\mathrm{IG}_i(x; \bar x)]` is the IG
    reformulation averaged over the baselines,
    :math:`\frac1K \sum_k (g_i\delta^{(k)}_i - \tfrac12\delta^{(k)}_i (H\delta^{(k)})_i)`.

    Args:
        forward_func (Callable): the model.
        inputs (Tensor or tuple[Tensor, ...]): inputs, batch first.
        baselines (Tensor or tuple[Tensor, ...]): ``K`` sampled baselines per input
            tensor, shape ``(K, *input.shape[1:])`` (shared by all samples).
        target (int, tuple, Tensor, list, optional): Captum's output selection.
        additional_forward_args (Any, optional): extra ``forward_func`` args.

    Returns:
        Attributions, same type and shapes as ``inputs``.
    """
    call = format_call(inputs, None, target, additional_forward_args)
    fmt = call.inputs
    if isinstance(baselines, Tensor):
        baselines = (baselines,)
    if len(baselines) != len(fmt):
        raise ValueError(f"{len(fmt)} input tensor(s) but {len(baselines)} baseline tensor(s).")
    n = baselines[0].shape[0]
    if n == 0:
        raise ValueError("baselines must hold at least one baseline (K >= 1).")
    for bl, x in zip(baselines, fmt):
        if bl.shape[0] != n or tuple(bl.shape[1:]) != tuple(x.shape[1:]):
            raise ValueError(
                f"baselines must have shape (K, *input.shape[1:]) with one K for all inputs; "
                f"got {tuple(bl.shape)} for input {tuple(x.shape)}."
            )
    ta = TaylorAttribution(forward_func, order=2)
    total: tuple[Tensor, ...] | None = None
    for k in range(n):
        with preserve_model_state():  # per baseline, as TaylorAttribution.attribute
            a = ta._attribute(call.with_baselines(tuple(bl[k : k + 1] for bl in baselines)))
        total = a if total is None else tuple(t + ai for t, ai in zip(total, a))
    assert total is not None  # n >= 1
    return call.output(tuple(t / n for t in total))


def percentage_change(original: Attr, reformulated: Attr, per_sample: bool = False) -> float | Tensor:
    r"""Deng et al.'s Table 3 metric between a method and its reformulation,

    .. math::

        d = \operatorname{mean}_{\text{samples}}
            \frac{\lVert a_o - a_r \rVert^2}{\lVert a_o \rVert^2} \times 100\% .

    The norm runs over all features of a sample (all inputs of a tuple). A
    sample with :math:`a_o = 0` counts 0 if :math:`a_r = 0` too, else ``inf``.

    Args:
        original (Tensor or tuple[Tensor, ...]): :math:`a_o`, batch first.
        reformulated (Tensor or tuple[Tensor, ...]): :math:`a_r`, same shapes.
        per_sample (bool, optional): return each sample's
            :math:`\lVert a_o - a_r \rVert^2 / \lVert a_o \rVert^2 \times 100`
            (a tensor of shape ``(batch,)``) instead of their mean.

    Returns:
        float: ``d`` in percent (or the per-sample tensor).
    """
    d = percentage_change_per_sample(original, reformulated)
    return d if per_sample else float(d.mean())
