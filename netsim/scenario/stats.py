"""Chi-square goodness of fit for load-balancing spread checks, in pure Python (no scipy dependency).

A `spread` step sends N requests to a Service and counts which endpoint answered each. Under a uniform
balancer (kube-proxy's iptables mode picks endpoints with `statistic --mode random --probability 1/k`,
1/(k-1), ... so every endpoint is equally likely) the counts follow a multinomial with equal cells; the
Pearson statistic sum((O-E)^2/E) is then approximately chi-square with k-1 degrees of freedom, and a
p-value below the step's threshold says the spread is not uniform.

The survival function is the regularized upper incomplete gamma Q(k/2, x/2), computed with the usual
series (x < a+1) and continued-fraction (Lentz) expansions; accurate to ~1e-12, plenty for a threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

_EPS = 1e-15
_TINY = 1e-300
_MAX_ITER = 10_000


def _lower_series(a: float, x: float) -> float:
    """P(a, x) by its power series; converges fast for x < a + 1."""
    term = 1.0 / a
    total = term
    n = a
    for _ in range(_MAX_ITER):
        n += 1.0
        term *= x / n
        total += term
        if abs(term) < abs(total) * _EPS:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _upper_fraction(a: float, x: float) -> float:
    """Q(a, x) by its continued fraction (modified Lentz); converges fast for x >= a + 1."""
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, _MAX_ITER):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        if abs(d) < _TINY:
            d = _TINY
        c = b + an / c
        if abs(c) < _TINY:
            c = _TINY
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def gamma_q(a: float, x: float) -> float:
    """Regularized upper incomplete gamma function Q(a, x) = Gamma(a, x) / Gamma(a)."""
    if a <= 0:
        raise ValueError("a must be positive")
    if x <= 0:
        return 1.0
    if x < a + 1.0:
        return max(0.0, 1.0 - _lower_series(a, x))
    return min(1.0, _upper_fraction(a, x))


def chi2_sf(x: float, dof: int) -> float:
    """P(X >= x) for X ~ chi-square with `dof` degrees of freedom."""
    if dof < 1:
        raise ValueError("degrees of freedom must be at least 1")
    return gamma_q(dof / 2.0, x / 2.0)


@dataclass(frozen=True)
class UniformityTest:
    statistic: float
    dof: int
    p_value: float
    expected: float  # count per cell under uniformity

    def to_dict(self) -> dict:
        return {"chiSquare": round(self.statistic, 6), "dof": self.dof, "pValue": self.p_value,
                "expectedPerEndpoint": round(self.expected, 6)}


def chi_square_uniform(counts: Sequence[int]) -> UniformityTest:
    """Pearson's test of `counts` against equal cell probabilities. Needs at least two cells."""
    k = len(counts)
    if k < 2:
        raise ValueError("need at least two cells")
    n = sum(counts)
    if n <= 0:
        raise ValueError("need at least one observation")
    expected = n / k
    stat = sum((c - expected) ** 2 / expected for c in counts)
    return UniformityTest(stat, k - 1, chi2_sf(stat, k - 1), expected)
