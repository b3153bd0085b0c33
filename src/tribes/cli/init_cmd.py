"""``tribes init``: create a workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tribes.cli.common import JsonOpt, Output, state
from tribes.workspace import DEFAULT_WORKSPACE, SECRET_FILE, init_workspace


def init(
    ctx: typer.Context,
    path: Annotated[Path | None, typer.Argument(
        help="Directory to create (default: --workspace, else ./tribes-workspace).",
        show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Rewrite tribes.toml with the "
                                        "defaults (the secret key is never replaced).")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Create a workspace: tribes.toml, a secret key (mode 0600) and the database.

    Running it again on an existing workspace changes nothing.

    [bold]Example[/bold]: tribes init shop
    """
    out = Output(ctx, json_out)
    target = path or state(ctx).workspace or Path(DEFAULT_WORKSPACE)
    existed = (target / "tribes.toml").exists()
    ws = init_workspace(target, force=force)
    out.result({"workspace": str(ws.path), "created": not existed,
                "config": str(ws.path / "tribes.toml"), "secret": str(ws.path / SECRET_FILE)})
    verb = "Using existing" if existed else "Created"
    out.print(f"{verb} workspace [bold]{ws.path}[/bold]")
    out.print(f"  config  {ws.path / 'tribes.toml'}")
    out.print(f"  key     {ws.path / SECRET_FILE} (keep it safe: it links pseudonyms to ids)")
    out.print(f"Next: tribes --workspace {ws.path} ingest <files> --source web")


def register(app: typer.Typer) -> None:
    app.command()(init)
