r"""Pairwise second-order interactions between feature groups (patches,
superpixels, tokens).

For groups :math:`G_1..G_K` given by a Captum-style ``feature_mask`` the
interaction matrix of a sample is

.. math::

    M_{kl} = \sum_{i \in G_k} \sum_{j \in G_l} H_{ij}\, \delta_i \delta_j
           = (\delta \odot 1_{G_k})^\top H\, (\delta \odot 1_{G_l}),

computed with ``K`` Hessian-vector products per sample (one per group vector
:math:`u_l = \delta \odot 1_{G_l}`), never the ``N × N`` Hessian. The second
order term of the expansion is :math:`-\tfrac12 \sum_{k,l} M_{kl}`; the
interactive term of a group pair :math:`k \ne l` is :math:`-M_{kl}` and a group's
own second-order term (independent + interactive inside it) is
:math:`-\tfrac12 M_{kk}`.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Tuple, Union

import torch
from torch import Tensor

from captum_unified._utils.common import (
    format_additional_args,
    format_baselines,
    format_inputs,
)
from captum_unified.taylor.terms import _delta, _flat, batched_hvp

__all__ = ["format_feature_mask", "group_interactions"]


def format_feature_mask(
    feature_mask: Union[Tensor, Tuple[Tensor, ...]], inputs: Tuple[Tensor, ...]
) -> Tuple[Tensor, int]:
    """Turn a Captum-style ``feature_mask`` into flat per-sample group ids.

    Args:
        feature_mask (Tensor or tuple[Tensor, ...]): one integer tensor per
            input, broadcastable to ``(1 or batch, *input.shape[1:])``; ids are
            ``0..K-1`` across all inputs (Captum's convention).
        inputs (tuple[Tensor, ...]): formatted inputs.

    Returns:
        ``(ids, K)``: ids of shape ``(batch, N)`` and the group count.
    """
    if isinstance(feature_mask, Tensor):
        feature_mask = (feature_mask,)
    if len(feature_mask) != len(inputs):
        raise ValueError(
            f"{len(inputs)} input tensor(s) but {len(feature_mask)} feature_mask tensor(s); "
            "give one mask per input."
        )
    batch = inputs[0].shape[0]
    flat = []
    for k, (m, x) in enumerate(zip(feature_mask, inputs)):
        if m.is_floating_point() or m.is_complex():
            raise TypeError(f"feature_mask[{k}] must hold integer group ids, got {m.dtype}.")
        try:
            m = m.to(x.device).expand((batch,) + tuple(x.shape[1:]))
        except RuntimeError as err:
            raise ValueError(
                f"feature_mask[{k}] of shape {tuple(m.shape)} does not broadcast to input "
                f"shape {tuple(x.shape)}."
            ) from err
        flat.append(m.reshape(batch, -1))
    ids = torch.cat(flat, dim=1).long()
    if bool((ids < 0).any()):
        raise ValueError("feature_mask ids must be >= 0.")
    return ids, int(ids.max()) + 1


def group_interactions(
    forward_func: Callable,
    inputs: Union[Tensor, Tuple[Tensor, ...]],
    feature_mask: Union[Tensor, Tuple[Tensor, ...]],
    baselines: Any = None,
    target: Any = None,
    additional_forward_args: Any = None,
    max_chunk: Optional[int] = None,
) -> Tensor:
    r"""Group interaction matrices
    :math:`M_{kl} = \sum_{i \in G_k, j \in G_l} H_{ij}\delta_i\delta_j` per sample.

    ``K`` HVPs per sample (one per group indicator times :math:`\delta`), batched
    by :func:`~captum_unified.taylor.terms.batched_hvp`; a 224×224 image with
    16×16 patches needs 196 HVPs, not a 150528² Hessian.

    Args:
        forward_func (Callable): the model.
        inputs (Tensor or tuple[Tensor, ...]): inputs, batch first.
        feature_mask (Tensor or tuple[Tensor, ...]): integer group ids
            ``0..K-1`` per feature (Captum's ``feature_mask``), broadcastable to
            each input; may differ per sample.
        baselines (scalar, Tensor, tuple, optional): :math:`\bar x`. Default: zeros.
        target (int, tuple, Tensor, list, optional): Captum's output selection.
        additional_forward_args (Any, optional): extra ``forward_func`` args.
        max_chunk (int, optional): groups per vectorised HVP pass.

    Returns:
        Tensor of shape ``(batch, K, K)``, symmetric. Its sum is
        :math:`\delta^\top H \delta`; ``-0.5 * M.diagonal(dim1=1, dim2=2)`` is each
        group's own second-order term and ``-M[:, k, l]`` (``k != l``) the
        interactive term of the pair.
    """
    fmt = format_inputs(inputs)
    base = format_baselines(baselines, fmt)
    args = format_additional_args(additional_forward_args)
    ids, n_groups = format_feature_mask(feature_mask, fmt)
    batch = fmt[0].shape[0]
    delta = _flat(_delta(fmt, base), batch)  # (B, N)

    def vectors(start: int, stop: int) -> Tensor:
        g = torch.arange(start, stop, device=ids.device).view(-1, 1, 1)
        return (ids.unsqueeze(0) == g).to(delta.dtype) * delta.unsqueeze(0)

    hv = batched_hvp(forward_func, fmt, vectors, n_groups, target, args, max_chunk)  # (K, B, N)
    onehot = torch.nn.functional.one_hot(ids, n_groups).to(delta.dtype)  # (B, N, K)
    # M[b, k, l] = sum_i 1[i in G_k] delta_i (H u_l)_i
    m = torch.einsum("bnk,lbn->bkl", onehot * delta.unsqueeze(-1), hv)
    return 0.5 * (m + m.transpose(1, 2))
