"""Persona cards."""

from __future__ import annotations

from tribes.features import short_label
from tribes.models import stored_personas
from tribes.report.context import ReportContext, empty, esc
from tribes.report.sections import section
from tribes.store import active_version


@section(50, "personas", "Personas")
def personas(ctx: ReportContext) -> str:
    v = active_version(ctx.engine)
    if v is None:
        return empty("no segmentation yet; run tribes segment")
    ps = ctx.once("personas", lambda: stored_personas(ctx.engine, v))
    if not ps:
        return empty(f"no personas of version {v} yet; run tribes personas (or tribes run)")
    cards = []
    for p in ps:
        top = sorted(p["features"].items(), key=lambda kv: -abs(kv[1]["lift"]))[:4]
        traits = "".join(f"<li>{esc(short_label(f))}: median {esc(_n(s['median']))} "
                         f"({s['lift']:+.1f} sd)</li>" for f, s in top)
        lists = ""
        for title, key, field in (("Categories", "top_categories", "value"),
                                  ("Channels", "top_channels", "value"),
                                  ("Devices", "top_devices", "value"),
                                  ("Journeys", "top_journeys", "path")):
            if p[key]:
                lists += f"<p><b>{title}:</b> " + "; ".join(
                    f"{esc(x[field])} ({x['share']:.0%})" for x in p[key]) + "</p>"
        for attr, vals in (p.get("attributes") or {}).items():
            lists += f"<p><b>{esc(attr.replace('_', ' '))}:</b> " + "; ".join(
                f"{esc(x['value'])} ({x['share']:.0%})" for x in vals) + "</p>"
        c = p.get("clv")
        if c:
            lists += (f"<p><b>Value:</b> CLV {c['clv_mean']:,.0f} per purchaser over "
                      f"{esc(c['horizon'])} ({c['clv_share'] or 0:.0%} of all)</p>")
        r = p.get("churn")
        if r:
            risk = (f"{r['share']:.0%} of {r['scored']:,} scored at churn risk: "
                    f"{r['model']}" if r.get("share") is not None else
                    f"churn risk {r.get('withheld') or 'not shown'}")
            lists += f"<p><b>Churn:</b> {esc(risk)}</p>"
        cards.append(
            f"<div class='card'><h3>{esc(p['name'])}</h3>"
            f"<div class='meta'>segment {p['segment_id']} · {p['size']:,} customers · "
            f"{p['share']:.1%}</div><p>{esc(p['description'])}</p><ul>{traits}</ul>{lists}"
            f"<p class='action'><b>{esc(p['campaign'])}:</b> {esc(p['action'])}</p></div>")
    return "<div class='cards'>" + "".join(cards) + "</div>"


def _n(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}"
