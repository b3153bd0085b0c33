"""Trends: daily revenue with its trend, forecast and anomalous days; weekly revenue and
active customers per segment."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tribes.analysis import daily_series, incomplete_periods
from tribes.analysis import trends as compute
from tribes.report.context import PALETTE, ReportContext, empty, esc, table
from tribes.report.sections import section
from tribes.report.sections.segments import active_run, names


@section(78, "trends", "Trends, forecast and anomalies")
def trends(ctx: ReportContext) -> str:
    e = ctx.engine
    if not int(e.scalar(e.table("events").count())):
        return empty("no events yet")
    res = compute(e, "revenue", consent_mode=ctx.settings.consent_mode)
    if not res["groups"]:
        return empty("no purchases yet")
    return daily(ctx, res["groups"][0]) + per_segment(ctx)


def daily(ctx: ReportContext, g: dict[str, Any]) -> str:
    """The daily revenue series with its trend, forecast and anomalous days."""
    if "trend" not in g:
        return empty(g.get("note", "too few days"))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=g["days"], y=g["values"], name="revenue per day",
                             line={"color": "#4C78A8", "width": 1}))
    fig.add_trace(go.Scatter(x=g["days"], y=g["trend"], name="trend (STL)",
                             line={"color": "#F58518", "width": 2}))
    f = g["forecast"]
    fig.add_trace(go.Scatter(x=f["days"] + f["days"][::-1], y=f["upper"] + f["lower"][::-1],
                             fill="toself", fillcolor="rgba(84,162,75,0.2)",
                             line={"width": 0}, name="95% interval", hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=f["days"], y=f["mean"], name=f"forecast ({f['model']})",
                             line={"color": "#54A24B", "dash": "dash"}))
    if g["anomalies"]:
        fig.add_trace(go.Scatter(x=[a["day"] for a in g["anomalies"]],
                                 y=[a["value"] for a in g["anomalies"]], mode="markers",
                                 name="anomalous day",
                                 marker={"color": "#E45756", "size": 9, "symbol": "x"}))
    fig.update_layout(title="Revenue per day")
    bt = f.get("backtest") or {}
    if f.get("fitted_model"):  # the fitted model lost to the naive forecast
        text = ("<p>Forecast: seasonal naive (each day as the same weekday a week before). "
                "Anomalous days: robust residual z-score above 5.</p>"
                f"<p class='warn'>{esc(f['note'])}.</p>")
    else:
        text = (f"<p>Forecast model: {esc(f['model'])} (lower AIC of exponential smoothing "
                "and SARIMA; it beats a seasonal naive forecast on the days held out)"
                + (f"; error on the last {bt['holdout_days']} days held out: MAPE "
                   f"{bt['mape']:.1%}" if bt.get("mape") is not None else "")
                + ". Anomalous days: robust residual z-score above 5.</p>")
    rows = [(a["day"], round(a["value"], 2), round(a["expected"], 2), round(a["z"], 1))
            for a in g["anomalies"][:10]]
    return (ctx.figure(fig, 380) + text + decomposition(ctx, g)
            + (table(["day", "revenue", "expected", "z"], rows) if rows else ""))


def decomposition(ctx: ReportContext, g: dict[str, Any]) -> str:
    """The seasonal and residual parts of the STL decomposition (the trend is drawn with
    the series above)."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12,
                        subplot_titles=[
                            "weekly pattern (seasonal part)" if g.get("season") else
                            "no weekly pattern (fewer than two full seasons)",
                            "residual (what trend and season leave)"])
    fig.add_trace(go.Scatter(x=g["days"], y=g["seasonal"], name="seasonal",
                             line={"color": "#72B7B2", "width": 1}), row=1, col=1)
    fig.add_trace(go.Bar(x=g["days"], y=g["resid"], name="residual",
                         marker_color="#BAB0AC"), row=2, col=1)
    if g["anomalies"]:
        idx = {d: i for i, d in enumerate(g["days"])}
        fig.add_trace(go.Scatter(
            x=[a["day"] for a in g["anomalies"]],
            y=[g["resid"][idx[a["day"]]] for a in g["anomalies"]], mode="markers",
            name="anomalous day", marker={"color": "#E45756", "size": 8, "symbol": "x"}),
            row=2, col=1)
    fig.update_layout(title="Revenue decomposition (STL)", showlegend=False)
    return ctx.figure(fig, 420)


def per_segment(ctx: ReportContext) -> str:
    """Weekly revenue and active customers of each segment of the active version."""
    run = active_run(ctx)
    if run is None:
        return ""
    e, mode = ctx.engine, ctx.settings.consent_mode
    label = names(ctx, run)
    skip = incomplete_periods(e, "week")
    fig = make_subplots(rows=1, cols=2, subplot_titles=["revenue per week",
                                                        "active customers per week"])
    for col, metric in enumerate(("revenue", "active_customers"), start=1):
        df = daily_series(e, metric, by="segment", freq="week", consent_mode=mode)
        df = df[~df.day.isin(skip)]
        for i, (g, part) in enumerate(df.groupby("group", sort=True)):
            sid = int(str(g))
            fig.add_trace(go.Scatter(
                x=part.day, y=part.value, mode="lines", name=label.get(sid, f"Segment {sid}"),
                legendgroup=str(sid), showlegend=col == 1,
                line={"color": PALETTE[i % len(PALETTE)], "width": 2}), row=1, col=col)
    fig.update_layout(title=f"Segments over time (version {run['version']}; full weeks, "
                      "Monday to Sunday)", margin={"t": 90})
    return (ctx.figure(fig, 400) + "<p>Per segment, with forecasts: <code>"
            + esc("tribes trends --metric revenue --by segment") + "</code>.</p>")
