"""``tribes forget``: erase a person (right to erasure)."""

from __future__ import annotations

from typing import Annotated

import typer

from tribes.cli.common import JsonOpt, Output, state
from tribes.ops import forget as erase
from tribes.store import open_engine


def forget(
    ctx: typer.Context,
    ident: Annotated[str, typer.Argument(
        metavar="ID", help="Any id of the person as in the source files (customer, "
        "anonymous or device id), a stored pseudonym, or a customer_key.")],
    reason: Annotated[str, typer.Option(
        "--reason", help="Why (a request reference); kept in the audit log.")] = "",
    json_out: JsonOpt = False,
) -> None:
    """Erase a person from every table and every segment version, for good.

    Every id linked to the person goes: events, profile, consents, identities, sessions,
    features, segment assignments of all versions, cohorts, CLV, quarantine, the
    exports index, and the real-time state in Redis (tribes stream: state, timers, their
    triggers on the output stream). Their pseudonymized ids get tombstones, so
    re-ingesting old files loads none of their rows (they are counted as E_ERASED and not
    kept). The audit log records the erasure under the pseudonymized key only.

    Exports that held the person are reached too: the service's exports lose their rows,
    export files tribes wrote (tribes export --out) are rewritten without them, and
    activation targets are sent their removal at the next sync. Each is listed with what
    was done, so the people it was given to can be told.

    [bold]Example[/bold]: tribes -w shop forget C0000042 --reason "GDPR art.17 request 123"
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with open_engine(ws) as engine:
        result = erase(ws, engine, ident, reason=reason)
    out.result(result.to_dict())
    if not result.rows:
        out.print(f"Nothing stored for '{ident}'; its ids are tombstoned all the same, so "
                  "future ingests will not load them.")
        return
    out.print(f"Erased customer_key [bold]{result.customer_key}[/bold]: {result.rows:,} rows "
              f"in {len(result.deleted)} tables; {result.ids} id(s) tombstoned.")
    out.table(None, ["table", "rows deleted"], sorted(result.deleted.items()))
    live = result.realtime
    if live.get("status") == "erased":
        out.print(f"Real-time state: {live['keys']} key(s), {live['timers']} timer(s), "
                  f"{live['triggers']} trigger(s) on the output stream erased.")
    elif live:
        out.print(f"Real-time state (Redis): {live['status']}.")
    if result.exports:
        out.print("[yellow]Exports made earlier held this person (tell the people they were "
                  "given to):[/yellow]")
        out.table(None, ["export", "what", "made", "erasure"],
                  [(e["export_id"], e["what"], str(e["created_at"])[:19], e["erasure"])
                   for e in result.exports])


def register(app: typer.Typer) -> None:
    app.command()(forget)
