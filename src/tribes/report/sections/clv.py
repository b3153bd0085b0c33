"""Customer lifetime value: the fitted models, their holdout check, P(alive) by frequency
and recency, and CLV by segment."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go

from tribes.errors import TribesError
from tribes.models import last_fit, models_of
from tribes.report.context import PALETTE, ReportContext, empty, esc, table
from tribes.report.sections import section
from tribes.report.sections.segments import active_run, names
from tribes.store import members

GRID = 40  # cells per axis of the P(alive) matrix


@section(65, "clv", "Lifetime value and churn risk")
def clv(ctx: ReportContext) -> str:
    try:
        fit = last_fit(ctx.engine)
    except TribesError:
        return empty("no CLV model yet; run tribes clv fit, then tribes clv score")
    return (_params(fit) + _tracking(ctx, fit["holdout"]) + _buckets(ctx, fit["holdout"])
            + _alive_matrix(ctx, fit) + _by_segment(ctx))


def _p(params: dict[str, float] | None, se: dict[str, Any] | None) -> str:
    if not params:
        return "–"
    se = se or {}
    return ", ".join(f"{k} = {v:.3g}" + (f" ± {se[k]:.2g}" if se.get(k) else "")
                     for k, v in params.items())


def _params(fit: dict[str, Any]) -> str:
    rows = [(fit["model"], _p(fit["params"], fit["se"]), round(fit["loglik"], 1),
             fit["n_customers"])]
    if fit.get("spend_params"):
        rows.append(("gamma_gamma (spend)", _p(fit["spend_params"], fit["spend_se"]),
                     round(fit["spend_loglik"], 1),
                     fit.get("spend_customers") or fit["repeat_buyers"]))
    note = (f"<p>Fitted on purchases up to {esc(fit['calibration_end'][:10])}; one "
            f"transaction per {esc(fit['period'])}, time in {esc(fit['time_unit'])}s. "
            "Standard errors from the Hessian.")
    ind = fit.get("independence") or {}
    if ind.get("pearson") is not None:
        note += (f" Frequency and average value correlate at {ind['pearson']:.2f} among "
                 "repeat buyers (the spend model assumes none).")
    left_out = (fit.get("spend_excluded") or {}).get("non_positive_average", 0)
    if left_out and fit.get("spend_params"):
        note += (f" {left_out:,} repeat buyers with a zero or negative average transaction "
                 "value (free or refunded orders) are left out of the spend model; their "
                 "expected value and CLV are 0.")
    warn = "".join(f"<p class='warn'>{esc(w)}</p>" for w in fit.get("warnings", []))
    return (table(["model", "parameters", "log-likelihood", "customers"], rows)
            + note + "</p>" + warn)


def _tracking(ctx: ReportContext, h: dict[str, Any]) -> str:
    c = h["cumulative"]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=c["date"], y=c["actual"], name="actual",
                             line={"color": PALETTE[0], "width": 2}))
    fig.add_trace(go.Scatter(x=c["date"], y=c["predicted"], name="predicted",
                             line={"color": PALETTE[1], "dash": "dash", "width": 2}))
    fig.add_vline(x=h["calibration_end"][:10], line={"color": "#888", "dash": "dot"})
    fig.update_layout(title="Cumulative repeat purchases: actual and predicted (the dotted "
                      "line ends the calibration period)", yaxis_title="repeat purchases")
    err = c["error_pct_at_end"]
    text = (f"<p>Holdout from {esc(h['calibration_end'][:10])} to "
            f"{esc(h['holdout_end'][:10])}: {h['actual']:,.0f} repeat purchases, "
            f"{h['predicted']:,.0f} predicted from each customer's history"
            + ("" if h["error_pct"] is None else f" ({h['error_pct']:+.1%})")
            + f"; cumulative to the end {c['actual_at_end']:,.0f} actual, "
            f"{c['predicted_at_end']:,.0f} predicted"
            + ("" if err is None else f" ({err:+.1%})") + ".</p>")
    return ctx.figure(fig, 360) + text


def _buckets(ctx: ReportContext, h: dict[str, Any]) -> str:
    b = h["by_frequency"]
    x = [r["frequency"] for r in b]
    fig = go.Figure([
        go.Bar(x=x, y=[r["actual"] for r in b], name="actual", marker_color=PALETTE[0]),
        go.Bar(x=x, y=[r["predicted"] for r in b], name="predicted",
               marker_color=PALETTE[1])])
    fig.update_layout(barmode="group", xaxis_title="repeat purchases in the calibration "
                      "period", yaxis_title="mean repeat purchases in the holdout",
                      title="Holdout purchases by purchases before it (conditional "
                      "expectations)")
    return ctx.figure(fig, 340)


def _alive_matrix(ctx: ReportContext, fit: dict[str, Any]) -> str:
    e = ctx.engine
    if not e.has_table("clv") or not int(e.scalar(e.table("clv").count())):
        return empty("no CLV scores yet; run tribes clv score")
    c = e.table("clv")
    stats = e.execute(c.aggregate(t=c["T"].max(), f=c.frequency.quantile(0.99)))
    big_t = float(stats.t.iloc[0])
    top = max(2, int(np.ceil(float(stats.f.iloc[0]))))
    model, _ = models_of(fit)
    freq = np.arange(0, top + 1)
    rec = np.linspace(0, big_t, GRID)
    fx, rx = np.meshgrid(freq, rec)
    rx = np.where(fx == 0, 0.0, rx)  # no repeat purchase: recency 0
    p = model.p_alive(fx.ravel(), rx.ravel(), np.full(fx.size, big_t)).reshape(fx.shape)
    fig = go.Figure(go.Heatmap(
        z=p, x=freq, y=rec, colorscale="RdYlGn", zmin=0, zmax=1,
        colorbar={"title": "P(alive)"},
        hovertemplate="repeat purchases %{x}<br>recency %{y:.1f}<br>P(alive) %{z:.2f}"
                      "<extra></extra>"))
    unit = fit["time_unit"]
    fig.update_layout(title=f"P(alive) of a customer observed {big_t:.0f} {unit}s, by repeat "
                      "purchases and the time of the last one",
                      xaxis_title="repeat purchases", yaxis_title=f"recency ({unit}s)")
    return ctx.figure(fig, 400)


def _by_segment(ctx: ReportContext) -> str:
    e = ctx.engine
    if not e.has_table("clv") or not int(e.scalar(e.table("clv").count())):
        return ""
    run = active_run(ctx)
    c = e.table("clv")
    summary = e.execute(c.aggregate(n=c.count(), total=c.clv.sum(),
                                    risk=c.churn_risk.cast("float64").mean(),
                                    horizon=c.horizon.max()))
    s = summary.iloc[0]
    text = (f"<p>{int(s.n):,} purchasers scored over {esc(s.horizon)}: total CLV "
            f"{float(s.total):,.0f}; {float(s.risk):.0%} with P(alive) below the churn "
            "threshold. The personas show churn risk from the model that ranks churners "
            "best on a holdout (tribes clv churn).</p>")
    if run is None:
        return text
    a = members(e, run["version"])
    j = c.join(a, c.customer_key == a.a_key)
    df = e.execute(j.group_by("segment_id").aggregate(
        n=j.count(), q1=j.clv.quantile(0.25), med=j.clv.median(), q3=j.clv.quantile(0.75),
        lo=j.clv.quantile(0.05), hi=j.clv.quantile(0.95), mean=j.clv.mean(),
        total=j.clv.sum(), risk=j.churn_risk.cast("float64").mean(),
        alive=j.p_alive.mean()).order_by("segment_id"))
    label = names(ctx, run)
    fig = go.Figure()
    for i, r in enumerate(df.itertuples()):
        name = label.get(int(r.segment_id), f"Segment {r.segment_id}")
        fig.add_trace(go.Box(name=name, x=[name], q1=[r.q1], median=[r.med], q3=[r.q3],
                             lowerfence=[r.lo], upperfence=[r.hi], mean=[r.mean],
                             marker_color=PALETTE[i % len(PALETTE)], showlegend=False))
    fig.update_layout(title="CLV per purchaser by segment (box: quartiles; whiskers: 5th "
                      "and 95th percentiles)", yaxis_title="CLV")
    total = float(df.total.sum()) or 1.0
    rows = [(label.get(int(r.segment_id), f"Segment {r.segment_id}"), int(r.n),
             round(float(r.mean), 2), f"{float(r.total) / total:.0%}", f"{float(r.risk):.0%}",
             round(float(r.alive), 2)) for r in df.itertuples()]
    return (text + ctx.figure(fig, 380)
            + table(["segment", "purchasers", "mean CLV", "share of CLV",
                     "P(alive) < threshold", "mean P(alive)"], rows))
