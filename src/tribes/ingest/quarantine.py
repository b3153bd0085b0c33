"""Reading the quarantine back: filters shared by ``quarantine show``, ``export``,
``replay`` and ``drop``."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from tribes.engine import Engine
from tribes.errors import InputError
from tribes.ingest.spec import REASONS

# a quarantined row is open until it is replayed (read again) or dropped (given up)
STATUSES = ("open", "replayed", "dropped", "all")


def matching(q: ir.Table, *, reason: str | None = None, batch: str | None = None,
             source: str | None = None, kind: str | None = None,
             status: str = "open") -> ir.BooleanValue:
    """Predicate on the quarantine table ``q``: rows matching every given filter (by
    default the open ones)."""
    if status not in STATUSES:
        raise InputError(f"unknown status '{status}'; use one of {', '.join(STATUSES)}",
                         code="E_STATUS")
    conds: list[ir.BooleanValue] = [ibis.literal(True)]
    if status == "open":
        conds.append(q.status.isnull())
    elif status != "all":
        conds.append(q.status == status)
    if reason is not None:
        code = reason.upper()
        if code not in REASONS:
            raise InputError(f"unknown reason '{reason}'; reasons: {', '.join(REASONS)}",
                             code="E_REASON")
        conds.append(q.reason == code)
    if batch is not None:
        conds.append(q.batch_id == batch)
    if source is not None:
        conds.append(q.source == source)
    if kind is not None:
        conds.append(q.kind == kind)
    return ibis.and_(*conds)


def quarantined(engine: Engine, *, reason: str | None = None, batch: str | None = None,
                source: str | None = None, kind: str | None = None,
                status: str = "open") -> ir.Table:
    """Quarantined rows matching every given filter (:func:`matching`), newest batch
    first."""
    q = engine.table("quarantine")
    q = q.filter(matching(q, reason=reason, batch=batch, source=source, kind=kind,
                          status=status))
    return q.order_by([ibis.desc("quarantined_at"), "reason"])
