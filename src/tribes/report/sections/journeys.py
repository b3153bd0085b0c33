"""Journeys: the transition heatmap and network, a standard funnel, and session flows."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import plotly.graph_objects as go

from tribes.analysis import funnel, path_heads, sankey_figure, sankey_from_heads, transitions
from tribes.report.context import ReportContext, empty, esc
from tribes.report.sections import section

FUNNEL = ["product_view", "add_to_cart", "begin_checkout", "purchase"]


@section(70, "journeys", "Journeys")
def journeys(ctx: ReportContext) -> str:
    e = ctx.engine
    if not e.has_table("identities") or not int(e.scalar(e.table("identities").count())):
        return empty("no identities yet; run tribes prep")
    mode = ctx.settings.consent_mode
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
    html += ctx.figure(network_figure(tr.states, tr.counts), 520)
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

    heads = path_heads(e, consent_mode=mode)
    if heads:
        html += ctx.figure(sankey_figure(sankey_from_heads(heads)), 480)
    return html


def network_figure(states: list[str], counts: dict[str, dict[str, int]],
                   min_p: float = 0.08) -> go.Figure:
    """The transition graph: one node per state (area ~ how often it is entered), an arrow
    for each transition with probability >= ``min_p`` (width ~ probability); start on the
    left, end on the right, the other states in columns by how many steps they are from
    the start."""
    start, end = states[0], states[-1]
    entered = {st: 0 for st in states}
    for row in counts.values():
        for dst, n in row.items():
            entered[dst] = entered.get(dst, 0) + n
    entered[start] = sum(counts.get(start, {}).values())
    pos = _layers(states, counts, entered, min_p)
    fig = go.Figure()
    top = max(entered.values()) or 1
    for src, row in counts.items():
        total = sum(row.values())
        for dst, n in row.items():
            p = n / total if total else 0.0
            if p < min_p or src == dst:
                continue
            (x0, y0), (x1, y1) = pos[src], pos[dst]
            # stop short of the target node, and bend apart the two directions of a pair
            dx, dy = x1 - x0, y1 - y0
            length = float(np.hypot(dx, dy)) or 1.0
            off = 0.04 * np.array([-dy, dx]) / length
            fig.add_annotation(x=x1 - 0.09 * dx / length + off[0],
                               y=y1 - 0.09 * dy / length + off[1],
                               ax=x0 + off[0], ay=y0 + off[1], xref="x", yref="y",
                               axref="x", ayref="y", showarrow=True, arrowhead=2,
                               arrowsize=0.8, arrowwidth=0.5 + 6 * p,
                               arrowcolor=f"rgba(76,120,168,{0.25 + 0.6 * p:.2f})",
                               hovertext=f"{src} → {dst}: {p:.0%}", text="")
    stay = {st: counts.get(st, {}).get(st, 0) / max(sum(counts.get(st, {}).values()), 1)
            for st in states}
    fig.add_trace(go.Scatter(
        x=[pos[st][0] for st in states], y=[pos[st][1] for st in states],
        mode="markers+text", text=states, textposition="top center",
        marker={"size": [12 + 38 * np.sqrt(entered[st] / top) for st in states],
                "color": ["#54A24B" if st == "purchase" else "#F58518"
                          if st in (start, end) else "#4C78A8" for st in states],
                "line": {"color": "white", "width": 1}},
        customdata=[[entered[st], stay[st]] for st in states],
        hovertemplate="%{text}<br>entered %{customdata[0]:,} times<br>"
                      "repeats itself %{customdata[1]:.0%}<extra></extra>",
        showlegend=False))
    fig.update_layout(title=f"Transition network (arrows: probability ≥ {min_p:.0%}; "
                      "width ~ probability; node area ~ visits)",
                      xaxis={"visible": False, "range": [-1.6, 1.6]},
                      yaxis={"visible": False, "range": [-1.3, 1.3]})
    return fig


def _layers(states: list[str], counts: dict[str, dict[str, int]], entered: dict[str, int],
            min_p: float) -> dict[str, tuple[float, float]]:
    """Node positions: start at the far left, end at the far right, every other state in
    the column of its fewest steps from the start (over the drawn arrows), the most
    visited in the middle of its column."""
    start, end = states[0], states[-1]
    edges: dict[str, list[str]] = {}
    for src, row in counts.items():
        total = sum(row.values()) or 1
        edges[src] = [d for d, n in row.items() if n / total >= min_p and d != src]
    depth = {start: 0}
    frontier = [start]
    while frontier:
        nxt = []
        for st in frontier:
            for d in edges.get(st, []):
                if d not in depth and d != end:
                    depth[d] = depth[st] + 1
                    nxt.append(d)
        frontier = nxt
    middle = [st for st in states[1:-1]]
    deepest = max([depth.get(st, 1) for st in middle] or [1])
    for st in middle:
        depth.setdefault(st, deepest)  # reached only through faint arrows
    pos = {start: (-1.35, 0.0), end: (1.35, 0.0)}
    cols = sorted({depth[st] for st in middle})
    for c_i, c in enumerate(cols):
        col = sorted((st for st in middle if depth[st] == c), key=lambda st: -entered[st])
        # the busiest in the middle, then alternating above and below
        order = sorted(range(len(col)), key=lambda i: (i + 1) // 2 * (1 if i % 2 else -1))
        x = -0.9 + 1.8 * c_i / max(len(cols) - 1, 1)
        for slot, i in enumerate(order):
            y = 0.0 if len(col) == 1 else 1.0 - 2.0 * slot / (len(col) - 1)
            pos[col[i]] = (x, y)
    return pos
