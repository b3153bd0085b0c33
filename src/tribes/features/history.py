"""Dated feature snapshots, and how customers moved between two dates.

Every features run that reaches the newest event keeps a snapshot of it, cheaply: what is
stored is ``customer_state`` (the per-customer figures that do not move with the clock),
and only the rows that changed since the snapshot before (``state_history``, one row per
customer and change, from the snapshot it took effect at; a customer that left, by an
identity merge, has a ``gone`` row). A daily refresh after an append adds the rows of the
customers the append touched, not a copy of every customer.

The features as of a snapshot follow from it exactly (:func:`snapshot_features`): each
customer's newest row up to the snapshot, aged to its as-of
(:func:`~tribes.features.build.features_from_state`), scored (engagement, RFM) with the
weights and composite index that snapshot's run used. Share columns (channel, device)
are not kept. Consent is that of today: a customer who has since withdrawn analytics
consent is left out of every past snapshot too.

A date without a snapshot is computed from the events the workspace holds now, up to its
end (:func:`features_on`). :func:`tribes.models.migration.migration` counts the
customers moving between RFM labels or segments from one date to another.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from tribes.engine import Engine
from tribes.errors import InputError
from tribes.features.build import customer_state, features_from_state, scored_features
from tribes.features.composite import Composite, fit_composite
from tribes.features.definitions import composite_features
from tribes.privacy import consent_filter
from tribes.settings import ConsentMode
from tribes.store import keyed_consents

HISTORY_TABLE = "state_history"
SNAPSHOTS_TABLE = "feature_snapshots"
# the columns of customer_state a snapshot keeps (all but the share counts, whose columns
# follow the values of the day)
HISTORY_COLUMNS = (
    "customer_key", "first_ts", "last_ts", "n_events", "n_sessions", "_session_us",
    "atc_sessions", "abandoned", "distinct_categories", "support_contacts", "frequency",
    "monetary", "priced", "first_order", "last_order",
)
# the labels of a migration between two dates (models.movement) besides RFM's and segments'
NO_PURCHASE = "no purchase"   # the RFM label of a customer without an order
NOT_YET = "not a customer"    # not among the customers on that date (new since, or gone)
NO_SEGMENT = "no segment"     # a version's noise, or a label no segment had


@dataclass(frozen=True)
class SnapshotWrite:
    """What one features run added to the history."""

    as_of: datetime
    changed: int   # customers whose row is new or changed since the snapshot before
    gone: int      # customers of the snapshot before that are no longer customers
    replaced: bool  # a snapshot at this as-of existed (same events again) and was redone
    skipped: str = ""  # why nothing was kept (an as-of before the newest snapshot)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "as_of": self.as_of.isoformat()}


def _ts(when: datetime) -> ir.TimestampScalar:
    return ibis.literal(when, type="timestamp('UTC')")


def _latest(hist: ir.Table, upto: ir.BooleanValue) -> ir.Table:
    """Each customer's newest history row among ``upto`` (gone rows included)."""
    h = hist.filter(upto)
    h = h.mutate(_rn=ibis.row_number().over(group_by="customer_key",
                                            order_by=ibis.desc("valid_from")))
    return h.filter(h._rn == 0).drop("_rn")


def record_snapshot(engine: Engine, state: ir.Table, *, as_of: datetime, run_id: str,
                    composite: Mapping[str, Any], weights: Mapping[str, float] | None
                    ) -> SnapshotWrite:
    """Keep ``state`` (every customer's ``customer_state`` as of ``as_of``, the newest
    event) as the snapshot at ``as_of``: the rows that differ from each customer's row in
    the snapshot before, and a ``gone`` row for customers no longer in it. Call inside
    the features run's transaction."""
    snaps = engine.table(SNAPSHOTS_TABLE)
    newest = engine.scalar(snaps.as_of.max())
    newest = None if newest is None or pd.isna(newest) else pd.Timestamp(newest)
    if newest is not None and newest > pd.Timestamp(as_of):
        return SnapshotWrite(as_of=as_of, changed=0, gone=0, replaced=False,
                             skipped=f"a snapshot as of {newest.isoformat()} is newer (the "
                             "newest events were erased since); not kept")
    cur = state.select(*HISTORY_COLUMNS)
    if not engine.has_table(HISTORY_TABLE):
        engine.create_empty(HISTORY_TABLE, ibis.schema(
            {**cur.schema(), "valid_from": "timestamp('UTC')", "gone": "boolean"}))
    replaced = newest is not None and newest == pd.Timestamp(as_of)
    if replaced:
        engine.delete_where(HISTORY_TABLE, engine.table(HISTORY_TABLE).valid_from >= _ts(as_of))
        engine.delete_where(SNAPSHOTS_TABLE, snaps.as_of >= _ts(as_of))
    hist = engine.table(HISTORY_TABLE)
    prev = _latest(hist, hist.valid_from < _ts(as_of))
    prev = prev.filter(~prev.gone).drop("valid_from", "gone").view()
    # a row equal to the customer's last one is not kept again: null-safe equality of
    # every column, money to a millionth (a sum taken in another order may differ in its
    # last bits, and the count of changed rows must not depend on that). An equi-join on
    # the key, then the test: inside the join condition it made the engine compare pairs
    p = prev.rename({f"_p{c}": c for c in HISTORY_COLUMNS})
    j = cur.left_join(p, cur.customer_key == p._pcustomer_key)
    same = ibis.and_(
        j._pcustomer_key.notnull(),
        *[j[c].identical_to(j[f"_p{c}"]) for c in HISTORY_COLUMNS
          if c not in ("customer_key", "monetary")],
        (j.monetary.isnull() & j._pmonetary.isnull())
        | ((j.monetary - j._pmonetary).abs() < 1e-6).fill_null(False),
    )
    changed = j.filter(~same).select(*HISTORY_COLUMNS)
    left = prev.anti_join(cur, "customer_key")
    delta = engine.create_temp("_fh_delta", ibis.union(
        changed.mutate(valid_from=_ts(as_of), gone=ibis.literal(False)),
        left.select(*HISTORY_COLUMNS).mutate(valid_from=_ts(as_of), gone=ibis.literal(True)),
    ))
    try:
        counts = engine.execute(delta.group_by("gone").aggregate(n=delta.count()))
        engine.insert(HISTORY_TABLE, delta)
    finally:
        engine.drop_temp("_fh_delta")
    by_gone = {bool(r.gone): int(r.n) for r in counts.itertuples()}
    n_changed, n_gone = by_gone.get(False, 0), by_gone.get(True, 0)
    n_customers = int(engine.scalar(cur.count()))
    engine.insert(SNAPSHOTS_TABLE, ibis.memtable([{
        "as_of": as_of, "run_id": run_id, "customers": n_customers, "changed": n_changed,
        "gone": n_gone, "composite": json.dumps(dict(composite)),
        "weights": json.dumps(dict(weights)) if weights else None,
        "created_at": datetime.now(UTC),
    }], schema=engine.table(SNAPSHOTS_TABLE).schema()))
    return SnapshotWrite(as_of=as_of, changed=n_changed, gone=n_gone, replaced=replaced)


def list_snapshots(engine: Engine) -> list[dict[str, Any]]:
    """The stored snapshots, oldest first: as_of, run_id, customers, changed, gone."""
    if not engine.has_table(SNAPSHOTS_TABLE):
        return []  # a workspace of an older version, opened for reading only
    s = engine.table(SNAPSHOTS_TABLE)
    df = engine.execute(s.select("as_of", "run_id", "customers", "changed", "gone",
                                 "created_at").order_by("as_of"))
    return [{**r, "as_of": pd.Timestamp(r["as_of"]).to_pydatetime(),
             "created_at": pd.Timestamp(r["created_at"]).to_pydatetime()}
            for r in df.to_dict("records")]


def _snapshot_row(engine: Engine, as_of: datetime) -> dict[str, Any]:
    s = engine.table(SNAPSHOTS_TABLE)
    df = engine.execute(s.filter(s.as_of == _ts(as_of)))
    if df.empty:
        raise InputError(f"no feature snapshot as of {as_of.isoformat()}; list them with: "
                         "tribes features history", code="E_NO_SNAPSHOT")
    return dict(df.iloc[0])


def snapshot_features(engine: Engine, as_of: datetime, *, consent_mode: ConsentMode) -> ir.Table:
    """The customer features of the stored snapshot at ``as_of`` (its run's engagement
    weights and composite index; no share columns; today's consents)."""
    row = _snapshot_row(engine, as_of)
    hist = engine.table(HISTORY_TABLE)
    state = _latest(hist, hist.valid_from <= _ts(as_of))
    state = state.filter(~state.gone).drop("valid_from", "gone")
    weights = json.loads(row["weights"]) if isinstance(row["weights"], str) else None
    composite = Composite.from_dict(json.loads(row["composite"]))
    return _finish(engine, features_from_state(state, as_of=as_of), as_of, weights,
                   consent_mode, composite)


def _finish(engine: Engine, base: ir.Table, as_of: datetime,
            weights: Mapping[str, float] | None, consent_mode: ConsentMode,
            composite: Composite | None) -> ir.Table:
    allowed = consent_filter(base, "customer_key", keyed_consents(engine), consent_mode)
    scored = scored_features(allowed, weights)
    if composite is None:
        return scored.mutate(as_of=_ts(as_of))
    return scored.mutate(composite_index=composite.expr(scored), as_of=_ts(as_of))


def end_of(day: date) -> datetime:
    """The last instant of a UTC day (the as-of a date stands for)."""
    return datetime.combine(day, time.max, tzinfo=UTC)


@dataclass(frozen=True)
class DatedFeatures:
    """The customer features on a date, and where they came from."""

    day: date
    as_of: datetime
    source: str  # "snapshot" (stored then) or "events" (computed now from the events)
    table: ir.Table

    def describe(self) -> dict[str, Any]:
        return {"date": self.day.isoformat(), "as_of": self.as_of.isoformat(),
                "source": self.source}


def features_on(engine: Engine, day: date, *, consent_mode: ConsentMode,
                weights: Mapping[str, float] | None, composite: list[str] | None,
                sample_size: int) -> DatedFeatures:
    """The features on ``day``: the newest stored snapshot of that day when there is one,
    else computed from the events held now, up to the end of the day (as ``tribes
    features --as-of`` does, without the share columns and without storing anything)."""
    lo = datetime.combine(day, time.min, tzinfo=UTC)
    hit = None
    if engine.has_table(HISTORY_TABLE):  # (none before the first snapshot)
        s = engine.table(SNAPSHOTS_TABLE)
        hit = engine.scalar(s.filter((s.as_of >= _ts(lo)) & (s.as_of <= _ts(end_of(day))))
                            .as_of.max())
    if hit is not None and not pd.isna(hit):
        when = pd.Timestamp(hit).to_pydatetime()
        return DatedFeatures(day=day, as_of=when, source="snapshot",
                             table=snapshot_features(engine, when, consent_mode=consent_mode))
    events = engine.table("events")
    first = engine.scalar(events.ts.min())
    if first is None or pd.isna(first) or pd.Timestamp(first).date() > day:
        raise InputError(f"no events on or before {day.isoformat()}"
                         + ("" if first is None or pd.isna(first)
                            else f" (the first is on {pd.Timestamp(first).date()})"),
                         code="E_NO_EVENTS")
    newest = pd.Timestamp(engine.scalar(events.ts.max())).to_pydatetime()
    as_of = end_of(day)
    state = customer_state(events, engine.table("identities"), engine.table("sessions"),
                           as_of=as_of, cut=as_of < newest)
    base = engine.create_temp(f"_fh_{day:%Y%m%d}", features_from_state(state, as_of=as_of))
    scored = _finish(engine, base, as_of, weights, consent_mode, None)
    inputs = composite_features(composite)
    sample = engine.execute(scored.select(*inputs).limit(sample_size))
    fitted = fit_composite(sample, inputs) if len(sample) > 1 else None
    table = scored if fitted is None else scored.mutate(composite_index=fitted.expr(scored))
    return DatedFeatures(day=day, as_of=as_of, source="events", table=table)


def parse_day(text: str | date) -> date:
    """A date given as ISO text (``2026-06-30``) or as a date."""
    if isinstance(text, datetime):
        return text.astimezone(UTC).date() if text.tzinfo else text.date()
    if isinstance(text, date):
        return text
    try:
        return date.fromisoformat(text.strip()[:10])
    except ValueError:
        raise InputError(f"'{text}' is not a date; write it as 2026-06-30",
                         code="E_DATE") from None
