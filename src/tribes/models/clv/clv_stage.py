"""The CLV stage: fit, validate on a holdout, and score every customer.

``fit`` stores the purchase model and the spend model as a stage run (``stage_runs``,
stage ``clv``); ``score`` applies the newest fit to every purchaser's history up to the
newest event and stores the ``clv`` table.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import ibis
import numpy as np
import pandas as pd

from tribes.config import format_duration
from tribes.engine import Engine
from tribes.errors import InputError, ModelError
from tribes.models.clv.bgnbd import BGNBD
from tribes.models.clv.btyd import BTYDModel
from tribes.models.clv.gamma_gamma import GammaGamma, independence_check
from tribes.models.clv.mbgnbd import MBGNBD
from tribes.models.clv.pareto_nbd import ParetoNBD
from tribes.models.clv.summary import UNIT_DAYS, SummarySpec, repeat_by_period, rfm_summary
from tribes.store import CLV, events_fingerprint, last_run, new_run_id, record_run
from tribes.workspace import RunContext

log = logging.getLogger(__name__)

STAGE = "clv"
TABLE = "clv"
MODELS: dict[str, type[BTYDModel]] = {"bgnbd": BGNBD, "pareto_nbd": ParetoNBD,
                                      "mbgnbd": MBGNBD}
FREQUENCY_BUCKETS = 7  # 0..6 repeat purchases, then 7+
TRACKING_POINTS = 200
Progress = Callable[[str], None]


def _model(name: str) -> type[BTYDModel]:
    if name not in MODELS:
        raise InputError(f"unknown model '{name}'; use one of {', '.join(MODELS)}",
                         code="E_CLV_MODEL")
    return MODELS[name]


def data_end(engine: Engine) -> datetime:
    """The newest event: 'now' for scoring and the end of any holdout."""
    ev = engine.table("events")
    value = engine.scalar(ev.ts.max())
    if value is None or pd.isna(value):
        raise InputError("no events in the workspace; ingest purchases first",
                         code="E_NO_EVENTS")
    return pd.Timestamp(value).to_pydatetime().astimezone(UTC)


def _first_purchase(engine: Engine) -> datetime:
    ev = engine.table("events")
    value = engine.scalar(ev.filter(ev.event_type == "purchase").ts.min())
    if value is None or pd.isna(value):
        raise ModelError("no purchase events in the workspace: CLV models learn from "
                         "purchases (event_type 'purchase')", code="E_MODEL_DATA")
    return pd.Timestamp(value).to_pydatetime().astimezone(UTC)


MONEY_DIGITS = 6


def _summary(engine: Engine, spec: SummarySpec, consent_mode: str) -> pd.DataFrame:
    # in a fixed order: the likelihood sums, and so the fit, must not depend on the
    # order an engine happens to return rows in
    df = engine.execute(rfm_summary(engine, spec, consent_mode).order_by("customer_key"))
    if df.empty:
        raise ModelError(f"no customer has a purchase up to {spec.calibration_end.date()}; "
                         "choose a later --calibration-end", code="E_MODEL_DATA")
    # money to a millionth: sums of the same amounts in another order (another engine,
    # another partitioning) differ in the last bits, which the optimizer carries into
    # the fit
    money = [c for c in ("monetary", "first_value", "holdout_value") if c in df.columns]
    return df.assign(**{c: df[c].round(MONEY_DIGITS) for c in money})


def fit_models(df: pd.DataFrame, model: str, random_state: int = 0,
               strict_spend: bool = False
               ) -> tuple[BTYDModel, GammaGamma | None, list[str]]:
    """Fit the purchase model and, when possible, the spend model on a summary frame.

    Repeat buyers whose average value is zero or negative are left out of the spend
    model (:func:`non_positive_spenders` counts them), or with ``strict_spend`` make it
    refuse to fit.
    """
    purchase = _model(model)(random_state=random_state).fit(df.frequency, df.recency, df["T"])
    notes = list(purchase.warnings_)
    spend: GammaGamma | None = None
    try:
        spend = GammaGamma(random_state=random_state, strict=strict_spend).fit(
            df.frequency, df.monetary)
        notes += [f"spend model: {w}" for w in spend.warnings_]
        if spend.params_["q"] <= 1:
            notes.append("spend model: q <= 1, so the mean transaction value is infinite; "
                         "CLV uses each customer's own mean")
    except ModelError as exc:
        notes.append(f"no spend model: {exc.message}")
    return purchase, spend, notes


def non_positive_spenders(df: pd.DataFrame) -> int:
    """Repeat buyers whose average transaction value is zero or negative."""
    return int(((df.frequency > 0) & (df.monetary <= 0)).sum())


def holdout_check(model: BTYDModel, df: pd.DataFrame, spec: SummarySpec,
                  repeats: pd.DataFrame) -> dict[str, Any]:
    """Predicted against actual repeat transactions after the calibration end.

    Per customer: the conditional expectation over the holdout given the calibration
    history (totals, mean absolute error, and by calibration frequency); for the whole
    calibration cohort: cumulative repeat transactions, predicted from each customer's
    first purchase on (the unconditional expectation), against the actual ones.
    """
    assert spec.holdout_end is not None
    unit = pd.Timedelta(days=UNIT_DAYS[spec.time_unit])
    cal_end = _period_start(spec.calibration_end, spec.period)
    hold_end = _period_start(spec.holdout_end, spec.period)
    t_hold = (hold_end - cal_end) / unit
    x, tx, big_t = (df[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    predicted = model.expected_purchases(t_hold, x, tx, big_t)
    actual = df.holdout_purchases.to_numpy(float)
    buckets = []
    bucket = np.minimum(x, FREQUENCY_BUCKETS).astype(int)
    for b in range(FREQUENCY_BUCKETS + 1):
        sel = bucket == b
        if sel.any():
            buckets.append({"frequency": f"{b}+" if b == FREQUENCY_BUCKETS else str(b),
                            "customers": int(sel.sum()), "actual": float(actual[sel].mean()),
                            "predicted": float(predicted[sel].mean())})
    tot_a, tot_p = float(actual.sum()), float(predicted.sum())
    return {
        "calibration_end": spec.calibration_end.isoformat(),
        "holdout_end": spec.holdout_end.isoformat(),
        "length": float(t_hold), "unit": spec.time_unit,
        "customers": len(df), "actual": tot_a, "predicted": tot_p,
        "error_pct": None if tot_a == 0 else (tot_p - tot_a) / tot_a,
        "mae": float(np.abs(predicted - actual).mean()),
        "correlation": _corr(predicted, actual),
        "by_frequency": buckets,
        "cumulative": _tracking(model, df, spec, repeats, unit, hold_end),
    }


def _corr(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def _tracking(model: BTYDModel, df: pd.DataFrame, spec: SummarySpec,
              repeats: pd.DataFrame, unit: pd.Timedelta, hold_end: pd.Timestamp
              ) -> dict[str, Any]:
    first = pd.to_datetime(df.first_period, utc=True)
    ref = first.min()
    t0 = ((first - ref) / unit).to_numpy(float)
    starts, counts = np.unique(t0, return_counts=True)
    span = (hold_end - ref) / unit
    steps = max(1, math.ceil(span / TRACKING_POINTS))
    points = np.append(np.arange(steps, span, steps, dtype=float), span)
    predicted = [float(np.dot(counts, model.expected_purchases_new(np.maximum(p - starts, 0))))
                 for p in points]
    rp = pd.to_datetime(repeats.period, utc=True)
    rt = ((rp - ref) / unit).to_numpy(float)
    cum = np.cumsum(repeats.repeats.to_numpy(float))
    idx = np.searchsorted(rt, points, side="right") - 1
    actual = [float(cum[i]) if i >= 0 else 0.0 for i in idx]
    cal = (_period_start(spec.calibration_end, spec.period) - ref) / unit
    end_a, end_p = actual[-1], predicted[-1]
    return {"t": points.tolist(), "date": [(ref + p * unit).date().isoformat() for p in points],
            "actual": actual, "predicted": predicted, "calibration_t": float(cal),
            "actual_at_end": end_a, "predicted_at_end": end_p,
            "error_pct_at_end": None if end_a == 0 else (end_p - end_a) / end_a}


def _period_start(ts: datetime, period: str) -> pd.Timestamp:
    t = pd.Timestamp(ts).tz_convert("UTC") if pd.Timestamp(ts).tzinfo else (
        pd.Timestamp(ts).tz_localize("UTC"))
    day = t.normalize()
    return day - pd.Timedelta(days=day.weekday()) if period == "week" else day


def _auto_calibration_end(engine: Engine, end: datetime, share: float) -> datetime:
    start = _first_purchase(engine)
    held = timedelta(days=max(1, round((end - start).days * share)))
    cal = (end - held).replace(hour=23, minute=59, second=59, microsecond=999999)
    if cal <= start:
        raise ModelError("the purchase history is too short to hold part of it out; "
                         "give --calibration-end", code="E_MODEL_DATA")
    return cal


def fit_clv(ctx: RunContext, *, model: str | None = None,
            calibration_end: datetime | None = None, period: str | None = None,
            time_unit: str | None = None, strict_spend: bool | None = None,
            progress: Progress | None = None) -> dict[str, Any]:
    """Fit and store the purchase and spend models; check them on a holdout.

    With ``calibration_end`` the models are fitted on purchases up to it and checked on
    the rest. Without it they are fitted on all purchases, and the holdout check comes
    from a second fit that leaves out the last ``clv.holdout_share`` of the history.
    The spend model leaves out repeat buyers whose average value is not positive
    (``spend_excluded`` counts them), or with ``strict_spend`` (default
    ``clv.strict_spend``) is not fitted when there are any.
    """
    say = progress or (lambda step: None)
    started_perf, started = time.perf_counter(), datetime.now(UTC)
    ws, engine = ctx.ws, ctx.engine
    cfg = ws.config.clv
    name = model or cfg.model
    _model(name)
    period, unit = period or cfg.period, time_unit or cfg.time_unit
    strict = cfg.strict_spend if strict_spend is None else strict_spend
    consent = ctx.settings.consent_mode
    end = data_end(engine)
    if calibration_end is not None and calibration_end >= end:
        raise ModelError(f"--calibration-end {calibration_end.date()} is not before the end "
                         f"of the data ({end.date()}): nothing would be left to check the "
                         "models on. Give an earlier date, or leave it out to fit on every "
                         "purchase with an automatic holdout", code="E_CALIBRATION")
    auto = calibration_end is None
    check_end = _auto_calibration_end(engine, end, cfg.holdout_share) if auto else (
        calibration_end)
    assert check_end is not None
    check_spec = SummarySpec(check_end, end, period, unit)
    say("summarizing purchases (calibration and holdout)")
    check_df = _summary(engine, check_spec, consent)
    say(f"fitting {name} on purchases up to {check_end.date()}")
    check_model, check_spend, notes = fit_models(check_df, name, ws.config.segment.random_state,
                                                 strict)
    repeats = engine.execute(repeat_by_period(engine, check_spec, consent))
    holdout = holdout_check(check_model, check_df, check_spec, repeats)
    if auto:
        say(f"fitting {name} on all purchases")
        spec = SummarySpec(end, None, period, unit)
        df = _summary(engine, spec, consent)
        purchase, spend, notes = fit_models(df, name, ws.config.segment.random_state, strict)
        holdout["params"] = check_model.params_
    else:
        spec, df, purchase, spend = SummarySpec(check_end, None, period, unit), check_df, \
            check_model, check_spend
    report: dict[str, Any] = {
        "model": name, **{k: v for k, v in purchase.summary().items() if k != "model"},
        "repeat_buyers": int((df.frequency > 0).sum()),
        "spend_model": None if spend is None else "gamma_gamma",
        "spend_customers": None if spend is None else spend.n_customers_,
        "spend_excluded": {"non_positive_average": 0 if strict else non_positive_spenders(df)},
        "strict_spend": strict,
        "spend_params": None if spend is None else spend.params_,
        "spend_se": None if spend is None else spend.se_,
        "spend_loglik": None if spend is None else spend.loglik_,
        "mean_value": None if spend is None else _finite(spend.mean_value()),
        "independence": independence_check(df.frequency, df.monetary),
        **spec.as_dict(), "holdout": holdout, "auto_holdout": auto,
    }
    report["warnings"] = notes
    if not report["independence"]["ok"]:
        report["warnings"].append(
            f"frequency and average value correlate ({report['independence']['pearson']:.2f})"
            ": the spend model's independence assumption is doubtful")
    fit_id = new_run_id(STAGE, started)
    report["fit_id"] = fit_id
    report["seconds"] = round(time.perf_counter() - started_perf, 3)
    with engine.transaction():
        record_run(engine, run_id=fit_id, stage=STAGE, started_at=started,
                   fingerprint=events_fingerprint(engine),
                   params={"model": name, **spec.as_dict(), "consent_mode": consent,
                           "strict_spend": strict},
                   report=report)
    return report


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def last_fit(engine: Engine) -> dict[str, Any]:
    run = last_run(engine, STAGE) if engine.has_table("stage_runs") else None
    if run is None:
        raise InputError("no CLV model yet; fit one first: tribes clv fit",
                         code="E_NO_CLV_MODEL")
    report: dict[str, Any] = run["report"]
    # stored JSON has sorted keys: give parameters back in each model's own order
    for key, names in (("params", _model(report["model"]).param_names),
                       ("se", _model(report["model"]).param_names),
                       ("spend_params", GammaGamma.param_names),
                       ("spend_se", GammaGamma.param_names)):
        if report.get(key):
            report[key] = {n: report[key].get(n) for n in names}
    return report


def models_of(fit: dict[str, Any]) -> tuple[BTYDModel, GammaGamma | None]:
    """The stored fit's purchase and spend models, ready to predict."""
    purchase = _model(fit["model"]).from_params(fit["params"])
    spend = None if not fit.get("spend_params") else GammaGamma.from_params(
        fit["spend_params"])
    return purchase, spend


def horizon_units(horizon: timedelta, time_unit: str) -> float:
    return horizon.total_seconds() / 86400 / UNIT_DAYS[time_unit]


def discounted_clv(model: BTYDModel, value: np.ndarray, horizon: float, time_unit: str,
                   monthly_rate: float, x: np.ndarray, tx: np.ndarray, big_t: np.ndarray
                   ) -> np.ndarray:
    """Expected value of the purchases in ``(0, horizon]``, month by month, each month's
    expected purchases times the expected average value, discounted at ``monthly_rate``
    per month (the last month may be partial)."""
    month = UNIT_DAYS["month"] / UNIT_DAYS[time_unit]
    steps = max(1, math.ceil(horizon / month - 1e-9))
    total = np.zeros(len(x))
    before = np.zeros(len(x))
    for k in range(1, steps + 1):
        upto = model.expected_purchases(min(k * month, horizon), x, tx, big_t)
        total += (upto - before) / (1 + monthly_rate) ** k
        before = upto
    return total * value


def score_clv(ctx: RunContext, *, horizon: timedelta | None = None,
              discount_rate: float | None = None, threshold: float | None = None,
              progress: Progress | None = None) -> dict[str, Any]:
    """Score every purchaser with the newest fit over ``horizon`` (default
    ``clv.horizon``) and store the ``clv`` table."""
    say = progress or (lambda step: None)
    ws, engine, settings = ctx.ws, ctx.engine, ctx.settings
    cfg = ws.config.clv
    fit = last_fit(engine)
    span = horizon or cfg.horizon
    horizon_text = format_duration(span)
    rate = cfg.discount_rate if discount_rate is None else discount_rate
    if not 0 <= rate < 1:
        raise InputError("--discount-rate is a monthly rate in [0, 1), e.g. 0.01",
                         code="E_CLV_RATE")
    cut = cfg.churn_threshold if threshold is None else threshold
    purchase, spend = models_of(fit)
    end = data_end(engine)
    spec = SummarySpec(end, None, fit["period"], fit["time_unit"])
    say("summarizing purchases")
    df = _summary(engine, spec, settings.consent_mode)
    x, tx, big_t = (df[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    h = horizon_units(span, spec.time_unit)
    say(f"scoring {len(df):,} customers")
    p_alive = purchase.p_alive(x, tx, big_t)
    expected = purchase.expected_purchases(h, x, tx, big_t)
    if spend is not None and math.isfinite(spend.mean_value()):
        value = spend.expected_value(x, df.monetary.to_numpy(float))
    else:
        # no spend model: each customer's own mean, else the population's; as with the
        # spend model, nothing positive brought in means nothing forecast
        own = df.monetary.fillna(df.first_value).to_numpy(float)
        value = np.maximum(np.where(np.isfinite(own), own, np.nanmean(own)), 0.0)
    clv = discounted_clv(purchase, value, h, spec.time_unit, rate, x, tx, big_t)
    if not (np.isfinite(p_alive).all() and np.isfinite(expected).all()):
        raise ModelError("the model gives non-finite predictions for some customers; refit "
                         "with another --model or --time-unit", code="E_MODEL_FIT")
    out = pd.DataFrame({
        "customer_key": df.customer_key.astype(str),
        "frequency": df.frequency.astype("int64"), "recency": df.recency.astype(float),
        "T": df["T"].astype(float), "monetary": df.monetary.astype(float),
        "p_alive": p_alive, "churn_risk": p_alive < cut, "expected_purchases": expected,
        "expected_value": value, "clv": clv,
    })
    say("storing")
    with engine.transaction():
        table = ibis.memtable(out).mutate(
            model=ibis.literal(fit["model"]), horizon=ibis.literal(horizon_text),
            as_of=ibis.literal(end, type="timestamp('UTC')"),
            fit_id=ibis.literal(fit["fit_id"]))
        engine.replace_table(TABLE, table.select(*CLV.names).cast(CLV))
        engine.audit("clv.score", target=TABLE, rows=len(out),
                     detail={"fit_id": fit["fit_id"], "horizon": horizon_text})
    return {
        "fit_id": fit["fit_id"], "model": fit["model"], "as_of": end.isoformat(),
        "horizon": horizon_text, "discount_rate": rate, "churn_threshold": cut,
        "customers": len(out), "churn_risk_share": float(out.churn_risk.mean()),
        "spend_excluded": {"non_positive_average": non_positive_spenders(df)},
        "mean_p_alive": float(out.p_alive.mean()),
        "expected_purchases": float(out.expected_purchases.sum()),
        "total_clv": float(out.clv.sum()), "median_clv": float(out.clv.median()),
        "top_decile_share": _top_share(out.clv.to_numpy(float)),
    }


def _top_share(v: np.ndarray) -> float | None:
    total = v.sum()
    if total <= 0:
        return None
    k = max(1, len(v) // 10)
    return float(np.sort(v)[::-1][:k].sum() / total)


def validate_clv(ctx: RunContext, *, calibration_end: datetime | None = None,
                 models: list[str] | None = None,
                 progress: Progress | None = None) -> dict[str, Any]:
    """Fit each model on the calibration period and compare them on the holdout.

    The split is ``calibration_end``, else the newest fit's, else the automatic one.
    """
    say = progress or (lambda step: None)
    ws, engine = ctx.ws, ctx.engine
    cfg = ws.config.clv
    names = models or list(MODELS)
    for n in names:
        _model(n)
    fit: dict[str, Any] | None
    try:
        fit = last_fit(engine)
    except InputError:
        fit = None
    period = fit["period"] if fit else cfg.period
    unit = fit["time_unit"] if fit else cfg.time_unit
    end = data_end(engine)
    if calibration_end is None and fit is not None:
        calibration_end = datetime.fromisoformat(fit["holdout"]["calibration_end"])
    if calibration_end is None:
        calibration_end = _auto_calibration_end(engine, end, cfg.holdout_share)
    if calibration_end >= end:
        raise InputError(f"the calibration end must be before the newest event ({end.date()})",
                         code="E_CLV_PERIOD")
    spec = SummarySpec(calibration_end, end, period, unit)
    consent = ctx.settings.consent_mode
    say("summarizing purchases (calibration and holdout)")
    df = _summary(engine, spec, consent)
    repeats = engine.execute(repeat_by_period(engine, spec, consent))
    results, errors = [], {}
    for n in names:
        say(f"fitting {n}")
        m = _model(n)(random_state=ws.config.segment.random_state).fit(
            df.frequency, df.recency, df["T"])
        k = len(m.param_names)
        check = holdout_check(m, df, spec, repeats)
        errors[n] = np.abs(m.expected_purchases(check["length"], df.frequency.to_numpy(float),
                                                df.recency.to_numpy(float),
                                                df["T"].to_numpy(float))
                           - df.holdout_purchases.to_numpy(float))
        results.append({"model": n, "params": m.params_, "loglik": m.loglik_,
                        "aic": 2 * k - 2 * m.loglik_, "warnings": m.warnings_,
                        "holdout": check})
    lowest = min(results, key=lambda r: r["holdout"]["mae"])["model"]
    tied = [n for n in names if n != lowest and _same_error(errors[lowest], errors[n])]
    return {**spec.as_dict(), "customers": len(df), "repeat_buyers": int((df.frequency > 0).sum()),
            "models": results, "lowest_mae": lowest, "tied": tied,
            "best": None if tied else lowest,
            "stored_model": None if fit is None else fit["model"]}


def _same_error(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two models' per-customer absolute errors on the same holdout are not told
    apart: the mean of their paired differences is within its 95% interval of 0."""
    d = a - b
    if len(d) < 2:
        return True
    se = float(d.std(ddof=1)) / np.sqrt(len(d))
    return abs(float(d.mean())) <= 1.96 * se
