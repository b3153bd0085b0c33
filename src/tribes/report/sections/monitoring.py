"""Monitoring: drift against the active version, control charts of weekly segment KPIs,
open alerts and the history of tribes run."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tribes.errors import TribesError
from tribes.monitor import list_alerts, run_monitor
from tribes.ops import history
from tribes.report.context import PALETTE, ReportContext, empty, esc, table
from tribes.report.sections import section

MAX_CHARTS = 8


@section(95, "monitoring", "Monitoring")
def monitoring(ctx: ReportContext) -> str:
    parts = [_alerts(ctx)]
    try:
        # computed now, recorded nowhere: the report raises no alert
        rep = run_monitor(ctx.run, record=False)
    except TribesError as exc:
        parts.append(empty(exc.message))
        rep = None
    if rep is not None:
        parts.append(_drift(ctx, rep))
        parts.append(_charts(ctx, rep))
    parts.append(_runs(ctx))
    return "".join(parts)


def _alerts(ctx: ReportContext) -> str:
    rows = list_alerts(ctx.engine, status="open", limit=50)
    if not rows:
        return "<h3>Open alerts</h3><p>None: no check found a breach that is still open.</p>"
    return "<h3>Open alerts</h3>" + table(
        ["#", "since (UTC)", "severity", "kind", "subject", "what"],
        [(a["alert_id"], str(a["created_at"])[:16].replace("T", " "), a["severity"],
          a["kind"], a["subject"], a["message"]) for a in rows])


def _drift(ctx: ReportContext, rep: Any) -> str:
    cfg = ctx.ws.config.monitor
    out = [f"<h3>Drift against version {rep.version}</h3><p>Today's customers (features "
           f"as of {esc(rep.as_of or '?')}) against the customers version {rep.version} "
           f"was fitted on (as of {esc(rep.reference_as_of or '?')}). PSI ≥ "
           f"{cfg.psi_warning:g} is a moderate shift, ≥ {cfg.psi_critical:g} a major one."
           "</p>"]
    for note in rep.notes:
        out.append(f"<p class='warn'>{esc(note)}</p>")
    if rep.time_adjusted:
        out.append(f"<p>The as-of moved {rep.as_of_moved_days:+.4g} days since the "
                   "reference, so the features counting days to it are compared like with "
                   "like:</p><ul>" + "".join(
                       f"<li>{esc(a['feature'])} {esc(a['treatment'])}: {esc(a['reason'])}"
                       "</li>" for a in rep.time_adjusted) + "</ul>")
    figs = []
    if rep.features:
        names = [f.feature for f in rep.features]
        fig = go.Figure(go.Bar(x=names, y=[f.psi for f in rep.features],
                               marker_color=[PALETTE[3] if f.psi >= cfg.psi_critical else
                                             PALETTE[1] if f.psi >= cfg.psi_warning else
                                             PALETTE[0] for f in rep.features],
                               name="PSI"))
        for y, dash in ((cfg.psi_warning, "dot"), (cfg.psi_critical, "dash")):
            fig.add_hline(y=y, line_dash=dash, line_color="#888")
        fig.update_layout(title="PSI per feature", yaxis_title="PSI", showlegend=False)
        figs.append(ctx.figure(fig, height=320))
    if rep.shares is not None:
        segs = rep.shares.segments
        labels = [s["name"] for s in segs]
        fig = go.Figure([go.Bar(x=labels, y=[100 * s["share_ref"] for s in segs],
                                name=f"version {rep.version} built", marker_color=PALETTE[9]),
                         go.Bar(x=labels, y=[100 * s["share_now"] for s in segs],
                                name="today", marker_color=PALETTE[0])])
        fig.update_layout(title=f"Segment shares (chi-square p = {rep.shares.p_value:.2g})",
                          yaxis_title="% of customers", barmode="group")
        figs.append(ctx.figure(fig, height=320))
    if figs:
        out.append(f"<div class='grid2'>{''.join(figs)}</div>")
    return "".join(out)


def _charts(ctx: ReportContext, rep: Any) -> str:
    charts = [c for c in rep.charts if c.center is not None]
    cfg = ctx.ws.config.monitor
    head = ("<h3>Control charts of weekly segment KPIs</h3><p>Shewhart individuals charts: "
            "the centre line and the control limits come from the baseline weeks, set so "
            f"that a week of a stable KPI falls outside them {cfg.spc_false_alarm:.2%} of "
            f"the time. Weeks outside them in the last {cfg.spc_recent_weeks} weeks are "
            "marked.</p>")
    if not charts:
        notes = sorted({c.note for c in rep.charts if c.note})
        return head + empty("; ".join(notes) or "no weekly KPIs yet")
    # the series with signals first, then the segment sizes
    picked = sorted(charts, key=lambda c: (not c.signals, c.kpi != "size", c.segment_id))
    picked = picked[:MAX_CHARTS]
    cols = 2
    rows = (len(picked) + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[
        f"segment {c.segment_id}: {c.kpi}" + (" ⚠" if c.signals else "") for c in picked],
        vertical_spacing=0.12 if rows > 1 else 0.2)
    for n, c in enumerate(picked):
        r, col = n // cols + 1, n % cols + 1
        x, y = c.weeks, c.values
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=c.kpi,
                                 line_color=PALETTE[0], showlegend=False), row=r, col=col)
        for level, dash in ((c.center, "solid"), (c.upper, "dash"), (c.lower, "dash")):
            fig.add_trace(go.Scatter(x=[x[0], x[-1]], y=[level, level], mode="lines",
                                     line={"color": "#888", "dash": dash, "width": 1},
                                     showlegend=False, hoverinfo="skip"), row=r, col=col)
        if c.signals:
            fig.add_trace(go.Scatter(
                x=[s["week"] for s in c.signals], y=[s["value"] for s in c.signals],
                mode="markers", marker={"color": PALETTE[3], "size": 11, "symbol": "x"},
                text=[s["rule"] for s in c.signals], showlegend=False), row=r, col=col)
    return head + ctx.figure(fig, height=260 * rows)


def _runs(ctx: ReportContext) -> str:
    runs = history(ctx.engine, limit=20)
    if not runs:
        return ("<h3>Pipeline runs</h3><p>No tribes run yet (it keeps segments current: "
                "tribes run, or tribes schedule).</p>")
    return "<h3>Pipeline runs</h3>" + table(
        ["started (UTC)", "new version", "decision", "ARI with the active", "alerts",
         "seconds", "why"],
        [(str(r["started_at"])[:16], r.get("version"), r.get("decision") or "–",
          r.get("ari"), r.get("alerts", 0), r.get("seconds"), r.get("reason") or "")
         for r in runs])
