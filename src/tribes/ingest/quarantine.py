"""Reading the quarantine back: filters shared by ``quarantine show`` and ``export``."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from tribes.engine import Engine
from tribes.errors import InputError
from tribes.ingest.spec import REASONS


def quarantined(engine: Engine, *, reason: str | None = None, batch: str | None = None,
                source: str | None = None, kind: str | None = None) -> ir.Table:
    """Quarantined rows matching every given filter, newest batch first."""
    q = engine.table("quarantine")
    if reason is not None:
        code = reason.upper()
        if code not in REASONS:
            raise InputError(f"unknown reason '{reason}'; reasons: {', '.join(REASONS)}",
                             code="E_REASON")
        q = q.filter(q.reason == code)
    if batch is not None:
        q = q.filter(q.batch_id == batch)
    if source is not None:
        q = q.filter(q.source == source)
    if kind is not None:
        q = q.filter(q.kind == kind)
    return q.order_by([ibis.desc("quarantined_at"), "reason"])
