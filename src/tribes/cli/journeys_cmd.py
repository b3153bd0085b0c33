"""``tribes journeys``: how customers move between events."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tribes.analysis import (
    following,
    leading_to,
    path_heads,
    sankey_figure,
    sankey_from_heads,
    session_paths,
    split_steps,
    top_paths,
)
from tribes.analysis import transitions as transitions_fn
from tribes.api import Workspace
from tribes.cli.common import CohortOpt, JsonOpt, Output, run_settings, state, writable
from tribes.store import open_engine

app = typer.Typer(no_args_is_help=True, rich_markup_mode="rich",
                  help="Journeys: Markov transitions between events, conversion funnels.")


@app.command()
def transitions(
    ctx: typer.Context,
    scope: Annotated[str, typer.Option(
        "--scope", help="session: paths within sessions (states session_start/end); "
        "customer: each customer's whole path (path_start/end).")] = "session",
    level: Annotated[str, typer.Option("--level",
                                       help="event_type or category.")] = "event_type",
    segment: Annotated[int | None, typer.Option(
        "--segment", help="Only customers of this segment (active version).",
        show_default=False)] = None,
    collapse: Annotated[bool, typer.Option(
        "--collapse-repeats", help="Merge consecutive repeats of a state.")] = False,
    target: Annotated[str, typer.Option(
        "--target", help="State whose reach probability is reported.")] = "purchase",
    cohort: CohortOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """First-order Markov transitions: counts, probabilities, and per state the chance
    of reaching the target (purchase) and the expected steps (absorbing chain).

    [bold]Examples[/bold]

      tribes -w shop journeys transitions

      tribes -w shop journeys transitions --scope customer --segment 2 --json
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    settings = run_settings(ws)
    timeout = settings.session_timeout
    with open_engine(ws, read_only=True) as engine, out.progress("transitions"):
        tr = transitions_fn(engine, scope=scope, level=level, segment=segment, cohort=cohort,
                            collapse=collapse, timeout=timeout,
                            consent_mode=settings.consent_mode)
    res = tr.as_dict(target)
    out.result(res)
    probs = res["probabilities"]
    rows = []
    for src in tr.states:
        row = probs.get(src, {})
        top = sorted(row.items(), key=lambda kv: -kv[1])[:3]
        total = sum(tr.counts.get(src, {}).values())
        absorbing = res["absorbing"]["states"].get(src, {})
        rows.append((src, total, ", ".join(f"{d} {p:.0%}" for d, p in top),
                     None if not absorbing else f"{absorbing['p_reach']:.1%}",
                     None if not absorbing else round(absorbing["expected_steps"], 1)))
    out.table(f"Transitions ({scope} scope, {level})",
              ["from", "events", "most likely next", f"reaches {target}", "exp. steps"],
              rows, no_wrap=(0,))


@app.command()
def funnel(
    ctx: typer.Context,
    steps: Annotated[str, typer.Option(
        "--steps", help="Comma-separated event types in order, e.g. "
        "product_view,add_to_cart,begin_checkout,purchase. A type may repeat "
        "(purchase,purchase: a second purchase); a step may filter its events: "
        "\"product_view where category = shoes,purchase where amount > 50\".")],
    window: Annotated[str, typer.Option(
        "--window", help="Conversion window from the first step, e.g. 1d, 2h.")] = "1d",
    by: Annotated[str | None, typer.Option(
        "--by", help="Break down by: segment (active version) or an event attribute "
        "(source, channel, device, country, region, city, category).",
        show_default=False)] = None,
    attribution: Annotated[str, typer.Option(
        "--attribution", help="Which value of --by a unit counts under: step:N (the value "
        "on its step-N event; step:1 by default), first-touch (its first value on any "
        "event), last-touch (the last value on the steps it reached) or all (every value on "
        "its steps: a unit may count in several groups).")] = "step:1",
    segment: Annotated[int | None, typer.Option(
        "--segment", help="Only customers of this segment.", show_default=False)] = None,
    unit: Annotated[str, typer.Option(
        "--per", help="Count customers (a funnel over their whole history) or sessions "
        "(each session its own attempt).")] = "customer",
    ordering: Annotated[str, typer.Option(
        "--ordering", help="loose: other events may come between the steps; strict: each "
        "step must be the very next event (each step is always a later event than the "
        "step before); unordered: the steps in any order within the window.")] = "loose",
    start: Annotated[str, typer.Option(
        "--start", help="first: the funnel starts at the unit's first step-1 event; any: "
        "every step-1 event is an attempt, and the one that goes furthest (then fastest) "
        "counts.")] = "first",
    exclude: Annotated[list[str] | None, typer.Option(
        "--exclude", help="Exclusion step, repeatable: units with this event between "
        "steps I and J leave the funnel at the step before it, e.g. \"support_contact "
        "between 2 and 3\" (default: between the first and the last step).",
        show_default=False)] = None,
    cohort: CohortOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Customers (or sessions) reaching each step in order within the window of their first
    step; step and overall conversion, drop-off and the median time between steps.

    Each step is matched by an event strictly after the previous step's (events with the
    same time keep their stored order). With the same --start, strict never counts more
    than loose. The rules, with worked examples: docs/funnels.md.

    [bold]Examples[/bold]

      tribes -w shop journeys funnel --steps product_view,add_to_cart,purchase --window 1d
      tribes -w shop journeys funnel --steps purchase,purchase --window 90d   # repeat buyers
      tribes -w shop journeys funnel --steps add_to_cart,purchase --per session --ordering strict
      tribes -w shop journeys funnel --steps add_to_cart,purchase --by device \
        --attribution last-touch
      tribes -w shop journeys funnel --steps product_view,purchase --start any
      tribes -w shop journeys funnel --steps "product_view where category = shoes,purchase"
      tribes -w shop journeys funnel --steps product_view,add_to_cart,purchase \
        --exclude "support_contact between 2 and 3"
      tribes -w shop journeys funnel --steps search,product_view --ordering unordered
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with out.progress("funnel"):
        res = Workspace(ws).funnel(split_steps(steps), window=window, by=by, segment=segment,
                                   per=unit, ordering=ordering, start=start,
                                   attribution=attribution, cohort=cohort,
                                   exclude=exclude).summary
    out.result(res)
    how = ("steps in any order" if res["ordering"] == "unordered"
           else f"{res['ordering']} order") + f", start: {res['start']}"
    if res["exclusions"]:
        how += ", leaving at: " + "; ".join(res["exclusions"])
    if res["attribution"]:
        how += f", {by} by {res['attribution']}"
    for g in res["groups"]:
        out.table(f"Funnel ({g['group']}; {how})",
                  ["step", f"{unit}s", "step conv.", "overall", "drop-off",
                   "median time from previous"],
                  [(s["step"], s["count"],
                    None if s["step_conversion"] is None else f"{s['step_conversion']:.1%}",
                    None if s["overall_conversion"] is None
                    else f"{s['overall_conversion']:.1%}",
                    s["drop_off"], s["median_from_previous"]) for s in g["steps"]],
                  no_wrap=(1, 2, 3, 4))


@app.command()
def paths(
    ctx: typer.Context,
    top: Annotated[int, typer.Option("--top", min=1, help="How many paths.")] = 20,
    max_length: Annotated[int, typer.Option("--max-length", min=1,
                                            help="Steps shown per path.")] = 6,
    before: Annotated[str, typer.Option(
        "--before", help="Also list the steps leading to this event.")] = "purchase",
    after: Annotated[str, typer.Option(
        "--after", help="Also list what follows this event in sessions without a "
        "purchase (friction).")] = "add_to_cart",
    segment: Annotated[int | None, typer.Option(
        "--segment", help="Only customers of this segment.", show_default=False)] = None,
    cohort: CohortOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Most common session paths (repeats merged), their purchase rate and last step;
    what leads to --before; what follows --after when nobody buys.

    [bold]Example[/bold]

      tribes -w shop journeys paths --top 10 --max-length 5
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    settings = run_settings(ws)
    with open_engine(ws, read_only=True) as engine, out.progress("paths"):
        ps = session_paths(engine, segment=segment, cohort=cohort,
                           timeout=settings.session_timeout,
                           consent_mode=settings.consent_mode)
    best = top_paths(ps, top=top, max_length=max_length)
    lead, follow = leading_to(ps, before), following(ps, after)
    out.result({"sessions": len(ps), "top": best,
                "before": {"event": before, "paths": lead},
                "after": {"event": after, "without": "purchase", "paths": follow}})
    out.table(f"Top session paths ({len(ps):,} sessions)",
              ["path", "sessions", "share", "bought", "ends on"],
              [(p["path"], p["sessions"], f"{p['share']:.1%}", f"{p['purchase_rate']:.0%}",
                p["ends_on"]) for p in best], no_wrap=())
    out.table(f"Leading to {before}", ["path", "sessions", "share"],
              [(p["path"], p["sessions"], f"{p['share']:.1%}") for p in lead], no_wrap=())
    out.table(f"After {after}, in sessions without a purchase", ["path", "sessions", "share"],
              [(p["path"], p["sessions"], f"{p['share']:.1%}") for p in follow], no_wrap=())


@app.command()
def sankey(
    ctx: typer.Context,
    out_path: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")],
    max_length: Annotated[int, typer.Option("--max-length", min=1,
                                            help="Steps drawn.")] = 5,
    cohort: CohortOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Write a Sankey chart of session flows (self-contained HTML, no network)."""
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    settings = run_settings(ws)
    with open_engine(ws, read_only=True) as engine, out.progress("sankey"):
        heads = path_heads(engine, length=max_length + 1, cohort=cohort,
                           timeout=settings.session_timeout,
                           consent_mode=settings.consent_mode)
    links = sankey_from_heads(heads, max_length=max_length)
    sessions = sum(heads.values())
    out_path.parent.mkdir(parents=True, exist_ok=True)
    sankey_figure(links).write_html(str(writable(out_path)), include_plotlyjs=True,
                                    full_html=True)
    out.result({"path": str(out_path), "sessions": sessions, "nodes": len(links["nodes"]),
                "links": len(links["links"])})
    out.print(f"wrote {out_path}: {len(links['links'])} flows over {sessions:,} sessions")
