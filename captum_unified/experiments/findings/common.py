"""The numbers' formatting and the tests the sentences of
:mod:`captum_unified.experiments.findings` follow (rank correlations with
permutation p-values, the Pearson test, whether rows support a conclusion),
and the sentences as rST.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Sequence

import numpy as np


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
#: :data:`captum_unified.experiments.significance.ALPHA`.
#: Random orderings drawn by the permutation tests when there are too many to enumerate.
PERMUTATIONS = 20000


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


def to_rst(sentences: Sequence[str]) -> str:
    """The sentences as an rST bullet list (for ``.. include::`` in the docs);
    characters with a meaning in rST inline markup (``|``, ``*``, backquotes)
    are escaped, so ``|S(x) - S(0)|`` is text, not a substitution."""

    def escape(s: str) -> str:
        return re.sub(r"([|*`\\])", r"\\\1", s)

    return "\n".join(f"* {escape(s)}" for s in sentences) + "\n"
