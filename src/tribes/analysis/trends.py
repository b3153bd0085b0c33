"""Trends: daily series per metric (and segment), STL decomposition with weekly
seasonality, a forecast with prediction intervals, and anomalous days.

The series are aggregated in the engine (one row per day); only those rows reach Python.
Forecast: exponential smoothing (additive trend and weekly season) and SARIMA
(1,1,1)(1,0,1,7) are fitted; the lower AIC wins, and its error is measured by refitting
without the last ``horizon`` days (MAPE on that holdout). Anomalies: days whose STL
residual lies more than 5 robust standard deviations (1.4826 x MAD) from the median.
"""

from __future__ import annotations

import contextlib
import warnings
from datetime import date
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from tribes.analysis.journeys import journey_events
from tribes.engine import Engine
from tribes.errors import InputError
from tribes.store.segments import members

METRICS = ("revenue", "active_customers", "sessions", "conversion")
SEASON = 7
ANOMALY_Z = 5.0
# smoothers: a season stable over ~2 weeks, a trend over ~4 weeks (shorter ones absorb
# noise into the components and make ordinary days look anomalous)
SEASONAL_SMOOTHER, TREND_SMOOTHER = 13, 29


def daily_series(engine: Engine, metric: str, *, by: str | None = None,
                 consent_mode: str = "opt-out") -> pd.DataFrame:
    """``group, day, value``: one row per group and day with data (engine aggregate)."""
    if metric not in METRICS:
        raise InputError(f"unknown metric '{metric}'; use {', '.join(METRICS)}",
                         code="E_METRIC")
    if metric in ("sessions", "conversion"):
        s = engine.table("sessions")
        t = s.select("customer_key", day=s.start.truncate("D"),
                     bought=s.has_purchase.cast("int64"))
    else:
        ev = journey_events(engine, ["event_type", "amount"], None, consent_mode)
        t = ev.select("customer_key", day=ev.ts.truncate("D"),
                      rev=ibis.ifelse(ev.event_type == "purchase", ev.amount, 0.0))
    if by == "segment":
        a = members(engine).select("a_key", group="segment_id")
        t = t.join(a, t.customer_key == a.a_key).mutate(group=ibis._.group.cast("string"))
    elif by is None:
        t = t.mutate(group=ibis.literal("all"))
    else:
        raise InputError(f"unknown breakdown '{by}'; use segment", code="E_BY")
    value: ir.Scalar
    if metric == "revenue":
        value = t.rev.sum()
    elif metric == "active_customers":
        value = t.customer_key.nunique()
    elif metric == "sessions":
        value = t.count()
    else:
        value = t.bought.sum().cast("float64") / t.count()
    df = engine.execute(t.group_by(["group", "day"]).aggregate(value=value))
    df["day"] = pd.to_datetime(df["day"]).dt.tz_localize(None).dt.normalize()
    return df.sort_values(["group", "day"]).reset_index(drop=True)


def _fill(s: pd.Series, metric: str) -> pd.Series:
    full = pd.date_range(s.index.min(), s.index.max(), freq="D")
    # a day without activity is a real zero for counts and revenue; conversion is unknown
    return s.reindex(full, fill_value=0.0 if metric != "conversion" else np.nan).interpolate(
        limit_direction="both")


def analyze(series: pd.Series, *, horizon: int = 14, non_negative: bool = True
            ) -> dict[str, Any]:
    """STL, forecast with 95% intervals and backtest MAPE, anomalies of one daily series."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing
    from statsmodels.tsa.seasonal import STL
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    y = series.astype(float)
    out: dict[str, Any] = {"days": [d.date().isoformat() for d in y.index],
                           "values": y.round(6).tolist()}
    if len(y) < 3 * SEASON:
        out["note"] = f"{len(y)} days: at least {3 * SEASON} are needed for STL and forecasts"
        return out
    stl = STL(y, period=SEASON, seasonal=SEASONAL_SMOOTHER, trend=TREND_SMOOTHER,
              robust=True).fit()
    out["trend"], out["seasonal"], out["resid"] = (
        stl.trend.round(6).tolist(), stl.seasonal.round(6).tolist(), stl.resid.round(6).tolist())
    r = stl.resid.to_numpy()
    mad = 1.4826 * float(np.median(np.abs(r - np.median(r)))) or float(np.std(r)) or 1.0
    z = (r - np.median(r)) / mad
    days = list(y.index)
    out["anomalies"] = [{"day": days[i].date().isoformat(), "value": float(y.iloc[i]),
                         "expected": float(y.iloc[i] - r[i]), "z": float(z[i])}
                        for i in np.flatnonzero(np.abs(z) > ANOMALY_Z)]

    def fit(data: pd.Series) -> tuple[str, Any]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            models = []
            with contextlib.suppress(ValueError, np.linalg.LinAlgError):
                models.append(("ets", ExponentialSmoothing(
                    data, trend="add", seasonal="add", seasonal_periods=SEASON,
                    initialization_method="estimated").fit()))
            with contextlib.suppress(ValueError, np.linalg.LinAlgError):
                models.append(("sarima", SARIMAX(data, order=(1, 1, 1),
                                                 seasonal_order=(1, 0, 1, SEASON)).fit(
                    disp=False)))
        if not models:
            raise InputError("no forecast model could be fitted", code="E_FORECAST")
        return min(models, key=lambda m: m[1].aic)

    name, model = fit(y)
    index = pd.date_range(y.index[-1] + pd.Timedelta(days=1), periods=horizon, freq="D")
    mean, lo, hi = _forecast(name, model, horizon)
    if non_negative:  # revenue, counts and rates cannot go below zero
        mean, lo, hi = np.maximum(mean, 0.0), np.maximum(lo, 0.0), np.maximum(hi, 0.0)
    out["forecast"] = {"model": name, "aic": float(model.aic),
                       "days": [d.date().isoformat() for d in index],
                       "mean": mean.tolist(), "lower": lo.tolist(), "upper": hi.tolist()}
    if len(y) >= 3 * SEASON + horizon:
        train, test = y.iloc[:-horizon], y.iloc[-horizon:]
        bname, bmodel = fit(train)
        pred, _, _ = _forecast(bname, bmodel, horizon)
        if non_negative:
            pred = np.maximum(pred, 0.0)
        ok = test.to_numpy() != 0
        mape = float(np.mean(np.abs((test.to_numpy()[ok] - pred[ok]) / test.to_numpy()[ok])))
        out["forecast"]["backtest"] = {"model": bname, "holdout_days": horizon,
                                       "mape": mape if ok.any() else None}
    return out


def _forecast(name: str, model: Any, horizon: int) -> tuple[np.ndarray, ...]:
    if name == "sarima":
        pred = model.get_forecast(horizon)
        ci = np.asarray(pred.conf_int(alpha=0.05))
        return np.asarray(pred.predicted_mean), ci[:, 0], ci[:, 1]
    mean = np.asarray(model.forecast(horizon))
    # intervals from the in-sample residual spread, widening with the horizon
    sd = float(np.std(np.asarray(model.resid)))
    width = 1.96 * sd * np.sqrt(np.arange(1, horizon + 1))
    return mean, mean - width, mean + width


def trends(engine: Engine, metric: str = "revenue", *, by: str | None = None,
           horizon: int = 14, consent_mode: str = "opt-out") -> dict[str, Any]:
    """Per group: the daily series, its decomposition, forecast and anomalies."""
    df = daily_series(engine, metric, by=by, consent_mode=consent_mode)
    # the newest day is usually cut off mid-day: leave it out rather than call it a drop
    last = engine.scalar(engine.table("events").ts.max())
    partial = None
    if last is not None and not pd.isna(last):
        last_ts = pd.Timestamp(last).tz_convert(None) if pd.Timestamp(last).tzinfo else \
            pd.Timestamp(last)
        if last_ts - last_ts.normalize() < pd.Timedelta(hours=23):
            partial = last_ts.normalize()
            df = df[df.day < partial]
    groups = []
    for g, part in df.groupby("group"):
        s = _fill(part.set_index("day")["value"].astype(float), metric)
        groups.append({"group": str(g), **analyze(s, horizon=horizon)})
    return {"metric": metric, "by": by, "horizon": horizon, "groups": groups,
            "partial_day_left_out": None if partial is None else partial.date().isoformat(),
            "generated": date.today().isoformat()}
