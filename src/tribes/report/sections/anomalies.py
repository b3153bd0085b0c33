"""Unusual customers: a 2-D map with the outliers highlighted."""

from __future__ import annotations

import ibis
import numpy as np
import plotly.graph_objects as go

from tribes.analysis import embed_2d, find_outliers
from tribes.engine import md5_hex
from tribes.features import segment_features
from tribes.report.context import ReportContext, empty, esc, table
from tribes.report.sections import section
from tribes.stats import fit_transform

MAP_POINTS = 2000  # t-SNE on this many takes a few seconds


@section(80, "anomalies", "Unusual customers")
def anomalies(ctx: ReportContext) -> str:
    e = ctx.engine
    if not e.has_table("customer_features"):
        return empty("no customer features yet; run tribes features")
    t = e.table("customer_features")
    feats = [f for f in segment_features(ctx.ws.config.segment.features) if f in t.columns]
    if int(e.scalar(t.count())) < 10 or len(feats) < 2:
        return empty("fewer than 10 customers")
    res = find_outliers(e, feats, sample_size=ctx.ws.config.segment.sample_size)
    flagged = {o["customer_key"] for o in res["outliers"]}
    sample = t.order_by(md5_hex(t.customer_key)).limit(MAP_POINTS)
    # every flagged customer is drawn, with a sample of the others
    odd_rows = t.filter(t.customer_key.isin(sorted(flagged)[:MAP_POINTS // 4]))
    df = e.execute(ibis.union(sample.select("customer_key", *feats),
                              odd_rows.select("customer_key", *feats), distinct=True))
    df = df.sort_values("customer_key").reset_index(drop=True)
    z = fit_transform(df, feats, scaler="robust").apply(df)
    # extreme values would squeeze everyone else into one dot: clip for the picture only.
    # PCA, not t-SNE: a linear map keeps far customers far, which is what this picture
    # is about (t-SNE keeps neighbourhoods and may draw an outlier next to the crowd)
    xy, how = embed_2d(np.clip(z, -10, 10), method="pca")
    odd = df.customer_key.isin(flagged).to_numpy()
    fig = go.Figure([
        go.Scatter(x=xy[~odd, 0], y=xy[~odd, 1], mode="markers", name="typical",
                   marker={"size": 4, "color": "#BAB0AC", "opacity": 0.5}),
        go.Scatter(x=xy[odd, 0], y=xy[odd, 1], mode="markers", name="unusual",
                   marker={"size": 7, "color": "#E45756", "symbol": "x"})])
    axis = {"showticklabels": False, "title": None, "zeroline": False}
    fig.update_layout(title=f"Customers in 2-D ({how} of the scaled features): "
                      f"{int(odd.sum()):,} unusual (Isolation Forest, 2%) and a sample of "
                      f"{int((~odd).sum()):,} others", xaxis=axis, yaxis=axis)
    rows = [(o["customer_key"], round(o["score"], 3), ", ".join(
        f"{r['feature']} {r['z']:+.1f}" for r in o["reasons"])) for o in res["outliers"][:10]]
    return (f"<p>{res['flagged']:,} of {res['customers']:,} customers flagged. See all with "
            f"<code>{esc('tribes anomalies customers')}</code>.</p>" + ctx.figure(fig, 420)
            + table(["customer_key", "score", "why (robust z-scores)"], rows))
