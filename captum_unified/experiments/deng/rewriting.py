"""Model rewriting for DeepLIFT's reformulation: the Poly model (not an
``nn.Sequential``) as an equivalent ``Flatten, Linear, square-activation,
Linear`` so that both DeepLIFT (Rescale) and its layer-wise Taylor
reformulation (Theorem 4) apply (the backend's op table treats
``torch.square`` as an element-wise function).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from captum_unified.models import PolyModel

__all__ = ["poly_as_sequential", "as_sequential"]


class _SquareFirst(nn.Module):
    """Element-wise: square the first ``n`` units, identity on the rest."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def forward(self, z: Tensor) -> Tensor:
        return torch.cat([torch.square(z[:, : self.n]), z[:, self.n :]], dim=1)


def poly_as_sequential(model: PolyModel) -> nn.Sequential:
    """The same function as ``model`` as ``Flatten, Linear, square-activation,
    Linear`` (the last one sums each class's ``rank`` squares and its linear part)."""
    c, r = model.n_classes, model.rank
    nq = c * r
    d = model.quad.weight.shape[1]
    first = nn.Linear(d, nq + c)
    last = nn.Linear(nq + c, c, bias=False)
    with torch.no_grad():
        first.weight.copy_(torch.cat([model.quad.weight, model.linear.weight]))
        first.bias.copy_(torch.cat([torch.zeros(nq), model.linear.bias]))
        w = torch.zeros(c, nq + c)
        for k in range(c):
            w[k, k * r : (k + 1) * r] = 1.0
            w[k, nq + k] = 1.0
        last.weight.copy_(w)
    seq = nn.Sequential(nn.Flatten(), first, _SquareFirst(nq), last).eval()
    for p in seq.parameters():
        p.requires_grad_(False)
    return seq


def as_sequential(model: nn.Module) -> nn.Sequential | None:
    """``model`` as an ``nn.Sequential`` (the Poly model rewritten), or ``None``."""
    if isinstance(model, PolyModel):
        return poly_as_sequential(model)
    return model if isinstance(model, nn.Sequential) else None
