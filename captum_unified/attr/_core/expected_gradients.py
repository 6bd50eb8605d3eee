r"""Expected Gradients: Integrated Gradients averaged over sampled baselines."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from captum._utils.typing import TargetType, TensorOrTupleOfTensorsGeneric
from captum.attr._utils.attribution import GradientAttribution
from captum.log import log_usage
from torch import Tensor

from captum_unified._utils.call import AttributionCall
from captum_unified._utils.common import (
    check_finite,
    expand_additional_args,
    expand_target,
    run_forward,
)
from captum_unified._utils.state import preserves_model_state
from captum_unified.attr._core.integrated_gradients import path_gradients
from captum_unified.backend import modified_gradients
from captum_unified.rules import GradientRule

__all__ = ["ExpectedGradients"]


def _format_references(references: Any, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Reference sets ``(R, *x.shape[1:])`` per input, the same ``R`` for all."""
    refs = references if isinstance(references, tuple) else (references,)
    if len(refs) != len(inputs):
        raise ValueError(
            f"{len(inputs)} input tensor(s) but {len(refs)} reference set(s): give one "
            "tensor of reference samples per input tensor, in the same order."
        )
    out = []
    for k, (x, r) in enumerate(zip(inputs, refs)):
        feat = tuple(x.shape[1:])
        if isinstance(r, (int, float)):
            r = torch.full((1,) + feat, float(r), dtype=x.dtype, device=x.device)
        if not isinstance(r, Tensor):
            raise TypeError(f"baselines[{k}] is a {type(r).__name__}; give a tensor of reference samples.")
        r = r.to(device=x.device, dtype=x.dtype)
        if r.dim() == x.dim() - 1 and tuple(r.shape) == feat:
            r = r.unsqueeze(0)
        if r.dim() != x.dim() or tuple(r.shape[1:]) != feat:
            raise ValueError(
                f"baselines[{k}] has shape {tuple(r.shape)}; the reference samples for input "
                f"shape {tuple(x.shape)} must have shape (R, {', '.join(map(str, feat))})."
            )
        if r.shape[0] == 0:
            raise ValueError(
                f"baselines[{k}] is an empty reference set (shape {tuple(r.shape)}); give at "
                "least one reference sample."
            )
        out.append(r)
    if len({r.shape[0] for r in out}) != 1:
        raise ValueError(
            "The reference sets of the input tensors have different sizes "
            f"{[r.shape[0] for r in out]}; reference j of every input must belong together."
        )
    check_finite(tuple(out), "baselines")
    return tuple(out)


def _format_stdevs(stdevs: Any, inputs: tuple[Tensor, ...]) -> tuple[float, ...]:
    values = stdevs if isinstance(stdevs, tuple) else (stdevs,) * len(inputs)
    if len(values) != len(inputs):
        raise ValueError(f"{len(inputs)} input tensor(s) but {len(values)} baseline_stdevs: give one per input tensor.")
    values = tuple(float(v) for v in values)
    if any(v < 0 for v in values):
        raise ValueError(f"baseline_stdevs must be >= 0, got {values}.")
    return values


class ExpectedGradients(GradientAttribution):
    r"""Expected Gradients (Erion et al. 2021; Deng et al. 2021 §"Expected
    Gradients"): Integrated Gradients with the baseline :math:`\bar x` drawn
    from a distribution :math:`D`,

    .. math::

        R_i^c(x) = \mathbb{E}_{\bar x \sim D,\ \alpha \sim U(0, 1)}
            \Big[(x_i - \bar x_i)\,
            \frac{\partial S_c(\tilde x)}{\partial \tilde x_i}
            \Big|_{\tilde x = \bar x + \alpha (x - \bar x)}\Big]
        \approx \frac{1}{K} \sum_{k=1}^{K} (x_i - \bar x_{k,i})\,
            \partial_i S_c(\bar x_k + \alpha_k (x - \bar x_k)).

    :math:`D` is either a set of reference samples (e.g. training data), from
    which each input sample draws ``n_samples`` references uniformly with
    replacement, or Gaussian noise around the input,
    :math:`\bar x \sim \mathcal N(x, \sigma^2 I)` (Deng et al.). With ``n_steps``
    each drawn baseline gets a deterministic path integral (Captum's
    approximation ``method``) instead of one random :math:`\alpha`; then a
    single fixed baseline gives exactly Integrated Gradients. In Taylor terms it
    is Integrated Gradients' reformulation averaged over the sampled baselines
    (Deng et al. Theorem 5). The completeness gap is measured against the mean
    baseline output:
    :math:`\Delta = \sum_i R_i - (S_c(x) - \frac1K \sum_k S_c(\bar x_k))`,
    which shrinks as :math:`K` grows.

    Random draws come from a private :class:`torch.Generator` (seeded by
    ``seed``); the global random state is never used or changed. Gradients come
    from the unified backend (:func:`captum_unified.modified_gradients`).
    Integer or bool inputs are a ``TypeError``: a gradient with respect to
    token ids means nothing; attribute to the embedding layer instead (the
    ``Layer*`` classes) or use a perturbation method.

    With :class:`~captum.attr.NoiseTunnel`: the Gaussian baselines are
    ``baseline_stdevs`` (NoiseTunnel's own ``stdevs`` is the noise it adds to
    the inputs), and a reference set goes through NoiseTunnel as for Captum's
    :class:`~captum.attr.GradientShap`: ``NoiseTunnel(eg).attribute(x,
    baselines=refs, draw_baseline_from_distrib=True, ...)``.

    Args:
        forward_func (Callable): the model or any function built from torch ops.
        multiply_by_inputs (bool, optional): multiply each gradient by
            :math:`x - \bar x_k`. Default: True.
    """

    def __init__(self, forward_func: Callable, multiply_by_inputs: bool = True) -> None:
        GradientAttribution.__init__(self, forward_func)
        self._multiply_by_inputs = multiply_by_inputs

    @property
    def multiplies_by_inputs(self) -> bool:
        return self._multiply_by_inputs

    def has_convergence_delta(self) -> bool:
        return True

    @log_usage()
    @preserves_model_state
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        baselines: None | float | Tensor | tuple[Tensor, ...] = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        n_samples: int = 50,
        baseline_stdevs: None | float | tuple[float, ...] = None,
        n_steps: int | None = None,
        method: str = "gausslegendre",
        seed: int | None = None,
        internal_batch_size: int | None = None,
        return_convergence_delta: bool = False,
    ) -> TensorOrTupleOfTensorsGeneric | tuple[TensorOrTupleOfTensorsGeneric, Tensor]:
        r"""
        Args:
            inputs (Tensor or tuple[Tensor, ...]): inputs, batch first.
            baselines (Tensor or tuple[Tensor, ...], optional): the reference
                set, shape ``(R, *x.shape[1:])`` per input (``R >= 1``, the same
                ``R`` for all inputs); a tensor of shape ``x.shape[1:]`` or a
                number is one fixed baseline. Exactly one of ``baselines`` and
                ``baseline_stdevs`` must be given.
            target (int, tuple, Tensor, list, optional): Captum's output selection.
            additional_forward_args (Any, optional): extra ``forward_func`` args.
            n_samples (int, optional): baselines drawn per input sample
                (:math:`K`). Default: 50.
            baseline_stdevs (float or tuple[float, ...], optional): draw
                :math:`\bar x = x + \sigma \epsilon`, :math:`\epsilon \sim \mathcal N(0, I)`,
                with this :math:`\sigma` (one per input tensor or one for all).
                (Named so that it does not collide with NoiseTunnel's ``stdevs``.)
            n_steps (int, optional): if given, integrate each drawn baseline's
                path with ``n_steps`` deterministic points of ``method`` instead
                of one random :math:`\alpha`. Default: None (Erion et al.).
            method (str, optional): Captum's approximation method for
                ``n_steps``. Default: ``"gausslegendre"``.
            seed (int, optional): seed of the private generator, for
                reproducible draws. Default: None (fresh entropy).
            internal_batch_size (int, optional): at most this many rows per
                forward/backward pass (at least one batch). Default: all draws
                at once.
            return_convergence_delta (bool, optional): also return
                :math:`\sum_i R_i - (S_c(x) - \frac1K\sum_k S_c(\bar x_k))` per sample.

        Returns:
            **attributions** (same type and shapes as ``inputs``, floating), and
            **delta** (shape ``(batch,)``) if ``return_convergence_delta``.

        Raises:
            ValueError: an empty batch, NaN inputs or references, both or none
                of ``baselines`` and ``baseline_stdevs``, bad sizes.
        """
        call = AttributionCall.format(inputs, None, target, additional_forward_args).floating()
        fmt, args = call.inputs, call.additional_args
        if (baselines is None) == (baseline_stdevs is None):
            raise ValueError(
                "Give exactly one of `baselines` (a reference set of shape (R, *x.shape[1:])) "
                "and `baseline_stdevs` (Gaussian baselines around the input)."
            )
        if int(n_samples) < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}.")
        if n_steps is not None and int(n_steps) < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps}.")
        if internal_batch_size is not None and int(internal_batch_size) < 1:
            raise ValueError(f"internal_batch_size must be >= 1, got {internal_batch_size}.")
        n_samples = int(n_samples)
        batch = fmt[0].shape[0]
        refs = _format_references(baselines, fmt) if baselines is not None else None
        sigmas = _format_stdevs(baseline_stdevs, fmt) if baseline_stdevs is not None else None

        gen = torch.Generator()
        if seed is None:
            gen.seed()
        else:
            gen.manual_seed(int(seed))
        dtype = fmt[0].dtype if fmt[0].is_floating_point() else torch.get_default_dtype()
        if refs is not None:
            index = torch.randint(refs[0].shape[0], (n_samples, batch), generator=gen)
        else:
            draw_seeds = torch.randint(2**62, (n_samples,), generator=gen).tolist()
        alphas = torch.rand((n_samples, batch), generator=gen, dtype=torch.float64)

        def draw(start: int, stop: int) -> tuple[Tensor, ...]:
            """Baselines of draws ``start..stop-1``, shape ``(k * batch, ...)``, draw-major."""
            if refs is not None:
                idx = index[start:stop].reshape(-1).to(refs[0].device)
                return tuple(r[idx] for r in refs)
            assert sigmas is not None  # exactly one of baselines and baseline_stdevs
            noise = []
            for x, s in zip(fmt, sigmas):
                eps = torch.cat(
                    [
                        torch.randn(x.shape, generator=torch.Generator().manual_seed(d), dtype=x.dtype)
                        for d in draw_seeds[start:stop]
                    ]
                ).to(x.device)
                noise.append(x.repeat((stop - start,) + (1,) * (x.dim() - 1)) + s * eps)
            return tuple(noise)

        rows = batch * n_samples if internal_batch_size is None else int(internal_batch_size)
        per_chunk = max(1, rows // batch)
        totals = [torch.zeros_like(x) for x in fmt]
        base_out = torch.zeros(batch, dtype=torch.float64, device=fmt[0].device)
        for start in range(0, n_samples, per_chunk):
            stop = min(start + per_chunk, n_samples)
            k = stop - start
            bars = draw(start, stop)
            big = tuple(x.repeat((k,) + (1,) * (x.dim() - 1)) for x in fmt)
            tgt = expand_target(target, k) if k > 1 else target
            xargs = expand_additional_args(args, k) if k > 1 else args
            if n_steps is None:
                a = alphas[start:stop].reshape(-1).to(device=fmt[0].device, dtype=dtype)
                points = tuple(b + a.view((-1,) + (1,) * (x.dim() - 1)) * (x - b) for x, b in zip(big, bars))
                at = AttributionCall(points, (), xargs, tgt, True)  # no baselines: the gradient rule needs none
                grads = modified_gradients(self.forward_func, at, GradientRule()).gradients
            else:
                grads = path_gradients(
                    self.forward_func,
                    big,
                    bars,
                    tgt,
                    xargs,
                    int(n_steps),
                    method,
                    internal_batch_size=None
                    if internal_batch_size is None
                    else max(int(internal_batch_size), k * batch),
                )
            for i, (g, x, b) in enumerate(zip(grads, big, bars)):
                contrib = g * (x - b) if self._multiply_by_inputs else g
                totals[i] += contrib.reshape((k,) + tuple(fmt[i].shape)).sum(0)
            if return_convergence_delta:
                with torch.no_grad():
                    out = run_forward(self.forward_func, bars, tgt, xargs)
                base_out += out.reshape(k, batch).sum(0).to(torch.float64)
        attrs = tuple(t / n_samples for t in totals)
        result = call.output(attrs)
        if not return_convergence_delta:
            return result
        return result, call.convergence_delta(self.forward_func, attrs, baseline_outputs=base_out / n_samples)
