"""``tribes monitor``: today's customers against the active version's reference.

For every feature of the version: PSI and Kolmogorov-Smirnov against the profile kept
when the version was fitted (:mod:`tribes.stats.drift`). When today's as-of is not the
version's, the features that count days to the as-of are compared like with like: days
since a moment fixed for the customer (tenure) against the reference aged by the days
between the two as-ofs; days since the latest event or order (recency) are left out, since
they grow for customers who stayed away and restart for those who came back, which no
aging of the reference reproduces. For the segments: the version's
model applied to today's features, and a chi-square test of the shares it gives against
the shares the version was created with. Breaches of the ``[monitor]`` thresholds become
alerts (:mod:`tribes.monitor.alerts`); each check is kept as a stage run, so the report
and the dashboard can chart the figures over time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import ibis
import numpy as np

from tribes import models  # its names are read when a check runs: they load scikit-learn
from tribes.config import MonitorConfig
from tribes.engine import Engine
from tribes.errors import InputError
from tribes.features import AGES, FEATURES_TABLE, RESTARTS, definition, last_features
from tribes.monitor import alerts as alert_store
from tribes.monitor import spc
from tribes.stats import FeatureDrift, ShareShift, Transform, aged, feature_drift, share_shift
from tribes.store import (
    events_fingerprint,
    get_run,
    new_run_id,
    record_run,
    require_version,
    segment_names,
)
from tribes.workspace import RunContext

STAGE = "monitor"


@dataclass
class MonitorReport:
    version: int
    reference_as_of: str | None
    as_of: str | None
    features: list[FeatureDrift]
    shares: ShareShift | None
    charts: list[Any] = field(default_factory=list)  # spc.Chart per segment and KPI
    new_alerts: list[dict[str, Any]] = field(default_factory=list)
    open_alerts: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # days from the reference's as-of to today's (None: the version does not say)
    as_of_moved_days: float | None = None
    # features compared otherwise because the as-of moved: feature, treatment, days, reason
    time_adjusted: list[dict[str, Any]] = field(default_factory=list)
    thresholds: dict[str, Any] = field(default_factory=dict)
    run_id: str = ""
    seconds: float = 0.0

    @property
    def breached(self) -> bool:
        return bool(self.new_alerts or self.open_alerts)

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "reference_as_of": self.reference_as_of,
                "as_of": self.as_of, "features": [f.as_dict() for f in self.features],
                "shares": self.shares.as_dict() if self.shares else None,
                "charts": [c.as_dict() for c in self.charts],
                "new_alerts": self.new_alerts, "open_alerts": self.open_alerts,
                "notes": self.notes, "as_of_moved_days": self.as_of_moved_days,
                "time_adjusted": self.time_adjusted,
                "thresholds": self.thresholds, "run_id": self.run_id,
                "seconds": self.seconds}


def _labels(run: dict[str, Any], sample: Any) -> np.ndarray | None:
    """Segment ids of the sample's customers under the version (None: cannot tell)."""
    model = run["model"] or {}
    if run["method"] == "rfm":
        if "rfm_label" not in sample:
            return None
        names = list(model.get("labels") or [])
        index = {name: i for i, name in enumerate(names)}
        fallback = len(names) - 1
        labels = np.array([index.get(v, fallback) for v in sample["rfm_label"]], dtype=int)
        lookup = {int(a): int(b) for a, b in (model.get("labels_to_segments") or {}).items()}
        return np.array([lookup.get(int(v), int(v)) for v in labels], dtype=int)
    if not run["transform"]:
        return None
    transform = Transform.from_dict(run["transform"])
    try:
        return models.stored_segments(run["method"], model, transform.apply(sample))
    except (ValueError, KeyError):
        return None


def moved_days(reference_as_of: Any, as_of: Any) -> float | None:
    """Days from the reference's as-of to today's (None when either is unknown)."""
    if not reference_as_of or not as_of:
        return None
    then, now = (datetime.fromisoformat(str(v)) for v in (reference_as_of, as_of))
    then, now = (v if v.tzinfo else v.replace(tzinfo=UTC) for v in (then, now))
    return (now - then).total_seconds() / 86_400


def time_adjustments(feats: list[str], days: float | None) -> list[dict[str, Any]]:
    """How each feature that counts days to the as-of is compared when the as-of moved
    ``days`` since the reference: ``aged`` (the reference plus ``days``) or ``left out``.
    Nothing when the as-of did not move (or is unknown)."""
    if days is None or abs(days) < 1 / 86_400:
        return []
    out = []
    for f in feats:
        d = definition(f)
        clock = d.clock if d is not None else ""
        if clock == AGES:
            out.append({"feature": f, "treatment": "aged", "days": days, "reason": (
                f"days since a moment fixed for each customer: {days:+.4g} days for every "
                "customer present then, so the reference is aged by as much")})
        elif clock == RESTARTS:
            out.append({"feature": f, "treatment": "left out", "days": days, "reason": (
                f"days since the latest event or order: {days:+.4g} days for customers "
                "who stayed away, restarted for those who came back; neither the "
                "reference nor the reference aged is like with like (the weekly size and "
                "retention charts watch activity)")})
    return out


def check(found: list[FeatureDrift], shares: ShareShift | None, cfg: MonitorConfig,
          version: int, aged_days: dict[str, float] | None = None
          ) -> list[alert_store.Alert]:
    """The breaches of the thresholds. ``aged_days``: features whose reference was aged,
    and by how many days."""
    out: list[alert_store.Alert] = []
    aged_days = aged_days or {}
    for f in found:
        detail = f.as_dict() | ({"aged_days": aged_days[f.feature]}
                                if f.feature in aged_days else {})
        then = (f"{_num(f.mean_ref)} then (aged {aged_days[f.feature]:+.4g} days)"
                if f.feature in aged_days else f"{_num(f.mean_ref)} then")
        if f.psi == f.psi and f.psi >= cfg.psi_warning:
            critical = f.psi >= cfg.psi_critical
            out.append(alert_store.Alert(
                kind="drift.psi", severity="critical" if critical else "warning",
                subject=f.feature, metric="psi", value=f.psi,
                threshold=cfg.psi_critical if critical else cfg.psi_warning,
                message=f"{f.feature} drifted: PSI {f.psi:.3f} "
                        f"(≥ {cfg.psi_critical if critical else cfg.psi_warning:g}); mean "
                        f"{then}, {_num(f.mean_now)} now",
                detail=detail, version=version))
        if f.ks == f.ks and f.ks >= cfg.ks_statistic and f.ks_p < cfg.p_value:
            out.append(alert_store.Alert(
                kind="drift.ks", severity="warning", subject=f.feature, metric="ks",
                value=f.ks, threshold=cfg.ks_statistic,
                message=f"{f.feature} changed its distribution: KS distance {f.ks:.3f} "
                        f"(≥ {cfg.ks_statistic:g}, p = {f.ks_p:.2g})",
                detail=detail, version=version))
    if shares is not None and shares.p_value == shares.p_value \
            and shares.p_value < cfg.p_value:
        for s in shares.segments:
            if abs(s["shift"]) >= cfg.share_shift:
                out.append(alert_store.Alert(
                    kind="segment.share", severity="warning",
                    subject=f"segment {s['segment_id']}", metric="share_shift",
                    value=s["shift"], threshold=cfg.share_shift,
                    message=f"{s['name']} holds {s['share_now']:.1%} of customers now, "
                            f"{s['share_ref']:.1%} when version {version} was built "
                            f"(chi-square p = {shares.p_value:.2g})",
                    detail={**s, "chi2": shares.chi2, "dof": shares.dof,
                            "p_value": shares.p_value}, version=version))
    return out


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:,.3g}"


def run_monitor(ctx: RunContext, *, record: bool = True,
                progress: Callable[[str], None] | None = None) -> MonitorReport:
    """Compare today's customer features with the active version and raise alerts.
    ``record=False`` only computes (nothing is written)."""
    say = progress or (lambda s: None)
    ws, engine = ctx.ws, ctx.engine
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    cfg = ws.config.monitor
    version = require_version(engine, purpose="to monitor")
    if not engine.has_table(FEATURES_TABLE):
        raise InputError("no customer features yet; build them with: tribes features",
                         code="E_NO_FEATURES")
    run = get_run(engine, version)
    snapshot = run["snapshot"] or {}
    stats: dict[str, Any] = snapshot.get("feature_stats") or {}
    feats = [f for f in run["features"] or [] if (stats.get(f) or {}).get("profile")]
    notes: list[str] = []
    if not feats:
        notes.append(f"version {version} keeps no drift reference (it was built by an "
                     "earlier tribes); segment again to monitor drift")
    t = engine.table(FEATURES_TABLE)
    missing = [f for f in run["features"] or [] if f not in t.columns]
    if missing:
        raise InputError(f"the features table lacks {missing}, used by version {version}; "
                         "rebuild the features with: tribes features", code="E_FEATURE")
    wanted = list(dict.fromkeys([*(run["features"] or []),
                                 *(["rfm_label"] if run["method"] == "rfm" else [])]))
    feats_run = last_features(engine)
    as_of = (feats_run or {}).get("report", {}).get("as_of")
    days = moved_days(snapshot.get("as_of"), as_of)
    if days is None and as_of:
        notes.append(f"version {version} does not record the as-of of its reference: "
                     "features counting days to the as-of are compared as they are")
    adjusted = time_adjustments(feats, days)
    aged_days = {a["feature"]: a["days"] for a in adjusted if a["treatment"] == "aged"}
    left_out = {a["feature"] for a in adjusted if a["treatment"] == "left out"}
    say("sampling today's customers")
    sample = models.sample_customers(engine, t, wanted, cfg.sample_size)
    say("comparing features")
    found = []
    for f in feats:
        if f in left_out:
            continue
        ref, mean = stats[f]["profile"], stats[f].get("mean")
        if f in aged_days:
            ref = aged(ref, aged_days[f])
            mean = None if mean is None else mean + aged_days[f]
        found.append(feature_drift(f, ref, sample[f].to_numpy(dtype=float, na_value=np.nan),
                                   mean_ref=mean))
    say("comparing segment shares")
    labels = _labels(run, sample) if len(sample) else None
    shares = None
    if labels is None:
        notes.append(f"segment shares are not compared: version {version} "
                     f"({run['method']}) cannot assign customers outside the engine")
    else:
        segs = run["segments"] or []
        shares = share_shift({int(s["segment_id"]): float(s["share"]) for s in segs},
                             segment_names(engine, version), labels)
    say("control charts of weekly segment KPIs")
    charts = spc.charts(spc.weekly_kpis(engine, version), recent=cfg.spc_recent_weeks,
                        baseline_min=cfg.spc_baseline_weeks, since=snapshot.get("as_of"),
                        alpha=cfg.spc_false_alarm)
    names = segment_names(engine, version)
    breaches = check(found, shares, cfg, version, aged_days) + spc.chart_alerts(
        charts, names, version)
    report = MonitorReport(
        version=version, reference_as_of=snapshot.get("as_of"), as_of=as_of,
        features=found, shares=shares, charts=charts, notes=notes, as_of_moved_days=days,
        time_adjusted=adjusted, thresholds=cfg.model_dump())
    if not record:
        report.new_alerts = [{**b.row(0, started_at), "alert_id": None, "status": "found"}
                             for b in breaches]
        report.seconds = round(time.perf_counter() - started, 3)
        return report
    report.run_id = new_run_id(STAGE, started_at)
    with engine.transaction():
        report.new_alerts, report.open_alerts = alert_store.record(engine, breaches,
                                                                   now=started_at)
        report.seconds = round(time.perf_counter() - started, 3)
        record_run(engine, run_id=report.run_id, stage=STAGE, started_at=started_at,
                   fingerprint=events_fingerprint(engine), params={"version": version},
                   report=report.as_dict())
    return report


def history(engine: Engine, limit: int = 52) -> list[dict[str, Any]]:
    """Earlier checks, oldest first: time, version, PSI per feature, share p-value and
    the number of alerts raised (for charts)."""
    t = engine.table("stage_runs")
    df = engine.execute(t.filter(t.stage == STAGE).order_by(ibis.desc("finished_at"))
                        .limit(limit))
    out = []
    for r in df.to_dict("records")[::-1]:
        rep = json.loads(r["report"] or "{}")
        out.append({"at": r["finished_at"], "version": rep.get("version"),
                    "psi": {f["feature"]: f["psi"] for f in rep.get("features", [])},
                    "share_p": (rep.get("shares") or {}).get("p_value"),
                    "alerts": len(rep.get("new_alerts", []))})
    return out
