"""Conversion funnels, in the engine.

The rules (docs/funnels.md has a worked example of each):

* A unit is a customer (their whole history) or a session. Its events are ordered by
  (ts, event_id): the event order, in which events with the same timestamp still have
  a place.
* **Start**: ``first`` counts the unit's first step-1 event only; ``any`` tries every
  step-1 event and keeps the attempt that goes furthest (then the fastest, then the
  earliest).
* **Ordering**: ``loose``: step k is the earliest step-k event strictly after the
  event of step k-1 (never the same event, so ``purchase,purchase`` needs two
  purchases); ``strict``: step k must be the very next event of the unit. With the same
  start rule, strict never counts more than loose.
* **Window**: every step within ``window`` of the attempt's step-1 event.
* **Breakdown attribution** (``by`` an event attribute): ``step:N`` (default ``step:1``)
  the value on the attempt's step-N event (units that did not reach it:
  ``(did not reach)``); ``first-touch``: the unit's first value on any event;
  ``last-touch``: the last value on the steps it reached (the furthest step's, or the
  one before if that event has none); ``all``: every value on the attempt's step events
  (a unit then counts in each of its groups). A unit without a value: ``(none)``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import ibis
import ibis.expr.types as ir

from tribes.analysis.journeys import journey_events
from tribes.engine import Engine
from tribes.engine.functions import micros_between
from tribes.errors import InputError
from tribes.prep.sessions import mark_session_starts, number_sessions
from tribes.store.segments import members

UNITS = ("customer", "session")
ORDERINGS = ("loose", "strict")
STARTS = ("first", "any")
# event attributes a funnel can be broken down by
BY_COLUMNS = ("source", "channel", "device", "country", "region", "city", "category")
NONE, NOT_REACHED = "(none)", "(did not reach)"


def check_event_types(engine: Engine, steps: list[str]) -> None:
    """Every step must be an event type of the data (a typo would silently give zeros)."""
    from tribes.errors import closest

    ev = engine.table("events")
    known = {str(v) for v in engine.execute(ev.select("event_type").distinct())["event_type"]
             if v is not None}
    for step in steps:
        if step not in known:
            near = closest(step, known)
            hint = f"; did you mean '{near}'?" if near else ""
            raise InputError(f"no '{step}' events in the workspace{hint} event types: "
                             f"{', '.join(sorted(known)[:20])}", code="E_STEPS")


def _attribution(value: str, n_steps: int) -> tuple[str, int]:
    """(kind, step) of an attribution option."""
    if value in ("first-touch", "last-touch", "all"):
        return value, 0
    kind, _, number = value.partition(":")
    if kind == "step" and number.isdigit() and 1 <= int(number) <= n_steps:
        return "step", int(number)
    raise InputError(f"unknown attribution '{value}'; use step:N (1..{n_steps}), "
                     "first-touch, last-touch or all", code="E_ATTRIBUTION")


def funnel(engine: Engine, steps: list[str], *, window: timedelta,
           by: str | None = None, segment: int | None = None, unit: str = "customer",
           ordering: str = "loose", start: str = "first", attribution: str = "step:1",
           timeout: timedelta = timedelta(minutes=30), cohort: str | None = None,
           consent_mode: str = "opt-out") -> dict[str, Any]:
    """Units (customers or sessions) reaching each step of ``steps`` (see the module's
    rules); per group of ``by`` (``segment`` of the active version, or an event
    attribute of :data:`BY_COLUMNS` attributed by ``attribution``), step and overall
    conversion, drop-off and the median time from the step before (seconds and in
    words)."""
    if len(steps) < 2:
        raise InputError("a funnel needs at least two steps, e.g. --steps "
                         "product_view,add_to_cart,purchase", code="E_STEPS")
    for value, allowed, what, code in ((unit, UNITS, "unit", "E_UNIT"),
                                       (ordering, ORDERINGS, "ordering", "E_ORDERING"),
                                       (start, STARTS, "start rule", "E_START")):
        if value not in allowed:
            raise InputError(f"unknown {what} '{value}'; use {' or '.join(allowed)}",
                             code=code)
    if by is not None and by != "segment" and by not in BY_COLUMNS:
        raise InputError(f"unknown breakdown '{by}'; use segment or one of "
                         f"{', '.join(BY_COLUMNS)}", code="E_BY")
    how = _attribution(attribution, len(steps))
    check_event_types(engine, steps)
    attr = [by] if by in BY_COLUMNS else []
    ev = journey_events(engine, ["event_type", *attr], segment, consent_mode, cohort=cohort)
    if unit == "session":
        ev = number_sessions(mark_session_starts(ev, timeout))
        ev = ev.mutate(unit=ev.customer_key + "#" + ev.session_seq.cast("string"))
    else:
        ev = ev.mutate(unit=ev.customer_key)
    temps = ["_fn_events", "_fn_first", *[f"_fn_reached{k}" for k in range(1, len(steps) + 1)]]
    try:
        reached = _reach(engine, ev, steps, window, ordering, start, attr)
        first = None
        if attr and how[0] == "first-touch":
            first = engine.create_temp("_fn_first", _first_values(ev, attr[0]))
        res = _summarize(engine, reached, steps, by, how, first)
    finally:
        for name in temps:
            engine.drop_temp(name)
    return {"steps": steps, "window_seconds": window.total_seconds(), "by": by,
            "attribution": attribution if attr else None, "ordering": ordering,
            "start": start, "unit": unit, **res}


def _reach(engine: Engine, ev: ir.Table, steps: list[str], window: timedelta,
           ordering: str, start: str, attr: list[str]) -> ir.Table:
    """One row per unit: ``p1..pn`` (positions in the event order) and ``t1..tn`` of the
    steps its counted attempt reached (null beyond), ``a1..an`` the attribute there."""
    kinds = list(dict.fromkeys(steps))
    if ordering == "loose":  # only step events matter, and only their order
        ev = ev.filter(ev.event_type.isin(kinds))
    w = ibis.window(group_by=ev.unit, order_by=[ev.ts, ev.event_id])
    ev = ev.mutate(pos=ibis.row_number().over(w)).view()
    cols: dict[str, Any] = {}
    if ordering == "loose":
        # per event and step kind: the position of the next such event strictly after it
        after = ibis.window(group_by=ev.unit, order_by=ev.pos, following=(1, None))
        for i, kind in enumerate(kinds):
            cols[f"nx{i}"] = ibis.cases((ev.event_type == kind, ev.pos)).min().over(after)
    ev = engine.create_temp("_fn_events", ev.select(
        "unit", "customer_key", "pos", "ts", "event_type",
        attr=ev[attr[0]] if attr else ibis.null("string"), **cols))
    first = ev.filter(ev.event_type == steps[0])
    if start == "first":
        first = first.mutate(_first=first.pos.min().over(group_by=first.unit)).view()
        first = first.filter(first.pos == first._first).drop("_first")
    reached = first.select("unit", "customer_key", p1="pos", t1="ts", a1="attr",
                           **{c: c for c in cols})
    reached = engine.create_temp("_fn_reached1", reached)
    span = ibis.interval(microseconds=round(window.total_seconds() * 1_000_000))
    for k, step in enumerate(steps[1:], start=2):
        # loose: the next step-k event after the previous step's; strict: the next event
        prev = reached[f"p{k - 1}"]
        cand = reached[f"nx{kinds.index(step)}"] if ordering == "loose" else prev + 1
        e = ev.select(e_unit="unit", e_pos="pos", e_ts="ts", e_type="event_type",
                      e_attr="attr", **{f"e_{c}": c for c in cols})
        j = reached.left_join(e, [reached.unit == e.e_unit, e.e_pos == cand])
        ok = (j.e_pos.notnull() & (j.e_type == step) & (j.e_ts <= j.t1 + span)).fill_null(
            False)
        keep = [c for c in reached.columns if c not in cols]
        nxt = j.select(*keep, **{f"p{k}": ibis.ifelse(ok, j.e_pos, ibis.null("int64")),
                                 f"t{k}": ibis.ifelse(ok, j.e_ts, ibis.null(j.e_ts.type())),
                                 f"a{k}": ibis.ifelse(ok, j.e_attr, ibis.null("string"))},
                       **{c: ibis.ifelse(ok, j[f"e_{c}"], ibis.null("int64")) for c in cols})
        reached = engine.create_temp(f"_fn_reached{k}", nxt)
    n = len(steps)
    depth = sum((reached[f"p{k}"].notnull().cast("int64") for k in range(1, n + 1)),
                ibis.literal(0))
    last_t = ibis.coalesce(*[reached[f"t{k}"] for k in range(n, 0, -1)])
    scored = reached.mutate(_depth=depth, _took=micros_between(last_t, reached.t1)).view()
    # the counted attempt: furthest, then fastest, then earliest
    best = ibis.row_number().over(ibis.window(
        group_by=scored.unit, order_by=[ibis.desc(scored._depth), scored._took, scored.p1]))
    scored = scored.mutate(_rank=best).view()
    return scored.filter(scored._rank == 0).drop("_rank", "_took", *cols)


def _first_values(ev: ir.Table, column: str) -> ir.Table:
    """Per unit, the first non-null value of ``column`` on any of its events."""
    have = ev.filter(ev[column].notnull())
    w = ibis.window(group_by=have.unit, order_by=[have.ts, have.event_id])
    have = have.mutate(_n=ibis.row_number().over(w)).view()
    return have.filter(have._n == 0).select(f_unit="unit", f_value=column)


def _groups(reached: ir.Table, n: int, by: str | None, how: tuple[str, int],
            first: ir.Table | None, engine: Engine) -> ir.Table:
    """``reached`` with the ``group`` each unit counts in (units in several groups
    repeated, for ``all``)."""
    if by is None:
        return reached.mutate(group=ibis.literal("all"))
    if by == "segment":
        a = members(engine).select("a_key", seg="segment_id")
        j = reached.left_join(a, reached.customer_key == a.a_key)
        return j.mutate(group=j.seg.cast("string").fill_null(NONE)).drop("a_key", "seg")
    kind, step = how
    if kind == "step":
        value = ibis.cases((reached[f"p{step}"].isnull(), NOT_REACHED),
                           else_=reached[f"a{step}"].fill_null(NONE))
        return reached.mutate(group=value)
    if kind == "last-touch":  # a{k} is null beyond the furthest step reached
        return reached.mutate(group=ibis.coalesce(
            *[reached[f"a{k}"] for k in range(n, 0, -1)], ibis.literal(NONE)))
    if kind == "first-touch":
        assert first is not None
        j = reached.left_join(first, reached.unit == first.f_unit)
        return j.mutate(group=j.f_value.fill_null(NONE)).drop("f_unit", "f_value")
    # all: one row per distinct value on the attempt's step events
    values = ibis.array([reached[f"a{k}"] for k in range(1, n + 1)])
    exploded = reached.mutate(group=values.unnest()).view()
    exploded = exploded.filter(exploded.group.notnull()).distinct()
    none = reached.anti_join(exploded, reached.unit == exploded.unit).mutate(
        group=ibis.literal(NONE))
    return ibis.union(exploded, none.select(*exploded.columns))


def _summarize(engine: Engine, reached: ir.Table, steps: list[str], by: str | None,
               how: tuple[str, int], first: ir.Table | None) -> dict[str, Any]:
    n = len(steps)
    grouped = _groups(reached, n, by, how, first, engine)
    aggs: dict[str, Any] = {}
    for k in range(1, n + 1):
        aggs[f"n{k}"] = grouped[f"p{k}"].notnull().cast("int64").sum()
        if k > 1:
            gap = micros_between(grouped[f"t{k}"], grouped[f"t{k - 1}"]).cast("float64") / 1e6
            aggs[f"m{k}"] = gap.median()
    df = engine.execute(grouped.group_by("group").aggregate(**aggs)).sort_values("group")
    groups = []
    for row in df.to_dict("records"):
        out_steps = []
        for k, step in enumerate(steps, start=1):
            count = int(row[f"n{k}"] or 0)
            prev = int(row[f"n{k - 1}"] or 0) if k > 1 else count
            median = None if k == 1 else row[f"m{k}"]
            median = None if median is None or median != median else float(median)
            out_steps.append({
                "step": step, "count": count,
                "step_conversion": (count / prev if prev else None) if k > 1 else 1.0,
                "overall_conversion": count / int(row["n1"]) if row["n1"] else None,
                "drop_off": prev - count if k > 1 else 0,
                "median_seconds_from_previous": median,
                "median_from_previous": None if median is None else human_seconds(median)})
        groups.append({"group": str(row["group"]), "steps": out_steps})
    return {"groups": groups}


def human_seconds(seconds: float) -> str:
    """A duration in the two largest units that matter: ``23 d 4 h``, ``3 h 12 min``,
    ``4 min 5 s``, ``12 s``, ``0.4 s``."""
    if seconds < 10:
        return f"{seconds:.1f} s".replace(".0 s", " s")
    total = round(seconds)
    parts: list[tuple[int, str]] = []
    for size, name in ((86400, "d"), (3600, "h"), (60, "min"), (1, "s")):
        amount, total = divmod(total, size)
        if amount or parts:
            parts.append((amount, name))
    shown = [f"{a} {u}" for a, u in parts[:2] if a]
    return " ".join(shown) or "0 s"
