"""``tribes run``: the whole pipeline after ingest, idempotent, for cron or Airflow.

prep (when the events changed) → features (when the events changed or another as_of
is asked for) → cohorts → **refresh** of the active version's memberships (when they do
not come from these features: new and changed customers get their segment from the
version's own model, customers gone from the features leave) → monitor (today's
customers against the active version) → **re-segmentation**, only when asked
(``--resegment``, the schedule) or when ``[ops] resegment`` says so (``on-drift``: a
critical PSI alert on one of the active version's features in this run's check;
``always``: whenever the features changed): a new version with the active one's method,
features and k, ids kept stable → comparison with the active version (migration matrix,
ARI, KPI deltas) → the ``[ops] activate`` policy decides: active now, or held for review
→ personas of the new active version, or of the refreshed one. Run twice on the same
events, the second run changes nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import ibis
import pandas as pd

from tribes.analysis import refresh_after_prep
from tribes.config import SegmentConfig
from tribes.engine import Engine
from tribes.errors import InputError
from tribes.features import features_params, last_features, run_features
from tribes.models import (
    DENSITY,
    MembershipRefresh,
    build_personas,
    personas_built_at,
    refresh_memberships,
    run_segmentation,
    validate_segments,
)
from tribes.monitor import run_monitor
from tribes.ops.alerts import send_alerts
from tribes.prep import last_prep, prep_params, run_prep
from tribes.settings import RunSettings
from tribes.store import (
    activate_version,
    active_version,
    diff_versions,
    events_fingerprint,
    get_run,
    is_current,
    list_cohorts,
    list_rules,
    memberships_from,
    new_run_id,
    open_run,
    record_run,
    refresh_history,
    versions_built_from,
)
from tribes.workspace import RunContext, Workspace

STAGE = "pipeline"
KPIS = ("conversion_rate", "aov", "repeat_purchase_rate", "churn_rate", "revenue_share")


@dataclass
class PipelineReport:
    run_id: str
    steps: dict[str, str] = field(default_factory=dict)  # step -> done | skipped: why
    prep: Any = None
    features: Any = None
    cohorts: list[dict[str, Any]] = field(default_factory=list)
    refresh: MembershipRefresh | None = None  # the active version's memberships
    monitor: Any = None
    resegment: str | None = None  # why a new version was fitted (None: none was)
    segment: Any = None
    comparison: dict[str, Any] | None = None
    decision: str | None = None  # activated | held | None (no new version)
    reason: str = ""
    personas: int = 0
    seconds: float = 0.0

    @property
    def outcome(self) -> str:
        """What became of the segments, in a sentence: "refreshed version 3: 120 new, 14
        moved, 2 left", "new version 4 because ...", or both."""
        said = [self.refresh.describe()] if self.refresh else []
        if self.segment is not None:
            said.append(f"new version {self.segment.version} ({self.decision}) because "
                        f"{self.resegment}")
        return "; ".join(said) or "segments unchanged"

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "steps": self.steps, "outcome": self.outcome,
                "prep": self.prep.as_dict() if self.prep else None,
                "features": self.features.as_dict() if self.features else None,
                "cohorts": [{"name": c["name"], "n_customers": c["n_customers"]}
                            for c in self.cohorts],
                "refresh": self.refresh.as_dict() if self.refresh else None,
                "monitor": self.monitor.as_dict() if self.monitor else None,
                "resegment": self.resegment,
                "segment": ({k: v for k, v in self.segment.as_dict().items()
                             if k != "metrics"} if self.segment else None),
                "comparison": self.comparison, "decision": self.decision,
                "reason": self.reason, "personas": self.personas, "seconds": self.seconds}


def compare_versions(engine: Engine, old: int, new: int, *, churn_days: int = 60
                     ) -> dict[str, Any]:
    """The new version against the old: migration matrix, ARI, size changes and, per
    segment id (ids are stable), the KPI deltas."""
    d = diff_versions(engine, old, new)
    a = {r["segment_id"]: r for r in validate_segments(engine, churn_days=churn_days,
                                                       version=old)["segments"]}
    b = {r["segment_id"]: r for r in validate_segments(engine, churn_days=churn_days,
                                                       version=new)["segments"]}
    deltas = []
    for sid in sorted(set(a) | set(b)):
        row: dict[str, Any] = {"segment_id": sid}
        for kpi in KPIS:
            va, vb = (a.get(sid) or {}).get(kpi), (b.get(sid) or {}).get(kpi)
            row[kpi] = {"old": va, "new": vb,
                        "delta": None if va is None or vb is None else vb - va}
        deltas.append(row)
    return {**d, "kpi_deltas": deltas}


def _features_current(ws: Workspace, run: dict[str, Any] | None, fp: Any,
                      settings: RunSettings) -> bool:
    """The stored features were computed from these events with these settings."""
    if not is_current(run, fp):
        return False
    params = (run or {}).get("params", {})
    wanted = features_params(settings, settings.as_of or datetime.now(UTC),
                             ws.config.features.model_dump())
    if any(params.get(k) != v for k, v in wanted.items() if k != "as_of"):
        return False
    return settings.as_of is None or params.get("as_of") == wanted["as_of"]


def _segment_cfg(ws: Workspace, run: dict[str, Any]) -> SegmentConfig:
    """The active version's settings (features, scaler, ...), as it was built."""
    params = dict(run.get("params") or {})
    try:
        return SegmentConfig.model_validate({**ws.config.segment.model_dump(), **params})
    except ValueError:
        return ws.config.segment


ASKED = "re-segmentation was asked for"


def run_pipeline(ctx: RunContext, *, resegment: bool | None = None, asked: str = ASKED,
                 monitor: bool = True, force: bool = False,
                 progress: Callable[[str], None] | None = None) -> PipelineReport:
    """Every stage after ingest, each only when its input or the run's settings changed
    (``force``: all).

    ``resegment``: True fits a new version (``asked`` says who asked, for the report),
    False fits none this time, None leaves it to ``[ops] resegment``. Either way the
    active version's memberships are refreshed when they do not come from the current
    features.
    """
    say = progress or (lambda s: None)
    ws, engine, settings = ctx.ws, ctx.engine, ctx.settings
    started, started_at = time.perf_counter(), datetime.now(UTC)
    ops = ws.config.ops
    rep = PipelineReport(run_id=new_run_id(STAGE, started_at))
    fp = events_fingerprint(engine)
    if fp.rows == 0:
        raise InputError("no events in the workspace; ingest some first: "
                         "tribes ingest <files> --source web", code="E_NO_EVENTS")
    as_of = settings.as_of
    prep_run = last_prep(engine)
    if not force and is_current(prep_run, fp) and (prep_run or {}).get(
            "params") == prep_params(settings, list_rules(engine)):
        rep.steps["prep"] = "skipped: the events and identity rules did not change"
    else:
        say("prep")
        rep.prep = run_prep(ctx, progress=lambda s: say(f"prep: {s}"), full=force)
        rep.steps["prep"] = "done"
    if not force and rep.prep is None and _features_current(ws, last_features(engine), fp,
                                                            settings):
        rep.steps["features"] = "skipped: the events did not change"
    else:
        say("features")
        rep.features = run_features(ctx, progress=lambda s: say(f"features: {s}"))
        rep.steps["features"] = "done"
    if list_cohorts(engine):
        say("cohorts")
        rep.cohorts = refresh_after_prep(engine, consent_mode=settings.consent_mode)
        rep.steps["cohorts"] = "done"
    active = active_version(engine)
    if active is not None:
        _refresh(ctx, rep, active, say)
    if monitor and active is not None:
        say("monitor")
        rep.monitor = run_monitor(ctx, progress=lambda s: say(f"monitor: {s}"))
        rep.steps["monitor"] = "done"
    rep.resegment = _why_resegment(ctx, rep, active, resegment, asked, monitor)
    if rep.resegment is not None and active is not None:
        _resegment(ctx, rep, active, say)
    _personas(ctx, rep, active, say)
    rep.seconds = round(time.perf_counter() - started, 3)
    with engine.transaction():
        record_run(engine, run_id=rep.run_id, stage=STAGE, started_at=started_at,
                   fingerprint=events_fingerprint(engine),
                   params={"as_of": as_of.isoformat() if as_of else None,
                           "activate": ops.activate, "min_ari": ops.min_ari,
                           "resegment": ops.resegment if resegment is None else
                           ("asked" if resegment else "not this run")},
                   report=_summary(rep))
    return rep


def run_and_notify(ws: Workspace, settings: RunSettings, *, resegment: bool | None = None,
                   asked: str = ASKED, monitor: bool = True, force: bool = False,
                   progress: Callable[[str], None] | None = None
                   ) -> tuple[PipelineReport, dict[str, int]]:
    """:func:`run_pipeline` with ``settings`` on the workspace database (``tribes run``),
    then, the database closed, the new alerts of its drift check to the webhooks."""
    with open_run(ws, settings) as ctx:
        rep = run_pipeline(ctx, resegment=resegment, asked=asked, monitor=monitor,
                           force=force, progress=progress)
    sent = ({"sent": 0, "failed": 0} if rep.monitor is None
            else send_alerts(ws, rep.monitor.new_alerts))
    return rep, sent


def _refresh(ctx: RunContext, rep: PipelineReport, active: int,
             say: Callable[[str], None]) -> None:
    """The active version's memberships from the current features, unless they come
    from them already (a second run, or a version fitted on them)."""
    engine = ctx.engine
    feats_id = (last_features(engine) or {}).get("run_id")
    if memberships_from(engine, active) == feats_id:
        rep.steps["refresh"] = (f"skipped: version {active}'s memberships come from "
                                "these features")
        return
    say(f"refreshing the memberships of version {active}")
    rep.refresh = refresh_memberships(engine, active, trigger="run")
    rep.steps["refresh"] = "done"


def drift_breaches(monitor: Any, features: list[str]) -> list[dict[str, Any]]:
    """The ``on-drift`` rule: the alerts of this run's drift check (new, or still open)
    that are critical population-stability alerts (``drift.psi``: PSI at or above
    ``[monitor] psi_critical``) on a feature the active version was fitted on."""
    if monitor is None:
        return []
    found = [*monitor.new_alerts, *monitor.open_alerts]
    return [a for a in found if a.get("kind") == "drift.psi"
            and a.get("severity") == "critical" and a.get("subject") in features]


def _why_resegment(ctx: RunContext, rep: PipelineReport, active: int | None,
                   resegment: bool | None, asked: str, monitored: bool) -> str | None:
    """Why this run fits a new version (None: it does not; ``rep.steps["segment"]``
    then says why not)."""
    engine = ctx.engine
    policy = ctx.ws.config.ops.resegment
    if active is None:
        # the first segmentation is a choice of method and k: tribes segment
        rep.steps["segment"] = ("skipped: no segment version yet; build the first with "
                                "tribes segment")
        return None
    feats_id = (last_features(engine) or {}).get("run_id")
    # the newest version built from these features (held or not): nothing new to learn
    built = versions_built_from(engine, feats_id)
    if built:
        rep.steps["segment"] = (f"skipped: version {built[-1]} was built from "
                                "these features")
        return None
    if resegment is not None:
        if resegment:
            return asked
        rep.steps["segment"] = "skipped: asked not to re-segment this run"
        return None
    if policy == "always":
        return "[ops] resegment = always and the features changed"
    if policy == "never":
        rep.steps["segment"] = ("skipped: [ops] resegment = never (tribes run --resegment "
                                "fits one)")
        return None
    if not monitored:
        rep.steps["segment"] = ("skipped: [ops] resegment = on-drift, and drift was not "
                                "checked (--no-monitor)")
        return None
    breaches = drift_breaches(rep.monitor, list(get_run(engine, active)["features"] or []))
    if not breaches:
        rep.steps["segment"] = (f"skipped: no critical drift on version {active}'s "
                                "features ([ops] resegment = on-drift)")
        return None
    shown = ", ".join(f"{a['subject']} {a['value']:.2f}" for a in breaches[:3])
    more = f" and {len(breaches) - 3} more" if len(breaches) > 3 else ""
    return (f"drift: PSI ≥ {ctx.ws.config.monitor.psi_critical:g} (critical) on version "
            f"{active}'s features {shown}{more}")


def _resegment(ctx: RunContext, rep: PipelineReport, active: int,
               say: Callable[[str], None]) -> None:
    """A new version like the active one, compared with it, activated or held."""
    ws, engine = ctx.ws, ctx.engine
    ops = ws.config.ops
    run = get_run(engine, active)
    say(f"segment (like version {active}: {run['method']}, k = {run['k']})")
    k = None if run["method"] in DENSITY else run["k"]
    rep.segment = run_segmentation(
        ctx, method=run["method"], k=k, features=list(run["features"] or []),
        cfg=_segment_cfg(ws, run), activate=False,
        progress=lambda s: say(f"segment: {s}"))
    new = rep.segment.version
    say("comparing with the active version")
    rep.comparison = compare_versions(engine, active, new,
                                      churn_days=ws.config.clv.churn_days)
    ari = rep.comparison["ari"]
    if ops.activate == "auto":
        rep.decision, rep.reason = "activated", "[ops] activate = auto"
    elif ops.activate == "if-stable" and ari == ari and ari >= ops.min_ari:
        rep.decision = "activated"
        rep.reason = f"ARI {ari:.3f} with version {active} ≥ min_ari {ops.min_ari:g}"
    else:
        rep.decision = "held"
        rep.reason = ("[ops] activate = review" if ops.activate == "review" else
                      f"ARI {ari:.3f} with version {active} < min_ari {ops.min_ari:g}: "
                      "the segments changed too much to switch unreviewed")
    if rep.decision == "activated":
        with engine.transaction():
            activate_version(engine, new, action="activate")
    rep.steps["segment"] = "done"


def _personas(ctx: RunContext, rep: PipelineReport, active: int | None,
              say: Callable[[str], None]) -> None:
    """Personas of a newly active version; or again those of the active version when
    its memberships were refreshed since they were built (and it has any)."""
    engine = ctx.engine
    if rep.decision == "activated":
        version = rep.segment.version
    elif active is not None:
        built = personas_built_at(engine, active)
        if built is None or not any(
                r["refreshed_at"] > built and (r["new"] or r["moved"] or r["left"])
                for r in refresh_history(engine, active)):
            return
        version = active
    else:
        return
    say("personas")
    rep.personas = len(build_personas(ctx, version))
    rep.steps["personas"] = "done"


def _summary(rep: PipelineReport) -> dict[str, Any]:
    """What the run history keeps: steps, the decision and the comparison's figures."""
    comp = rep.comparison or {}
    mon = rep.monitor
    ref = rep.refresh
    return {"steps": rep.steps, "outcome": rep.outcome,
            "refresh": ({k: v for k, v in ref.as_dict().items() if k != "sizes"}
                        if ref else None),
            "resegment": rep.resegment, "decision": rep.decision, "reason": rep.reason,
            "version": rep.segment.version if rep.segment else None,
            "k": rep.segment.k if rep.segment else None,
            "compared_with": comp.get("a"), "ari": comp.get("ari"),
            "matrix": comp.get("matrix"), "sizes": comp.get("sizes"),
            "kpi_deltas": comp.get("kpi_deltas"),
            "alerts": len(mon.new_alerts) if mon else 0, "seconds": rep.seconds}


def history(engine: Engine, limit: int = 50) -> list[dict[str, Any]]:
    """Pipeline runs, newest first: when, steps, new version and the decision."""
    t = engine.table("stage_runs")
    df = engine.execute(t.filter(t.stage == STAGE).order_by(ibis.desc("finished_at"))
                        .limit(limit))
    out = []
    for r in df.to_dict("records"):
        rep = json.loads(r["report"] or "{}")
        out.append({"run_id": r["run_id"], "started_at": pd.Timestamp(r["started_at"]),
                    "finished_at": pd.Timestamp(r["finished_at"]), **rep})
    return out
