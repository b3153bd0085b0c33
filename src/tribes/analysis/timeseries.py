"""Trends: daily or weekly series per metric (and segment), STL decomposition with a
seasonal period, a forecast with prediction intervals, and anomalous periods.

The series are aggregated in the engine (one row per day or week); only those rows reach
Python. Daily series have a weekly season (period 7); weekly series a yearly one (period
52) once they span two years, and no season before that (the trend is then a LOWESS
smooth). Forecast: exponential smoothing (additive trend, additive season when there is
one) and SARIMA (1,1,1) (with a (1,0,1) seasonal part when there is a season) are fitted;
the lower AIC wins, and its error is measured by refitting without the last ``horizon``
periods (MAPE on that holdout). Anomalies: periods whose residual lies more than 5 robust
standard deviations (1.4826 x MAD) from the median. Incomplete periods at the ends (the
last day, cut off mid-day; a first or last week with days missing) are left out.
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
from tribes.store import cohort_members, members

TREND_METRICS = ("revenue", "active_customers", "sessions", "conversion")
FREQS = {"day": ("D", 7, 21), "week": ("W", 52, 8)}  # unit, season, fewest periods
SEASON = 7
ANOMALY_Z = 5.0
# smoothers: a season stable over ~2 weeks, a trend over ~4 weeks (shorter ones absorb
# noise into the components and make ordinary days look anomalous)
SEASONAL_SMOOTHER, TREND_SMOOTHER = 13, 29


def daily_series(engine: Engine, metric: str, *, by: str | None = None,
                 freq: str = "day", cohort: str | None = None,
                 consent_mode: str = "opt-out") -> pd.DataFrame:
    """``group, day, value``: one row per group and day (or week, dated by its Monday)
    with data (engine aggregate); all customers or a behavioral ``cohort``'s."""
    if metric not in TREND_METRICS:
        raise InputError(f"unknown metric '{metric}'; use {', '.join(TREND_METRICS)}",
                         code="E_METRIC")
    if freq not in FREQS:
        raise InputError(f"unknown frequency '{freq}'; use day or week", code="E_FREQ")
    unit = FREQS[freq][0]
    if metric in ("sessions", "conversion"):
        s = engine.table("sessions")
        t = s.select("customer_key", day=s.start.truncate(unit),
                     bought=s.has_purchase.cast("int64"))
        if cohort is not None:
            m = cohort_members(engine, cohort)
            t = t.semi_join(m, t.customer_key == m.c_key)
    else:
        ev = journey_events(engine, ["event_type", "amount"], None, consent_mode,
                            cohort=cohort)
        t = ev.select("customer_key", day=ev.ts.truncate(unit),
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


def _fill(s: pd.Series, metric: str, freq: str = "day",
          span: tuple[pd.Timestamp, pd.Timestamp] | None = None) -> pd.Series:
    """Every day (week) of ``span`` (default: the series' own): a day without activity is
    a real zero for counts and revenue, so those cover the whole span of the data; a
    conversion rate is unknown without sessions, so it keeps its own span and is
    interpolated inside it."""
    step = "D" if freq == "day" else "7D"
    if metric == "conversion" or span is None:
        full = pd.date_range(s.index.min(), s.index.max(), freq=step)
    else:
        full = pd.date_range(span[0], span[1], freq=step)
    return s.reindex(full, fill_value=0.0 if metric != "conversion" else np.nan).interpolate(
        limit_direction="both")


def analyze(series: pd.Series, *, horizon: int = 14, non_negative: bool = True,
            freq: str = "day") -> dict[str, Any]:
    """Decomposition, forecast with 95% intervals and backtest MAPE, anomalies of one
    daily (or weekly) series."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    y = series.astype(float)
    _, period, fewest = FREQS[freq]
    step = pd.Timedelta(days=1 if freq == "day" else 7)
    out: dict[str, Any] = {"days": [d.date().isoformat() for d in y.index],
                           "values": y.round(6).tolist()}
    if len(y) < fewest:
        out["note"] = (f"{len(y)} {freq}s: at least {fewest} are needed for a decomposition "
                       "and forecasts")
        return out
    # a season needs two full cycles (and, for days, the tested smoother lengths)
    season = period if len(y) >= max(2 * period + 1, fewest) else None
    trend, seasonal, resid = _decompose(y, season)
    out["season"] = season
    out["trend"], out["seasonal"], out["resid"] = (
        trend.round(6).tolist(), seasonal.round(6).tolist(), resid.round(6).tolist())
    r = resid.to_numpy()
    # robust spread, floored: a series that is mostly flat (or zero) has a MAD near 0,
    # which would make every small wiggle a "z of 1e18"
    mad = 1.4826 * float(np.median(np.abs(r - np.median(r))))
    scale = max(mad, 0.5 * float(np.std(r)), 1e-9 * max(float(np.abs(y).max()), 1.0))
    z = (r - np.median(r)) / scale
    days = list(y.index)
    if float(np.mean(y.to_numpy() == 0)) > 0.5:
        out["anomalies"] = []
        out["anomaly_note"] = "more than half the periods are zero: no anomaly detection"
    else:
        out["anomalies"] = [{"day": days[i].date().isoformat(), "value": float(y.iloc[i]),
                             "expected": float(y.iloc[i] - r[i]), "z": float(z[i])}
                            for i in np.flatnonzero(np.abs(z) > ANOMALY_Z)]

    def fit(data: pd.Series) -> tuple[str, Any]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            models = []
            with contextlib.suppress(ValueError, np.linalg.LinAlgError):
                models.append(("ets", ExponentialSmoothing(
                    data, trend="add", seasonal="add" if season else None,
                    seasonal_periods=season, initialization_method="estimated").fit()))
            with contextlib.suppress(ValueError, np.linalg.LinAlgError):
                models.append(("sarima", SARIMAX(
                    data, order=(1, 1, 1),
                    seasonal_order=(1, 0, 1, season) if season else (0, 0, 0, 0)).fit(
                    disp=False)))
        if not models:
            raise InputError("no forecast model could be fitted", code="E_FORECAST")
        return min(models, key=lambda m: m[1].aic)

    name, model = fit(y)
    index = pd.date_range(y.index[-1] + step, periods=horizon, freq=step)
    mean, lo, hi = _forecast(name, model, horizon)
    if non_negative:  # revenue, counts and rates cannot go below zero
        mean, lo, hi = np.maximum(mean, 0.0), np.maximum(lo, 0.0), np.maximum(hi, 0.0)
    out["forecast"] = {"model": name, "aic": float(model.aic),
                       "days": [d.date().isoformat() for d in index],
                       "mean": mean.tolist(), "lower": lo.tolist(), "upper": hi.tolist()}
    if len(y) >= fewest + horizon:
        train, test = y.iloc[:-horizon], y.iloc[-horizon:]
        bname, bmodel = fit(train)
        pred, _, _ = _forecast(bname, bmodel, horizon)
        if non_negative:
            pred = np.maximum(pred, 0.0)
        actual = test.to_numpy()
        base = seasonal_naive(train.to_numpy(), horizon, season)
        ok = actual != 0
        mape = float(np.mean(np.abs((actual[ok] - pred[ok]) / actual[ok]))) if ok.any() \
            else None
        mae, base_mae = float(np.mean(np.abs(actual - pred))), float(
            np.mean(np.abs(actual - base)))
        beats = mae < base_mae
        out["forecast"]["backtest"] = {"model": bname, "holdout_days": horizon, "mape": mape,
                                       "mae": mae, "baseline_mae": base_mae,
                                       "beats_baseline": beats}
        if not beats:
            out["forecast"] = _baseline_forecast(y, out["forecast"], horizon, season,
                                                 non_negative)
    return out


BASELINE = "seasonal naive"


def seasonal_naive(history: np.ndarray, horizon: int, season: int | None) -> np.ndarray:
    """The value one season earlier (the last value, without a season), repeated over the
    horizon: the forecast any model must beat."""
    if not season or len(history) < season:
        return np.full(horizon, float(history[-1]))
    last = history[-season:]
    return np.array([float(last[h % season]) for h in range(horizon)])


def _baseline_forecast(y: pd.Series, model_forecast: dict[str, Any], horizon: int,
                       season: int | None, non_negative: bool) -> dict[str, Any]:
    """The seasonal naive forecast in place of a model that did not beat it on the
    backtest; its 95% intervals from the spread of the series' own one-season changes,
    widening with each season ahead."""
    v = y.to_numpy(float)
    lag = season if season and len(v) > season else 1
    spread = float(np.std(v[lag:] - v[:-lag])) if len(v) > lag else 0.0
    mean = seasonal_naive(v, horizon, season)
    width = 1.96 * spread * np.sqrt(np.arange(horizon) // lag + 1)
    lo, hi = mean - width, mean + width
    if non_negative:
        lo = np.maximum(lo, 0.0)
    bt = model_forecast["backtest"]
    return {**model_forecast, "model": BASELINE, "fitted_model": model_forecast["model"],
            "mean": mean.tolist(), "lower": lo.tolist(), "upper": hi.tolist(),
            "note": f"{model_forecast['model']} does not beat a seasonal naive forecast on "
                    f"the last {horizon} periods (mean absolute error {bt['mae']:,.2f} "
                    f"against {bt['baseline_mae']:,.2f}): the naive forecast is shown"}


def _decompose(y: pd.Series, season: int | None) -> tuple[pd.Series, ...]:
    """Trend, seasonal and residual parts: robust STL with a season, else a LOWESS trend."""
    if season is not None:
        from statsmodels.tsa.seasonal import STL

        # smoother lengths must be odd and larger than the period
        seasonal = SEASONAL_SMOOTHER if season == SEASON else 7
        trend_len = TREND_SMOOTHER if season == SEASON else (int(1.5 * season) | 1)
        stl = STL(y, period=season, seasonal=seasonal, trend=trend_len, robust=True).fit()
        return stl.trend, stl.seasonal, stl.resid
    from statsmodels.nonparametric.smoothers_lowess import lowess

    x = np.arange(len(y), dtype=float)
    trend = pd.Series(lowess(y.to_numpy(), x, frac=min(1.0, 9 / len(y)), it=2,
                             return_sorted=False), index=y.index)
    return trend, pd.Series(0.0, index=y.index), y - trend


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
           horizon: int | None = None, freq: str = "day", cohort: str | None = None,
           consent_mode: str = "opt-out") -> dict[str, Any]:
    """Per group: the daily (or weekly) series, its decomposition, forecast and anomalies.
    ``horizon`` defaults to 14 days or 8 weeks."""
    df = daily_series(engine, metric, by=by, freq=freq, cohort=cohort,
                      consent_mode=consent_mode)
    horizon = horizon or (14 if freq == "day" else 8)
    left_out = incomplete_periods(engine, freq)
    df = df[~df.day.isin(left_out)]
    groups = []
    span = (df.day.min(), df.day.max()) if not df.empty else None
    for g, part in df.groupby("group"):
        s = _fill(part.set_index("day")["value"].astype(float), metric, freq, span)
        res = analyze(s, horizon=horizon, freq=freq)
        if span is not None and s.index.max() < span[1] and "note" not in res:
            res["note"] = (f"no sessions after {s.index.max().date()}: the forecast starts "
                           "there")
        groups.append({"group": str(g), **res})
    return {"metric": metric, "by": by, "freq": freq, "cohort": cohort, "horizon": horizon,
            "groups": groups,
            "incomplete_left_out": [d.date().isoformat() for d in left_out],
            "generated": date.today().isoformat()}


def incomplete_periods(engine: Engine, freq: str) -> list[pd.Timestamp]:
    """The periods at the ends of the data that are only partly covered: the newest day
    (usually cut off mid-day), or a first or last week with days missing."""
    ev = engine.table("events")
    span = engine.execute(ev.aggregate(first=ev.ts.min(), last=ev.ts.max()))
    if span.empty or pd.isna(span["last"].iloc[0]):
        return []
    first, last = (_naive(span[c].iloc[0]) for c in ("first", "last"))
    out = []
    if freq == "day":
        if last - last.normalize() < pd.Timedelta(hours=23):
            out.append(last.normalize())
        return out
    monday = first.normalize() - pd.Timedelta(days=first.weekday())
    if first - monday > pd.Timedelta(days=1):
        out.append(monday)
    end = last.normalize() - pd.Timedelta(days=last.weekday())
    if last - end < pd.Timedelta(days=6, hours=23):
        out.append(end)
    return out


def _naive(v: Any) -> pd.Timestamp:
    ts = pd.Timestamp(v)
    return ts.tz_convert(None) if ts.tzinfo else ts
