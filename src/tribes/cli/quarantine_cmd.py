"""``tribes quarantine``: inspect, repair, export and drop the rows that did not load."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import ibis
import typer
from rich.markup import escape

from tribes.cli.common import JsonOpt, Output, opened, state, writable
from tribes.errors import InputError
from tribes.ingest import (
    REASONS,
    IngestOptions,
    drop_quarantined,
    flat_records,
    parse_map_option,
    parse_pairs,
    quarantined,
    replay_quarantined,
)
from tribes.store import accounting, open_engine

app = typer.Typer(help="Inspect, repair (replay), export and drop quarantined rows (rows "
                  "that did not load).", no_args_is_help=True)

ReasonOpt = Annotated[str | None, typer.Option(
    "--reason", "-r", help="Only this reason code, e.g. E_TS_PARSE.", show_default=False)]
BatchOpt = Annotated[str | None, typer.Option("--batch", "-b", help="Only this batch id.",
                                              show_default=False)]
SourceOpt = Annotated[str | None, typer.Option("--source", "-s", help="Only this source.",
                                               show_default=False)]
StatusOpt = Annotated[str, typer.Option(
    "--status", help="open (not yet replayed or dropped), replayed, dropped or all.")]


@app.command()
def show(
    ctx: typer.Context,
    reason: ReasonOpt = None,
    batch: BatchOpt = None,
    source: SourceOpt = None,
    status: StatusOpt = "open",
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Rows to show.")] = 20,
    json_out: JsonOpt = False,
) -> None:
    """Show quarantined rows with their reason and message (newest first).

    By default only the open rows: those not replayed or dropped yet (their count is
    beside). Identifiers in the stored rows are pseudonyms, like everywhere in the
    workspace.

    [bold]Example[/bold]: tribes -w shop quarantine show --reason E_TS_PARSE --limit 20
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with open_engine(ws, read_only=False) as engine:
        q = quarantined(engine, reason=reason, batch=batch, source=source, status=status)
        total = int(engine.scalar(q.count()))
        rows = [{k: None if v is None or v != v else v for k, v in r.items()}  # NaN: None
                for r in engine.execute(q.limit(limit).drop("record", "hashed", "record_key")
                                        ).to_dict("records")]
        counts = accounting(engine)
    resolved = {"replayed": counts["replayed"], "dropped": counts["dropped"]}
    out.result({"total": total, "rows": rows, "resolved": resolved})
    beside = (f" ({resolved['replayed']:,} replayed and {resolved['dropped']:,} dropped "
              "earlier: --status all)") if status == "open" and any(resolved.values()) else ""
    if not total:
        out.print(f"No {status if status != 'all' else ''} quarantined rows match."
                  .replace("  ", " ") + beside)
        return
    title = (f"{min(limit, total):,} of {total:,} {'' if status == 'all' else status} "
             f"quarantined rows{beside}")
    if status == "open":
        out.table(title, ["reason", "source", "message", "raw"],
                  [(r["reason"], r["source"], r["message"], _short(r["raw"])) for r in rows])
    else:
        out.table(title, ["reason", "status", "resolved by", "note", "message"],
                  [(r["reason"], r["status"] or "open", r["resolved_by"] or "",
                    r["note"] or "", r["message"]) for r in rows])
    if status == "open":
        out.print("Repair them with: tribes quarantine replay --reason CODE [--map ...] "
                  "[--ts-format ...]; give them up with: tribes quarantine drop --why TEXT")


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
    """Write the open quarantined rows to a flat CSV or Parquet file to fix by hand and
    ingest again.

    The file has the source's own columns (ids as pseudonyms), and first a few columns
    named _tribes_*: which quarantined row each line is (_tribes_batch, _tribes_key),
    which columns hold pseudonyms (_tribes_hashed), and why it was quarantined. Fix the
    values, keep those columns, and ingest the file: its pseudonyms are not hashed
    again, its events keep their ids, and the rows it loads leave the quarantine.
    Unparseable lines and rows of erased people have no stored record and are not
    written.

    [bold]Example[/bold]

      tribes -w shop quarantine export --reason E_TS_PARSE --out bad_rows.csv

      (fix the timestamps in a spreadsheet, then)

      tribes -w shop ingest bad_rows.csv --ts-format '%d.%m.%Y %H:%M'
    """
    out = Output(ctx, json_out)
    fmt = out_path.suffix.lower().lstrip(".")
    if fmt not in ("csv", "parquet"):
        raise InputError(f"cannot export to '{out_path.name}'; use a .csv or .parquet name",
                         code="E_FORMAT")
    ws = state(ctx).open()
    with open_engine(ws) as engine:
        rows = quarantined(engine, reason=reason, batch=batch, source=source)
        total = int(engine.scalar(rows.count()))
        flat = flat_records(engine, rows)
        n = engine.write_table(ibis.memtable(flat, schema={c: "string" for c in flat.columns}),
                               writable(out_path), fmt) if len(flat) else 0
        engine.audit("export", target=str(out_path), rows=n,
                     detail={"what": "quarantine", "format": fmt, "reason": reason,
                             "batch": batch, "source": source})
    out.result({"out": str(out_path), "rows": n, "without_record": total - n})
    out.print(f"Wrote {n:,} quarantined rows to {out_path}")
    if total > n:
        out.print(f"{total - n:,} matching rows have no stored record (unparseable lines, "
                  "erased people, rows quarantined by an older version): drop them, or "
                  "ingest their file again")


@app.command("replay")
def replay_command(
    ctx: typer.Context,
    reason: ReasonOpt = None,
    batch: BatchOpt = None,
    source: SourceOpt = None,
    map_: Annotated[list[str] | None, typer.Option(
        "--map", "-m", help="target=source column pairs on top of the batch's mapping, "
        "e.g. --map amount=dollar_value.", show_default=False)] = None,
    event_type: Annotated[str | None, typer.Option(
        "--event-type", help="Event type for every replayed row (e.g. purchase).",
        show_default=False)] = None,
    ts_format: Annotated[str | None, typer.Option(
        "--ts-format", help="strftime format of the timestamps, e.g. '%d.%m.%Y %H:%M'.",
        show_default=False)] = None,
    tz: Annotated[str | None, typer.Option(
        "--tz", help="Zone of timestamps written without an offset.", show_default=False)
    ] = None,
    decimal: Annotated[str | None, typer.Option(
        "--decimal", help="Decimal mark of numbers written as text: '.' or ','.",
        show_default=False)] = None,
    alias: Annotated[list[str] | None, typer.Option(
        "--event-type-alias", "--alias", help="FROM=TO: read event type FROM as TO (on top "
        "of ingest.event_type_aliases), e.g. --alias kauf=purchase.", show_default=False)
    ] = None,
    missing: Annotated[list[str] | None, typer.Option(
        "--missing", help="COLUMN=POLICY on top of [missing.<kind>]: flag, drop, median, "
        "mode or constant:VALUE, e.g. --missing amount=flag keeps purchases without an "
        "amount.", show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    """Load open quarantined rows again, with new options.

    Each batch's rows are read as that batch read them (its mapping, event type,
    timestamp format), with the options given here on top. Identifiers stay the
    pseudonyms they are (nobody is split in two), and events get the ids the original
    file gives them, so the result is what ingesting the original file with these
    options would have given. Rows that load, or were loaded already, leave the
    quarantine (status replayed); rows that fail again stay, under the replay's batch,
    with their new reason. Each replay is a batch of its own in tribes status.

    [bold]Examples[/bold]

      tribes -w shop quarantine replay --reason E_AMOUNT --map amount=dollar_value

      tribes -w shop quarantine replay --reason E_TS_PARSE --ts-format '%d.%m.%Y %H:%M'

      tribes -w shop quarantine replay --reason E_EVENT_TYPE --alias kauf=purchase

      tribes -w shop quarantine replay --reason E_AMOUNT --missing amount=flag
    """
    out = Output(ctx, json_out)
    if decimal is not None and decimal not in (".", ","):
        raise typer.BadParameter("use '.' or ','", param_hint="--decimal")
    ws = state(ctx).open()
    opts = IngestOptions(mapping=parse_map_option(map_), event_type=event_type,
                         ts_format=ts_format, tz=tz, decimal=decimal,
                         aliases=parse_pairs(alias, "--alias", "kauf=purchase"),
                         missing=parse_pairs(missing, "--missing", "amount=flag"))
    with opened(ws) as run, out.progress("replaying quarantined rows") as task:
        result = replay_quarantined(run, opts, reason=reason, batch=batch, source=source,
                                    progress=task.step)
    out.result(result.to_dict())
    if not result.selected:
        out.print("No open quarantined rows match.")
        return
    out.print(f"{result.replayed:,} quarantined rows read again in {len(result.batches)} "
              f"batch(es) -> [green]{result.loaded:,} loaded[/green], "
              f"{result.duplicates:,} duplicates (stored already), "
              f"[yellow]{sum(result.still_quarantined.values()):,} still quarantined"
              "[/yellow]")
    for s in result.batches:
        out.print(f"  batch [bold]{s.batch_id}[/bold] read {s.files[0]}: {s.loaded:,} loaded")
    if result.still_quarantined:
        out.table("Still quarantined", ["reason", "rows", "meaning"],
                  [(r, n, REASONS.get(r, "")) for r, n in result.still_quarantined.items()])
    for s in result.batches:
        for hint in s.hints:
            out.print(f"[yellow]hint:[/yellow] {escape(hint)}")
    if result.not_replayable:
        n = sum(result.not_replayable.values())
        out.print(f"{n:,} matching rows have no stored record ("
                  + ", ".join(f"{r} {k:,}" for r, k in result.not_replayable.items())
                  + "): ingest their file again, or give them up with tribes quarantine "
                  "drop --why TEXT")


@app.command("drop")
def drop_command(
    ctx: typer.Context,
    why: Annotated[str, typer.Option("--why", help="Why these rows are given up (kept "
                                     "with them and in the audit log).")],
    reason: ReasonOpt = None,
    batch: BatchOpt = None,
    source: SourceOpt = None,
    all_: Annotated[bool, typer.Option("--all", help="Drop every open row (no filter).")
                    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Give up open quarantined rows: they are kept, marked dropped with the reason you
    give, and no longer count as open in status and the report.

    [bold]Example[/bold]: tribes -w shop quarantine drop --reason E_NO_ID --why "bot
    traffic without ids"
    """
    out = Output(ctx, json_out)
    if reason is None and batch is None and source is None and not all_:
        raise InputError("name the rows to drop with --reason, --batch or --source, or "
                         "pass --all", code="E_DROP")
    ws = state(ctx).open()
    n = drop_quarantined(ws, why, reason=reason, batch=batch, source=source)
    out.result({"dropped": n, "why": why})
    out.print(f"Dropped {n:,} quarantined rows ({why})." if n else
              "No open quarantined rows match.")


def _short(text: str | None, width: int = 90) -> str:
    if not text:
        return ""
    return text if len(text) <= width else text[: width - 1] + "…"
