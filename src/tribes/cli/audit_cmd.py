"""``tribes audit``: read and verify the hash-chained audit log."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import typer

from tribes.cli.common import JsonOpt, Output, parse_when, state
from tribes.errors import TribesError
from tribes.privacy import read_audit, select_records, verify_audit
from tribes.store import ANCHOR, open_engine, read_anchor

log = logging.getLogger(__name__)
app = typer.Typer(help="The audit log: who changed or read what, when. List or verify it.",
                  no_args_is_help=True)


class TamperedError(TribesError):
    code = "E_AUDIT_TAMPERED"
    exit_code = 4

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "problems": self.problems}


@app.command("list")
def list_(
    ctx: typer.Context,
    since: Annotated[str | None, typer.Option(
        "--since", help="Only records at or after this date/time (UTC unless an offset is "
        "given).", show_default=False)] = None,
    action: Annotated[str | None, typer.Option(
        "--action", help="Only actions starting with this (ingest, segment, versions, "
        "forget, read, keys, ...).", show_default=False)] = None,
    actor: Annotated[str | None, typer.Option(
        "--actor", help="Only this actor (cli:<user> or key:<name>).",
        show_default=False)] = None,
    key: Annotated[str | None, typer.Option(
        "--key", help="Only records concerning this pseudonymized customer key.",
        show_default=False)] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=0,
                                       help="Show the newest N (0 = all).")] = 50,
    json_out: JsonOpt = False,
) -> None:
    """Records of the audit log, oldest first.

    [bold]Examples[/bold]: tribes -w shop audit list --since 2026-01-01;
    tribes -w shop audit list --action forget --json
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    when = parse_when(since, "--since") if since is not None else None
    recs = select_records(read_audit(ws.path), since=when, action=action,
                          actor=actor, key=key)
    shown = recs[-limit:] if limit else recs
    out.result({"records": shown, "matched": len(recs)})
    out.table(f"Audit log ({len(shown)} of {len(recs)} matching records)",
              ["#", "at", "actor", "action", "target", "rows"],
              [(r["seq"], r["at"][:19].replace("T", " "), r["actor"], r["action"],
                r["target"], r["rows"]) for r in shown])


@app.command()
def verify(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Check that no record was edited, inserted, reordered or deleted, and that the
    log was not emptied or replaced: the workspace database keeps the number and hash of
    a recent record (updated by every command that writes there), which the log must
    hold.

    Exits 0 when the chain is intact, 4 (E_AUDIT_TAMPERED) when it is not, listing every
    problem found.

    [bold]Example[/bold]: tribes -w shop audit verify
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    try:
        with open_engine(ws, read_only=True) as engine:
            # a workspace made before anchors gets its table at the next write
            anchor, anchored = read_anchor(engine), engine.has_table(ANCHOR)
    except TribesError as exc:  # in use by a writer: the chain and head are still checked
        log.warning("the database's anchor of the log was not checked: %s", exc.message)
        anchor, anchored = None, False
    result = verify_audit(ws.path, ws.secret(), anchor=anchor, anchored=anchored)
    if result.ok:
        out.result(result.to_dict())
        out.print(f"The audit log is intact: {result.records:,} records, chain and head "
                  f"verified; anchor: {result.anchor}.")
        return
    for problem in result.problems:
        out.print(f"  - {problem}")
    raise TamperedError(f"the audit log was tampered with: {len(result.problems)} "
                        f"problem(s) in {result.records:,} records; first: "
                        f"{result.problems[0]}", result.problems)
