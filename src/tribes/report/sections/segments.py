"""Segmentation: how k was chosen, segment sizes, a 2-D map of customers."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tribes.engine import md5_hex
from tribes.models import refit_note, stability_warning, stored_personas
from tribes.report.context import PALETTE, ReportContext, empty, esc
from tribes.report.sections import section
from tribes.stats import Transform
from tribes.store import active_version, get_run, members

MAP_POINTS = 3000  # SVG points: renders everywhere, no WebGL needed


def active_run(ctx: ReportContext) -> dict[str, Any] | None:
    def load() -> dict[str, Any] | None:
        v = active_version(ctx.engine)
        return None if v is None else get_run(ctx.engine, v)
    return ctx.once("active_run", load)


def names(ctx: ReportContext, run: dict[str, Any]) -> dict[int, str]:
    """Segment names: the stored personas of the active version (read once per report,
    shared with the personas section), else the names stored with the run. A report
    only reads: it never builds personas."""
    out = {int(s["segment_id"]): s["name"] for s in run["segments"]}
    ps = ctx.once("personas", lambda: stored_personas(ctx.engine, run["version"]))
    out.update({p["segment_id"]: p["name"] for p in ps})
    return out


@section(30, "k-selection", "Choosing the number of segments")
def k_selection(ctx: ReportContext) -> str:
    run = active_run(ctx)
    if run is None:
        return empty("no segmentation yet; run tribes segment")
    sel = run["metrics"].get("k_selection")
    if not sel:
        return (f"<p>Version {run['version']} used a fixed k = {run['k']} "
                f"({esc(run['method'])}); no selection to show.</p>" + _merges(ctx, run))
    ks = [s["k"] for s in sel["scores"]]
    crit = [("silhouette", "higher is better"), ("inertia", "elbow"),
            ("calinski_harabasz", "higher is better"), ("davies_bouldin", "lower is better"),
            ("gap", "gap statistic")]
    if all(s.get("bic") is not None for s in sel["scores"]):
        crit.append(("bic", "lower is better"))
    has_sep = any(s.get("separation") is not None for s in sel["scores"])
    if has_sep:
        crit.append(("separation", "distinct above the line"))
    fig = make_subplots(rows=1, cols=len(crit), subplot_titles=[c for c, _ in crit])
    for i, (c, _) in enumerate(crit):
        err = None
        if c == "separation":
            err = {"type": "data", "visible": True,
                   "array": [s.get("separation_se") or 0 for s in sel["scores"]]}
            fig.add_hline(y=sel.get("min_separation", 2.0), line_dash="dash",
                          line_color="#c44", row=1, col=i + 1)
        fig.add_trace(go.Scatter(x=ks, y=[s.get(c) for s in sel["scores"]],
                                 mode="lines+markers", error_y=err,
                                 marker_color=PALETTE[i % len(PALETTE)], showlegend=False),
                      row=1, col=i + 1)
        fig.add_vline(x=sel["chosen"], line_dash="dot", line_color="#888", row=1, col=i + 1)
    votes = ", ".join(f"{esc(c)} → {k}" for c, k in sel["votes"].items())
    decided = {
        "separation": "the largest k whose segments are all distinct groups (every pair "
                      "separated, none under 1% of the customers)",
        "stability": "the largest k whose segments are all distinct groups and stable "
                     "under resampling (a larger k had a segment that did not come back)",
        "votes": "the votes: no k splits the customers into distinct groups",
        "bic": "BIC: no k splits the customers into distinct groups",
    }.get(sel.get("decided_by", ""))
    distinct = sel.get("distinct")

    notes = "".join(f"<li>{esc(n)}</li>" for n in [*(sel.get("notes") or []),
                                                    *filter(None, [refit_note(sel)])])
    return (ctx.figure(fig, 300)
            + f"<p>Chosen k = <b>{sel['chosen']}</b>"
            + (f", decided by {esc(decided)}" if decided else "") + ". "
            + (f"k with distinct segments: {', '.join(map(str, distinct)) or 'none'}. "
               if distinct is not None else "")
            + f"Votes: {votes}. Rule: {esc(sel['rule'])}.</p>"
            + (f"<ul>{notes}</ul>" if notes else "") + _merges(ctx, run))


def _merges(ctx: ReportContext, run: dict[str, Any]) -> str:
    """Agglomerative runs: the Ward distance of the last merges (the top of the
    dendrogram); a long jump before a merge means the clusters it joins are distinct."""
    tree = (run.get("model") or {}).get("dendrogram")
    if not tree or not tree.get("linkage_tail"):
        return ""
    tail = tree["linkage_tail"]
    after = [len(tail) - i for i in range(len(tail))]  # clusters left after each merge
    fig = go.Figure(go.Bar(x=[a + 1 for a in after], y=[row[2] for row in tail],
                           marker_color=PALETTE[0],
                           hovertemplate="from %{x} to %{customdata} clusters: "
                           "distance %{y:.2f}<extra></extra>", customdata=after))
    fig.add_vline(x=run["k"], line_dash="dot", line_color="#888")
    fig.update_layout(title=f"Top of the dendrogram: Ward distance of the last merges "
                      f"({tree['n_leaves']:,} customers; dotted: k = {run['k']})",
                      xaxis_title="clusters before the merge", yaxis_title="merge distance",
                      xaxis={"autorange": "reversed"})
    return ctx.figure(fig, 300)


@section(40, "segments", "Segments")
def segments(ctx: ReportContext) -> str:
    run = active_run(ctx)
    if run is None:
        return empty("no segmentation yet; run tribes segment")
    nm = names(ctx, run)
    segs = run["segments"]
    fig = go.Figure(go.Bar(
        y=[f"{s['segment_id']} {nm.get(s['segment_id'], '')}" for s in segs][::-1],
        x=[s["size"] for s in segs][::-1], orientation="h",
        marker_color=[PALETTE[i % len(PALETTE)] for i in range(len(segs))][::-1]))
    fig.update_layout(title="Customers per segment")
    m = run["metrics"]
    stab = m.get("stability") or {}
    quality = (f"<p>Version {run['version']}: {esc(run['method'])}, k = {run['k']}, "
               f"{run['snapshot'].get('n_customers', 0):,} customers; silhouette "
               f"{_f(m.get('silhouette'))}, Davies-Bouldin {_f(m.get('davies_bouldin'))}, "
               f"bootstrap ARI {_f(stab.get('ari_mean'))}.</p>")

    warning = stability_warning(m)
    if warning:
        quality += f"<p class='warn'><b>Unstable segments</b>: {esc(warning)}.</p>"
    return quality + "<div class='grid2'><div>" + ctx.figure(fig, 340) + "</div><div>" + \
        _map(ctx, run, nm) + "</div></div>"


def _f(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def _map(ctx: ReportContext, run: dict[str, Any], nm: dict[int, str]) -> str:
    if not run["transform"] or not run["transform"].get("features"):
        return "<p>No feature space to map (rule-based segments).</p>"
    e = ctx.engine
    f = e.table("customer_features")
    a = members(e, run["version"])
    j = f.join(a, f.customer_key == a.a_key)
    tr = Transform.from_dict(run["transform"])
    df = e.execute(j.order_by(md5_hex(j.customer_key)).limit(MAP_POINTS)
                   .select("segment_id", *tr.features))
    if len(df) < 3:
        return "<p>Too few customers for a map.</p>"
    xy, how = embed_2d(tr.apply(df), ctx.ws.config.segment.random_state)
    fig = go.Figure()
    for i, seg in enumerate(sorted(df.segment_id.unique())):
        mask = (df.segment_id == seg).to_numpy()
        fig.add_trace(go.Scatter(x=xy[mask, 0], y=xy[mask, 1], mode="markers",
                                   name=f"{seg} {nm.get(int(seg), '')}",
                                   marker={"size": 4, "opacity": 0.6,
                                           "color": PALETTE[i % len(PALETTE)]}))
    fig.update_layout(title=f"Customers in 2-D ({how}; {len(df):,} shown)",
                      legend={"font": {"size": 10}})
    return ctx.figure(fig, 340)


def embed_2d(z: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    """Two coordinates per customer: UMAP when it is installed (``tribes[umap]``), else
    the first two principal components."""
    try:
        import umap
    except ImportError:
        umap = None
    if umap is not None and len(z) >= 20:
        xy = umap.UMAP(n_components=2, random_state=seed).fit_transform(z)
        return np.asarray(xy), "UMAP"
    z = z - z.mean(axis=0)
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    xy = z @ vt[:2].T if z.shape[1] >= 2 else np.column_stack([z[:, 0], np.zeros(len(z))])
    return xy, "first two principal components"
