"""Deng et al.'s tables as CSV rows: Table 3 (percentage change between each
method and its second-order Taylor reformulation, DeepLIFT per layer), the
infidelity of first- vs second-order Taylor attribution, Figure 2's
infidelity rows and Table 2 (the principles).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor, nn

import captum_unified as cu
from captum_unified.experiments import findings
from captum_unified.experiments.deng.maps import batches, patch_mask
from captum_unified.experiments.deng.protocol import (
    EG_VARIANT,
    FIGURE_METHODS,
    PAPER_APPROX_ERROR,
    PAPER_INFIDELITY,
    PAPER_TABLE3,
    PRINCIPLES,
    TABLE3_METHODS,
)
from captum_unified.experiments.deng.rewriting import as_sequential
from captum_unified.experiments.yeh_infidelity import YEH_SQUARE_SIZES, infidelity_from_sums, square_sums
from captum_unified.taylor import (
    TaylorAttribution,
    deeplift_layer_reformulation,
    gradient_x_input_reformulation,
    integrated_gradients_reformulation,
    occlusion1_reformulation,
    occlusion_patch_reformulation,
    percentage_change,
)

__all__ = ["deeplift_layer_d", "table3_rows", "infidelity_rows", "figure2_rows", "sum_share", "table2_rows"]


def _layer_name(seq: nn.Sequential, module: nn.Module) -> str:
    idx = next(i for i, m in enumerate(seq) if m is module)
    if idx == 0:
        return "input"
    return f"after {type(seq[idx - 1]).__name__} (module {idx - 1})"


def _dl_layer_pairs(model: nn.Module, x: Tensor, base: Tensor, target: Tensor, upstream: str):
    """``[(layer name, DeepLIFT's layer attributions, reformulation)]`` for every layer
    that a nonlinearity follows: :class:`~captum_unified.LayerDeepLiftRescale` at the
    layer's input against :func:`~captum_unified.taylor.deeplift_layer_reformulation`."""
    seq = as_sequential(model)
    if seq is None:
        raise TypeError("DeepLIFT's Taylor reformulation needs an nn.Sequential of affine layers and activations.")
    pairs = []
    for module, reform in deeplift_layer_reformulation(seq, x, base, target, upstream=upstream):
        original = cu.LayerDeepLiftRescale(seq, module).attribute(
            x, baselines=base, target=target, attribute_to_layer_input=True
        )
        pairs.append((_layer_name(seq, module), original.detach(), reform))
    last = seq[-1]
    if isinstance(last, nn.Linear):
        # the output layer: no nonlinearity follows it, so Theorem 4's remainder is 0 and
        # its reformulation is the first-order term w_cj * (h_j - h_bar_j) of its inputs h
        original = cu.LayerDeepLiftRescale(seq, last).attribute(
            x, baselines=base, target=target, attribute_to_layer_input=True
        )
        with torch.no_grad():
            reform = last.weight[target] * (seq[:-1](x) - seq[:-1](base))
        pairs.append((findings.OUTPUT_LAYER, original.detach(), reform))
    return pairs


def deeplift_layer_d(
    model: nn.Module, x: Tensor, baseline: float, target: Tensor, upstream: str = "deeplift"
) -> list[tuple]:
    """DeepLIFT's Table-3 ``d`` per layer: ``[(layer name, d in %)]``; their mean is
    Deng's DL entry."""
    base = torch.full_like(x, baseline)
    return [(name, percentage_change(o, r)) for name, o, r in _dl_layer_pairs(model, x, base, target, upstream)]


def _sem(per_sample: Tensor) -> float:
    """Standard error of the mean over the samples (NaN for fewer than 2)."""
    n = per_sample.numel()
    return float(per_sample.std() / n**0.5) if n > 1 else float("nan")


def table3_rows(
    model: nn.Module,
    short: str,
    x: Tensor,
    target: Tensor,
    baseline: float,
    ig_steps: int,
    maps: dict[str, Tensor],
    batch: int = 25,
    methods: Sequence[str] = tuple(TABLE3_METHODS),
) -> tuple:
    """Deng's Table 3 on one model: ``(rows, dl_layer_rows)``; ``maps`` holds the
    original methods' attributions (:func:`method_maps`); ``methods`` a subset
    of :data:`TABLE3_METHODS` to compute."""
    seq = as_sequential(model) if "DL" in methods else None
    reform: dict[str, list[Tensor]] = {m: [] for m in methods if m != "DL"}
    reform.setdefault("IG", [])  # IG's per-sample d is correlated with eps
    layers: dict[str, dict[str, list[tuple]]] = {"deeplift": {}, "taylor": {}}
    eps_ratio: list[Tensor] = []
    for sl in batches(len(x), batch):
        xb, tb = x[sl], target[sl]
        b = torch.full_like(xb, baseline)
        if "GI" in reform:
            reform["GI"].append(cast(Tensor, gradient_x_input_reformulation(model, xb, target=tb)))
        if "Occ-1" in reform:
            reform["Occ-1"].append(cast(Tensor, occlusion1_reformulation(model, xb, baselines=b, target=tb)))
        reform["IG"].append(cast(Tensor, integrated_gradients_reformulation(model, xb, baselines=b, target=tb)))
        for p in (2, 4):
            if f"Occ-{p}x{p}" in reform:
                reform[f"Occ-{p}x{p}"].append(
                    cast(Tensor, occlusion_patch_reformulation(model, xb, patch_mask(xb, p), baselines=b, target=tb))
                )
        if seq is not None:
            for upstream in layers:
                for name, o, r in _dl_layer_pairs(model, xb, b, tb, upstream):
                    layers[upstream].setdefault(name, []).append((o, r))
        _, delta = TaylorAttribution(model, order=2).attribute(xb, b, tb, return_convergence_delta=True)
        with torch.no_grad():
            idx = torch.arange(len(xb))
            df = model(xb)[idx, tb] - model(b)[idx, tb]
        eps_ratio.append((delta.abs() / df.abs().clamp_min(1e-12)).detach().double())
    eps = torch.cat(eps_ratio)
    d_ig = cast(Tensor, percentage_change(maps["IG"], torch.cat(reform["IG"]).detach(), per_sample=True))
    corr = float(torch.corrcoef(torch.stack([d_ig.double(), eps]))[0, 1]) if len(eps) > 2 else float("nan")
    common = {
        "model": short,
        "approx_error": float(eps.mean()),
        "approx_error_sem": _sem(eps),
        "approx_error_median": float(eps.median()),
        "paper_approx_error": PAPER_APPROX_ERROR[short],
        "corr_d_ig_eps": corr,
        "samples": len(x),
    }
    layer_rows, layer_mean, hidden_layers, dl_per_sample = [], {}, {}, []
    for upstream, by_layer in layers.items():
        ds = {}
        for name, pairs in by_layer.items():
            per = cast(
                Tensor,
                percentage_change(
                    torch.cat([o.flatten(1) for o, _ in pairs]),
                    torch.cat([r.flatten(1) for _, r in pairs]),
                    per_sample=True,
                ),
            )
            ds[name] = float(per.mean())
            if upstream == "deeplift" and name != findings.OUTPUT_LAYER:
                dl_per_sample.append(per.double())
            row = {"model": short, "layer": name, "upstream": upstream, "d_percent": ds[name], "samples": len(x)}
            layer_rows.append(row)
        inner = [v for k, v in ds.items() if k != findings.OUTPUT_LAYER]
        hidden_layers[upstream] = len(inner)
        if inner:
            layer_mean[upstream] = sum(inner) / len(inner)
            for name, vals in ((findings.MEAN_LAYERS, inner), (findings.MEAN_LAYERS_OUTPUT, list(ds.values()))):
                if name == findings.MEAN_LAYERS_OUTPUT and len(vals) == len(inner):
                    continue
                mean = sum(vals) / len(vals)
                layer_rows.append(
                    {"model": short, "layer": name, "upstream": upstream, "d_percent": mean, "samples": len(x)}
                )
    rows = []
    for m in methods:
        row = {
            **common,
            "method": m,
            "d_percent": "",
            "d_sem_percent": "",
            "paper_d_percent": PAPER_TABLE3[short][m],
            "note": "",
        }
        if m == "DL":
            if "deeplift" not in layer_mean:
                rows.append({**row, "note": "n/a: model is not an nn.Sequential"})
                continue
            row.update(
                d_percent=layer_mean["deeplift"],
                d_sem_percent=_sem(torch.stack(dl_per_sample).mean(0)),
                note=f"mean over the {hidden_layers['deeplift']} layers a nonlinearity follows; each layer's "
                "Rescale step reformulated",
            )
        else:
            per = cast(Tensor, percentage_change(maps[m], torch.cat(reform[m]).detach(), per_sample=True))
            row.update(d_percent=float(per.mean()), d_sem_percent=_sem(per.double()))
        rows.append(row)
    return rows, layer_rows


def _infidelities(changes: Tensor, attr: Tensor, sizes: Sequence[int]) -> dict[str, float]:
    sums = square_sums(attr, sizes)
    return {
        "infidelity_scaled": float(infidelity_from_sums(changes, sums, True).mean()),
        "infidelity_unscaled": float(infidelity_from_sums(changes, sums, False).mean()),
    }


def infidelity_rows(
    short: str, changes: Tensor, taylor: dict[int, Tensor], n: int, sizes: Sequence[int] = YEH_SQUARE_SIZES
) -> list[dict]:
    """Infidelity of first- and second-order Taylor attribution (Yeh's squares);
    ``changes`` from :func:`~captum_unified.experiments.yeh_infidelity.output_changes`
    with the same ``sizes``."""
    return [
        {
            "model": short,
            "order": order,
            **_infidelities(changes, taylor[order], sizes),
            "paper_infidelity": PAPER_INFIDELITY[short][order],
            "samples": n,
            "squares_per_sample": changes.shape[1],
        }
        for order in (1, 2)
    ]


def sum_share(attr: Tensor, output_change: Tensor) -> float:
    """What the attributions sum to, as a share of the output change from the
    input to the removal baseline: ``mean_samples(sum_i a_i) / mean_samples(S(x) - S(x_bar))``
    (1 for a method complete with that baseline; a ratio of means, so that a
    sample with a tiny change does not dominate)."""
    return float(attr.flatten(1).sum(1).double().mean() / output_change.double().mean())


def figure2_rows(
    short: str,
    changes: Tensor,
    maps: dict[str, Tensor],
    n: int,
    sizes: Sequence[int] = YEH_SQUARE_SIZES,
    output_change: Tensor | None = None,
) -> list[dict]:
    """Infidelity of Figure 2's six methods (and of ``EG (data)``, if in ``maps``)
    on one model, with their principle counts; with ``output_change`` (``S(x) -
    S(x_bar)`` per sample, ``x_bar`` the removal baseline) also :func:`sum_share`."""
    methods = FIGURE_METHODS + ([EG_VARIANT] if EG_VARIANT in maps else [])
    return [
        {
            "model": short,
            "method": m,
            "principles": sum(PRINCIPLES[m]),
            **_infidelities(changes, maps[m], sizes),
            **({} if output_change is None else {"sum_share": sum_share(maps[m], output_change)}),
            "samples": n,
            "squares_per_sample": changes.shape[1],
        }
        for m in methods
    ]


def table2_rows() -> list[dict]:
    """Deng's Table 2 (the paper's seven methods; not the EG variant)."""
    rows = []
    for m, (a, b, c) in PRINCIPLES.items():
        if m == EG_VARIANT:
            continue
        rows.append(
            {
                "method": m,
                "low_approximation_error": a,
                "correct_assignment": b,
                "unbiased_baseline": c,
                "principles": a + b + c,
                "note": "partially follows the second (counted 1/2)" if b == 0.5 else "",
            }
        )
    return rows
