r"""Significance tests behind the generated sentences (numpy and :mod:`math` only).

A sentence of :mod:`~captum_unified.experiments.findings` that states a trend
("the curve ends higher than it starts", "method A's map is closer to
Occlusion-1's than method B's") says so only when a test over the explained
samples supports it at level :data:`ALPHA`; otherwise it says there is not
enough to conclude. The reproductions' CSVs keep, for every mean over samples,
the standard deviation and the number of samples it is taken over, which is
what these tests need:

* :func:`welch_t_test` — two means with their standard deviations (Welch's
  unequal-variance t test, two-sided);
* :func:`one_sample_t_test` — a mean against a fixed value;
* :func:`student_t_sf` — the upper tail of Student's t distribution, from the
  regularised incomplete beta function (a continued fraction; equal to
  ``scipy.stats.t.sf`` to about 1e-12, tested).

Welch's test does not pair the samples; where both means come from the same
samples it is conservative when the two are positively correlated (the usual
case here: the same digits, the same subsets).
"""

from __future__ import annotations

import math

__all__ = ["ALPHA", "student_t_sf", "t_p_value", "welch_t_test", "one_sample_t_test", "compare_to"]

#: Two-sided significance level of every test in the generated sentences.
ALPHA = 0.05


def _betacf(a: float, b: float, x: float) -> float:
    # Lentz's continued fraction of the incomplete beta function (Numerical Recipes 6.4)
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function :math:`I_x(a, b)`."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def student_t_sf(t: float, df: float) -> float:
    """``P(T > t)`` for Student's t with ``df`` degrees of freedom (``df`` may be fractional)."""
    if not df > 0 or t != t:
        return float("nan")
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    tail = 0.5 * _betainc(0.5 * df, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


def t_p_value(t: float, df: float) -> float:
    """Two-sided p-value of a t statistic."""
    if t != t or not df > 0:
        return float("nan")
    return min(1.0, 2.0 * student_t_sf(abs(t), df))


def welch_t_test(mean1: float, sd1: float, n1: int, mean2: float, sd2: float, n2: int) -> tuple[float, float]:
    """Welch's two-sided t test of ``mean1 == mean2`` from the means, the sample
    standard deviations (``ddof=1``) and the sample counts: ``(t, p)``.

    Both standard deviations 0: ``p`` is 0 when the means differ, 1 when they
    are equal. Fewer than 2 samples on a side: NaN.
    """
    if n1 < 2 or n2 < 2 or any(v != v for v in (mean1, sd1, mean2, sd2)):
        return float("nan"), float("nan")
    v1, v2 = sd1 * sd1 / n1, sd2 * sd2 / n2
    diff = mean1 - mean2
    if v1 + v2 == 0.0:
        return (math.copysign(math.inf, diff), 0.0) if diff else (0.0, 1.0)
    t = diff / math.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / ((v1 * v1 / (n1 - 1) if v1 else 0.0) + (v2 * v2 / (n2 - 1) if v2 else 0.0))
    return t, t_p_value(t, df)


def one_sample_t_test(mean: float, sd: float, n: int, value: float = 0.0) -> tuple[float, float]:
    """Two-sided t test of ``mean == value`` over ``n`` samples: ``(t, p)``."""
    if n < 2 or mean != mean or sd != sd:
        return float("nan"), float("nan")
    diff = mean - value
    if sd == 0.0:
        return (math.copysign(math.inf, diff), 0.0) if diff else (0.0, 1.0)
    t = diff / (sd / math.sqrt(n))
    return t, t_p_value(t, n - 1)


def compare_to(p: float, diff: float) -> int:
    """``+1`` / ``-1`` when a difference ``diff`` is significant at :data:`ALPHA`
    (by its p-value ``p``) and positive / negative, ``0`` when it is not."""
    if p != p or p >= ALPHA or diff == 0:
        return 0
    return 1 if diff > 0 else -1
