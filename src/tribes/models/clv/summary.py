"""The recency-frequency summary the CLV models are fitted on, computed in the engine.

Per customer_key, from purchase events up to the calibration end (orders as in DESIGN
§5: order_id, else each purchase event; an order's time is its earliest event, its value
the sum of its amounts):

* purchases in the same *period* (day or week, UTC) count as one transaction;
* ``frequency`` = transactions after the first; ``recency`` = time from the first
  transaction to the last; ``T`` = time from the first transaction to the calibration
  end; all in *time units* (day, week or month) and measured between period starts;
* ``monetary`` = mean value of the repeat transactions (the first one excluded), null
  without repeats; ``first_value`` = value of the first;
* after the calibration end, up to the holdout end: ``holdout_purchases`` (periods with
  a purchase) and ``holdout_value``.

Customers whose first purchase comes after the calibration end are not in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import ibis
import ibis.expr.types as ir

from tribes.engine import Engine, micros_between
from tribes.errors import InputError
from tribes.privacy import consent_filter
from tribes.store import keyed_consents, keyed_events

PERIODS = {"day": "D", "week": "W"}
UNIT_DAYS = {"day": 1.0, "week": 7.0, "month": 365.25 / 12}
DAY_US = 86_400_000_000.0
PURCHASE = "purchase"


@dataclass(frozen=True)
class SummarySpec:
    """How transactions are counted and time is measured."""

    calibration_end: datetime
    holdout_end: datetime | None = None
    period: str = "day"
    time_unit: str = "week"

    def __post_init__(self) -> None:
        if self.period not in PERIODS:
            raise InputError(f"unknown period '{self.period}'; use day or week",
                             code="E_CLV_PERIOD")
        if self.time_unit not in UNIT_DAYS:
            raise InputError(f"unknown time unit '{self.time_unit}'; use day, week or month",
                             code="E_CLV_PERIOD")
        if self.holdout_end is not None and self.holdout_end <= self.calibration_end:
            raise InputError("the holdout must end after the calibration end",
                             code="E_CLV_PERIOD")

    def units(self, later: ir.TimestampValue, earlier: ir.TimestampValue) -> ir.FloatingValue:
        """Time from ``earlier`` to ``later`` in time units."""
        days = micros_between(later, earlier).cast("float64") / DAY_US
        return days / UNIT_DAYS[self.time_unit]

    def truncate(self, ts: ir.TimestampValue) -> ir.TimestampValue:
        return ts.truncate(PERIODS[self.period])

    def as_dict(self) -> dict[str, Any]:
        return {"calibration_end": self.calibration_end.isoformat(),
                "holdout_end": None if self.holdout_end is None else self.holdout_end.isoformat(),
                "period": self.period, "time_unit": self.time_unit}


def _lit(ts: datetime) -> ir.TimestampScalar:
    return ibis.literal(ts, type="timestamp('UTC')")


def transactions(engine: Engine, spec: SummarySpec, consent_mode: str = "opt-out"
                 ) -> ir.Table:
    """``customer_key, period, value``: one row per customer and period with a purchase,
    up to the holdout end (else the calibration end), customers that may be analyzed."""
    events = engine.table("events")
    end = spec.holdout_end or spec.calibration_end
    p = events.filter((events.event_type == PURCHASE) & (events.ts <= _lit(end)))
    p = keyed_events(p, engine.table("identities"), ["ts", "event_id", "order_id", "amount"])
    p = consent_filter(p, "customer_key", keyed_consents(engine),
                       "opt-in" if consent_mode == "opt-in" else "opt-out")
    p = p.mutate(_order=ibis.ifelse(p.order_id.notnull(), "o" + p.order_id, "e" + p.event_id))
    orders = p.group_by(["customer_key", "_order"]).aggregate(
        o_ts=p.ts.min(), o_value=p.amount.fill_null(0.0).sum())
    # an order's period; an order before the calibration end stays in calibration
    orders = orders.mutate(period=spec.truncate(orders.o_ts),
                           holdout=orders.o_ts > _lit(spec.calibration_end))
    return orders.group_by(["customer_key", "period", "holdout"]).aggregate(
        value=orders.o_value.sum())


def rfm_summary(engine: Engine, spec: SummarySpec, consent_mode: str = "opt-out"
                ) -> ir.Table:
    """The per-customer summary (see the module docstring), one row per customer with a
    purchase up to the calibration end."""
    tx = transactions(engine, spec, consent_mode)
    cal = tx.filter(~tx.holdout)
    per = cal.group_by("customer_key").aggregate(
        first_period=cal.period.min(),
        last_period=cal.period.max(),
        n=cal.count(),
        total=cal.value.sum(),
        first_value=cal.value.argmin(cal.period),  # one row per period: no ties
    )
    cal_end = spec.truncate(_lit(spec.calibration_end))
    out = per.mutate(
        frequency=per.n - 1,
        recency=spec.units(per.last_period, per.first_period),
        T=spec.units(cal_end, per.first_period),
        monetary=ibis.ifelse(per.n > 1, (per.total - per.first_value) / (per.n - 1),
                             ibis.null("float64")),
    )
    cols = ["customer_key", "frequency", "recency", "T", "monetary", "first_value",
            "first_period"]
    if spec.holdout_end is None:
        return out.select(*cols)
    hold = tx.filter(tx.holdout)
    h = hold.group_by(h_key=hold.customer_key).aggregate(
        holdout_purchases=hold.count(), holdout_value=hold.value.sum())
    j = out.left_join(h, out.customer_key == h.h_key)
    return j.select(*cols, holdout_purchases=j.holdout_purchases.fill_null(0),
                    holdout_value=j.holdout_value.fill_null(0.0))


def repeat_by_period(engine: Engine, spec: SummarySpec, consent_mode: str = "opt-out"
                     ) -> ir.Table:
    """``period, repeats``: repeat transactions per period, up to the holdout end, of the
    customers in the calibration summary (for the cumulative tracking chart)."""
    tx = transactions(engine, spec, consent_mode)
    first = tx.group_by(f_key=tx.customer_key).aggregate(f_period=tx.period.min(),
                                                         f_cal=(~tx.holdout).any())
    first = first.filter(first.f_cal)
    j = tx.join(first, tx.customer_key == first.f_key)
    rep = j.filter(j.period > j.f_period)
    return rep.group_by("period").aggregate(repeats=rep.count()).order_by("period")
