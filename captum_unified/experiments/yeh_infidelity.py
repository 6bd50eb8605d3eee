r"""Infidelity with Yeh et al.'s square-removal perturbations, as their code does it.

Deng et al. (2021) evaluate infidelity with "the square removal perturbation"
of Yeh et al. (NeurIPS 2019) and give no parameters. Yeh et al.'s reference
code (``github.com/chihkuanyeh/saliency_evaluation``, ``infid_sen_utils.py``,
functions ``get_exp_infid`` and ``get_imageset``, commit ``5edce6e``) fixes them:

* **squares:** every square of side 1, 2, ..., 10 at every position inside the
  28x28 image (``(29 - r)^2`` positions for side ``r``; 5,605 squares), not a
  random draw; each square is set to 0 (the black background of their
  ``ToTensor`` pixels in [0, 1]) -- here: to the baseline;
* **perturbation:** ``binary_I=True``: :math:`I` is the square's indicator, so
  :math:`I^\top a` is the sum of the attributions inside the square (for
  attributions multiplied by the input, as theirs are: ``expl * image``);
* **weights:** all squares weigh 1 (``ks = np.ones(num)``);
* **scaling:** "performs optimal scaling for each explanation before calculating
  the infidelity score": :math:`\beta = \mathrm{mean}(\Delta f\, I^\top a) /
  \mathrm{mean}((I^\top a)^2)` per sample, then
  :math:`\mathrm{mean}((\Delta f - \beta I^\top a)^2)` (Captum's
  ``normalize=True``). Their paper's definition has no :math:`\beta`; we report
  both (``scaled`` and ``unscaled``);
* **samples:** 50 test images in their paper's experiments (the loop comment
  ``i >= 50``).

:func:`square_infidelity` runs the model once per square and sample (through
the perturbation engine, :class:`captum_unified.perturbation.PerturbationEngine`,
skipping squares that change nothing) and scores any number of attribution
maps against the same output changes; the result equals
:func:`captum.metrics.infidelity` with the same squares (tested).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_unified._utils.call import AttributionCall
from captum_unified.perturbation import PerturbationEngine

__all__ = [
    "YEH_SOURCE",
    "YEH_SQUARE_SIZES",
    "square_table",
    "square_masks",
    "square_sums",
    "output_changes",
    "infidelity_from_sums",
    "square_infidelity",
]

YEH_SOURCE = (
    "Yeh et al.'s reference code, github.com/chihkuanyeh/saliency_evaluation, "
    "infid_sen_utils.py (get_exp_infid, get_imageset), commit 5edce6e"
)
#: Square sides of Yeh et al.'s code (``rads = np.arange(10) + 1``).
YEH_SQUARE_SIZES: tuple[int, ...] = tuple(range(1, 11))


def square_table(height: int, width: int, sizes: Sequence[int] = YEH_SQUARE_SIZES) -> Tensor:
    """``(K, 3)`` int64 rows ``(side, top, left)`` in Yeh's order: by side, then
    row, then column; every square lies inside the image."""
    rows = []
    for r in sizes:
        r = int(r)
        if not 1 <= r <= min(height, width):
            raise ValueError(f"square side {r} does not fit a {height}x{width} image.")
        ii, jj = torch.meshgrid(torch.arange(height - r + 1), torch.arange(width - r + 1), indexing="ij")
        rows.append(torch.stack([torch.full_like(ii, r).flatten(), ii.flatten(), jj.flatten()], 1))
    return torch.cat(rows)


def square_masks(table: Tensor, shape: tuple[int, ...]):
    """Mask source for the engine: mask ``k`` is square ``table[k]`` over all channels
    of a ``(C, H, W)`` sample."""
    _, height, width = shape

    def masks(start: int, stop: int) -> tuple[Tensor, ...]:
        side, top, left = table[start:stop].unbind(1)
        rows = torch.arange(height).view(1, -1)
        cols = torch.arange(width).view(1, -1)
        in_rows = (rows >= top.view(-1, 1)) & (rows < (top + side).view(-1, 1))
        in_cols = (cols >= left.view(-1, 1)) & (cols < (left + side).view(-1, 1))
        square = in_rows.unsqueeze(2) & in_cols.unsqueeze(1)  # (k, H, W)
        return (square.view(-1, 1, 1, height, width).expand(-1, 1, shape[0], height, width),)

    return masks


def square_sums(attributions: Tensor, sizes: Sequence[int] = YEH_SQUARE_SIZES) -> Tensor:
    """``(B, K)`` float64: the sum of each sample's attributions (all channels)
    inside every square of :func:`square_table`, in its order."""
    a = attributions.detach().to(torch.float64).sum(1, keepdim=True)  # (B, 1, H, W)
    out = [F.avg_pool2d(a, int(r), stride=1).flatten(1) * float(r * r) for r in sizes]
    return torch.cat(out, 1)


def output_changes(
    model, x: Tensor, target: Tensor, baseline: float, sizes: Sequence[int] = YEH_SQUARE_SIZES
) -> Tensor:
    """``(B, K)`` float64: :math:`f_c(x) - f_c(x \\text{ with square } k \\text{ at the baseline})`."""
    x = x.detach()
    table = square_table(x.shape[-2], x.shape[-1], sizes)
    call = AttributionCall.format(x, float(baseline), target)
    with PerturbationEngine(model, call) as engine:
        changes = engine.changes(square_masks(table, tuple(x.shape[1:])), len(table), "Yeh squares")
    return changes.T.to(torch.float64).contiguous()


def infidelity_from_sums(changes: Tensor, sums: Tensor, scaled: bool) -> Tensor:
    """``(B,)``: mean over squares of :math:`(\\Delta f - \\beta\\, I^\\top a)^2`, with
    Yeh's optimal :math:`\\beta` per sample if ``scaled`` (else :math:`\\beta = 1`)."""
    if scaled:
        num = (sums * changes).mean(1)
        den = (sums * sums).mean(1)
        beta = torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(den))
        sums = beta.unsqueeze(1) * sums
    return ((changes - sums) ** 2).mean(1)


def square_infidelity(
    model,
    x: Tensor,
    attributions: Mapping[str, Tensor],
    target: Tensor,
    baseline: float,
    sizes: Sequence[int] = YEH_SQUARE_SIZES,
) -> dict[str, dict[str, Tensor]]:
    """Infidelity of several attribution maps of ``x`` (``(B, C, H, W)``) under
    Yeh et al.'s squares, sharing the model's forward passes.

    Returns:
        ``{name: {"scaled": (B,), "unscaled": (B,)}}`` per-sample infidelities.
    """
    changes = output_changes(model, x, target, baseline, sizes)
    result = {}
    for name, a in attributions.items():
        sums = square_sums(a, sizes)
        result[name] = {
            "scaled": infidelity_from_sums(changes, sums, True),
            "unscaled": infidelity_from_sums(changes, sums, False),
        }
    return result
