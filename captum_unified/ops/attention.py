r"""Attention: ``F.scaled_dot_product_attention`` as ``softmax(q k^T * scale
+ mask) v`` (masks, causal, GQA, dropout), so the rule reaches the scores'
product, the softmax and the weighting of the values.
``F.multi_head_attention_forward`` is a Python function followed op by op
(:data:`captum_unified.ops.composites.TRANSPARENT`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from captum_unified.ops.calls import arg, functions
from captum_unified.ops.rows import CompositeOp

__all__ = ["ROWS"]


def _sdpa(ctx, func, args, kwargs, consts):
    """``softmax(q k^T * scale + mask) v`` (masks, causal, GQA, dropout)."""
    q, k, v = arg(args, kwargs, 0, "query"), arg(args, kwargs, 1, "key"), arg(args, kwargs, 2, "value")
    attn_mask = arg(args, kwargs, 3, "attn_mask")
    dropout_p = float(arg(args, kwargs, 4, "dropout_p", 0.0))
    is_causal = bool(arg(args, kwargs, 5, "is_causal", False))
    scale = kwargs.get("scale", args[6] if len(args) > 6 else None)
    enable_gqa = bool(kwargs.get("enable_gqa", args[7] if len(args) > 7 else False))
    L, S = q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    if enable_gqa and k.shape[-3] != q.shape[-3]:
        rep = q.shape[-3] // k.shape[-3]
        k = k.repeat_interleave(rep, -3)
        v = v.repeat_interleave(rep, -3)
    scores = torch.matmul(q, k.transpose(-2, -1)) * scale
    if is_causal:
        causal = torch.ones(L, S, dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    attn = torch.softmax(scores, -1)
    if dropout_p > 0:
        attn = F.dropout(attn, dropout_p, True)
    return torch.matmul(attn, v)


#: Scaled dot-product attention.
ROWS: tuple[CompositeOp, ...] = (
    CompositeOp("scaled_dot_product_attention", _sdpa, functions((F, "scaled_dot_product_attention"))),
)
