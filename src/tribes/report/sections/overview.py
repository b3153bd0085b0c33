"""Overview: data volume, date range, data quality, identity stitching."""

from __future__ import annotations

import plotly.graph_objects as go

from tribes.ingest import REASONS
from tribes.report.context import ReportContext, empty, esc, fmt, table
from tribes.report.sections import section
from tribes.store import workspace_status


@section(10, "overview", "Data and quality")
def overview(ctx: ReportContext) -> str:
    st = ctx.once("status", lambda: workspace_status(ctx.engine))
    ev = st["events"]
    if not ev:
        return empty("no events yet; ingest some with tribes ingest <files> --source web")
    t = st["ingest_totals"]
    tiles = [("events", st["tables"].get("events", 0)),
             ("known customer ids", ev["known_customers"]),
             ("first event", str(ev["first_event"])[:10]),
             ("last event", str(ev["last_event"])[:10]),
             ("rows read", t["rows_read"]), ("duplicates", t["duplicates"]),
             ("quarantined (open)", t["quarantined"])]
    if t.get("replayed") or t.get("dropped"):
        tiles.append(("quarantine resolved", t["replayed"] + t["dropped"]))
    html = "<div class='tiles'>" + "".join(
        f"<div class='tile'><div class='v'>{esc(fmt(v))}</div><div class='k'>{esc(k)}</div>"
        "</div>" for k, v in tiles) + "</div>"
    src = ev["by_source"]
    fig = go.Figure(go.Bar(x=list(src), y=list(src.values()), marker_color="#4C78A8"))
    fig.update_layout(title="Events by source")
    html += "<div class='grid2'><div>" + ctx.figure(fig, 300) + "</div><div>"
    if st["quarantine"]:
        html += "<h3>Quarantined rows by reason (open)</h3>" + table(
            ["reason", "rows", "meaning"],
            [(r, n, REASONS.get(r, "")) for r, n in st["quarantine"].items()])
    else:
        html += "<p>No quarantined row is open.</p>"
    done = st.get("quarantine_resolved") or {}
    if any(done.values()):
        html += (f"<p>{fmt(done['replayed'])} quarantined rows were replayed (loaded again) "
                 f"and {fmt(done['dropped'])} dropped.</p>")
    html += "</div></div>"
    prep = st["stages"].get("prep")
    if prep:
        s = prep["report"]["stitching"]
        html += "<h3>Identity stitching</h3>" + table(
            ["ids", "known ids", "joined to a customer", "ambiguous", "shared devices",
             "customers", "anonymous customers", "sessions"],
            [(s["ids"], s["known_ids"], s["linked_ids"], s["ambiguous_ids"], s["shared_ids"],
              s["customers"], s["anonymous_customers"], prep["report"]["sessions"])])
        if s.get("rules"):
            html += (f"<p>{fmt(s['rules'])} identity rules in force (tribes identity): "
                     f"{fmt(s.get('merged_ids', 0))} ids merged into another customer, "
                     f"{fmt(s.get('split_ids', 0))} split off, "
                     f"{fmt(s.get('blocked_ids', 0))} blocked.</p>")
    return html
