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

import itertools
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
    "deng_eg_sentences",
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


#: The tests the Deng sentences follow (stated on the results page): a model
#: counts as trained from this test accuracy on (chance: 10%) ...
TRAINED_ACCURACY = 0.8
#: ... a conclusion needs at least this many explained samples ...
MIN_SAMPLES = 50
#: ... and a correlation is called significant below the two-sided p-value
#: :data:`captum_unified.experiments.significance.ALPHA` (imported above).
#: Random orderings drawn by the permutation tests when there are too many to enumerate.
PERMUTATIONS = 20000
#: Layer names of ``deng_dl_layers.csv``'s averages: over the layers a nonlinearity
#: follows (the Table-3 entry), and with the output layer counted too.
MEAN_LAYERS = "mean over layers"
MEAN_LAYERS_OUTPUT = "mean over layers, output layer counted"
OUTPUT_LAYER = "output layer"


def _centered_ranks(v: Sequence[float]) -> np.ndarray:
    r = _average_ranks(np.asarray([float(t) for t in v]))
    return r - r.mean()


def _orderings(n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Every ordering of ``n`` items when there are at most ``count`` (exact test),
    else ``count`` seeded random ones; rows of indices."""
    if math.factorial(n) <= count:
        return np.asarray(list(itertools.permutations(range(n))), dtype=np.int64)
    return np.argsort(rng.random((count, n)), axis=1)


def spearman_test(
    x: Sequence[float], y: Sequence[float], permutations: int = PERMUTATIONS, seed: int = 0
) -> tuple[float, float]:
    """Spearman's rho of ``x`` and ``y`` and its two-sided permutation p-value:
    the share of the orderings of ``y`` whose rho is at least as far from 0 as
    the observed one. Every ordering is counted when there are at most
    ``permutations`` of them (``n <= 8``: an exact test, ties included);
    otherwise ``permutations`` seeded random orderings, and ``p = (k + 1) /
    (permutations + 1)``. ``(nan, nan)`` where :func:`spearman` is NaN."""
    rho = spearman(x, y)
    if rho != rho:
        return rho, float("nan")
    rx, ry = _centered_ranks(x), _centered_ranks(y)
    perms = _orderings(len(rx), permutations, np.random.default_rng(seed))
    null = (ry[perms] @ rx) / math.sqrt(float(rx @ rx) * float(ry @ ry))
    hits = int((np.abs(null) >= abs(rho) - 1e-12).sum())
    exact = len(perms) == math.factorial(len(rx))
    return rho, (hits / len(perms) if exact else (hits + 1) / (len(perms) + 1))


def mean_spearman_test(groups: Sequence[tuple], permutations: int = PERMUTATIONS, seed: int = 0) -> tuple:
    """The mean of the Spearman rhos of several ``(x, y)`` groups (e.g. one per
    model) and its two-sided permutation p-value, each group's ``y`` ordered
    at random independently (``permutations`` seeded draws, ``p = (k + 1) /
    (permutations + 1)``): a test of a common trend that does not compare
    values across groups."""
    rhos = [spearman(x, y) for x, y in groups]
    if not groups or any(r != r for r in rhos):
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    null = np.zeros(permutations)
    for x, y in groups:
        rx, ry = _centered_ranks(x), _centered_ranks(y)
        perms = np.argsort(rng.random((permutations, len(rx))), axis=1)
        null += (ry[perms] @ rx) / math.sqrt(float(rx @ rx) * float(ry @ ry))
    null /= len(groups)
    obs = float(np.mean(rhos))
    hits = int((np.abs(null) >= abs(obs) - 1e-12).sum())
    return obs, (hits + 1) / (permutations + 1)


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function ``I_x(a, b)`` (Lentz's continued
    fraction, as in Numerical Recipes' ``betai``; scipy is no dependency)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - _betainc(b, a, 1.0 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return front * h


def pearson_p(r: float, n: int) -> float:
    """Two-sided p-value of a Pearson correlation ``r`` of ``n`` pairs against 0
    (Student's t with ``n - 2`` degrees of freedom, as ``scipy.stats.pearsonr``:
    ``p = I_{1 - r^2}((n - 2) / 2, 1 / 2)``); NaN for ``n < 3`` or a NaN ``r``."""
    r, n = float(r), int(n)
    if r != r or n < 3:
        return float("nan")
    return _betainc((n - 2) / 2.0, 0.5, max(0.0, 1.0 - r * r))


def _p(p: float) -> str:
    """A p-value for a sentence."""
    return "p n/a" if p != p else ("p < 0.001" if p < 0.001 else f"p = {p:.2g}")


def evidence(rows: Sequence[dict]) -> tuple[bool, str]:
    """Whether the rows of one model carry a conclusion: the model trained
    (``test_accuracy`` at least :data:`TRAINED_ACCURACY`) and at least
    :data:`MIN_SAMPLES` explained ``samples``; ``(ok, why not)``."""
    acc = min((_f(r.get("test_accuracy")) for r in rows), default=float("nan"))
    n = min((_f(r.get("samples")) for r in rows), default=float("nan"))
    why = []
    if not acc >= TRAINED_ACCURACY:
        why.append(
            f"test accuracy {_g(acc, '.1%')}, below the {TRAINED_ACCURACY:.0%} taken here as trained"
            if acc == acc
            else "no test accuracy recorded"
        )
    if not n >= MIN_SAMPLES:
        why.append(f"{_g(n, '.0f')} explained samples, fewer than the {MIN_SAMPLES} a conclusion needs here")
    return not why, "; ".join(why)


def _count(n: int, total: int) -> str:
    return f"{n} of {total}"


def _join(items: Iterable[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


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

#: An Ancona network's numbers support a conclusion only when it reaches the
#: test accuracy :data:`TRAINED_ACCURACY` (chance: 10%) and at least
#: :data:`ANCONA_MIN_SAMPLES` digits were explained (fewer than Deng's
#: :data:`MIN_SAMPLES`: Ancona's region perturbation explains a few digits, as
#: the paper's one, and every trend there also needs a significant paired test);
#: for the others the sentences say there is not enough to conclude.
MIN_ACCURACY = TRAINED_ACCURACY
ANCONA_MIN_SAMPLES = 10
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
    ok = [k for k in acc if acc[k] >= MIN_ACCURACY and samples[k] >= ANCONA_MIN_SAMPLES]
    weak = [k for k in acc if k not in ok]
    return acc, ok, weak


def ancona_sentences(checks: list[dict], sens: list[dict]) -> list[str]:
    """Ancona's findings (§4.1) from ``ancona_checks.csv`` and ``ancona_sensitivity_n.csv``.

    A trend is stated only on networks at :data:`MIN_ACCURACY` test accuracy or
    more with :data:`ANCONA_MIN_SAMPLES` explained samples or more, and only where a
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
    bar = f"test accuracy {MIN_ACCURACY:.0%} or more and {ANCONA_MIN_SAMPLES} or more explained samples"
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
    if not (acc >= MIN_ACCURACY and samples >= ANCONA_MIN_SAMPLES):
        out.append(
            f"Figure 3c on {net} ({acc:.1%} test accuracy, {samples} digits): not enough to conclude (conclusions "
            f"need {MIN_ACCURACY:.0%} test accuracy and {ANCONA_MIN_SAMPLES} digits); the numbers are in the table "
            "only."
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


def to_rst(sentences: Sequence[str]) -> str:
    """The sentences as an rST bullet list (for ``.. include::`` in the docs);
    characters with a meaning in rST inline markup (``|``, ``*``, backquotes)
    are escaped, so ``|S(x) - S(0)|`` is text, not a substitution."""

    def escape(s: str) -> str:
        return re.sub(r"([|*`\\])", r"\\\1", s)

    return "\n".join(f"* {escape(s)}" for s in sentences) + "\n"
