"""What ``reproduce transformers`` measures per method: completeness, token
deletion, Sensitivity-n, agreement with the valences, time."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from captum_unified.experiments.common import (
    ExperimentConfig,
    collect_attribution_warnings,
)
from captum_unified.experiments.findings import spearman
from captum_unified.experiments.language_models.methods import LMMethod, _External
from captum_unified.experiments.language_models.tasks import _Task
from captum_unified.experiments.significance import one_sample_t_test
from captum_unified.metrics import default_n_list, region_perturbation, sensitivity_n

#: Sensitivity-n subset sizes: this many log-spaced sizes up to 80% of the tokens.
N_POINTS = 8


# ----------------------------------------------------------------- measuring
def _timed(fn: Callable[[], Tensor]) -> tuple[Tensor, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _plain_gradient(f: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    x = x.detach().requires_grad_(True)
    out = f(x)[torch.arange(len(x)), target]
    (g,) = torch.autograd.grad(out.sum(), x)
    return g


def _mean_sd(v: np.ndarray) -> tuple[float, float, int]:
    v = v[np.isfinite(v)]
    return (
        float(v.mean()) if len(v) else float("nan"),
        float(v.std(ddof=1)) if len(v) > 1 else float("nan"),
        int(len(v)),
    )


def _measure(
    task: _Task,
    methods: list[LMMethod],
    cfg: ExperimentConfig,
    warned: dict,
    external: dict[str, _External] | None = None,
) -> dict[str, Any]:
    """Every method's attribution, time and metrics on one model.

    Args:
        task: the model and its explained samples.
        methods: the methods; those named in ``external`` are not called here.
        cfg: the run's configuration (``subsets``, ``seed``).
        warned: collects the methods' warnings.
        external: attributions computed elsewhere (LXT's worker) by method name, measured
            like the others; their time is against their own process's plain gradient.

    Returns:
        dict: ``fx``, ``f0``, ``grad_seconds`` (this process's plain gradient),
        ``grad_seconds_of`` (per method, where not this process's), ``attrs``, ``seconds``,
        ``curves``, ``sens``.
    """
    external = external or {}
    f, x, target = task.f, task.x, task.target
    rows = torch.arange(len(x))
    n_tokens, dim = x.shape[1], x.shape[2]
    with torch.no_grad():
        fx = f(x)[rows, target].double()
        f0 = f(torch.zeros_like(x))[rows, target].double()
    _plain_gradient(f, x, target)  # warm-up: first-call costs are not a method's
    grad_seconds = min(_timed(lambda: _plain_gradient(f, x, target))[1] for _ in range(3))
    attrs: dict[str, Tensor] = {}
    seconds: dict[str, float] = {}
    grad_of: dict[str, float] = {}
    for m in methods:
        if m.name in external:
            e = external[m.name]
            a, s, grad_of[m.name] = e.attributions, e.seconds, e.gradient_seconds
            if a.shape != x.shape:
                raise RuntimeError(f"{m.label} returned shape {tuple(a.shape)} on {task.label}, not {tuple(x.shape)}.")
        else:
            with collect_attribution_warnings(warned, f"{task.label} {m.label}"):
                m.attribute(f, x[:1], target[:1])  # warm-up on one sample: one-time costs (op table, imports)
                a, s = _timed(partial(m.attribute, f, x, target))
        if not torch.isfinite(a).all():
            raise RuntimeError(f"{m.label} returned NaN or inf on {task.label}.")
        attrs[m.name], seconds[m.name] = a.detach(), s
    mask = torch.arange(n_tokens).view(1, n_tokens, 1).expand(1, n_tokens, dim)
    curves: dict[str, dict[str, Any]] = {}
    for order in ("most_relevant_first", "least_relevant_first"):
        for m in methods:
            curves.setdefault(m.name, {})[order] = region_perturbation(
                f, x, attrs[m.name], baselines=0.0, target=target, feature_mask=mask, order=order
            )
    ns = default_n_list(n_tokens, num=N_POINTS) + [n_tokens]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # per-sample NaN at n = N is expected (one subset)
        sens = sensitivity_n(
            f,
            x,
            {m.name: attrs[m.name] for m in methods},
            n=ns,
            baselines=0.0,
            target=target,
            feature_mask=mask,
            n_subsets=cfg.subsets,
            seed=cfg.seed,
        )
    return dict(
        fx=fx,
        f0=f0,
        grad_seconds=grad_seconds,
        grad_seconds_of=grad_of,
        attrs=attrs,
        seconds=seconds,
        curves=curves,
        sens=sens,
    )


def _method_rows(task: _Task, methods: list[LMMethod], res: dict, cfg: ExperimentConfig) -> tuple[list, list, list]:
    """The rows of the three CSVs for one model: per method, per (method, order, k), per (method, n)."""
    fx, f0 = res["fx"], res["f0"]
    gap = fx - f0
    n_tokens = task.x.shape[1]
    summary, curve_rows, sens_rows = [], [], []
    token_attrs = {k: a.sum(-1).double() for k, a in res["attrs"].items()}
    for m in methods:
        total = token_attrs[m.name].sum(1)
        # relative to the mean size of what is explained (a single sample's S(x) - S(0) can be ~0)
        comp = (total - gap).abs()
        comp_rel = comp / gap.abs().mean().clamp_min(1e-12)
        cons_rel = (total - fx).abs() / fx.abs().mean().clamp_min(1e-12)
        grad = res.get("grad_seconds_of", {}).get(m.name, res["grad_seconds"])
        morf = res["curves"][m.name]["most_relevant_first"]
        lerf = res["curves"][m.name]["least_relevant_first"]
        score = (lerf.curves.double() - morf.curves.double()).mean(1).numpy()
        s_mean, s_sd, s_n = _mean_sd(score)
        sn = res["sens"][m.name]
        per_sample_sens = np.nanmean(sn.correlations[:, :-1].numpy(), axis=1)  # n < N (per sample defined)
        p_mean, p_sd, _ = _mean_sd(per_sample_sens)
        row: dict[str, Any] = {
            "model": task.model,
            "method": m.name,
            "method_label": m.label,
            "source": m.source,
            "status": "ok",
            "samples": len(total),
            "tokens": n_tokens,
            "trained": task.trained,
            "model_quality": task.quality_text,
            "completeness_reference": "S(x) - S(0)",
            "claims_completeness": m.complete and m.baseline == "zero",
            "completeness_max_abs": float(comp.max()),
            "completeness_median_rel": float(comp_rel.median()),
            "completeness_max_rel": float(comp_rel.max()),
            "conservation_median_rel": float(cons_rel.median()),
            "conservation_max_rel": float(cons_rel.max()),
            "mean_abs_output_change": float(gap.abs().mean()),
            "deletion_score": s_mean,
            "deletion_score_sd": s_sd,
            "deletion_score_n": s_n,
            "morf_aopc": float(morf.aopc.mean()),
            "lerf_aopc": float(lerf.aopc.mean()),
            "sensitivity_n_mean": p_mean,
            "sensitivity_n_sd": p_sd,
            "sensitivity_n_at_N_pooled": float(sn.pooled[-1]),
            "seconds": res["seconds"][m.name],
            "gradient_seconds": grad,
            "time_x_gradient": res["seconds"][m.name] / grad,
        }
        if task.truth is not None:
            rhos = np.array(
                [spearman(a.tolist(), t.tolist()) for a, t in zip(token_attrs[m.name], task.truth)], dtype=float
            )
            r_mean, r_sd, r_n = _mean_sd(rhos)
            _, p = one_sample_t_test(r_mean, r_sd, r_n)
            row.update(spearman_mean=r_mean, spearman_sd=r_sd, spearman_n=r_n, spearman_p=p)
            row["_rhos"] = rhos
        row["_scores"] = score
        row["_sens"] = per_sample_sens
        summary.append(row)
        for order, res_o in (("MoRF", morf), ("LeRF", lerf)):
            c = res_o.curves.double() - fx[:, None]
            for j, k in enumerate(res_o.k):
                col = c[:, j]
                curve_rows.append(
                    {
                        "model": task.model,
                        "method": m.name,
                        "method_label": m.label,
                        "order": order,
                        "k": k,
                        "fraction_removed": round(k / n_tokens, 4),
                        "mean_change": float(col.mean()),
                        "sem_change": float(col.std() / math.sqrt(len(col))) if len(col) > 1 else float("nan"),
                        "samples": len(col),
                    }
                )
        for j, k in enumerate(sn.n):
            col = sn.correlations[:, j]
            defined = col[~col.isnan()]
            sens_rows.append(
                {
                    "model": task.model,
                    "method": m.name,
                    "method_label": m.label,
                    "n": k,
                    "n_fraction": round(k / n_tokens, 4),
                    "mean_pcc": float(sn.mean[j]),
                    "sd_pcc": float(defined.std()) if len(defined) > 1 else float("nan"),
                    "pooled_pcc": float(sn.pooled[j]),
                    "n_nan": int(sn.n_nan[j]),
                    "samples": len(col),
                    "subsets": cfg.subsets,
                }
            )
    return summary, curve_rows, sens_rows


def _paired(rows: list[dict], key: str) -> list[dict]:
    """Per model: the best method by the mean of the per-sample values ``key`` against every
    other (paired t test on the per-sample differences)."""
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        group = [r for r in rows if r["model"] == model and key in r]
        if len(group) < 2:
            continue
        best = max(group, key=lambda r: np.nanmean(r[key]))
        for r in group:
            if r is best:
                continue
            d = np.asarray(best[key]) - np.asarray(r[key])
            mean, sd, n = _mean_sd(d)
            _, p = one_sample_t_test(mean, sd, n)
            out.append({"model": model, "best": best["method"], "other": r["method"], "diff": mean, "n": n, "p": p})
    return out
