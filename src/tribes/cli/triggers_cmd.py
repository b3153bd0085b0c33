"""``tribes triggers``: the rules of [realtime.rules], tried on files or read from Redis."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from tribes.cli.common import JsonOpt, Output, run_settings, state
from tribes.config import format_duration
from tribes.errors import InputError
from tribes.hooks import Trigger
from tribes.realtime import RULES, connect_redis, read_messages, redis_url, simulate

app = typer.Typer(help="Real-time rules: list them, try them on a file of events, see the "
                  "newest triggers.", no_args_is_help=True)


def _rule_rows(cfg: Any) -> list[tuple[str, str, str]]:
    r = cfg.realtime.rules
    churn = r.churn_risk.threshold or cfg.clv.churn_threshold
    offers = ", ".join(f"{k}: {v}" for k, v in r.session_offer.offers.items()) or \
        "none configured"
    return [
        ("abandoned_cart", "on" if r.abandoned_cart.enabled else "off",
         f"{', '.join(r.abandoned_cart.add_types)} and none of "
         f"{', '.join(r.abandoned_cart.cancel_types)} within "
         f"{format_duration(r.abandoned_cart.after)}"),
        ("high_value_views", "on" if r.high_value_views.enabled else "off",
         f">= {r.high_value_views.min_views} of {', '.join(r.high_value_views.view_types)} "
         f"at {r.high_value_views.price_field} >= {r.high_value_views.min_price:g} in a "
         "session"),
        ("session_offer", "on" if r.session_offer.enabled else "off",
         f"at session start, per segment: {offers}"),
        ("churn_risk", "on" if r.churn_risk.enabled else "off",
         f"P(alive) of the CLV fit below {churn:g}"),
        ("segment_change", "on" if r.segment_change.enabled else "off",
         "segment.entered / segment.exited when online assignment moves a customer"),
    ]


@app.command("list")
def list_(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """The rules, whether they are on, and their settings (tribes.toml \\[realtime.rules]).

    [bold]Example[/bold]: tribes -w shop triggers list
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    rows = _rule_rows(ws.config)
    out.result({"rules": [{"rule": a, "status": b, "when": c} for a, b, c in rows],
                "config": ws.config.realtime.rules.model_dump()})
    out.table("Rules", ["rule", "status", "fires when"], rows)


@app.command("test")
def test(
    ctx: typer.Context,
    rule: Annotated[str, typer.Argument(help="A rule (see: tribes triggers list) or 'all'.")],
    events: Annotated[Path, typer.Option("--events", "-e", help="JSON Lines file (or a "
                                         "JSON array) of events, as sent to the stream.")],
    advance: Annotated[str | None, typer.Option(
        "--advance", help="Let the clock run on this long after the last event (e.g. "
        "45m), as a quiet stream would, so pending timers can fire.",
        show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    """Run the rules on a file of events in memory: which triggers would fire.

    Nothing is written (no Redis, no tables). Uses the workspace's settings, active
    segment version and CLV fit, as tribes stream would.

    [bold]Examples[/bold]

      tribes -w shop triggers test abandoned_cart --events sample.jsonl --advance 1h

      tribes -w shop triggers test all --events sample.jsonl --json
    """
    out = Output(ctx, json_out)
    if rule != "all" and rule not in RULES:
        raise InputError(f"unknown rule '{rule}'; rules: {', '.join(RULES)} or all",
                         code="E_RULE")
    ws = state(ctx).open()
    sim = simulate(ws, run_settings(ws), read_messages(events), advance=advance)
    kinds = {"abandoned_cart": ("trigger.abandoned_cart",),
             "high_value_views": ("trigger.high_value_views",),
             "session_offer": ("trigger.session_offer",),
             "churn_risk": ("trigger.churn_risk",),
             "segment_change": ("segment.entered", "segment.exited")}
    wanted = [t for t in sim.triggers if rule == "all" or t.kind in kinds[rule]]
    result = sim.to_dict()
    result["triggers"] = [t.to_dict() for t in wanted]
    out.result(result)
    out.print(f"{sim.events:,} events ({sum(sim.rejected.values()):,} rejected: "
              f"{dict(sim.rejected) or 'none'}), {len(wanted):,} triggers"
              + (f" of {rule}" if rule != "all" else "")
              + (f"; {sim.pending_timers} timers still pending" if sim.pending_timers else ""))
    out.table(None, ["at (UTC)", "type", "customer", "details"],
              [(datetime.fromtimestamp(t.at, UTC).strftime("%Y-%m-%d %H:%M:%S"), t.kind,
                t.customer_key[:16], json.dumps(t.data, sort_keys=True)[:90])
               for t in wanted[:200]])


@app.command("recent")
def recent(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many.")] = 20,
    redis: Annotated[str | None, typer.Option(
        "--redis", help="Redis URL (default: env TRIBES_REDIS_URL, else \\[realtime] redis).",
        show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    """The newest triggers on the output stream.

    [bold]Example[/bold]: tribes -w shop triggers recent -n 50
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    r = connect_redis(redis_url(ws.config.realtime, redis))
    rows = [Trigger.from_message(f) for _, f in
            r.xrevrange(ws.config.realtime.output_stream, count=limit)]
    out.result({"triggers": [t.to_dict() for t in rows]})
    out.table(None, ["at (UTC)", "type", "customer", "segment", "details"],
              [(datetime.fromtimestamp(t.at, UTC).strftime("%Y-%m-%d %H:%M:%S"), t.kind,
                t.customer_key[:16], t.segment_id, json.dumps(t.data, sort_keys=True)[:80])
               for t in rows])
