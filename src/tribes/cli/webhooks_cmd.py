"""``tribes webhooks``: endpoints that receive triggers (signed, retried, dead-lettered)."""

from __future__ import annotations

from typing import Annotated

import typer

from tribes.cli.common import JsonOpt, Output, state
from tribes.privacy import audit
from tribes.realtime import deadletters as webhooks_deadletters
from tribes.realtime import registry
from tribes.realtime import replay as webhooks_replay

app = typer.Typer(help="Webhook endpoints for triggers: add, list, remove, dead letters, "
                  "replay.", no_args_is_help=True)


@app.command()
def add(
    ctx: typer.Context,
    url: Annotated[str, typer.Option("--url", help="http(s) endpoint that receives a POST "
                                     "per trigger.")],
    events: Annotated[str, typer.Option(
        "--events", help="Comma-separated event types or patterns: trigger.*, segment.*, "
        "trigger.abandoned_cart, segment.entered, alert.* (tribes monitor), ...")
    ] = "trigger.*,segment.*",
    secret: Annotated[str | None, typer.Option(
        "--secret", help="Signing secret (16+ characters); default: a new random one, "
        "printed once.", show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    """Add an endpoint. Every delivery is signed: header X-Tribes-Signature
    "t=<unix time>,v1=<hex HMAC-SHA256 of '<t>.<body>'>" with the secret.

    [bold]Example[/bold]

      tribes -w shop webhooks add --url https://crm.example.com/hooks --events 'trigger.*'
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    hook = registry(ws).add(url, events.split(","), secret)
    audit(ws, "webhooks.add", target=hook.hook_id, detail={"url": hook.url,
                                                          "events": list(hook.events)})
    out.result({**hook.public(), "secret": hook.secret})
    out.print(f"Webhook [bold]{hook.hook_id}[/bold] -> {hook.url} for "
              f"{', '.join(hook.events)}.")
    if secret is None:
        out.print(f"\n  signing secret: {hook.secret}\n\nIt is shown only now; the receiver "
                  "needs it to check X-Tribes-Signature.")
    out.print("tribes stream delivers to it from now on (restart a running one).")


@app.command("list")
def list_(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """The endpoints (never their secrets).

    [bold]Example[/bold]: tribes -w shop webhooks list
    """
    out = Output(ctx, json_out)
    hooks = [h.public() for h in registry(state(ctx).open()).hooks()]
    out.result({"webhooks": hooks})
    out.table("Webhooks", ["id", "url", "events", "created"],
              [(h["id"], h["url"], ", ".join(h["events"]), h["created_at"]) for h in hooks])


@app.command()
def remove(
    ctx: typer.Context,
    hook_id: Annotated[str, typer.Argument(help="Webhook id (see: tribes webhooks list).")],
    json_out: JsonOpt = False,
) -> None:
    """Remove an endpoint; pending retries to it are dropped.

    [bold]Example[/bold]: tribes -w shop webhooks remove wh_1a2b3c4d5e6f
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    registry(ws).remove(hook_id)
    audit(ws, "webhooks.remove", target=hook_id)
    out.result({"removed": hook_id})
    out.print(f"Removed webhook {hook_id}.")


@app.command()
def deadletters(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Also those already replayed.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Deliveries that failed every attempt.

    [bold]Example[/bold]: tribes -w shop webhooks deadletters
    """
    out = Output(ctx, json_out)
    df = webhooks_deadletters(state(ctx).open(), pending_only=not all_)
    recs = df.drop(columns=["trigger"]).to_dict("records")
    out.result({"deadletters": recs})
    out.table("Dead letters", ["id", "webhook", "trigger", "type", "attempts", "last error",
                               "failed at", "replayed"],
              [(r["deadletter_id"], r["webhook_id"], r["trigger_id"], r["type"],
                int(r["attempts"]), r["last_error"], str(r["failed_at"])[:19],
                str(r["replayed_at"])[:19] if r["replayed_at"] is not None
                and r["replayed_at"] == r["replayed_at"] else "-") for r in recs])


@app.command()
def replay(
    ctx: typer.Context,
    deadletter_id: Annotated[str | None, typer.Option(
        "--id", help="Only this dead letter.", show_default=False)] = None,
    hook_id: Annotated[str | None, typer.Option(
        "--webhook", help="Only dead letters of this webhook.", show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    """Send dead letters again (same idempotency key and body, a new signature).

    [bold]Example[/bold]: tribes -w shop webhooks replay --webhook wh_1a2b3c4d5e6f
    """
    out = Output(ctx, json_out)
    res = webhooks_replay(state(ctx).open(), deadletter_id=deadletter_id, hook_id=hook_id)
    out.result(res)
    out.print(f"Replayed {res['replayed']} dead letters; {res['failed']} failed again.")
    if res["failed"]:
        raise typer.Exit(1)
