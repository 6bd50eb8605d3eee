r"""Occlusion-1: one feature at a time set to its baseline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from captum._utils.typing import BaselineType, TargetType, TensorOrTupleOfTensorsGeneric
from captum.attr._utils.attribution import PerturbationAttribution
from captum.log import log_usage

from captum_unified._utils.call import AttributionCall
from captum_unified.feature_groups import FeatureGroups
from captum_unified.perturbation import PerturbationEngine

__all__ = ["Occlusion1"]


class Occlusion1(PerturbationAttribution):
    r"""Occlusion-1 (Zeiler & Fergus 2014; Ancona et al. Table 1): each feature
    in turn is set to its baseline,

    .. math::

        R_i^c(x) = S_c(x) - S_c(x_{[x_i = \bar x_i]}).

    It satisfies Sensitivity-1 by construction (Ancona §4) and is the first
    order plus independent Taylor terms (Deng et al. Theorem 2). Equal to
    Captum's :class:`~captum.attr.FeatureAblation` without a mask (and to
    :class:`~captum.attr.Occlusion` with windows of shape 1), but many
    perturbed copies go through each forward pass (under ``torch.no_grad``,
    :class:`~captum_unified.perturbation.PerturbationEngine`), which makes it
    several times faster. For occluding pixels (all channels together) or
    patches use :class:`~captum_unified.OcclusionPatch`.

    Captum's conventions hold: integer or bool inputs (token ids, binary
    features) are occluded as they are; the attributions have the model
    output's dtype, as :class:`~captum.attr.FeatureAblation`'s (integer output
    changes for a model with integer outputs; a bool output, where Captum
    raises, gives the default float dtype); input
    tensors whose first dimensions differ and models that return one value for
    the whole batch (Captum's aggregate mode; attributions then have shape
    ``(n_outputs, *x.shape[1:])``) are evaluated one perturbation per pass.

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
        perturbations_per_eval: int | None = None,
        show_progress: bool = False,
        max_batch_size: int | None = None,
        max_memory_mb: float | None = None,
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
                ``perturbations_per_eval`` is None. Default: see
                :func:`captum_unified.perturbation.choose_chunk` (CPU: 1024
                rows and intermediate results within 32 MiB; CUDA: half the
                free device memory).
            max_memory_mb (float, optional): bound on the perturbed input batch,
                in MiB, when ``perturbations_per_eval`` is None. Default: 256 on
                the CPU.

        Returns:
            **attributions**, same type and shapes as ``inputs``, in the
            model output's dtype (see above).

        Raises:
            ValueError: an empty batch, NaN inputs, a bad baseline or target.
        """
        call = AttributionCall.format(inputs, baselines, target, additional_forward_args, same_batch=False)
        with PerturbationEngine(
            self.forward_func,
            call,
            perturbations_per_eval=perturbations_per_eval,
            max_batch_size=max_batch_size,
            max_memory_mb=max_memory_mb,
            show_progress=show_progress,
        ) as engine:
            attrs = engine.occlude(FeatureGroups.per_feature(call.inputs), "Occlusion-1", engine.ablation_dtype)
        return call.output(attrs)
