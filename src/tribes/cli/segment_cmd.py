"""``tribes segment``: cluster customers into segments, stored as a new version."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import ibis
import pandas as pd
import typer

from tribes.analysis import AB_METRICS, Design, outcomes, read_assignments
from tribes.api import Workspace
from tribes.cli.common import JsonOpt, Output, opened, run_settings, state
from tribes.config import parse_duration
from tribes.errors import InputError
from tribes.features import segment_features
from tribes.models import METHODS, SegmentReport, choose_k, refit_note
from tribes.ops import Campaign, compare_methods
from tribes.store import open_engine
from tribes.workspace import RunContext

app = typer.Typer(no_args_is_help=False, rich_markup_mode="rich")


def show_segments(out: Output, r: SegmentReport) -> None:
    m = r.metrics
    stab = m.get("stability") or {}
    out.print(f"segment version [bold]{r.version}[/bold]: {r.method}, k = {r.k}, "
              f"{r.n_customers:,} customers, {len(r.features)} features, {r.seconds:.1f}s"
              + (f" (ids matched to version {r.parent_version})" if r.parent_version else ""))
    out.table("Segments", ["segment", "name", "customers", "share", "stability (Jaccard)"],
              [(s["segment_id"], s["name"], s["size"], f"{s['share']:.1%}",
                (stab.get("jaccard") or {}).get(str(s["segment_id"]))) for s in r.segments])
    out.print(f"silhouette {_f(m.get('silhouette'))}, Calinski-Harabasz "
              f"{_f(m.get('calinski_harabasz'))}, Davies-Bouldin {_f(m.get('davies_bouldin'))}"
              + (f"; bootstrap ARI {stab['ari_mean']:.3f} ± {stab['ari_std']:.3f} "
                 f"({stab['resamples']} resamples)" if stab else ""))
    sel = m.get("k_selection")
    if sel:
        out.table("k selection", ["k", "silhouette", "inertia", "Calinski-Harabasz",
                                  "Davies-Bouldin", "gap", "separation", "distinct"],
                  [(s["k"], round(s["silhouette"], 3), round(s["inertia"], 1),
                    round(s["calinski_harabasz"], 1), round(s["davies_bouldin"], 3),
                    None if s["gap"] is None else round(s["gap"], 3), _separation(s),
                    _yes(s.get("distinct"))) for s in sel["scores"]])
        show_choice(out, sel)
    for w in r.warnings:
        out.print(f"[yellow]warning:[/yellow] {w}")


def show_choice(out: Output, sel: dict[str, Any]) -> None:
    """The votes, the chosen k, what decided it and the notes of a k selection."""
    votes = ", ".join(f"{c} → {k}" for c, k in sel["votes"].items())
    decided = {"separation": "the largest k with distinct segments",
               "stability": "the largest k with distinct and stable segments",
               "votes": "the votes (no k has distinct segments)",
               "bic": "BIC (no k has distinct segments)"}.get(sel.get("decided_by", ""))
    out.print(f"votes: {votes}; chosen k = [bold]{sel['chosen']}[/bold]"
              + (f", decided by {decided}" if decided else ""))

    for note in [*(sel.get("notes") or []), *filter(None, [refit_note(sel)])]:
        out.print(f"[yellow]note:[/yellow] {note}")


def _separation(s: dict[str, Any]) -> str | None:
    """``2.31 ± 0.06``: the least separated pair of a k (older versions: none)."""
    if s.get("separation") is None:
        return None
    return f"{s['separation']:.2f} ± {s.get('separation_se') or 0:.2f}"


def _yes(v: bool | None) -> str:
    return "" if v is None else ("yes" if v else "no")


def _feature_list(text: str | None) -> list[str] | None:
    """``--features a,b,c`` as a list (None when not given)."""
    return [f.strip() for f in text.split(",") if f.strip()] if text else None


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:,.3f}"


@app.callback(invoke_without_command=True)
def segment(
    ctx: typer.Context,
    method: Annotated[str, typer.Option(
        "--method", "-m", help=f"Clustering method: {', '.join(METHODS)}.")] = "kmeans",
    k: Annotated[str, typer.Option(
        "--k", help="Number of segments, or 'auto': the largest k whose segments are all "
        "distinct groups (every pair separated, none under 1% of the customers) and "
        "stable (each comes back in bootstrap resamples, Jaccard >= 0.75); silhouette, "
        "elbow, Calinski-Harabasz, Davies-Bouldin, the gap statistic (and BIC "
        "for gmm) are reported and decide when no k is distinct. dbscan and hdbscan find "
        "it themselves.")] = "auto",
    k_range: Annotated[str | None, typer.Option(
        "--k-range", help="Candidates for --k auto, e.g. 2-12 (default: segment.k_range).",
        show_default=False)] = None,
    features: Annotated[str | None, typer.Option(
        "--features", "-f", help="Comma-separated feature columns (default: "
        "segment.features in tribes.toml).", show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    """Segment the customers of [bold]customer_features[/bold] into a new active version.

    Fits on a sample (segment.sample_size), assigns every customer in the engine,
    reports quality and bootstrap stability, and keeps segment ids of groups that match
    the previously active version. Undo with: tribes versions rollback.

    [bold]Examples[/bold]

      tribes -w shop segment

      tribes -w shop segment --k 6 --features recency_days,frequency,monetary
    """
    if ctx.invoked_subcommand is not None:
        return
    out = Output(ctx, json_out)
    kk: int | None = None
    if k != "auto":
        try:
            kk = int(k)
        except ValueError:
            raise typer.BadParameter("use a whole number or auto", param_hint="--k") from None
        if kk < 2:
            raise typer.BadParameter("k must be at least 2", param_hint="--k")
    feats = _feature_list(features)
    ws = state(ctx).open()
    with out.progress("segmenting") as task:
        res = Workspace(ws).segment(method=method, k=kk, features=feats, k_range=k_range,
                                    progress=task.step)
    report = res.report
    out.result(res.summary)
    show_segments(out, report)


@app.command("select-k")
def select_k_command(
    ctx: typer.Context,
    method: Annotated[str, typer.Option("--method", "-m",
                                        help="kmeans, gmm or agglomerative.")] = "kmeans",
    k_range: Annotated[str | None, typer.Option(
        "--k-range", help="Candidates, e.g. 2-12 (default: segment.k_range).",
        show_default=False)] = None,
    features: Annotated[str | None, typer.Option(
        "--features", "-f", help="Comma-separated feature columns.", show_default=False)
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Score every k by each criterion (nothing is stored); --json gives the chart data.

    [bold]Example[/bold]

      tribes -w shop segment select-k --method kmeans --k-range 2-12
    """
    out = Output(ctx, json_out)
    feats = _feature_list(features)

    ws = state(ctx).open()
    with opened(ws, read_only=True) as run, out.progress("scoring k") as task:
        res = choose_k(run, method=method, features=feats, k_range=k_range,
                       progress=task.step)
    out.result(res)
    bic = method == "gmm"
    out.table(f"k selection ({method}, {res['n_scored']:,} customers scored)",
              ["k", "silhouette", "inertia", "Calinski-Harabasz", "Davies-Bouldin", "gap",
               "gap s.e.", *(["BIC"] if bic else []), "separation", "smallest", "distinct"],
              [(s["k"], round(s["silhouette"], 3), round(s["inertia"], 1),
                round(s["calinski_harabasz"], 1), round(s["davies_bouldin"], 3),
                round(s["gap"], 3), round(s["gap_se"], 3),
                *([round(s["bic"], 1)] if bic else []), _separation(s),
                None if s.get("smallest_share") is None else f"{s['smallest_share']:.1%}",
                _yes(s.get("distinct"))) for s in res["scores"]])
    show_choice(out, res)
    out.print(f"rule: {res['rule']}")


@app.command()
def compare(
    ctx: typer.Context,
    methods: Annotated[list[str], typer.Argument(
        help="Methods to compare, e.g. kmeans gmm hdbscan.")],
    k: Annotated[int | None, typer.Option("--k", help="Fixed k (default: auto per method).",
                                          show_default=False)] = None,
    features: Annotated[str | None, typer.Option(
        "--features", "-f", help="Comma-separated feature columns.", show_default=False)
    ] = None,
    assignments: Annotated[Path | None, typer.Option(
        "--assignments", "-a", help="A past campaign (as for tribes ab analyze): each "
        "candidate's segments measure its uplift.", exists=True, dir_okay=False,
        show_default=False)] = None,
    metric: Annotated[str, typer.Option("--metric", help="The campaign's metric: "
                                        "conversion, revenue or ctr.")] = "conversion",
    window: Annotated[str, typer.Option("--window", help="The campaign's outcome window.")
                      ] = "7d",
    jobs: Annotated[int | None, typer.Option(
        "--jobs", "-j", min=1, help="Methods fitted at once, each in a process of its own "
        "(default: one per core); the results do not depend on it.", show_default=False)
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Fit several methods on the same sample and compare them (nothing is stored): model
    quality, how well the segments separate business KPIs (eta squared: the share of
    conversion, spend, frequency, churn and engagement variance that lies between
    segments), and with --assignments how differently the segments responded to a past
    campaign (segments responding after Holm correction, best uplift, Cochran's Q test of
    whether the uplifts differ). Choose the segmentation that moves the business.

    [bold]Examples[/bold]

      tribes -w shop segment compare kmeans gmm hdbscan

      tribes -w shop segment compare kmeans gmm --assignments exp.csv --metric conversion
    """
    out = Output(ctx, json_out)
    feats = _feature_list(features)

    ws = state(ctx).open()
    with open_engine(ws, read_only=True) as engine, out.progress("comparing") as task:
        campaign = None
        if assignments is not None:
            campaign = _campaign(ws, engine, assignments, metric, window,
                                 feats or segment_features(ws.config.segment.features))
        rows = compare_methods(ws, engine, methods, k=k, features=feats, progress=task.step,
                               campaign=campaign, jobs=jobs or os.cpu_count() or 1)
    out.result({"methods": rows})
    out.table("Methods on the same sample (silhouette, Calinski-Harabasz: higher is "
              "better; Davies-Bouldin: lower; KPI eta²: the share of KPI variance between "
              "segments, higher separates better)",
              ["method", "k", "silh.", "CH", "DB", "stability", "noise", "KPI eta²", "s"],
              [(r["method"], r["k"], r["silhouette"], round(r["calinski_harabasz"] or 0),
                r["davies_bouldin"], r["stability_ari"],
                None if r["noise_share"] is None else f"{r['noise_share']:.1%}",
                _f(r["kpi_separation"]["mean_eta2"]), r["seconds"])
               for r in rows], no_wrap=(0, 1, 2, 3, 4, 5, 6, 7, 8))
    if campaign is not None:
        out.table(f"Campaign ({metric}) by each method's segments",
                  ["method", "segments responding", "best uplift", "Cochran Q", "Q p"],
                  [(r["method"], f"{r['campaign'].get('responding', 0)} of "
                    f"{r['campaign'].get('segments_tested', 0)}",
                    _f(r["campaign"].get("best_uplift")),
                    _f(r["campaign"].get("heterogeneity_q")),
                    _f(r["campaign"].get("heterogeneity_p"))) for r in rows])


def _campaign(ws: Any, engine: Any, path: Path, metric: str, window: str,
              features: list[str]) -> Any:
    if metric not in AB_METRICS:
        raise typer.BadParameter(f"use one of {', '.join(AB_METRICS)}", param_hint="--metric")
    raw = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    assigned = read_assignments(ws, engine, raw)
    # ids of no customer here are left out, as by default in tribes ab analyze
    assigned = assigned[assigned["known"]].reset_index(drop=True)
    variants = sorted(assigned["variant"].unique())
    if len(variants) != 2:
        raise InputError(f"an A/B test has two variants; found {len(variants)}",
                         code="E_AB")
    control = next((v for v in ("control", "A", "a") if v in variants), variants[0])
    df = outcomes(RunContext(ws, engine, run_settings(ws)), assigned, metric,
                  window=parse_duration(window),
                  pre=parse_duration("28d"), click_types=["click", "select_promotion"],
                  impression_types=["impression", "view_promotion"])

    f = engine.table("customer_features")
    keys = ibis.memtable(pd.DataFrame({"k": df["customer_key"].unique()}))
    feats = engine.execute(f.join(keys, f.customer_key == keys.k).select(
        "customer_key", *features))
    return Campaign(outcomes=df.drop(columns=["segment_id"]), features=feats,
                    design=Design(metric=metric, control=control,
                                  treatment=next(v for v in variants if v != control),
                                  resamples=200))
