"""What is in a workspace: table sizes, batches, quarantine, missing values, consents."""

from __future__ import annotations

import json
from typing import Any

import ibis

from tribes.engine import Engine
from tribes.privacy import consent_summary
from tribes.store.identity_rules import list_rules
from tribes.store.runs import events_fingerprint, is_current, last_run
from tribes.store.tables import SCHEMAS


def _records(engine: Engine, expr: Any) -> list[dict[str, Any]]:
    df = engine.execute(expr)
    return [{k: (None if v is None or v != v else v) for k, v in r.items()}
            for r in df.to_dict("records")]


def accounting(engine: Engine) -> dict[str, int]:
    """Where every row read went, over all batches: ``read`` (rows read for the first
    time) = ``loaded`` + ``duplicates`` + ``open`` + ``dropped``; ``replayed`` rows were
    read again (and count in loaded, duplicates or open through the batch that did)."""
    b = engine.table("batches")
    q = engine.table("quarantine")
    tot = engine.execute(b.aggregate(
        rows_read=b.rows_read.sum(), replayed=b.replayed.fill_null(0).sum(),
        loaded=b.loaded.sum(), duplicates=b.duplicates.sum())).iloc[0]
    by = engine.execute(q.group_by(s=q.status.fill_null("open")).aggregate(n=q.count()))
    status = {str(s): int(n) for s, n in zip(by["s"], by["n"], strict=True)}
    read = int(tot["rows_read"] or 0) - int(tot["replayed"] or 0)
    return {"read": read, "loaded": int(tot["loaded"] or 0),
            "duplicates": int(tot["duplicates"] or 0), "open": status.get("open", 0),
            "dropped": status.get("dropped", 0), "replayed": status.get("replayed", 0)}


def workspace_status(engine: Engine, *, batches: int = 10) -> dict[str, Any]:
    """A summary of the workspace as plain data (the ``status`` command and the API)."""
    names = [*SCHEMAS, "customer_features"]
    tables = {name: int(engine.scalar(engine.table(name).count()))
              for name in names if engine.has_table(name)}
    ev = engine.table("events")
    span: dict[str, Any] = {}
    if tables.get("events"):
        agg = engine.execute(ev.aggregate(first=ev.ts.min(), last=ev.ts.max(),
                                          customers=ev.customer_id.nunique())).iloc[0]
        span = {"first_event": agg["first"], "last_event": agg["last"],
                "known_customers": int(agg["customers"])}
        span["by_source"] = {r["source"]: int(r["n"]) for r in _records(
            engine, ev.group_by("source").aggregate(n=ev.count()).order_by("source"))}
        span["by_event_type"] = {r["event_type"]: int(r["n"]) for r in _records(
            engine, ev.group_by("event_type").aggregate(n=ev.count())
            .order_by(ibis.desc("n")).limit(15))}
    b = engine.table("batches")
    recent = _records(engine, b.order_by(ibis.desc("started_at")).limit(batches).select(
        "batch_id", "kind", "source", "started_at", "rows_read", "loaded", "duplicates",
        "quarantined", "missing"))
    missing: dict[str, dict[str, dict[str, Any]]] = {}
    for row in _records(engine, b.select("kind", "missing")):
        for col, info in json.loads(row["missing"] or "{}").items():
            slot = missing.setdefault(row["kind"], {}).setdefault(
                col, {"policy": info.get("policy"), "missing": 0, "imputed": 0})
            slot["policy"] = info.get("policy")
            slot["missing"] += int(info.get("missing", 0))
            slot["imputed"] += int(info.get("imputed", 0))
    for r in recent:
        r.pop("missing", None)
    q = engine.table("quarantine")
    q = q.filter(q.status.isnull())  # open rows: neither replayed nor dropped
    quarantine = {r["reason"]: int(r["n"]) for r in _records(
        engine, q.group_by("reason").aggregate(n=q.count()).order_by("reason"))}
    books = accounting(engine)
    totals = {"batches": int(engine.scalar(b.count())), "rows_read": books["read"],
              "replayed": books["replayed"], "loaded": books["loaded"],
              "duplicates": books["duplicates"], "quarantined": books["open"],
              "dropped": books["dropped"]}
    consents = _records(engine, consent_summary(engine.table("consents")))
    al = engine.table("alerts")
    open_alerts = _records(engine, al.filter(al.acked_at.isnull()).order_by("alert_id").select(
        "alert_id", "created_at", "kind", "severity", "subject", "message"))
    stages = {}
    fingerprint = events_fingerprint(engine)
    rules = [r.rule_id for r in list_rules(engine)]
    for stage in ("prep", "features"):
        run = last_run(engine, stage)
        if run is not None:
            current = is_current(run, fingerprint)
            if stage == "prep":  # a rule made or undone since: the next prep applies it
                current = current and run["params"].get("identity_rules", []) == rules
            stages[stage] = {"run_id": run["run_id"], "finished_at": run["finished_at"],
                             "current": current, "report": run["report"]}
    return {
        "tables": tables,
        "events": span,
        "ingest_totals": totals,
        "quarantine_resolved": {"replayed": books["replayed"], "dropped": books["dropped"]},
        "batches": recent,
        "quarantine": quarantine,
        "missing": missing,
        "consents": consents,
        "open_alerts": open_alerts,
        "stages": stages,
    }
