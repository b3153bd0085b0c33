"""Events keyed by customer, and sessions (DESIGN §5).

Per ``customer_key``, events are ordered by time; a session starts at the first event and
whenever the gap to the previous event is strictly greater than the timeout. Events at
the same instant are in the same session whatever their order (the gap between them is 0),
so the windows order by ``ts`` alone and number sessions over a RANGE frame: every event
tied on ``ts`` gets the same session number. A second sort key costs the engine a third
more time and decides nothing but which of a session's first events gives the session its
``source`` and ``device``; that is decided in the aggregate instead (the first event by
ts, then source, then device, nulls last). The ordering window is the expensive part, so
:func:`mark_session_starts` computes it once and the rest builds on its output.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import ibis
import ibis.expr.types as ir

from tribes.engine import md5_hex, micros_between
from tribes.store import keyed_events

# the events columns sessions are built from
SESSION_COLUMNS = ("ts", "event_type", "source", "device")
# up to this many event types, a session's types are flags, not a collected list
MAX_FLAGGED_TYPES = 64
EPOCH = ibis.timestamp("1970-01-01 00:00:00+00:00")


def _order(t: ir.Table) -> Any:
    return ibis.window(group_by=t.customer_key, order_by=t.ts)


def mark_session_starts(keyed: ir.Table, timeout: timedelta) -> ir.Table:
    """Add ``gap_us`` (microseconds since the customer's previous event, null on the first)
    and ``session_start`` (true where a new session begins)."""
    limit = round(timeout.total_seconds() * 1_000_000)
    gap = micros_between(keyed.ts, keyed.ts.lag().over(_order(keyed)))
    # view(): keeps the window computed once instead of inlined into every use of gap_us
    marked = keyed.mutate(gap_us=gap).view()
    return marked.mutate(session_start=marked.gap_us.isnull() | (marked.gap_us > limit))


def number_sessions(marked: ir.Table) -> ir.Table:
    """Add ``session_seq``: 1 for the customer's first session, 2 for the next, ...
    (the same for all events at one instant: the frame holds the current row's peers)."""
    w = ibis.range_window(group_by=marked.customer_key, order_by=marked.ts,
                          preceding=None, following=0)
    return marked.mutate(session_seq=marked.session_start.cast("int64").sum().over(w))


def session_id(customer_key: ir.StringValue, start: ir.TimestampValue) -> ir.StringValue:
    """A session id from its customer and start (stable when later events arrive)."""
    start_us = micros_between(start, EPOCH).cast("string")
    return "s" + md5_hex(customer_key + "|" + start_us).substr(0, 20)


def _event_types(t: ir.Table, vocabulary: Sequence[str] | None) -> dict[str, ir.Value]:
    """The aggregates giving a session's sorted distinct event types: one flag per type
    of a known, small vocabulary (as cheap as ``has_purchase``), else collected (which
    costs the engine several seconds per ten million events)."""
    if vocabulary is None or len(set(vocabulary)) > MAX_FLAGGED_TYPES:
        return {"_types": t.event_type.collect(distinct=True)}
    return {f"_t{i}": (t.event_type == v).any() for i, v in enumerate(sorted(set(vocabulary)))}


def _types_list(s: ir.Table, vocabulary: Sequence[str] | None) -> ir.ArrayValue:
    if "_types" in s.columns:
        return s._types.sort()
    flagged = [ibis.ifelse(s[f"_t{i}"], v, ibis.null("string"))
               for i, v in enumerate(sorted(set(vocabulary or ())))]
    return ibis.array(flagged).filter(lambda x: x.notnull())


def sessions_table(numbered: ir.Table, event_types: Sequence[str] | None = None
                   ) -> ir.Table:
    """One row per session from events with ``session_seq`` (see :func:`number_sessions`).

    ``event_types``: every event type of these events, when known (see :func:`_event_types`).
    """
    t = numbered
    s = t.group_by(["customer_key", "session_seq"]).aggregate(
        start=t.ts.min(),
        end=t.ts.max(),
        n_events=t.count(),
        **_event_types(t, event_types),
        has_add_to_cart=(t.event_type == "add_to_cart").any(),
        has_purchase=(t.event_type == "purchase").any(),
        # the first event: earliest ts, then smallest source, then device (nulls last)
        first=ibis.struct({"ts": t.ts, "source": t.source, "no_device": t.device.isnull(),
                           "device": t.device}).min(),
    )
    return s.select(
        "customer_key",
        session_id=session_id(s.customer_key, s.start),
        session_seq=s.session_seq,
        start=s.start,
        end=s.end,
        duration_s=micros_between(s.end, s.start).cast("float64") / 1e6,
        n_events=s.n_events,
        event_types=_types_list(s, event_types),
        has_add_to_cart=s.has_add_to_cart,
        has_purchase=s.has_purchase,
        source=s.first["source"],
        device=s.first["device"],
    )


def parts(n_events: int, rows_per_part: int) -> int:
    """How many customer parts to order separately so each holds about ``rows_per_part``
    events (ordering all events at once can exceed the memory limit)."""
    return max(1, -(-n_events // max(rows_per_part, 1)))


def sessionize(events: ir.Table, identities: ir.Table, timeout: timedelta,
               part: tuple[int, int] | None = None,
               event_types: Sequence[str] | None = None) -> ir.Table:
    """The sessions of ``events`` (DESIGN §5): :func:`sessions_table` of keyed, numbered
    events (``event_types``: all event types of ``events``, when known)."""
    keyed = keyed_events(events, identities, SESSION_COLUMNS, part)
    return sessions_table(number_sessions(mark_session_starts(keyed, timeout)), event_types)
