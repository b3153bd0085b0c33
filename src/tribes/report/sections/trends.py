"""Trends: daily revenue with its trend, forecast and anomalous days."""

from __future__ import annotations

import plotly.graph_objects as go

from tribes.report.context import ReportContext, empty, esc, table
from tribes.report.sections import section


@section(78, "trends", "Trends, forecast and anomalies")
def trends(ctx: ReportContext) -> str:
    from tribes.analysis.trends import trends as compute

    e = ctx.engine
    if not int(e.scalar(e.table("events").count())):
        return empty("no events yet")
    res = compute(e, "revenue", consent_mode=ctx.ws.config.privacy.consent_mode)
    if not res["groups"]:
        return empty("no purchases yet")
    g = res["groups"][0]
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
    text = (f"<p>Forecast model: {esc(f['model'])} (lower AIC of exponential smoothing and "
            "SARIMA)" + (f"; error on the last {bt['holdout_days']} days held out: MAPE "
                         f"{bt['mape']:.1%}" if bt.get("mape") is not None else "")
            + ". Anomalous days: robust residual z-score above 5.</p>")
    rows = [(a["day"], round(a["value"], 2), round(a["expected"], 2), round(a["z"], 1))
            for a in g["anomalies"][:10]]
    return (ctx.figure(fig, 380) + text
            + (table(["day", "revenue", "expected", "z"], rows) if rows else ""))
