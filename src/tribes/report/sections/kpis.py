"""KPIs by segment with significance tests."""

from __future__ import annotations

import plotly.graph_objects as go

from tribes.models import RETENTION_DAYS, validate_segments
from tribes.report.context import PALETTE, ReportContext, empty, esc, table
from tribes.report.sections import section
from tribes.store import active_version


@section(60, "kpis", "Business KPIs by segment")
def kpis(ctx: ReportContext) -> str:
    if active_version(ctx.engine) is None:
        return empty("no segmentation yet; run tribes segment")
    res = validate_segments(ctx.engine, churn_days=ctx.ws.config.clv.churn_days)
    names = {p["segment_id"]: p["name"] for p in ctx.cache.get("personas_built", [])}

    def pct(v: float | None) -> str:
        return "–" if v is None else f"{v:.1%}"

    rows = [(f"{r['segment_id']} {names.get(r['segment_id'], '')}", r["customers"],
             pct(r["conversion_rate"]), _money(r["aov"]), pct(r["revenue_share"]),
             pct(r["repeat_purchase_rate"]),
             *[pct(r[f"retention_{d}d"]) for d in RETENTION_DAYS], pct(r["churn_rate"]),
             _one(r["engagement_score"])) for r in res["segments"]]
    html = table(["segment", "customers", "conversion", "AOV", "revenue share", "repeat",
                  *[f"retained {d}d" for d in RETENTION_DAYS],
                  f"churn (>{res['churn_days']}d)", "engagement"], rows)
    html += "<h3>Do the segments differ?</h3>" + table(
        ["KPI", "test", "verdict"], [(k, t["test"], t["verdict"])
                                     for k, t in res["tests"].items()])
    if res["warning"]:
        html += f"<div class='warn'>{esc(res['warning'])}</div>"
    segs = res["segments"]
    fig = go.Figure(go.Bar(
        x=[f"{r['segment_id']} {names.get(r['segment_id'], '')}" for r in segs],
        y=[r["revenue_share"] for r in segs],
        marker_color=[PALETTE[i % len(PALETTE)] for i in range(len(segs))]))
    fig.update_layout(title="Share of revenue", yaxis_tickformat=".0%")
    return html + ctx.figure(fig, 320)


def _money(v: float | None) -> str:
    return "–" if v is None else f"{v:,.2f}"


def _one(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}"
