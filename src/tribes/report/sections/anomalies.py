"""Unusual customers: a 2-D map with the outliers highlighted."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from tribes.engine.functions import md5_hex
from tribes.report.context import ReportContext, empty, esc, table
from tribes.report.sections import section

MAP_POINTS = 3000


@section(80, "anomalies", "Unusual customers")
def anomalies(ctx: ReportContext) -> str:
    from tribes.analysis.outliers import find_outliers
    from tribes.models.preprocess import fit_transform

    e = ctx.engine
    if not e.has_table("customer_features"):
        return empty("no customer features yet; run tribes features")
    t = e.table("customer_features")
    feats = [f for f in ctx.ws.config.segment.features if f in t.columns]
    if int(e.scalar(t.count())) < 10 or len(feats) < 2:
        return empty("fewer than 10 customers")
    res = find_outliers(e, feats, sample_size=ctx.ws.config.segment.sample_size)
    flagged = {o["customer_key"] for o in res["outliers"]}
    df = e.execute(t.order_by(md5_hex(t.customer_key)).limit(MAP_POINTS)
                   .select("customer_key", *feats))
    z = fit_transform(df, feats, scaler="robust").apply(df)
    z = z - z.mean(axis=0)
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    xy = z @ vt[:2].T
    odd = df.customer_key.isin(flagged).to_numpy()
    fig = go.Figure([
        go.Scatter(x=xy[~odd, 0], y=xy[~odd, 1], mode="markers", name="typical",
                   marker={"size": 4, "color": "#BAB0AC", "opacity": 0.5}),
        go.Scatter(x=xy[odd, 0], y=xy[odd, 1], mode="markers", name="unusual",
                   marker={"size": 7, "color": "#E45756", "symbol": "x"})])
    fig.update_layout(title=f"Customers on the first two principal components "
                      f"({len(df):,} shown; unusual = Isolation Forest, 2%)")
    rows = [(o["customer_key"], round(o["score"], 3), ", ".join(
        f"{r['feature']} {r['z']:+.1f}" for r in o["reasons"])) for o in res["outliers"][:10]]
    return (f"<p>{res['flagged']:,} of {res['customers']:,} customers flagged. See all with "
            f"<code>{esc('tribes anomalies customers')}</code>.</p>" + ctx.figure(fig, 420)
            + table(["customer_key", "score", "why (robust z-scores)"], rows))
