r"""Occlusion-patch: patches, sliding windows and feature groups, batched."""
from __future__ import annotations

import itertools
import math
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import torch
from captum._utils.typing import BaselineType, TargetType, TensorOrTupleOfTensorsGeneric
from captum.attr._utils.attribution import PerturbationAttribution
from torch import Tensor

from captum_unified._utils.common import (
    _format_output,
    _is_tuple,
    format_additional_args,
    format_baselines,
    format_inputs,
)
from captum_unified.attr._core.occlusion import ablate_groups
from captum_unified.perturbation import MaskSource, choose_chunk, iter_perturbed_outputs, measured_forward

__all__ = ["OcclusionPatch", "patch_groups", "mask_groups", "window_masks"]

ShapeArg = Union[int, Sequence[int]]


def _per_input(value: Any, n_inputs: int, name: str) -> Tuple[Any, ...]:
    """One entry per input: a tuple of per-input values, or one value for all."""
    if value is None:
        return (None,) * n_inputs
    if isinstance(value, tuple) and value and all(isinstance(v, (tuple, list, type(None))) for v in value):
        if len(value) != n_inputs:
            raise ValueError(f"{n_inputs} input tensor(s) but {len(value)} {name}: give one per input tensor.")
        return value
    if n_inputs > 1 and not isinstance(value, int):
        raise ValueError(
            f"{name} must be a tuple with one shape per input tensor when there are "
            f"{n_inputs} inputs, e.g. ((1, 2, 2), (3,))."
        )
    return (value,) * n_inputs


def _as_shape(value: ShapeArg, x: Tensor, name: str, k: int) -> Tuple[int, ...]:
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


def patch_groups(inputs: Tuple[Tensor, ...], patch_shapes: Tuple[Tuple[int, ...], ...]) -> Tuple[Tuple[Tensor, ...], int]:
    """Non-overlapping patches as group ids, numbered across inputs.

    Patch ``(j_1, ..., j_d)`` of input ``k`` covers indices ``j_m p_m .. (j_m + 1) p_m - 1``;
    patches at the far border are cut to the input (partial patches).
    Returns ``(groups, count)`` with groups of shape ``(1, *x.shape[1:])``.
    """
    groups, offset = [], 0
    for x, p in zip(inputs, patch_shapes):
        feat = tuple(x.shape[1:])
        grid = [math.ceil(n / s) for n, s in zip(feat, p)]
        ids = torch.zeros(feat, dtype=torch.long, device=x.device)
        mult = 1
        for d in reversed(range(len(feat))):
            coord = torch.arange(feat[d], device=x.device) // p[d]
            view = [1] * len(feat)
            view[d] = feat[d]
            ids = ids + coord.view(view) * mult
            mult *= grid[d]
        groups.append((ids + offset).unsqueeze(0))
        offset += mult
    return tuple(groups), offset


def mask_groups(inputs: Tuple[Tensor, ...], feature_mask: Any) -> Tuple[Tuple[Tensor, ...], int]:
    """Captum ``feature_mask`` (ids shared across inputs ablate together) to
    consecutive group ids ``0..G-1``: ``(groups, G)``."""
    masks = feature_mask if isinstance(feature_mask, tuple) else (feature_mask,)
    if len(masks) != len(inputs):
        raise ValueError(
            f"{len(inputs)} input tensor(s) but {len(masks)} feature mask(s): give one mask per input tensor."
        )
    expanded = []
    for k, (x, m) in enumerate(zip(inputs, masks)):
        if not isinstance(m, Tensor):
            raise TypeError(f"feature_mask[{k}] is a {type(m).__name__}; masks must be integer tensors.")
        if m.is_floating_point() or m.is_complex() or m.dtype == torch.bool:
            raise TypeError(f"feature_mask[{k}] has dtype {m.dtype}; use an integer tensor of group ids.")
        m = m.to(x.device)
        if m.dim() == x.dim() - 1:
            m = m.unsqueeze(0)
        ok = m.dim() == x.dim() and m.shape[0] in (1, x.shape[0])
        if ok:
            try:
                torch.broadcast_shapes(tuple(m.shape[1:]), tuple(x.shape[1:]))
                ok = torch.broadcast_shapes(tuple(m.shape[1:]), tuple(x.shape[1:])) == tuple(x.shape[1:])
            except RuntimeError:
                ok = False
        if not ok:
            raise ValueError(
                f"feature_mask[{k}] has shape {tuple(m.shape)}, which does not fit input shape "
                f"{tuple(x.shape)}: use a tensor broadcastable to {(1,) + tuple(x.shape[1:])} or "
                f"{tuple(x.shape)} (first dimension 1 or the batch size)."
            )
        expanded.append(m.expand((m.shape[0],) + tuple(x.shape[1:])))
    flat = torch.cat([m.reshape(-1) for m in expanded])
    uniq, inverse = torch.unique(flat, return_inverse=True)
    groups, pos = [], 0
    for m in expanded:
        n = m.numel()
        groups.append(inverse[pos:pos + n].reshape(m.shape))
        pos += n
    return tuple(groups), int(uniq.numel())


def _group_sizes(groups: Tuple[Tensor, ...], n_groups: int, batch: int) -> Tuple[Tensor, ...]:
    """For each feature, the number of features (over all inputs) in its group."""
    rows = max(g.shape[0] for g in groups)
    counts = torch.zeros(rows, n_groups, dtype=torch.long, device=groups[0].device)
    for g in groups:
        flat = g.reshape(g.shape[0], -1)
        counts += torch.zeros(g.shape[0], n_groups, dtype=torch.long, device=g.device).scatter_add_(
            1, flat, torch.ones_like(flat)
        )
    out = []
    for g in groups:
        flat = g.reshape(g.shape[0], -1)
        c = counts if g.shape[0] == rows else counts[:1]
        out.append(torch.gather(c.expand(g.shape[0], -1), 1, flat).reshape(g.shape))
    return tuple(out)


def _window_starts(feat: Tuple[int, ...], window: Tuple[int, ...], stride: Tuple[int, ...]) -> List[Tuple[int, ...]]:
    """Captum's window positions: ``ceil((n - w) / s) + 1`` per dimension; the
    last window is cut at the border."""
    counts = [math.ceil((n - w) / s) + 1 for n, w, s in zip(feat, window, stride)]
    return [
        tuple(j * s for j, s in zip(idx, stride))
        for idx in itertools.product(*[range(c) for c in counts])
    ]


def window_masks(
    inputs: Tuple[Tensor, ...],
    windows: Tuple[Tuple[int, ...], ...],
    strides: Tuple[Tuple[int, ...], ...],
) -> Tuple[MaskSource, int]:
    """Mask source for sliding windows: the windows of input 0, then those of
    input 1, ...; a mask covers one window of one input and nothing else.

    Returns ``(masks, count)``; ``masks(start, stop)`` gives per input a bool
    tensor ``(stop - start, 1, *x.shape[1:])``.
    """
    table: List[Tuple[int, Tuple[slice, ...]]] = []
    for k, (x, w, s) in enumerate(zip(inputs, windows, strides)):
        for st in _window_starts(tuple(x.shape[1:]), w, s):
            table.append((k, tuple(slice(a, a + b) for a, b in zip(st, w))))

    def masks(start: int, stop: int) -> Tuple[Tensor, ...]:
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
    ``max_memory_mb`` (the shared engine :mod:`captum_unified.perturbation`).

    Args:
        forward_func (Callable): the model or any function built from torch ops.
    """

    def __init__(self, forward_func: Callable) -> None:
        PerturbationAttribution.__init__(self, forward_func)

    @property
    def multiplies_by_inputs(self) -> bool:
        return True

    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        patch_shapes: Any = None,
        strides: Any = None,
        feature_mask: Union[None, Tensor, Tuple[Tensor, ...]] = None,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        divide_by_patch_size: bool = False,
        perturbations_per_eval: Optional[int] = None,
        show_progress: bool = False,
        max_batch_size: Optional[int] = None,
        max_memory_mb: Optional[float] = None,
    ) -> TensorOrTupleOfTensorsGeneric:
        r"""
        Args:
            inputs (Tensor or tuple[Tensor, ...]): inputs, batch first.
            patch_shapes (int, tuple or tuple[tuple, ...], optional): patch (or
                window) shape per input, one size per non-batch dimension, e.g.
                ``(1, 2, 2)`` (one channel, 2×2 pixels) or ``(3, 4, 4)``; an
                int means that size in every dimension; a tuple of tuples gives
                one shape per input tensor. Exactly one of ``patch_shapes`` and
                ``feature_mask`` must be given.
            strides (int, tuple or tuple[tuple, ...], optional): if given, the
                patches are sliding windows moved by these steps (Captum's
                ``Occlusion``); overlapping windows are averaged. Default: None
                (non-overlapping patches, stride = patch shape).
            feature_mask (Tensor or tuple[Tensor, ...], optional): integer group
                ids per input, broadcastable to the input with first dimension 1
                or the batch size (Captum's ``FeatureAblation`` argument).
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
                pass. Default: 1024, and on the CPU also as many rows as keep
                the intermediate results of one pass within 32 MiB (see
                :func:`captum_unified.perturbation.choose_chunk`).
            max_memory_mb (float, optional): bound on the perturbed input batch
                in MiB. Default: 256.

        Returns:
            **attributions**, same type and shapes as ``inputs``.
        """
        is_tuple = _is_tuple(inputs)
        fmt = format_inputs(inputs)
        base = format_baselines(baselines, fmt)
        args = format_additional_args(additional_forward_args)
        if (patch_shapes is None) == (feature_mask is None):
            raise ValueError("Give exactly one of `patch_shapes` (patches or sliding windows) and `feature_mask`.")
        if feature_mask is not None and strides is not None:
            raise ValueError("`strides` applies to `patch_shapes` windows, not to `feature_mask`.")
        bounds = (perturbations_per_eval, max_batch_size, max_memory_mb)
        if feature_mask is not None:
            groups, n = mask_groups(fmt, feature_mask)
            return _format_output(is_tuple, self._partition(fmt, base, groups, n, target, args, divide_by_patch_size, bounds, show_progress))

        shapes = tuple(
            _as_shape(p, x, "patch_shapes", k)
            for k, (x, p) in enumerate(zip(fmt, _per_input(patch_shapes, len(fmt), "patch_shapes")))
        )
        for k, (x, p) in enumerate(zip(fmt, shapes)):
            if any(s > n for s, n in zip(p, x.shape[1:])):
                raise ValueError(
                    f"patch_shapes[{k}] = {p} is larger than input {k}'s per-sample shape "
                    f"{tuple(x.shape[1:])} in some dimension; a patch must fit the input."
                )
        if strides is not None:
            steps = tuple(
                _as_shape(s if s is not None else 1, x, "strides", k)
                for k, (x, s) in enumerate(zip(fmt, _per_input(strides, len(fmt), "strides")))
            )
            if steps != shapes:
                return _format_output(
                    is_tuple, self._windows(fmt, base, shapes, steps, target, args, divide_by_patch_size, bounds, show_progress)
                )
        groups, n = patch_groups(fmt, shapes)
        return _format_output(is_tuple, self._partition(fmt, base, groups, n, target, args, divide_by_patch_size, bounds, show_progress))

    def _partition(self, fmt, base, groups, n, target, args, divide, bounds, show_progress) -> Tuple[Tensor, ...]:
        attrs = ablate_groups(
            self.forward_func, fmt, base, groups, n, target, args, *bounds, show_progress, "Occlusion-patch"
        )
        if divide:
            sizes = _group_sizes(groups, n, fmt[0].shape[0])
            attrs = tuple(a / s.to(a.dtype) for a, s in zip(attrs, sizes))
        return attrs

    def _windows(self, fmt, base, shapes, steps, target, args, divide, bounds, show_progress) -> Tuple[Tensor, ...]:
        masks, n = window_masks(fmt, shapes, steps)
        original, act_bytes = measured_forward(self.forward_func, fmt, target, args)
        chunk = choose_chunk(n, fmt, *bounds, act_bytes)
        totals = [torch.zeros(x.shape, dtype=original.dtype, device=x.device) for x in fmt]
        counts = [torch.zeros((1,) + tuple(x.shape[1:]), dtype=original.dtype, device=x.device) for x in fmt]
        for _, _, m, out in iter_perturbed_outputs(
            self.forward_func, fmt, base, masks, n, target, args, chunk, show_progress, "Occlusion (windows)"
        ):
            diff = original.unsqueeze(0) - out  # (k, B)
            for i, (x, mi) in enumerate(zip(fmt, m)):
                mf = mi.reshape(mi.shape[0], -1).to(diff.dtype)  # (k, N)
                if divide:
                    size = mf.sum(1, keepdim=True).clamp(min=1)
                    w = mf / size
                else:
                    w = mf
                totals[i] += (diff.t() @ w).reshape(x.shape)
                counts[i] += mf.sum(0).reshape(counts[i].shape)
        return tuple((t / c.clamp(min=1)).to(x.dtype) for t, c, x in zip(totals, counts, fmt))
