"""``tribes cohorts``: acquisition cohorts and their retention."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.text import Text

from tribes.analysis import RULE_LANGUAGE, define_cohort, profile, refresh_cohorts
from tribes.api import Workspace
from tribes.cli.common import CohortOpt, JsonOpt, Output, run_settings, state
from tribes.store import drop_cohort, list_cohorts, open_engine

app = typer.Typer(no_args_is_help=True, rich_markup_mode="rich",
                  help="Cohorts: retention of customers grouped by when they arrived.")


@app.command()
def retention(
    ctx: typer.Context,
    by: Annotated[str, typer.Option(
        "--by", help="first_seen, first_purchase or signup; a _month, _week, _day or _hour "
        "suffix sets the period (signup_month, first_purchase_week).")] = "first_seen",
    period: Annotated[str | None, typer.Option(
        "--period", help="month, week, day or hour (default: from --by, else month).",
        show_default=False)] = None,
    returned: Annotated[str | None, typer.Option(
        "--returned", help="The event type that counts as coming back (e.g. purchase); "
        "default: any event.", show_default=False)] = None,
    cumulative: Annotated[bool, typer.Option(
        "--cumulative", help="Period k counts who came back in k or any later period "
        "(unbounded retention).")] = False,
    week_start: Annotated[str, typer.Option(
        "--week-start", help="Weeks begin on monday or sunday.")] = "monday",
    segment: Annotated[int | None, typer.Option(
        "--segment", help="Only customers of this segment (active version).",
        show_default=False)] = None,
    cohort: CohortOpt = None,
    recurring: Annotated[bool, typer.Option(
        "--recurring", help="Recurring cohorts: a customer joins the cohort of every "
        "period with a starting event (any event for first_seen, a purchase for "
        "first_purchase), not only of their first; so a customer may be in several.")
    ] = False,
    breakdown: Annotated[str | None, typer.Option(
        "--breakdown", help="One matrix per segment of the active version (segment, or "
        "persona to name them) or per stored cohort (cohort).", show_default=False)] = None,
    show: Annotated[str, typer.Option(
        "--show", help="What the table shows: share (of the cohort active), customers "
        "(active) or revenue.")] = "share",
    periods: Annotated[int, typer.Option(
        "--periods", min=0, help="Periods shown as columns (0: all); --json has all.")] = 12,
    json_out: JsonOpt = False,
) -> None:
    """Retention matrix: share of each cohort that came back k periods after it started
    (an event in that period; of the --returned type when given), and the revenue of each
    cohort per period. Every period up to the end of the data is shown (0% when nobody
    came back); periods before the first event are blank. Rules and a worked example:
    docs/retention.md.

    [bold]Examples[/bold]

      tribes -w shop cohorts retention --by signup_month

      tribes -w shop cohorts retention --by first_purchase --period week --show revenue

      tribes -w shop cohorts retention --returned purchase --cumulative --segment 2

      tribes -w shop cohorts retention --period day --periods 30

      tribes -w shop cohorts retention --by first_purchase --recurring

      tribes -w shop cohorts retention --breakdown persona --returned purchase

      tribes -w shop cohorts retention --json
    """
    out = Output(ctx, json_out)
    if show not in ("share", "customers", "revenue"):
        raise typer.BadParameter("use share, customers or revenue", param_hint="--show")
    ws = state(ctx).open()
    with out.progress("cohorts"):
        res = Workspace(ws).retention(
            by=by, period=period, cohort=cohort, returned=returned, cumulative=cumulative,
            week_start=week_start, segment=segment, recurring=recurring,
            breakdown=breakdown).summary
    out.result(res)
    for group in res.get("groups") or [res]:
        name = f"{res['breakdown']} {group['group']}: " if breakdown else ""
        _matrix(out, res, group["cohorts"], escape(name), show, periods)


def _matrix(out: Output, res: dict[str, Any], cohorts: list[dict[str, Any]], name: str,
            show: str, periods: int) -> None:
    """One retention matrix as a table, and what it leaves out."""
    if not cohorts:
        out.print(f"{name}No cohorts: no events (or no purchases / signup dates) yet.")
        return
    cumulative = res["cumulative"]
    res = {**res, "cohorts": cohorts}
    longest = max(len(c["retention"]) for c in res["cohorts"])
    width = longest if periods == 0 else min(periods, longest)
    key = {"share": "retention", "customers": "counts", "revenue": "revenue"}[show]

    def cell(v: float | None) -> str:
        if v is None:
            return ""
        return f"{v:.0%}" if show == "share" else f"{v:,.0f}"

    # cohorts that began long before the events have nothing observable in the first
    # columns (their later periods are in --json)
    visible = [c for c in res["cohorts"] if c["observed_from"] < width]
    came = f"came back with {res['returned']}" + (" then or later" if cumulative else "")
    kind = "recurring " if res["recurring"] else ""
    out.table(f"{name}Retention by {kind}{res['by']} {res['period']} ({show}; {came}; k "
              "periods after the start)",
              ["cohort", "size", *[str(k) for k in range(width)]],
              [(c["cohort"], c["size"], *[
                  cell(c[key][k] if k < len(c[key]) else None) for k in range(width)])
               for c in visible], no_wrap=(0,))
    if width < longest:
        out.print(f"Periods {width} to {longest - 1} are not shown: see them with --periods "
                  f"{longest} (or 0 for all) or --json")
    hidden = len(res["cohorts"]) - len(visible)
    if hidden:
        out.print(f"{hidden} cohorts started more than {width} {res['period']}s before the "
                  "first event; see them with --json")


RULE_HELP = ("A rule over events and features, e.g. 'first purchase within 7 days of first "
             "event', 'at least 3 purchases in the last 30 days and not any "
             "support_contact', 'no purchase in the last 60 days and monetary > 200'. "
             "See: tribes cohorts rules.")


@app.command()
def define(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Cohort name (letters, digits, _ and -).")],
    rule: Annotated[str, typer.Option("--rule", "-r", help=RULE_HELP)],
    description: Annotated[str, typer.Option("--description", "-d",
                                             help="What the cohort is for.")] = "",
    replace: Annotated[bool, typer.Option("--replace",
                                          help="Redefine an existing cohort.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run",
                                          help="Count the members; store nothing.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Define a behavioral cohort by a rule and store it with its members.

    Use it anywhere --cohort is accepted (journeys, trends, cohorts retention). Members are
    evaluated now; `tribes cohorts refresh` evaluates again after new data.

    [bold]Examples[/bold]

      tribes -w shop cohorts define fast_buyers --rule "first purchase within 7 days of first event"

      tribes -w shop cohorts define at_risk -r "no purchase in the last 60 days and monetary > 200"

      tribes -w shop journeys funnel --steps product_view,add_to_cart,purchase --cohort fast_buyers
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    settings = run_settings(ws)
    with open_engine(ws, read_only=dry_run) as engine, out.progress(f"cohort {name}"):
        res = define_cohort(engine, name, rule, description=description, replace=replace,
                            dry_run=dry_run, consent_mode=settings.consent_mode)
    out.result(res)
    share = "" if res["share"] is None else f" ({res['share']:.1%} of customers)"
    verb = "would have" if dry_run else "has"
    out.print(f"Cohort [bold]{name}[/bold] {verb} {res['n_customers']:,} members{share}.\n"
              f"Rule: {escape(res['rule'])}\nEvents up to: {res['as_of']}")


@app.command("list")
def list_(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Stored behavioral cohorts: rule, members, when they were evaluated."""
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with open_engine(ws, read_only=True) as engine:
        rows = list_cohorts(engine)
    out.result({"cohorts": rows})
    if not rows:
        out.print("No cohorts yet; define one with: tribes cohorts define NAME --rule '...'")
        return
    out.table("Cohorts", ["name", "members", "rule", "refreshed", "events up to"],
              [(c["name"], c["n_customers"], c["rule"], _when(c["refreshed_at"]),
                _when(c["as_of"])) for c in rows], no_wrap=(0,))


@app.command()
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Cohort name.")],
    json_out: JsonOpt = False,
) -> None:
    """One cohort: its rule, size, and how its members differ from everyone (median of
    each feature, members vs all)."""
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with open_engine(ws, read_only=True) as engine:
        res = profile(engine, name)
    out.result(res)
    out.print(f"[bold]{res['name']}[/bold]: {res['n_customers']:,} members"
              + ("" if res["share"] is None else f" ({res['share']:.1%} of customers)")
              + f"\nRule: {escape(res['rule'])}"
              + (f"\n{escape(res['description'])}" if res["description"] else ""))
    if res["features"]:
        out.table("Members vs all customers (medians)", ["feature", "members", "all", "lift"],
                  [(f["feature"], f["members"], f["all"],
                    None if f["lift"] is None else f"{f['lift']:.2f}x")
                   for f in res["features"]], no_wrap=(0,))


@app.command()
def refresh(
    ctx: typer.Context,
    names: Annotated[list[str] | None, typer.Argument(
        help="Cohorts to evaluate again (default: all).", show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    """Evaluate stored cohorts again on the current data (after new ingests)."""
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    settings = run_settings(ws)
    with open_engine(ws) as engine, out.progress("refreshing cohorts"):
        rows = refresh_cohorts(engine, names or None,
                               consent_mode=settings.consent_mode)
    out.result({"cohorts": rows})
    out.table("Cohorts refreshed", ["name", "members", "events up to"],
              [(c["name"], c["n_customers"], _when(c["as_of"])) for c in rows])


@app.command()
def drop(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Cohort name.")],
    json_out: JsonOpt = False,
) -> None:
    """Delete a stored cohort and its member list."""
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with open_engine(ws) as engine:
        drop_cohort(engine, name)
    out.result({"dropped": name})
    out.print(f"Cohort {name} dropped.")


@app.command()
def rules(ctx: typer.Context) -> None:
    """The cohort rule language, with examples."""
    Output(ctx, False).print(Text(RULE_LANGUAGE))


def _when(iso: str | None) -> str:
    return (iso or "")[:16].replace("T", " ")
