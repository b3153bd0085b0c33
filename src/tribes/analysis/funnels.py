"""Conversion funnels, in the engine.

The rules (docs/funnels.md has a worked example of each):

* A unit is a customer (their whole history) or a session. Its events are ordered by
  (ts, event_id): the event order, in which events with the same timestamp still have
  a place.
* **Start**: ``first`` counts the unit's first step-1 event only; ``any`` tries every
  step-1 event and keeps the attempt that goes furthest (then the fastest, then the
  earliest).
* **Steps** are event types, each optionally filtered on the event's fields
  (``product_view where category = shoes and amount > 20``, the filter syntax of
  :mod:`tribes.analysis.rules`).
* **Ordering**: ``loose``: step k is the earliest step-k event strictly after the
  event of step k-1 (never the same event, so ``purchase,purchase`` needs two
  purchases); ``strict``: step k must be the very next event of the unit. With the same
  start rule, strict never counts more than loose. ``unordered``: the steps in any
  order: an attempt starts at an event of any step, and reaches step k when steps 1..k
  each have their own event among the attempt's events (from its start, within the
  window); step k's time is when the last of them happened.
* **Window**: every step within ``window`` of the attempt's first event.
* **Exclusions** (ordered funnels): ``X between i and j``: an attempt in which an X
  event comes after the event of step k and before the event of step k+1, for any k
  from i to j-1, leaves the funnel at step k.
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
from tribes.analysis.rules import EventSpec, RuleError, parse_spec, spec_predicate
from tribes.engine import Engine, json_member, micros_between
from tribes.errors import InputError, closest
from tribes.prep import mark_session_starts, number_sessions
from tribes.store import members

UNITS = ("customer", "session")
ORDERINGS = ("loose", "strict", "unordered")
STARTS = ("first", "any")
# event attributes a funnel can be broken down by
BY_COLUMNS = ("source", "channel", "device", "country", "region", "city", "category")
NONE, NOT_REACHED = "(none)", "(did not reach)"


def event_types(engine: Engine) -> set[str]:
    ev = engine.table("events")
    return {str(v) for v in engine.execute(ev.select("event_type").distinct())["event_type"]
            if v is not None}


def check_event_types(engine: Engine, steps: list[str],
                      known: set[str] | None = None) -> None:
    """Every step must be an event type of the data (a typo would silently give zeros);
    ``known``: the data's event types, when the caller has them already."""
    known = event_types(engine) if known is None else known
    for step in steps:
        if step not in known:
            near = closest(step, known)
            hint = f"; did you mean '{near}'?" if near else ""
            raise InputError(f"no '{step}' events in the workspace{hint}"
                             f"{quarantined_of(engine, step)} event types: "
                             f"{', '.join(sorted(known)[:20])}", code="E_STEPS")


def quarantined_of(engine: Engine, event_type: str) -> str:
    """``; but N 'x' rows are in quarantine (E_AMOUNT: N): ...`` when there are any."""
    q = engine.table("quarantine")
    q = q.filter(q.kind == "events").mutate(_type=json_member(q.raw, "event_type")).view()
    q = q.filter(q._type == event_type)
    df = engine.execute(q.group_by("reason").aggregate(n=q.count()).order_by("reason"))
    if df.empty:
        return ""
    total = int(df.n.sum())
    reasons = ", ".join(f"{r.reason}: {int(r.n):,}" for r in df.itertuples())
    return (f"; but {total:,} '{event_type}' rows are in quarantine ({reasons}): see them "
            f"with tribes quarantine show --reason {df.reason.iloc[0]}.")


def split_steps(text: str) -> list[str]:
    """Steps separated by commas, except commas inside quotes (a filter's value)."""
    out, cur, quote = [], "", ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == ",":
            out.append(cur.strip())
            cur = ""
            continue
        cur += ch
    out.append(cur.strip())
    return [s for s in out if s]


def parse_steps(engine: Engine, steps: list[str],
                known: set[str] | None = None) -> list[EventSpec]:
    """Each step's event type (checked against the data's, ``known`` when given) and
    filters."""
    known = event_types(engine) if known is None else known
    out = []
    for step in steps:
        check_event_types(engine, [step.split()[0] if step.split() else step], known)
        try:
            out.append(parse_spec(step, events=known))
        except RuleError as exc:
            raise InputError(f"step '{step}': {exc.message}", code="E_STEPS") from None
    return out


def parse_exclusion(engine: Engine, text: str, n_steps: int,
                    known: set[str] | None = None) -> tuple[EventSpec, int, int]:
    """``EVENT [where ...] [between I and J]`` (default: between the first and the last
    step)."""
    import re

    m = re.match(r"^(.*?)\s+between\s+(\d+)\s+and\s+(\d+)\s*$", text.strip())
    body, i, j = (m.group(1), int(m.group(2)), int(m.group(3))) if m else (
        text.strip(), 1, n_steps)
    if not 1 <= i < j <= n_steps:
        raise InputError(f"exclusion '{text}': steps must satisfy 1 <= i < j <= {n_steps}",
                         code="E_EXCLUDE")
    return parse_steps(engine, [body], known)[0], i, j


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
           exclude: list[str] | None = None,
           consent_mode: str = "opt-out") -> dict[str, Any]:
    """Units (customers or sessions) reaching each step of ``steps`` (see the module's
    rules); per group of ``by`` (``segment`` of the active version, or an event
    attribute of :data:`BY_COLUMNS` attributed by ``attribution``), step and overall
    conversion, drop-off and the median time from the step before (seconds and in
    words). ``exclude``: ``EVENT [where ...] [between I and J]`` exclusion steps."""
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
    known = event_types(engine)
    specs = parse_steps(engine, steps, known)
    exclusions = [parse_exclusion(engine, x, len(steps), known) for x in exclude or []]
    if ordering == "unordered":
        _check_unordered(specs, exclusions)
    attr = [by] if by in BY_COLUMNS else []
    fields = sorted({f.field for sp in [*specs, *(x[0] for x in exclusions)]
                     for f in sp.filters} - set(attr))
    ev = journey_events(engine, ["event_type", *attr, *fields], segment, consent_mode,
                        cohort=cohort)
    if unit == "session":
        ev = number_sessions(mark_session_starts(ev, timeout))
        ev = ev.mutate(unit=ev.customer_key + "#" + ev.session_seq.cast("string"))
    else:
        ev = ev.mutate(unit=ev.customer_key)
    temps = ["_fn_events", "_fn_first", "_fn_starts",
             *[f"_fn_reached{k}" for k in range(1, len(steps) + 1)]]
    try:
        if ordering == "unordered":
            reached = _reach_unordered(engine, ev, specs, window, start, attr)
        else:
            reached = _reach(engine, ev, specs, exclusions, window, ordering, start, attr)
        first = None
        if attr and how[0] == "first-touch":
            first = engine.create_temp("_fn_first", _first_values(ev, attr[0]))
        res = _summarize(engine, reached, steps, by, how, first)
    finally:
        for name in temps:
            engine.drop_temp(name)
    return {"steps": [sp.render("where") for sp in specs],
            "window_seconds": window.total_seconds(), "by": by,
            "attribution": attribution if attr else None, "ordering": ordering,
            "start": start, "unit": unit,
            "exclusions": [f"{sp.render('where')} between {i} and {j}"
                           for sp, i, j in exclusions], **res}


def _check_unordered(specs: list[EventSpec], exclusions: list[Any]) -> None:
    """Unordered steps are counted per kind, which needs kinds no event can share."""
    if exclusions:
        raise InputError("exclusion steps need an order between steps; use --ordering "
                         "loose", code="E_EXCLUDE")
    kinds = list(dict.fromkeys(specs))
    for a in kinds:
        for b in kinds:
            if a != b and (a.event == b.event or "event" in (a.event, b.event)):
                raise InputError(
                    f"in an unordered funnel, steps '{a.render('where')}' and "
                    f"'{b.render('where')}' could match the same event; give each kind "
                    "of step its own event type", code="E_STEPS")


def _flags(ev: ir.Table, kinds: list[EventSpec]) -> dict[str, Any]:
    return {f"m{i}": spec_predicate(ev, k) for i, k in enumerate(kinds)}


def _reach(engine: Engine, ev: ir.Table, specs: list[EventSpec],
           exclusions: list[tuple[EventSpec, int, int]], window: timedelta,
           ordering: str, start: str, attr: list[str]) -> ir.Table:
    """One row per unit: ``p1..pn`` (positions in the event order) and ``t1..tn`` of the
    steps its counted attempt reached (null beyond), ``a1..an`` the attribute there."""
    kinds = list(dict.fromkeys(specs))
    outs = [x[0] for x in exclusions]
    ev = ev.mutate(**_flags(ev, kinds),
                   **{f"x{q}": spec_predicate(ev, sp) for q, sp in enumerate(outs)}).view()
    if ordering == "loose":  # only step (and excluded) events matter, and only their order
        ev = ev.filter(ibis.or_(*[ev[f"m{i}"] for i in range(len(kinds))],
                                *[ev[f"x{q}"] for q in range(len(outs))]))
    w = ibis.window(group_by=ev.unit, order_by=[ev.ts, ev.event_id])
    ev = ev.mutate(pos=ibis.row_number().over(w)).view()
    cols: dict[str, Any] = {}
    after = ibis.window(group_by=ev.unit, order_by=ev.pos, following=(1, None))
    if ordering == "loose":
        # per event and step kind: the position of the next such event strictly after it
        for i in range(len(kinds)):
            cols[f"nx{i}"] = ibis.cases((ev[f"m{i}"], ev.pos)).min().over(after)
    for q in range(len(outs)):  # and of the next excluded event
        cols[f"nq{q}"] = ibis.cases((ev[f"x{q}"], ev.pos)).min().over(after)
    ev = engine.create_temp("_fn_events", ev.select(
        "unit", "customer_key", "pos", "ts",
        attr=ev[attr[0]] if attr else ibis.null("string"),
        **{f"m{i}": f"m{i}" for i in range(len(kinds))}, **cols))
    first = ev.filter(ev[f"m{kinds.index(specs[0])}"])
    if start == "first":
        first = first.mutate(_first=first.pos.min().over(group_by=first.unit)).view()
        first = first.filter(first.pos == first._first).drop("_first")
    reached = first.select("unit", "customer_key", p1="pos", t1="ts", a1="attr",
                           **{c: c for c in cols})
    reached = engine.create_temp("_fn_reached1", reached)
    span = ibis.interval(microseconds=round(window.total_seconds() * 1_000_000))
    for k, step in enumerate(specs[1:], start=2):
        # loose: the next step-k event after the previous step's; strict: the next event
        prev = reached[f"p{k - 1}"]
        kind = kinds.index(step)
        cand = reached[f"nx{kind}"] if ordering == "loose" else prev + 1
        e = ev.select(e_unit="unit", e_pos="pos", e_ts="ts", e_hit=f"m{kind}",
                      e_attr="attr", **{f"e_{c}": c for c in cols})
        j = reached.left_join(e, [reached.unit == e.e_unit, e.e_pos == cand])
        ok = j.e_pos.notnull() & j.e_hit & (j.e_ts <= j.t1 + span)
        for q, (_, i, last) in enumerate(exclusions):
            if i <= k - 1 and k <= last:  # an excluded event between steps k-1 and k
                ok = ok & ~(j[f"nq{q}"] < j.e_pos).fill_null(False)
        ok = ok.fill_null(False)
        keep = [c for c in reached.columns if c not in cols]
        nxt = j.select(*keep, **{f"p{k}": ibis.ifelse(ok, j.e_pos, ibis.null("int64")),
                                 f"t{k}": ibis.ifelse(ok, j.e_ts, ibis.null(j.e_ts.type())),
                                 f"a{k}": ibis.ifelse(ok, j.e_attr, ibis.null("string"))},
                       **{c: ibis.ifelse(ok, j[f"e_{c}"], ibis.null("int64")) for c in cols})
        reached = engine.create_temp(f"_fn_reached{k}", nxt)
    return _best(reached.mutate(t0=reached.t1, p0=reached.p1), len(specs), list(cols))


def _best(reached: ir.Table, n: int, drop: list[str]) -> ir.Table:
    """Per unit, the counted attempt: furthest, then fastest, then earliest."""
    depth = sum((reached[f"p{k}"].notnull().cast("int64") for k in range(1, n + 1)),
                ibis.literal(0))
    last_t = ibis.coalesce(*[reached[f"t{k}"] for k in range(n, 0, -1)], reached.t0)
    scored = reached.mutate(_depth=depth, _took=micros_between(last_t, reached.t0)).view()
    best = ibis.row_number().over(ibis.window(
        group_by=scored.unit, order_by=[ibis.desc(scored._depth), scored._took, scored.p0]))
    scored = scored.mutate(_rank=best).view()
    return scored.filter(scored._rank == 0).drop("_rank", "_took", "t0", "p0", *drop)


def _reach_unordered(engine: Engine, ev: ir.Table, specs: list[EventSpec],
                     window: timedelta, start: str, attr: list[str]) -> ir.Table:
    """:func:`_reach` for steps in any order. Each kind's events are numbered in the
    event order (``c{i}``); an attempt starting at event s with ``b`` events of kind i
    before s reaches its m-th step of kind i with kind i's event number b + m."""
    kinds = list(dict.fromkeys(specs))
    ev = ev.mutate(**_flags(ev, kinds)).view()
    ev = ev.filter(ibis.or_(*[ev[f"m{i}"] for i in range(len(kinds))]))
    w = ibis.window(group_by=ev.unit, order_by=[ev.ts, ev.event_id])
    upto = ibis.window(group_by=ev.unit, order_by=[ev.ts, ev.event_id],
                       preceding=None, following=0)
    ev = ev.mutate(pos=ibis.row_number().over(w),
                   **{f"c{i}": ev[f"m{i}"].cast("int64").sum().over(upto)
                      for i in range(len(kinds))}).view()
    ev = engine.create_temp("_fn_events", ev.select(
        "unit", "customer_key", "pos", "ts",
        attr=ev[attr[0]] if attr else ibis.null("string"),
        **{f"m{i}": f"m{i}" for i in range(len(kinds))},
        **{f"c{i}": f"c{i}" for i in range(len(kinds))}))
    first = ev if start == "any" else ev.filter(ev.pos == 0)
    # events of each kind before the attempt's start
    reached = first.select("unit", "customer_key", p0="pos", t0="ts", **{
        f"b{i}": first[f"c{i}"] - first[f"m{i}"].cast("int64") for i in range(len(kinds))})
    reached = engine.create_temp("_fn_starts", reached)
    span = ibis.interval(microseconds=round(window.total_seconds() * 1_000_000))
    need = [0] * len(kinds)
    for k, step in enumerate(specs, start=1):
        kind = kinds.index(step)
        need[kind] += 1
        e = ev.filter(ev[f"m{kind}"]).select(e_unit="unit", e_n=f"c{kind}", e_pos="pos",
                                             e_ts="ts", e_attr="attr")
        j = reached.left_join(e, [reached.unit == e.e_unit,
                                  e.e_n == reached[f"b{kind}"] + need[kind]])
        ok = j.e_pos.notnull() & (j.e_ts <= j.t0 + span)
        if k > 1:
            ok = ok & j[f"p{k - 1}"].notnull()
        ok = ok.fill_null(False)
        when = j.e_ts if k == 1 else ibis.greatest(j[f"t{k - 1}"], j.e_ts)
        nxt = j.select(*[c for c in reached.columns],
                       **{f"p{k}": ibis.ifelse(ok, j.e_pos, ibis.null("int64")),
                          f"t{k}": ibis.ifelse(ok, when, ibis.null(j.e_ts.type())),
                          f"a{k}": ibis.ifelse(ok, j.e_attr, ibis.null("string"))})
        reached = engine.create_temp(f"_fn_reached{k}", nxt)
    return _best(reached, len(specs), [f"b{i}" for i in range(len(kinds))])


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
