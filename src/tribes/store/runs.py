"""Stage runs (prep, features): what each was computed from, so later stages know if it is
still current."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import ibis
import pandas as pd

from tribes.engine import Engine
from tribes.store.tables import STAGE_RUNS


@dataclass(frozen=True)
class Fingerprint:
    """The state of the events table a stage read: row count and newest load time."""

    rows: int
    loaded_at: datetime | None


def events_fingerprint(engine: Engine) -> Fingerprint:
    ev = engine.table("events")
    row = engine.execute(ev.aggregate(n=ev.count(), last=ev.ingested_at.max())).iloc[0]
    last = row["last"]
    return Fingerprint(int(row["n"]), None if pd.isna(last) else last.to_pydatetime())


def new_run_id(stage: str, now: datetime) -> str:
    return f"{stage}-{now.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


def record_run(engine: Engine, *, run_id: str, stage: str, started_at: datetime,
               fingerprint: Fingerprint, params: dict[str, Any],
               report: dict[str, Any]) -> None:
    """Append one stage run (call inside the stage's transaction)."""
    row = {
        "run_id": run_id,
        "stage": stage,
        "started_at": started_at,
        "finished_at": datetime.now(UTC),
        "events_rows": fingerprint.rows,
        "events_loaded_at": fingerprint.loaded_at,
        "params": json.dumps(params, sort_keys=True, default=str),
        "report": json.dumps(report, sort_keys=True, default=str),
    }
    engine.insert("stage_runs", ibis.memtable(pd.DataFrame([row])).cast(STAGE_RUNS))
    engine.audit(stage, target=run_id, rows=fingerprint.rows,
                 detail={"params": params})


def last_run(engine: Engine, stage: str) -> dict[str, Any] | None:
    """The newest run of ``stage`` with params and report decoded, or None."""
    t = engine.table("stage_runs")
    df = engine.execute(t.filter(t.stage == stage).order_by(ibis.desc("finished_at")).limit(1))
    if df.empty:
        return None
    row = df.iloc[0].to_dict()
    row["params"] = json.loads(row["params"] or "{}")
    row["report"] = json.loads(row["report"] or "{}")
    return row


def is_current(run: dict[str, Any] | None, fingerprint: Fingerprint) -> bool:
    """True when ``run`` read exactly the events that are stored now."""
    if run is None:
        return False
    loaded = run["events_loaded_at"]
    loaded = None if pd.isna(loaded) else loaded.to_pydatetime()
    return int(run["events_rows"]) == fingerprint.rows and loaded == fingerprint.loaded_at
