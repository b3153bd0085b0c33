"""The last step of a batch per kind: derive keys, drop duplicates, write the rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import ibis
import ibis.expr.types as ir

from tribes.engine import FILE_COLUMN, Engine, md5_hex
from tribes.ingest.mapping import ColumnMapping
from tribes.ingest.stage import MARK_KEY, RECORD, REPEAT_KEY, SEP, record_salt, record_text
from tribes.privacy import pseudonymize
from tribes.store import SCHEMAS


@dataclass(frozen=True)
class Batch:
    """What a finalizer needs to know about the batch being loaded."""

    engine: Engine
    mapping: ColumnMapping
    key: bytes
    batch_id: str
    now: datetime
    repeated: ir.Table | None  # repeat keys (_h) of records seen more than once in a file


Finalizer = Callable[[Batch, ir.Table], int]
Keyer = Callable[[Batch, ir.Table], ir.Table]


def _lineage(batch_id: str, now: datetime) -> dict[str, ir.Value]:
    return {"ingested_at": ibis.literal(now, type="timestamp('UTC')"),
            "batch_id": ibis.literal(batch_id)}


def _conform(t: ir.Table, table: str, values: dict[str, ir.Value]) -> ir.Table:
    """Select the columns of ``table`` in order: from ``values``, else from ``t``, else null."""
    out: dict[str, ir.Value] = {}
    for name, typ in SCHEMAS[table].items():
        if name in values:
            out[name] = values[name].cast(typ)
        elif name in t.columns:
            out[name] = t[name].cast(typ)
        else:
            out[name] = ibis.null(typ)
    return t.select(**out)


def _count_batch(engine: Engine, table: str, batch_id: str) -> int:
    t = engine.table(table)
    return int(engine.scalar(t.filter(t.batch_id == batch_id).count()))


def with_occurrence(b: Batch, good: ir.Table) -> ir.Table:
    """Add ``_occ``: 0 for the first of identical records in a file, 1 for the second, ...

    Identical records are rare: only those whose 64-bit repeat key was seen more than
    once (``scan_repeats``) are numbered with a window over (file, record digest); the
    rest get 0 without sorting the batch. A hash collision only sends a record to the
    exact numbering.
    """
    if b.repeated is None:
        return good.mutate(_occ=ibis.literal(0, type="int64"))
    single = good.anti_join(b.repeated, REPEAT_KEY).mutate(_occ=ibis.literal(0, type="int64"))
    multi = good.semi_join(b.repeated, REPEAT_KEY)
    keys = [multi[FILE_COLUMN], multi[RECORD]]
    multi = multi.mutate(_occ=ibis.row_number().over(group_by=keys, order_by=keys)
                         .cast("int64"))
    return single.union(multi)


RECORD_KEY = "_record_key"


def with_record_key(b: Batch, t: ir.Table, kind: str) -> ir.Table:
    """Add ``_record_key``: what identifies the record whatever its values become: for an
    event the id derived from it (a hash of source, salted record digest and occurrence
    number of identical records in the file), for a profile or consent its record hash.
    A quarantined record read again keeps the key it had where it was first read."""
    if kind == "events":
        t = with_occurrence(b, t)
        # salted with a secret so an id cannot be recomputed from a guessed record; md5
        # as it runs once per row and identifies records, not people (people get HMAC
        # pseudonyms)
        text = record_text(t, before=[ibis.literal(record_salt(b.key)), t.source],
                           after=[t._occ.cast("string")])
        derived: ir.StringValue = "h" + md5_hex(text)
    else:
        derived = pseudonymize(t[RECORD], b.key)
    if MARK_KEY in t.columns:
        derived = t[MARK_KEY].coalesce(derived)
    t = t.mutate(**{RECORD_KEY: derived})
    return t.drop("_occ") if "_occ" in t.columns else t


def key_events(b: Batch, good: ir.Table) -> ir.Table:
    """Give every event its ``event_id``: the source's, else the record's key
    (:func:`with_record_key`).

    It runs before the lookups replace raw ids (``lookups.apply``): the digest reads the
    raw columns, which then need not travel through the lookup joins."""
    t = with_record_key(b, good, "events")
    derived = t[RECORD_KEY]
    has_ids = "event_id" in b.mapping.targets
    return t.mutate(event_id=t.event_id.coalesce(derived) if has_ids else derived).drop(
        RECORD_KEY)


def load_events(b: Batch, good: ir.Table) -> int:
    """Insert the events (keyed by :func:`key_events`) whose ids are not stored yet."""
    engine, batch_id, now = b.engine, b.batch_id, b.now
    t = good
    if "event_id" in b.mapping.targets:
        # the same source id twice in a batch: keep the earliest record
        first = ibis.row_number().over(group_by=t.event_id, order_by=[t.ts, t[RECORD]])
        t = t.mutate(_n=first).filter(lambda x: x._n == 0)
    stored = engine.table("events")
    new = t.anti_join(stored, t.event_id == stored.event_id)
    engine.insert("events", _conform(new, "events", _lineage(batch_id, now)))
    return _count_batch(engine, "events", batch_id)


def _age_band(t: ir.Table, now: datetime) -> ir.StringValue:
    age: ir.Value = ibis.null("int64")
    if "age" in t.columns:
        age = t.age
    if "birth_year" in t.columns:
        age = age.coalesce(now.year - t.birth_year)
    bands = ibis.cases(
        ((age < 0) | (age > 120), ibis.null("string")),
        (age < 18, "under 18"), (age < 25, "18-24"), (age < 35, "25-34"), (age < 45, "35-44"),
        (age < 55, "45-54"), (age < 65, "55-64"), else_="65+",
    )
    if "age_band" in t.columns:
        return t.age_band.coalesce(bands)
    return bands


def load_customers(b: Batch, good: ir.Table) -> int:
    """One profile per customer: a changed profile replaces the stored one, an identical
    one is a duplicate. Within a batch the row with the latest signup wins."""
    engine, batch_id, now = b.engine, b.batch_id, b.now
    t = with_record_key(b, good, "customers")
    t = t.mutate(record_hash=t[RECORD_KEY], age_band=_age_band(t, now)).drop(RECORD_KEY)
    order = [t.signup_ts.desc(), t.record_hash] if "signup_ts" in t.columns else [t.record_hash]
    t = t.mutate(_n=ibis.row_number().over(group_by=t.customer_id, order_by=order))
    t = t.filter(t._n == 0)
    stored = engine.table("customers")
    new = t.anti_join(stored, [t.customer_id == stored.customer_id,
                               t.record_hash == stored.record_hash])
    staged = engine.create_temp("_tribes_customers_new",
                                _conform(new, "customers", _lineage(batch_id, now)))
    engine.delete_where("customers", stored.customer_id.isin(staged.customer_id))
    engine.insert("customers", staged)
    engine.drop_temp("_tribes_customers_new")
    return _count_batch(engine, "customers", batch_id)


def load_consents(b: Batch, good: ir.Table) -> int:
    """Consent records are an append-only log; the same record twice is a duplicate."""
    engine, key, batch_id, now = b.engine, b.key, b.batch_id, b.now
    purpose = good.purpose.coalesce("analytics") if "purpose" in good.columns \
        else ibis.literal("analytics")
    t = good.mutate(purpose=purpose)
    ident = (t.customer_id + SEP + t.purpose + SEP + t.granted.cast("string") + SEP
             + t.ts.cast("string"))
    t = t.mutate(consent_id=pseudonymize(ident, key))
    t = t.mutate(_n=ibis.row_number().over(group_by=t.consent_id, order_by=t[RECORD]))
    t = t.filter(t._n == 0)
    stored = engine.table("consents")
    new = t.anti_join(stored, t.consent_id == stored.consent_id)
    engine.insert("consents", _conform(new, "consents", _lineage(batch_id, now)))
    return _count_batch(engine, "consents", batch_id)


# per kind, what is derived from the raw record before the lookups apply (optional)
KEYERS: dict[str, Keyer] = {"events": key_events}

FINALIZERS: dict[str, Finalizer] = {
    "events": load_events,
    "customers": load_customers,
    "consents": load_consents,
}
