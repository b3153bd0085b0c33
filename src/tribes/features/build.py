"""Customer features as engine expressions (DESIGN §5; definitions in ``definitions.py``).

Figures that need sessions are read from the stored sessions (prep ordered the events
once), per customer; categories, support contacts, the channel/device mix and orders are
plain aggregates of the keyed events; engagement and RFM scores are whole-table windows
over customer rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import ibis
import ibis.expr.types as ir

from tribes.engine import micros_between
from tribes.features.definitions import OTHER, RFM_GRID, engagement_weights
from tribes.store import ANON_PREFIX, keyed_events

DAY_US = 86_400_000_000.0
ADD_TO_CART = "add_to_cart"
PURCHASE = "purchase"
SUPPORT = "support"


@dataclass(frozen=True)
class MixColumns:
    """Share columns for the most frequent values of a categorical events column."""

    column: str
    prefix: str
    values: tuple[str, ...]
    has_other: bool

    def names(self) -> dict[str, str]:
        """value -> column name; distinct names even when values differ only in punctuation."""
        out: dict[str, str] = {}
        used: set[str] = set()
        for v in self.values:
            base = self.prefix + (re.sub(r"[^0-9a-z]+", "_", v.lower()).strip("_") or "blank")
            name, i = base, 2
            while name in used or name == self.prefix + OTHER:
                name, i = f"{base}_{i}", i + 1
            used.add(name)
            out[v] = name
        return out


def mix_columns(events: ir.Table, column: str, prefix: str, top: int) -> ir.Table:
    """Counts per value of ``column``, most frequent first (to pick the share columns)."""
    t = events.filter(events[column].notnull())
    return t.group_by(value=t[column]).aggregate(n=t.count()).order_by(
        [ibis.desc("n"), "value"])


def _days(later: ir.TimestampValue, earlier: ir.TimestampValue) -> ir.FloatingValue:
    return micros_between(later, earlier).cast("float64") / DAY_US


def base_features(
    events: ir.Table,
    identities: ir.Table,
    sessions: ir.Table,
    *,
    as_of: datetime,
    mixes: Sequence[MixColumns] = (),
    cut: bool = False,
) -> ir.Table:
    """Per customer_key: every feature that depends on that customer's events alone
    (:func:`features_from_state` of :func:`customer_state`)."""
    state = customer_state(events, identities, sessions, as_of=as_of, mixes=mixes, cut=cut)
    return features_from_state(state, as_of=as_of, mixes=mixes)


def customer_state(
    events: ir.Table,
    identities: ir.Table,
    sessions: ir.Table,
    *,
    as_of: datetime,
    mixes: Sequence[MixColumns] = (),
    cut: bool = False,
    keys: ir.Table | None = None,
) -> ir.Table:
    """Per customer_key, what their features are made of and that does not move with the
    clock: first and last event, counts and sums, first and last order. The features at
    any as_of from the newest event on follow from it (:func:`features_from_state`), so
    it is stored, and an append recomputes only the rows of the customers it touched.

    ``sessions``: the stored sessions of these events and identities (prep), whose
    figures are read instead of ordering the events again. ``cut``: events later than
    ``as_of`` may exist (a past snapshot), so the sessions are cut there
    (:func:`sessions_up_to`). ``keys``: only these customers (a table of customer_key).
    """
    as_of_lit = ibis.literal(as_of, type="timestamp('UTC')")
    ids = identities if keys is None else identities.semi_join(keys, "customer_key")

    def keyed(*columns: str, where: Callable[[ir.Table], ir.BooleanValue] | None = None
              ) -> ir.Table:
        # each consumer keys only the columns (and rows) it needs: the engine then scans
        # the events table again instead of holding one wide keyed copy in memory
        e = events.filter(events.ts <= as_of_lit)
        if where is not None:
            e = e.filter(where(e))
        k = keyed_events(e, ids, ["ts", *columns])
        return k if keys is None else k.semi_join(keys, "customer_key")

    if keys is not None:
        sessions = sessions.semi_join(keys, "customer_key")
    if cut:
        sessions = sessions_up_to(sessions, keyed("event_type"), as_of_lit)
    per = _session_figures(sessions)
    # categories, support contacts and the channel/device mix need no ordering: one plain
    # aggregate of one keyed scan
    ev = keyed("source", "category", *[m.column for m in mixes])
    counts: dict[str, ir.Value] = {
        "distinct_categories": ev.category.nunique(),
        "support_contacts": (ev.source == SUPPORT).cast("int64").sum(),
    }
    for mix in mixes:
        col = ev[mix.column]
        counts[f"_{mix.prefix}n"] = col.count()
        for value, name in mix.names().items():
            counts[name] = (col == value).cast("int64").sum()
        if mix.has_other:
            counts[mix.prefix + OTHER] = (col.notnull() & ~col.isin(list(mix.values))
                                          ).cast("int64").sum()
    per_event = ev.group_by(e_key=ev.customer_key).aggregate(**counts)
    # orders: order_id, else each purchase event on its own; time = earliest purchase event
    p = keyed("event_id", "order_id", "amount", where=lambda e: e.event_type == PURCHASE)
    p = p.mutate(_order=ibis.ifelse(p.order_id.notnull(), "o" + p.order_id, "e" + p.event_id))
    orders = p.group_by(["customer_key", "_order"]).aggregate(o_ts=p.ts.min(),
                                                             o_amount=p.amount.sum())
    per_orders = orders.group_by(o_key=orders.customer_key).aggregate(
        frequency=orders.count(),
        monetary=orders.o_amount.sum(),
        priced=orders.o_amount.notnull().cast("int64").sum(),
        first_order=orders.o_ts.min(),
        last_order=orders.o_ts.max(),
    )
    j = per.join(per_event, per.customer_key == per_event.e_key).left_join(
        per_orders, per.customer_key == per_orders.o_key)
    return j.drop("e_key", "o_key")


def features_from_state(state: ir.Table, *, as_of: datetime,
                        mixes: Sequence[MixColumns] = ()) -> ir.Table:
    """The features of :func:`customer_state`'s customers as of ``as_of`` (recency and
    tenure count from it; exact, from the stored timestamps)."""
    as_of_lit = ibis.literal(as_of, type="timestamp('UTC')")
    j = state
    freq = j.frequency.fill_null(0)
    tenure = _days(as_of_lit, j.first_ts)
    cols: dict[str, ir.Value] = {
        "customer_key": j.customer_key,
        "known": ~j.customer_key.startswith(ANON_PREFIX),
        "recency_days": _days(as_of_lit, j.last_ts),
        "tenure_days": tenure,
        "frequency": freq,
        "monetary": j.monetary.fill_null(0.0),
        # over the orders whose amount is known (purchases may be kept without one)
        "aov": ibis.ifelse(j.priced.fill_null(0) > 0, j.monetary / j.priced,
                           ibis.null("float64")),
        "purchase_recency_days": _days(as_of_lit, j.last_order),
        "purchase_velocity_days": ibis.ifelse(
            freq >= 2, _days(j.last_order, j.first_order) / (freq - 1), ibis.null("float64")),
        "days_to_first_purchase": _days(j.first_order, j.first_ts),
        "n_events": j.n_events,
        "n_sessions": j.n_sessions,
        "sessions_per_week": j.n_sessions / ibis.greatest(tenure / 7.0, 1.0),
        "avg_session_duration_s": j._session_us.cast("float64") / 1e6 / j.n_sessions,
        "events_per_session": j.n_events.cast("float64") / j.n_sessions,
        "distinct_categories": j.distinct_categories,
        "cart_abandonment_rate": ibis.ifelse(
            j.atc_sessions > 0, j.abandoned.cast("float64") / j.atc_sessions,
            ibis.null("float64")),
        "support_contacts": j.support_contacts,
    }
    for mix in mixes:
        known = j[f"_{mix.prefix}n"]
        names = list(mix.names().values()) + ([mix.prefix + OTHER] if mix.has_other else [])
        for name in names:
            cols[name] = ibis.ifelse(known > 0, j[name].cast("float64") / known,
                                     ibis.null("float64"))
    return j.select(**cols)


def sessions_up_to(sessions: ir.Table, keyed: ir.Table, as_of: ir.TimestampValue
                   ) -> ir.Table:
    """The sessions as the events up to ``as_of`` alone make them: those that started
    later are dropped; the one a customer may have under way at ``as_of`` (started
    before, ended after) keeps its events up to it, counted again from ``keyed`` (the
    customers' events with ts <= as_of). A session starts where the gap to the previous
    event exceeds the timeout, which later events cannot change, so this is what
    sessionizing those events gives.
    """
    s = sessions.filter(sessions.start <= as_of)
    done = s.filter(s.end <= as_of).select(
        "customer_key", "start", "end", "n_events", "has_add_to_cart", "has_purchase")
    # at most one per customer: sessions of a customer do not overlap
    open_ = s.filter(s.end > as_of).select(o_key="customer_key", o_start="start")
    lo = open_.o_start.min().as_scalar()
    e = keyed.filter(keyed.ts >= lo)
    e = e.join(open_, (e.customer_key == open_.o_key) & (e.ts >= open_.o_start))
    cut = e.group_by(["customer_key", "o_start"]).aggregate(
        end=e.ts.max(),
        n_events=e.count(),
        has_add_to_cart=(e.event_type == ADD_TO_CART).any(),
        has_purchase=(e.event_type == PURCHASE).any(),
    ).rename(start="o_start")
    return done.union(cut.select(*done.columns))


def _session_figures(sessions: ir.Table) -> ir.Table:
    """Per customer_key: first and last event, events, sessions, time in sessions and the
    sessions with an add to cart (and without a purchase)."""
    s = sessions
    return s.group_by("customer_key").aggregate(
        first_ts=s.start.min(),
        last_ts=s.end.max(),
        n_events=s.n_events.sum(),
        n_sessions=s.count(),
        _session_us=micros_between(s.end, s.start).sum(),
        atc_sessions=s.has_add_to_cart.cast("int64").sum(),
        abandoned=(s.has_add_to_cart & ~s.has_purchase).cast("int64").sum(),
    )


def _scaled(col: ir.NumericValue) -> ir.FloatingValue:
    lo, hi = col.min().over(), col.max().over()
    return ibis.ifelse(hi > lo, (col - lo).cast("float64") / (hi - lo), 0.0)


def _score(rank: ir.IntegerValue, n: ir.IntegerValue) -> ir.IntegerValue:
    # 1 + floor(5 x share of purchasers strictly worse); ties share a score
    return ibis.least(5, 1 + (rank.cast("float64") * 5 / n).floor()).cast("int64")


def rfm_label_expr(r: ir.IntegerValue, f: ir.IntegerValue) -> ir.StringValue:
    return ibis.cases(
        *[((r >= r_lo) & (r <= r_hi) & (f >= f_lo) & (f <= f_hi), name)
          for name, (r_lo, r_hi), (f_lo, f_hi) in RFM_GRID],
        else_=ibis.null("string"),
    )


def scored_features(base: ir.Table, weights: Mapping[str, float] | None) -> ir.Table:
    """Add engagement_score and the RFM scores and label (whole-table windows over ``base``).

    ``weights`` of the engagement inputs: ``[features.engagement_weights]``, None = equal.
    """
    chosen = engagement_weights(weights)
    total = sum(chosen.values())
    w = {k: v / total for k, v in chosen.items()}
    engagement = (
        w.get("sessions_per_week", 0) * _scaled(base.sessions_per_week)
        + w.get("events_per_session", 0) * _scaled(base.events_per_session)
        + w.get("distinct_categories", 0) * _scaled(base.distinct_categories)
        + w.get("recency_days", 0) * (1 - _scaled(base.recency_days))
    ) * 100
    with_eng = base.mutate(engagement_score=engagement).view()

    buyers = with_eng.filter(with_eng.frequency > 0)
    n = buyers.count().as_scalar()
    rfm = buyers.select(
        r_key="customer_key",
        r_score=_score(ibis.rank().over(order_by=ibis.desc(buyers.purchase_recency_days)), n),
        f_score=_score(ibis.rank().over(order_by=buyers.frequency), n),
        m_score=_score(ibis.rank().over(order_by=buyers.monetary), n),
    ).view()
    out = with_eng.left_join(rfm, with_eng.customer_key == rfm.r_key).drop("r_key")
    return out.mutate(rfm_label=rfm_label_expr(out.r_score, out.f_score))
