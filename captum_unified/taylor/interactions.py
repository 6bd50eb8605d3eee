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

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from captum_unified._utils.call import AttributionCall
from captum_unified.feature_groups import FeatureGroups
from captum_unified.taylor.terms import _flat, batched_hvp, format_call

__all__ = ["group_interactions"]


def group_interactions(
    forward_func: Callable,
    inputs: Tensor | tuple[Tensor, ...],
    feature_mask: Tensor | tuple[Tensor, ...],
    baselines: Any = None,
    target: Any = None,
    additional_forward_args: Any = None,
    max_chunk: int | None = None,
) -> Tensor:
    r"""Group interaction matrices
    :math:`M_{kl} = \sum_{i \in G_k, j \in G_l} H_{ij}\delta_i\delta_j` per sample.

    ``K`` HVPs per sample (one per group indicator times :math:`\delta`), batched
    by :func:`~captum_unified.taylor.terms.batched_hvp`; a 224×224 image with
    16×16 patches needs 196 HVPs, not a 150528² Hessian.

    Args:
        forward_func (Callable): the model.
        inputs (Tensor or tuple[Tensor, ...]): inputs, batch first, floating
            (integer or bool inputs are a ``TypeError``: attribute to the
            embedding layer instead).
        feature_mask (Tensor or tuple[Tensor, ...]): Captum's ``feature_mask``
            (:class:`~captum_unified.feature_groups.FeatureGroups`: integer or
            bool ids per feature, broadcastable to each input, shared or per
            sample; any ids, negative ones included). The ``K`` distinct ids,
            sorted, index the rows and columns: ``M[:, k, l]`` belongs to the
            ``k``-th and ``l``-th smallest ids (ids ``{0, 5}`` give a 2×2 matrix).
        baselines (scalar, Tensor, tuple, optional): :math:`\bar x`. Default: zeros.
        target (int, tuple, Tensor, list, optional): Captum's output selection.
        additional_forward_args (Any, optional): extra ``forward_func`` args.
        max_chunk (int, optional): groups per vectorised HVP pass.

    Returns:
        Tensor of shape ``(batch, K, K)``, symmetric. Its sum is
        :math:`\delta^\top H \delta`; ``-0.5 * M.diagonal(dim1=1, dim2=2)`` is each
        group's own second-order term and ``-M[:, k, l]`` (``k != l``) the
        interactive term of the pair.

    Raises:
        ValueError: an empty batch, NaN inputs, a mask that does not fit.
    """
    call = format_call(inputs, baselines, target, additional_forward_args)
    return _interactions(forward_func, call, FeatureGroups.from_mask(feature_mask, call.inputs), max_chunk)


def _interactions(
    forward_func: Callable, call: AttributionCall, groups: FeatureGroups, max_chunk: int | None = None
) -> Tensor:
    """:func:`group_interactions` of a formatted call and its feature groups."""
    ids, n_groups = groups.flat_ids(), groups.n_groups
    batch = call.batch
    delta = _flat(tuple(d.detach() for d in call.deltas), batch)  # (B, N)

    def vectors(start: int, stop: int) -> Tensor:
        g = torch.arange(start, stop, device=ids.device).view(-1, 1, 1)
        return (ids.unsqueeze(0) == g).to(delta.dtype) * delta.unsqueeze(0)

    hv = batched_hvp(
        forward_func, call.inputs, vectors, n_groups, call.target, call.additional_args, max_chunk
    )  # (K, B, N)
    onehot = torch.nn.functional.one_hot(ids, n_groups).to(delta.dtype)  # (B, N, K)
    # M[b, k, l] = sum_i 1[i in G_k] delta_i (H u_l)_i
    m = torch.einsum("bnk,lbn->bkl", onehot * delta.unsqueeze(-1), hv)
    return 0.5 * (m + m.transpose(1, 2))
