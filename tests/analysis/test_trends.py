"""Trends: the daily series equals a pandas aggregate; STL, forecast and anomalies behave."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.features.conftest import FeatureData
from tribes.analysis.trends import analyze, daily_series


@pytest.fixture(autouse=True)
def _prepared(feature_data: FeatureData) -> None:
    from tribes.features.run import run_features

    with feature_data.ws.engine() as engine:
        run_features(feature_data.ws, engine)


def test_daily_revenue_equals_pandas(feature_data: FeatureData) -> None:
    from tests.analysis.test_journeys import keyed

    with feature_data.ws.engine() as engine:
        got = daily_series(engine, "revenue")
    ev = keyed(feature_data)  # consented customers only
    buys = ev[ev.event_type == "purchase"]
    want = buys.groupby(buys.ts.dt.tz_convert(None).dt.normalize()).amount.sum()
    got = got.set_index("day")["value"]
    got = got[got > 0]
    assert list(got.index) == list(want.index)
    assert np.allclose(got.to_numpy(), want.to_numpy())


def test_analyze_finds_season_spike_and_forecasts() -> None:
    rng = np.random.default_rng(3)
    days = pd.date_range("2026-01-01", periods=120, freq="D")
    weekly = np.tile([100, 110, 120, 130, 150, 220, 200], 18)[:120]
    y = pd.Series(weekly + 0.3 * np.arange(120) + rng.normal(0, 4, 120), index=days)
    y.iloc[70] += 300  # a planted anomaly
    res = analyze(y, horizon=14)
    assert [a["day"] for a in res["anomalies"]] == ["2026-03-12"]
    seasonal = np.array(res["seasonal"][-7:])
    assert np.argmax(seasonal) == list(days[-7:].day_of_week).index(days[5].day_of_week)
    f = res["forecast"]
    assert f["model"] in ("ets", "sarima") and len(f["mean"]) == 14
    assert all(lo <= m <= hi for lo, m, hi in zip(f["lower"], f["mean"], f["upper"],
                                                  strict=True))
    assert f["backtest"]["mape"] < 0.1


def test_short_series_gets_a_note() -> None:
    y = pd.Series([1.0, 2.0, 3.0], index=pd.date_range("2026-01-01", periods=3))
    assert "needed" in analyze(y)["note"]


def test_trends_cli(cli, feature_data: FeatureData) -> None:
    r = cli("-w", feature_data.ws.path, "trends", "--metric", "sessions", "--json")
    assert r.code == 0, r.err
    g = r.json()["groups"][0]
    assert len(g["days"]) >= 21 and "forecast" in g
    bad = cli("-w", feature_data.ws.path, "trends", "--metric", "mood")
    assert bad.code != 0 and "E_METRIC" in bad.err
