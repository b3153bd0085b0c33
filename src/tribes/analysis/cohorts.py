"""Acquisition cohorts and their retention, in the engine.

A customer's cohort is the period (month or week, UTC) of their first event
(``first_seen``), first purchase (``first_purchase``) or profile signup date (``signup``).
Period k of a cohort counts the cohort's customers with at least one event in the k-th
period after the cohort's own; revenue is the sum of their purchase amounts in it.
"""

from __future__ import annotations

from typing import Any

import ibis
import ibis.expr.types as ir

from tribes.analysis.journeys import journey_events
from tribes.engine import Engine
from tribes.engine.functions import micros_between
from tribes.errors import InputError
from tribes.privacy.consent import consent_filter

BYS = ("first_seen", "first_purchase", "signup")
PERIODS = {"month": "M", "week": "W"}


def _index(p: ir.TimestampValue, c: ir.TimestampValue, period: str) -> ir.IntegerValue:
    if period == "month":
        return (p.year() - c.year()) * 12 + (p.month() - c.month())
    days = micros_between(p, c).cast("float64") / 86_400_000_000.0
    return (days / 7.0).round().cast("int64")


def parse_by(by: str, period: str | None) -> tuple[str, str]:
    """Accept ``signup``, ``signup_month``, ``first_purchase_week`` ..."""
    for suffix in PERIODS:
        if by.endswith("_" + suffix):
            by, period = by[: -len(suffix) - 1], period or suffix
    if by not in BYS:
        raise InputError(f"unknown cohort '{by}'; use first_seen, first_purchase or signup "
                         "(optionally with _month or _week)", code="E_COHORT")
    period = period or "month"
    if period not in PERIODS:
        raise InputError(f"unknown period '{period}'; use month or week", code="E_PERIOD")
    return by, period


def retention(engine: Engine, *, by: str = "first_seen", period: str | None = None,
              consent_mode: str = "opt-out") -> dict[str, Any]:
    """Retention matrix (counts and shares) and revenue per cohort and period."""
    by, period = parse_by(by, period)
    unit = PERIODS[period]
    ev = journey_events(engine, ["event_type", "amount"], None, consent_mode)
    if by == "first_seen":
        start = ev.group_by(c_key=ev.customer_key).aggregate(c_ts=ev.ts.min())
    elif by == "first_purchase":
        p = ev.filter(ev.event_type == "purchase")
        start = p.group_by(c_key=p.customer_key).aggregate(c_ts=p.ts.min())
    else:
        c = engine.table("customers")
        c = c.filter(c.signup_ts.notnull())
        start = consent_filter(c.select(c_key=c.customer_id, c_ts=c.signup_ts), "c_key",
                               engine.table("consents"),
                               "opt-in" if consent_mode == "opt-in" else "opt-out")
    start = start.mutate(cohort=start.c_ts.truncate(unit)).view()
    act = ev.mutate(p=ev.ts.truncate(unit),
                    rev=ibis.ifelse(ev.event_type == "purchase", ev.amount, 0.0))
    per = act.group_by(["customer_key", "p"]).aggregate(rev=act.rev.sum())
    j = per.join(start, per.customer_key == start.c_key)
    j = j.mutate(k=_index(j.p, j.cohort, period)).filter(ibis._.k >= 0)
    cells = engine.execute(j.group_by(["cohort", "k"]).aggregate(
        customers=j.count(), revenue=j.rev.sum()))
    sizes = engine.execute(start.group_by("cohort").aggregate(size=start.count()))
    size_of = {r.cohort: int(r.size) for r in sizes.itertuples()}
    cohorts = []
    for cohort, part in cells.groupby("cohort"):
        n_periods = int(part.k.max()) + 1
        counts = [0] * n_periods
        revenue = [0.0] * n_periods
        for r in part.itertuples():
            counts[int(r.k)] = int(r.customers)
            revenue[int(r.k)] = float(r.revenue or 0.0)
        size = size_of.get(cohort, 0)
        cohorts.append({
            "cohort": cohort.strftime("%Y-%m" if period == "month" else "%Y-%m-%d"),
            "size": size, "counts": counts,
            "retention": [n / size if size else None for n in counts],
            "revenue": revenue})
    cohorts.sort(key=lambda c: c["cohort"])
    return {"by": by, "period": period, "cohorts": cohorts}
