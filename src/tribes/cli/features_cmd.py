"""``tribes features``: build the customer feature table; ``features describe``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tribes.api import Workspace
from tribes.cli.common import JsonOpt, Output, state
from tribes.cli.prep_cmd import TimeoutOpt
from tribes.errors import InputError
from tribes.features import FEATURES_TABLE, FeaturesReport, describe_features
from tribes.store import open_engine

app = typer.Typer(no_args_is_help=False, rich_markup_mode="rich")


def show_features(out: Output, report: FeaturesReport) -> None:
    comp = report.composite
    out.print(
        f"customer_features: [bold]{report.customers:,}[/bold] customers "
        f"({report.known_customers:,} known) as of {report.as_of:%Y-%m-%d %H:%M:%S} UTC, "
        f"session timeout {report.session_timeout}; {report.excluded_by_consent:,} left out "
        f"for lack of analytics consent; {len(report.columns)} columns in "
        f"{report.seconds:.1f}s"
    )
    loadings = sorted(comp["loadings"].items(), key=lambda kv: -abs(kv[1]))
    out.table(f"Composite index: first principal component, "
              f"{comp['explained_variance_ratio']:.1%} of the standardized variance",
              ["input", "loading"], [(k, round(v, 3)) for k, v in loadings])
    out.print("Describe every feature with: tribes features describe")


@app.callback(invoke_without_command=True)
def features(
    ctx: typer.Context,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Compute from events up to this ISO date (its end, UTC) or "
        "date-time; default: the newest event. Rebuilds past snapshots.",
        show_default=False)] = None,
    session_timeout: TimeoutOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Build [bold]customer_features[/bold]: one row per customer (DESIGN §5).

    Recency, tenure, frequency, monetary, AOV, purchase velocity, sessions, engagement
    score, RFM scores and labels, cart abandonment, support contacts, channel/device mix
    and the composite index. Customers without analytics consent are left out. Runs prep
    first, with the same session timeout, when the events or its settings changed since
    the last one.

    [bold]Examples[/bold]

      tribes -w shop features

      tribes -w shop features --as-of 2026-06-30 --session-timeout 45m

      tribes -w shop features describe
    """
    if ctx.invoked_subcommand is not None:
        return
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with out.progress("features") as task:
        res = Workspace(ws).features(session_timeout=session_timeout, as_of=as_of,
                                     progress=task.step)
    report = res.report
    out.result(res.summary)
    show_features(out, report)


@app.command()
def describe(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Per feature: definition, what a null means, null share, min/median/max, histogram."""
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with open_engine(ws, read_only=True) as engine:
        if not engine.has_table(FEATURES_TABLE):
            raise InputError("no customer features yet; build them with: tribes features",
                             code="E_NO_FEATURES")
        rows = describe_features(engine)
    out.result({"features": rows})
    stats: list[tuple[Any, ...]] = []
    for r in rows:
        if "histogram" in r:
            stats.append((r["feature"], f"{r['null_share']:.1%}", _fmt(r["min"]),
                          _fmt(r["median"]), _fmt(r["max"]), r["sparkline"]))
        else:
            top = ", ".join(f"{k} {v:,}" for k, v in list(r.get("top_values", {}).items())[:3])
            stats.append((r["feature"], f"{r.get('null_share', 0):.1%}", "", "", "", top))
    out.table("Customer features", ["feature", "null", "min", "median", "max", "histogram"],
              stats, no_wrap=(0,))
    out.table("Definitions", ["feature", "definition", "null means"],
              [(r["feature"], r["definition"], "" if r["null_meaning"] == "never null"
                else r["null_meaning"]) for r in rows])


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if float(v).is_integer():
        return f"{v:,.0f}"
    return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
