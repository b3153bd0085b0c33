"""Control charts: the limits by hand, the false-alarm rate on stable series over many
seeds against the rate worked out from the limits, planted shifts caught, and the weekly
segment KPIs against pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from tribes.monitor.spc import ALPHA, chart, limit_factor, weekly_kpis
from tribes.store.db import open_engine
from tribes.store.segments import active_version
from tribes.workspace import open_workspace

WATCHED = 4


def false_alarm_rate(n_base: int, watched: int, alpha: float = ALPHA) -> float:
    """The chance that a stable normal series signals in ``watched`` weeks, worked out
    from the limits: mean ± k × SD of ``n_base`` baseline weeks, k set so that one new
    week falls outside with probability ``alpha``. The watched weeks share the baseline:
    given its mean u (normal, variance 1/n) and SD v ((n - 1) v² chi-square with n - 1
    degrees of freedom, independent of u) they are independent, so the chance that all
    stay inside is E[(Phi(u + k v) - Phi(u - k v)) ** watched]."""
    k = stats.t.ppf(1 - alpha / 2, n_base - 1) * np.sqrt(1 + 1 / n_base)
    z, w = np.polynomial.hermite_e.hermegauss(80)  # the mean: Gauss-Hermite
    u, wu = z / np.sqrt(n_base), w / np.sqrt(2 * np.pi)

    def inside(q: float) -> float:
        v = np.sqrt(q / (n_base - 1))
        p = stats.norm.cdf(u + k * v) - stats.norm.cdf(u - k * v)
        return float(np.sum(wu * p ** watched) * stats.chi2.pdf(q, n_base - 1))

    return 1 - integrate.quad(inside, 0, np.inf, limit=200)[0]


def test_the_limits_by_hand() -> None:
    weeks = [f"w{i}" for i in range(12)]
    base = np.array([9.0, 11.0] * 4)  # mean 10, SD sqrt(8 / 7)
    half = limit_factor(8) * np.sqrt(8 / 7)
    inside = np.r_[base, [10 + 0.99 * half, 10 - 0.99 * half, 10.0, 10.0]]
    c = chart(1, "size", weeks, inside, recent=WATCHED, baseline_min=8)
    assert (c.center, c.sigma, c.baseline_weeks) == (10.0, pytest.approx(np.sqrt(8 / 7)), 8)
    assert (c.lower, c.upper) == (pytest.approx(10 - half), pytest.approx(10 + half))
    assert c.signals == []
    outside = np.r_[base, [10 + 1.01 * half, 10.0, 10 - 1.01 * half, 10.0]]
    c = chart(1, "size", weeks, outside, recent=WATCHED, baseline_min=8)
    assert [(s["week"], s["rule"]) for s in c.signals] == [
        ("w8", "above the upper limit"), ("w10", "below the lower limit")]
    # the limits are 3 sigma for a long baseline, wider for a short one (its mean and SD
    # are estimates): one new week falls outside with the chance of a normal beyond 3
    assert 2 * stats.norm.sf(3) == pytest.approx(ALPHA, abs=1e-5)
    assert limit_factor(1_000_000) == pytest.approx(3.0, abs=0.01)
    assert limit_factor(8) > limit_factor(20) > limit_factor(100) > 3
    for n in (8, 12, 20):
        assert false_alarm_rate(n, 1) == pytest.approx(ALPHA, rel=1e-4)


def test_stable_series_signal_at_the_documented_rate() -> None:
    """200 seeds of stable weekly series (normal, 8, 12 or 20 baseline weeks and four
    watched): the share that signals is the rate worked out from the limits, at most
    1 - (1 - 0.0027)^4 = 1.08%, within a 99.9% binomial interval."""
    signalled = {8: 0, 12: 0, 20: 0}
    first_week = {8: 0, 12: 0, 20: 0}
    series = {8: 0, 12: 0, 20: 0}
    for seed in range(200):
        rng = np.random.default_rng(seed)
        n_base = (8, 12, 20)[seed % 3]
        weeks = [f"w{i}" for i in range(n_base + WATCHED)]
        for x in rng.normal(100.0, 5.0, (60, n_base + WATCHED)):
            c = chart(1, "size", weeks, x, recent=WATCHED, baseline_min=8)
            series[n_base] += 1
            signalled[n_base] += bool(c.signals)
            first_week[n_base] += any(s["index"] == n_base for s in c.signals)
    documented = 1 - (1 - ALPHA) ** WATCHED
    assert documented == pytest.approx(0.0108, abs=5e-5)
    expected = {n: false_alarm_rate(n, WATCHED) for n in series}
    for n, rate in expected.items():
        assert 0.0090 < rate <= documented
        lo, hi = stats.binom.interval(0.999, series[n], rate)
        assert lo <= signalled[n] <= hi, (n, signalled[n], series[n], rate)
        lo, hi = stats.binom.interval(0.999, series[n], ALPHA)  # one week: exactly alpha
        assert lo <= first_week[n] <= hi, (n, first_week[n], series[n])
    total, n_series = sum(signalled.values()), sum(series.values())
    want = sum(expected[n] * series[n] for n in series)
    lo, hi = stats.binom.interval(0.999, n_series, want / n_series)
    assert lo <= total <= hi


def test_a_planted_shift_is_caught() -> None:
    """Five sigmas down in the four watched weeks: caught in (nearly) every one of 200
    seeds; three sigmas, in most, and only in the watched weeks."""
    weeks = [f"w{i}" for i in range(16 + WATCHED)]
    caught = {5.0: 0, 3.0: 0}
    for seed in range(200):
        x = np.random.default_rng(seed).normal(100.0, 5.0, 16 + WATCHED)
        for sigmas in caught:
            shifted = x.copy()
            shifted[16:] -= sigmas * 5.0
            c = chart(1, "size", weeks, shifted, recent=WATCHED, baseline_min=8)
            caught[sigmas] += bool(c.signals)
            assert all(s["index"] >= 16 and s["rule"] == "below the lower limit"
                       for s in c.signals)
    assert caught[5.0] >= 198 and caught[3.0] >= 100


def test_a_shift_in_the_recent_weeks_is_signalled_and_noise_is_not() -> None:
    rng = np.random.default_rng(5)
    weeks = [f"w{i}" for i in range(24)]
    calm = rng.normal(100, 5, 24)
    c = chart(1, "size", weeks, calm, recent=4, baseline_min=8)
    assert c.center == pytest.approx(calm[:20].mean()) and c.sigma > 0
    assert c.signals == []
    shifted = calm.copy()
    shifted[-4:] -= 25  # five sigmas down for the last four weeks
    s = chart(1, "size", weeks, shifted, recent=4, baseline_min=8)
    assert {sig["rule"] for sig in s.signals} == {"below the lower limit"}
    assert all(sig["index"] >= 20 for sig in s.signals)  # only the recent weeks
    short = chart(1, "size", weeks[:6], calm[:6], recent=4, baseline_min=8)
    assert short.signals == [] and "the charts need 8" in short.note


def test_only_weeks_after_the_version_are_watched() -> None:
    """A segment's history up to the version trends by construction (it is how the
    segment was chosen): it is the baseline, and only the weeks since are judged."""
    rng = np.random.default_rng(9)
    weeks = [f"w{i}" for i in range(20)]
    growing = np.linspace(50, 150, 20) + rng.normal(0, 3, 20)  # a new-customers segment
    at_build = chart(1, "size", weeks[:16], growing[:16], recent=4, baseline_min=8,
                     first_new=16)
    assert at_build.signals == [] and "no complete week since" in at_build.note
    calm = np.r_[rng.normal(100, 5, 16), rng.normal(100, 5, 4)]
    assert chart(1, "size", weeks, calm, recent=4, baseline_min=8, first_new=16).signals == []
    dropped = calm.copy()
    dropped[16:] -= 30
    s = chart(1, "size", weeks, dropped, recent=4, baseline_min=8, first_new=16)
    assert s.signals and min(sig["index"] for sig in s.signals) >= 16
    assert s.center == pytest.approx(calm[:16].mean())


def test_weekly_kpis_agree_with_pandas(shop) -> None:
    ws = open_workspace(shop[0])
    with open_engine(ws, read_only=True) as engine:
        version = active_version(engine)
        assert version is not None
        got = weekly_kpis(engine, version)
        ev = engine.execute(engine.table("events"))
        ids = engine.execute(engine.table("identities"))
        sa = engine.table("segment_assignments")
        seg = engine.execute(sa.filter(sa.version == version))
    lookup = {(r.id_type, r.id): r.customer_key for r in ids.itertuples()}

    def key(r: pd.Series) -> str | None:
        if pd.notna(r.customer_id):
            return str(r.customer_id)
        if pd.notna(r.anonymous_id):
            return lookup.get(("anonymous_id", r.anonymous_id))
        return lookup.get(("device_id", r.device_id))

    # the data begins on a Thursday: that first, partial week is no point of the charts
    began = pd.to_datetime(ev["ts"], utc=True).min()
    assert began.day_of_week == 3
    assert got["week"].min() == (began + pd.Timedelta(days=4)).floor("D")
    ev["customer_key"] = ev.apply(key, axis=1)
    ev = ev.merge(seg[["customer_key", "segment_id"]], on="customer_key")
    ts = pd.to_datetime(ev["ts"], utc=True)
    ev["week"] = (ts - pd.to_timedelta(ts.dt.day_of_week, unit="D")).dt.floor("D")
    g = ev.groupby(["week", "segment_id"])
    want = pd.DataFrame({
        "size": g["customer_key"].nunique(),
        "buyers": ev[ev.event_type == "purchase"].groupby(["week", "segment_id"])[
            "customer_key"].nunique()}).fillna(0).reset_index()
    merged = got.merge(want, on=["week", "segment_id"], how="left")
    assert len(merged) == len(got) > 0
    assert (merged["size_x"] == merged["size_y"]).all()
    assert merged["conversion"].to_numpy() == pytest.approx(
        (merged["buyers"] / merged["size_y"]).to_numpy())
    # retention of a week: last week's members active again
    one = got[got.segment_id == got.segment_id.iloc[0]].reset_index(drop=True)
    weeks = ev[ev.segment_id == one.segment_id.iloc[0]].groupby("week")[
        "customer_key"].apply(set)
    for i in range(1, len(one)):
        a, b = weeks[one.week[i - 1]], weeks[one.week[i]]
        assert one.retention[i] == pytest.approx(len(a & b) / len(a))
