"""Chi-square survival function against known quantiles, and the uniformity test."""

from __future__ import annotations

import math
import random

import pytest

from netsim.scenario.stats import chi2_sf, chi_square_uniform, gamma_q


@pytest.mark.parametrize("x,dof,p", [
    (3.841458820694124, 1, 0.05),
    (6.634896601021214, 1, 0.01),
    (10.827566170662733, 1, 0.001),
    (5.991464547107979, 2, 0.05),
    (16.918977604620448, 9, 0.05),
    (31.410432844230918, 20, 0.05),
    (0.5, 4, 0.9735009788392561),
    (100.0, 10, 5.4497019829205e-17),
])
def test_chi2_sf_known_values(x, dof, p):
    assert chi2_sf(x, dof) == pytest.approx(p, rel=1e-9)


def test_two_dof_is_exponential():
    for x in (0.1, 1.0, 7.5, 40.0):
        assert chi2_sf(x, 2) == pytest.approx(math.exp(-x / 2), rel=1e-12)


def test_edges():
    assert chi2_sf(0, 3) == 1.0
    assert gamma_q(2.5, 0) == 1.0
    with pytest.raises(ValueError):
        chi2_sf(1.0, 0)
    with pytest.raises(ValueError):
        chi_square_uniform([5])


def test_uniform_counts_pass_and_skewed_fail():
    rng = random.Random(7)
    counts = [0, 0, 0]
    for _ in range(600):
        counts[rng.randrange(3)] += 1
    assert chi_square_uniform(counts).p_value > 0.01
    skewed = chi_square_uniform([400, 100, 100])
    assert skewed.statistic == pytest.approx(300.0)
    assert skewed.dof == 2
    assert skewed.p_value < 1e-50
    exact = chi_square_uniform([100, 100, 100])
    assert exact.statistic == 0 and exact.p_value == 1.0
