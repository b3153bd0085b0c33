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
from tribes.prep.sessions import keyed_events
from tribes.privacy.consent import consent_filter
from tribes.store.segments import members

SCOPES = {"session": ("session_start", "session_end"), "customer": ("path_start", "path_end")}
LEVELS = ("event_type", "category")


def journey_events(engine: Engine, columns: list[str], segment: int | None = None,
                   consent_mode: str = "opt-out") -> ir.Table:
    """Keyed events with ``columns`` of customers that may be analyzed, optionally of one
    segment of the active version."""
    ev = keyed_events(engine.table("events"), engine.table("identities"),
                      ["ts", "event_id", *columns])
    ev = consent_filter(ev, "customer_key", engine.table("consents"),
                        "opt-in" if consent_mode == "opt-in" else "opt-out")
    if segment is not None:
        a = members(engine)
        a = a.filter(a.segment_id == segment)
        ev = ev.semi_join(a, ev.customer_key == a.a_key)
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
                segment: int | None = None, collapse: bool = False,
                timeout: timedelta = timedelta(minutes=30),
                consent_mode: str = "opt-out") -> Transitions:
    """The transition counts of all (or one segment's) customers."""
    if scope not in SCOPES:
        raise InputError(f"unknown scope '{scope}'; use session or customer", code="E_SCOPE")
    if level not in LEVELS:
        raise InputError(f"unknown level '{level}'; use {' or '.join(LEVELS)}",
                         code="E_LEVEL")
    ev = journey_events(engine, [level], segment, consent_mode)
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


def funnel(engine: Engine, steps: list[str], *, window: timedelta,
           by: str | None = None, segment: int | None = None,
           consent_mode: str = "opt-out") -> dict[str, Any]:
    """Customers reaching each step in order (loose: other events may come between) within
    ``window`` of their first step-1 event; step and overall conversion, median time
    between steps; optionally per segment (``by="segment"``)."""
    if len(steps) < 2:
        raise InputError("a funnel needs at least two steps, e.g. --steps "
                         "product_view,add_to_cart,purchase", code="E_STEPS")
    ev = journey_events(engine, ["event_type"], segment, consent_mode)
    # the step events once, keyed; every step below reads this small table
    ev = engine.create_temp("_fn_events", ev.filter(ev.event_type.isin(steps)).select(
        "customer_key", "ts", "event_type"))
    try:
        return _funnel(engine, ev, steps, window, by)
    finally:
        for name in ["_fn_events", *[f"_fn_reached{k}" for k in range(1, len(steps) + 1)]]:
            engine.drop_temp(name)


def _funnel(engine: Engine, ev: ir.Table, steps: list[str], window: timedelta,
            by: str | None) -> dict[str, Any]:
    limit_us = int(window.total_seconds() * 1_000_000)
    first = ev.filter(ev.event_type == steps[0])
    reached = engine.create_temp("_fn_reached1", first.group_by("customer_key").aggregate(
        t1=first.ts.min()))
    span = ibis.interval(microseconds=limit_us)
    for k, step in enumerate(steps[1:], start=2):
        prev_t = reached[f"t{k - 1}"]
        e = ev.filter(ev.event_type == step).select(e_key="customer_key", e_ts="ts")
        # candidates: inner join on the customer, then the earliest in range
        cand = reached.join(e, [reached.customer_key == e.e_key, e.e_ts >= prev_t,
                                e.e_ts <= reached.t1 + span])
        best = cand.group_by(b_key=cand.customer_key).aggregate(tk=cand.e_ts.min())
        nxt = reached.left_join(best, reached.customer_key == best.b_key)
        nxt = nxt.select(*[reached[c] for c in reached.columns], **{f"t{k}": nxt.tk})
        reached = engine.create_temp(f"_fn_reached{k}", nxt)
    if by == "segment":
        a = members(engine).select("a_key", group="segment_id")
        reached = reached.left_join(a, reached.customer_key == a.a_key).mutate(
            group=ibis._.group.cast("string"))
    elif by is not None:
        raise InputError(f"unknown breakdown '{by}'; use segment", code="E_BY")
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
                "step": step, "customers": n,
                "step_conversion": (n / prev if prev else None) if k > 1 else 1.0,
                "overall_conversion": n / int(row["n1"]) if row["n1"] else None,
                "drop_off": prev - n if k > 1 else 0,
                "median_seconds_from_previous": (None if k == 1 or row[f"m{k}"] is None
                                                 or row[f"m{k}"] != row[f"m{k}"]
                                                 else float(row[f"m{k}"]))})
        groups.append({"group": str(row["group"]), "steps": out_steps})
    return {"steps": steps, "window_seconds": window.total_seconds(), "by": by,
            "ordering": "loose", "unit": "customer", "groups": groups}
