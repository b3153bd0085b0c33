"""Alerts: what breached, how much, since when; in the ``alerts`` table, the log, and to
the webhooks that subscribe to ``alert.*``.

A breach that is still open (not acknowledged) is not raised again by the next check: the
open alert keeps its time, so ``since`` says how long it has lasted. Acknowledging one
(``tribes alerts ack ID``) closes it; if the breach persists the next check raises it
anew.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import ibis
import pandas as pd

from tribes.engine import Engine
from tribes.errors import InputError
from tribes.store import ALERTS

log = logging.getLogger(__name__)
TABLE = "alerts"
SEVERITIES = ("warning", "critical")
# what a check can raise (webhooks subscribe to alert.<kind>, or alert.*)
KINDS = ("drift.psi", "drift.ks", "segment.share", "dq.volume", "dq.quarantine",
         "dq.nulls", "dq.schema", "spc.signal")


@dataclass(frozen=True)
class Alert:
    """One breach found by a check."""

    kind: str  # drift.psi, drift.ks, segment.share, ...
    severity: str  # warning | critical
    subject: str  # the feature, segment or column
    metric: str
    value: float
    threshold: float
    message: str
    detail: dict[str, Any] = field(default_factory=dict)
    version: int | None = None

    def row(self, alert_id: int, now: datetime) -> dict[str, Any]:
        return {"alert_id": alert_id, "created_at": now, "kind": self.kind,
                "severity": self.severity, "subject": self.subject, "metric": self.metric,
                "value": float(self.value), "threshold": float(self.threshold),
                "message": self.message,
                "detail": json.dumps(self.detail, sort_keys=True, default=str),
                "version": self.version, "acked_at": None, "acked_by": None, "note": None}


def _open(engine: Engine) -> pd.DataFrame:
    t = engine.table(TABLE)
    return engine.execute(t.filter(t.acked_at.isnull()))


def record(engine: Engine, found: list[Alert], *, now: datetime | None = None
           ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Store the breaches that are not open already: (new alerts, still open ones).
    Call inside the check's transaction."""
    now = now or datetime.now(UTC)
    open_ = _open(engine)
    by_subject: dict[tuple[str, str], dict[str, Any]] = {
        (str(r["kind"]), str(r["subject"])): {str(k): v for k, v in r.items()}
        for r in open_.to_dict("records")}
    top = engine.scalar(engine.table(TABLE).alert_id.max())
    next_id = 1 if top is None or pd.isna(top) else int(top) + 1
    new, still = [], []
    for a in found:
        known = by_subject.get((a.kind, a.subject))
        if known is not None:
            still.append({**_public(known), "value": float(a.value),
                          "message": a.message, "severity": a.severity})
            continue
        new.append(a.row(next_id, now))
        next_id += 1
    if new:
        engine.insert(TABLE, ibis.memtable(pd.DataFrame(new)).cast(ALERTS))
        engine.audit("alerts.raise", rows=len(new),
                     detail={"alerts": [f"{r['alert_id']} {r['kind']} {r['subject']}"
                                        for r in new]})
    # the command that raised them shows them (and tribes status lists the open ones):
    # logged as info, so a terminal does not see each one twice
    for r in new:
        log.info("alert %d (%s) %s: %s", r["alert_id"], r["severity"], r["kind"],
                 r["message"])
    return [_public(r) for r in new], still


def _public(r: dict[str, Any]) -> dict[str, Any]:
    out = {k: (None if _missing(v) else v) for k, v in r.items()}
    if isinstance(out.get("detail"), str):
        out["detail"] = json.loads(out["detail"] or "{}")
    for k in ("alert_id", "version"):
        v = out.get(k)
        if v is not None:
            out[k] = int(v)
    for k in ("created_at", "acked_at"):
        v = out.get(k)
        if v is not None and hasattr(v, "isoformat"):
            out[k] = pd.Timestamp(v).isoformat()
    out["status"] = "acked" if out.get("acked_at") else "open"
    return out


def _missing(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def list_alerts(engine: Engine, *, status: str = "open", kind: str | None = None,
                limit: int = 100) -> list[dict[str, Any]]:
    """Alerts, newest first; ``status`` open, acked or all; ``kind`` a prefix (drift)."""
    if status not in ("open", "acked", "all"):
        raise InputError(f"unknown status '{status}'; use open, acked or all",
                         code="E_ALERT")
    t = engine.table(TABLE)
    if status == "open":
        t = t.filter(t.acked_at.isnull())
    elif status == "acked":
        t = t.filter(t.acked_at.notnull())
    if kind:
        t = t.filter(t.kind.startswith(kind))
    df = engine.execute(t.order_by(ibis.desc("alert_id")).limit(limit))
    return [_public(r) for r in df.to_dict("records")]


def ack(engine: Engine, ids: list[int], *, actor: str, note: str | None = None
        ) -> list[int]:
    """Acknowledge open alerts; unknown or already acknowledged ids are an error."""
    t = engine.table(TABLE)
    df = engine.execute(t.filter(t.alert_id.isin(ids)).select("alert_id", "acked_at"))
    known = {int(r.alert_id): r.acked_at for r in df.itertuples()}
    missing = [i for i in ids if i not in known]
    if missing:
        raise InputError(f"no alert {', '.join(map(str, missing))}; see tribes alerts list",
                         code="E_ALERT_NOT_FOUND")
    done = [i for i in ids if not _missing(known[i])]
    if done:
        raise InputError(f"alert {', '.join(map(str, done))} is acknowledged already",
                         code="E_ALERT")
    now = ibis.literal(datetime.now(UTC), type="timestamp('UTC')")
    hit = t.alert_id.isin(ids)
    with engine.transaction():
        engine.replace_table(TABLE, t.mutate(
            acked_at=ibis.ifelse(hit, now, t.acked_at),
            acked_by=ibis.ifelse(hit, ibis.literal(actor), t.acked_by),
            note=ibis.ifelse(hit, ibis.literal(note, type="string"), t.note)))
        engine.audit("alerts.ack", target=",".join(map(str, ids)), rows=len(ids),
                     detail={"note": note})
    return ids
