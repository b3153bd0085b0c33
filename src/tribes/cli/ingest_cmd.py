"""``tribes ingest``: load files into the workspace."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.markup import escape

from tribes.api import Workspace
from tribes.cli.common import JsonOpt, Output, state
from tribes.errors import InputError
from tribes.ingest import KINDS, REASONS, parse_map_option


def ingest_command(
    ctx: typer.Context,
    inputs: Annotated[list[str], typer.Argument(
        help="Files, globs or directories (csv/tsv/txt, parquet, jsonl; .gz or .zst "
        "compressed allowed).")],
    kind: Annotated[str, typer.Option(
        "--kind", "-k", help="events, customers (profiles) or consents.")] = "events",
    source: Annotated[str | None, typer.Option(
        "--source", "-s", help="Feed name stored on each event (web, app, pos, support...); "
        "default: the file name.", show_default=False)] = None,
    map_: Annotated[list[str] | None, typer.Option(
        "--map", "-m", help="target=source column pairs, comma-separated or repeated, e.g. "
        "--map ts=sold_at,customer_id=member_no.", show_default=False)] = None,
    event_type: Annotated[str | None, typer.Option(
        "--event-type", help="Event type for every row of files without one (e.g. purchase).",
        show_default=False)] = None,
    ts_format: Annotated[str | None, typer.Option(
        "--ts-format", help="strftime format of the timestamps, e.g. '%d/%m/%Y %H:%M' "
        "(default: ISO-8601 or epoch s/ms, or a common format sniffed from the first "
        "values, named in a note).", show_default=False)] = None,
    tz: Annotated[str | None, typer.Option(
        "--tz", help="Zone of timestamps written without an offset, e.g. Europe/Paris "
        "(default: ingest.default_tz, UTC).", show_default=False)] = None,
    fmt: Annotated[str | None, typer.Option(
        "--format", help="csv, parquet or jsonl when the file name does not tell.",
        show_default=False)] = None,
    delimiter: Annotated[str | None, typer.Option(
        "--delimiter", help="Field delimiter of text files: one character (',' ';' '|'), "
        "'tab', or 'whitespace' for fields separated by runs of blanks, as in fixed-width "
        "exports (default: sniffed).", show_default=False)] = None,
    encoding: Annotated[str | None, typer.Option(
        "--encoding", help="utf-8, utf-16 or latin-1 (read as Windows-1252) (default: "
        "sniffed; a file that starts in plain ASCII and turns out not to be UTF-8 is read "
        "as latin-1).", show_default=False)] = None,
    header: Annotated[bool | None, typer.Option(
        "--header/--no-header", help="Whether the first line of text files holds column "
        "names; without one, columns are column0, column1... (default: sniffed: no header "
        "when the first line holds numbers or dates like the lines below it).",
        show_default=False)] = None,
    decimal: Annotated[str | None, typer.Option(
        "--decimal", help="Decimal mark of numbers written as text: '.' (1,234.50) or ',' "
        "(1.234,50 as written in much of Europe). Default: sniffed, ',' only for files "
        "not delimited by commas whose numbers all use a decimal comma.",
        show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    """Validate, pseudonymize, deduplicate and load files as one batch.

    Every row is loaded, counted as a duplicate (its event id is already stored), or
    quarantined with a reason code; `tribes quarantine show` lists those. Re-ingesting
    a file loads nothing new. A failed batch leaves the workspace unchanged.

    [bold]Examples[/bold]

      tribes -w shop ingest 'data/web/*.csv.gz' --source web

      tribes -w shop ingest data/purchases.parquet --source pos --event-type purchase
      --map ts=sold_at,customer_id=member_no

      tribes -w shop ingest data/customers.csv --kind customers

      tribes -w shop ingest export.csv --delimiter ';' --decimal , --encoding latin-1

      tribes -w shop ingest CDNOW_master.txt --no-header --event-type purchase
      --map customer_id=column0,ts=column1,quantity=column2,amount=column3

      tribes -w shop ingest tickets.csv --source support --ts-format '%d/%m/%Y %H:%M'
    """
    out = Output(ctx, json_out)
    if kind not in KINDS:
        raise typer.BadParameter(f"use one of {', '.join(KINDS)}", param_hint="--kind")
    if fmt is not None and fmt not in ("csv", "parquet", "jsonl"):
        raise typer.BadParameter("use csv, parquet or jsonl", param_hint="--format")
    if decimal is not None and decimal not in (".", ","):
        raise typer.BadParameter("use '.' or ','", param_hint="--decimal")
    ws = state(ctx).open()
    with out.progress(f"ingesting {kind}") as task:
        res = Workspace(ws).ingest(
            *inputs, kind=kind, source=source, map=parse_map_option(map_),
            event_type=event_type, ts_format=ts_format, tz=tz, format=fmt,
            delimiter=delimiter, encoding=encoding, header=header, decimal=decimal,
            progress=task.step)
    summary = res.report
    result = dict(res.summary)
    limit = ws.config.ingest.max_quarantined_share
    failed = None
    if summary.rows_read and summary.quarantined_share > limit:
        failed = (f"{summary.n_quarantined:,} of {summary.rows_read:,} rows "
                  f"({summary.quarantined_share:.0%}) were quarantined, more than "
                  f"ingest.max_quarantined_share ({limit:.0%}); the {summary.loaded:,} good "
                  "rows are stored. "
                  + (summary.hints[0] if summary.hints else
                     "See why with: tribes quarantine show"))
        result |= {"error": "E_QUARANTINED", "message": failed}
    out.result(result)
    out.table("Column mapping", ["target", "source column"], list(summary.mapping.items()))
    if "delimiter" in summary.read:  # a text file with a sniffed or given layout
        out.print(escape(_read_line(summary.read)))
    for note in summary.read.get("notes", []):
        out.print(f"[yellow]note:[/yellow] {escape(note)}")
    out.print(
        f"batch [bold]{summary.batch_id}[/bold]: {summary.rows_read:,} rows read from "
        f"{len(summary.files)} file(s) in {summary.seconds:.1f}s -> "
        f"[green]{summary.loaded:,} loaded[/green], {summary.duplicates:,} duplicates"
        + (f" ({summary.already_quarantined:,} of them held in quarantine already)"
           if summary.already_quarantined else "")
        + f", [yellow]{summary.n_quarantined:,} quarantined[/yellow]"
    )
    if summary.quarantined:
        out.table(None, ["reason", "rows", "meaning"],
                  [(r, n, REASONS.get(r, "")) for r, n in summary.quarantined.items()])
        out.print("See them with: tribes quarantine show --reason <CODE>")
    missing = {c: m for c, m in summary.missing.items() if m.get("missing")}
    if missing:
        out.table("Missing values", ["column", "policy", "missing", "imputed with"],
                  [(c, m["policy"], m["missing"], m.get("value")) for c, m in missing.items()])
    for a in summary.alerts:
        color = "red" if a["severity"] == "critical" else "yellow"
        out.print(f"[{color}]alert #{a['alert_id']} ({a['kind']}):[/{color}] "
                  f"{escape(a['message'])}")
    if summary.alerts:
        out.print("Data-quality alerts: tribes alerts list; close one with tribes alerts ack ID")
    for column, u in summary.unmatched.items():
        shown = ", ".join(u["examples"]) + (", ..." if u["distinct"] > len(u["examples"]) else "")
        out.print(f"[yellow]unmatched:[/yellow] {u['distinct']:,} {column} value(s) unknown to "
                  f"{u['reference']} ({escape(shown)}); map them in tribes.toml: "
                  f"{escape(u['map_with'])}")
    for hint in summary.hints:
        out.print(f"[yellow]hint:[/yellow] {escape(hint)}")
    if failed:
        sys.stderr.write(f"error [E_QUARANTINED]: {failed}\n")
        raise typer.Exit(InputError.exit_code)


def _read_line(read: dict[str, Any]) -> str:
    """How text files were read, e.g. ``read as: delimiter ';', encoding latin-1, header
    yes, decimal ',' (sniffed: ...)``, so a wrong guess is seen and can be overridden."""
    parts = [f"delimiter '{read['delimiter']}'", f"encoding {read['encoding']}",
             f"header {'yes' if read['header'] else 'no'}", f"decimal '{read['decimal']}'"]
    sniffed = read.get("sniffed") or []
    tail = f" (sniffed: {', '.join(sniffed)})" if sniffed else ""
    return "read as: " + ", ".join(parts) + tail


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest_command)
