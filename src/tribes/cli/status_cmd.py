"""``tribes status``: what the workspace holds."""

from __future__ import annotations

from typing import Annotated

import typer

from tribes.cli.common import JsonOpt, Output, state
from tribes.ingest import REASONS
from tribes.store import open_engine, workspace_status


def status(
    ctx: typer.Context,
    batches: Annotated[int, typer.Option("--batches", "-n", min=0,
                                         help="How many recent batches to list.")] = 10,
    json_out: JsonOpt = False,
) -> None:
    """Show what the workspace holds: tables, batches, quarantine, missing values, consents.

    Lists row counts per table, the events' date range and sources, recent ingest
    batches, quarantined rows by reason code, missing values per column with their
    declared policy, consent counts per purpose, and the last prep and features runs
    (current = computed from the events stored now).
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with open_engine(ws) as engine:
        st = workspace_status(engine, batches=batches)
    st = {"workspace": str(ws.path), "backend": ws.config.engine.backend, **st}
    out.result(st)
    out.print(f"Workspace [bold]{ws.path}[/bold] ({ws.config.engine.backend})")
    out.table("Tables", ["table", "rows"], list(st["tables"].items()))
    ev = st["events"]
    if ev:
        out.print(f"Events from {ev['first_event']} to {ev['last_event']}, "
                  f"{ev['known_customers']:,} known customer ids")
        out.table("Events by source", ["source", "events"], list(ev["by_source"].items()))
        out.table("Top event types", ["event_type", "events"],
                  list(ev["by_event_type"].items()))
    t = st["ingest_totals"]
    out.print(f"Ingested {t['batches']:,} batches: {t['rows_read']:,} rows read, "
              f"{t['loaded']:,} loaded, {t['duplicates']:,} duplicates, "
              f"{t['quarantined']:,} quarantined (open)"
              + (f", {t['dropped']:,} dropped" if t["dropped"] else "")
              + (f"; {t['replayed']:,} quarantined rows were replayed" if t["replayed"]
                 else ""))
    if st["batches"]:
        out.table("Recent batches (id = start time UTC)",
                  ["batch", "source", "read", "loaded", "dupes", "quarantined"],
                  [(b["batch_id"], b["source"] if b["kind"] == "events" else b["kind"],
                    b["rows_read"], b["loaded"], b["duplicates"], b["quarantined"])
                   for b in st["batches"]])
    if st["quarantine"]:
        out.table("Quarantine by reason (open rows)", ["reason", "rows", "meaning"],
                  [(r, n, REASONS.get(r, "")) for r, n in st["quarantine"].items()])
    if st["open_alerts"]:
        out.table("Open alerts (tribes alerts ack ID closes one)",
                  ["alert", "kind", "severity", "message"],
                  [(f"#{a['alert_id']}", a["kind"], a["severity"], a["message"])
                   for a in st["open_alerts"]])
    rows = [(kind, col, m["policy"], m["missing"], m["imputed"])
            for kind, cols in st["missing"].items() for col, m in cols.items()]
    if rows:
        out.table("Missing values (declared policies)",
                  ["table", "column", "policy", "missing", "imputed"], rows)
    if st["consents"]:
        out.table("Consents (latest choice per customer)",
                  ["purpose", "customers", "granted", "refused"],
                  [(c["purpose"], c["customers"], c["granted"], c["refused"])
                   for c in st["consents"]])
    stages = st["stages"]
    if stages:
        stage_rows: list[tuple[str, str, str, str]] = []
        if "prep" in stages:
            r = stages["prep"]["report"]
            stage_rows.append(("prep", str(stages["prep"]["finished_at"])[:19],
                         "yes" if stages["prep"]["current"] else "no (run tribes prep)",
                         f"{r['stitching']['customers']:,} customers, {r['sessions']:,} "
                         f"sessions"))
        if "features" in stages:
            r = stages["features"]["report"]
            stage_rows.append(("features", str(stages["features"]["finished_at"])[:19],
                         "yes" if stages["features"]["current"] else "no (run tribes features)",
                         f"{r['customers']:,} customers as of {r['as_of'][:19]}"))
        out.table("Stages", ["stage", "last run (UTC)", "current", "result"], stage_rows)
    if not st["tables"].get("events"):
        out.print("No events yet: tribes ingest <files> --source web")


def register(app: typer.Typer) -> None:
    app.command()(status)
