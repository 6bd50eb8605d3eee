r"""Occlusion-1 and the group-ablation routine the occlusion family shares."""
from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

import torch
from captum._utils.typing import BaselineType, TargetType, TensorOrTupleOfTensorsGeneric
from captum.attr._utils.attribution import PerturbationAttribution
from captum.log import log_usage
from torch import Tensor

from captum_unified._utils.common import (
    _format_output,
    _is_tuple,
    format_additional_args,
    format_baselines,
    format_inputs,
)
from captum_unified.perturbation import choose_chunk, group_masks, iter_perturbed_outputs, measured_forward

__all__ = ["Occlusion1", "ablate_groups", "feature_groups"]


def feature_groups(inputs: Tuple[Tensor, ...]) -> Tuple[Tuple[Tensor, ...], int]:
    """One group per feature, numbered across all inputs: ``(groups, count)``."""
    groups, offset = [], 0
    for x in inputs:
        n = x[0].numel()
        groups.append(torch.arange(offset, offset + n, device=x.device).reshape((1,) + tuple(x.shape[1:])))
        offset += n
    return tuple(groups), offset


def ablate_groups(
    forward_func: Callable,
    inputs: Tuple[Tensor, ...],
    baselines: Tuple[Tensor, ...],
    groups: Tuple[Tensor, ...],
    n_groups: int,
    target: TargetType,
    additional_args: Tuple[Any, ...],
    perturbations_per_eval: Optional[int] = None,
    max_batch_size: Optional[int] = None,
    max_memory_mb: Optional[float] = None,
    show_progress: bool = False,
    desc: str = "Occlusion",
) -> Tuple[Tensor, ...]:
    r"""Attribution of a partition: every feature of group :math:`G_k` receives
    :math:`S_c(x) - S_c(x_{[G_k = \bar x]})`.

    A group whose features already equal their baseline changes nothing: its
    attribution is exactly 0 and it costs no forward pass.

    Args:
        groups: per input, integer group ids of shape ``(1 or batch, *x.shape[1:])``;
            ids run over ``0..n_groups-1`` across inputs, negative ids are never
            occluded (attribution 0).
    """
    original, act_bytes = measured_forward(forward_func, inputs, target, additional_args)
    chunk = choose_chunk(n_groups, inputs, perturbations_per_eval, max_batch_size, max_memory_mb, act_bytes)
    batch = inputs[0].shape[0]
    diffs = torch.empty(n_groups, batch, dtype=original.dtype, device=original.device)
    for start, stop, _, out in iter_perturbed_outputs(
        forward_func, inputs, baselines, group_masks(groups), n_groups,
        target, additional_args, chunk, show_progress, desc, unchanged_output=original,
    ):
        diffs[start:stop] = original.unsqueeze(0) - out
    attrs = []
    for x, g in zip(inputs, groups):
        g = g.expand((g.shape[0],) + tuple(x.shape[1:]))
        valid = g >= 0
        idx = g.clamp(min=0).reshape(g.shape[0], -1)  # (1 or B, N)
        per_sample = diffs.t()  # (B, G)
        if idx.shape[0] == 1:
            a = per_sample[:, idx[0]]
        else:
            a = torch.gather(per_sample, 1, idx)
        a = a.reshape((batch,) + tuple(x.shape[1:])) * valid
        attrs.append(a.to(x.dtype))
    return tuple(attrs)


class Occlusion1(PerturbationAttribution):
    r"""Occlusion-1 (Zeiler & Fergus 2014; Ancona et al. Table 1): each feature
    in turn is set to its baseline,

    .. math::

        R_i^c(x) = S_c(x) - S_c(x_{[x_i = \bar x_i]}).

    It satisfies Sensitivity-1 by construction (Ancona §4) and is the first
    order plus independent Taylor terms (Deng et al. Theorem 2). Equal to
    Captum's :class:`~captum.attr.Occlusion` with windows of shape 1, but many
    perturbed copies go through each forward pass (under ``torch.no_grad``),
    which makes it several times faster. For occluding pixels (all channels
    together) or patches use :class:`~captum_unified.OcclusionPatch`.

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
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        perturbations_per_eval: Optional[int] = None,
        show_progress: bool = False,
        max_batch_size: Optional[int] = None,
        max_memory_mb: Optional[float] = None,
    ) -> TensorOrTupleOfTensorsGeneric:
        r"""
        Args:
            inputs (Tensor or tuple[Tensor, ...]): inputs, batch first.
            baselines (scalar, Tensor, tuple, optional): the value each occluded
                feature takes (Captum's forms). Default: zeros.
            target (int, tuple, Tensor, list, optional): Captum's output selection.
            additional_forward_args (Any, optional): extra ``forward_func`` args.
            perturbations_per_eval (int, optional): occlusions per sample in one
                forward pass (Captum's argument). Default: as many as fit
                ``max_batch_size`` rows and ``max_memory_mb``.
            show_progress (bool, optional): show a tqdm progress bar.
            max_batch_size (int, optional): bound on rows per forward pass when
                ``perturbations_per_eval`` is None. Default: 1024, and on the
                CPU also as many rows as keep the intermediate results of one
                pass within 32 MiB (measured on the unperturbed forward; see
                :func:`captum_unified.perturbation.choose_chunk`).
            max_memory_mb (float, optional): bound on the perturbed input batch,
                in MiB, when ``perturbations_per_eval`` is None. Default: 256.

        Returns:
            **attributions**, same type and shapes as ``inputs``.
        """
        is_tuple = _is_tuple(inputs)
        fmt = format_inputs(inputs)
        base = format_baselines(baselines, fmt)
        args = format_additional_args(additional_forward_args)
        groups, n = feature_groups(fmt)
        attrs = ablate_groups(
            self.forward_func, fmt, base, groups, n, target, args,
            perturbations_per_eval, max_batch_size, max_memory_mb, show_progress, "Occlusion-1",
        )
        return _format_output(is_tuple, attrs)
