"""``tribes features``: build the customer feature table; ``features describe``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tribes.api import Workspace
from tribes.cli.common import JsonOpt, Output, state, writable
from tribes.cli.prep_cmd import TimeoutOpt
from tribes.errors import InputError
from tribes.features import FEATURES_TABLE, NOT_YET, FeaturesReport, describe_features
from tribes.privacy import audit
from tribes.store import open_engine

MOVES_SHOWN = 12
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

      tribes -w shop features history

      tribes -w shop features migration --from 2026-06-01 --to 2026-07-01
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


@app.command("history")
def history(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """The dated feature snapshots kept: one per run that reached the newest event.

    A snapshot stores only the customers that changed since the one before, so keeping
    them is cheap; [bold]tribes features migration[/bold] compares any two dates.
    """
    out = Output(ctx, json_out)
    res = Workspace(state(ctx).open()).snapshots()
    out.result(res.summary)
    snaps = res.summary["snapshots"]
    if not snaps:
        out.print("No snapshots yet: every [bold]tribes run[/bold] or [bold]tribes "
                  "features[/bold] keeps one (\\[features] snapshots = true).")
        return
    out.table("Feature snapshots", ["as of (UTC)", "customers", "changed", "gone", "run"],
              [(s["as_of"][:19].replace("T", " "), s["customers"], s["changed"], s["gone"],
                s["run_id"]) for s in snaps])


@app.command("migration")
def migration_(
    ctx: typer.Context,
    start: Annotated[str, typer.Option(
        "--from", help="The first date (ISO, e.g. 2026-06-01).", show_default=False)],
    end: Annotated[str, typer.Option(
        "--to", help="The second date.", show_default=False)],
    by: Annotated[str, typer.Option(
        "--by", help="rfm (the RFM label) or segment (the segment of --version).")] = "rfm",
    version: Annotated[int | None, typer.Option(
        "--version", help="With --by segment: the version whose model assigns both dates "
        "(default: the active one).", show_default=False)] = None,
    customers: Annotated[str | None, typer.Option(
        "--customers", help="Name the customers of one cell, 'FROM>TO' (either side may "
        "be empty: 'At Risk>' is everyone who was At Risk); needs --out.",
        show_default=False)] = None,
    out_path: Annotated[Path | None, typer.Option(
        "--out", help="Write the --customers list here (.csv or .parquet): customer_key, "
        "from, to.", show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    """How customers moved between two dates: RFM labels or segments, as a matrix.

    A date stands for the newest feature snapshot taken that day ([bold]tribes features
    history[/bold]); a date without one is computed from the events the workspace holds
    now, up to the end of that day. By segment, one version's model assigns both dates,
    so a move is the customer's behaviour changing, not the model. "not a customer" on
    one side: new since the first date, or gone since (erased, merged, consent withdrawn).

    [bold]Examples[/bold]

      tribes -w shop features migration --from 2026-06-01 --to 2026-07-01

      tribes -w shop features migration --from 2026-06-01 --to 2026-07-01 --by segment

      tribes -w shop features migration --from 2026-06-01 --to 2026-07-01 \\
        --customers "Champions>At Risk" --out slipping.csv
    """
    out = Output(ctx, json_out)
    if (customers is None) != (out_path is None):
        raise InputError("--customers and --out go together: --customers 'Champions>At "
                         "Risk' --out slipping.csv", code="E_USAGE")
    cell: tuple[str | None, str | None] = (None, None)
    if customers is not None:
        if ">" not in customers:
            raise InputError(f"write the cell as FROM>TO, e.g. 'Champions>At Risk' (got "
                             f"'{customers}')", code="E_USAGE")
        a, b = (p.strip() or None for p in customers.split(">", 1))
        cell = (a, b)
    fmt = out_path.suffix.lower().lstrip(".") if out_path else ""
    if out_path is not None and fmt not in ("csv", "parquet"):
        raise InputError(f"cannot write '{out_path.name}'; use a .csv or .parquet name",
                         code="E_FORMAT")
    ws = state(ctx).open()
    with out.progress("migration") as task:
        res = Workspace(ws).migration(start, end, by=by, version=version,
                                      progress=task.step)
    summary = dict(res.summary)
    if out_path is not None:
        picked = res.customers(*cell)
        target = writable(out_path)
        if fmt == "csv":
            picked.to_csv(target, index=False)
        else:
            picked.to_parquet(target, index=False)
        audit(ws, "export", target=str(out_path), rows=len(picked),
              detail={"what": "migration", "by": by, "from": summary["from"],
                      "to": summary["to"], "cell": customers, "format": fmt})
        summary["customers_out"] = {"path": str(out_path), "rows": len(picked)}
    out.result(summary)
    f, t = summary["from"], summary["to"]
    out.print(f"{res.title}: {summary['customers_on_both']:,} customers on both dates, "
              f"{summary['stayed']:,} stayed, [bold]{summary['moved']:,} moved[/bold], "
              f"{summary['new']:,} new, {summary['left']:,} gone")
    for side, d in (("from", f), ("to", t)):
        how = ("stored snapshot" if d["source"] == "snapshot"
               else "computed from the events")
        out.print(f"  {side} {d['date']}: {how} as of {d['as_of'][:19].replace('T', ' ')}"
                  " UTC")
    cells = res.to_pandas()
    labels = sorted((set(cells["from"]) | set(cells["to"])) - {NOT_YET})
    rows = []
    for label in labels:
        was, now = cells[cells["from"] == label], cells[cells["to"] == label]
        stayed = int(was[was["to"] == label]["customers"].sum())
        rows.append((label, int(was["customers"].sum()), int(now["customers"].sum()), stayed,
                     int(now["customers"].sum()) - stayed, int(was["customers"].sum()) - stayed))
    out.table(f"Per {'RFM label' if by == 'rfm' else 'segment'}",
              ["label", f["date"], t["date"], "stayed", "in", "out"], rows)
    moves = cells[cells["from"] != cells["to"]].sort_values("customers", ascending=False)
    size = cells.groupby("from")["customers"].sum()
    out.table("Largest moves", ["from", "to", "customers", "share of from"],
              [(r["from"], r["to"], int(r["customers"]),
                f"{r['customers'] / size[r['from']]:.0%}")
               for r in moves.head(MOVES_SHOWN).to_dict("records")])
    if len(moves) > MOVES_SHOWN:
        out.print(f"{len(moves) - MOVES_SHOWN} smaller moves not shown (--json lists every "
                  "cell)")
    if out_path is not None:
        out.print(f"Wrote {summary['customers_out']['rows']:,} customers to {out_path}")
    else:
        out.print("Who they are: --customers 'FROM>TO' --out list.csv")


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if float(v).is_integer():
        return f"{v:,.0f}"
    return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
