"""The REST handlers: what each REST route does, over the same functions the CLI uses.

Plain Python (no HTTP): the routes in ``tribes.service`` only parse, authorize and shape;
everything else is here. Data reads are
recorded in the audit log through :class:`AccessLog` (batched, so a lookup does not
wait for the disk); changes record themselves where they happen, as from the CLI.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tribes.engine import STAGED_DIR, staged_text
from tribes.errors import InputError, TribesError
from tribes.ingest import IngestOptions
from tribes.models import run_segmentation, stored_personas, validate_segments
from tribes.monitor import STAGE, list_alerts
from tribes.ops.checked_ingest import ingest_checked
from tribes.ops.erasure import forget
from tribes.ops.segment_index import SegmentIndex
from tribes.ops.versions import activate as switch_to
from tribes.ops.versions import rollback as switch_back
from tribes.privacy import AuditEntry, acting_as, current_actor, pseudonym, record_many
from tribes.settings import RunSettings
from tribes.store import (
    EXPORTABLE,
    Rendered,
    active_version,
    clean_ident,
    customer_view,
    diff_versions,
    get_run,
    last_run,
    list_versions,
    members,
    open_engine,
    open_run,
    render_export,
    require_version,
    snapshot_export,
)
from tribes.workspace import RunContext, Workspace

log = logging.getLogger(__name__)
PROFILE_FEATURES = ("recency_days", "tenure_days", "frequency", "monetary", "aov",
                    "sessions_per_week", "engagement_score", "purchase_velocity_days",
                    "cart_abandonment_rate", "rfm_label", "composite_index")


class AccessLog:
    """Data-access records queued by request threads and appended by one writer thread
    every ``interval`` seconds under one lock and one sync (at most that much is lost if
    the process dies)."""

    def __init__(self, ws: Workspace, interval: float = 0.2) -> None:
        self.ws, self.interval = ws, interval
        self._q: queue.Queue[AuditEntry] = queue.Queue()
        self._stop = threading.Event()
        self._secret = ws.secret()
        self._thread = threading.Thread(target=self._run, name="tribes-audit", daemon=True)
        self._thread.start()

    def read(self, action: str, *, target: str = "", rows: int | None = None,
             keys: list[str] | None = None, detail: dict[str, Any] | None = None,
             actor: str | None = None) -> None:
        self._q.put(AuditEntry(action=action, actor=actor or current_actor(),
                               target=target, rows=rows, keys=keys, detail=detail or {},
                               at=datetime.now(UTC)))

    def flush(self) -> None:
        batch: list[AuditEntry] = []
        while True:
            try:
                batch.append(self._q.get_nowait())
            except queue.Empty:
                break
        if batch:
            record_many(self.ws.path, self._secret, batch)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush()
            except TribesError:
                log.exception("cannot write data-access records to the audit log")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.flush()


@dataclass
class Job:
    job_id: str
    kind: str
    params: dict[str, Any]
    status: str = "queued"  # queued, running, done, failed
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    finished_at: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "kind": self.kind, "params": self.params,
                "status": self.status, "created_at": self.created_at,
                "finished_at": self.finished_at, "result": self.result, "error": self.error}


class Jobs:
    """Long work (segmentation) on one background thread, one job at a time.

    At most ``limit`` jobs wait or run at once, and at most ``per_owner`` of one owner (an
    API key): more is refused with ``E_BUSY`` (429), so that no caller can fill the queue
    and hold the database from everyone else. The newest ``keep`` finished jobs are kept.
    """

    def __init__(self, limit: int = 8, per_owner: int = 2, keep: int = 1000) -> None:
        self.limit, self.per_owner, self.keep = limit, per_owner, keep
        self._jobs: dict[str, Job] = {}
        self._owners: dict[str, str] = {}
        self._lock = threading.Lock()
        self._q: queue.Queue[tuple[Job, Any]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="tribes-jobs", daemon=True)
        self._thread.start()

    def submit(self, kind: str, params: dict[str, Any], work: Any, owner: str = "") -> Job:
        with self._lock:
            busy = [j for j in self._jobs.values() if j.status in ("queued", "running")]
            mine = [j for j in busy if self._owners.get(j.job_id) == owner]
            if len(mine) >= self.per_owner:
                full = f"this key has {len(mine)} jobs queued or running (at most "\
                       f"{self.per_owner})"
            elif len(busy) >= self.limit:
                full = f"the service has {len(busy)} jobs queued or running (at most "\
                       f"{self.limit})"
            else:
                full = ""
            if full:
                raise TribesError(f"{full}; wait for one to finish (GET /v1/jobs/{{job_id}})",
                                  code="E_BUSY")
            job = Job(job_id="j" + secrets.token_hex(6), kind=kind, params=params)
            self._jobs[job.job_id] = job
            self._owners[job.job_id] = owner
            done = [i for i, j in self._jobs.items() if j.finished_at is not None]
            for i in done[:max(len(done) - self.keep, 0)]:
                self._jobs.pop(i, None)
                self._owners.pop(i, None)
        actor = current_actor()
        self._q.put((job, lambda: _as(actor, work)))
        return job

    def get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise InputError(f"no job '{job_id}'", code="E_JOB")
        return job

    def _run(self) -> None:
        while True:
            job, work = self._q.get()
            job.status = "running"
            try:
                job.result = work()
                job.status = "done"
            except TribesError as exc:
                job.status, job.error = "failed", {"code": exc.code, "message": exc.message}
            except Exception:
                log.exception("job %s failed", job.job_id)
                job.status = "failed"
                job.error = {"code": "E_INTERNAL", "message": "internal error; see the log"}
            job.finished_at = datetime.now(UTC).isoformat()


def _as(actor: str, work: Any) -> Any:
    with acting_as(actor):
        return work()


@dataclass
class Service:
    """Everything the routes need, made once per app."""

    ws: Workspace
    settings: RunSettings  # resolved once, when the service starts (an edge)
    index: SegmentIndex
    access: AccessLog
    jobs: Jobs
    live: Any = None  # tribes.realtime.live.Live: online state, when Redis is reachable
    started: float = field(default_factory=time.time)

    def _run(self) -> contextlib.AbstractContextManager[RunContext]:
        return open_run(self.ws, self.settings)

    # ---------------------------------------------------------------- aggregates
    def health(self) -> dict[str, Any]:
        with open_engine(self.ws) as engine:
            version = active_version(engine)
        return {"status": "ok", "workspace": self.ws.path.name, "active_version": version,
                "uptime_s": round(time.time() - self.started, 1)}

    def segments(self) -> dict[str, Any]:
        with open_engine(self.ws) as engine:
            version = require_version(engine)
            run = get_run(engine, version)
            personas = {p["segment_id"]: p for p in stored_personas(engine, version)}
            m = members(engine, version)  # as last refreshed: today's customers
            counts = engine.execute(m.group_by("segment_id").aggregate(n=m.count()))
        size = {int(r.segment_id): int(r.n) for r in counts.itertuples()}
        total = sum(size.values())
        segs = [{"segment_id": s["segment_id"], "name": personas.get(s["segment_id"], s)
                 .get("name", s["name"]), "size": size.get(int(s["segment_id"]), 0),
                 "share": size.get(int(s["segment_id"]), 0) / total if total else 0.0,
                 "action": personas.get(s["segment_id"], {}).get("action")}
                for s in run["segments"]]
        self.access.read("read.segments", target=f"version {version}", rows=len(segs))
        return {"version": version, "method": run["method"], "k": run["k"],
                "created_at": run["created_at"], "segments": segs}

    def personas(self) -> dict[str, Any]:
        with open_engine(self.ws) as engine:
            version = active_version(engine)
            rows = stored_personas(engine, version) if version is not None else []
        self.access.read("read.personas", target=f"version {version}", rows=len(rows))
        return {"version": version, "personas": rows}

    def kpis(self) -> dict[str, Any]:
        with open_engine(self.ws) as engine:
            result = validate_segments(engine, churn_days=self.ws.config.clv.churn_days)
        self.access.read("read.kpis", target=f"version {result['version']}",
                         rows=len(result["segments"]))
        return result

    def history(self) -> dict[str, Any]:
        """Segment sizes in every version, oldest first (segment ids are stable across
        versions, so a line per id is a trend)."""
        with open_engine(self.ws) as engine:
            rows = []
            for v in list_versions(engine):
                run = get_run(engine, v["version"])
                rows.append({"version": v["version"], "created_at": v["created_at"],
                             "active": v["active"],
                             "segments": [{"segment_id": s["segment_id"], "name": s["name"],
                                           "size": s["size"], "share": s["share"]}
                                          for s in run["segments"]]})
        self.access.read("read.versions", rows=len(rows))
        return {"versions": rows}

    def versions(self) -> dict[str, Any]:
        with open_engine(self.ws) as engine:
            rows = list_versions(engine)
        self.access.read("read.versions", rows=len(rows))
        return {"versions": rows}

    def diff(self, a: int, b: int) -> dict[str, Any]:
        with open_engine(self.ws) as engine:
            d = diff_versions(engine, a, b)
        self.access.read("read.versions.diff", target=f"versions {a},{b}")
        return d

    # ------------------------------------------------------------ customer level
    def segment_of(self, ident: str) -> dict[str, Any]:
        a = self.index.lookup(ident)
        self.access.read("read.segment", target=a.customer_key, rows=1,
                         keys=[a.customer_key])
        return a.to_dict()

    def profile(self, ident: str) -> dict[str, Any]:
        key = self.index.customer_key(ident)
        with self._run() as run:
            engine = run.engine
            view = customer_view(run, key, limit=5)
            clv = None
            t = engine.table("clv")
            rows = engine.execute(t.filter(t.customer_key == key)).to_dict("records")
            if rows:
                r = rows[0]
                clv = {k: _plain(r[k]) for k in ("clv", "p_alive", "churn_risk",
                                                   "expected_purchases", "expected_value",
                                                   "horizon", "as_of", "model")}
        try:
            segment: dict[str, Any] | None = self.index.lookup(key).to_dict()
        except InputError:
            segment = None
        persona = None
        if segment is not None:
            persona = self._persona(segment["segment_id"])
        feats = view.get("features") or {}
        online = self.live.online(key) if self.live is not None else None
        if online is not None and online["segment_id"] is not None:
            online["segment_name"] = self._segment_name(online["segment_id"])
        recent = self.live.recent(key) if self.live is not None else []
        self.access.read("read.customer", target=key, rows=1, keys=[key])
        return {
            "customer_key": key,
            "ids": len(view["ids"]),
            "segment": segment,
            "persona": persona,
            "features": {k: _plain(feats[k]) for k in PROFILE_FEATURES if k in feats},
            "clv": clv,
            "n_events": view["n_events"], "n_sessions": view["n_sessions"],
            "analyzed": view["analyzed"],
            "consents": view["consents"],
            "online": online,
            "recent_triggers": recent,
        }

    def triggers(self, limit: int, *, customers: bool) -> dict[str, Any]:
        """The newest triggers of tribes stream: counts by type, and (``customers``) the
        triggers themselves."""
        rows = self.live.latest(limit) if self.live is not None else None
        if rows is None:
            return {"available": False, "counts": {}, "triggers": [],
                    "message": "no real-time state: tribes stream is not running here or "
                    "Redis is not reachable"}
        counts: dict[str, int] = {}
        for t in rows:
            counts[t["type"]] = counts.get(t["type"], 0) + 1
        if customers:
            self.access.read("read.triggers", rows=len(rows),
                             keys=sorted({t["customer_key"] for t in rows}))
        return {"available": True, "counts": counts,
                "triggers": rows if customers else [],
                "since": min((t["at"] for t in rows), default=None)}

    def alerts(self, status: str, limit: int) -> dict[str, Any]:
        """Alerts of tribes monitor (aggregates: features and segments, no customers)."""
        with open_engine(self.ws) as engine:
            rows = list_alerts(engine, status=status, limit=limit)
        self.access.read("read.alerts", rows=len(rows))
        return {"status": status, "alerts": rows}

    def monitor(self) -> dict[str, Any]:
        """The last check of tribes monitor (aggregates): PSI and KS per feature, segment
        shares then and now, the control charts' series."""
        with open_engine(self.ws) as engine:
            run = last_run(engine, STAGE)
        self.access.read("read.monitor")
        if run is None:
            return {"available": False, "message": "no check yet: tribes monitor (or tribes "
                    "run, or a schedule) makes one"}
        rep = run["report"]
        return {"available": True, "at": run["finished_at"], "version": rep.get("version"),
                "as_of": rep.get("as_of"), "features": rep.get("features", []),
                "shares": rep.get("shares"), "charts": rep.get("charts", []),
                "thresholds": rep.get("thresholds", {})}

    def _segment_name(self, segment_id: int) -> str:
        p = self._persona(segment_id)
        return str(p["name"]) if p else f"Segment {segment_id}"

    def next_best_content(self, ident: str) -> dict[str, Any]:
        """The content hint for a customer: the recommended action of the persona of their
        online segment (tribes stream), else of their active batch segment."""
        try:
            key: str | None = self.index.customer_key(ident)
        except InputError:
            key = None
        online = None
        if self.live is not None:
            # a customer new since the last prep is known to the stream by their id alone
            for k in [key] if key else [pseudonym(clean_ident(ident), self.ws.secret())]:
                online = self.live.online(k)
                if online is not None:
                    key = k
                    break
        segment_id, source = None, None
        if online is not None and online["segment_id"] is not None:
            segment_id, source = online["segment_id"], "online"
        elif key is not None:
            with contextlib.suppress(InputError):
                segment_id, source = self.index.lookup(key).segment_id, "batch"
        if key is None or segment_id is None:
            raise InputError(f"no segment for customer '{ident}' (unknown, not analyzed for "
                             "consent, or no segment version yet)", code="E_NOT_FOUND")
        persona = self._persona(segment_id) or {}
        offers = self.ws.config.realtime.rules.session_offer.offers
        name = persona.get("name") or f"Segment {segment_id}"
        self.access.read("read.content", target=key, rows=1, keys=[key])
        return {"customer_key": key, "segment_id": segment_id, "segment_name": name,
                "source": source, "content": persona.get("action"),
                "campaign": persona.get("campaign"),
                "offer": offers.get(str(segment_id)) or offers.get(name),
                "version": self.index.version}

    def _persona(self, segment_id: int) -> dict[str, Any] | None:
        with open_engine(self.ws) as engine:
            for p in stored_personas(engine):
                if p["segment_id"] == segment_id:
                    return {k: p.get(k) for k in ("name", "archetype", "description",
                                                  "action", "campaign")}
        return None

    # ---------------------------------------------------------------- changes
    def activate(self, version: int) -> dict[str, Any]:
        with open_engine(self.ws) as engine:
            res = switch_to(engine, version)  # and its memberships refreshed
        self.index.refresh(force=True)
        return {"active": version, "previous": res["previous"]}

    def rollback(self) -> dict[str, Any]:
        with open_engine(self.ws) as engine:
            res = switch_back(engine)  # and its memberships refreshed
        self.index.refresh(force=True)
        return {"rolled_back": res["previous"], "active": res["active"]}

    def ingest_events(self, events: list[dict[str, Any]], source: str,
                      metrics: Any) -> dict[str, Any]:
        """Ingest a JSON batch with the file contract (validation, quarantine, dedupe)."""
        # the batch is read from memory (raw values never reach the disk)
        lines = (json.dumps(e, default=str) + "\n" for e in events)
        with staged_text(lines, self.ws.path / STAGED_DIR) as path:
            # alerts of API micro-batches go to the table and the log, not to webhooks
            s = ingest_checked(self.ws, self.settings, [str(path)], IngestOptions(
                source=source, fmt="jsonl", check_volume=False), notify=False).summary
        metrics.ingest(s.loaded, s.duplicates, s.quarantined)
        out = s.to_dict()
        out["files"] = []
        return out

    def segmentation(self, params: dict[str, Any], owner: str = "") -> Job:
        """A new segment version, as a job of ``owner`` (an API key). It is stored held
        for review unless ``params["activate"]`` (the route lets admin keys alone ask)."""
        activate = bool(params.get("activate"))

        def work() -> dict[str, Any]:
            with self._run() as run:
                report = run_segmentation(run, method=params["method"],
                                          k=params.get("k"),
                                          features=params.get("features"),
                                          activate=activate)
            if activate:
                self.index.refresh(force=True)
            return {"version": report.version, "method": report.method, "k": report.k,
                    "active": not report.held, "n_customers": report.n_customers,
                    "segments": report.segments, "warnings": report.warnings}

        return self.jobs.submit("segmentation", params, work, owner=owner)

    def export(self, what: str, fmt: str) -> dict[str, Any]:
        if what not in EXPORTABLE:
            raise InputError(f"cannot export '{what}'; choose one of {', '.join(EXPORTABLE)}",
                             code="E_EXPORT_WHAT")
        with self._run() as run:
            return snapshot_export(run, what, fmt)

    def export_file(self, export_id: str) -> Rendered:
        with open_engine(self.ws) as engine:
            f = render_export(engine, export_id)
        self.access.read("read.export", target=export_id, rows=f.rows)
        return f

    def erase(self, ident: str, reason: str) -> dict[str, Any]:
        with open_engine(self.ws) as engine:
            result = forget(self.ws, engine, ident, reason=reason)
        self.index.refresh(force=True)
        return result.to_dict()


def _plain(v: Any) -> Any:
    if v is None or (isinstance(v, float) and v != v):
        return None
    if hasattr(v, "item"):
        return v.item()
    if isinstance(v, (datetime,)):
        return v.isoformat()
    return v


