"""``tribes init``: create a workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tribes.cli.common import JsonOpt, Output, state
from tribes.engine import DB_KEY_ENV, DB_KEY_FILE
from tribes.store import init_workspace
from tribes.workspace import DEFAULT_WORKSPACE, SECRET_FILE


def init(
    ctx: typer.Context,
    path: Annotated[Path | None, typer.Argument(
        help="Directory to create (default: --workspace, else ./tribes-workspace).",
        show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Rewrite tribes.toml with the "
                                        "defaults (the secret key is never replaced).")] = False,
    encrypt: Annotated[bool, typer.Option(
        "--encrypt", help="Encrypt the database at rest (AES-GCM). Its key is TRIBES_DB_KEY "
        "when set, else a new key in db.key (mode 0600): move it to your secret store and "
        "set TRIBES_DB_KEY.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Create a workspace: tribes.toml, a secret key (mode 0600) and the database.

    Running it again on an existing workspace changes nothing.

    [bold]Examples[/bold]: tribes init shop;  TRIBES_DB_KEY=... tribes init shop --encrypt
    """
    out = Output(ctx, json_out)
    target = path or state(ctx).workspace or Path(DEFAULT_WORKSPACE)
    existed = (target / "tribes.toml").exists()
    ws = init_workspace(target, force=force, encrypt=encrypt)
    db_key = ws.path / DB_KEY_FILE
    encrypted = ws.config.engine.encrypted
    out.result({"workspace": str(ws.path), "created": not existed,
                "config": str(ws.path / "tribes.toml"), "secret": str(ws.path / SECRET_FILE),
                "encrypted": encrypted,
                "db_key": str(db_key) if encrypted and db_key.exists() else None})
    verb = "Using existing" if existed else "Created"
    out.print(f"{verb} workspace [bold]{ws.path}[/bold]" + (" (encrypted)" if encrypted else ""))
    out.print(f"  config  {ws.path / 'tribes.toml'}")
    out.print(f"  key     {ws.path / SECRET_FILE} (keep it safe: it links pseudonyms to ids)")
    if encrypted and db_key.exists():
        out.print(f"  db key  {db_key} [yellow](move it to your secret store and set "
                  f"{DB_KEY_ENV}; a database copied without it cannot be read)[/yellow]")
    elif encrypted:
        out.print(f"  db key  from {DB_KEY_ENV} (set it for every command)")
    out.print(f"Next: tribes --workspace {ws.path} ingest <files> --source web")


def register(app: typer.Typer) -> None:
    app.command()(init)
