r"""Occlusion-patch: patches, sliding windows and feature groups, batched."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from captum._utils.typing import BaselineType, TargetType, TensorOrTupleOfTensorsGeneric
from captum.attr._utils.attribution import PerturbationAttribution
from captum.log import log_usage
from torch import Tensor

from captum_unified._utils.call import AttributionCall
from captum_unified.feature_groups import FeatureGroups
from captum_unified.perturbation import MaskSource, PerturbationEngine

__all__ = ["OcclusionPatch", "window_masks"]

ShapeArg = int | Sequence[int]


def _per_input(value: Any, inputs: tuple[Tensor, ...], name: str) -> tuple[Any, ...]:
    """One entry (an int or a tuple of ints) per input, Captum's way: with one
    input tensor a value is that input's (an int or a per-dimension tuple); with
    several, a tuple holding one int or tuple per input tensor (an int alone
    applies to every input)."""
    n_inputs = len(inputs)
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * n_inputs
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{name} must be an int or a tuple, got {type(value).__name__}.")
    value = tuple(value)
    if n_inputs == 1:
        if len(value) == 1 and isinstance(value[0], (tuple, list)):
            return (tuple(value[0]),)
        return (value,)
    if len(value) != n_inputs or not all(isinstance(v, (int, tuple, list)) for v in value):
        raise ValueError(
            f"{name} must hold one entry (an int or a tuple of sizes) per input tensor when there "
            f"are {n_inputs} inputs, e.g. ((1, 2, 2), 3); got {value}."
        )
    return tuple(tuple(v) if isinstance(v, list) else v for v in value)


def _as_shape(value: ShapeArg, x: Tensor, name: str, k: int) -> tuple[int, ...]:
    feat = tuple(x.shape[1:])
    shape = (int(value),) * len(feat) if isinstance(value, int) else tuple(int(v) for v in value)
    if len(shape) != len(feat):
        raise ValueError(
            f"{name}[{k}] = {shape} has {len(shape)} dimension(s) but input {k} has per-sample "
            f"shape {feat} ({len(feat)} dimension(s)); give one size per non-batch dimension."
        )
    if any(s < 1 for s in shape):
        raise ValueError(f"{name}[{k}] = {shape} must contain positive sizes.")
    return shape


def _window_starts(feat: tuple[int, ...], window: tuple[int, ...], stride: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Captum's window positions: ``ceil((n - w) / s) + 1`` per dimension; the
    last window is cut at the border."""
    counts = [math.ceil((n - w) / s) + 1 for n, w, s in zip(feat, window, stride)]
    return [tuple(j * s for j, s in zip(idx, stride)) for idx in itertools.product(*[range(c) for c in counts])]


def window_masks(
    inputs: tuple[Tensor, ...],
    windows: tuple[tuple[int, ...], ...],
    strides: tuple[tuple[int, ...], ...],
) -> tuple[MaskSource, int]:
    """Mask source for sliding windows: the windows of input 0, then those of
    input 1, ...; a mask covers one window of one input and nothing else.

    Returns ``(masks, count)``; ``masks(start, stop)`` gives per input a bool
    tensor ``(stop - start, 1, *x.shape[1:])``.
    """
    table: list[tuple[int, tuple[slice, ...]]] = []
    for k, (x, w, s) in enumerate(zip(inputs, windows, strides)):
        for st in _window_starts(tuple(x.shape[1:]), w, s):
            table.append((k, tuple(slice(a, a + b) for a, b in zip(st, w))))

    def masks(start: int, stop: int) -> tuple[Tensor, ...]:
        out = [torch.zeros((stop - start, 1) + tuple(x.shape[1:]), dtype=torch.bool, device=x.device) for x in inputs]
        for row, (k, sl) in enumerate(table[start:stop]):
            out[k][(row, 0) + sl] = True
        return tuple(out)

    return masks, len(table)


class OcclusionPatch(PerturbationAttribution):
    r"""Occlusion-patch (Zeiler & Fergus 2014; Ancona et al. 2018 Fig. 1; Deng
    et al. 2021 Theorem 3): groups of features are replaced by their baseline as
    a whole and every feature of group :math:`P` receives the group's output
    change,

    .. math::

        R_i^c(x) = S_c(x) - S_c(x_{[x_P = \bar x_P]}), \qquad i \in P

    (divided by :math:`|P|` with ``divide_by_patch_size=True``, DeepExplain's
    convention, so that the attributions of a patch sum to its output change).
    In Taylor terms it is the first-order term plus the independent and the
    interactive terms inside the patch, the same value for every feature of the
    patch (Deng et al. Theorem 3).

    The groups are one of:

    * non-overlapping patches of shape ``patch_shapes`` (patches at the far
      border are cut to the input);
    * sliding windows of shape ``patch_shapes`` moved by ``strides``: each
      feature gets the mean output change of the windows covering it, which
      equals Captum's :class:`~captum.attr.Occlusion` with
      ``sliding_window_shapes=patch_shapes``;
    * any partition given by ``feature_mask`` (superpixels, tokens), with
      Captum's :class:`~captum.attr.FeatureAblation` semantics: the same id in
      several input tensors is one group, occluded in all of them together.

    Many perturbed copies of the batch go through each forward pass under
    ``torch.no_grad``, as many as fit ``max_batch_size`` rows and
    ``max_memory_mb`` (the shared engine
    :class:`~captum_unified.perturbation.PerturbationEngine`). Integer and bool
    inputs, input tensors with different first dimensions and models that
    return one value per batch (aggregate mode) follow Captum, as for
    :class:`~captum_unified.Occlusion1`.

    Args:
        forward_func (Callable): the model or any function built from torch ops.
    """

    def __init__(self, forward_func: Callable) -> None:
        PerturbationAttribution.__init__(self, forward_func)

    @property
    def multiplies_by_inputs(self) -> bool:
        return True

    @log_usage()
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        patch_shapes: Any = None,
        strides: Any = None,
        feature_mask: None | Tensor | tuple[Tensor, ...] = None,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        divide_by_patch_size: bool = False,
        perturbations_per_eval: int | None = None,
        show_progress: bool = False,
        max_batch_size: int | None = None,
        max_memory_mb: float | None = None,
    ) -> TensorOrTupleOfTensorsGeneric:
        r"""
        Args:
            inputs (Tensor or tuple[Tensor, ...]): inputs, batch first.
            patch_shapes (int, tuple or tuple, optional): patch (or window)
                shape per input, one size per non-batch dimension, e.g.
                ``(1, 2, 2)`` (one channel, 2×2 pixels) or ``(3, 4, 4)``; an
                int means that size in every dimension. With several input
                tensors, a tuple with one entry (an int or a shape) per input,
                e.g. ``((1, 2, 2), 3)``. Exactly one of ``patch_shapes`` and
                ``feature_mask`` must be given.
            strides (int, tuple or tuple, optional): if given, the patches are
                sliding windows moved by these steps (Captum's ``Occlusion``,
                with its forms: an int, a per-dimension tuple, or with several
                inputs one int or tuple per input); overlapping windows are
                averaged. Default: None (non-overlapping patches, stride =
                patch shape).
            feature_mask (Tensor or tuple[Tensor, ...], optional): group ids per
                input (Captum's ``FeatureAblation`` argument): integer or bool,
                broadcastable to the input, first dimension 1 or the batch
                size; negative ids are ordinary groups. See
                :class:`~captum_unified.feature_groups.FeatureGroups`.
            baselines (scalar, Tensor, tuple, optional): the value occluded
                features take (Captum's forms). Default: zeros.
            target (int, tuple, Tensor, list, optional): Captum's output selection.
            additional_forward_args (Any, optional): extra ``forward_func`` args.
            divide_by_patch_size (bool, optional): divide each patch's output
                change by its number of features (for sliding windows: each
                window's change by its size before averaging). Default: False.
            perturbations_per_eval (int, optional): occlusions per sample in one
                forward pass. Default: as many as fit the two bounds below.
            show_progress (bool, optional): show a tqdm progress bar.
            max_batch_size (int, optional): bound on the rows of one forward
                pass. Default: see
                :func:`captum_unified.perturbation.choose_chunk` (CPU: 1024
                rows and intermediate results within 32 MiB; CUDA: half the
                free device memory).
            max_memory_mb (float, optional): bound on the perturbed input batch
                in MiB. Default: 256 on the CPU.

        Returns:
            **attributions**, same type and shapes as ``inputs`` (Captum's
            aggregate mode: ``(n_outputs, *x.shape[1:])``). Their dtype is
            Captum's: with ``feature_mask`` (and no division) the model
            output's, as :class:`~captum.attr.FeatureAblation`; with patches
            floating, as :class:`~captum.attr.Occlusion` (the output's, or the
            default float dtype for an integer output).

        Raises:
            ValueError: an empty batch, NaN inputs, a bad mask, shape, stride,
                baseline or target.
        """
        call = AttributionCall.format(inputs, baselines, target, additional_forward_args, same_batch=False)
        fmt = call.inputs
        if (patch_shapes is None) == (feature_mask is None):
            raise ValueError("Give exactly one of `patch_shapes` (patches or sliding windows) and `feature_mask`.")
        if feature_mask is not None and strides is not None:
            raise ValueError("`strides` applies to `patch_shapes` windows, not to `feature_mask`.")
        engine = PerturbationEngine(
            self.forward_func,
            call,
            perturbations_per_eval=perturbations_per_eval,
            max_batch_size=max_batch_size,
            max_memory_mb=max_memory_mb,
            show_progress=show_progress,
        )
        if feature_mask is not None:  # Captum's FeatureAblation: the output's dtype
            groups = FeatureGroups.from_mask(feature_mask, fmt)
            return call.output(self._partition(engine, groups, divide_by_patch_size, ablation=True))

        shapes = tuple(
            _as_shape(p, x, "patch_shapes", k)
            for k, (x, p) in enumerate(zip(fmt, _per_input(patch_shapes, fmt, "patch_shapes")))
        )
        for k, (x, p) in enumerate(zip(fmt, shapes)):
            if any(s > n for s, n in zip(p, x.shape[1:])):
                raise ValueError(
                    f"patch_shapes[{k}] = {p} is larger than input {k}'s per-sample shape "
                    f"{tuple(x.shape[1:])} in some dimension; a patch must fit the input."
                )
        if strides is not None:
            steps = tuple(
                _as_shape(s, x, "strides", k) for k, (x, s) in enumerate(zip(fmt, _per_input(strides, fmt, "strides")))
            )
            if steps != shapes:
                return call.output(self._windows(engine, shapes, steps, divide_by_patch_size))
        return call.output(self._partition(engine, FeatureGroups.patches(fmt, shapes), divide_by_patch_size))

    @staticmethod
    def _partition(
        engine: PerturbationEngine, groups: FeatureGroups, divide: bool, ablation: bool = False
    ) -> tuple[Tensor, ...]:
        """Occlusion of a partition: in the output's dtype as Captum's
        FeatureAblation (``ablation`` without ``divide``), else floating as
        Captum's Occlusion (which averages over windows)."""
        with engine:
            dtype = engine.ablation_dtype if ablation and not divide else engine.dtype
            attrs = engine.occlude(groups, "Occlusion-patch", dtype)
        if divide:
            sizes = groups.scatter(groups.sizes().to(engine.dtype))
            attrs = tuple(a / s for a, s in zip(attrs, sizes))
        return attrs

    @staticmethod
    def _windows(engine: PerturbationEngine, shapes, steps, divide: bool) -> tuple[Tensor, ...]:
        """Captum's ``Occlusion``: each feature gets the mean output change of
        the windows covering it."""
        fmt = engine.call.inputs
        masks, n = window_masks(fmt, shapes, steps)
        with engine:
            dtype, rows = engine.dtype, engine.n_outputs
            totals = [torch.zeros((rows,) + tuple(x.shape[1:]), dtype=dtype, device=x.device) for x in fmt]
            counts = [torch.zeros((1,) + tuple(x.shape[1:]), dtype=dtype, device=x.device) for x in fmt]
            original = engine.original.to(dtype)

            def accumulate(start: int, stop: int, m: tuple[Tensor, ...], out: Tensor) -> None:
                diff = original.unsqueeze(0) - out.to(dtype)  # (k, n_outputs)
                for i, mi in enumerate(m):
                    mf = mi.reshape(mi.shape[0], -1).to(dtype)  # (k, N)
                    w = mf / mf.sum(1, keepdim=True).clamp(min=1) if divide else mf
                    totals[i] += (diff.t() @ w).reshape(totals[i].shape)
                    counts[i] += mf.sum(0).reshape(counts[i].shape)

            engine.outputs(masks, n, "Occlusion (windows)", on_chunk=accumulate)
        return tuple(t / c.clamp(min=1) for t, c in zip(totals, counts))
