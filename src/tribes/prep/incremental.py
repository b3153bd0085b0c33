"""Prep after an append: only what the new events touch, with the result of a full prep.

A full prep stitches every id and sessionizes every event. After an append of new events
(and nothing else: no erasure, no other timeout or identity rule), most of that is known
already, and this module redoes only the part the new events can change.

**Identities.** The identity graph is kept as ``id_tuples``, the distinct
(customer_id, anonymous_id, device_id) of the events. New events whose tuples are all
known change nothing. Otherwise the *affected* customers are those holding an id of a new
tuple; their ids are stitched again from every stored tuple that names one of them, with
the new tuples. This part of the graph is closed: an id of an affected customer has all
its links in it (each link comes from a tuple naming it), so its degree and its component
are whole, and a new link can only join customers that hold an id of the new tuple. The
ids of other customers that appear in it (a shared device's other visitors, a known id
an ambiguous component touches) keep their rows; those that were shared are told so, as
their links here are only some of theirs, and a shared id stays shared as links are
added. Rules in force make prep full (they are few and rarely change).

**Sessions.** Customers whose key changed (ids moved between customers) are sessionized
again from all their events. For every other customer with new events, the sessions that
ended more than the timeout before their first new event cannot change (a session ends
where the gap to the next event exceeds the timeout, and the new events come later than
that gap); the rest of their events are sessionized again from the first session that
could change, numbered on from the kept ones. Late events inside old sessions are handled
the same way: the first new event decides where the kept sessions end.

The result is the tables a full prep gives on the same events (a property test holds it);
``prep_touched`` names the customers whose sessions changed, for features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from tribes.engine import Engine, micros_between
from tribes.prep.sessions import (
    SESSION_COLUMNS,
    mark_session_starts,
    number_sessions,
    sessions_table,
)
from tribes.prep.stitch import (
    StitchReport,
    drop_temporaries,
    id_nodes,
    stitch,
    stitch_report,
)
from tribes.store import ID_COLUMNS, IDENTITIES, PREP_TOUCHED, SESSIONS, keyed_events

_TMP = ("_inc_new", "_inc_newt", "_inc_aids", "_inc_fresh", "_inc_ids", "_inc_rekey",
        "_inc_newk", "_inc_cut", "_inc_keyed", "_inc_sessions", "_inc_drop")


@dataclass(frozen=True)
class Increment:
    """What an incremental prep changed."""

    new_events: int
    new_tuples: int
    restitched_ids: int
    rekeyed_customers: int  # customers whose ids changed: sessionized from scratch
    touched_customers: int  # customers whose sessions were redone (incl. the rekeyed)
    sessions_replaced: int
    sessions_written: int
    stitching: StitchReport

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out.pop("stitching")
        return out


def appended_events(engine: Engine, run: dict[str, Any] | None) -> ir.Table | None:
    """The events stored after ``run`` (a prep run), when those are the only change since
    it: every event it read is still there (none erased) and the rest came later. None
    when prep must be full."""
    if run is None:
        return None
    loaded = run.get("events_loaded_at")
    if loaded is None or pd.isna(loaded):
        return None
    report = run.get("report") or {}
    if "tuples" not in report:  # a workspace prepped before id_tuples were kept
        return None
    ev = engine.table("events")
    lit = ibis.literal(pd.Timestamp(loaded).to_pydatetime(), type="timestamp('UTC')")
    new = ev.filter(ev.ingested_at > lit)
    row = engine.execute(ev.aggregate(
        n=ev.count(), new=(ev.ingested_at > lit).cast("int64").sum())).iloc[0]
    n, n_new = int(row["n"]), int(row["new"] or 0)
    if n_new == 0 or n != int(run["events_rows"]) + n_new:
        return None
    tuples = engine.table("id_tuples")
    if int(engine.scalar(tuples.count())) != int(report["tuples"]):
        return None
    return new


def touched_after(engine: Engine, prep: dict[str, Any] | None, of: str | None
                  ) -> ir.Table | None:
    """The customers an append touched, for a table derived from prep's output that
    reflects the prep run ``of``: ``prep_touched`` when the last prep (``prep``) was an
    incremental one right after ``of``, so that redoing those customers' rows brings the
    table up to date; None when it must be rebuilt."""
    inc = ((prep or {}).get("report") or {}).get("incremental")
    if not inc or of is None or inc.get("after") != of:
        return None
    return engine.table("prep_touched")


def _same_tuple(a: ir.Table, b: ir.Table) -> list[ir.BooleanValue]:
    return [a[c].identical_to(b[c]) for c in ID_COLUMNS]


def _ids_in(t: ir.Table, ids: ir.Table) -> ir.Table:
    """Rows of the tuples table ``t`` naming any (id_type, id) of ``ids``."""
    parts = []
    for c in ID_COLUMNS:
        of_type = ids.filter(ids.id_type == c).select(_x="id")
        parts.append(t.semi_join(of_type, t[c] == of_type._x))
    return ibis.union(*parts, distinct=True)


def incremental_prep(engine: Engine, new: ir.Table, *, timeout: timedelta, max_ids: int,
                     say: Callable[[str], None]) -> Increment:
    """Bring ``identities``, ``id_tuples``, ``sessions`` and ``prep_touched`` up to date
    with the appended events ``new`` (see the module's doc). Call inside a transaction."""
    try:
        return _incremental(engine, new, timeout=timeout, max_ids=max_ids, say=say)
    finally:
        for name in _TMP:
            engine.drop_temp(name)
        drop_temporaries(engine)


def _incremental(engine: Engine, new_events: ir.Table, *, timeout: timedelta, max_ids: int,
                 say: Callable[[str], None]) -> Increment:
    limit = round(timeout.total_seconds() * 1_000_000)
    old_ids = engine.table("identities")
    tuples = engine.table("id_tuples")
    new = engine.create_temp("_inc_new", new_events.select(
        *dict.fromkeys([*ID_COLUMNS, *SESSION_COLUMNS])))
    n_new = int(engine.scalar(new.count()))

    say("stitching the new ids")
    distinct = new.select(*ID_COLUMNS).distinct()
    newt = engine.create_temp("_inc_newt", distinct.anti_join(tuples, _same_tuple(distinct,
                                                                                 tuples)))
    n_newt = int(engine.scalar(newt.count()))
    identities = old_ids
    passes, restitched, n_rekeyed = 0, 0, 0
    rekeyed = None
    if n_newt:
        nodes = id_nodes(newt)
        hit = old_ids.semi_join(nodes, [old_ids.id_type == nodes.id_type,
                                        old_ids.id == nodes.id])
        keys = hit.select("customer_key").distinct()
        # every id of an affected customer
        aids = engine.create_temp("_inc_aids", old_ids.semi_join(keys, "customer_key"))
        part = ibis.union(_ids_in(tuples, aids), newt, distinct=True)
        # ids of other customers in this part that are shared: too few of their links are
        # here to tell
        pn = id_nodes(part)
        told = old_ids.filter(old_ids.status == "shared").semi_join(
            pn, [old_ids.id_type == pn.id_type, old_ids.id == pn.id]).anti_join(
            aids, ["id_type", "id"]).select("id_type", "id")
        sub, sub_report = stitch(engine, part, max_ids=max_ids, shared=told)
        passes = sub_report.passes
        # rows for the affected ids and the new ones; other ids keep theirs
        others = old_ids.anti_join(aids, ["id_type", "id"])
        fresh = engine.create_temp("_inc_fresh", sub.anti_join(others, ["id_type", "id"])
                                   .select(*IDENTITIES.names).cast(IDENTITIES))
        restitched = int(engine.scalar(fresh.count()))
        # customers whose ids changed hands, under their old and their new key
        f = fresh.select(f_type="id_type", f_id="id", f_key="customer_key")
        moved = aids.join(f, [aids.id_type == f.f_type, aids.id == f.f_id])
        moved = moved.filter(moved.customer_key != moved.f_key)
        rekeyed = engine.create_temp("_inc_rekey", ibis.union(
            moved.select(customer_key="customer_key"), moved.select(customer_key="f_key"),
            distinct=True))
        n_rekeyed = int(engine.scalar(rekeyed.count()))
        identities = engine.create_temp("_inc_ids", ibis.union(
            others.select(*IDENTITIES.names), fresh))

    say("finding the sessions the new events change")
    newk = engine.create_temp("_inc_newk", keyed_events(new, identities, SESSION_COLUMNS))
    s = engine.table("sessions")
    firsts = newk.group_by("customer_key").aggregate(cut=newk.ts.min())
    if rekeyed is not None:
        firsts = firsts.anti_join(rekeyed, "customer_key")
    sj = s.join(firsts, "customer_key")
    # kept: ended more than the timeout before the customer's first new event
    kept = micros_between(sj.cut, sj.end) > limit
    per = sj.group_by("customer_key").aggregate(
        n_kept=kept.cast("int64").sum(),
        redo_from=ibis.ifelse(kept, ibis.null("timestamp('UTC')"), sj.start).min())
    cut = firsts.left_join(per, "customer_key").select(
        "customer_key", n_kept=per.n_kept.fill_null(0),
        since=ibis.least(firsts.cut, per.redo_from.fill_null(firsts.cut)))
    cut = engine.create_temp("_inc_cut", cut)
    drop = sj.filter(~kept).select("session_id")
    if rekeyed is not None:
        drop = ibis.union(drop, s.semi_join(rekeyed, "customer_key").select("session_id"))
    drop = engine.create_temp("_inc_drop", drop)

    say("sessionizing the touched customers")
    events = engine.table("events")
    lo = engine.scalar(cut.since.min())
    parts = []
    if lo is not None and not pd.isna(lo):
        lo_lit = ibis.literal(pd.Timestamp(lo).to_pydatetime(), type="timestamp('UTC')")
        recent = keyed_events(events.filter(events.ts >= lo_lit), identities,
                              SESSION_COLUMNS)
        c = cut.select(c_key="customer_key", since="since", n_kept="n_kept")
        r = recent.join(c, (recent.customer_key == c.c_key) & (recent.ts >= c.since))
        parts.append(r.select(*recent.columns, "n_kept"))
    if rekeyed is not None and n_rekeyed:
        every = keyed_events(events, identities, SESSION_COLUMNS)
        every = every.semi_join(rekeyed, "customer_key")
        parts.append(every.mutate(n_kept=ibis.literal(0, type="int64")))
    n_written = 0
    if parts:
        keyed = engine.create_temp("_inc_keyed", ibis.union(*parts))
        types = engine.execute(keyed.select("event_type").distinct())["event_type"]
        vocabulary = sorted(str(v) for v in types.dropna())
        offsets = keyed.select(o_key="customer_key", o_kept="n_kept").distinct()
        redone = sessions_table(number_sessions(mark_session_starts(
            keyed.drop("n_kept"), timeout)), vocabulary)
        redone = redone.join(offsets, redone.customer_key == offsets.o_key)
        redone = redone.mutate(session_seq=redone.session_seq + redone.o_kept).drop(
            "o_key", "o_kept")
        written = engine.create_temp("_inc_sessions", redone.cast(SESSIONS))
        n_written = int(engine.scalar(written.count()))
    n_drop = int(engine.scalar(drop.count()))

    say("storing")
    if n_newt:
        aids = engine.table("_inc_aids")
        engine.delete_where("identities", _in_pairs(engine.table("identities"), aids))
        engine.insert("identities", engine.table("_inc_fresh"))
        engine.insert("id_tuples", newt)
    if n_drop:
        stored = engine.table("sessions")
        engine.delete_where("sessions", stored.session_id.isin(drop.session_id))
    if n_written:
        engine.insert("sessions", engine.table("_inc_sessions"))
    touched = cut.select("customer_key", "since")
    if rekeyed is not None:
        touched = ibis.union(touched.cast(PREP_TOUCHED), rekeyed.mutate(
            since=ibis.null("timestamp('UTC')")).cast(PREP_TOUCHED))
    engine.replace_table("prep_touched", touched.cast(PREP_TOUCHED))
    n_touched = int(engine.scalar(engine.table("prep_touched").count()))
    report = stitch_report(engine, engine.table("identities"), passes, 0)
    return Increment(new_events=n_new, new_tuples=n_newt, restitched_ids=restitched,
                     rekeyed_customers=n_rekeyed, touched_customers=n_touched,
                     sessions_replaced=n_drop, sessions_written=n_written,
                     stitching=report)


def _in_pairs(t: ir.Table, ids: ir.Table) -> ir.BooleanValue:
    """``t``'s (id_type, id) is one of ``ids``'s."""
    return ibis.or_(*[(t.id_type == c) & t.id.isin(ids.filter(ids.id_type == c).id)
                      for c in ID_COLUMNS])


