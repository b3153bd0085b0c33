"""Exports of workspace tables, with consent applied (DESIGN §6)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path

import ibis
import ibis.expr.types as ir

from tribes.engine import Engine
from tribes.engine.io import write_table
from tribes.errors import InputError
from tribes.privacy.consent import consent_filter
from tribes.settings import RunSettings
from tribes.store.segments import active_segments
from tribes.store.tables import EXPORTS as EXPORTS_SCHEMA
from tribes.workspace import Workspace

# what -> (table, the stage that builds it)
EXPORTS = {"features": ("customer_features", "tribes features"),
           "sessions": ("sessions", "tribes prep"),
           "segments": ("segment_assignments", "tribes segment"),
           "clv": ("clv", "tribes clv fit, then tribes clv score")}


def export_table(ws: Workspace, engine: Engine, what: str, path: Path, fmt: str) -> int:
    """Write ``what`` to ``path``; returns the number of rows written."""
    table, stage = EXPORTS[what]
    if not engine.has_table(table) or not int(engine.scalar(engine.table(table).count())):
        raise InputError(f"nothing to export: '{table}' is empty; build it with: {stage}",
                         code="E_EMPTY")
    t: ir.Table = engine.table(table)
    if what == "segments":
        t = active_segments(engine)
    t = consent_filter(t, "customer_key", engine.table("consents"),
                       RunSettings.resolve(ws.config).consent_mode)
    n = write_table(engine, t, path, fmt)
    export_id = "x" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
    with engine.transaction():
        row = {"export_id": export_id, "what": what, "path": str(path.resolve()),
               "format": fmt, "rows": n, "created_at": datetime.now(UTC)}
        engine.insert("exports", ibis.memtable([row], schema=EXPORTS_SCHEMA))
        # which customers the file holds: an erasure can then tell whom to notify
        engine.insert("export_members", t.select(
            export_id=ibis.literal(export_id), customer_key=t.customer_key).distinct())
        engine.audit("export", target=str(path), rows=n,
                     detail={"what": what, "format": fmt, "export_id": export_id})
    return n
