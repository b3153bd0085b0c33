"""``tribes monitor``: today's customers against the active version's reference.

For every feature of the version: PSI and Kolmogorov-Smirnov against the profile kept
when the version was fitted (:mod:`tribes.stats.drift`). For the segments: the version's
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

from tribes.config import MonitorConfig
from tribes.engine import Engine
from tribes.errors import InputError
from tribes.features import FEATURES_TABLE, last_features
from tribes.models import sample_customers, stored_segments
from tribes.monitor import alerts as alert_store
from tribes.monitor import spc
from tribes.stats import FeatureDrift, ShareShift, Transform, feature_drift, share_shift
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
                "notes": self.notes, "thresholds": self.thresholds, "run_id": self.run_id,
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
        return stored_segments(run["method"], model, transform.apply(sample))
    except (ValueError, KeyError):
        return None


def check(found: list[FeatureDrift], shares: ShareShift | None, cfg: MonitorConfig,
          version: int) -> list[alert_store.Alert]:
    """The breaches of the thresholds."""
    out: list[alert_store.Alert] = []
    for f in found:
        if f.psi == f.psi and f.psi >= cfg.psi_warning:
            critical = f.psi >= cfg.psi_critical
            out.append(alert_store.Alert(
                kind="drift.psi", severity="critical" if critical else "warning",
                subject=f.feature, metric="psi", value=f.psi,
                threshold=cfg.psi_critical if critical else cfg.psi_warning,
                message=f"{f.feature} drifted: PSI {f.psi:.3f} "
                        f"(≥ {cfg.psi_critical if critical else cfg.psi_warning:g}); mean "
                        f"{_num(f.mean_ref)} then, {_num(f.mean_now)} now",
                detail=f.as_dict(), version=version))
        if f.ks == f.ks and f.ks >= cfg.ks_statistic and f.ks_p < cfg.p_value:
            out.append(alert_store.Alert(
                kind="drift.ks", severity="warning", subject=f.feature, metric="ks",
                value=f.ks, threshold=cfg.ks_statistic,
                message=f"{f.feature} changed its distribution: KS distance {f.ks:.3f} "
                        f"(≥ {cfg.ks_statistic:g}, p = {f.ks_p:.2g})",
                detail=f.as_dict(), version=version))
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
    say("sampling today's customers")
    sample = sample_customers(engine, t, wanted, cfg.sample_size)
    say("comparing features")
    found = [feature_drift(f, stats[f]["profile"],
                           sample[f].to_numpy(dtype=float, na_value=np.nan),
                           mean_ref=stats[f].get("mean")) for f in feats]
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
                        baseline_min=cfg.spc_baseline_weeks, since=snapshot.get("as_of"))
    names = segment_names(engine, version)
    breaches = check(found, shares, cfg, version) + spc.chart_alerts(charts, names, version)
    feats_run = last_features(engine)
    report = MonitorReport(
        version=version, reference_as_of=snapshot.get("as_of"),
        as_of=(feats_run or {}).get("report", {}).get("as_of"), features=found,
        shares=shares, charts=charts, notes=notes, thresholds=cfg.model_dump())
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
