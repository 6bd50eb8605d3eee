"""captum_unified.experiments.significance: Student's t tail from the
incomplete beta function, Welch's and the one-sample t test (the tests behind
the generated sentences), against known values and scipy where installed."""

import math

import numpy as np
import pytest

from captum_unified.experiments import significance as sig


def test_known_values():
    # two-sided p of t = 2 with 10 degrees of freedom (tables: 0.07339); df = 1 is Cauchy: 1 - 2 atan(t) / pi
    assert sig.t_p_value(2.0, 10) == pytest.approx(0.0733880347, abs=1e-9)
    for t in (0.3, 1.0, 4.0, 50.0):
        assert sig.t_p_value(t, 1) == pytest.approx(1 - 2 * math.atan(t) / math.pi, rel=1e-10)
    # df = 2 has a closed form: P(T > t) = 1/2 (1 - t / sqrt(2 + t^2))
    for t in (-3.0, 0.0, 0.7, 9.0):
        assert sig.student_t_sf(t, 2) == pytest.approx(0.5 * (1 - t / math.sqrt(2 + t * t)), rel=1e-10)
    assert sig.student_t_sf(float("inf"), 5) == 0.0 and sig.student_t_sf(-float("inf"), 5) == 1.0


def test_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for _ in range(300):
        t = float(rng.normal() * rng.choice([0.1, 1.0, 5.0, 30.0]))
        df = float(rng.choice([1, 1.5, 2, 3, 7.3, 19, 49, 200, 1e4]))
        assert sig.student_t_sf(t, df) == pytest.approx(stats.t.sf(t, df), rel=1e-8, abs=1e-300)
    a, b = rng.normal(size=20), rng.normal(0.5, 2.0, size=30)
    t, p = sig.welch_t_test(a.mean(), a.std(ddof=1), 20, b.mean(), b.std(ddof=1), 30)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert t == pytest.approx(ref.statistic, rel=1e-12) and p == pytest.approx(ref.pvalue, rel=1e-9)
    t, p = sig.one_sample_t_test(a.mean(), a.std(ddof=1), 20, 0.3)
    ref = stats.ttest_1samp(a, 0.3)
    assert t == pytest.approx(ref.statistic, rel=1e-12) and p == pytest.approx(ref.pvalue, rel=1e-9)


def test_degenerate_cases_and_decision():
    assert sig.welch_t_test(1.0, 0.0, 10, 1.0, 0.0, 10) == (0.0, 1.0)  # equal constants
    assert sig.welch_t_test(1.0, 0.0, 10, 0.9, 0.0, 10)[1] == 0.0  # different constants
    assert all(v != v for v in sig.welch_t_test(1.0, 0.1, 1, 0.9, 0.1, 10))  # one sample: undefined
    assert sig.one_sample_t_test(1.0, 0.0, 5, 1.0) == (0.0, 1.0)
    assert sig.compare_to(0.01, 0.2) == 1 and sig.compare_to(0.01, -0.2) == -1
    assert sig.compare_to(0.2, 0.2) == 0 and sig.compare_to(float("nan"), 1.0) == 0
    assert sig.ALPHA == 0.05
