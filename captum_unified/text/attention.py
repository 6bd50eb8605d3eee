r"""How peaked a trained transformer's attention is, against an embedding baseline.

DeepLIFT's split of a softmax row is exact in real arithmetic but has halves that grow
like :math:`e^{\text{gap}}`, where the gap is how far the row's largest logit moves
between the input and the baseline (SPEC §5b). :func:`attention_statistics` measures it
on any Hugging Face model that computes attention with an explicit softmax (a private
copy of the model is switched to ``attn_implementation="eager"``; the model passed in is
not touched): it runs the model on the input's embeddings and on a baseline's, records
every softmax call (the attention rows; the models' heads call none), and per row
(layer, head, query position) reports

* ``gap``: :math:`|\max_j z_j(x) - \max_j z_j(b)|` over the row's unmasked logits,
* ``max_delta``: :math:`\max_j |z_j(x) - z_j(b)|`,
* ``max_weight``: the largest attention weight of the row at the input.

Baselines: ``"zero"`` (every token's embedding replaced by zeros; positions, where the
model adds them, stay) or ``"pad"`` (every token's embedding replaced by the padding
token's).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

__all__ = ["AttentionStatistics", "attention_statistics"]

_SOFTMAXES = {F.softmax, torch.softmax, Tensor.softmax}


class _SoftmaxRecorder(TorchFunctionMode):
    # records (logits, weights, dim) of every softmax call inside the mode
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[Tensor, Tensor, int]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in _SOFTMAXES:
            dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
            if dim is None:
                raise ValueError("attention_statistics needs softmax calls with an explicit dim.")
            self.calls.append((args[0].detach(), out.detach(), int(dim)))
        return out


@dataclass
class AttentionStatistics:
    """Per-row attention statistics (see the module docstring), rows of every layer, head,
    query position and batch entry concatenated.

    Attributes:
        gap (Tensor): ``|max z(x) - max z(b)|`` per row.
        max_delta (Tensor): ``max |z(x) - z(b)|`` per row.
        max_weight (Tensor): the row's largest attention weight at the input.
    """

    gap: Tensor
    max_delta: Tensor
    max_weight: Tensor

    def summary(self) -> dict[str, float]:
        """Medians and 90th percentiles of the three statistics, and the number of rows."""
        out: dict[str, float] = {"rows": float(len(self.gap))}
        for name in ("gap", "max_delta", "max_weight"):
            values = getattr(self, name).double()
            out[f"median_{name}"] = float(values.median())
            out[f"p90_{name}"] = float(values.quantile(0.9))
        return out


def _query_mask(logits: Tensor, dim: int, attention_mask: Tensor | None) -> Tensor:
    # which rows belong to real (unpadded) query positions: attention logits are
    # (batch, ..., queries, keys) with the softmax over the keys
    n_rows = logits.numel() // logits.shape[dim]
    if attention_mask is None:
        return torch.ones(n_rows, dtype=torch.bool)
    b, length = attention_mask.shape
    last = dim % logits.dim() == logits.dim() - 1
    if not (last and logits.dim() >= 3 and logits.shape[0] == b and logits.shape[-2] == length):
        raise ValueError(
            f"attention_statistics cannot tell the query axis of softmax logits of shape {tuple(logits.shape)} "
            f"for an attention_mask of shape {tuple(attention_mask.shape)}; pass unpadded inputs instead."
        )
    q = attention_mask.bool().view(b, *([1] * (logits.dim() - 3)), length)
    return q.expand(logits.shape[:-1]).reshape(-1)


def _rows(t: Tensor, dim: int) -> Tensor:
    return t.movedim(dim, -1).reshape(-1, t.shape[dim])


@torch.no_grad()
def attention_statistics(
    model: nn.Module,
    input_ids: Tensor,
    baseline: str = "zero",
    attention_mask: Tensor | None = None,
    **forward_kwargs: Any,
) -> AttentionStatistics:
    """Attention-row statistics of ``model`` between ``input_ids`` and an embedding baseline.

    Args:
        model (nn.Module): a Hugging Face transformer with ``get_input_embeddings()`` that
            takes ``inputs_embeds`` (GPT-2, LLaMA, BERT, ...); left unchanged.
        input_ids (Tensor): token ids, shape ``(batch, length)``.
        baseline (str): ``"zero"`` or ``"pad"`` (see the module docstring).
        attention_mask (Tensor, optional): passed to the model; masked keys are left out of
            each row, and the rows of masked (padding) query positions are dropped.
        **forward_kwargs: further arguments of the model's forward.

    Returns:
        :class:`AttentionStatistics`.
    """
    if baseline not in ("zero", "pad"):
        raise ValueError(f"baseline must be 'zero' or 'pad', got {baseline!r}.")
    private: Any = copy.deepcopy(model).eval()
    if hasattr(private, "set_attn_implementation"):
        private.set_attn_implementation("eager")
    emb = private.get_input_embeddings()
    x_emb = emb(input_ids)
    if baseline == "zero":
        b_emb = torch.zeros_like(x_emb)
    else:
        pad_id = getattr(private.config, "pad_token_id", None)
        if pad_id is None:
            raise ValueError("baseline='pad' needs model.config.pad_token_id.")
        b_emb = emb(torch.full_like(input_ids, int(pad_id)))
    passes = []
    for e in (x_emb, b_emb):
        recorder = _SoftmaxRecorder()
        with recorder:
            private(inputs_embeds=e, attention_mask=attention_mask, **forward_kwargs)
        passes.append(recorder.calls)
    if not passes[0] or len(passes[0]) != len(passes[1]):
        raise RuntimeError(
            f"attention_statistics saw {len(passes[0])} softmax calls at the input and {len(passes[1])} "
            "at the baseline; it needs a model whose eager attention calls softmax once per layer."
        )
    gaps, deltas, weights = [], [], []
    for (zx, wx, dim), (zb, _, _) in zip(*passes):
        queries = _query_mask(zx, dim, attention_mask)
        zx, zb, wx = _rows(zx.double(), dim), _rows(zb.double(), dim), _rows(wx.double(), dim)
        floor = torch.finfo(torch.float32).min / 2
        valid = (zx > floor) & (zb > floor)
        keep = valid.any(-1) & queries
        neg = torch.tensor(float("-inf"), dtype=torch.float64)
        mx = torch.where(valid, zx, neg).amax(-1)
        mb = torch.where(valid, zb, neg).amax(-1)
        delta = torch.where(valid, (zx - zb).abs(), torch.zeros((), dtype=torch.float64)).amax(-1)
        gaps.append((mx - mb).abs()[keep])
        deltas.append(delta[keep])
        weights.append(wx.amax(-1)[keep])
    return AttentionStatistics(torch.cat(gaps), torch.cat(deltas), torch.cat(weights))
