"""``tribes keys``: API keys of the service (create, list, revoke)."""

from __future__ import annotations

from typing import Annotated

import typer

from tribes.cli.common import JsonOpt, Output, parse_when, state
from tribes.privacy import audit, create_key, load_keys, revoke_key

app = typer.Typer(help="API keys for tribes serve: create (shown once), list, revoke.",
                  no_args_is_help=True)


@app.command()
def create(
    ctx: typer.Context,
    role: Annotated[str, typer.Option(
        "--role", "-r", help="viewer (aggregates only), analyst (customer-level reads and "
        "runs) or admin (ingest, erasure, activation, keys).")],
    name: Annotated[str, typer.Option("--name", "-n", help="Who uses the key (crm-sync, "
                                      "alice).")],
    expires: Annotated[str | None, typer.Option(
        "--expires", help="Expiry: a duration from now (90d, 12w) or a date (2027-06-30). "
        "Default: never.", show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a key. It is printed once; only its hash is stored.

    [bold]Example[/bold]: tribes -w shop keys create --role analyst --name crm-sync --expires 90d
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    expiry = parse_when(expires, "--expires", durations=True) if expires else None
    text, rec = create_key(ws.path, name=name, role=role, expires_at=expiry)
    audit(ws, "keys.create", target=rec.key_id, detail={"name": rec.name, "role": rec.role,
                                                        "expires_at": rec.expires_at})
    out.result({"key": text, **rec.public()})
    out.print(f"API key for [bold]{rec.name}[/bold] ({rec.role}), id {rec.key_id}:")
    out.print(f"\n  {text}\n")
    out.print("It is shown only now: store it in your secret manager. Use it as "
              "'Authorization: Bearer <key>'.")


@app.command("list")
def list_(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Every key: id, name, role, created, expires, status (never the key itself).

    [bold]Example[/bold]: tribes -w shop keys list
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    rows = [k.public() for k in load_keys(ws.path)]
    out.result({"keys": rows})
    out.table("API keys", ["id", "name", "role", "created", "expires", "status"],
              [(r["key_id"], r["name"], r["role"], r["created_at"], r["expires_at"] or "never",
                r["status"]) for r in rows])


@app.command()
def revoke(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="Key id or name (see: tribes keys list).")],
    json_out: JsonOpt = False,
) -> None:
    """Revoke a key at once; requests with it are refused from now on.

    [bold]Example[/bold]: tribes -w shop keys revoke crm-sync
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    rec = revoke_key(ws.path, key)
    audit(ws, "keys.revoke", target=rec.key_id, detail={"name": rec.name})
    out.result(rec.public())
    out.print(f"Revoked key {rec.key_id} ({rec.name}, {rec.role}).")

