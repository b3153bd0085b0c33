"""``tribes export``: write a workspace table to CSV or Parquet for other tools."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tribes.cli.common import JsonOpt, Output, opened, state, writable
from tribes.errors import InputError
from tribes.store import EXPORTABLE, export_table


def export(
    ctx: typer.Context,
    what: Annotated[str, typer.Argument(help=f"What to export: {', '.join(EXPORTABLE)}.")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="File to write.")],
    fmt: Annotated[str | None, typer.Option(
        "--format", "-f", help="parquet or csv (default: from the --out suffix, else "
        "parquet).", show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    """Export customer features, sessions, segments or CLV scores (customers without
    consent are left out).

    [bold]Examples[/bold]

      tribes -w shop export features --format parquet --out features.parquet

      tribes -w shop export sessions --out sessions.csv

      tribes -w shop export clv --out clv.parquet
    """
    out = Output(ctx, json_out)
    if what not in EXPORTABLE:
        raise InputError(f"cannot export '{what}'; choose one of {', '.join(EXPORTABLE)}",
                         code="E_EXPORT")
    if fmt is None:
        fmt = "csv" if out_path.suffix.lower() in (".csv", ".gz") else "parquet"
    if fmt not in ("csv", "parquet"):
        raise typer.BadParameter("use csv or parquet", param_hint="--format")
    ws = state(ctx).open()
    with opened(ws) as run, out.progress(f"exporting {what}"):
        rows = export_table(run, what, writable(out_path), fmt)
    out.result({"what": what, "path": str(out_path), "format": fmt, "rows": rows})
    out.print(f"wrote {rows:,} {what} rows to {out_path} ({fmt})")


def register(app: typer.Typer) -> None:
    app.command()(export)
