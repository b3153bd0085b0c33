"""Journeys: Markov transitions between states and conversion funnels, in the engine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np

from tribes.engine import Engine
from tribes.engine.functions import micros_between
from tribes.errors import InputError
from tribes.prep.sessions import mark_session_starts, number_sessions
from tribes.privacy.consent import consent_filter
from tribes.store.cohorts import cohort_members
from tribes.store.keyed import keyed_events
from tribes.store.segments import members

SCOPES = {"session": ("session_start", "session_end"), "customer": ("path_start", "path_end")}
LEVELS = ("event_type", "category")


def journey_events(engine: Engine, columns: list[str], segment: int | None = None,
                   consent_mode: str = "opt-out", *, cohort: str | None = None) -> ir.Table:
    """Keyed events with ``columns`` of customers that may be analyzed, optionally only
    of one segment of the active version and/or the members of a stored cohort."""
    ev = keyed_events(engine.table("events"), engine.table("identities"),
                      ["ts", "event_id", *columns])
    ev = consent_filter(ev, "customer_key", engine.table("consents"),
                        "opt-in" if consent_mode == "opt-in" else "opt-out")
    if segment is not None:
        a = members(engine)
        a = a.filter(a.segment_id == segment)
        ev = ev.semi_join(a, ev.customer_key == a.a_key)
    if cohort is not None:
        m = cohort_members(engine, cohort)
        ev = ev.semi_join(m, ev.customer_key == m.c_key)
    return ev


def transition_counts(ev: ir.Table, *, state: str, scope: str = "session",
                      timeout: timedelta = timedelta(minutes=30),
                      collapse: bool = False) -> ir.Table:
    """``src, dst, n``: first-order transitions, with synthetic start and end states.

    One ordering of each customer's events gives the previous and next state and the gaps
    to them; a session starts (ends) where the gap before (after) exceeds the timeout.
    """
    start, end = SCOPES[scope]
    t = ev.filter(ev[state].notnull()).select("customer_key", "ts", "event_id",
                                              s=ev[state].cast("string"))
    w = ibis.window(group_by=t.customer_key, order_by=[t.ts, t.event_id])
    limit = round(timeout.total_seconds() * 1_000_000)
    prev_ts, next_ts = t.ts.lag().over(w), t.ts.lead().over(w)
    m = t.mutate(prev=t.s.lag().over(w), gap_in=micros_between(t.ts, prev_ts),
                 gap_out=micros_between(next_ts, t.ts)).view()
    if scope == "session":
        first = m.gap_in.isnull() | (m.gap_in > limit)
        last = m.gap_out.isnull() | (m.gap_out > limit)
    else:
        first, last = m.gap_in.isnull(), m.gap_out.isnull()
    m = m.mutate(first=first, last=last).view()
    into = m.filter(m.first | (m.prev != m.s)) if collapse else m
    into = into.select(src=ibis.ifelse(into.first, start, into.prev), dst=into.s)
    ends = m.filter(m.last).select(src=m.s, dst=ibis.literal(end))
    both = ibis.union(into, ends)
    return both.group_by(["src", "dst"]).aggregate(n=both.count())


@dataclass(frozen=True)
class Transitions:
    scope: str
    level: str
    states: list[str]
    counts: dict[str, dict[str, int]]

    @property
    def probabilities(self) -> dict[str, dict[str, float]]:
        out = {}
        for src, row in self.counts.items():
            total = sum(row.values())
            out[src] = {dst: n / total for dst, n in row.items()} if total else {}
        return out

    def absorbing(self, target: str) -> dict[str, dict[str, float]]:
        """Per state: probability of reaching ``target`` before the end, and the expected
        number of steps until the path ends or reaches it (absorbing Markov chain)."""
        end = SCOPES[self.scope][1]
        absorbing = {target, end}
        transient = [s for s in self.states if s not in absorbing]
        if target not in self.states or not transient:
            return {}
        idx = {s: i for i, s in enumerate(transient)}
        p = self.probabilities
        q = np.zeros((len(transient), len(transient)))
        r = np.zeros(len(transient))
        for s in transient:
            for dst, pr in p.get(s, {}).items():
                if dst in idx:
                    q[idx[s], idx[dst]] += pr
                elif dst == target:
                    r[idx[s]] += pr
        try:
            n = np.linalg.inv(np.eye(len(transient)) - q)
        except np.linalg.LinAlgError:
            return {}
        reach, steps = n @ r, n @ np.ones(len(transient))
        return {s: {"p_reach": float(reach[i]), "expected_steps": float(steps[i])}
                for s, i in idx.items()}

    def as_dict(self, target: str = "purchase") -> dict[str, Any]:
        return {"scope": self.scope, "level": self.level, "states": self.states,
                "counts": self.counts, "probabilities": self.probabilities,
                "absorbing": {"target": target, "states": self.absorbing(target)}}


def transitions(engine: Engine, *, scope: str = "session", level: str = "event_type",
                segment: int | None = None, cohort: str | None = None,
                collapse: bool = False, timeout: timedelta = timedelta(minutes=30),
                consent_mode: str = "opt-out") -> Transitions:
    """The transition counts of all customers (or of one segment's, or a cohort's)."""
    if scope not in SCOPES:
        raise InputError(f"unknown scope '{scope}'; use session or customer", code="E_SCOPE")
    if level not in LEVELS:
        raise InputError(f"unknown level '{level}'; use {' or '.join(LEVELS)}",
                         code="E_LEVEL")
    ev = journey_events(engine, [level], segment, consent_mode, cohort=cohort)
    df = engine.execute(transition_counts(ev, state=level, scope=scope, timeout=timeout,
                                          collapse=collapse))
    counts: dict[str, dict[str, int]] = {}
    for src, dst, n in zip(df["src"], df["dst"], df["n"], strict=True):
        counts.setdefault(str(src), {})[str(dst)] = int(n)
    start, end = SCOPES[scope]
    seen = set(counts) | {d for row in counts.values() for d in row}
    middle = sorted(seen - {start, end})
    states = [start, *middle, end] if counts else []
    return Transitions(scope, level, states, counts)


UNITS = ("customer", "session")
ORDERINGS = ("loose", "strict")
# event attributes a funnel can be broken down by (the value on the unit's first step)
BY_COLUMNS = ("source", "channel", "device", "country", "region", "city", "category")


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


def funnel(engine: Engine, steps: list[str], *, window: timedelta,
           by: str | None = None, segment: int | None = None, unit: str = "customer",
           ordering: str = "loose", timeout: timedelta = timedelta(minutes=30),
           cohort: str | None = None, consent_mode: str = "opt-out") -> dict[str, Any]:
    """Units (customers or sessions) reaching each step in order within ``window`` of their
    first step; step and overall conversion, drop-off and median time between steps.

    ``ordering="loose"``: other events may come between the steps; a unit's funnel starts
    at its first step-1 event and each later step is the earliest one after the previous
    step. ``ordering="strict"``: each step must be the very next event of the unit; of the
    unit's step-1 events the one going deepest (the earliest among equals) counts.
    ``by``: ``segment`` (active version) or an event attribute (:data:`BY_COLUMNS`), taken
    from the unit's first step event.
    """
    if len(steps) < 2:
        raise InputError("a funnel needs at least two steps, e.g. --steps "
                         "product_view,add_to_cart,purchase", code="E_STEPS")
    if unit not in UNITS:
        raise InputError(f"unknown unit '{unit}'; use customer or session", code="E_UNIT")
    if ordering not in ORDERINGS:
        raise InputError(f"unknown ordering '{ordering}'; use loose or strict",
                         code="E_ORDERING")
    if by is not None and by != "segment" and by not in BY_COLUMNS:
        raise InputError(f"unknown breakdown '{by}'; use segment or one of "
                         f"{', '.join(BY_COLUMNS)}", code="E_BY")
    check_event_types(engine, steps)
    attr = [by] if by in BY_COLUMNS else []
    ev = journey_events(engine, ["event_type", *attr], segment, consent_mode, cohort=cohort)
    if unit == "session":
        ev = number_sessions(mark_session_starts(ev, timeout))
        ev = ev.mutate(unit=ev.customer_key + "#" + ev.session_seq.cast("string"))
    else:
        ev = ev.mutate(unit=ev.customer_key)
    temps = ["_fn_events", *[f"_fn_reached{k}" for k in range(1, len(steps) + 1)]]
    try:
        if ordering == "strict":
            reached = engine.create_temp("_fn_reached1", _strict_reached(ev, steps, window,
                                                                          attr))
        else:
            reached = _loose_reached(engine, ev, steps, window, attr)
        res = _summarize(engine, reached, steps, by)
    finally:
        for name in temps:
            engine.drop_temp(name)
    return {"steps": steps, "window_seconds": window.total_seconds(), "by": by,
            "ordering": ordering, "unit": unit, **res}


def _loose_reached(engine: Engine, ev: ir.Table, steps: list[str], window: timedelta,
                   attr: list[str]) -> ir.Table:
    # the step events once; every step below reads this small table
    ev = engine.create_temp("_fn_events", ev.filter(ev.event_type.isin(steps)).select(
        "unit", "customer_key", "ts", "event_type", *attr))
    first = ev.filter(ev.event_type == steps[0])
    aggs: dict[str, Any] = {"t1": first.ts.min()}
    if attr:
        aggs["group"] = first[attr[0]].argmin(first.ts)
    reached = engine.create_temp("_fn_reached1", first.group_by(["unit", "customer_key"])
                                 .aggregate(**aggs))
    span = ibis.interval(microseconds=round(window.total_seconds() * 1_000_000))
    for k, step in enumerate(steps[1:], start=2):
        prev_t = reached[f"t{k - 1}"]
        e = ev.filter(ev.event_type == step).select(e_unit="unit", e_ts="ts")
        # candidates: inner join on the unit, then the earliest in range
        cand = reached.join(e, [reached.unit == e.e_unit, e.e_ts >= prev_t,
                                e.e_ts <= reached.t1 + span])
        best = cand.group_by(b_unit=cand.unit).aggregate(tk=cand.e_ts.min())
        nxt = reached.left_join(best, reached.unit == best.b_unit)
        nxt = nxt.select(*[reached[c] for c in reached.columns], **{f"t{k}": nxt.tk})
        reached = engine.create_temp(f"_fn_reached{k}", nxt)
    return reached


def _strict_reached(ev: ir.Table, steps: list[str], window: timedelta,
                    attr: list[str]) -> ir.Table:
    """Per unit: the timestamps of the steps reached by its deepest run of consecutive
    events matching the steps (all events count, so nothing may come between)."""
    w = ibis.window(group_by=ev.unit, order_by=[ev.ts, ev.event_id])
    span = ibis.interval(microseconds=round(window.total_seconds() * 1_000_000))
    leads = {}
    for j in range(1, len(steps)):
        leads[f"e{j}"] = ev.event_type.lead(j).over(w)
        leads[f"l{j}"] = ev.ts.lead(j).over(w)
    m = ev.mutate(**leads).view()
    m = m.filter(m.event_type == steps[0])
    depth: Any = ibis.literal(1)
    ok: Any = ibis.literal(True)
    for j in range(1, len(steps)):
        ok = ok & (m[f"e{j}"] == steps[j]).fill_null(False) & (
            m[f"l{j}"] <= m.ts + span).fill_null(False)
        depth = depth + ok.cast("int64")
    m = m.mutate(depth=depth).view()
    rank = ibis.row_number().over(ibis.window(group_by=m.unit,
                                              order_by=[ibis.desc(m.depth), m.ts]))
    m = m.mutate(rank=rank).view()
    best = m.filter(m.rank == 0)
    cols: dict[str, Any] = {"t1": best.ts}
    for k in range(2, len(steps) + 1):
        cols[f"t{k}"] = ibis.ifelse(best.depth >= k, best[f"l{k - 1}"], ibis.null())
    if attr:
        cols["group"] = best[attr[0]]
    return best.select("unit", "customer_key", **cols)


def _summarize(engine: Engine, reached: ir.Table, steps: list[str],
               by: str | None) -> dict[str, Any]:
    if by == "segment":
        a = members(engine).select("a_key", seg="segment_id")
        reached = reached.left_join(a, reached.customer_key == a.a_key).mutate(
            group=ibis._.seg.cast("string"))
    if by is not None:
        reached = reached.mutate(group=reached.group.fill_null("(none)")
                                 if "group" in reached.columns else ibis.literal("(none)"))
    else:
        reached = reached.mutate(group=ibis.literal("all"))
    aggs: dict[str, Any] = {}
    for k in range(1, len(steps) + 1):
        aggs[f"n{k}"] = reached[f"t{k}"].notnull().cast("int64").sum()
        if k > 1:
            gap = micros_between(reached[f"t{k}"], reached[f"t{k - 1}"]).cast("float64") / 1e6
            aggs[f"m{k}"] = gap.median()
    df = engine.execute(reached.group_by("group").aggregate(**aggs)).sort_values("group")
    groups = []
    for row in df.to_dict("records"):
        out_steps = []
        for k, step in enumerate(steps, start=1):
            n = int(row[f"n{k}"] or 0)
            prev = int(row[f"n{k - 1}"] or 0) if k > 1 else n
            out_steps.append({
                "step": step, "count": n,
                "step_conversion": (n / prev if prev else None) if k > 1 else 1.0,
                "overall_conversion": n / int(row["n1"]) if row["n1"] else None,
                "drop_off": prev - n if k > 1 else 0,
                "median_seconds_from_previous": (None if k == 1 or row[f"m{k}"] is None
                                                 or row[f"m{k}"] != row[f"m{k}"]
                                                 else float(row[f"m{k}"]))})
        groups.append({"group": str(row["group"]), "steps": out_steps})
    return {"groups": groups}
