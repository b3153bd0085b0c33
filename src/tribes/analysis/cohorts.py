"""Cohorts, in the engine: acquisition cohorts with their retention, and behavioral
cohorts defined by a rule (:mod:`tribes.analysis.rules`) and stored in the workspace.

A customer's cohort is the period (month or week, UTC) of their first event
(``first_seen``), first purchase (``first_purchase``) or profile signup date (``signup``).
Period k of a cohort counts the cohort's customers with at least one event in the k-th
period after the cohort's own; revenue is the sum of their purchase amounts in it. Every
period from the cohort's own to the last period of the data is given (0 when nobody
returned); periods before the first event of the data are unknown (None).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from tribes.analysis.funnels import check_event_types
from tribes.analysis.journeys import journey_events
from tribes.analysis.rules import (
    Member,
    compile_rule,
    event_columns,
    own_events_only,
    parse,
    render,
)
from tribes.engine import Engine, micros_between
from tribes.errors import InputError
from tribes.features import FEATURES
from tribes.privacy import consent_filter
from tribes.store import (
    active_version,
    check_name,
    cohort_members,
    get_cohort,
    keyed_consents,
    list_cohorts,
    members,
    require_version,
    save_cohort,
    segment_names,
)

BYS = ("first_seen", "first_purchase", "signup")
PERIODS = {"month": "M", "week": "W", "day": "D", "hour": "h"}
_PERIOD_US = {"week": 7 * 86_400_000_000, "day": 86_400_000_000, "hour": 3_600_000_000}
WEEK_STARTS = ("monday", "sunday")


def _start_of(ts: ir.TimestampValue, period: str, week_start: str) -> ir.TimestampValue:
    """The start of the period ``ts`` falls in (weeks from Monday or from Sunday)."""
    if period == "week" and week_start == "sunday":
        return (ts + ibis.interval(days=1)).truncate("W") - ibis.interval(days=1)
    return ts.truncate(PERIODS[period])


def _index(p: ir.TimestampValue, c: ir.TimestampValue, period: str) -> ir.IntegerValue:
    if period == "month":
        return (p.year() - c.year()) * 12 + (p.month() - c.month())
    return (micros_between(p, c).cast("float64") / _PERIOD_US[period]).round().cast("int64")


def _periods_between(start: Any, later: Any, period: str) -> int:
    """Whole periods from ``start`` to ``later`` (both period starts)."""
    a, b = pd.Timestamp(start), pd.Timestamp(later)
    if a.tzinfo is None and b.tzinfo is not None:
        b = b.tz_convert(None)
    elif a.tzinfo is not None and b.tzinfo is None:
        a = a.tz_convert(None)
    if period == "month":
        return (b.year - a.year) * 12 + (b.month - a.month)
    return round((b - a) / pd.Timedelta(microseconds=_PERIOD_US[period]))


def parse_by(by: str, period: str | None) -> tuple[str, str]:
    """Accept ``signup``, ``signup_month``, ``first_purchase_week`` ..."""
    for suffix in PERIODS:
        if by.endswith("_" + suffix):
            by, period = by[: -len(suffix) - 1], period or suffix
    if by not in BYS:
        raise InputError(f"unknown cohort '{by}'; use first_seen, first_purchase or signup "
                         "(optionally with _month, _week, _day or _hour)", code="E_COHORT")
    period = period or "month"
    if period not in PERIODS:
        raise InputError(f"unknown period '{period}'; use month, week, day or hour",
                         code="E_PERIOD")
    return by, period


BREAKDOWNS = ("segment", "persona", "cohort")


def retention_by(engine: Engine, breakdown: str, **kw: Any) -> dict[str, Any]:
    """:func:`retention` once per group: each segment of the active version (``segment``,
    or ``persona`` to label them by persona name) or each stored cohort (``cohort``; a
    customer in several cohorts counts in each)."""
    if breakdown not in BREAKDOWNS:
        raise InputError(f"unknown breakdown '{breakdown}'; use segment, persona or cohort",
                         code="E_BY")
    if kw.get("segment") is not None or kw.get("cohort") is not None:
        raise InputError("a breakdown shows every segment or cohort; leave out --segment "
                         "and --cohort", code="E_BY")
    groups: list[tuple[str, dict[str, Any]]] = []
    if breakdown == "cohort":
        names = [c["name"] for c in list_cohorts(engine)]
        if not names:
            raise InputError("no cohorts yet; define one with: tribes cohorts define",
                             code="E_COHORT")
        groups = [(n, {"cohort": n}) for n in names]
    else:
        version = require_version(engine)
        label = segment_names(engine, version)
        ids = sorted(int(v) for v in engine.execute(
            members(engine).select("segment_id").distinct())["segment_id"])
        groups = [(label.get(s, str(s)) if breakdown == "persona" else str(s),
                   {"segment": s}) for s in ids]
    out, base = [], {}
    for name, scope in groups:
        res = retention(engine, **{**kw, **scope})
        base = {k: v for k, v in res.items() if k not in ("cohorts", "segment")}
        out.append({"group": name, **scope, "cohorts": res["cohorts"]})
    return {**base, "breakdown": breakdown, "groups": out}


def retention(engine: Engine, *, by: str = "first_seen", period: str | None = None,
              cohort: str | None = None, returned: str | None = None,
              cumulative: bool = False, week_start: str = "monday",
              segment: int | None = None, recurring: bool = False,
              consent_mode: str = "opt-out") -> dict[str, Any]:
    """Retention matrix (counts and shares) and revenue per cohort and period, of all
    customers, the members of a behavioral ``cohort`` or of a ``segment``.

    Period k counts the cohort's customers who *returned* in it: who had an event in it
    (of type ``returned`` when given, e.g. ``purchase``); ``cumulative``: in it or any
    later period. Revenue is every purchase in the period, whatever ``returned`` is.
    ``recurring``: a customer joins the cohort of every period with a starting event (any
    event for ``first_seen``, a purchase for ``first_purchase``), not only the first.
    """
    by, period = parse_by(by, period)
    if recurring and by == "signup":
        raise InputError("a customer signs up once: recurring cohorts start at events "
                         "(first_seen or first_purchase)", code="E_COHORT")
    if week_start not in WEEK_STARTS:
        raise InputError(f"unknown week start '{week_start}'; use monday or sunday",
                         code="E_PERIOD")
    if returned is not None:
        check_event_types(engine, [returned])
    ev = journey_events(engine, ["event_type", "amount"], segment, consent_mode,
                        cohort=cohort)
    if recurring:  # every starting event: a cohort per period the customer started in
        p = ev if by == "first_seen" else ev.filter(ev.event_type == "purchase")
        start = p.select(c_key=p.customer_key, c_ts=p.ts)
    elif by == "first_seen":
        start = ev.group_by(c_key=ev.customer_key).aggregate(c_ts=ev.ts.min())
    elif by == "first_purchase":
        p = ev.filter(ev.event_type == "purchase")
        start = p.group_by(c_key=p.customer_key).aggregate(c_ts=p.ts.min())
    else:
        c = engine.table("customers")
        c = c.filter(c.signup_ts.notnull())
        start = consent_filter(c.select(c_key=c.customer_id, c_ts=c.signup_ts), "c_key",
                               keyed_consents(engine),
                               "opt-in" if consent_mode == "opt-in" else "opt-out")
        start = start.semi_join(ev, start.c_key == ev.customer_key) if segment is not None \
            else start
    if cohort is not None:
        m = cohort_members(engine, cohort)
        start = start.semi_join(m, start.c_key == m.c_key)
    start = start.select("c_key", cohort=_start_of(start.c_ts, period, week_start)).distinct()
    hit = ibis.literal(True) if returned is None else ev.event_type == returned
    act = ev.mutate(p=_start_of(ev.ts, period, week_start), hit=hit.cast("int64"),
                    rev=ibis.ifelse(ev.event_type == "purchase", ev.amount, 0.0))
    per = act.group_by(["customer_key", "p"]).aggregate(hit=act.hit.max(), rev=act.rev.sum())
    j = per.join(start, per.customer_key == start.c_key)
    j = j.mutate(k=_index(j.p, j.cohort, period)).filter(ibis._.k >= 0)
    cells = engine.execute(j.group_by(["cohort", "k"]).aggregate(
        customers=j.hit.sum(), revenue=j.rev.sum()))
    if cumulative:  # returned in period k or later: by each customer's last return
        h = j.filter(j.hit == 1)
        last = h.group_by(["cohort", "customer_key"]).aggregate(k=h.k.max())
        ends = engine.execute(last.group_by(["cohort", "k"]).aggregate(n=last.count()))
    sizes = engine.execute(start.group_by("cohort").aggregate(size=start.count()))
    size_of = {r.cohort: int(r.size) for r in sizes.itertuples()}
    # periods before the first event cannot be observed (signup cohorts may be older);
    # every period from the cohort's start to the end of the data is, returns or not
    events = engine.table("events")
    bounds = engine.execute(events.aggregate(
        first=_start_of(events.ts.min(), period, week_start),
        last=_start_of(events.ts.max(), period, week_start)))
    first, last_p = bounds["first"].iloc[0], bounds["last"].iloc[0]
    by_cohort = {start_p: part for start_p, part in cells.groupby("cohort")}
    label = {"month": "%Y-%m", "hour": "%Y-%m-%d %H:00"}.get(period, "%Y-%m-%d")
    cohorts = []
    for start_p, size in size_of.items():
        part = by_cohort.get(start_p, cells.iloc[:0])
        seen = int(part.k.max()) + 1 if len(part) else 1
        n_periods = seen if pd.isna(last_p) else max(seen, _periods_between(
            start_p, last_p, period) + 1)
        blind = 0 if pd.isna(first) else max(0, _periods_between(start_p, first, period))
        counts: list[int | None] = [None if k < blind else 0 for k in range(n_periods)]
        revenue: list[float | None] = [None if k < blind else 0.0 for k in range(n_periods)]
        for r in part.itertuples():
            counts[int(r.k)] = int(r.customers)
            revenue[int(r.k)] = float(r.revenue or 0.0)
        if cumulative:
            mine = ends[ends.cohort == start_p]
            last_k = dict(zip(mine.k.astype(int), mine.n.astype(int), strict=True))
            for k in range(n_periods - 1, blind - 1, -1):
                counts[k] = last_k.get(k, 0) + (counts[k + 1] or 0 if k + 1 < n_periods
                                                else 0)
        cohorts.append({
            "cohort": start_p.strftime(label),
            "size": size, "counts": counts, "observed_from": blind,
            "retention": [None if n is None or not size else n / size for n in counts],
            "revenue": revenue})
    cohorts.sort(key=lambda c: c["cohort"])
    return {"by": by, "period": period, "returned": returned or "any event",
            "cumulative": cumulative, "week_start": week_start if period == "week" else None,
            "recurring": recurring, "segment": segment, "cohorts": cohorts}


# --- behavioral cohorts ----------------------------------------------------------------


def _parse(engine: Engine, rule: str) -> Any:
    if not engine.has_table("customer_features"):
        raise InputError("no customer features yet (a rule may name features, and the "
                         "cohort's share is of the analyzed customers): run tribes "
                         "features, or tribes run, first", code="E_NO_FEATURES")
    ev = engine.table("events")
    events = [str(e) for e in engine.execute(ev.select("event_type").distinct())[
        "event_type"].dropna()]
    schema = engine.table("customer_features").schema()
    numeric = [n for n, t in schema.items() if t.is_numeric() or t.is_boolean()]
    version = active_version(engine)
    names = segment_names(engine, version) if version is not None else {}
    return parse(rule, events=events, features=numeric, segments=names,
                 personas=[names[k] for k in sorted(names)],
                 cohorts=[c["name"] for c in list_cohorts(engine)])


def _member_keys(engine: Engine) -> Any:
    """The ``customer_key`` of a Member condition's members (active segment version)."""
    def keys(m: Member) -> ir.Table:
        if m.kind == "cohort":
            return cohort_members(engine, m.name).select(customer_key="c_key")
        a = members(engine)
        if m.kind == "segment":
            seg = int(m.name)
        else:
            version = active_version(engine)
            assert version is not None
            seg = next(s for s, n in segment_names(engine, version).items() if n == m.name)
        return a.filter(a.segment_id == seg).select(customer_key="a_key")
    return keys


def depends_on(rule: str) -> set[str]:
    """The cohorts a stored rule names (``in cohort X``), read from its written form."""
    return set(re.findall(r"\bin cohort (\S+)", rule))


def evaluate(engine: Engine, rule: str, *,
             consent_mode: str = "opt-out") -> tuple[Any, ir.Table, Any]:
    """Parse ``rule`` and build the query of its members: ``(node, members, as_of)``."""
    node = _parse(engine, rule)
    return (node, *_members(engine, node, consent_mode=consent_mode))


def _members(engine: Engine, node: Any, *, consent_mode: str,
             only: ir.Table | None = None) -> tuple[ir.Table, Any]:
    """The query of a parsed rule's members and its as_of (``only``: of these customers,
    a table of customer_key)."""
    ev = journey_events(engine, ["event_type", *event_columns(node)], None, consent_mode,
                        only=only)
    as_of = engine.scalar(engine.table("events").ts.max())
    if as_of is None:
        raise InputError("no events yet; ingest some before defining cohorts",
                         code="E_NO_EVENTS")
    members = compile_rule(node, ev, as_of=as_of, features=engine.table("customer_features"),
                           customers=engine.table("customers"),
                           member_keys=_member_keys(engine))
    # computed now: a rule may read stored memberships that saving then replaces
    return members, as_of


def define_cohort(engine: Engine, name: str, rule: str, *, description: str = "",
                  replace: bool = False, dry_run: bool = False,
                  consent_mode: str = "opt-out") -> dict[str, Any]:
    """Evaluate ``rule`` and store it with its members as cohort ``name``.

    ``dry_run`` counts the members without storing anything."""
    check_name(name)
    existing = {c["name"]: c for c in list_cohorts(engine)}
    if name in existing and not replace and not dry_run:
        raise InputError(f"cohort '{name}' exists (rule: {existing[name]['rule']}); add "
                         "--replace to redefine it", code="E_COHORT_EXISTS")
    node, members, as_of = evaluate(engine, rule, consent_mode=consent_mode)
    if name in depends_on(render(node)):
        raise InputError(f"cohort '{name}' cannot be defined by its own members",
                         code="E_RULE")
    total = _customers(engine, consent_mode)
    if dry_run:
        n = int(engine.scalar(members.count()))
        return {"name": name, "rule": render(node), "description": description,
                "as_of": str(as_of), "n_customers": n, "share": n / total if total else None,
                "stored": False}
    created = existing.get(name, {}).get("created_at")
    out = save_cohort(engine, name=name, rule=render(node), description=description,
                      as_of=as_of, members=members, created_at=created)
    return {**out, "share": out["n_customers"] / total if total else None, "stored": True}


def refresh_cohorts(engine: Engine, names: list[str] | None = None, *,
                    consent_mode: str = "opt-out", touched: ir.Table | None = None
                    ) -> list[dict[str, Any]]:
    """Evaluate stored cohorts again on the current data (all when ``names`` is None).

    ``touched`` (customer_key): the only customers whose events changed since the cohorts
    were last evaluated (with the same consents); a cohort whose rule reads only a
    customer's own events (:func:`~tribes.analysis.rules.own_events_only`) is then
    evaluated for them alone and keeps its other members.
    """
    known = list_cohorts(engine)
    chosen = [get_cohort(engine, n) for n in names] if names else known
    # a cohort named in another's rule is refreshed before it
    order, done = [], set()

    def visit(c: dict[str, Any], path: tuple[str, ...]) -> None:
        if c["name"] in done or c["name"] in path:
            return
        for dep in sorted(depends_on(c["rule"])):
            match = [k for k in chosen if k["name"] == dep]
            if match:
                visit(match[0], (*path, c["name"]))
        done.add(c["name"])
        order.append(c)

    for c in chosen:
        visit(c, ())
    out = []
    for c in order:
        node = _parse(engine, c["rule"])
        if touched is not None and own_events_only(node):
            fresh, as_of = _members(engine, node, consent_mode=consent_mode, only=touched)
            kept = cohort_members(engine, c["name"])
            kept = kept.anti_join(touched, kept.c_key == touched.customer_key)
            members = engine.create_temp("_coh_members", ibis.union(
                kept.select(customer_key="c_key"), fresh.select("customer_key"),
                distinct=True))
        else:
            members, as_of = _members(engine, node, consent_mode=consent_mode)
        out.append(save_cohort(engine, name=c["name"], rule=c["rule"],
                               description=c["description"] or "", as_of=as_of,
                               members=members, created_at=c["created_at"]))
        engine.drop_temp("_coh_members")
    return out


COHORTS_STAGE = "cohorts"


def refresh_after_prep(engine: Engine, *, consent_mode: str = "opt-out"
                       ) -> list[dict[str, Any]]:
    """Every stored cohort, after prep (``tribes run``): when the only change since their
    last refresh here is an append that prep handled incrementally (and the consents are
    the same), the cohorts that allow it are evaluated for the touched customers alone
    (:func:`refresh_cohorts`)."""
    from tribes.prep import last_prep, touched_after
    from tribes.store import events_fingerprint, last_run, new_run_id, record_run

    started = datetime.now(UTC)
    prep = last_prep(engine)
    done = last_run(engine, COHORTS_STAGE)
    c = engine.table("consents")
    mark = engine.execute(c.aggregate(n=c.count(), last=c.ingested_at.max())).iloc[0]
    consents = f"{int(mark['n'])}|{mark['last']}"
    rep = (done or {}).get("report") or {}
    touched = None
    if rep.get("consents_mark") == consents and rep.get("consent_mode") == consent_mode:
        touched = touched_after(engine, prep, rep.get("prep_run"))
    out = refresh_cohorts(engine, consent_mode=consent_mode, touched=touched)
    if prep is not None:
        with engine.transaction():
            record_run(engine, run_id=new_run_id(COHORTS_STAGE, started),
                       stage=COHORTS_STAGE, started_at=started,
                       fingerprint=events_fingerprint(engine), params={},
                       report={"prep_run": prep["run_id"], "consents_mark": consents,
                               "consent_mode": consent_mode,
                               "how": "full" if touched is None else "incremental"})
    return out


def _customers(engine: Engine, consent_mode: str) -> int:
    ev = journey_events(engine, [], None, consent_mode)
    return int(engine.scalar(ev.customer_key.nunique()))


def profile(engine: Engine, name: str) -> dict[str, Any]:
    """A stored cohort with the median of every feature, members against all customers."""
    c = get_cohort(engine, name)
    f = engine.table("customer_features")
    names = [d.name for d in FEATURES if d.name in f.columns
             and (f.schema()[d.name].is_numeric())]
    m = cohort_members(engine, name)
    mine = f.semi_join(m, f.customer_key == m.c_key)

    def medians(t: ir.Table) -> dict[str, Any]:
        if not names:
            return {}
        df = engine.execute(t.aggregate(**{n: t[n].cast("float64").median() for n in names}))
        return {n: (None if df[n].isna().iloc[0] else float(df[n].iloc[0])) for n in names}

    mine_med, all_med = medians(mine), medians(f)
    total = int(engine.scalar(f.count()))
    rows = []
    for n in names:
        a, b = mine_med.get(n), all_med.get(n)
        rows.append({"feature": n, "members": None if a is None else round(a, 4),
                     "all": None if b is None else round(b, 4),
                     "lift": (a / b) if a is not None and b not in (None, 0) else None})
    return {**c, "share": c["n_customers"] / total if total else None, "features": rows}
