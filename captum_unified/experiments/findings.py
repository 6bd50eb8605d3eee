"""Sentences about trends, generated from the reproductions' CSV rows.

Every function takes the rows of a CSV the pipelines write (values may be
strings, as :func:`~captum_unified.experiments.common.read_csv` returns them)
and returns plain-text sentences: a claim (e.g. "as in the paper") is made only
when the numbers support it; otherwise the sentence says what the numbers
show. The reports (``*_report.md``) and the docs' results page (the
``*_findings.rst`` fragments that ``scripts/make_results.py`` writes) use the
same functions, so a rerun with other numbers changes the text with them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = [
    "spearman",
    "deng_table3_sentences",
    "deng_infidelity_sentences",
    "deng_figure2_sentences",
    "deng_figure3_sentences",
    "ancona_sentences",
    "ablation_sentences",
    "to_rst",
]


def _f(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _g(v, spec: str = ".3g") -> str:
    v = _f(v)
    return "n/a" if v != v else format(v, spec)


def _average_ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, ties getting the mean of their ranks (scipy's ``rankdata``, method "average")."""
    a = np.asarray(values, dtype=np.float64)
    order = np.argsort(a, kind="mergesort")
    sorted_a = a[order]
    # start of each run of equal values, and the run each sorted position belongs to
    starts = np.flatnonzero(np.r_[True, sorted_a[1:] != sorted_a[:-1]])
    ends = np.r_[starts[1:], len(a)]
    mean_rank = (starts + ends + 1) / 2.0  # positions start..end-1 hold ranks start+1..end
    ranks = np.empty(len(a), dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation: Pearson's correlation of the ranks, ties
    getting their average rank (as scipy's ``spearmanr``, computed the same
    way with numpy alone); NaN for fewer than 3 pairs or a constant side."""
    x, y = [float(v) for v in x], [float(v) for v in y]
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return float("nan")
    ranks = np.column_stack([_average_ranks(x), _average_ranks(y)])
    return float(np.corrcoef(ranks, rowvar=False)[1, 0])  # scipy reads [1, 0]: the same bits


def _count(n: int, total: int) -> str:
    return f"{n} of {total}"


def _join(items: Iterable[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# ---------------------------------------------------------------- Deng, Table 3
def deng_table3_sentences(table3: list[dict], dl_layers: Sequence[dict] = ()) -> list[str]:
    """Table 3 (``deng_table3.csv``) and DeepLIFT's layers (``deng_dl_layers.csv``)."""
    d = {(r["model"], r["method"]): _f(r["d_percent"]) for r in table3}
    paper = {(r["model"], r["method"]): _f(r["paper_d_percent"]) for r in table3}
    models = list(dict.fromkeys(r["model"] for r in table3))
    out = []
    gi = [d[(m, "GI")] for m in models if (m, "GI") in d]
    if gi:
        if max(gi) < 1e-6:
            size = "d = 0" if max(gi) == 0 else f"d at most {max(gi):.1g}%"
            out.append(f"Gradient*Input equals its first-order Taylor term on every model ({size}), as Theorem 1 says.")
        else:
            out.append(f"Gradient*Input differs from its first-order Taylor term by up to {max(gi):.3g}%.")
    if "Poly" in models:
        vals = [d[("Poly", m)] for m in ("GI", "Occ-1", "Occ-2x2", "Occ-4x4", "DL", "IG") if ("Poly", m) in d]
        vals = [v for v in vals if v == v]
        if vals and max(vals) < 1e-3:
            out.append(
                f"On Poly every reformulation is exact up to float rounding (largest d {max(vals):.1g}%), as "
                "in the paper (its 0.12% for IG comes from its integration; ours is exact on a quadratic "
                "path)."
            )
        elif vals:
            out.append(f"On Poly the largest d is {max(vals):.3g}%, so not every reformulation is exact there.")
    for m in models:
        if m == "Poly" or (m, "Occ-1") not in d:
            continue
        occ = [d[(m, k)] for k in ("Occ-1", "Occ-2x2", "Occ-4x4")]
        if occ[0] < occ[1] < occ[2]:
            out.append(
                f"On {m}, d grows with the occlusion patch ({_g(occ[0])}% < {_g(occ[1])}% < {_g(occ[2])}%), "
                "as in the paper."
            )
        else:
            out.append(
                f"On {m}, d does not grow with the occlusion patch (Occ-1 {_g(occ[0])}%, Occ-2x2 "
                f"{_g(occ[1])}%, Occ-4x4 {_g(occ[2])}%), unlike the paper."
            )
        parts = []
        for k in ("Occ-1", "Occ-2x2", "Occ-4x4", "DL", "IG"):
            ours, theirs = d.get((m, k), float("nan")), paper.get((m, k), float("nan"))
            if ours != ours or not theirs:
                continue
            ratio = ours / theirs
            word = "within a factor 2 of" if 0.5 <= ratio <= 2 else ("above" if ratio > 2 else "below")
            parts.append(f"{k} {_g(ours)}% ({word} the paper's {theirs:g}%)")
        if parts:
            out.append(f"On {m}: " + "; ".join(parts) + ".")
    eps = {r["model"]: (_f(r["approx_error"]), _f(r["paper_approx_error"])) for r in table3}
    if eps:
        txt = ", ".join(f"{m} {_g(v[0])} (paper {v[1]:g})" for m, v in eps.items())
        order_ours = sorted(eps, key=lambda m: eps[m][0])
        order_paper = sorted(eps, key=lambda m: eps[m][1])
        same = order_ours == order_paper
        out.append(
            f"The mean normalised second-order approximation error eps_bar is {txt}; "
            + (
                "its order over the models is the paper's."
                if same
                else f"its order over the models ({' < '.join(order_ours)}) is not the paper's "
                f"({' < '.join(order_paper)})."
            )
        )
        for m in eps:
            if m == "Poly":
                continue
            ours, theirs = eps[m]
            if theirs and ours > 2 * theirs:
                out.append(
                    f"On {m} the second-order expansion around the baseline misses {ours:.0%} of the output "
                    f"change on average (the paper's model: {theirs:.1%}), so every method that spans the "
                    "whole path from the baseline (IG, DeepLIFT) deviates more from its reformulation."
                )
    corr = {r["model"]: _f(r.get("corr_d_ig_eps")) for r in table3}
    if "C-sg" in corr and corr["C-sg"] == corr["C-sg"]:
        c = corr["C-sg"]
        out.append(
            f"Over the samples, IG's d and eps correlate with {c:.2f} on C-sg (paper: 0.72)"
            + (
                ", so IG's deviation follows the approximation error, as the paper concludes."
                if c > 0.5
                else "; a weak link, unlike the paper's."
            )
        )
    by = {(r["model"], r["layer"], r["upstream"]): _f(r["d_percent"]) for r in dl_layers}
    for m in models:
        local, prop = by.get((m, "mean over layers", "deeplift")), by.get((m, "mean over layers", "taylor"))
        inp = by.get((m, "input", "taylor"))
        if local is None or prop is None or m == "Poly":
            continue
        out.append(
            f"DeepLIFT on {m}: averaged over layers, d is {_g(local)}% when each layer's own step is "
            f"reformulated and {_g(prop)}% when every layer above is reformulated too; at the input layer "
            f"alone (all layers reformulated) it is {_g(inp)}% (paper, averaged: {paper.get((m, 'DL'), 0):g}%)."
        )
    return out


# ------------------------------------------------------- Deng, Taylor infidelity
def deng_infidelity_sentences(infid: list[dict]) -> list[str]:
    """First- vs second-order Taylor infidelity (``deng_infidelity.csv``)."""
    val = {(r["model"], int(_f(r["order"]))): r for r in infid}
    models = list(dict.fromkeys(r["model"] for r in infid))
    better = {}
    out = []
    for kind in ("scaled", "unscaled"):
        wins = [m for m in models if _f(val[(m, 2)][f"infidelity_{kind}"]) < _f(val[(m, 1)][f"infidelity_{kind}"])]
        better[kind] = wins
        ratios = ", ".join(
            f"{m} {_f(val[(m, 2)][f'infidelity_{kind}']) / _f(val[(m, 1)][f'infidelity_{kind}']):.2f}" for m in models
        )
        out.append(
            f"{kind.capitalize()}: the second order has lower infidelity than the first on "
            f"{_count(len(wins), len(models))} models (ratio 2nd / 1st: {ratios}; paper: "
            + ", ".join(
                f"{m} {_f(val[(m, 2)]['paper_infidelity']) / _f(val[(m, 1)]['paper_infidelity']):.2f}" for m in models
            )
            + ")."
        )
    all_s, all_u = len(better["scaled"]) == len(models), len(better["unscaled"]) == len(models)
    if all_s and all_u:
        out.append("The paper's finding (second order better than first) holds with and without scaling.")
    elif not better["scaled"] and not better["unscaled"]:
        out.append("The paper's finding (second order better than first) holds in neither variant.")
    else:
        out.append(
            "Whether the paper's finding (second order better than first) is reproduced depends on the "
            "scaling: it holds " + ("with" if all_s else "without" if all_u else "in part of") + " Yeh's "
            "optimal scaling and not in the other variant; the paper does not say which it used, so the "
            "conclusion is undetermined."
        )
    return out


# ------------------------------------------------------------ Deng, Figures 2/3
#: Figures 2-3: the paper's six methods; "EG (data)" is reported beside them.
FIGURE_METHODS = ("GI", "Occ-1", "Occ-p", "DL", "IG", "EG")
EG_VARIANT = "EG (data)"


def _rhos(rows: list[dict], key: str, eg: str) -> tuple:
    models = list(dict.fromkeys(r["model"] for r in rows))
    use = [r for r in rows if r["method"] in FIGURE_METHODS[:-1] or r["method"] == eg]
    rhos = {
        m: spearman([_f(r["principles"]) for r in use if r["model"] == m], [_f(r[key]) for r in use if r["model"] == m])
        for m in models
    }
    return rhos, spearman([_f(r["principles"]) for r in use], [_f(r[key]) for r in use])


def _principle_trend(rows: list[dict], key: str, expected_sign: int, what: str, paper: str) -> list[str]:
    models = list(dict.fromkeys(r["model"] for r in rows))
    rhos, pooled = _rhos(rows, key, "EG")
    agree = [m for m, v in rhos.items() if v == v and v * expected_sign > 0]
    txt = ", ".join(f"{m} {_g(v, '+.2f')}" for m, v in rhos.items())
    word = "negative" if expected_sign < 0 else "positive"
    out = [
        f"Spearman's rank correlation between the number of principles and {what}: {txt}"
        + (f" (all models pooled: {_g(pooled, '+.2f')})" if len(models) > 1 else "")
        + "."
    ]
    if len(agree) == len(models):
        out.append(f"It is {word} on every model, the paper's finding ({paper}).")
    elif agree:
        out.append(
            f"It is {word}, as in the paper ({paper}), on {_join(agree)} only "
            f"({_count(len(agree), len(models))} models)."
        )
    else:
        out.append(f"It is {word} on no model, unlike the paper ({paper}).")
    if any(r["method"] == EG_VARIANT for r in rows):
        alt, alt_pooled = _rhos(rows, key, EG_VARIANT)
        agree_alt = [m for m, v in alt.items() if v == v and v * expected_sign > 0]
        out.append(
            f"With Expected Gradients' baselines drawn from training digits ({EG_VARIANT}) instead of "
            "Gaussian ones around the input: "
            + ", ".join(f"{m} {_g(v, '+.2f')}" for m, v in alt.items())
            + (f" (pooled {_g(alt_pooled, '+.2f')})" if len(models) > 1 else "")
            + f", {word} on {_count(len(agree_alt), len(models))} models."
        )
    best = []
    for m in models:
        ms = [r for r in rows if r["model"] == m and r["method"] in FIGURE_METHODS]
        pick = (min if expected_sign < 0 else max)(ms, key=lambda r: _f(r[key]))
        best.append(f"{m} {pick['method']}")
    out.append(f"Best method per model ({'lowest' if expected_sign < 0 else 'highest'} {what}): {', '.join(best)}.")
    return out


def deng_figure2_sentences(fig2: list[dict]) -> list[str]:
    """Figure 2 (``deng_figure2.csv``): infidelity vs principles, scaled and unscaled."""
    out = []
    for kind in ("scaled", "unscaled"):
        out += [
            f"{kind.capitalize()} infidelity. " + s if i == 0 else s
            for i, s in enumerate(
                _principle_trend(fig2, f"infidelity_{kind}", -1, "infidelity", "a negative correlation")
            )
        ]
    return out


def deng_figure3_sentences(fig3: list[dict]) -> list[str]:
    """Figure 3 (``deng_figure3.csv``): bounding-box accuracy vs principles."""
    return _principle_trend(fig3, "bbox_accuracy", +1, "bounding-box accuracy", "a positive correlation")


# ------------------------------------------------------------------- Ancona
def ancona_sentences(checks: list[dict], sens: list[dict]) -> list[str]:
    """Ancona's findings from ``ancona_checks.csv`` and ``ancona_sensitivity_n.csv``."""
    from collections import defaultdict

    # (model, act) -> method -> {n: (mean, pooled)}
    curves: defaultdict[tuple[str, str], dict[str, dict[int, tuple[float, float]]]] = defaultdict(dict)
    for r in sens:
        curves[(r["model"], r["activation"])].setdefault(r["method"], {})[int(_f(r["n"]))] = (
            _f(r["mean_pcc"]),
            _f(r["pooled_pcc"]),
        )
    crow = {(r["model"], r["activation"], r["method"]): r for r in checks}
    nets = [k for k in curves if k[0] != "linear"]
    # methods every network ran (extra methods of one model get their own sentence)
    methods = [m for m in dict.fromkeys(r["method"] for r in checks) if all(m in curves[k] for k in curves)]
    label = {
        "gi": "GI",
        "ig": "IG",
        "lrp": "epsilon-LRP",
        "deeplift": "DeepLIFT",
        "occlusion1": "Occlusion-1",
        "deeplift_ancona": "DeepLIFT with the ordinary product rule",
    }
    family = {"ancona_mlp": "MLP", "ancona_cnn": "CNN", "ancona_lstm": "LSTM", "vit": "ViT"}
    title = {k: family.get(k[0], k[0]) + ("" if k[1] == "none" else f" {k[1].capitalize()}") for k in nets}
    out = []

    def points(k, m):
        c = curves[k][m]
        big = max(c)
        return {n: v[0] for n, v in c.items() if n < big}, c[big][1]

    accs = sorted({_f(r["test_accuracy"]) for r in checks if r["model"] != "linear"})
    if accs:
        out.append(f"Test accuracy of the networks: {accs[0]:.1%} to {accs[-1]:.1%}.")
    if not nets:
        return out
    # 1: negative evidence
    peak = {m: min(max(points(k, m)[0].values()) for k in nets) for m in methods}
    out.append(
        "Best mean PCC over n of each method, lowest over the networks: "
        + ", ".join(f"{label.get(m, m)} {peak[m]:.2f}" for m in methods)
        + "."
    )
    near = [label.get(m, m) for m in methods if peak[m] >= 0.9]
    far = [label.get(m, m) for m in methods if peak[m] < 0.9]
    out.append(
        "Every method correlates at 0.9 or more for some n on every network, as the paper finds."
        if not far
        else f"{_join(near) or 'No method'} {'reaches' if len(near) <= 1 else 'reach'} 0.9 for "
        f"some n on every network; {_join(far)} {'does' if len(far) == 1 else 'do'} not on at least one "
        "network."
    )
    # 2: occlusion-1
    if "occlusion1" in methods:
        at1 = [points(k, "occlusion1")[0][1] for k in nets]
        top1 = [k for k in nets if max(methods, key=lambda m: points(k, m)[0][1]) == "occlusion1"]
        mono = []
        for k in nets:
            vals = [v for _, v in sorted(points(k, "occlusion1")[0].items())]
            if all(b <= a + 0.02 for a, b in zip(vals, vals[1:])):
                mono.append(k)
        level = "1 (to 4 decimals)" if min(at1) > 0.99995 else f"between {min(at1):.4f} and 1"
        out.append(
            f"Occlusion-1's PCC at n = 1 is {level} on every network and it is the highest method there on "
            f"{_count(len(top1), len(nets))} networks; its curve is non-increasing in n (tolerance 0.02) on "
            f"{_count(len(mono), len(nets))}"
            + (
                ", as the paper finds."
                if len(mono) == len(nets)
                else f" (not on {_join(title[k] for k in nets if k not in mono)})."
            )
        )
    # curve shapes per family
    for fam, name in (("ancona_mlp", "MLPs"), ("ancona_cnn", "CNNs"), ("ancona_lstm", "LSTM"), ("vit", "ViT")):
        keys = [k for k in nets if k[0] == fam]
        if not keys:
            continue
        parts = []
        for m in methods:
            lows = {k: min(points(k, m)[0].values()) for k in keys}
            worst = min(lows, key=lows.__getitem__)
            where = f" ({title[worst]})" if len(keys) > 1 else ""
            parts.append(f"{label.get(m, m)} {lows[worst]:.2f}{where}")
        out.append(f"On the {name}, the lowest mean PCC over n < N of each method: " + ", ".join(parts) + ".")
    for m in ("ig", "deeplift"):
        if m not in methods:
            continue
        rising = [k for k in nets if _rises(points(k, m)[0])]
        falling = [k for k in nets if _falls(points(k, m)[0])]
        out.append(
            f"{label[m]}'s curve ends higher than it starts (largest n below N vs n = 1) on "
            f"{_count(len(rising), len(nets))} networks"
            + (f" and ends lower on {_join(title[k] for k in falling)}" if falling else "")
            + "."
        )
    # 3: GI closest to occlusion-1
    grad = [m for m in ("gi", "ig", "lrp", "deeplift") if m in methods]
    if "occlusion1" in methods and "gi" in grad:
        wins = [k for k in nets if max(grad, key=lambda m: _f(crow[(k[0], k[1], m)]["pcc_vs_occlusion1"])) == "gi"]
        out.append(
            f"Gradient*Input's map is the closest gradient method to Occlusion-1's on "
            f"{_count(len(wins), len(nets))} networks"
            + (f" ({_join(title[k] for k in wins)})" if wins else "")
            + "; the paper reports it sometimes is."
        )
    # 4: IG ~ DeepLIFT
    if "ig" in methods and "deeplift" in methods:
        sim = [_f(crow[(k[0], k[1], "deeplift")]["pcc_vs_ig"]) for k in nets]
        gap = max(
            max(abs(points(k, "ig")[0][n] - points(k, "deeplift")[0][n]) for n in points(k, "ig")[0]) for k in nets
        )
        out.append(
            f"The maps of IG and DeepLIFT correlate with {min(sim):.3f} to {max(sim):.3f}; their "
            f"Sensitivity-n curves differ by at most {gap:.3f}"
            + (", so the two curves lie on top of each other" if gap < 0.02 else "")
            + " (Figure 4 draws IG thick and DeepLIFT dashed over it)."
        )
    # 5: LRP vs GI
    if "lrp" in methods and "gi" in methods:
        relu = [k for k in nets if k[1] == "relu"]
        other = [k for k in nets if k[1] in ("sigmoid", "softplus")]
        if relu:
            rel = max(_f(crow[(k[0], k[1], "lrp")]["rel_diff_vs_gi"]) for k in relu)
            out.append(
                f"On the ReLU networks epsilon-LRP differs from GI by at most {rel:.2g} (relative)"
                + (", i.e. they are equal up to epsilon, as the paper says." if rel < 0.05 else ".")
            )
        if other:
            rels = [_f(crow[(k[0], k[1], "lrp")]["rel_diff_vs_gi"]) for k in other]
            lo = min(min(points(k, "lrp")[0].values()) for k in other)
            hi = max(max(points(k, "lrp")[0].values()) for k in other)
            out.append(
                f"On the Sigmoid/Softplus networks it differs from GI by {min(rels):.3g} to {max(rels):.3g} "
                f"(relative) and its mean PCC lies between {lo:.2f} and {hi:.2f} for n < N"
                + (", so it fails there, as the paper finds." if hi < 0.5 else ".")
            )
    # 4 on models with products (LSTM): Ancona's original DeepLIFT vs the Shapley product rule
    for k in nets:
        if "deeplift_ancona" not in curves[k] or "deeplift" not in curves[k] or "ig" not in curves[k]:
            continue
        orig, shap = crow[(k[0], k[1], "deeplift_ancona")], crow[(k[0], k[1], "deeplift")]
        r_orig, r_shap = _f(orig["pcc_vs_ig"]), _f(shap["pcc_vs_ig"])
        d_orig, d_shap = _f(orig.get("median_rel_delta", "nan")), _f(shap.get("max_rel_delta", "nan"))
        c_orig = points(k, "deeplift_ancona")[0]
        c_ig, c_shap = points(k, "ig")[0], points(k, "deeplift")[0]
        gap_orig = max(abs(c_ig[n] - c_orig[n]) for n in c_ig)
        gap_shap = max(abs(c_ig[n] - c_shap[n]) for n in c_ig)
        closer = "closer to" if r_shap > r_orig else ("as close to" if r_shap == r_orig else "further from")
        out.append(
            f"On the {title[k]} (a fused nn.LSTM: its gates are products) Ancona et al.'s original DeepLIFT, with "
            f"the ordinary product rule, misses completeness by {d_orig:.3g} times |S(x) - S(0)| (median over the "
            f"samples) and its map "
            f"correlates with IG's at {r_orig:.3f} (Sensitivity-n curves up to {gap_orig:.3f} apart); with the "
            f"Shapley product rule DeepLIFT is complete (largest relative delta {d_shap:.2g}) and its map "
            f"correlates with IG's at {r_shap:.3f} ({gap_shap:.3f} apart), {closer} IG. "
            + (
                "Finding 4 (IG and DeepLIFT correlate highly) holds for the original rule here."
                if r_orig >= 0.9
                else "Finding 4 (IG and DeepLIFT correlate highly) does not hold for the original rule here."
            )
        )
    # 6: linear
    lin = [k for k in curves if k[0] == "linear"]
    if lin:
        k = lin[0]
        lo = min(min(points(k, m)[0].values()) for m in methods)
        out.append(
            f"On the linear model every method's mean PCC is {lo:.4f} or more at every n"
            + (", i.e. all methods agree, as Proposition 4 says." if lo > 0.999 else ".")
        )
    return out


def _rises(curve: dict[int, float]) -> bool:
    vals = [v for _, v in sorted(curve.items())]
    return vals[-1] > vals[0] + 0.01


def _falls(curve: dict[int, float]) -> bool:
    vals = [v for _, v in sorted(curve.items())]
    return vals[-1] < vals[0] - 0.01


# ------------------------------------------------------------------ ablation
def ablation_sentences(rows: list[dict]) -> list[str]:
    """What each varied cause did to d and eps_bar (``ablation.csv``): per gap,
    the change from the reference setting, largest first, and the setting
    closest to the paper; settings marked "no retraining" are checked for
    leaving the numbers unchanged."""
    ref = [r for r in rows if r["setting"] == "reference"]
    if not ref:
        return []
    out = []
    base_val = {(r["model"], r["metric"]): _f(r["value"]) for r in ref}
    for setting in dict.fromkeys(r["setting"] for r in rows if "no retraining" in str(r.get("cause", ""))):
        rel = [
            abs(_f(r["value"]) - base_val[(r["model"], r["metric"])])
            / max(abs(base_val[(r["model"], r["metric"])]), 1e-300)
            for r in rows
            if r["setting"] == setting and (r["model"], r["metric"]) in base_val
        ]
        if rel and max(rel) < 1e-3:
            out.append(
                f"{setting} (the trained models, inputs rescaled, nothing retrained): every d and eps_bar "
                f"equals the reference's up to float32 rounding (largest relative change {max(rel):.1g}), "
                "since Taylor terms do not "
                "depend on an affine change of the input coordinates; the pixel scale and baseline can act "
                "only through training."
            )
        elif rel:
            out.append(
                f"{setting} (nothing retrained) changes the numbers by up to {max(rel):.2g} relative to the reference."
            )
    gaps = list(dict.fromkeys((r["model"], r["metric"]) for r in rows))
    for model, metric in gaps:
        base = next((r for r in ref if r["model"] == model and r["metric"] == metric), None)
        if base is None:
            continue
        b, paper = _f(base["value"]), _f(base["paper"])
        moves = []
        for r in rows:
            if (
                r["model"] == model
                and r["metric"] == metric
                and r["setting"] != "reference"
                and "no retraining" not in str(r.get("cause", ""))
            ):
                v = _f(r["value"])
                moves.append((abs(math.log(max(v, 1e-12) / max(b, 1e-12))), r["setting"], v))
        moves.sort(reverse=True)
        if not moves:
            continue
        closest = min(moves, key=lambda t: abs(math.log(max(t[2], 1e-12) / max(paper, 1e-12))) if paper else 0)
        gap_left = abs(math.log(max(closest[2], 1e-12) / max(paper, 1e-12))) if paper else float("nan")
        out.append(
            f"{model} {metric}: reference {_g(b)} (paper {paper:g}); "
            + "; ".join(f"{s} {_g(v)}" for _, s, v in moves)
            + f". Closest to the paper: {closest[1]} ({_g(closest[2])})"
            + (
                ", within a factor 2."
                if gap_left <= math.log(2)
                else f", still a factor {math.exp(gap_left):.1f} away."
            )
        )
    return out


def to_rst(sentences: Sequence[str]) -> str:
    """The sentences as an rST bullet list (for ``.. include::`` in the docs);
    characters with a meaning in rST inline markup (``|``, ``*``, backquotes)
    are escaped, so ``|S(x) - S(0)|`` is text, not a substitution."""

    def escape(s: str) -> str:
        return re.sub(r"([|*`\\])", r"\\\1", s)

    return "\n".join(f"* {escape(s)}" for s in sentences) + "\n"
