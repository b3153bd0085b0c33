"""Journeys: Markov transitions between states, in the engine (funnels: ``funnels.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np

from tribes.engine import Engine, micros_between
from tribes.errors import InputError
from tribes.privacy import consent_filter
from tribes.store import cohort_members, keyed_consents, keyed_events, members

SCOPES = {"session": ("session_start", "session_end"), "customer": ("path_start", "path_end")}
LEVELS = ("event_type", "category")


def journey_events(engine: Engine, columns: list[str], segment: int | None = None,
                   consent_mode: str = "opt-out", *, cohort: str | None = None,
                   only: ir.Table | None = None) -> ir.Table:
    """Keyed events with ``columns`` of customers that may be analyzed, optionally only
    of one segment of the active version, the members of a stored cohort and/or the
    customers of ``only`` (a table of customer_key)."""
    ids = engine.table("identities")
    if only is not None:
        # the look-up of the few customers' ids only: the events of others find no key
        ids = ids.semi_join(only, "customer_key")
    ev = keyed_events(engine.table("events"), ids, ["ts", "event_id", *columns])
    if only is not None:
        ev = ev.semi_join(only, "customer_key")
    ev = consent_filter(ev, "customer_key", keyed_consents(engine),
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
    The ordered events are counted once, by what each says of both transitions (the one
    into it, the one out to the end), and the small result is split: read twice, the
    ordering was computed twice.
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
    counted = (first | (m.prev != m.s)) if collapse else ibis.literal(True)
    rows = m.group_by(src=ibis.ifelse(first, start, m.prev), dst=m.s, counted=counted,
                      ends=last).aggregate(n=m.count())
    into = rows.filter(rows.counted).select("src", "dst", "n")
    ends = rows.filter(rows.ends).select(src=rows.dst, dst=ibis.literal(end), n=rows.n)
    both = ibis.union(into, ends)
    return both.group_by(["src", "dst"]).aggregate(n=both.n.sum())


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
