"""The attribution maps of Deng's methods (Table 3, Figures 2 and 3) and of
first- and second-order Taylor attribution, computed with the library's
classes in batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

import captum_unified as cu
from captum_unified.data import stratified_sample
from captum_unified.experiments.deng.protocol import EG_REFERENCES, EG_SAMPLES, EG_STDEV, EG_VARIANT, OCC_P
from captum_unified.experiments.deng.rewriting import as_sequential
from captum_unified.feature_groups import FeatureGroups
from captum_unified.taylor import TaylorAttribution

__all__ = ["method_maps", "reference_set", "taylor_maps", "patch_mask", "batches"]


def patch_mask(x: Tensor, p: int) -> Tensor:
    """Patch ids of ``p x p`` patches over each channel of ``(B, C, H, W)`` images."""
    return FeatureGroups.patches((x,), ((1, p, p),)).ids[0]


def batches(n: int, size: int) -> Iterator[slice]:
    """Slices of ``size`` samples covering ``0..n-1``."""
    for i in range(0, n, size):
        yield slice(i, min(i + size, n))


def method_maps(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    baseline: float,
    methods: Sequence[str],
    ig_steps: int = 50,
    seed: int = 0,
    pixel_span: float = 1.0,
    batch: int = 50,
    references: Tensor | None = None,
) -> dict[str, Tensor]:
    """Attribution maps of Deng's methods (names of Table 3 and the figures:
    ``Gradient`` (the plain gradient, Figure 4), ``GI``, ``Occ-1``,
    ``Occ-2x2``, ``Occ-4x4``, ``Occ-p`` (= ``Occ-4x4``), ``DL``, ``IG``, ``EG``
    (Gaussian baselines), ``EG (data)`` (baselines drawn from ``references``))
    with the library's classes; baseline ``baseline`` (GI: 0)."""
    seq = as_sequential(model)
    out: dict[str, list[Tensor]] = {m: [] for m in methods}
    for sl in batches(len(x), batch):
        xb, tb = x[sl], target[sl]
        b = torch.full_like(xb, baseline)
        for m in methods:
            if m == "Gradient":  # the plain gradient (Deng's Figure 4)
                a = cu.ModifiedGradient(model, cu.GradientRule(), multiply_by_inputs=False).attribute(xb, target=tb)
            elif m == "GI":
                a = cu.GradientXInput(model).attribute(xb, target=tb)
            elif m == "Occ-1":
                a = cu.Occlusion1(model).attribute(xb, baselines=baseline, target=tb)
            elif m in ("Occ-2x2", "Occ-4x4", "Occ-p"):
                p = OCC_P if m == "Occ-p" else int(m[4])
                a = cu.OcclusionPatch(model).attribute(xb, patch_shapes=(1, p, p), baselines=baseline, target=tb)
            elif m == "DL":
                a = cu.DeepLiftRescale(seq if seq is not None else model).attribute(xb, baselines=b, target=tb)
            elif m == "IG":
                a = cu.IntegratedGradients(model).attribute(xb, baselines=b, target=tb, n_steps=ig_steps)
            elif m == "EG":
                a = cu.ExpectedGradients(model).attribute(
                    xb, baseline_stdevs=EG_STDEV * pixel_span, n_samples=EG_SAMPLES, seed=seed + sl.start, target=tb
                )
            elif m == EG_VARIANT:
                if references is None:
                    raise ValueError(f"{EG_VARIANT} needs references (training samples).")
                a = cu.ExpectedGradients(model).attribute(
                    xb, baselines=references, n_samples=EG_SAMPLES, seed=seed + sl.start, target=tb
                )
            else:
                raise ValueError(f"unknown method {m!r}")
            out[m].append(a.detach())
    return {m: torch.cat(v) for m, v in out.items()}


def reference_set(train: tuple, seed: int, n: int = EG_REFERENCES) -> Tensor:
    """EG (data)'s reference samples: ``n`` training images drawn class-stratified."""
    x, y = train
    return x[torch.as_tensor(stratified_sample(y, min(n, len(y)), seed + 1))]


def taylor_maps(model: nn.Module, x: Tensor, target: Tensor, baseline: float) -> dict[int, Tensor]:
    """First- and second-order Taylor attribution at the baseline."""
    b = torch.full_like(x, baseline)
    return {order: TaylorAttribution(model, order=order).attribute(x, b, target).detach() for order in (1, 2)}
