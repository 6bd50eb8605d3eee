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

__all__ = [
    "spearman",
    "deng_table3_sentences",
    "deng_infidelity_sentences",
    "deng_figure2_sentences",
    "deng_figure3_sentences",
    "deng_eg_sentences",
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
#: ... and a correlation is called significant below this two-sided p-value.
ALPHA = 0.05
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


def spearman_test(x: Sequence[float], y: Sequence[float], permutations: int = PERMUTATIONS, seed: int = 0) -> tuple:
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
        same, lower, higher = [], [], []
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
def ancona_sentences(checks: list[dict], sens: list[dict]) -> list[str]:
    """Ancona's findings from ``ancona_checks.csv`` and ``ancona_sensitivity_n.csv``."""
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
                    f"; the paper's value lies between {lo[1]} ({_g(lo[0])}) and {hi[1]} ({_g(hi[0])}): no setting tried "
                    "reaches it, an untried one between those two might."
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
