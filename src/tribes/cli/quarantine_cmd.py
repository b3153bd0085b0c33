"""``tribes quarantine``: inspect and export the rows that did not load."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tribes.cli.common import JsonOpt, Output, state, writable
from tribes.engine.io import write_table
from tribes.errors import InputError
from tribes.ingest.quarantine import quarantined
from tribes.store.db import open_engine

app = typer.Typer(help="Inspect and export quarantined rows (rows that did not load).",
                  no_args_is_help=True)

ReasonOpt = Annotated[str | None, typer.Option(
    "--reason", "-r", help="Only this reason code, e.g. E_TS_PARSE.", show_default=False)]
BatchOpt = Annotated[str | None, typer.Option("--batch", "-b", help="Only this batch id.",
                                              show_default=False)]
SourceOpt = Annotated[str | None, typer.Option("--source", "-s", help="Only this source.",
                                               show_default=False)]


@app.command()
def show(
    ctx: typer.Context,
    reason: ReasonOpt = None,
    batch: BatchOpt = None,
    source: SourceOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Rows to show.")] = 20,
    json_out: JsonOpt = False,
) -> None:
    """Show quarantined rows with their reason and message (newest first).

    Identifiers in the stored rows are pseudonyms, like everywhere in the workspace.

    [bold]Example[/bold]: tribes -w shop quarantine show --reason E_TS_PARSE --limit 20
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with open_engine(ws, read_only=False) as engine:
        q = quarantined(engine, reason=reason, batch=batch, source=source)
        total = int(engine.scalar(q.count()))
        rows = engine.execute(q.limit(limit)).to_dict("records")
    out.result({"total": total, "rows": rows})
    if not total:
        out.print("No quarantined rows match.")
        return
    out.table(f"{min(limit, total):,} of {total:,} quarantined rows",
              ["reason", "source", "message", "raw"],
              [(r["reason"], r["source"], r["message"], _short(r["raw"])) for r in rows])


@app.command()
def export(
    ctx: typer.Context,
    out_path: Annotated[Path, typer.Option("--out", "-o", help="File to write (.csv or "
                                           ".parquet).")],
    reason: ReasonOpt = None,
    batch: BatchOpt = None,
    source: SourceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Write quarantined rows to a CSV or Parquet file to fix and re-ingest them.

    [bold]Example[/bold]: tribes -w shop quarantine export --out bad_rows.csv
    """
    out = Output(ctx, json_out)
    fmt = out_path.suffix.lower().lstrip(".")
    if fmt not in ("csv", "parquet"):
        raise InputError(f"cannot export to '{out_path.name}'; use a .csv or .parquet name",
                         code="E_FORMAT")
    ws = state(ctx).open()
    with open_engine(ws) as engine:
        n = write_table(engine, quarantined(engine, reason=reason, batch=batch, source=source),
                        writable(out_path), fmt)
        engine.audit("export", target=str(out_path), rows=n,
                     detail={"what": "quarantine", "format": fmt, "reason": reason,
                             "batch": batch, "source": source})
    out.result({"out": str(out_path), "rows": n})
    out.print(f"Wrote {n:,} quarantined rows to {out_path}")


def _short(text: str | None, width: int = 90) -> str:
    if not text:
        return ""
    return text if len(text) <= width else text[: width - 1] + "…"
