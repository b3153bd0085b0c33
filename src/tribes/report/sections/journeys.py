"""Journeys: the transition heatmap and a standard conversion funnel."""

from __future__ import annotations

from datetime import timedelta

import plotly.graph_objects as go

from tribes.report.context import ReportContext, empty, esc
from tribes.report.sections import section

FUNNEL = ["product_view", "add_to_cart", "begin_checkout", "purchase"]


@section(70, "journeys", "Journeys")
def journeys(ctx: ReportContext) -> str:
    from tribes.analysis.journeys import funnel, transitions

    e = ctx.engine
    if not e.has_table("identities") or not int(e.scalar(e.table("identities").count())):
        return empty("no identities yet; run tribes prep")
    mode = ctx.ws.config.privacy.consent_mode
    tr = transitions(e, consent_mode=mode)
    if not tr.counts:
        return empty("no events to follow")
    probs = tr.probabilities
    src = [s for s in tr.states if s in probs]
    dst = [s for s in tr.states if s != tr.states[0]]
    z = [[probs[s].get(d, 0.0) for d in dst] for s in src]
    heat = go.Figure(go.Heatmap(z=z, x=dst, y=src, colorscale="Blues", zmin=0, zmax=1,
                                hovertemplate="%{y} → %{x}: %{z:.1%}<extra></extra>"))
    heat.update_layout(title="Next-event probabilities within sessions",
                       yaxis={"autorange": "reversed"})
    html = ctx.figure(heat, 460)
    reach = tr.absorbing("purchase")
    if reach:
        best = sorted(reach.items(), key=lambda kv: -kv[1]["p_reach"])[:5]
        html += "<p>Chance to reach a purchase in the session from: " + "; ".join(
            f"{esc(s)} {v['p_reach']:.0%}" for s, v in best) + ".</p>"
    present = set(tr.states)
    steps = [s for s in FUNNEL if s in present]
    if len(steps) >= 2:
        f = funnel(e, steps, window=timedelta(days=1), consent_mode=mode)
        g = f["groups"][0]["steps"]
        fig = go.Figure(go.Funnel(y=[s["step"] for s in g], x=[s["count"] for s in g],
                                  textinfo="value+percent initial"))
        fig.update_layout(title="Funnel within 1 day of the first step (customers)")
        html += ctx.figure(fig, 320)
    from tribes.analysis.paths import sankey_figure, sankey_links, session_paths

    ps = session_paths(e, consent_mode=mode)
    if ps:
        html += ctx.figure(sankey_figure(sankey_links(ps)), 480)
    return html
