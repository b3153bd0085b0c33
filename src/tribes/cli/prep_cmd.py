"""``tribes prep``: stitch identities and sessionize."""

from __future__ import annotations

from typing import Annotated

import typer

from tribes.api import Workspace
from tribes.cli.common import JsonOpt, Output, state
from tribes.prep import PrepReport

TimeoutOpt = Annotated[str | None, typer.Option(
    "--session-timeout", help="A gap strictly longer than this starts a new session, e.g. "
    "30m, 1h (default: prep.session_timeout in tribes.toml, 30m).", show_default=False)]


def show_prep(out: Output, report: PrepReport) -> None:
    s = report.stitching
    ruled: list[tuple[str, int]] = [
        ("identity rules in force (tribes identity rules)", s.rules),
        ("  ids joined by a merge rule", s.merged_ids),
        ("  ids split out of a customer", s.split_ids),
        ("  blocked ids (link nothing)", s.blocked_ids),
    ] if s.rules else []
    out.table("Identity stitching", ["", "count"], [
        ("ids", s.ids), ("known customer ids", s.known_ids),
        ("anonymous/device ids joined to a known customer", s.linked_ids),
        ("ambiguous ids (link to 2+ known customers; kept apart)", s.ambiguous_ids),
        ("shared devices (too many links; not used for linking)", s.shared_ids),
        *ruled,
        ("customers (customer_key)", s.customers),
        ("  of which anonymous", s.anonymous_customers),
        ("label propagation passes", s.passes),
    ])
    out.print(f"{report.sessions:,} sessions from {report.events:,} events "
              f"(timeout {report.session_timeout}) in {report.seconds:.1f}s")
    inc = report.incremental
    if inc:
        out.print(f"after an append: {inc['new_events']:,} new events touched "
                  f"{inc['touched_customers']:,} customers ({inc['restitched_ids']:,} ids "
                  f"stitched again, {inc['rekeyed_customers']:,} customers whose ids "
                  f"changed); {inc['sessions_written']:,} sessions written in place of "
                  f"{inc['sessions_replaced']:,}")


def prep(
    ctx: typer.Context,
    session_timeout: TimeoutOpt = None,
    full: Annotated[bool, typer.Option(
        "--full", help="Stitch and sessionize everything, even when only an append of "
        "new events happened since the last prep.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Stitch identities and sessionize every stored event (idempotent).

    Ids seen on one event are linked (DESIGN §5): a cookie or device that links to
    exactly one known customer id joins that customer; one linking to several stays
    apart (ambiguous); one with more than prep.max_ids_per_component links is a shared
    device. Identity rules (tribes identity: merge, split, block) are applied on top.
    Writes the [bold]identities[/bold] and [bold]sessions[/bold] tables.

    When the only change since the last prep is new events (same timeout, no identity
    rules, nothing erased), only what they touch is redone, with the same tables as a
    full prep; --full redoes everything.

    [bold]Example[/bold]

      tribes -w shop prep --session-timeout 30m
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with out.progress("prep") as task:
        res = Workspace(ws).prep(session_timeout=session_timeout, full=full,
                                 progress=task.step)
    report = res.report
    out.result(res.summary)
    show_prep(out, report)


def register(app: typer.Typer) -> None:
    app.command()(prep)
