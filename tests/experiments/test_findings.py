"""The report sentences follow the numbers: synthetic CSVs in, and the claim flips
when the numbers flip (captum_unified.experiments.findings)."""

import re
from pathlib import Path

import numpy as np
import pytest

from captum_unified.experiments import findings
from captum_unified.experiments.common import read_csv, write_csv


def _roundtrip(tmp_path, name, rows):
    """Through a CSV file, as the docs' generator reads them (values become strings)."""
    return read_csv(write_csv(tmp_path / name, rows))


def _table3(occ, ig_eps_corr=0.8, eps=(0.0, 0.09, 0.4), acc=0.9, samples=100):
    rows = []
    for model, e, pe in zip(("Poly", "M-sg", "C-sg"), eps, (0.0, 0.084, 0.42)):
        for m, d, paper in (
            ("GI", 0.0, 0.0),
            ("Occ-1", occ[0], 13.17),
            ("Occ-2x2", occ[1], 21.22),
            ("Occ-4x4", occ[2], 35.93),
            ("DL", 30.0, 32.76),
            ("IG", 1e-9 if model == "Poly" else 41.0, 40.29),
        ):
            if model == "Poly":
                d = 1e-9
            rows.append(
                {
                    "model": model,
                    "method": m,
                    "d_percent": d,
                    "paper_d_percent": paper,
                    "approx_error": e,
                    "paper_approx_error": pe,
                    "corr_d_ig_eps": ig_eps_corr,
                    "test_accuracy": acc,
                    "samples": samples,
                }
            )
    return rows


def test_table3_occlusion_trend_flips(tmp_path):
    up = findings.deng_table3_sentences(_roundtrip(tmp_path, "a.csv", _table3((1.0, 2.0, 3.0))))
    down = findings.deng_table3_sentences(_roundtrip(tmp_path, "b.csv", _table3((3.0, 2.0, 1.0))))
    assert any("On C-sg, d grows with the occlusion patch" in s and "as in the paper" in s for s in up)
    assert not any("d grows with the occlusion patch" in s for s in down)
    assert any("On C-sg, d does not grow with the occlusion patch" in s and "unlike the paper" in s for s in down)
    # near the paper's C-sg numbers: "within a factor 2"; far: "below"
    near = findings.deng_table3_sentences(_table3((13.0, 20.0, 30.0)))
    far = findings.deng_table3_sentences(_table3((0.01, 0.1, 1.0)))
    assert any("Occ-1 13% (1.0 times the paper's 13.17%)" in s for s in near)
    assert any("Occ-1 0.01% (1/1317 of the paper's 13.17%)" in s for s in far)
    assert any("On C-sg:" in s and "5 of 5 cells within a factor 2" in s for s in near)


def test_table3_no_conclusion_from_an_untrained_model_or_few_samples():
    for rows, why in (
        (_table3((1.0, 2.0, 3.0), acc=0.42), "test accuracy 42.0%, below the 80%"),
        (_table3((1.0, 2.0, 3.0), samples=10), "10 explained samples, fewer than the 50"),
    ):
        out = findings.deng_table3_sentences(rows)
        assert any(why in s and "not enough to conclude" in s for s in out)
        assert not any("as in the paper" in s and "occlusion patch" in s for s in out)
        assert not any("as the paper concludes" in s for s in out)
        assert not any("its order over the models is the paper's" in s for s in out)
        # the identities hold for any weights and are still stated
        assert any("as Theorem 1 says" in s for s in out)


def test_table3_eps_order_and_correlation_flip():
    same = findings.deng_table3_sentences(_table3((1, 2, 3), ig_eps_corr=0.8, eps=(0.0, 0.09, 0.4)))
    swapped = findings.deng_table3_sentences(_table3((1, 2, 3), ig_eps_corr=0.1, eps=(0.0, 0.6, 0.3)))
    assert any("its order over the models is the paper's" in s for s in same)
    assert any("is not the paper's" in s for s in swapped)
    assert any("misses 60% of the output change" in s for s in swapped)
    assert not any("misses" in s for s in same)
    assert any("as the paper concludes" in s and "p < 0.001" in s for s in same)
    assert any("not significant, not enough to conclude" in s and "p = 0.32" in s for s in swapped)
    assert not any("deviates more" in s for s in same + swapped)  # no causal claim without a test


def _infid(first, second, acc=0.9):
    return [
        {
            "model": m,
            "order": o,
            "infidelity_scaled": v[0],
            "infidelity_unscaled": v[1],
            "paper_infidelity": {1: 0.48, 2: 0.27}[o],
            "test_accuracy": acc,
            "samples": 100,
        }
        for m in ("C-sg", "C-sp")
        for o, v in ((1, first), (2, second))
    ]


def test_infidelity_conclusion_flips(tmp_path):
    both = findings.deng_infidelity_sentences(_roundtrip(tmp_path, "i.csv", _infid((1.0, 1.0), (0.5, 0.5))))
    neither = findings.deng_infidelity_sentences(_infid((0.5, 0.5), (1.0, 1.0)))
    scaled_only = findings.deng_infidelity_sentences(_infid((1.0, 0.5), (0.5, 1.0)))
    assert "holds with and without scaling" in both[-1]
    assert "holds in neither variant" in neither[-1]
    assert "depends on the scaling" in scaled_only[-1] and "undetermined" in scaled_only[-1]
    assert "with Yeh's optimal scaling" in scaled_only[-1]
    assert "2 of 2 models" in both[0] and "0 of 2 models" in neither[0]
    untrained = findings.deng_infidelity_sentences(_infid((1.0, 1.0), (0.5, 0.5), acc=0.42))
    assert "C-sg: test accuracy 42.0%" in untrained[0] and "No model is trained" in untrained[-1]
    assert not any("holds" in s for s in untrained)


def _fig(values, key="infidelity_scaled", extra=None, acc=0.9):
    rows = []
    for model in ("M-sg", "C-sg", "C-sp"):
        for (m, p), v in zip((("GI", 0), ("Occ-1", 0.5), ("Occ-p", 0.5), ("DL", 1), ("IG", 2), ("EG", 3)), values):
            rows.append(
                {
                    "model": model,
                    "method": m,
                    "principles": p,
                    key: v,
                    "infidelity_unscaled": v,
                    "bbox_accuracy": v,
                    "test_accuracy": acc,
                    "samples": 100,
                }
            )
        if extra is not None:
            rows.append(
                {
                    "model": model,
                    "method": "EG (data)",
                    "principles": 3,
                    key: extra,
                    "infidelity_unscaled": extra,
                    "bbox_accuracy": extra,
                    "test_accuracy": acc,
                    "samples": 100,
                }
            )
    return rows


def test_figure2_correlation_sign_flips(tmp_path):
    falling = findings.deng_figure2_sentences(_roundtrip(tmp_path, "f.csv", _fig([6, 5, 4, 3, 2, 1])))
    rising = findings.deng_figure2_sentences(_fig([1, 2, 3, 4, 5, 6]))
    assert any("significantly negative on M-sg, C-sg and C-sp, the paper's finding" in s for s in falling)
    assert any("significantly positive on M-sg, C-sg and C-sp, unlike the paper" in s for s in rising)
    assert any("Lowest measured infidelity per model" in s and "M-sg EG (1)" in s for s in falling)
    assert any("M-sg -0.99 (p = 0.0056)" in s for s in falling)  # exact: 4 of the 720 orderings
    assert any("Mean rho over M-sg, C-sg and C-sp: -0.99" in s and "the paper's finding" in s for s in falling)
    # the EG variant is reported beside, not mixed into, the main correlation
    mixed = findings.deng_figure2_sentences(_fig([6, 5, 4, 3, 2, 10], extra=0.5))
    assert any("infidelity over the 6 methods: M-sg -0.12 (p = 0.84)" in s for s in mixed)
    assert any("not significant at 0.05 on M-sg, C-sg and C-sp" in s for s in mixed)
    assert not any("the paper's finding" in s for s in mixed if "EG (data)" not in s)
    assert any("EG (data)" in s and "M-sg -0.99" in s and "significantly negative on 3 of 3" in s for s in mixed)


def test_figure2_no_conclusion_from_untrained_models():
    out = findings.deng_figure2_sentences(_fig([6, 5, 4, 3, 2, 1], acc=0.42))
    assert any("M-sg: test accuracy 42.0%" in s and "not enough to conclude" in s for s in out)
    assert not any("the paper's finding" in s for s in out)


def test_figure2_explained_share_names_eg_baselines():
    rows = _fig([6, 5, 4, 3, 2, 10])
    for r in rows:
        r["sum_share"] = 0.003 if r["method"] == "EG" else 1.0
    out = findings.deng_figure2_sentences(rows)
    assert any("; EG M-sg 0.00, C-sg 0.00, C-sp 0.00" in s for s in out)
    assert any("EG's baselines are drawn around the input" in s and "0.00" in s for s in out)
    rows = [{**r, "sum_share": 0.9} for r in rows]
    assert not any("EG's baselines are drawn around the input" in s for s in findings.deng_figure2_sentences(rows))


def test_figure3_correlation_sign_flips():
    fig3 = [{**r, "model": "Loc-CNN"} for r in _fig([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]) if r["model"] == "M-sg"]
    assert any(
        "significantly positive on Loc-CNN, the paper's finding" in s for s in findings.deng_figure3_sentences(fig3)
    )
    flipped = [{**r, "bbox_accuracy": 1 - r["bbox_accuracy"]} for r in fig3]
    assert any(
        "significantly negative on Loc-CNN, unlike the paper" in s for s in findings.deng_figure3_sentences(flipped)
    )
    weak = [{**r, "bbox_accuracy": v} for r, v in zip(fig3, (0.3, 0.5, 0.2, 0.4, 0.35, 0.45))]
    assert any("not significant" in s for s in findings.deng_figure3_sentences(weak))
    below = [{**r, "test_accuracy": 0.087} for r in fig3]
    assert any("Loc-CNN: test accuracy 8.7%" in s for s in findings.deng_figure3_sentences(below))
    assert not any("the paper's finding" in s for s in findings.deng_figure3_sentences(below))


_NETS = (("ancona_mlp", "relu"), ("ancona_cnn", "sigmoid"), ("linear", "none"))


def _ancona(lrp_rel, lrp_pcc, ig_curve, sd=0.02, samples=50, acc=0.9):
    """Synthetic Ancona CSV rows: three networks, five methods, n = 1, 10, 100 and N = 784."""
    checks, sens = [], []
    for model, act in _NETS:
        for m in ("gi", "ig", "lrp", "deeplift", "occlusion1"):
            rel = 0.001 if act == "relu" else lrp_rel
            checks.append(
                {
                    "model": model,
                    "activation": act,
                    "method": m,
                    "test_accuracy": acc if model != "linear" else 0.88,
                    "samples": samples,
                    "rel_diff_vs_gi": rel if m == "lrp" else 0.0,
                    "pcc_vs_occlusion1": 0.9 if m == "gi" else 0.8,
                    "pcc_vs_occlusion1_sd": sd,
                    "pcc_vs_ig": 0.99,
                    "pcc_vs_ig_sd": sd,
                    "negative_fraction": 0.4,
                    "median_rel_delta": 0.0,
                    "max_rel_delta": 0.0,
                }
            )
            for i, n in enumerate((1, 10, 100, 784)):
                if m == "occlusion1":
                    v = 1.0 - 0.1 * i
                elif m in ("ig", "deeplift"):
                    v = ig_curve[i]
                elif m == "lrp" and act == "sigmoid":
                    v = lrp_pcc
                else:
                    v = 0.95
                if model == "linear":
                    v = 1.0
                sd_here = 0.0 if (m == "occlusion1" and n == 1) or model == "linear" else sd
                sens.append(
                    {
                        "model": model,
                        "activation": act,
                        "method": m,
                        "n": n,
                        "mean_pcc": v,
                        "pooled_pcc": 1.0,
                        "sd_pcc": sd_here,
                        "samples": samples,
                        "n_nan": samples if n == 784 else 0,
                    }
                )
    return checks, sens


def test_ancona_sentences_flip(tmp_path):
    c, s = _ancona(100.0, 0.1, (0.8, 0.85, 0.9, 0.95))
    good = findings.ancona_sentences(_roundtrip(tmp_path, "c.csv", c), _roundtrip(tmp_path, "s.csv", s))
    c2, s2 = _ancona(0.01, 0.9, (0.95, 0.9, 0.85, 0.8))
    bad = findings.ancona_sentences(c2, s2)
    assert any("it fails there, as the paper finds" in x for x in good)
    assert not any("fails there" in x for x in bad)
    rise = "Integrated Gradients' curve ends (largest n < N) versus starts (n = 1), Welch p < 0.05:"
    assert any(rise in x and "higher on MLP w/ ReLU and CNN w/ Sigmoid." in x for x in good)
    assert any(rise in x and "lower on MLP w/ ReLU and CNN w/ Sigmoid." in x for x in bad)
    assert any("all methods agree, as Proposition 4 says" in x for x in good)
    # the networks are named as the paper names them, never "w/ Relu"
    assert not any("Relu" in x for x in good + bad)


def test_ancona_trends_need_significance():
    """The same means with a large spread over few samples: no trend is claimed."""
    c, s = _ancona(100.0, 0.1, (0.8, 0.85, 0.9, 0.95), sd=0.5, samples=12)
    out = findings.ancona_sentences(c, s)
    rise = next(x for x in out if x.startswith("Integrated Gradients' curve ends"))
    assert "not significantly different on MLP w/ ReLU and CNN w/ Sigmoid" in rise and "higher" not in rise
    gi = next(x for x in out if x.startswith("Gradient * Input's map correlates"))
    assert "on no network; as much as the best, no significant difference, on MLP w/ ReLU and CNN w/ Sigmoid" in gi


def test_ancona_untrained_networks_are_left_out():
    c, s = _ancona(100.0, 0.1, (0.8, 0.85, 0.9, 0.95), acc=0.3)
    out = findings.ancona_sentences(c, s)
    assert (
        "Not enough to conclude from MLP w/ ReLU (30.0% test accuracy) and CNN w/ Sigmoid (30.0% test accuracy)"
        in out[0]
    )
    assert any("No network is trained well enough: there is not enough to conclude" in x for x in out)
    assert not any("as the paper finds" in x for x in out)


def test_ancona_csv_without_standard_deviations_claims_no_tested_trend():
    c, s = _ancona(100.0, 0.1, (0.8, 0.85, 0.9, 0.95))
    for r in s:
        del r["sd_pcc"]
    out = findings.ancona_sentences(c, s)
    assert "no comparison can be tested" in out[0]
    assert not any("Welch" in x or "p < 0.05" in x for x in out)


_NUMBER = re.compile(r"(?<![\w.])-?\d+\.\d+(?:e[-+]?\d+)?%?|(?<![\w.])\d+(?:\.\d+)?e[-+]?\d+")


def _stated_numbers(sentences):
    """Decimal numbers a sentence states (not the tolerances and levels it names)."""
    named = {
        f"{findings.MIN_ACCURACY:.0%}",
        f"{findings.STEP_TOLERANCE:g}",
        f"{findings.EQUAL_TOLERANCE:g}",
        f"{findings.LINEAR_TOLERANCE:g}",
        f"{findings.FAIL_LEVEL:g}",
        "0.9",
        "0.05",
    }
    return {n for x in sentences for n in _NUMBER.findall(x)} - named


def test_every_number_the_ancona_sentences_state_is_in_a_table_shown():
    """Issue 21 item 7, on the committed quick run (the golden CSVs): each
    number in the generated sentences appears, formatted alike, in a table the
    report and the results page show (findings.ancona_tables)."""
    golden = Path(__file__).parent / "golden" / "ancona"
    checks, sens = read_csv(golden / "ancona_checks.csv"), read_csv(golden / "ancona_sensitivity_n.csv")
    region_path = golden / "ancona_region_perturbation.csv"
    region = read_csv(region_path) if region_path.exists() else []
    tables = findings.ancona_tables(checks, sens, region)
    cells = " ".join(str(v) for rows in tables.values() for r in rows for v in r.values())
    shown = set(_NUMBER.findall(cells))
    sentences = findings.ancona_sentences(checks, sens) + findings.ancona_region_sentences(region, checks)
    stated = _stated_numbers(sentences)
    assert stated, sentences
    assert stated <= shown, sorted(stated - shown)
    # and on synthetic rows whose numbers differ everywhere
    c, s = _ancona(123.4, 0.1234, (0.81, 0.86, 0.91, 0.96))
    t = findings.ancona_tables(c, s)
    cells = " ".join(str(v) for rows in t.values() for r in rows for v in r.values())
    assert _stated_numbers(findings.ancona_sentences(c, s)) <= set(_NUMBER.findall(cells))


def _region(occ_first=True, samples=30, sd=0.5):
    rows = []
    for m in ("ig", "occlusion1"):
        for tag in ("+", "-"):
            for k in (0, 1, 5, 10, 20, 50, 100, 200):
                early = -2.0 * k if (m == "occlusion1") == occ_first else -1.0 * k
                late = -1.0 * k if (m == "occlusion1") == occ_first else -2.0 * k
                mean = (early if k <= 10 else late) if tag == "+" else 0.05 * k
                rows.append(
                    {
                        "model": "ancona_cnn",
                        "activation": "sigmoid",
                        "method": m,
                        "order": tag,
                        "k": k,
                        "mean_change": mean,
                        "sd_change": 0.0 if k == 0 else sd,
                        "samples": samples,
                    }
                )
    return rows


def test_ancona_region_sentences_follow_the_tests():
    checks = [{"model": "ancona_cnn", "activation": "sigmoid", "test_accuracy": 0.93}]
    out = findings.ancona_region_sentences(_region(True), checks)
    plus = next(x for x in out if x.startswith("Removing the most relevant"))
    assert (
        "more with Occlusion-1's order at k = 1-10 pixels; more with Integrated Gradients' order at k = 20-200" in plus
    )
    assert plus.endswith("so here too.")
    flipped = findings.ancona_region_sentences(_region(False), checks)
    assert next(x for x in flipped if x.startswith("Removing the most relevant")).endswith("not so here.")
    minus = next(x for x in out if x.startswith("Removing the least relevant"))
    assert "raises the target output, as the paper finds" in minus
    noisy = findings.ancona_region_sentences(_region(True, samples=3, sd=50.0), checks)
    assert "not enough to conclude" in noisy[0]  # 3 digits
    weak = findings.ancona_region_sentences(_region(True), [{**checks[0], "test_accuracy": 0.1}])
    assert "not enough to conclude" in weak[0] and len(weak) == 1


def _abl(setting, value, acc=0.9, model="M-sg", metric="d IG (%)", paper=3.5, sem=0.5):
    return {
        "setting": setting,
        "model": model,
        "metric": metric,
        "value": value,
        "sem": sem,
        "paper": paper,
        "test_accuracy": acc,
        "trained": acc >= findings.TRAINED_ACCURACY,
    }


def test_ablation_sentences_follow_numbers(tmp_path):
    rows = [_abl("reference", 30.0), _abl("pixels", 4.0), _abl("width", 25.0)]
    s = findings.ablation_sentences(_roundtrip(tmp_path, "a.csv", rows))
    assert "Closest to the paper: pixels (4), within a factor 2." in s[0]
    assert s[0].index("pixels 4") < s[0].index("width 25")  # largest move first
    assert "reference 30 ± 0.5 (paper 3.5; 8.6 times the paper's, 53 standard errors away" in s[0]
    assert "reference 1" not in s[-1] and "most with one setting changed: 1 (pixels)" in s[-1]
    rows[1]["value"] = 29.0
    s = findings.ablation_sentences(rows)
    assert "Closest to the paper: width (25), still a factor 7.1 away; every trained setting is above" in s[0]
    rows.append(_abl("scale", 1.0))  # now the paper's 3.5 lies between two settings
    s = findings.ablation_sentences(rows)
    assert "the paper's value lies between scale (1) and width (25)" in s[0]


def test_ablation_leaves_out_untrained_models():
    rows = [_abl("reference", 30.0), _abl("2,000 digits", 3.4, acc=0.44), _abl("width", 25.0)]
    s = findings.ablation_sentences(rows)
    assert "Left out as not trained (test accuracy below 80%): 2,000 digits (M-sg, 44.0%)." == s[0]
    assert "2,000 digits 3.4" not in s[1] and "Closest to the paper: width (25)" in s[1]


def test_spearman_with_ties():
    assert findings.spearman([0, 0.5, 0.5, 1, 2, 3], [6, 5, 4, 3, 2, 1]) == pytest.approx(-0.9856, abs=1e-4)
    assert findings.spearman([1, 1, 1], [1, 2, 3]) != findings.spearman([1, 1, 1], [1, 2, 3])  # nan
    assert findings.to_rst(["a.", "b."]) == "* a.\n* b.\n"


def test_spearman_is_scipys_to_the_last_bit():
    """``spearman`` needs no scipy (not a dependency of the package) and gives
    ``scipy.stats.spearmanr``'s number bit for bit: ties, principle counts
    (0, 0.5, 1, 2, 3) against infidelities spanning decades, NaN."""
    stats = pytest.importorskip("scipy.stats")
    import numpy as np

    rng = np.random.default_rng(0)
    for trial in range(400):
        n = int(rng.integers(3, 30))
        x = rng.choice([0, 0.5, 1, 2, 3], n) if trial % 2 else rng.normal(size=n)
        y = np.exp(rng.normal(size=n) * 10) if trial % 3 else rng.integers(0, 4, n).astype(float)
        if len(set(x)) < 2 or len(set(y)) < 2:
            continue
        assert findings.spearman(list(x), list(y)) == float(stats.spearmanr(x, y).statistic), (x, y)
    nan = findings.spearman([0, 1, float("nan")], [1, 2, 3])
    assert nan != nan


def test_spearman_test_is_the_exact_permutation_test():
    """Every ordering of y counted by brute force (scipy's rho for each), ties included."""
    stats = pytest.importorskip("scipy.stats")
    import itertools

    for x, y in (
        ([0, 0.5, 0.5, 1, 2, 3], [0.6, 0.42, 0.238, 0.234, 0.226, 2.36]),
        ([0, 0.5, 0.5, 1, 2, 3], [6, 5, 4, 3, 2, 1]),
        ([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]),
    ):
        rho, p = findings.spearman_test(x, y)
        obs = stats.spearmanr(x, y).statistic
        null = [stats.spearmanr(x, list(q)).statistic for q in itertools.permutations(y)]
        assert rho == pytest.approx(obs)
        assert p == pytest.approx(np.mean(np.abs(null) >= abs(obs) - 1e-12))
    # beyond 8 points: seeded random orderings, p = (k + 1) / (m + 1) > 0
    rho, p = findings.spearman_test(list(range(12)), list(range(12)), permutations=999)
    assert rho == 1.0 and p == pytest.approx(1 / 1000)
    assert findings.spearman_test([1, 1, 1], [1, 2, 3])[1] != findings.spearman_test([1, 1, 1], [1, 2, 3])[1]


def test_mean_spearman_test_against_brute_force():
    import itertools

    groups = [([0, 1, 2, 3], [0.3, 0.1, 0.2, 0.0]), ([0, 1, 2, 3], [3.0, 2.0, 0.5, 1.0])]
    mean, p = findings.mean_spearman_test(groups, permutations=20000)
    rhos = [[findings.spearman(x, list(q)) for q in itertools.permutations(y)] for x, y in groups]
    null = np.add.outer(np.asarray(rhos[0]), np.asarray(rhos[1])).ravel() / 2
    exact = np.mean(np.abs(null) >= abs(mean) - 1e-12)
    assert mean == pytest.approx(np.mean([findings.spearman(x, y) for x, y in groups]))
    assert p == pytest.approx(exact, abs=0.01)


def test_pearson_p_is_scipys():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    for n in (3, 5, 12, 100, 3000):
        x = rng.normal(size=n)
        y = 0.1 * x + rng.normal(size=n)
        r, p = stats.pearsonr(x, y)
        assert findings.pearson_p(r, n) == pytest.approx(p, rel=1e-9, abs=1e-300)
    assert findings.pearson_p(float("nan"), 10) != findings.pearson_p(float("nan"), 10)


def test_evidence_thresholds():
    assert findings.evidence([{"test_accuracy": 0.8, "samples": 50}]) == (True, "")
    ok, why = findings.evidence([{"test_accuracy": 0.79, "samples": 49}])
    assert not ok and "79.0%" in why and "49 explained samples" in why


def test_to_rst_escapes_inline_markup():
    # |...| would be an rST substitution and * an emphasis: both stay text
    rst = findings.to_rst(["delta 16 times |S(x) - S(0)| for Gradient*Input"])
    assert rst == "* delta 16 times \\|S(x) - S(0)\\| for Gradient\\*Input\n"
    from docutils.core import publish_parts

    html = publish_parts(rst, writer="html")["body"]
    assert "|S(x) - S(0)|" in html and "Gradient*Input" in html


def test_spearman_is_scipys_without_scipy():
    """numpy alone (scipy is no declared dependency): the same bits as scipy's
    spearmanr on random data with and without ties, and it runs where scipy
    cannot be imported."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import numpy as np

    ROOT = Path(__file__).resolve().parents[2]

    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for i in range(300):
        n = int(rng.integers(3, 30))
        x = rng.integers(0, 4, n).astype(float) if i % 2 else rng.normal(size=n)
        y = rng.integers(0, 3, n).astype(float) if i % 3 == 0 else rng.normal(size=n)
        if len(set(x)) < 2 or len(set(y)) < 2:
            continue
        assert findings.spearman(x, y) == float(stats.spearmanr(x, y).statistic)
    code = (
        "import sys; sys.modules['scipy'] = None\n"  # any scipy import now raises ImportError
        "from captum_unified.experiments import findings\n"
        "print(findings.spearman([0, 0.5, 0.5, 1, 2, 3], [6, 5, 4, 3, 2, 1]))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) == findings.spearman([0, 0.5, 0.5, 1, 2, 3], [6, 5, 4, 3, 2, 1])
