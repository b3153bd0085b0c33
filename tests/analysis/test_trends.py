"""Trends: the daily series equals a pandas aggregate; STL, forecast and anomalies behave."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.features.conftest import FeatureData
from tests.stages import context
from tribes.analysis.timeseries import analyze, daily_series
from tribes.store.db import open_engine


@pytest.fixture(autouse=True)
def _prepared(feature_data: FeatureData) -> None:
    from tribes.features.feature_table import run_features

    with open_engine(feature_data.ws) as engine:
        run_features(context(feature_data.ws, engine))


def test_daily_revenue_equals_pandas(feature_data: FeatureData) -> None:
    from tests.analysis.test_journeys import keyed

    with open_engine(feature_data.ws) as engine:
        got = daily_series(engine, "revenue")
    ev = keyed(feature_data)  # consented customers only
    buys = ev[ev.event_type == "purchase"]
    want = buys.groupby(buys.ts.dt.tz_convert(None).dt.normalize()).amount.sum()
    got = got.set_index("day")["value"]
    got = got[got > 0]
    assert list(got.index) == list(want.index)
    assert np.allclose(got.to_numpy(), want.to_numpy())


def test_weekly_revenue_equals_pandas(feature_data: FeatureData) -> None:
    from tests.analysis.test_journeys import keyed

    with open_engine(feature_data.ws) as engine:
        got = daily_series(engine, "revenue", freq="week")
    ev = keyed(feature_data)
    buys = ev[ev.event_type == "purchase"]
    day = buys.ts.dt.tz_convert(None).dt.normalize()
    monday = day - pd.to_timedelta(day.dt.day_of_week, unit="D")
    want = buys.groupby(monday).amount.sum()
    got = got.set_index("day")["value"]
    got = got[got > 0]
    assert list(got.index) == list(want.index) and all(d.weekday() == 0 for d in got.index)
    assert np.allclose(got.to_numpy(), want.to_numpy())


def test_weekly_series_without_a_full_year_has_no_season() -> None:
    rng = np.random.default_rng(4)
    weeks = pd.date_range("2026-01-05", periods=40, freq="7D")
    y = pd.Series(1000 + 15 * np.arange(40) + rng.normal(0, 20, 40), index=weeks)
    y.iloc[25] += 600
    res = analyze(y, horizon=8, freq="week")
    assert res["season"] is None and set(res["seasonal"]) == {0.0}
    assert [a["day"] for a in res["anomalies"]] == [weeks[25].date().isoformat()]
    f = res["forecast"]
    assert len(f["mean"]) == 8 and f["days"][0] == (weeks[-1] + pd.Timedelta(days=7)).date(
    ).isoformat()
    assert f["mean"][-1] > y.iloc[-5:].mean()  # the upward trend goes on
    assert f["backtest"]["mape"] < 0.1


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
    # the planted anomaly upsets the fitted model enough that the naive forecast wins here
    assert f["model"] == ("seasonal naive" if not f["backtest"]["beats_baseline"] else
                          f["backtest"]["model"]) and len(f["mean"]) == 14
    assert all(lo <= m <= hi for lo, m, hi in zip(f["lower"], f["mean"], f["upper"],
                                                  strict=True))
    assert f["backtest"]["mape"] < 0.1


def test_seasonal_naive_by_hand() -> None:
    from tribes.analysis.timeseries import seasonal_naive

    history = np.arange(1.0, 11.0)  # 1..10
    assert seasonal_naive(history, 4, 3).tolist() == [8.0, 9.0, 10.0, 8.0]
    assert seasonal_naive(history, 2, None).tolist() == [10.0, 10.0]


def test_a_forecast_that_does_not_beat_the_naive_one_says_so() -> None:
    """A week that repeats exactly: the value one week earlier is right every day, so
    no fitted model beats it; the naive forecast is shown, with a note."""
    days = pd.date_range("2026-01-01", periods=84, freq="D")
    y = pd.Series(np.tile([0.0, 0, 0, 0, 0, 0, 100], 12), index=days)
    res = analyze(y, horizon=14)
    f = res["forecast"]
    assert f["backtest"]["baseline_mae"] == 0.0 and f["backtest"]["beats_baseline"] is False
    assert f["model"] == "seasonal naive" and f["fitted_model"] in ("ets", "sarima")
    assert f["mean"] == [0.0, 0, 0, 0, 0, 0, 100] * 2  # the last week, again
    assert "does not beat a seasonal naive forecast" in f["note"]
    # a fitted model that does beat it is kept
    rng = np.random.default_rng(3)
    trend = pd.Series(50 + 2.0 * np.arange(84) + rng.normal(0, 1, 84), index=days)
    kept = analyze(trend, horizon=14)["forecast"]
    assert kept["backtest"]["beats_baseline"] is True and kept["model"] in ("ets", "sarima")


def test_short_series_gets_a_note() -> None:
    y = pd.Series([1.0, 2.0, 3.0], index=pd.date_range("2026-01-01", periods=3))
    assert "needed" in analyze(y)["note"]


def test_trends_cli(cli, feature_data: FeatureData) -> None:
    r = cli("-w", feature_data.ws.path, "trends", "--metric", "sessions", "--json")
    assert r.code == 0, r.err
    g = r.json()["groups"][0]
    assert len(g["days"]) >= 21 and "forecast" in g
    r = cli("-w", feature_data.ws.path, "trends", "--period", "week", "--json")
    assert r.code == 0, r.err
    res = r.json()
    assert res["freq"] == "week" and res["horizon"] == 8
    assert all(pd.Timestamp(d).weekday() == 0 for d in res["groups"][0]["days"])
    bad = cli("-w", feature_data.ws.path, "trends", "--metric", "mood")
    assert bad.code != 0 and "E_METRIC" in bad.err
