"""``tribes activate``: segment memberships to a CRM/CDP, as changes since the last sync.

The contract (any HTTP endpoint can implement it): a sync is a series of POSTs, each a
JSON batch of at most ``batch_size`` changes::

    {"sync_id": "...", "target": "crm", "version": 7, "batch": 1, "batches": 3,
     "upserts": [{"customer_key": "...", "segment_id": 2, "segment": "Loyal"}],
     "removals": [{"customer_key": "...", "segment_id": 4}]}

signed like webhooks (``X-Tribes-Signature: t=...,v1=HMAC-SHA256("t.body")``) with an
``Idempotency-Key`` of ``<sync_id>-<batch>`` (the same on every retry of the batch; the
sync id is a digest of the target and its changes). An upsert puts the customer in that
segment (and so out of any other); a removal takes them out. Both are idempotent, so a
batch applied twice changes nothing. What the target holds is kept per batch delivered
(``activation_state``): a sync that failed half-way, run again, sends only what is still
missing, and the next sync only what changed since.

A file target writes the changes (or, with ``--full``, every member) as CSV or Parquet
with a ``manifest.json`` (rows and SHA-256 of each file).

Consent: customers who refused (opt-in mode: did not grant) any of the target's
purposes are never sent; one who was sent and refuses later gets a removal. An erased
customer is removed from the targets that hold them at their next sync.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from tribes.config import ActivationTarget
from tribes.engine import Engine
from tribes.errors import InputError
from tribes.http import post_with_retries
from tribes.privacy import consent_filter
from tribes.store import (
    ACTIVATION_REMOVALS,
    ACTIVATION_STATE,
    ACTIVATION_SYNCS,
    EXPORTS,
    active_segments,
    get_run,
    keyed_consents,
    require_version,
    segment_names,
)
from tribes.workspace import RunContext, Workspace

log = logging.getLogger(__name__)
STATE, SYNCS, REMOVALS = "activation_state", "activation_syncs", "activation_removals"


@dataclass
class Plan:
    target: str
    version: int
    segments: list[int] | None
    upserts: pd.DataFrame  # customer_key, segment_id, segment
    removals: pd.DataFrame  # customer_key, segment_id
    full: bool = False

    @property
    def sync_id(self) -> str:
        h = hashlib.sha256(f"{self.target}|{self.version}|{self.full}".encode())
        for df in (self.upserts, self.removals):
            for k, s in zip(df["customer_key"], df["segment_id"], strict=True):
                h.update(f"{k}:{s};".encode())
            h.update(b"|")
        return "s" + h.hexdigest()[:20]


@dataclass
class SyncResult:
    sync_id: str
    target: str
    kind: str
    version: int
    upserts: int
    removals: int
    batches: int = 0
    delivered: int = 0
    status: str = "planned"  # planned (dry run) | done | partial | nothing
    error: str = ""
    location: str = ""
    files: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def target_of(ws: Workspace, name: str) -> ActivationTarget:
    targets = ws.config.activation
    if name not in targets:
        known = ", ".join(sorted(targets)) or "none yet"
        raise InputError(f"no activation target '{name}' in tribes.toml (targets: {known}); "
                         f"add one:\n  [activation.{name}]\n  url = \"https://crm.example.com"
                         "/tribes/sync\"", code="E_ACTIVATION")
    return targets[name]


def _members(ctx: RunContext, cfg: ActivationTarget,
             segments: list[int] | None) -> ir.Table:
    engine = ctx.engine
    t = active_segments(engine)
    if segments:
        t = t.filter(t.segment_id.isin(segments))
    mode = ctx.settings.consent_mode
    for purpose in cfg.purposes:
        t = consent_filter(t, "customer_key", keyed_consents(engine), mode, purpose)
    return t.select("customer_key", "segment_id")


def plan(ctx: RunContext, target: str, *, segments: list[int] | None = None,
         full: bool = False) -> Plan:
    """The changes the target needs: upserts of members it lacks or holds in another
    segment, removals of those it holds that are no longer members (or refused, or were
    erased). ``full``: every member, and removals of everything else it holds."""
    ws, engine = ctx.ws, ctx.engine
    cfg = target_of(ws, target)
    version = require_version(engine, purpose="to activate")
    run = get_run(engine, version)
    known = {int(s["segment_id"]): str(s["name"]) for s in run["segments"] or []}
    unknown = [s for s in segments or [] if s not in known]
    if unknown:
        raise InputError(f"version {version} has no segment {unknown}; its segments: "
                         f"{', '.join(f'{i} {n}' for i, n in sorted(known.items()))}",
                         code="E_SEGMENT")
    names = segment_names(engine, version)
    members = _members(ctx, cfg, segments)
    st = engine.table(STATE)
    held = st.filter(st.target == target).select(h_key="customer_key", h_seg="segment_id")
    if full:
        ups = members
    else:
        j = members.left_join(held, members.customer_key == held.h_key)
        ups = j.filter(j.h_key.isnull() | (j.h_seg != j.segment_id)).select(
            "customer_key", "segment_id")
    gone = held.anti_join(members, held.h_key == members.customer_key).select(
        customer_key="h_key", segment_id="h_seg")
    upserts = engine.execute(ups.order_by("customer_key"))
    removals = engine.execute(gone.order_by("customer_key"))
    rm = engine.table(REMOVALS)
    erased = engine.execute(rm.filter(rm.target == target).select(
        customer_key="id", segment_id="segment_id"))
    removals = pd.concat([removals, erased]).drop_duplicates("customer_key")
    upserts["segment"] = [names.get(int(s), f"Segment {s}") for s in upserts["segment_id"]]
    return Plan(target=target, version=version, segments=segments, upserts=upserts,
                removals=removals.reset_index(drop=True), full=full)


def batches(p: Plan, size: int) -> list[dict[str, Any]]:
    """The request bodies: removals first (a customer moves before joining elsewhere)."""
    rm, up = p.removals, p.upserts
    changes = [("removals", {"customer_key": str(k), "segment_id": int(s)})
               for k, s in zip(rm["customer_key"], rm["segment_id"], strict=True)] + \
        [("upserts", {"customer_key": str(k), "segment_id": int(s), "segment": str(n)})
         for k, s, n in zip(up["customer_key"], up["segment_id"], up["segment"],
                            strict=True)]
    chunks = [changes[i:i + size] for i in range(0, len(changes), size)]
    out = []
    for i, chunk in enumerate(chunks, 1):
        body: dict[str, Any] = {"sync_id": p.sync_id, "target": p.target,
                                "version": p.version, "batch": i, "batches": len(chunks),
                                "upserts": [c for k, c in chunk if k == "upserts"],
                                "removals": [c for k, c in chunk if k == "removals"]}
        out.append(body)
    return out


def _apply(engine: Engine, target: str, body: dict[str, Any]) -> None:
    """What the target holds after ``body`` was delivered."""
    now = datetime.now(UTC)
    touched = [c["customer_key"] for c in body["upserts"]] + \
        [c["customer_key"] for c in body["removals"]]
    st = engine.table(STATE)
    if touched:
        engine.delete_where(STATE, (st.target == target) & st.customer_key.isin(touched))
    if body["upserts"]:
        rows = pd.DataFrame([{"target": target, "customer_key": c["customer_key"],
                              "segment_id": c["segment_id"], "synced_at": now}
                             for c in body["upserts"]])
        engine.insert(STATE, ibis.memtable(rows).cast(ACTIVATION_STATE))
    removed = [c["customer_key"] for c in body["removals"]]
    if removed:
        rm = engine.table(REMOVALS)
        engine.delete_where(REMOVALS, (rm.target == target) & rm.id.isin(removed))


def _record(engine: Engine, r: SyncResult, started: datetime, segments: list[int] | None
            ) -> None:
    row = {**{k: getattr(r, k) for k in ("sync_id", "target", "kind", "version", "upserts",
                                         "removals", "batches", "delivered", "status",
                                         "error", "location")},
           "started_at": started, "finished_at": datetime.now(UTC),
           "segments": json.dumps(segments)}
    engine.insert(SYNCS, ibis.memtable(pd.DataFrame([row])).cast(ACTIVATION_SYNCS))
    engine.audit("activate", target=r.target, rows=r.upserts + r.removals,
                 detail={"sync_id": r.sync_id, "kind": r.kind, "version": r.version,
                         "status": r.status, "delivered": r.delivered,
                         "batches": r.batches})


def sync(ctx: RunContext, target: str, *, segments: list[int] | None = None,
         full: bool = False, dry_run: bool = False,
         progress: Callable[[str], None] | None = None) -> SyncResult:
    """Plan the changes and deliver them (``dry_run``: plan only)."""
    ws, engine = ctx.ws, ctx.engine
    say = progress or (lambda s: None)
    started = datetime.now(UTC)
    cfg = target_of(ws, target)
    say("planning")
    p = plan(ctx, target, segments=segments, full=full)
    r = SyncResult(sync_id=p.sync_id, target=target, kind=cfg.kind, version=p.version,
                   upserts=len(p.upserts), removals=len(p.removals))
    if dry_run:
        return r
    if cfg.kind == "file":
        return _to_files(ctx, cfg, p, r, started)
    if not len(p.upserts) and not len(p.removals):
        r.status = "nothing"
        with engine.transaction():
            _record(engine, r, started, segments)
        return r
    secret = os.environ.get(cfg.secret_env, "")
    if len(secret) < 16:
        raise InputError(f"set the signing secret of target '{target}' (16+ characters) in "
                         f"the environment variable {cfg.secret_env}; the receiver checks "
                         "X-Tribes-Signature with it", code="E_ACTIVATION")
    bodies = batches(p, cfg.batch_size)
    r.batches, r.location = len(bodies), cfg.url
    timeout = cfg.timeout.total_seconds()
    backoff = cfg.backoff.total_seconds()
    for body in bodies:
        say(f"batch {body['batch']} of {len(bodies)}")
        data = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        ok, what = post_with_retries(cfg.url, secret, data,
                                     idempotency_key=f"{p.sync_id}-{body['batch']}",
                                     event="activation.sync", attempts=cfg.max_attempts,
                                     timeout=timeout, backoff=backoff)
        if not ok:
            r.status, r.error = "partial", f"batch {body['batch']}: {what}"
            log.warning("activation %s to %s stopped at batch %d: %s", p.sync_id, cfg.url,
                        body["batch"], what)
            break
        with engine.transaction():
            _apply(engine, target, body)
        r.delivered += 1
    else:
        r.status = "done"
    with engine.transaction():
        _record(engine, r, started, segments)
    return r


def _to_files(ctx: RunContext, cfg: ActivationTarget, p: Plan, r: SyncResult,
              started: datetime) -> SyncResult:
    """Write the changes (or every member) and a manifest; the target holds them then."""
    ws, engine = ctx.ws, ctx.engine
    base = Path(cfg.path)
    base = base if base.is_absolute() else ws.path / base
    out = base / f"{started:%Y%m%dT%H%M%S}-{p.sync_id}"
    out.mkdir(parents=True, exist_ok=True)
    ext = "csv" if cfg.format == "csv" else "parquet"
    frames = {"members" if p.full else "upserts": p.upserts, "removals": p.removals}
    files = []
    for name, df in frames.items():
        path = out / f"{name}.{ext}"
        df = df.astype({"segment_id": "int64"})
        if ext == "csv":
            df.to_csv(path, index=False)
        else:
            df.to_parquet(path, index=False)
        files.append({"name": path.name, "rows": len(df),
                      "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    previous = _last_sync(engine, p.target)
    manifest = {"sync_id": p.sync_id, "target": p.target, "version": p.version,
                "segments": p.segments, "created_at": started.isoformat(),
                "delta": not p.full, "since": previous,
                "consent_mode": ctx.settings.consent_mode,
                "purposes": cfg.purposes,
                "files": files,
                "columns": {"customer_key": "pseudonymized customer key",
                            "segment_id": "stable segment id", "segment": "segment name"}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n",
                                       encoding="utf-8")
    r.files, r.location, r.batches, r.delivered, r.status = files, str(out), 1, 1, "done"
    body = {"upserts": [{"customer_key": k, "segment_id": int(s)} for k, s in
                        zip(p.upserts["customer_key"], p.upserts["segment_id"], strict=True)],
            "removals": [{"customer_key": k} for k in p.removals["customer_key"]]}
    with engine.transaction():
        if p.full:
            st = engine.table(STATE)
            engine.delete_where(STATE, st.target == p.target)
        _apply(engine, p.target, body)
        export_id = "x" + started.strftime("%Y%m%dT%H%M%S") + "-" + p.sync_id[-6:]
        engine.insert("exports", ibis.memtable([{
            "export_id": export_id, "what": f"activation:{p.target}", "path": str(out),
            "format": ext, "rows": len(p.upserts), "created_at": started}], schema=EXPORTS))
        if len(p.upserts):
            engine.insert("export_members", ibis.memtable(pd.DataFrame({
                "export_id": export_id, "customer_key": p.upserts["customer_key"]})))
        _record(engine, r, started, p.segments)
    return r


def _last_sync(engine: Engine, target: str) -> str | None:
    t = engine.table(SYNCS)
    df = engine.execute(t.filter((t.target == target) & (t.status == "done"))
                        .order_by(ibis.desc("finished_at")).limit(1))
    return None if df.empty else str(df["sync_id"].iloc[0])


def history(engine: Engine, target: str | None = None, limit: int = 20
            ) -> list[dict[str, Any]]:
    t = engine.table(SYNCS)
    if target:
        t = t.filter(t.target == target)
    df = engine.execute(t.order_by(ibis.desc("finished_at")).limit(limit))
    return df.to_dict("records")


def owed_removals(engine: Engine, key: str | None) -> int:
    """On erasure: the targets holding the person owe a removal (kept by pseudonymized
    id until delivered); call inside the erasure's transaction, before its deletes."""
    if key is None or not engine.has_table(STATE):
        return 0
    st = engine.table(STATE)
    held = engine.execute(st.filter(st.customer_key == key).select("target", "segment_id"))
    if held.empty:
        return 0
    rows = held.assign(id=key, erased_at=datetime.now(UTC))
    engine.insert(REMOVALS, ibis.memtable(rows[["target", "id", "segment_id", "erased_at"]])
                  .cast(ACTIVATION_REMOVALS))
    return len(held)

