"""Sentences about Deng et al.'s reproduction: Table 3 (and its ablation),
the Taylor infidelity, Figures 2-3 and Expected Gradients.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from captum_unified.experiments.findings.common import (
    TRAINED_ACCURACY,
    _count,
    _f,
    _g,
    _join,
    _p,
    evidence,
    mean_spearman_test,
    pearson_p,
    spearman_test,
)
from captum_unified.experiments.significance import ALPHA

#: Layer names of ``deng_dl_layers.csv``'s averages: over the layers a nonlinearity
#: follows (the Table-3 entry), and with the output layer counted too.
MEAN_LAYERS = "mean over layers"
MEAN_LAYERS_OUTPUT = "mean over layers, output layer counted"
OUTPUT_LAYER = "output layer"


# ---------------------------------------------------------------- Deng, Table 3
def _times(ours: float, theirs: float) -> str:
    """``ours`` as a multiple of ``theirs``: ``"2.7 times"`` or ``"1/86 of"``."""
    if not theirs or ours != ours or ours <= 0:
        return "n/a"
    r = ours / theirs

    def num(v: float) -> str:
        return f"{v:.1f}" if v < 10 else f"{v:.0f}"

    return f"{num(r)} times" if r >= 0.95 else f"1/{num(1 / r)} of"


def _within2(ours: float, theirs: float) -> bool:
    return bool(theirs) and ours == ours and 0.5 <= ours / theirs <= 2


def deng_table3_sentences(table3: list[dict], dl_layers: Sequence[dict] = ()) -> list[str]:
    """Table 3 (``deng_table3.csv``) and DeepLIFT's layers (``deng_dl_layers.csv``).

    The identities (Gradient*Input, the Poly model) hold for any weights; every
    other sentence compares a model with the paper only if :func:`evidence`
    accepts it (trained, enough samples), and the link between IG's ``d`` and
    the approximation error is claimed only when its correlation over the
    samples is significant (:func:`pearson_p`)."""
    d = {(r["model"], r["method"]): _f(r["d_percent"]) for r in table3}
    paper = {(r["model"], r["method"]): _f(r["paper_d_percent"]) for r in table3}
    models = list(dict.fromkeys(r["model"] for r in table3))
    ok = {m: evidence([r for r in table3 if r["model"] == m]) for m in models}
    out = []
    gi = [d[(m, "GI")] for m in models if (m, "GI") in d]
    if gi:
        if max(gi) < 1e-6:
            size = "d = 0" if max(gi) == 0 else f"d at most {max(gi):.1g}%"
            out.append(
                f"Gradient*Input equals its first-order Taylor term on every model ({size}), as Theorem 1 says "
                "(an identity: it holds for any weights)."
            )
        else:
            out.append(f"Gradient*Input differs from its first-order Taylor term by up to {max(gi):.3g}%.")
    if "Poly" in models:
        vals = [d[("Poly", m)] for m in ("GI", "Occ-1", "Occ-2x2", "Occ-4x4", "DL", "IG") if ("Poly", m) in d]
        vals = [v for v in vals if v == v]
        if vals and max(vals) < 1e-3:
            out.append(
                f"On Poly every reformulation is exact up to float rounding (largest d {max(vals):.1g}%), as "
                "in the paper (an identity for any quadratic model; the paper's 0.12% for IG comes from its "
                "integration, ours is exact on a quadratic path)."
            )
        elif vals:
            out.append(f"On Poly the largest d is {max(vals):.3g}%, so not every reformulation is exact there.")
    for m in models:
        if m == "Poly" or (m, "Occ-1") not in d:
            continue
        good, why = ok[m]
        if not good:
            out.append(f"On {m} ({why}) the numbers are not compared with the paper's: not enough to conclude.")
            continue
        occ = [d.get((m, k), float("nan")) for k in ("Occ-1", "Occ-2x2", "Occ-4x4")]
        if occ[0] < occ[1] < occ[2]:
            out.append(
                f"On {m}, d grows with the occlusion patch ({_g(occ[0])}% < {_g(occ[1])}% < {_g(occ[2])}%), "
                "as in the paper."
            )
        elif all(v == v for v in occ):
            out.append(
                f"On {m}, d does not grow with the occlusion patch (Occ-1 {_g(occ[0])}%, Occ-2x2 "
                f"{_g(occ[1])}%, Occ-4x4 {_g(occ[2])}%), unlike the paper."
            )
        parts, near = [], 0
        for k in ("Occ-1", "Occ-2x2", "Occ-4x4", "DL", "IG"):
            ours, theirs = d.get((m, k), float("nan")), paper.get((m, k), float("nan"))
            if ours != ours or not theirs:
                continue
            near += _within2(ours, theirs)
            parts.append(f"{k} {_g(ours)}% ({_times(ours, theirs)} the paper's {theirs:g}%)")
        if parts:
            out.append(
                f"On {m}: " + "; ".join(parts) + f". {_count(near, len(parts))} cells within a factor 2 of the paper."
            )
    rows0 = {r["model"]: r for r in table3}
    eps = {m: (_f(r["approx_error"]), _f(r["paper_approx_error"])) for m, r in rows0.items()}
    if eps:
        txt = ", ".join(f"{m} {_g(v[0])} (paper {v[1]:g})" for m, v in eps.items())
        if all(ok[m][0] or m == "Poly" for m in eps):
            order_ours = sorted(eps, key=lambda m: eps[m][0])
            order_paper = sorted(eps, key=lambda m: eps[m][1])
            tail = (
                "its order over the models is the paper's."
                if order_ours == order_paper
                else f"its order over the models ({' < '.join(order_ours)}) is not the paper's "
                f"({' < '.join(order_paper)})."
            )
        else:
            tail = "its order over the models is not compared (not every model is trained and explained enough)."
        out.append(f"The mean normalised second-order approximation error eps_bar is {txt}; " + tail)
        for m, (ours, theirs) in eps.items():
            if m == "Poly" or not ok[m][0] or not theirs or _within2(ours, theirs):
                continue
            out.append(
                f"On {m} the second-order expansion around the input misses {ours:.0%} of the output change to "
                f"the baseline on average ({_times(ours, theirs)} the paper's {theirs:.1%}); the methods whose "
                f"reformulation spans that whole path give "
                + " and ".join(
                    f"{k} {_g(d.get((m, k)))}% ({_times(d.get((m, k), 0), paper.get((m, k), 0))} the paper's)"
                    for k in ("IG", "DL")
                )
                + "."
            )
    for m, r in rows0.items():
        c, n = _f(r.get("corr_d_ig_eps")), _f(r.get("samples"))
        if m == "Poly" or c != c or not ok[m][0]:
            continue
        p = pearson_p(c, int(n))
        head = (
            f"Over the {n:.0f} samples of {m}, IG's d and the approximation error correlate with {c:.2f} "
            f"(Pearson, {_p(p)}; the paper: 0.72 on C-sg)"
        )
        if p < ALPHA and c > 0:
            out.append(
                head + ": significant, so IG's deviation follows the approximation error, as the paper concludes."
            )
        elif p < ALPHA:
            out.append(head + ": significantly negative, unlike the paper.")
        else:
            out.append(head + ": not significant, not enough to conclude that IG's deviation follows the error.")
    by = {(r["model"], r["layer"], r["upstream"]): _f(r["d_percent"]) for r in dl_layers}
    for m in models:
        local, prop = by.get((m, MEAN_LAYERS, "deeplift")), by.get((m, MEAN_LAYERS, "taylor"))
        counted = by.get((m, MEAN_LAYERS_OUTPUT, "deeplift"))
        inp = by.get((m, "input", "taylor"))
        if local is None or prop is None or m == "Poly":
            continue
        out.append(
            f"DeepLIFT on {m}: averaged over the layers a nonlinearity follows, d is {_g(local)}% when each "
            f"layer's own step is reformulated (the table's reading) and {_g(prop)}% when every layer above is "
            "reformulated too"
            + (
                f"; counting the output layer too (d {_g(by.get((m, OUTPUT_LAYER, 'deeplift')))}% there) "
                f"gives {_g(counted)}%"
                if counted is not None
                else ""
            )
            + f"; at the input layer alone (all layers reformulated) it is {_g(inp)}% (paper, averaged: "
            f"{paper.get((m, 'DL'), 0):g}%)."
        )
    return out


# ------------------------------------------------------- Deng, Taylor infidelity
def deng_infidelity_sentences(infid: list[dict]) -> list[str]:
    """First- vs second-order Taylor infidelity (``deng_infidelity.csv``); only
    models :func:`evidence` accepts count towards the paper's finding."""
    val = {(r["model"], int(_f(r["order"]))): r for r in infid}
    all_models = list(dict.fromkeys(r["model"] for r in infid))
    ok = {m: evidence([r for r in infid if r["model"] == m]) for m in all_models}
    out = [f"{m}: {ok[m][1]}; not enough to conclude." for m in all_models if not ok[m][0]]
    models = [m for m in all_models if ok[m][0]]
    if not models:
        return out + [
            "No model is trained and explained enough here to test the paper's finding (second order better "
            "than first)."
        ]
    better = {}
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


def _trend_points(rows: list[dict], model: str, key: str, eg: str) -> tuple[list, list]:
    use = [r for r in rows if r["model"] == model and (r["method"] in FIGURE_METHODS[:-1] or r["method"] == eg)]
    return [_f(r["principles"]) for r in use], [_f(r[key]) for r in use]


def _verdict(rho: float, p: float, expected_sign: int) -> str:
    if p != p:
        return "untestable"
    if p >= ALPHA:
        return "not significant"
    return "agrees" if rho * expected_sign > 0 else "opposite"


def _principle_trend(rows: list[dict], key: str, expected_sign: int, what: str, paper: str) -> list[str]:
    models = list(dict.fromkeys(r["model"] for r in rows))
    word = "negative" if expected_sign < 0 else "positive"
    ok = {m: evidence([r for r in rows if r["model"] == m]) for m in models}
    tests = {m: spearman_test(*_trend_points(rows, m, key, "EG")) for m in models}
    n = len(_trend_points(rows, models[0], key, "EG")[0]) if models else 0
    out = [
        f"Spearman's rank correlation between the number of principles and {what} over the {n} methods: "
        + ", ".join(f"{m} {_g(r, '+.2f')} ({_p(p)})" for m, (r, p) in tests.items())
        + " (two-sided exact permutation tests; the paper finds "
        + paper
        + ")."
    ]
    out += [f"{m}: {ok[m][1]}; not enough to conclude." for m in models if not ok[m][0]]
    usable = [m for m in models if ok[m][0]]
    if usable:
        groups: dict[str, list[str]] = {"agrees": [], "opposite": [], "not significant": [], "untestable": []}
        for m in usable:
            groups[_verdict(*tests[m], expected_sign)].append(m)
        parts = []
        if groups["agrees"]:
            parts.append(f"significantly {word} on {_join(groups['agrees'])}, the paper's finding")
        if groups["opposite"]:
            parts.append(
                f"significantly {'positive' if expected_sign < 0 else 'negative'} on "
                f"{_join(groups['opposite'])}, unlike the paper"
            )
        if groups["not significant"] + groups["untestable"]:
            parts.append(
                f"not significant at {ALPHA:g} on {_join(groups['not significant'] + groups['untestable'])}, where "
                "the numbers are not enough to conclude a correlation either way"
            )
        out.append(f"Of the {len(usable)} trained model(s): " + "; ".join(parts) + ".")
        if len(usable) > 1:
            mean, p = mean_spearman_test([_trend_points(rows, m, key, "EG") for m in usable])
            v = _verdict(mean, p, expected_sign)
            out.append(
                f"Mean rho over {_join(usable)}: {_g(mean, '+.2f')} ({_p(p)}, each model's methods permuted "
                "separately): "
                + {
                    "agrees": f"significantly {word}, the paper's finding.",
                    "opposite": "significantly of the opposite sign, unlike the paper.",
                    "not significant": "not significant, not enough to conclude a common trend.",
                    "untestable": "not testable.",
                }[v]
            )
    if any(r["method"] == EG_VARIANT for r in rows):
        alt = {m: spearman_test(*_trend_points(rows, m, key, EG_VARIANT)) for m in models}
        sig = [m for m in usable if _verdict(*alt[m], expected_sign) == "agrees"]
        out.append(
            f"With Expected Gradients' baselines drawn from training digits ({EG_VARIANT}) in place of the "
            "Gaussian ones around the input: "
            + ", ".join(f"{m} {_g(r, '+.2f')} ({_p(p)})" for m, (r, p) in alt.items())
            + (f"; significantly {word} on {_count(len(sig), len(usable))} trained models." if usable else ".")
        )
    best = []
    for m in models:
        ms = [r for r in rows if r["model"] == m and r["method"] in FIGURE_METHODS]
        pick = (min if expected_sign < 0 else max)(ms, key=lambda r: _f(r[key]))
        best.append(f"{m} {pick['method']} ({_g(pick[key])})")
    out.append(
        f"{'Lowest' if expected_sign < 0 else 'Highest'} measured {what} per model (no test of the gap to the "
        f"next method): {', '.join(best)}."
    )
    return out


def _explained_share(rows: list[dict]) -> list[str]:
    """What the attributions of Figure 2's methods sum to, as a share of the
    output change from the input to the removal baseline (``sum_share``)."""
    if not rows or "sum_share" not in rows[0]:
        return []
    models = list(dict.fromkeys(r["model"] for r in rows))
    methods = [m for m in (*FIGURE_METHODS, EG_VARIANT) if any(r["method"] == m for r in rows)]
    share = {(r["model"], r["method"]): _f(r["sum_share"]) for r in rows}
    out = [
        "Sum of the attributions over the output change from the input to the removal baseline "
        "(mean over samples of the sum, divided by the mean change; 1 for a method complete with that baseline): "
        + "; ".join(f"{me} " + ", ".join(f"{m} {_g(share.get((m, me)), '.2f')}" for m in models) for me in methods)
        + "."
    ]
    eg = [share.get((m, "EG"), float("nan")) for m in models]
    trained = all(evidence([r for r in rows if r["model"] == m])[0] for m in models)
    if trained and all(v == v and abs(v) < 0.2 for v in eg):
        out.append(
            "EG's baselines are drawn around the input, so its attributions explain the mean output change "
            "to those nearby points, which is close to 0 (largest share here "
            f"{max(abs(v) for v in eg):.2f}), not the removal of squares to the baseline that infidelity "
            "measures: its large infidelity follows from that definition (Deng's x_bar ~ N(x, sigma^2)), "
            "not from the principles it follows."
        )
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
    return out + _explained_share(fig2)


def deng_figure3_sentences(fig3: list[dict]) -> list[str]:
    """Figure 3 (``deng_figure3.csv``): bounding-box accuracy vs principles."""
    return _principle_trend(fig3, "bbox_accuracy", +1, "bounding-box accuracy", "a positive correlation")


def _clearly(a: dict, b: dict, kind: str) -> int:
    """-1 / +1 when ``a``'s mean infidelity is below / above ``b``'s by more than
    twice the larger standard error, else 0."""
    va, vb = _f(a[f"infidelity_{kind}"]), _f(b[f"infidelity_{kind}"])
    se = max(_f(a.get(f"sem_{kind}")), _f(b.get(f"sem_{kind}")))
    if se != se or abs(va - vb) <= 2 * se:
        return 0
    return -1 if va < vb else 1


def deng_eg_sentences(rows: list[dict]) -> list[str]:
    """Expected Gradients' variants in Figure 2 (``eg_infidelity.csv`` of
    ``scripts/ablation_deng_eg.py``): what makes EG's infidelity the largest.
    A difference counts when the means differ by more than twice the larger
    standard error; a trend only with a significant permutation test; nothing
    is concluded from a model :func:`evidence` rejects."""
    out = []
    for m in dict.fromkeys(r["model"] for r in rows):
        mine = {r["map"]: r for r in rows if r["model"] == m}
        good, why = evidence(list(mine.values()))
        if not good:
            out.append(f"{m}: {why}; not enough to conclude.")
            continue
        eg = next((r for k, r in mine.items() if k.startswith("EG") and "pipeline" in k), None)
        ig, zero = mine.get("IG"), mine.get("zero map")
        if eg is None or ig is None or zero is None:
            continue
        variants = {k: r for k, r in mine.items() if k.startswith("EG") and r is not eg}
        out.append(
            f"{m}, scaled infidelity: the pipeline's EG {_g(eg['infidelity_scaled'])}, IG "
            f"{_g(ig['infidelity_scaled'])}, a map of zeros {_g(zero['infidelity_scaled'])}; EG's attributions "
            f"sum to {_g(eg['sum_share'], '.2f')} of the output change to the black image (IG "
            f"{_g(ig['sum_share'], '.2f')})."
        )
        same: list[str] = []
        lower: list[str] = []
        higher: list[str] = []
        for k, r in variants.items():
            c = _clearly(r, eg, "scaled")
            (same if c == 0 else lower if c < 0 else higher).append(f"{k} {_g(r['infidelity_scaled'])}")
        if lower:
            out.append(f"{m}: lower than the pipeline's EG: " + "; ".join(lower) + ".")
        if higher:
            out.append(f"{m}: higher: " + "; ".join(higher) + ".")
        if same:
            out.append(f"{m}: no clear change (within twice the standard error): " + "; ".join(same) + ".")
        near = [k for k, r in variants.items() if _clearly(r, ig, "scaled") <= 0 and "removal baseline" in k]
        if near:
            out.append(
                f"{m}: with its baselines drawn around the black image that the squares are removed to, EG's "
                "infidelity is no longer clearly above IG's: its baselines, centred on the input as in Deng's "
                "definition, make it the worst, since its attributions then explain the output change to "
                "points near the input, not the removal."
            )
        for kind in ("scaled", "unscaled"):
            tests = {
                k: (_f(r.get(f"rho_{kind}")), _f(r.get(f"p_{kind}")))
                for k, r in [("the pipeline's EG", eg), *variants.items()]
            }
            sig = [k for k, (rho, p) in tests.items() if p == p and p < ALPHA and rho < 0]
            if sig:
                out.append(
                    f"{m}, {kind}: Figure 2's trend is significantly negative, the paper's finding, only with "
                    + "; ".join(f"{k} in EG's place (rho {tests[k][0]:+.2f}, {_p(tests[k][1])})" for k in sig)
                    + "."
                )
            else:
                ps = [p for _, p in tests.values() if p == p]
                out.append(
                    f"{m}, {kind}: with no variant of EG in its place is Figure 2's trend significantly negative"
                    + (f" (p from {min(ps):.2g} to {max(ps):.2g}, six methods)." if ps else ".")
                )
    return out


# ------------------------------------------------------------------ ablation
def _is_trained(r: dict) -> bool:
    flag = str(r.get("trained", ""))
    if flag in ("True", "False"):
        return flag == "True"
    return _f(r.get("test_accuracy")) >= TRAINED_ACCURACY


def _factor_away(v: float, paper: float) -> float:
    return math.exp(abs(math.log(max(v, 1e-12) / max(paper, 1e-12))))


def ablation_sentences(rows: list[dict]) -> list[str]:
    """What each varied cause did to the Table-3 gaps (``ablation.csv``).

    Settings whose model is below :data:`TRAINED_ACCURACY` are named and left
    out. Per gap (model and metric): the reference's value with its standard
    error, the trained settings ordered by how far they move it, the setting
    closest to the paper and whether that is within a factor 2; then which
    single setting brings the most cells within a factor 2."""
    ref = [r for r in rows if r["setting"] == "reference"]
    if not ref:
        return []
    out = []
    untrained = [r for r in rows if not _is_trained(r)]
    if untrained:
        named = dict.fromkeys(f"{r['setting']} ({r['model']}, {_f(r['test_accuracy']):.1%})" for r in untrained)
        out.append(f"Left out as not trained (test accuracy below {TRAINED_ACCURACY:.0%}): " + "; ".join(named) + ".")
    trained = [r for r in rows if _is_trained(r)]
    for model, metric in dict.fromkeys((r["model"], r["metric"]) for r in rows):
        base = next((r for r in ref if r["model"] == model and r["metric"] == metric), None)
        if base is None or not _is_trained(base):
            continue
        b, sem, paper = _f(base["value"]), _f(base.get("sem")), _f(base["paper"])
        moves = sorted(
            (
                (abs(math.log(max(_f(r["value"]), 1e-12) / max(b, 1e-12))), r["setting"], _f(r["value"]))
                for r in trained
                if r["model"] == model and r["metric"] == metric and r["setting"] != "reference"
            ),
            reverse=True,
        )
        head = f"{model} {metric}: reference {_g(b)}" + (f" ± {_g(sem, '.2g')}" if sem == sem else "")
        head += f" (paper {paper:g}"
        if paper:
            head += f"; {_times(b, paper)} the paper's"
            if sem == sem and sem > 0 and not _within2(b, paper):
                head += f", {abs(paper - b) / sem:.0f} standard errors away, so not the sample's chance"
        head += ")"
        if not moves:
            out.append(head + ".")
            continue
        text = head + "; " + "; ".join(f"{st} {_g(v)}" for _, st, v in moves)
        if paper:
            cands = [(b, "reference")] + [(v, st) for _, st, v in moves]
            v, st = min(cands, key=lambda t: _factor_away(t[0], paper))
            text += f". Closest to the paper: {st} ({_g(v)})" + (
                ", within a factor 2." if _within2(v, paper) else f", still a factor {_factor_away(v, paper):.1f} away"
            )
            below = [t for t in cands if t[0] < paper]
            above = [t for t in cands if t[0] > paper]
            if not _within2(v, paper) and below and above:
                lo, hi = max(below), min(above)
                text += (
                    f"; the paper's value lies between {lo[1]} ({_g(lo[0])}) and {hi[1]} ({_g(hi[0])}): "
                    "no setting tried reaches it, an untried one between those two might."
                )
            elif not _within2(v, paper):
                text += f"; every trained setting is {'below' if not above else 'above'} the paper's value."
        else:
            text += "."
        out.append(text)
    cells = list(dict.fromkeys((r["model"], r["metric"]) for r in ref if _f(r["paper"])))
    score = []
    for st in dict.fromkeys(r["setting"] for r in trained):
        have = {(r["model"], r["metric"]): _f(r["value"]) for r in trained if r["setting"] == st}
        if st != "reference" and len(have) < len(cells):
            continue  # a setting run on one model, or one metric, is not a whole table
        near = [
            c
            for c in cells
            if c in have and _within2(have[c], _f(next(r["paper"] for r in ref if (r["model"], r["metric"]) == c)))
        ]
        score.append((len(near), st))
    if score:
        ref_n = next((n for n, st in score if st == "reference"), 0)
        others = [(n, st) for n, st in score if st != "reference"]
        best = max((n for n, _ in others), default=ref_n)
        text = f"Cells within a factor 2 of the paper, of {len(cells)} on the whole table: reference {ref_n}"
        if best > ref_n:
            text += f"; most with one setting changed: {best} ({_join(st for n, st in others if n == best)})"
        else:
            text += "; no single setting changed brings more"
        out.append(text + ("; that setting matches every cell." if best == len(cells) else "."))
    return out
