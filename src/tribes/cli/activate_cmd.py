"""``tribes activate``: segment memberships to a CRM/CDP endpoint or to files."""

from __future__ import annotations

from typing import Annotated

import typer

from tribes.cli.common import JsonOpt, Output, opened, state
from tribes.store import open_engine
from tribes.sync import history as syncs
from tribes.sync import sync


def _segment_list(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter("use segment ids, e.g. 1,3", param_hint="--segments") from None


def activate(
    ctx: typer.Context,
    target: Annotated[str, typer.Option(
        "--target", "-t", help="A target of tribes.toml: \\[activation.NAME].")],
    segments: Annotated[str | None, typer.Option(
        "--segments", "-s", help="Only these segment ids of the active version, e.g. 1,3 "
        "(default: all).", show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show what would be sent; send and record nothing.")] = False,
    full: Annotated[bool, typer.Option(
        "--full", help="Send every member again, not only the changes (files: a full "
        "export).")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Push segment memberships of the active version to a CRM/CDP: the changes since the
    last sync, as signed, batched upserts and removals with idempotency keys (an http
    target), or CSV/Parquet files with a manifest (a file target). Customers who refused
    the target's consent purposes are never sent, and are removed if they were.

    A sync that fails half-way keeps what was delivered; run it again and only the rest
    goes (exit status 4 says it stopped).

    [bold]Examples[/bold]

      tribes -w shop activate --target crm --segments 1,3 --dry-run

      tribes -w shop activate --target crm

      tribes -w shop activate --target lake --full
    """
    out = Output(ctx, json_out)
    wanted = _segment_list(segments)
    ws = state(ctx).open()
    with opened(ws, read_only=dry_run) as run, out.progress("activating") as task:
        r = sync(run, target, segments=wanted, full=full, dry_run=dry_run,
                 progress=task.step)
    out.result(r.as_dict())
    what = f"{r.upserts:,} upserts and {r.removals:,} removals"
    if dry_run:
        out.print(f"Would send {what} to [bold]{target}[/bold] (version {r.version}); "
                  "nothing sent.")
    elif r.status == "nothing":
        out.print(f"[bold]{target}[/bold] is up to date with version {r.version}: nothing "
                  "to send.")
    elif r.status == "done":
        out.print(f"Sent {what} to [bold]{target}[/bold] (version {r.version}) in "
                  f"{r.batches} batch(es): {r.location}")
        for f in r.files:
            out.print(f"  {f['name']}: {f['rows']:,} rows, sha256 {f['sha256'][:12]}…")
    else:
        out.print(f"[yellow]Stopped[/yellow] after {r.delivered} of {r.batches} batches "
                  f"({r.error}). What was delivered is kept; run the same command again "
                  "to send the rest.")
        raise typer.Exit(4)


def history(
    ctx: typer.Context,
    target: Annotated[str | None, typer.Option("--target", "-t", help="Only this target.",
                                               show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    """Earlier syncs, newest first.

    [bold]Example[/bold]: tribes -w shop activate-history --target crm
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with open_engine(ws, read_only=True) as engine:
        rows = syncs(engine, target)
    out.result({"syncs": rows})
    if not rows:
        out.print("No sync yet: tribes activate --target NAME")
        return
    out.table("Syncs", ["finished (UTC)", "target", "version", "upserts", "removals",
                        "batches", "status", "where"],
              [(str(r["finished_at"])[:16], r["target"], r["version"], r["upserts"],
                r["removals"], f"{r['delivered']}/{r['batches']}", r["status"],
                r["location"]) for r in rows])


def register(app: typer.Typer) -> None:
    app.command()(activate)
    app.command("activate-history")(history)
