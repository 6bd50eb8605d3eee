"""Sentences and tables about Ancona et al.'s reproduction: Sensitivity-n
(Figure 4, the paper's findings) and region perturbation (Figure 3).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

from captum_unified.experiments.findings.common import TRAINED_ACCURACY, _count, _f, _g, _join
from captum_unified.experiments.significance import ALPHA, compare_to, one_sample_t_test, welch_t_test

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
