r"""Infidelity with square-removal perturbations (Yeh et al., NeurIPS 2019).

Infidelity measures how well an attribution :math:`a` predicts the effect of
a random perturbation :math:`I` of the input:

.. math::

    \operatorname{INFD}(a, f, x) = \mathbb{E}_{I}\Big[\big(I^\top a
        - (f(x) - f(x - I))\big)^2\Big].

*Square removal* draws a square :math:`Q` of side ``patch_size`` uniformly
over the spatial positions and sets it (all channels) to the baseline
:math:`\bar x`, giving the perturbed input :math:`\tilde x`. Yeh et al.'s
perturbation is

.. math::

    I_j = x_j - \tilde x_j = \begin{cases} x_j - \bar x_j & j \in Q \\ 0 & \text{otherwise,}\end{cases}

the right one for *gradient-like* attributions (Saliency: :math:`I^\top
\nabla f` is the first-order change). Attributions already multiplied by
:math:`x - \bar x` (Gradient * Input, Integrated Gradients, DeepLIFT,
:math:`\epsilon`-LRP, Occlusion: every method of this package) use Captum's
``multiply_by_inputs`` convention, :math:`I_j = (x_j - \tilde x_j) / (x_j -
\bar x_j)`, i.e. the indicator of :math:`Q`, so that :math:`I^\top a =
\sum_{j \in Q} a_j` is compared with :math:`f(x) - f(\tilde x)`. This is the
default (``multiply_by_inputs=True``). With it a *complete* attribution on a
linear model, :math:`a_j = w_j (x_j - \bar x_j)`, has infidelity 0 for every
square.

:func:`infidelity` (and the :class:`Infidelity` metric of
:func:`~captum_unified.metrics.evaluate`) draws the squares of each sample
from a private generator seeded by ``(seed, sample index)``
(:func:`square_masks`; the global RNG is never used) and runs the perturbed
inputs through the perturbation engine; the value is Captum's
:func:`captum.metrics.infidelity` for the same squares (tested).
:func:`square_removal_perturbation` is the same perturbation as a
``perturb_func`` for Captum's own ``infidelity``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from captum_unified._utils.common import format_inputs
from captum_unified.metrics.base import (
    EvalBatch,
    Metric,
    MetricScores,
    sample_generator,
)

__all__ = ["Infidelity", "infidelity", "square_masks", "square_removal_perturbation"]

#: Salt of the infidelity draws in :func:`~captum_unified.metrics.base.sample_seed`
#: (Sensitivity-n salts with ``n >= 1``).
_SALT = -1


def _spatial(x: Tensor) -> tuple[int, ...]:
    """The spatial dims of an input: the last two for ``dim >= 3``, else the last."""
    return tuple(range(x.dim() - 2, x.dim())) if x.dim() >= 3 else (x.dim() - 1,)


def square_masks(
    inputs: Sequence[Tensor],
    patch_size: int,
    n_perturb_samples: int,
    seed: int = 0,
    sample_ids: Sequence[int] | None = None,
) -> tuple[Tensor, ...]:
    """The random squares of :func:`infidelity`: per input a bool tensor
    ``(T, batch, 1, ..., *spatial)`` (``True`` inside the square).

    Sample ``i`` draws its ``T`` squares from
    :func:`~captum_unified.metrics.base.sample_generator` ``(seed,
    sample_ids[i], -1)``: for each input tensor in order, for each spatial
    dimension in order, ``T`` corners uniform over ``0..size - p``
    (``p = min(patch_size, size)``), so the squares lie inside the input and
    do not depend on the batch the sample is in.
    """
    p = int(patch_size)
    if p < 1:
        raise ValueError(f"patch_size must be >= 1, got {patch_size}.")
    T = int(n_perturb_samples)
    batch = int(inputs[0].shape[0])
    ids = list(range(batch)) if sample_ids is None else [int(v) for v in sample_ids]
    gens = [sample_generator(seed, i, _SALT) for i in ids]
    out = []
    for x in inputs:
        dims = _spatial(x)
        mask = torch.ones((T, batch) + (1,) * (x.dim() - 1), dtype=torch.bool)
        for d in dims:
            size = int(x.shape[d])
            q = min(p, size)
            start = torch.stack([torch.randint(0, size - q + 1, (T,), generator=g) for g in gens], dim=1)  # (T, B)
            pos = torch.arange(size)
            inside = (pos >= start.unsqueeze(-1)) & (pos < (start + q).unsqueeze(-1))  # (T, B, size)
            shape = [T, batch] + [1] * (x.dim() - 1)
            shape[1 + d] = size
            mask = mask & inside.reshape(shape)
        out.append(mask.to(x.device))
    return tuple(out)


def _square_mask(x: Tensor, patch_size: int, gen: torch.Generator) -> Tensor:
    """Bool mask ``(n, 1, ..., *spatial)`` of one random square per row of ``x``.

    The spatial dims are the last two for inputs with ``dim >= 3`` (e.g.
    ``(N, C, H, W)``: the square covers all channels) and the last one for
    ``(N, F)`` inputs (a window of ``patch_size`` consecutive features). The
    square lies fully inside the input: its corner is uniform over
    ``0..H - p`` (``p = min(patch_size, H)``), so squares touching the border
    are drawn like any other.
    """
    n = x.shape[0]
    spatial = tuple(x.shape[-2:]) if x.dim() >= 3 else tuple(x.shape[-1:])
    lead = x.dim() - 1 - len(spatial)  # channel-like dims between batch and spatial
    mask = torch.ones((n,) + (1,) * lead + (1,) * len(spatial), dtype=torch.bool)
    for d, size in enumerate(spatial):
        p = min(int(patch_size), int(size))
        start = torch.randint(0, size - p + 1, (n,), generator=gen)
        pos = torch.arange(size)
        inside = (pos.unsqueeze(0) >= start.unsqueeze(1)) & (pos.unsqueeze(0) < (start + p).unsqueeze(1))
        shape = [n] + [1] * (lead + len(spatial))
        shape[1 + lead + d] = size
        mask = mask & inside.reshape(shape)
    return mask.to(x.device)


def square_removal_perturbation(
    patch_size: int,
    baselines: Any = 0.0,
    seed: int = 0,
    generator: torch.Generator | None = None,
    multiply_by_inputs: bool = True,
) -> Callable[..., tuple[Any, Any]]:
    r"""Square-removal perturbation function for :func:`captum.metrics.infidelity`.

    The returned ``perturb_func(inputs, baselines=None)`` follows Captum's
    contract: it receives the (expanded, ``n_perturb_samples`` copies per
    sample) inputs and returns ``(perturbations, perturbed_inputs)``. For each
    row a square :math:`Q` of side ``patch_size`` is drawn on the spatial dims
    (the last two dims of an ``(N, C, H, W)`` input, all channels; a window of
    ``patch_size`` features for ``(N, F)`` inputs) and

    .. math::

        \tilde x = x \text{ with } x_Q = \bar x_Q, \qquad I = x - \tilde x,

    which is Captum's sign convention: infidelity is
    :math:`\mathbb{E}[(I^\top a - (f(x) - f(\tilde x)))^2]` with :math:`x - I = \tilde x`
    (``multiply_by_inputs=False``, Yeh et al.'s perturbation for gradient-like
    attributions). With ``multiply_by_inputs=True`` (default) the perturbation
    returned is :math:`(x - \tilde x) / (x - \bar x)`, the indicator of the
    square (0 where :math:`x_j = \bar x_j`), as Captum's
    ``infidelity_perturb_func_decorator(True)`` computes it for attributions
    multiplied by :math:`x - \bar x`. With several input tensors every tensor
    gets its own square.

    Args:
        patch_size: side of the square (clipped to the spatial size). The
            square lies fully inside the input, its corner uniform over the
            valid positions. Any input with 3 or more dims has its last two
            dims taken as spatial (so an ``(N, C, L)`` sequence gets a
            ``p x p`` block over channels and positions).
        baselines: the value :math:`\bar x` of removed features (number, tensor
            broadcastable to one sample or to the expanded batch, or a tuple
            with one per input). Baselines given to
            :func:`captum.metrics.infidelity` (passed on to the function) take
            precedence.
        seed: seed of the private generator made when ``generator`` is None.
        generator: a CPU :class:`torch.Generator` to draw the squares from.
            The global RNG is never used. The generator advances with every
            call, so build a new function (or reseed) to repeat a run.
        multiply_by_inputs: return the indicator perturbation (for
            attributions multiplied by :math:`x - \bar x`) rather than
            :math:`x - \tilde x` (for gradients).

    Returns:
        ``perturb_func(inputs, baselines=None) -> (perturbations, perturbed_inputs)``,
        a tensor pair for a tensor input and a tuple pair for a tuple input.

    Raises:
        ValueError: ``patch_size < 1``; (when called) the number of baselines
            does not match the number of input tensors.
    """
    if int(patch_size) < 1:
        raise ValueError(f"patch_size must be >= 1, got {patch_size}.")
    gen = generator
    if gen is None:
        gen = torch.Generator(device="cpu")
        gen.manual_seed(int(seed))
    default_baselines = baselines

    def perturb_func(inputs: Tensor | tuple[Tensor, ...], baselines: Any = None):
        is_tensor = isinstance(inputs, Tensor)
        xs = format_inputs(inputs)
        base = default_baselines if baselines is None else baselines
        if not isinstance(base, tuple):
            base = (base,) * len(xs) if isinstance(base, (int, float)) else (base,)
        if len(base) != len(xs):
            raise ValueError(f"{len(xs)} input tensor(s) but {len(base)} baselines: give one per input.")
        bs = []
        for x, b in zip(xs, base):
            b = torch.as_tensor(b, dtype=x.dtype, device=x.device)
            if b.dim() == x.dim() - 1 and b.dim() > 0:
                b = b.unsqueeze(0)
            bs.append(torch.broadcast_to(b, x.shape))
        perturbations, perturbed = [], []
        for x, b in zip(xs, bs):
            m = _square_mask(x, patch_size, gen)
            xp = torch.where(m, b, x)
            perturbed.append(xp)
            diff = x - xp
            if multiply_by_inputs:
                diff = torch.where(m & (x != b), torch.ones_like(x), torch.zeros_like(x))
            perturbations.append(diff)
        if is_tensor:
            return perturbations[0], perturbed[0]
        return tuple(perturbations), tuple(perturbed)

    return perturb_func


def infidelity(
    forward_func: Callable,
    inputs: Any,
    attributions: Any,
    patch_size: int = 4,
    n_perturb_samples: int = 10,
    baselines: Any = 0.0,
    target: Any = None,
    additional_forward_args: Any = None,
    max_examples_per_batch: int | None = None,
    normalize: bool = False,
    seed: int = 0,
    multiply_by_inputs: bool = True,
    show_progress: bool = False,
    sample_ids: Sequence[int] | None = None,
) -> Tensor:
    r"""Infidelity of attributions under random square removal (Yeh et al. 2019).

    .. math::

        \operatorname{INFD}(a, f, x) = \frac{1}{T}\sum_{t=1}^{T}
            \big(I_t^\top a - (f(x) - f(x - I_t))\big)^2,

    with :math:`T` = ``n_perturb_samples`` squares per sample
    (:func:`square_masks`) and :math:`x - I_t` the input with the square set
    to the baseline. The value equals Captum's
    :func:`captum.metrics.infidelity` with a perturbation function that removes
    the same squares (Captum's sign convention and ``normalize``).

    Args:
        forward_func: the model (or any callable).
        inputs: tensor or tuple of tensors, batch first.
        attributions: attributions of ``inputs`` (same shapes).
        patch_size: side of the removed square (clipped to the input).
        n_perturb_samples: squares per sample :math:`T`.
        baselines: value of removed features :math:`\bar x` (default 0).
        target: output index to explain (Captum format).
        additional_forward_args: extra model arguments, not perturbed.
        max_examples_per_batch: bound on rows per forward pass (Captum's
            argument; the perturbation engine's ``max_batch_size``).
        normalize: scale the attributions by the optimal
            :math:`\beta = \mathbb{E}[I^\top a\,\Delta f] / \mathbb{E}[(I^\top a)^2]`
            first (Captum's ``normalize``), making the score scale-invariant.
        seed: seeds the private generators of the squares (global RNG untouched).
        multiply_by_inputs: True (default) for attributions multiplied by
            :math:`x - \bar x` (all methods of this package): :math:`I^\top a`
            is the sum of the attributions in the square (where the input
            differs from the baseline). False for gradient-like attributions:
            :math:`I = x - \tilde x` (Yeh et al.).
        show_progress: show a tqdm progress bar.
        sample_ids: global index of each sample, the source of its squares
            (default ``0..batch-1``).

    Returns:
        Tensor of shape ``(batch,)``, float64: the infidelity of each sample.
        Lower is better; with ``normalize=False`` it scales with the square of
        the output.

    Raises:
        ValueError: an empty batch, NaN inputs or attributions, attributions
            that do not match the inputs, ``patch_size < 1`` or
            ``n_perturb_samples < 1``.
    """
    metric = Infidelity(patch_size, n_perturb_samples, normalize, multiply_by_inputs)
    batch = EvalBatch.make(
        forward_func,
        inputs,
        baselines,
        target,
        additional_forward_args,
        None,
        sample_ids,
        seed,
        max_batch_size=max_examples_per_batch,
        show_progress=show_progress,
    )
    return metric.compute(batch, {None: batch.attributions(attributions)})[None]


class Infidelity(Metric):
    r"""Infidelity with square removal (Yeh et al. 2019) as a metric of
    :func:`~captum_unified.metrics.evaluate`; see :func:`infidelity`.

    Rows: ``("infidelity", None)`` per sample. The squares and their forward
    passes do not depend on the method: one pass per batch scores every method.
    """

    name = "infidelity"
    random = True

    def __init__(
        self, patch_size: int = 4, n_perturb_samples: int = 10, normalize: bool = False, multiply_by_inputs: bool = True
    ) -> None:
        if int(patch_size) < 1:
            raise ValueError(f"patch_size must be >= 1, got {patch_size}.")
        if int(n_perturb_samples) < 1:
            raise ValueError(f"n_perturb_samples must be >= 1, got {n_perturb_samples}.")
        self.patch_size = int(patch_size)
        self.n_perturb_samples = int(n_perturb_samples)
        self.normalize = bool(normalize)
        self.multiply_by_inputs = bool(multiply_by_inputs)

    def compute(self, batch: EvalBatch, attributions: Mapping[Any, tuple[Tensor, ...]]) -> dict[Any, Tensor]:
        """Infidelity ``(batch,)`` per method (one pass of forwards)."""
        call = batch.call
        T = self.n_perturb_samples
        squares = square_masks(call.inputs, self.patch_size, T, batch.seed, batch.sample_ids.tolist())
        engine = batch.engine
        with engine:
            changes = engine.changes(lambda a, b: tuple(m[a:b] for m in squares), T, "Infidelity")
        changes = changes.to(torch.float64)  # (T, B)
        deltas = call.deltas  # x - x_bar (floating)
        out = {}
        for name, attrs in attributions.items():
            s = torch.zeros(T, call.batch, dtype=torch.float64, device=changes.device)
            for a, m, d in zip(attrs, squares, deltas):
                weight = (d != 0).to(torch.float64) if self.multiply_by_inputs else d.to(torch.float64)
                s += (m * (a.to(torch.float64) * weight).unsqueeze(0)).flatten(2).sum(-1).to(s.device)
            if self.normalize:
                ss, sd, dd = (s * s).sum(0), (s * changes).sum(0), (changes * changes).sum(0)
                beta = sd / torch.where(ss == 0, torch.ones_like(ss), ss)
                out[name] = (beta * beta * ss - 2 * beta * sd + dd) / T
            else:
                out[name] = (s - changes).pow(2).mean(0)
        return out

    def evaluate(self, batch: EvalBatch, attributions: Mapping[str, tuple[Tensor, ...]]) -> dict[str, MetricScores]:
        return {name: MetricScores({("infidelity", None): v}) for name, v in self.compute(batch, attributions).items()}
