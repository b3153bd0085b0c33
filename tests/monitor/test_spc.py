"""Control charts: the Western Electric rules on sequences made to break each one, the
false-alarm rate of rule 1, EWMA and CUSUM against direct computations, and the weekly
segment KPIs against pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tribes.monitor.spc import chart, cusum, ewma, weekly_kpis, western_electric
from tribes.store.db import open_engine
from tribes.store.segments import active_version
from tribes.workspace import open_workspace


def rules(z: list[float]) -> list[tuple[int, str]]:
    return [(i, r.split(":")[0]) for i, r in western_electric(np.array(z), 0.0, 1.0)]


def test_each_western_electric_rule() -> None:
    assert rules([0.1, -0.2] * 5 + [3.5]) == [(10, "rule 1")]
    assert rules([0.1, -0.2] * 5 + [-3.2]) == [(10, "rule 1")]
    assert rules([0.1, -0.2, 0.1, 2.5, -0.5, 2.4]) == [(5, "rule 2")]
    assert rules([0.1, -0.2, 0.1, -1.5, -1.4, 0.2, -1.6, -1.3]) == [(7, "rule 3")]
    eight = [0.3, 0.5, 0.2, 0.4, 0.6, 0.1, 0.3, 0.2]
    assert rules([-0.5, *eight]) == [(8, "rule 4")]
    assert rules([0.5, -0.5] * 10) == []  # in control


def test_rule_1_false_alarm_rate() -> None:
    x = np.random.default_rng(0).normal(0, 1, 200_000)
    ones = [i for i, r in western_electric(x[:20_000], 0.0, 1.0) if r.startswith("rule 1")]
    # P(|Z| > 3) = 0.0027
    assert len(ones) / 20_000 == pytest.approx(0.0027, abs=0.0012)


def test_ewma_and_its_limits() -> None:
    x = np.array([1.0, -0.5, 2.0, 0.3, 0.0, 1.2])
    z, lo, hi = ewma(x, center=0.2, sigma=1.0)
    want = pd.Series([0.2, *x]).ewm(alpha=0.2, adjust=False).mean().to_numpy()[1:]
    assert z == pytest.approx(want)
    assert hi[0] - 0.2 == pytest.approx(0.6)  # 3 * 0.2 * sigma at the first point
    assert 0.2 - lo[0] == pytest.approx(0.6)
    _, _, far = ewma(np.zeros(200), 0.0, 1.0)
    assert far[-1] == pytest.approx(3 * np.sqrt(0.2 / 1.8))  # the asymptotic limit


def test_cusum_by_hand() -> None:
    up, down = cusum(np.array([1.0, 1.0, 1.0, -2.0, -2.0]), center=0.0, sigma=1.0)
    assert up.tolist() == [0.5, 1.0, 1.5, 0.0, 0.0]
    assert down.tolist() == [0.0, 0.0, 0.0, 1.5, 3.0]


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
    kinds = {sig["rule"].split(":")[0] for sig in s.signals}
    assert "rule 1" in kinds and "ewma" in kinds
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
