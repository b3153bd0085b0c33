"""Cohorts: the retention heatmap, and the stored behavioral cohorts."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from tribes.analysis import profile, retention
from tribes.report.context import ReportContext, empty, esc, table
from tribes.report.sections import section
from tribes.store import list_cohorts


@section(75, "cohorts", "Cohorts and retention")
def cohorts(ctx: ReportContext) -> str:
    e = ctx.engine
    if not e.has_table("identities") or not int(e.scalar(e.table("identities").count())):
        return empty("no identities yet; run tribes prep")
    res = retention(e, by="first_seen", period="month",
                    consent_mode=ctx.settings.consent_mode)
    if not res["cohorts"]:
        return empty("no cohorts yet")
    width = max(len(c["retention"]) for c in res["cohorts"])
    z = [[(c["retention"][k] if k < len(c["retention"]) else None) for k in range(width)]
         for c in res["cohorts"]]
    labels = [f"{c['cohort']} (n={c['size']:,})" for c in res["cohorts"]]

    def at(values: list[Any], k: int) -> Any:
        return values[k] if k < len(values) and values[k] is not None else 0

    extra = [[[at(c["counts"], k), at(c["revenue"], k)] for k in range(width)]
             for c in res["cohorts"]]
    fig = go.Figure(go.Heatmap(
        z=z, x=[f"+{k}" for k in range(width)], y=labels, colorscale="Greens", zmin=0,
        zmax=1, texttemplate="%{z:.0%}", customdata=extra,
        hovertemplate="%{y}, month %{x}: %{z:.1%} active (%{customdata[0]:,} customers), "
        "revenue %{customdata[1]:,.0f}<extra></extra>"))
    fig.update_layout(title="Share of each first-seen cohort active n months later",
                      yaxis={"autorange": "reversed"})
    return ctx.figure(fig, 120 + 40 * len(labels)) + behavioral(ctx)


def behavioral(ctx: ReportContext) -> str:
    """The stored behavioral cohorts: rule, size and what sets their members apart."""
    stored = list_cohorts(ctx.engine)
    if not stored:
        return ("<p>No behavioral cohorts yet. Define one with <code>"
                + esc('tribes cohorts define fast_buyers --rule "first purchase within 7 '
                      'days of first event"') + "</code>.</p>")
    rows = []
    for c in stored:
        p = profile(ctx.engine, c["name"])
        lifted = [f for f in p["features"] if f["lift"] not in (None, 0)]
        top = sorted(lifted, key=lambda f: -abs(_log(f["lift"])))[:3]
        rows.append((c["name"], c["rule"], c["n_customers"],
                     None if p["share"] is None else f"{p['share']:.1%}",
                     "; ".join(f"{f['feature']} {f['lift']:.2f}x" for f in top)))
    return ("<h3>Behavioral cohorts</h3>" + table(
        ["cohort", "rule", "members", "share", "medians vs all customers"], rows)
        + "<p>Use a cohort as a filter: <code>" + esc("--cohort NAME") + "</code> in "
        "journeys, trends and cohorts retention.</p>")


def _log(v: float) -> float:
    import math

    return math.log(v) if v > 0 else 0.0
