"""Cohorts: the retention heatmap."""

from __future__ import annotations

import plotly.graph_objects as go

from tribes.report.context import ReportContext, empty
from tribes.report.sections import section


@section(75, "cohorts", "Cohorts and retention")
def cohorts(ctx: ReportContext) -> str:
    from tribes.analysis.cohorts import retention

    e = ctx.engine
    if not e.has_table("identities") or not int(e.scalar(e.table("identities").count())):
        return empty("no identities yet; run tribes prep")
    res = retention(e, by="first_seen", period="month",
                    consent_mode=ctx.ws.config.privacy.consent_mode)
    if not res["cohorts"]:
        return empty("no cohorts yet")
    width = max(len(c["retention"]) for c in res["cohorts"])
    z = [[(c["retention"][k] if k < len(c["retention"]) else None) for k in range(width)]
         for c in res["cohorts"]]
    labels = [f"{c['cohort']} (n={c['size']:,})" for c in res["cohorts"]]
    fig = go.Figure(go.Heatmap(
        z=z, x=[f"+{k}" for k in range(width)], y=labels, colorscale="Greens", zmin=0,
        zmax=1, texttemplate="%{z:.0%}", hovertemplate="%{y}, month %{x}: %{z:.1%}"
        "<extra></extra>"))
    fig.update_layout(title="Share of each first-seen cohort active n months later",
                      yaxis={"autorange": "reversed"})
    return ctx.figure(fig, 120 + 40 * len(labels))
