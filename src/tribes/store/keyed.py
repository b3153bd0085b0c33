"""The events table keyed by customer: every event with its ``customer_key`` (DESIGN §5).

The identities table (written by prep's stitching) maps every id to its customer; this is
the one join that every stage reading events per customer starts from.
"""

from __future__ import annotations

from collections.abc import Sequence

import ibis
import ibis.expr.types as ir

from tribes.engine import Engine, bucket

ID_COLUMNS = ("customer_id", "anonymous_id", "device_id")
KNOWN = "customer_id"
ANON_PREFIX = "anon:"  # customer_key of an anonymous customer: this + its smallest id


def _merged_known(identities: ir.Table) -> ir.Table:
    """Known ids an identity merge rule joined to another known customer, with its key."""
    merged = identities.filter((identities.id_type == KNOWN)
                               & (identities.customer_key != identities.id))
    return merged.select(_kid="id", _kkey="customer_key")


def keyed_consents(engine: Engine) -> ir.Table:
    """The consents table with each ``customer_id`` as the key of its customer: a known id
    merged into another customer (tribes identity merge) records the merged customer's
    choices, so the latest choice among all their ids decides (DESIGN §5's consent rule,
    per customer). Every consent filter of analyzed customers reads this."""
    consents = engine.table("consents")
    merged = _merged_known(engine.table("identities"))
    j = consents.left_join(merged, consents.customer_id == merged._kid)
    return j.mutate(customer_id=j._kkey.fill_null(j.customer_id)).drop("_kid", "_kkey")


def keyed_events(events: ir.Table, identities: ir.Table,
                 columns: Sequence[str] | None = None,
                 part: tuple[int, int] | None = None) -> ir.Table:
    """``events`` (only ``columns`` of them, if given) with the ``customer_key`` of their
    customer (DESIGN §5).

    An event belongs to the key of its customer_id when present, else of its anonymous_id,
    else of its device_id. A customer_id is its own key unless an identity merge rule
    joined it to another known customer (the few ``merged`` known ids are looked up);
    other events need the identities look-up. ``part=(i, n)`` keeps the customers of
    part i of n (see :func:`parts`).
    """
    if columns is not None:
        keep = list(dict.fromkeys([*ID_COLUMNS, *columns]))
        events = events.select(*keep)
    known = events.filter(events.customer_id.notnull())
    merged = _merged_known(identities)
    known = known.left_join(merged, known.customer_id == merged._kid)
    known = known.mutate(customer_key=known._kkey.fill_null(known.customer_id)).drop(
        "_kid", "_kkey")
    if part is not None:
        known = known.filter(bucket(known.customer_key, part[1]) == part[0])
        identities = identities.filter(bucket(identities.customer_key, part[1]) == part[0])
    rest = events.filter(events.customer_id.isnull())
    rest = rest.mutate(
        _ptype=ibis.ifelse(rest.anonymous_id.notnull(), "anonymous_id", "device_id"),
        _pid=rest.anonymous_id.fill_null(rest.device_id),
    )
    ids = identities.filter(identities.id_type != KNOWN).select(
        _ptype="id_type", _pid="id", customer_key="customer_key"
    )
    looked_up = rest.join(ids, ["_ptype", "_pid"]).drop("_ptype", "_pid")
    return ibis.union(known, looked_up.select(*known.columns))
