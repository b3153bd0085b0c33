"""``tribes validate``: KPIs by segment with significance tests."""

from __future__ import annotations

from typing import Annotated

import typer

from tribes.cli.common import JsonOpt, Output, state
from tribes.models import RETENTION_DAYS, stored_personas, validate_segments
from tribes.store import open_engine


def validate(
    ctx: typer.Context,
    churn_days: Annotated[int | None, typer.Option(
        "--churn-days", min=1, help="A customer with no event for more than this many days "
        "counts as churned (default: clv.churn_days, 60).", show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    """Check that segments differ on business KPIs.

    Per segment of the active version: conversion rate (sessions with a purchase /
    sessions), AOV, revenue share, repeat-purchase rate, 30/60/90-day retention, churn
    rate and engagement score. Rates are tested with chi-square (Cramér's V), AOV and
    engagement with Kruskal-Wallis (epsilon squared), at 0.05 / number of tests.

    [bold]Example[/bold]

      tribes -w shop validate --churn-days 90
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with open_engine(ws, read_only=True) as engine:
        res = validate_segments(engine, churn_days=churn_days or ws.config.clv.churn_days)
        names = {p["segment_id"]: p["name"] for p in stored_personas(engine)}
    for r in res["segments"]:
        r["name"] = names.get(r["segment_id"], f"Segment {r['segment_id']}")
    out.result(res)

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.1%}"

    out.table(f"KPIs by segment (version {res['version']})",
              ["segment", "customers", "conversion", "AOV", "revenue share", "repeat"],
              [(f"{r['segment_id']} {r['name']}", r["customers"], pct(r["conversion_rate"]),
                r["aov"], pct(r["revenue_share"]), pct(r["repeat_purchase_rate"]))
               for r in res["segments"]], no_wrap=(0, 1, 2, 3, 4, 5))
    out.table(None, ["segment", *[f"retained {d}d" for d in RETENTION_DAYS],
                     f"churn (>{res['churn_days']}d)", "engagement"],
              [(f"{r['segment_id']} {r['name']}",
                *[pct(r[f"retention_{d}d"]) for d in RETENTION_DAYS], pct(r["churn_rate"]),
                r["engagement_score"]) for r in res["segments"]],
              no_wrap=(0, 1, 2, 3, 4, 5))
    out.table("Do segments differ?", ["KPI", "test", "verdict"],
              [(k, t["test"], t["verdict"]) for k, t in res["tests"].items()], no_wrap=(0,))
    if res["warning"]:
        out.print(f"[yellow]warning:[/yellow] {res['warning']}")


def register(app: typer.Typer) -> None:
    app.command()(validate)
