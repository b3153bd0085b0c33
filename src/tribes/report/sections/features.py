"""Feature distributions."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tribes.engine import md5_hex
from tribes.report.context import ReportContext, empty
from tribes.report.sections import section

SHOWN = ["recency_days", "tenure_days", "frequency", "monetary", "aov", "sessions_per_week",
         "events_per_session", "avg_session_duration_s", "distinct_categories",
         "cart_abandonment_rate", "engagement_score", "composite_index"]
SAMPLE = 20_000


@section(20, "features", "Customer features")
def features(ctx: ReportContext) -> str:
    e = ctx.engine
    if not e.has_table("customer_features"):
        return empty("no customer features yet; run tribes features")
    t = e.table("customer_features")
    cols = [c for c in SHOWN if c in t.columns]
    df = e.execute(t.order_by(md5_hex(t.customer_key)).limit(SAMPLE).select(*cols))
    if len(df) < 2:
        return empty("fewer than 2 customers")
    rows = (len(cols) + 3) // 4
    fig = make_subplots(rows=rows, cols=4, subplot_titles=cols, vertical_spacing=0.12)
    for i, c in enumerate(cols):
        v = df[c].dropna().to_numpy(dtype=float)
        if c in ("monetary", "aov", "avg_session_duration_s") and len(v):
            v = np.log10(1 + v)
            fig.layout.annotations[i].text = f"log10(1 + {c})"
        fig.add_trace(go.Histogram(x=v, nbinsx=30, marker_color="#4C78A8", showlegend=False),
                      row=i // 4 + 1, col=i % 4 + 1)
    fig.update_annotations(font_size=11)
    note = (f"<p>Distributions over {len(df):,} customers"
            f"{' (a sample)' if len(df) == SAMPLE else ''}; money and durations on a log "
            "scale. Definitions: <code>tribes features describe</code>.</p>")
    return note + ctx.figure(fig, 220 * rows)
