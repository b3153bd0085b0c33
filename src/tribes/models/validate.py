"""Do the segments differ on the metrics that matter? KPIs per segment with tests.

Rates (conversion, repeat purchase, retention, churn) are tested with the chi-square test
of independence between segment and outcome, effect size Cramér's V. Continuous KPIs
(order value, engagement score) with the Kruskal-Wallis test on per-customer values (at
most :data:`PER_SEGMENT` customers per segment), effect size epsilon squared. A KPI
differs when p < 0.05 / number of tests (Bonferroni).
"""

from __future__ import annotations

import math
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np

from tribes.engine import Engine, md5_hex
from tribes.store import members, require_version

PER_SEGMENT = 5000
ALPHA = 0.05
RETENTION_DAYS = (30, 60, 90)


def _strength(value: float, cuts: tuple[float, float, float]) -> str:
    if value >= cuts[2]:
        return "large"
    if value >= cuts[1]:
        return "medium"
    if value >= cuts[0]:
        return "small"
    return "negligible"


def rate_test(success: np.ndarray, total: np.ndarray) -> dict[str, Any]:
    """Chi-square test of a rate across groups; Cramér's V as effect size."""
    keep = total > 0
    table = np.stack([success[keep], total[keep] - success[keep]], axis=1).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[0] < 2 or table.shape[1] < 2:
        return {"test": "chi-square", "statistic": None, "p_value": None, "effect": None}
    from scipy.stats import chi2_contingency  # slow to import: on use

    chi2, p, _, _ = chi2_contingency(table, correction=False)
    n = table.sum()
    v = math.sqrt(chi2 / (n * (min(table.shape) - 1))) if n else 0.0
    return {"test": "chi-square", "statistic": float(chi2), "p_value": float(p),
            "effect": float(v), "effect_name": "Cramér's V",
            "strength": _strength(v, (0.1, 0.3, 0.5))}


def continuous_test(groups: list[np.ndarray]) -> dict[str, Any]:
    """Kruskal-Wallis test across groups; epsilon squared as effect size."""
    groups = [g[~np.isnan(g)] for g in groups]
    groups = [g for g in groups if len(g)]
    n = sum(len(g) for g in groups)
    if len(groups) < 2 or n < 3 or len(np.unique(np.concatenate(groups))) < 2:
        return {"test": "Kruskal-Wallis", "statistic": None, "p_value": None, "effect": None}
    from scipy.stats import kruskal

    h, p = kruskal(*groups)
    eps = float(h / (n - 1))
    return {"test": "Kruskal-Wallis", "statistic": float(h), "p_value": float(p),
            "effect": eps, "effect_name": "epsilon squared",
            "strength": _strength(eps, (0.01, 0.08, 0.26))}


def validate_segments(engine: Engine, *, churn_days: int = 60,
                      version: int | None = None) -> dict[str, Any]:
    """KPIs per segment of the active version, a test per KPI and a verdict."""
    v = require_version(engine, version)
    f = engine.table("customer_features")
    a = members(engine, v)
    j = f.join(a, f.customer_key == a.a_key)
    buyer = (j.frequency > 0).cast("int64")
    aggs: dict[str, ir.Scalar] = {
        "customers": j.count(),
        "purchasers": buyer.sum(),
        "repeaters": (j.frequency >= 2).cast("int64").sum(),
        "revenue": j.monetary.sum(),
        "orders": j.frequency.sum(),
        "churned": (j.recency_days > churn_days).cast("int64").sum(),
        "engagement": j.engagement_score.mean(),
    }
    for d in RETENTION_DAYS:
        eligible = j.tenure_days >= d
        aggs[f"eligible_{d}"] = eligible.cast("int64").sum()
        aggs[f"retained_{d}"] = (eligible & (j.tenure_days - j.recency_days >= d)).cast(
            "int64").sum()
    per = engine.execute(j.group_by("segment_id").aggregate(**aggs)).sort_values("segment_id")
    s = engine.table("sessions")
    sj = s.join(a, s.customer_key == a.a_key)
    sess = engine.execute(sj.group_by("segment_id").aggregate(
        sessions=sj.count(), converted=sj.has_purchase.cast("int64").sum()))
    per = per.merge(sess, on="segment_id", how="left").fillna({"sessions": 0, "converted": 0})
    # per-customer values for the continuous tests: a deterministic sample per segment
    ranked = j.mutate(_r=ibis.row_number().over(group_by=j.segment_id,
                                                order_by=md5_hex(j.customer_key)))
    sample = engine.execute(ranked.filter(ranked._r < PER_SEGMENT).select(
        "segment_id", "aov", "engagement_score"))

    segs = per.segment_id.astype(int).tolist()
    total_rev = float(per.revenue.sum()) or 1.0
    rows = []
    for r in per.itertuples():
        row = {"segment_id": int(r.segment_id), "customers": int(r.customers),
               "conversion_rate": _ratio(r.converted, r.sessions),
               "aov": _ratio(r.revenue, r.orders),
               "revenue_share": float(r.revenue) / total_rev,
               "repeat_purchase_rate": _ratio(r.repeaters, r.purchasers),
               "churn_rate": _ratio(r.churned, r.customers),
               "engagement_score": float(r.engagement)}
        for d in RETENTION_DAYS:
            row[f"retention_{d}d"] = _ratio(getattr(r, f"retained_{d}"),
                                            getattr(r, f"eligible_{d}"))
        rows.append(row)

    def arr(col: str) -> np.ndarray:
        return per[col].to_numpy(dtype=float)

    tests = {
        "conversion_rate": rate_test(arr("converted"), arr("sessions")),
        "repeat_purchase_rate": rate_test(arr("repeaters"), arr("purchasers")),
        "churn_rate": rate_test(arr("churned"), arr("customers")),
        **{f"retention_{d}d": rate_test(arr(f"retained_{d}"), arr(f"eligible_{d}"))
           for d in RETENTION_DAYS},
        "aov": continuous_test([sample.loc[sample.segment_id == sg, "aov"]
                                .to_numpy(dtype=float) for sg in segs]),
        "engagement_score": continuous_test([
            sample.loc[sample.segment_id == sg, "engagement_score"].to_numpy(dtype=float)
            for sg in segs]),
    }
    alpha = ALPHA / len(tests)
    differs = 0
    for name, t in tests.items():
        p = t.get("p_value")
        if p is None:
            t["verdict"] = "not testable (too few segments or no variation)"
            continue
        if p < alpha:
            differs += 1
            t["verdict"] = (f"differs across segments (p {_p(p)}, {t['effect_name']} "
                            f"{t['effect']:.2f}: {t['strength']})")
        else:
            t["verdict"] = f"no significant difference (p {_p(p)})"
        t["kpi"] = name
    warning = None if differs else ("the segments do not differ on any KPI: they may not "
                                    "be useful for targeting; try other features or k")
    return {"version": v, "churn_days": churn_days, "alpha": alpha, "segments": rows,
            "tests": tests, "kpis_differing": differs, "warning": warning}


def _ratio(a: Any, b: Any) -> float | None:
    a, b = float(a or 0), float(b or 0)
    return a / b if b else None


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"
