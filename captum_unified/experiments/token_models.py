"""The trained transformers of ``reproduce transformers`` as functions of their tokens'
embedding vectors (shared by :mod:`~captum_unified.experiments.language_models` and the LXT
worker, :mod:`~captum_unified.experiments.lxt_worker`)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["TokenModel", "NextTokenLogProb"]


class TokenModel(nn.Module):
    r"""A model as a function of its tokens' embedding vectors, with an identity module
    ``tokens`` at the input (the token-embedding output Captum's layer methods attribute to).

    ``forward(x)`` with ``x`` of shape ``(B, L, D)`` returns ``inner(tokens(x))`` (the
    classifier's logits or :class:`NextTokenLogProb`'s log-probabilities, ``(B, classes)``)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.tokens = nn.Identity()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(self.tokens(x))


class NextTokenLogProb(nn.Module):
    r"""A causal language model as a function of the embeddings of a window: ``forward(x)``
    returns :math:`\log\operatorname{softmax}` of the logits at the window's last position,
    ``(B, vocab)``, the window read behind the fixed ``prefix`` embeddings (``<bos>``)."""

    def __init__(self, model: nn.Module, prefix: Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("prefix", prefix.detach().reshape(1, -1, prefix.shape[-1]))

    prefix: Tensor

    def forward(self, x: Tensor) -> Tensor:
        pre = self.prefix.expand(x.shape[0], -1, -1).to(x.dtype)
        logits = self.model(inputs_embeds=torch.cat([pre, x], dim=1)).logits
        return torch.log_softmax(logits[:, -1], dim=-1)
