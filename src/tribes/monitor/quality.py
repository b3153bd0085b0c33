"""Data-quality checks on every ingest: a batch against the recent batches of its source.

* ``dq.volume``: rows read against the median of the source's last batches (at least
  ``min_history`` of them), off by more than ``volume_ratio`` either way. Not for the
  micro-batches of the stream and the API, whose size says nothing.
* ``dq.quarantine``: the share of the batch quarantined at or above
  ``max_quarantine_rate`` (critical from four times it).
* ``dq.nulls``: an event column's null share up by ``null_rate_jump`` or more against
  the median of the source's last batches.
* ``dq.schema``: an event column the source's previous batch filled is not mapped now,
  or is mapped from another source column.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from typing import Any

import ibis
import numpy as np

from tribes.config import MonitorConfig
from tribes.engine import Engine
from tribes.ingest import IngestSummary
from tribes.monitor.alerts import Alert, record
from tribes.workspace import RunContext

log = logging.getLogger(__name__)

HISTORY = 10
NULL_COLUMNS = ("customer_id", "anonymous_id", "device_id", "session_id", "channel",
                "device", "country", "product_id", "category", "order_id", "amount")


def _prior(engine: Engine, s: IngestSummary) -> list[dict[str, Any]]:
    t = engine.table("batches")
    df = engine.execute(t.filter((t.kind == s.kind) & (t.source == s.source)
                                 & (t.batch_id != s.batch_id))
                        .order_by(ibis.desc("started_at")).limit(HISTORY))
    return df.to_dict("records")


def _null_shares(engine: Engine, batch_ids: list[str]) -> dict[str, dict[str, float]]:
    """batch -> column -> null share of its loaded events."""
    ev = engine.table("events")
    sub = ev.filter(ev.batch_id.isin(batch_ids))
    aggs = {"n": sub.count(), **{c: sub[c].isnull().cast("int64").sum() for c in NULL_COLUMNS}}
    df = engine.execute(sub.group_by("batch_id").aggregate(**aggs))
    return {str(r["batch_id"]): {c: float(r[c]) / float(r["n"]) for c in NULL_COLUMNS}
            for r in df.to_dict("records") if r["n"]}


def check_batch(engine: Engine, s: IngestSummary, cfg: MonitorConfig, *,
                volume: bool = True) -> list[Alert]:
    """The breaches of one ingested batch."""
    out: list[Alert] = []
    prior = _prior(engine, s)
    where = f"{s.kind} from {s.source}"
    if volume and len(prior) >= cfg.min_history and s.rows_read:
        median = float(np.median([int(p["rows_read"]) for p in prior]))
        ratio = s.rows_read / median if median else float("inf")
        if ratio >= cfg.volume_ratio or ratio <= 1 / cfg.volume_ratio:
            out.append(Alert(
                kind="dq.volume", severity="warning", subject=where, metric="volume_ratio",
                value=ratio, threshold=cfg.volume_ratio,
                message=f"batch {s.batch_id} of {where} has {s.rows_read:,} rows, "
                        f"{ratio:.2g}x the median {median:,.0f} of the last {len(prior)}",
                detail={"batch_id": s.batch_id, "rows": s.rows_read, "median": median,
                        "batches": len(prior)}))
    if s.rows_read >= 20:
        rate = s.n_quarantined / s.rows_read
        if rate >= cfg.max_quarantine_rate:
            critical = rate >= 4 * cfg.max_quarantine_rate
            top = sorted(s.quarantined.items(), key=lambda kv: -kv[1])[:3]
            out.append(Alert(
                kind="dq.quarantine", severity="critical" if critical else "warning",
                subject=where, metric="quarantine_rate", value=rate,
                threshold=cfg.max_quarantine_rate,
                message=f"batch {s.batch_id} of {where}: {rate:.1%} of {s.rows_read:,} rows "
                        f"quarantined ({', '.join(f'{k} {v:,}' for k, v in top)}); see "
                        f"tribes quarantine show --batch {s.batch_id}",
                detail={"batch_id": s.batch_id, "reasons": s.quarantined}))
    if s.kind == "events" and prior:
        shares = _null_shares(engine, [s.batch_id, *[str(p["batch_id"]) for p in prior]])
        now = shares.get(s.batch_id)
        before = [shares[str(p["batch_id"])] for p in prior if str(p["batch_id"]) in shares]
        if now and before:
            for col in NULL_COLUMNS:
                base = float(np.median([b[col] for b in before]))
                if now[col] - base >= cfg.null_rate_jump:
                    out.append(Alert(
                        kind="dq.nulls", severity="warning", subject=f"{where}: {col}",
                        metric="null_share", value=now[col], threshold=cfg.null_rate_jump,
                        message=f"{col} is empty on {now[col]:.1%} of the events of batch "
                                f"{s.batch_id} ({where}), {base:.1%} before",
                        detail={"batch_id": s.batch_id, "column": col, "before": base}))
    if prior:
        before_map = json.loads(prior[0]["mapping"] or "{}")
        lost = sorted(c for c in before_map if c not in s.mapping)
        moved = sorted(c for c in before_map if c in s.mapping and s.mapping[c] !=
                       before_map[c])
        if lost or moved:
            parts = ([f"no longer mapped: {', '.join(lost)}"] if lost else []) + (
                [", ".join(f"{c} now from '{s.mapping[c]}' (was '{before_map[c]}')"
                           for c in moved)] if moved else [])
            out.append(Alert(
                kind="dq.schema", severity="warning", subject=where, metric="columns",
                value=float(len(lost) + len(moved)), threshold=0.0,
                message=f"the columns of {where} changed in batch {s.batch_id}: "
                        + "; ".join(parts),
                detail={"batch_id": s.batch_id, "lost": lost, "moved": moved,
                        "before": before_map, "now": s.mapping}))
    return out


def check_ingest(ctx: RunContext, summary: IngestSummary, *, volume: bool = True
                 ) -> IngestSummary:
    """Run the data-quality checks of an ingested batch and record its new alerts.

    Returns the summary with ``alerts`` (the new ones) and the step's seconds added. A
    failing check never fails the ingest, which is committed already: it is logged.
    """
    started = time.perf_counter()
    new: list[dict[str, Any]] = []
    try:
        engine = ctx.engine
        found = check_batch(engine, summary, ctx.config.monitor, volume=volume)
        if found:
            with engine.transaction():
                new, _ = record(engine, found)
    except Exception:
        log.exception("data-quality checks of batch %s failed", summary.batch_id)
    spent = time.perf_counter() - started
    steps = {**summary.steps, "checking data quality": round(spent, 3)}
    return dataclasses.replace(summary, alerts=new, steps=steps,
                               seconds=round(summary.seconds + spent, 3))
