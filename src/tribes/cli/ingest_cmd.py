"""``tribes ingest``: load files into the workspace."""

from __future__ import annotations

from typing import Annotated

import typer

from tribes.cli.common import JsonOpt, Output, state
from tribes.ingest import IngestOptions
from tribes.ingest.mapping import parse_map_option
from tribes.ingest.spec import KINDS, REASONS
from tribes.ops.ingest import ingest_checked


def ingest_command(
    ctx: typer.Context,
    inputs: Annotated[list[str], typer.Argument(
        help="Files, globs or directories (csv, parquet, jsonl; .gz allowed).")],
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
        "(default: ISO-8601 or epoch s/ms).", show_default=False)] = None,
    tz: Annotated[str | None, typer.Option(
        "--tz", help="Zone of timestamps written without an offset, e.g. Europe/Paris "
        "(default: ingest.default_tz, UTC).", show_default=False)] = None,
    fmt: Annotated[str | None, typer.Option(
        "--format", help="csv, parquet or jsonl when the file name does not tell.",
        show_default=False)] = None,
    delimiter: Annotated[str | None, typer.Option(
        "--delimiter", help="CSV delimiter, or 'whitespace' for fields separated by runs of "
        "blanks (default: sniffed).", show_default=False)] = None,
    encoding: Annotated[str | None, typer.Option(
        "--encoding", help="utf-8, utf-16 or latin-1 (default: sniffed).",
        show_default=False)] = None,
    no_header: Annotated[bool, typer.Option(
        "--no-header", help="CSV has no header line (columns are column0, column1...).")] = False,
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
    """
    out = Output(ctx, json_out)
    if kind not in KINDS:
        raise typer.BadParameter(f"use one of {', '.join(KINDS)}", param_hint="--kind")
    if fmt is not None and fmt not in ("csv", "parquet", "jsonl"):
        raise typer.BadParameter("use csv, parquet or jsonl", param_hint="--format")
    ws = state(ctx).open()
    opts = IngestOptions(
        kind=kind, source=source, mapping=parse_map_option(map_), event_type=event_type,
        ts_format=ts_format, tz=tz, fmt=fmt, delimiter=delimiter, encoding=encoding,
        header=not no_header,
    )
    with out.progress(f"ingesting {kind}") as task:
        checked = ingest_checked(ws, inputs, opts, progress=task.step)
    summary = checked.summary
    result = summary.to_dict() | {"webhooks": checked.webhooks}
    result["quarantined_total"] = summary.n_quarantined
    out.result(result)
    out.table("Column mapping", ["target", "source column"], list(summary.mapping.items()))
    out.print(
        f"batch [bold]{summary.batch_id}[/bold]: {summary.rows_read:,} rows read from "
        f"{len(summary.files)} file(s) in {summary.seconds:.1f}s -> "
        f"[green]{summary.loaded:,} loaded[/green], {summary.duplicates:,} duplicates, "
        f"[yellow]{summary.n_quarantined:,} quarantined[/yellow]"
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
        out.print(f"[{color}]alert #{a['alert_id']} ({a['kind']}):[/{color}] {a['message']}")
    if summary.alerts:
        out.print("Data-quality alerts: tribes alerts list; close one with tribes alerts ack ID")


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest_command)
