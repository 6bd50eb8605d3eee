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
from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

from captum_unified.experiments.significance import ALPHA, compare_to, one_sample_t_test, welch_t_test

__all__ = [
    "spearman",
    "deng_table3_sentences",
    "deng_infidelity_sentences",
    "deng_figure2_sentences",
    "deng_figure3_sentences",
    "ancona_sentences",
    "ancona_region_sentences",
    "ancona_tables",
    "ancona_network",
    "ancona_panel_title",
    "ANCONA_METHOD_NAMES",
    "ACTIVATION_NAMES",
    "fmt_pcc",
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


def _average_ranks(v: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given the mean of their ranks (``scipy.stats.rankdata``)."""
    order = np.argsort(v, kind="mergesort")
    sorted_v = v[order]
    starts = np.r_[True, sorted_v[1:] != sorted_v[:-1]]
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    last = np.r_[first[1:], len(v)]
    ranks = np.empty(len(v))
    ranks[order] = 0.5 * (first + 1 + last)[group]
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (ties get their average rank), computed as
    ``scipy.stats.spearmanr`` computes it: the Pearson correlation of the ranks
    (``np.corrcoef``); NaN for fewer than 3 points, a constant side or a NaN."""
    x, y = [float(v) for v in x], [float(v) for v in y]
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2 or any(v != v for v in x + y):
        return float("nan")
    ranked = np.column_stack((_average_ranks(np.asarray(x)), _average_ranks(np.asarray(y))))
    return float(np.corrcoef(ranked, rowvar=False)[1, 0])


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
#: Ancona et al.'s names of the methods (Table 1, Figure 4), per method key.
ANCONA_METHOD_NAMES = {
    "gi": "Gradient * Input",
    "ig": "Integrated Gradients",
    "lrp": "ε-LRP",
    "deeplift": "DeepLIFT (Rescale)",
    "occlusion1": "Occlusion-1",
    "deeplift_ancona": "DeepLIFT (Rescale), ordinary products",
}
#: The paper's spelling of the activations (App. C.1).
ACTIVATION_NAMES = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid", "softplus": "Softplus"}
_FAMILIES = {
    "ancona_mlp": "MLP",
    "ancona_cnn": "CNN",
    "linear": "Linear",
    "ancona_lstm": "LSTM (rows)",
    "vit": "ViT (patches)",
    "sentiment_bert": "Sentiment BERT (VADER words)",
}

#: A network's numbers support a conclusion only when it reaches this test
#: accuracy (chance: 10%) and at least :data:`MIN_SAMPLES` digits were explained;
#: for the others the sentences say there is not enough to conclude.
MIN_ACCURACY = 0.8
MIN_SAMPLES = 10
#: Tolerances the sentences name: a step up of a curve that still counts as
#: "decreasing"; the relative distance under which two methods count as equal;
#: the distance to 1 under which all methods count as agreeing on the linear model.
STEP_TOLERANCE = 0.02
EQUAL_TOLERANCE = 0.05
LINEAR_TOLERANCE = 0.001
#: ε-LRP "fails" (finding 5) where its mean PCC stays below this level at every n
#: and below Gradient * Input's (significantly) at every n.
FAIL_LEVEL = 0.5
#: The numbers of removed pixels the region-perturbation table shows.
REGION_TABLE_K = (1, 5, 10, 20, 50, 100, 200)


def ancona_network(model: str, activation: str) -> str:
    """A network's name as the paper writes it, e.g. ``"MLP w/ ReLU"``."""
    base = _FAMILIES.get(model, model)
    return base if activation in ("none", "", None) else f"{base} w/ {ACTIVATION_NAMES.get(activation, activation)}"


#: The data set each network reads, for panel titles (default MNIST).
_DATASETS: dict[str, str] = {"sentiment_bert": ""}


def ancona_panel_title(model: str, activation: str) -> str:
    """Figure 4's panel title, e.g. ``"MNIST MLP w/ ReLU"``."""
    return f"{_DATASETS.get(model, 'MNIST')} {ancona_network(model, activation)}".strip()


def fmt_pcc(v) -> str:
    """A correlation as the tables and sentences print it (3 decimals)."""
    v = _f(v)
    return "nan" if v != v else f"{v:.3f}"


def _pm(mean: float, sd: float, k: int, spec: str = ".3f", se_spec: str | None = None) -> str:
    """``mean ± standard error`` (the standard error from the standard deviation over ``k`` samples)."""
    if mean != mean:
        return "nan"
    if sd != sd or k < 2:
        return format(mean, spec)
    return f"{format(mean, spec)} ± {format(sd / math.sqrt(k), se_spec or spec)}"


class _Curve:
    """One method's Sensitivity-n curve on one network, from the CSV rows."""

    def __init__(self) -> None:
        self.rows: dict[int, tuple[float, float, float, int]] = {}  # n -> mean, pooled, sd, count

    def add(self, r: dict) -> None:
        samples = _f(r.get("samples", "nan"))
        k = 0 if samples != samples else int(samples) - int(_f(r.get("n_nan", 0)) or 0)
        self.rows[int(_f(r["n"]))] = (_f(r["mean_pcc"]), _f(r["pooled_pcc"]), _f(r.get("sd_pcc", "nan")), k)

    @property
    def big(self) -> int:
        return max(self.rows)

    def points(self) -> dict[int, tuple[float, float, int]]:
        """n < N -> (mean, sd, count)."""
        return {n: (v[0], v[2], v[3]) for n, v in sorted(self.rows.items()) if n < self.big}

    def means(self) -> dict[int, float]:
        return {n: v[0] for n, v in self.points().items()}

    @property
    def pooled_at_N(self) -> float:
        return self.rows[self.big][1]


def _gap_to_ig(curves, key, m) -> float:
    """The largest distance over n < N between a method's Sensitivity-n curve and IG's."""
    if "ig" not in curves[key] or m not in curves[key]:
        return float("nan")
    a, b = curves[key][m].means(), curves[key]["ig"].means()
    return max(abs(a[n] - b[n]) for n in a if n in b)


def _ancona_curves(sens: list[dict]) -> dict[tuple[str, str], dict[str, _Curve]]:
    curves: dict[tuple[str, str], dict[str, _Curve]] = defaultdict(dict)
    for r in sens:
        curves[(r["model"], r["activation"])].setdefault(r["method"], _Curve()).add(r)
    return curves


def _welch(a: tuple[float, float, int], b: tuple[float, float, int]) -> int:
    """+1 / -1 when mean a is significantly above / below mean b, else 0."""
    _, p = welch_t_test(a[0], a[1], a[2], b[0], b[1], b[2])
    return compare_to(p, a[0] - b[0])


def _vs_value(a: tuple[float, float, int], value: float) -> int:
    _, p = one_sample_t_test(a[0], a[1], a[2], value)
    return compare_to(p, a[0] - value)


def _possessive(name: str) -> str:
    return name + ("'" if name.endswith("s") else "'s")


def _names(keys) -> str:
    return _join(ancona_network(*k) for k in keys)


def ancona_tables(checks: list[dict], sens: list[dict], region: Sequence[dict] = ()) -> dict[str, list[dict]]:
    """The tables that show every number :func:`ancona_sentences` and
    :func:`ancona_region_sentences` state, formatted as the sentences format
    them (the report and the docs' results page show them): ``"sensitivity"``
    (per network and method: the Sensitivity-n curve's value at n = 1 and at
    the largest n < N with its standard error, lowest and highest over n < N,
    pooled at n = N), ``"checks"`` (the maps compared: correlation with
    Occlusion-1's and IG's maps, relative distance to Gradient * Input,
    completeness gap, the largest gap to IG's Sensitivity-n curve, share of
    negative values) and ``"region"`` (Figure 3c at a few numbers of removed
    pixels)."""
    curves = _ancona_curves(sens)
    acc = {(r["model"], r["activation"]): _f(r["test_accuracy"]) for r in checks}
    sens_rows = []
    for key, by_method in curves.items():
        for m, c in by_method.items():
            pts = c.points()
            first, last = pts[min(pts)], pts[max(pts)]
            means = [v[0] for v in pts.values()]
            sens_rows.append(
                {
                    "network": ancona_network(*key),
                    "test accuracy": f"{acc.get(key, float('nan')):.1%}",
                    "method": ANCONA_METHOD_NAMES.get(m, m),
                    "n = 1 (± SE)": _pm(*first),
                    "largest n < N": str(max(pts)),
                    "at largest n (± SE)": _pm(*last),
                    "lowest, n < N": fmt_pcc(min(means)),
                    "highest, n < N": fmt_pcc(max(means)),
                    "pooled, n = N": fmt_pcc(c.pooled_at_N),
                }
            )
    check_rows = []
    for r in checks:
        k = int(_f(r.get("samples", 0)))
        check_rows.append(
            {
                "network": ancona_network(r["model"], r["activation"]),
                "method": ANCONA_METHOD_NAMES.get(r["method"], r["method"]),
                "map PCC vs Occlusion-1 (± SE)": _pm(
                    _f(r.get("pcc_vs_occlusion1")), _f(r.get("pcc_vs_occlusion1_sd")), k
                ),
                "map PCC vs IG (± SE)": _pm(_f(r.get("pcc_vs_ig")), _f(r.get("pcc_vs_ig_sd")), k),
                "relative distance to GI": _g(r.get("rel_diff_vs_gi")),
                "completeness gap / ΔS, median": _g(r.get("median_rel_delta")),
                "completeness gap / ΔS, largest": _g(r.get("max_rel_delta"), ".2g"),
                "largest Sensitivity-n gap to IG": fmt_pcc(
                    _gap_to_ig(curves, (r["model"], r["activation"]), r["method"])
                ),
                "negative share": _g(r.get("negative_fraction"), ".2f"),
            }
        )
    region_rows = []
    for m, tag in dict.fromkeys((r["method"], r["order"]) for r in region):
        row = {"method": f"{ANCONA_METHOD_NAMES.get(m, m)} ({tag})"}
        by_k = {int(_f(r["k"])): r for r in region if r["method"] == m and r["order"] == tag}
        for kk in REGION_TABLE_K:
            if kk in by_k:
                q = by_k[kk]
                row[f"k = {kk}"] = _pm(_f(q["mean_change"]), _f(q["sd_change"]), int(_f(q["samples"])), ".3g", ".2g")
        region_rows.append(row)
    return {"sensitivity": sens_rows, "checks": check_rows, "region": region_rows}


def _usable(checks: list[dict]) -> tuple[dict, list, list]:
    acc = {(r["model"], r["activation"]): _f(r["test_accuracy"]) for r in checks}
    samples = {(r["model"], r["activation"]): int(_f(r.get("samples", 0))) for r in checks}
    ok = [k for k in acc if acc[k] >= MIN_ACCURACY and samples[k] >= MIN_SAMPLES]
    weak = [k for k in acc if k not in ok]
    return acc, ok, weak


def ancona_sentences(checks: list[dict], sens: list[dict]) -> list[str]:
    """Ancona's findings (§4.1) from ``ancona_checks.csv`` and ``ancona_sensitivity_n.csv``.

    A trend is stated only on networks at :data:`MIN_ACCURACY` test accuracy or
    more with :data:`MIN_SAMPLES` explained samples or more, and only where a
    test at :data:`~captum_unified.experiments.significance.ALPHA` supports it
    (Welch's t test between two means over the samples, or a one-sample t test
    against a fixed value); every number the sentences give is in
    :func:`ancona_tables`, formatted alike."""
    curves = _ancona_curves(sens)
    crow = {(r["model"], r["activation"], r["method"]): r for r in checks}
    acc, ok_all, weak_all = _usable(checks)
    nets_all = [k for k in curves if k[0] != "linear"]
    nets = [k for k in nets_all if k in ok_all]
    weak = [k for k in nets_all if k in weak_all]
    # methods every network ran (extra methods of one model get their own sentence)
    methods = [m for m in dict.fromkeys(r["method"] for r in checks) if all(m in curves[k] for k in curves)]
    name = {m: ANCONA_METHOD_NAMES.get(m, m) for m in ANCONA_METHOD_NAMES}
    out: list[str] = []
    if not nets_all:
        return out
    tested = not all(math.isnan(v[2]) for d in curves.values() for c in d.values() for v in c.rows.values())
    if not tested:
        out.append(
            "This CSV has no standard deviations over the samples (it was written before they were recorded), "
            "so no comparison can be tested: only the numbers and the exact checks follow. Rerun reproduce ancona "
            "for the tested findings."
        )
    bar = f"test accuracy {MIN_ACCURACY:.0%} or more and {MIN_SAMPLES} or more explained samples"
    if weak:
        out.append(
            f"Conclusions below use the networks at {bar}: {_names(nets) or 'none'}. Not enough to conclude "
            "from "
            + _join(f"{ancona_network(*k)} ({acc[k]:.1%} test accuracy)" for k in weak)
            + "; their numbers are in the tables only."
        )
    else:
        out.append(
            f"Every network reaches {bar} (lowest test accuracy: {min(acc[k] for k in nets):.1%}), so "
            "every one supports conclusions."
        )
    if not nets:
        out.append("No network is trained well enough: there is not enough to conclude on any finding.")
        return out
    alpha = f"p < {ALPHA:g}"
    if tested:
        # 1: negative evidence: every method reaches 0.9 for some n; signed attributions
        reach, miss, unsure = defaultdict(list), defaultdict(list), defaultdict(list)
        for k in nets:
            for m in methods:
                vals = list(curves[k][m].points().values())
                if any(_vs_value(v, 0.9) > 0 for v in vals):
                    reach[m].append(k)
                elif all(_vs_value(v, 0.9) < 0 for v in vals):
                    miss[m].append(k)
                else:
                    unsure[m].append(k)
        neg = [_f(crow[(k[0], k[1], m)]["negative_fraction"]) for k in nets for m in methods]
        first = (
            f"Every method's attributions have both signs (share of negative values {min(neg):.2f} to {max(neg):.2f}). "
        )
        if all(len(reach[m]) == len(nets) for m in methods):
            out.append(
                first + f"Every method's mean PCC is above 0.9 ({alpha}) at some n < N on every network, as the paper "
                "finds (finding 1)."
            )
        else:
            good = [name[m] for m in methods if len(reach[m]) == len(nets)]
            parts = []
            for m in methods:
                if miss[m]:
                    highest = ", ".join(fmt_pcc(max(curves[k][m].means().values())) for k in miss[m])
                    parts.append(
                        f"{name[m]} stays below 0.9 ({alpha} at every n) on {_names(miss[m])} (highest mean {highest})"
                    )
                if unsure[m]:
                    parts.append(f"{name[m]} is not significantly above 0.9 at any n on {_names(unsure[m])}")
            out.append(
                first
                + (
                    f"{_join(good)} {'is' if len(good) == 1 else 'are'} above 0.9 ({alpha}) at some n on every "
                    "network. "
                    if good
                    else ""
                )
                + "; ".join(p[0].upper() + p[1:] for p in parts[:1])
                + "".join("; " + p for p in parts[1:])
                + ". Finding 1 (every method close to 1 for some n) holds "
                + (f"for {_join(good)} only." if good else "for no method here.")
            )
    # 2: Occlusion-1: Sensitivity-1, and decreasing with n
    if tested and "occlusion1" in methods:
        at1 = [curves[k]["occlusion1"].points()[1][0] for k in nets]
        level = "1 to 4 decimals" if min(at1) > 0.99995 else f"between {fmt_pcc(min(at1))} and 1"
        below = [
            k
            for k in nets
            if all(
                _welch(curves[k][m].points()[1], curves[k]["occlusion1"].points()[1]) < 0
                for m in methods
                if m != "occlusion1"
            )
        ]
        dec: list[tuple[str, str]] = []
        not_dec: list[tuple[str, str]] = []
        for k in nets:
            pts = curves[k]["occlusion1"].points()
            occ_means = [v[0] for v in pts.values()]
            steps_ok = all(b <= a + STEP_TOLERANCE for a, b in zip(occ_means, occ_means[1:]))
            (dec if steps_ok and _welch(pts[max(pts)], pts[min(pts)]) < 0 else not_dec).append(k)
        out.append(
            f"Occlusion-1's PCC at n = 1 is {level} on every network (Sensitivity-1, by construction); every other "
            f"method's is below it ({alpha}) on {_count(len(below), len(nets))} networks"
            + (f" (not on {_names(k for k in nets if k not in below)})" if len(below) < len(nets) else "")
            + f". Its curve decreases with n (the value at the largest n < N below the one at n = 1, {alpha}, and "
            f"no step up by more than {STEP_TOLERANCE:g}) on {_count(len(dec), len(nets))} networks"
            + (
                ", as the paper finds (finding 2)."
                if not not_dec
                else f"; not on {_names(not_dec)}, unlike the paper's finding 2."
            )
        )
    # curve shapes per family (numbers: the tables' "lowest, n < N")
    for fam, label in (
        ("ancona_mlp", "MLPs"),
        ("ancona_cnn", "CNNs"),
        ("ancona_lstm", "LSTM"),
        ("vit", "ViT"),
        ("sentiment_bert", "sentiment transformer (words as features; the IMDB panels' stand-in)"),
    ):
        keys = [k for k in nets if k[0] == fam]
        if not keys:
            continue
        parts = []
        for m in methods:
            lows = {k: min(curves[k][m].means().values()) for k in keys}
            worst = min(lows, key=lows.__getitem__)
            parts.append(
                f"{name[m]} {fmt_pcc(lows[worst])}" + (f" ({ancona_network(*worst)})" if len(keys) > 1 else "")
            )
        out.append(f"On the {label}, the lowest mean PCC over n < N of each method: " + ", ".join(parts) + ".")
    # IG / DeepLIFT: do their curves rise with n?
    for m in ("ig", "deeplift"):
        if m not in methods or not tested:
            continue
        up: list[tuple[str, str]] = []
        down: list[tuple[str, str]] = []
        flat: list[tuple[str, str]] = []
        for k in nets:
            pts = curves[k][m].points()
            s = _welch(pts[max(pts)], pts[min(pts)])
            (up if s > 0 else down if s < 0 else flat).append(k)
        parts = [f"higher on {_names(up)}" if up else "", f"lower on {_names(down)}" if down else ""]
        if flat:
            parts.append(f"not significantly different on {_names(flat)}")
        out.append(
            f"{_possessive(name[m])} curve ends (largest n < N) versus starts (n = 1), Welch {alpha}: "
            + "; ".join(p for p in parts if p)
            + "."
        )
    # 3: Gradient * Input closest to Occlusion-1
    grad = [m for m in ("gi", "ig", "lrp", "deeplift") if m in methods]
    if tested and "occlusion1" in methods and "gi" in grad and len(grad) > 1:
        wins: list[tuple[str, str]] = []
        ties: list[tuple[str, str]] = []
        loses: list[tuple[str, str]] = []

        def stat(k, m):
            r = crow[(k[0], k[1], m)]
            return (_f(r["pcc_vs_occlusion1"]), _f(r.get("pcc_vs_occlusion1_sd")), int(_f(r["samples"])))

        for k in nets:
            best_other = max((m for m in grad if m != "gi"), key=lambda m: stat(k, m)[0])
            s = _welch(stat(k, "gi"), stat(k, best_other))
            (wins if s > 0 else loses if s < 0 else ties).append(k)
        out.append(
            "Gradient * Input's map correlates with Occlusion-1's more than every other gradient method's map "
            f"(Welch {alpha} against the next best) on "
            + (_names(wins) or "no network")
            + (f"; as much as the best, no significant difference, on {_names(ties)}" if ties else "")
            + (f"; less on {_names(loses)}" if loses else "")
            + ". The paper finds it sometimes does (finding 3, e.g. MNIST-MLP w/ Tanh)."
        )
    # 4: IG ~ DeepLIFT
    if tested and "ig" in methods and "deeplift" in methods:
        rows = {k: crow[(k[0], k[1], "deeplift")] for k in nets}
        sim = {k: (_f(r["pcc_vs_ig"]), _f(r.get("pcc_vs_ig_sd")), int(_f(r["samples"]))) for k, r in rows.items()}
        high = [k for k in nets if _vs_value(sim[k], 0.9) > 0]
        low = [k for k in nets if _vs_value(sim[k], 0.9) < 0]
        gap = max(_gap_to_ig(curves, k, "deeplift") for k in nets)
        lo_k, hi_k = min(nets, key=lambda k: sim[k][0]), max(nets, key=lambda k: sim[k][0])
        out.append(
            "The maps of Integrated Gradients and DeepLIFT (Rescale) correlate with "
            + (
                f"{fmt_pcc(sim[lo_k][0])} ({ancona_network(*lo_k)}) to "
                f"{fmt_pcc(sim[hi_k][0])} ({ancona_network(*hi_k)})"
                if len(nets) > 1
                else f"{fmt_pcc(sim[lo_k][0])} on {ancona_network(*lo_k)}"
            )
            + "; above 0.9 "
            f"({alpha}) on {_count(len(high), len(nets))} networks"
            + (f", below 0.9 on {_names(low)}" if low else "")
            + (
                ", very high as in the paper (finding 4)"
                if len(high) == len(nets)
                else ", not everywhere very high, unlike the paper's finding 4"
            )
            + f". Their Sensitivity-n curves are at most {fmt_pcc(gap)} apart"
            + (", on top of each other in Figure 4 (IG thick, DeepLIFT dashed over it)" if gap < 0.02 else "")
            + "."
        )
    # 5: epsilon-LRP vs Gradient * Input
    if "lrp" in methods and "gi" in methods:
        relu = [k for k in nets if k[1] == "relu"]
        other = [k for k in nets if k[1] in ("sigmoid", "softplus")]
        if relu:
            rel = max(_f(crow[(k[0], k[1], "lrp")]["rel_diff_vs_gi"]) for k in relu)
            out.append(
                f"On the ReLU networks ε-LRP's map is at a relative distance of at most {_g(rel)} from Gradient * "
                "Input's"
                + (
                    f" (tolerance {EQUAL_TOLERANCE:g}): equal up to ε, as the paper says (finding 5)."
                    if rel < EQUAL_TOLERANCE
                    else f", more than the tolerance {EQUAL_TOLERANCE:g}: not equal, unlike the paper's finding 5."
                )
            )
        if other and tested:
            rels = [_f(crow[(k[0], k[1], "lrp")]["rel_diff_vs_gi"]) for k in other]
            lo = min(min(curves[k]["lrp"].means().values()) for k in other)
            hi = max(max(curves[k]["lrp"].means().values()) for k in other)
            below = [
                k
                for k in other
                if max(curves[k]["lrp"].means().values()) < FAIL_LEVEL
                and all(
                    _welch(curves[k]["lrp"].points()[n], curves[k]["gi"].points()[n]) < 0
                    for n in curves[k]["gi"].points()
                )
            ]
            out.append(
                f"On the Sigmoid/Softplus networks ε-LRP's map is at a relative distance of {_g(min(rels))} to "
                f"{_g(max(rels))} from Gradient * Input's and its mean PCC lies between {fmt_pcc(lo)} and "
                f"{fmt_pcc(hi)} for n < N; it stays below {FAIL_LEVEL:g} and below Gradient * Input's at every "
                f"n < N ({alpha} at each) on {_count(len(below), len(other))} of them"
                + (
                    ": it fails there, as the paper finds (finding 5)."
                    if len(below) == len(other)
                    else f" (not on {_names(k for k in other if k not in below)})."
                )
            )
    # 4 on models with products (LSTM): Ancona's original DeepLIFT vs the Shapley product rule
    for k in nets_all:
        if "deeplift_ancona" not in curves[k] or "deeplift" not in curves[k] or "ig" not in curves[k]:
            continue
        orig, shap = crow[(k[0], k[1], "deeplift_ancona")], crow[(k[0], k[1], "deeplift")]
        n_s = int(_f(orig["samples"]))
        r_orig = (_f(orig["pcc_vs_ig"]), _f(orig.get("pcc_vs_ig_sd")), n_s)
        r_shap = (_f(shap["pcc_vs_ig"]), _f(shap.get("pcc_vs_ig_sd")), n_s)
        text = (
            f"On the {ancona_network(*k)} (a fused nn.LSTM: its gates are products) Ancona et al.'s original "
            f"DeepLIFT, with the ordinary product rule, misses completeness by {_g(orig['median_rel_delta'])} times "
            f"|S(x) - S(0)| (median over the samples); with the Shapley product rule DeepLIFT is complete (largest "
            f"relative gap {_g(shap['max_rel_delta'], '.2g')}). Their maps correlate with IG's at "
            f"{fmt_pcc(r_orig[0])} (original) and {fmt_pcc(r_shap[0])} (Shapley rule); their Sensitivity-n curves "
            f"are up to {fmt_pcc(_gap_to_ig(curves, k, 'deeplift_ancona'))} and "
            f"{fmt_pcc(_gap_to_ig(curves, k, 'deeplift'))} from IG's. "
        )
        if not tested:
            pass
        elif k not in nets:
            text += (
                f"At {acc[k]:.1%} test accuracy there is not enough to conclude which is closer to IG or whether "
                "finding 4 holds here."
            )
        else:
            s = _welch(r_shap, r_orig)
            text += (
                "The Shapley rule's map is "
                + ("closer to" if s > 0 else "further from" if s < 0 else "not significantly closer to")
                + f" IG's (Welch {alpha}). "
                + (
                    "Finding 4 (IG and DeepLIFT correlate highly) holds for the original rule here."
                    if _vs_value(r_orig, 0.9) > 0
                    else "Finding 4 (IG and DeepLIFT correlate highly) does not hold for the original rule here "
                    f"(not above 0.9, {alpha}), as the paper expects with multiplicative units."
                )
            )
        out.append(text.strip())
    # 6: linear
    lin = [k for k in curves if k[0] == "linear"]
    if lin:
        k = lin[0]
        lo = min(min(curves[k][m].means().values()) for m in methods)
        agree = lo >= 1 - LINEAR_TOLERANCE
        out.append(
            f"On the linear model ({acc.get(k, float('nan')):.1%} test accuracy) the lowest mean PCC over n < N of "
            f"every method is {fmt_pcc(lo)}"
            + (
                f", within {LINEAR_TOLERANCE:g} of 1 at every n: all methods agree, as Proposition 4 says (finding 6)."
                if agree
                else f", further than {LINEAR_TOLERANCE:g} from 1, unlike Proposition 4."
            )
        )
    return out


def _ranges(ks: Sequence[int], grid: Sequence[int]) -> str:
    """``[1, 2, 3, 5, 6]`` on the grid ``1..6`` -> ``"1-3 and 5-6"`` (runs of
    consecutive grid points)."""
    pos = {k: i for i, k in enumerate(grid)}
    runs: list[list[int]] = []
    for k in sorted(ks):
        if runs and pos[k] == pos[runs[-1][-1]] + 1:
            runs[-1].append(k)
        else:
            runs.append([k])
    return _join(f"{r[0]}" if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def ancona_region_sentences(region: Sequence[dict], checks: Sequence[dict] = ()) -> list[str]:
    """Figure 3c (``ancona_region_perturbation.csv``): region perturbation with
    Integrated Gradients' and Occlusion-1's orders, tested per number of
    removed pixels with Welch's t test (+) and a one-sample t test (-)."""
    if not region:
        return []
    by: defaultdict[tuple[str, str], dict[int, tuple[float, float, int]]] = defaultdict(dict)
    for r in region:
        by[(r["method"], r["order"])][int(_f(r["k"]))] = (
            _f(r["mean_change"]),
            _f(r["sd_change"]),
            int(_f(r["samples"])),
        )
    key = (region[0]["model"], region[0]["activation"])
    acc = {(r["model"], r["activation"]): _f(r["test_accuracy"]) for r in checks}.get(key, float("nan"))
    samples = int(_f(region[0]["samples"]))
    net = ancona_network(*key)
    alpha = f"p < {ALPHA:g}"
    out = []
    if not (acc >= MIN_ACCURACY and samples >= MIN_SAMPLES):
        out.append(
            f"Figure 3c on {net} ({acc:.1%} test accuracy, {samples} digits): not enough to conclude (conclusions "
            f"need {MIN_ACCURACY:.0%} test accuracy and {MIN_SAMPLES} digits); the numbers are in the table only."
        )
        return out
    out.append(f"Figure 3c on {net} ({acc:.1%} test accuracy), mean over {samples} digits.")
    if ("ig", "+") in by and ("occlusion1", "+") in by:
        ig, occ = by[("ig", "+")], by[("occlusion1", "+")]
        grid = [k for k in sorted(ig) if k > 0 and k in occ]
        occ_first = [k for k in grid if _welch(occ[k], ig[k]) < 0]
        ig_first = [k for k in grid if _welch(ig[k], occ[k]) < 0]
        parts = []
        if occ_first:
            parts.append(f"more with Occlusion-1's order at k = {_ranges(occ_first, grid)} pixels")
        if ig_first:
            parts.append(f"more with Integrated Gradients' order at k = {_ranges(ig_first, grid)}")
        like = bool(occ_first) and bool(ig_first) and min(occ_first) < min(ig_first)
        if parts:
            said = (
                "; ".join(parts)
                + f" (Welch {alpha} at each of these k; at the other k the difference is not significant)"
            )
        else:
            said = f"by amounts that do not differ significantly between the two orders at any k (Welch {alpha})"
        out.append(
            "Removing the most relevant pixels first (+) lowers the target output "
            + said
            + ". The paper: Occlusion-1's pixels have the larger effect first, Integrated Gradients' after about 20 "
            "pixels"
            + (
                "; so here too."
                if like
                else "; not so here."
                if parts
                else "; with no significant difference here there is not enough to confirm or refute it."
            )
        )
    minus = [(m, by[(m, "-")]) for m in ("ig", "occlusion1") if (m, "-") in by]
    if minus:
        parts = []
        for m, c in minus:
            grid = [k for k in sorted(c) if k > 0]
            rise = [k for k in grid if _vs_value(c[k], 0.0) > 0]
            at = max(k for k in REGION_TABLE_K if k in c)
            parts.append(
                f"{_possessive(ANCONA_METHOD_NAMES[m])} order raises it at "
                + (f"k = {_ranges(rise, grid)}" if rise else "no k")
                + f" (mean change at k = {at}: {_g(c[at][0])})"
            )
        everywhere = all(any(_vs_value(c[k], 0.0) > 0 for k in c if k > 0) for _, c in minus)
        out.append(
            f"Removing the least relevant pixels first (-): {'; '.join(parts)} (one-sample t test, {alpha}). "
            + (
                "Removing negative evidence raises the target output, as the paper finds (finding 1)."
                if everywhere
                else "Not both orders raise it: not enough to confirm the paper's finding 1 here."
            )
        )
    return out


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
