"""Drift statistics against independent computations: PSI by hand, KS against SciPy's
two-sample test, the share test against SciPy's chi-square."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from tribes.stats.drift import aged, feature_drift, ks, profile, psi, share_shift


def plain_psi(ref: np.ndarray, now: np.ndarray, bins: int = 10) -> float:
    """PSI over the reference's decile bins, written out by hand."""
    edges = np.unique(np.quantile(ref, np.arange(1, bins) / bins))
    total = 0.0
    for lo, hi in zip([-np.inf, *edges], [*edges, np.inf], strict=True):
        e = max(np.mean((ref > lo) & (ref <= hi)), 1e-4)
        a = max(np.mean((now > lo) & (now <= hi)), 1e-4)
        total += (a - e) * np.log(a / e)
    return total


def test_psi_agrees_with_a_plain_computation() -> None:
    rng = np.random.default_rng(1)
    ref = rng.lognormal(3, 1, 20_000)
    for now in (rng.lognormal(3, 1, 5000), rng.lognormal(3.3, 1.2, 5000),
                rng.lognormal(2, 0.5, 5000)):
        assert psi(profile(ref), now) == pytest.approx(plain_psi(ref, now), rel=1e-9)


def test_psi_thresholds_mean_what_they_say() -> None:
    rng = np.random.default_rng(2)
    ref = rng.normal(0, 1, 50_000)
    prof = profile(ref)
    assert psi(prof, ref) == pytest.approx(0.0, abs=1e-12)  # the same data
    assert psi(prof, rng.normal(0, 1, 50_000)) < 0.01  # the same population
    assert psi(prof, rng.normal(0.1, 1, 50_000)) < 0.1  # a tenth of a standard deviation
    assert psi(prof, rng.normal(1.0, 1, 50_000)) > 0.25  # a whole one


def test_psi_counts_nulls_as_a_bin_and_handles_ties() -> None:
    rng = np.random.default_rng(3)
    # a count feature: mostly zeros, few distinct values (deciles collapse)
    ref = rng.poisson(0.4, 10_000).astype(float)
    prof = profile(ref)
    assert len(prof["edges"]) < 9 and sum(prof["shares"]) == pytest.approx(1.0)
    assert psi(prof, ref) == pytest.approx(0.0, abs=1e-12)
    now = ref.copy()
    now[: 3000] = np.nan  # 30% nulls now, none then
    d = feature_drift("x", prof, now)
    assert d.null_now == pytest.approx(0.3) and d.null_ref == 0.0
    assert d.psi > 0.25


def test_ks_agrees_with_scipy() -> None:
    rng = np.random.default_rng(4)
    ref = rng.gamma(2.0, 10.0, 20_000)
    for now in (rng.gamma(2.0, 10.0, 3000), rng.gamma(2.2, 10.0, 3000),
                rng.gamma(1.0, 25.0, 3000), ref[:3000] + 200):
        d, p = ks(profile(ref), now)
        want = stats.ks_2samp(ref, now)
        # the reference CDF is kept at 201 quantiles: exact to half a percent
        assert d == pytest.approx(want.statistic, abs=0.006)
        if want.pvalue < 1e-6:
            assert p < 1e-4
    # the same population: not significant, distance small
    d, p = ks(profile(ref), rng.gamma(2.0, 10.0, 3000))
    assert d < 0.05 and p > 0.01


def test_share_shift_agrees_with_scipy_chisquare() -> None:
    ref = {0: 0.5, 1: 0.3, 2: 0.2}
    labels = np.array([0] * 400 + [1] * 350 + [2] * 250)
    s = share_shift(ref, {0: "A", 1: "B", 2: "C"}, labels)
    want = stats.chisquare([400, 350, 250], [500, 300, 200])
    assert s.chi2 == pytest.approx(want.statistic)
    assert s.p_value == pytest.approx(want.pvalue)
    assert [r["shift"] for r in s.segments] == pytest.approx([-0.1, 0.05, 0.05])
    same = share_shift(ref, {}, np.array([0] * 500 + [1] * 300 + [2] * 200))
    assert same.chi2 == pytest.approx(0.0) and same.p_value == pytest.approx(1.0)


def test_an_aged_profile_is_the_profile_of_the_aged_values() -> None:
    rng = np.random.default_rng(5)
    tenure = rng.uniform(0, 180, 5000)
    tenure[:200] = np.nan
    later = aged(profile(tenure), 7.0)
    # every customer's tenure a week later: the same profile, moved by the week
    assert psi(later, tenure + 7.0) == pytest.approx(0.0, abs=1e-12)
    assert ks(later, tenure + 7.0)[0] == pytest.approx(0.0, abs=1e-12)
    assert psi(profile(tenure + 7.0), tenure + 7.0) == pytest.approx(0.0, abs=1e-12)
    # not aged, the same week is a shift the size of a week in 180 days
    d, _ = ks(profile(tenure), tenure + 7.0)
    assert d == pytest.approx(7.0 / 180, abs=0.01)  # uniform over 180 days
