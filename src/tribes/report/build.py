"""Assemble the report: every registered section, Plotly embedded once, no network."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tribes import __version__
from tribes.report.context import ReportContext, esc
from tribes.report.sections import all_sections
from tribes.stats import single_threaded
from tribes.workspace import RunContext

log = logging.getLogger(__name__)

CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:0;color:#222;
background:#f6f7f9}
header{background:#1f2d3d;color:#fff;padding:18px 32px}header h1{margin:0;font-size:22px}
header .sub{opacity:.8;font-size:13px;margin-top:4px}
nav{background:#fff;border-bottom:1px solid #ddd;padding:8px 32px;position:sticky;top:0;
z-index:10}nav a{margin-right:16px;color:#1f2d3d;text-decoration:none;font-size:14px}
main{max-width:1280px;margin:0 auto;padding:8px 32px 48px}
section{background:#fff;border:1px solid #e3e5e8;border-radius:8px;padding:16px 20px;
margin:18px 0;scroll-margin-top:64px}section h2{margin-top:0;font-size:18px}h3{font-size:15px}
table{border-collapse:collapse;font-size:13px;margin:8px 0;width:100%}
th,td{border-bottom:1px solid #eee;padding:4px 8px;text-align:left}td.num{text-align:right}
th{background:#fafbfc}
.tiles{display:flex;flex-wrap:wrap;gap:12px}.tile{background:#f3f6fa;border-radius:6px;
padding:10px 14px;min-width:120px}.tile .v{font-size:20px;font-weight:600}
.tile .k{font-size:12px;color:#666}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:16px}
@media (max-width:900px){.grid2{grid-template-columns:1fr}}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:14px}
.card{border:1px solid #e3e5e8;border-radius:8px;padding:12px 14px;font-size:13px}
.card h3{margin:0 0 2px}.card .meta{color:#666;font-size:12px;margin-bottom:6px}
.card .action{background:#f3f8f1;padding:6px 8px;border-radius:4px}
.empty{background:#fff8e6;border:1px dashed #e0b84d;padding:14px;border-radius:6px}
.warn{background:#fdecea;padding:8px;border-radius:4px;margin-top:8px}
.error{background:#fdecea;padding:8px;border-radius:4px;font-family:monospace;font-size:12px}
footer{color:#888;font-size:12px;text-align:center;padding:16px}
"""


def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def build_report(run: RunContext, out: Path,
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write the report to ``out``; returns sections, figure count and size. The run's
    settings give the consent mode of the journeys, trends and cohorts."""
    say = progress or (lambda s: None)
    ctx = ReportContext(ws=run.ws, engine=run.engine, settings=run.settings)
    parts, nav, done = [], [], []
    # the sections fit small models (t-SNE, Isolation Forest, exponential smoothing): the
    # native thread pools made them 3-5x slower on a busy 2-core machine. Their modules
    # are imported first: only the pools of libraries already loaded can be limited
    sections = all_sections()
    with single_threaded():
        for sec in sections:
            say(sec.title)
            try:
                body = sec.render(ctx)
            except Exception as exc:  # one broken section must not lose the whole report
                log.error("report section %s failed: %s", sec.anchor, exc)
                log.debug("%s", traceback.format_exc())
                body = f"<div class='error'>This section failed: {esc(exc)}</div>"
            parts.append(f"<section id='{sec.anchor}'><h2>{esc(sec.title)}</h2>{body}"
                         "</section>")
            nav.append(f"<a href='#{sec.anchor}'>{esc(sec.title)}</a>")
            done.append(sec.anchor)
    now = datetime.now(UTC)
    doc = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>tribes report: {esc(run.ws.path.name)}</title><style>{CSS}</style>"
        f"<script>{_plotly_js()}</script></head>"
        f"<body data-figures='{ctx.figures}'><header><h1>Customer segments: "
        f"{esc(run.ws.path.name)}</h1><div class='sub'>tribes {esc(__version__)} · generated "
        f"{now:%Y-%m-%d %H:%M} UTC</div></header><nav>{''.join(nav)}</nav><main>"
        + "".join(parts) + "</main><footer>One self-contained file: it needs no network."
        "</footer></body></html>")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(doc, encoding="utf-8")
    return {"path": str(out), "sections": done, "figures": ctx.figures,
            "bytes": out.stat().st_size}
