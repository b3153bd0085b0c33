"""``tribes customer``: one customer's ids, sessions, timeline and features."""

from __future__ import annotations

from typing import Annotated

import typer

from tribes.cli.common import JsonOpt, Output, run_settings, state
from tribes.store import customer_view, open_engine, resolve_customer
from tribes.workspace import RunContext


def customer(
    ctx: typer.Context,
    ident: Annotated[str, typer.Argument(
        metavar="ID", help="A raw customer, anonymous or device id as in the source files "
        "(pseudonymized with the workspace key to look it up), or a customer_key.")],
    limit: Annotated[int, typer.Option("--limit", "-n", min=1,
                                       help="Sessions and events to list.")] = 20,
    json_out: JsonOpt = False,
) -> None:
    """Show one customer: linked ids, sessions, latest events, features and consent.

    [bold]Examples[/bold]

      tribes -w shop customer C0000042

      tribes -w shop customer anon:3f9a... --limit 50 --json
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with open_engine(ws, read_only=True) as engine:
        key = resolve_customer(ws, engine, ident)
        view = customer_view(RunContext(ws, engine, run_settings(ws)), key, limit=limit)
    out.result(view)
    out.print(f"customer_key [bold]{key}[/bold]: {view['n_events']:,} events in "
              f"{view['n_sessions']:,} sessions"
              + ("" if view["analyzed"] else " [yellow](excluded from analysis: no "
                 "analytics consent)[/yellow]"))
    out.table("Ids", ["type", "id", "status"],
              [(i["id_type"], i["id"], i["status"]) for i in view["ids"]], no_wrap=(0, 1))
    out.table(f"Latest sessions (of {view['n_sessions']:,})",
              ["start", "duration s", "events", "event types", "cart", "bought", "source"],
              [(str(s["start"])[:19], s["duration_s"], s["n_events"],
                ", ".join(s["event_types"] or []), "yes" if s["has_add_to_cart"] else "",
                "yes" if s["has_purchase"] else "", s["source"]) for s in view["sessions"]])
    out.table(f"Latest events (of {view['n_events']:,})",
              ["ts", "event", "source", "channel", "device", "category", "amount"],
              [(str(e["ts"])[:19], e["event_type"], e["source"], e["channel"], e["device"],
                e["category"], e["amount"]) for e in view["timeline"]])
    if view["features"]:
        f = view["features"]
        out.table("Features", ["feature", "value"],
                  [(k, v) for k, v in f.items() if k not in ("customer_key",)])
    elif view["analyzed"]:
        out.print("No features for this customer yet: tribes features")
    if view["consents"]:
        out.table("Consent (latest per purpose)", ["purpose", "granted", "at"],
                  [(c["purpose"], "yes" if c["granted"] else "no", str(c["ts"])[:19])
                   for c in view["consents"]])


def register(app: typer.Typer) -> None:
    app.command()(customer)
