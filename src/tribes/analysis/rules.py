"""A small rule language for behavioral cohorts, compiled to one engine query.

A rule is a boolean formula over conditions on a customer's events and features::

    rule       := term ("or" term)*
    term       := factor ("and" factor)*
    factor     := "not" factor | "(" rule ")" | condition
    condition  := "first" EVENT "within" N UNIT "of" ("first" EVENT | "signup")
                | ("at least" | "at most" | "exactly") N EVENT [filter] [period]
                | ("no" | "any") EVENT [filter] [period]
                | ["any"] EVENT [filter] "followed by" EVENT [filter] ["within" N UNIT]
                | "in" ("segment" N | "persona" NAME | "cohort" NAME)
                | FEATURE OP NUMBER
    filter     := ("with" | "where") test ("and" test)*
    test       := ATTRIBUTE ("=" | "is" | "!=") VALUE | NUMERIC OP NUMBER
    period     := "in the" ("last" | "first") N UNIT
    UNIT       := hour(s) | day(s) | week(s)
    OP         := < | <= | > | >= | = | !=

* ``EVENT`` is an event type (``purchase``, ``add_to_cart``, ...; a plural ``purchases``
  is read as ``purchase``) or ``event`` / ``events`` for any event.
* ``ATTRIBUTE`` is an event attribute (source, channel, device, country, region, city,
  category); ``VALUE`` a word or a quoted text. ``NUMERIC`` is an event's ``amount`` or
  ``quantity`` (``any purchase with amount > 100``). An ``and`` after a filter continues
  it when a field and a comparison follow; otherwise it joins conditions.
* ``X followed by Y within D`` holds when the customer has an X event and a later Y
  event (later in the event order: time, then event id) at most D after it.
* ``in segment N`` / ``in persona NAME``: a member of the active segment version's
  segment (NAME as shown by ``tribes personas``, quoted when it has spaces);
  ``in cohort NAME``: a member of that stored cohort as it was last evaluated.
* ``in the last N days`` counts up to the newest event in the workspace (the rule's
  ``as_of``), so a cohort is reproducible for the same data; ``in the first N days``
  counts from the customer's own first event.
* ``FEATURE`` is a numeric column of ``customer_features`` (``monetary > 500``).
* ``first X within N days of first Y`` holds when the customer has both and their first
  X is at most N days after (and not before) their first Y.

Examples::

    first purchase within 7 days of first event
    at least 3 purchases in the last 30 days and not any support_contact
    no purchase in the last 60 days and monetary > 200
    any add_to_cart with device = mobile in the first 7 days
    add_to_cart followed by purchase within 1 day
    any purchase with amount > 100 and category = shoes
    in persona "High-value loyalists" and not in cohort churned
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.types as ir

from tribes.errors import InputError, closest

# what ``tribes cohorts rules`` prints: the grammar above
RULE_LANGUAGE = __doc__ or ""

ATTRIBUTES = ("source", "channel", "device", "country", "region", "city", "category")
NUMERIC = ("amount", "quantity")
FIELDS = ATTRIBUTES + NUMERIC
UNITS_US = {"hour": 3_600_000_000, "day": 86_400_000_000, "week": 7 * 86_400_000_000}
OPS = ("<=", ">=", "!=", "<", ">", "=")
ANY = "event"

_TOKEN = re.compile(r"""\s*(?:(?P<str>"[^"]*"|'[^']*')|(?P<op><=|>=|!=|<|>|=)|(?P<par>[()])"""
                    r"""|(?P<num>-?\d+(?:\.\d+)?(?![\w.]))|(?P<word>[\w.\-]+))""")


class RuleError(InputError):
    """A cohort rule cannot be read."""

    code = "E_RULE"


# --- the parsed rule -------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    kind: str  # "last" or "first"
    micros: int
    text: str


@dataclass(frozen=True)
class Filter:
    """A test on one event's field: ``category = shoes``, ``amount > 100``."""

    field: str
    op: str
    value: str | float

    @property
    def text(self) -> str:
        if isinstance(self.value, str):
            return f"{self.field} {self.op} '{self.value}'"
        return f"{self.field} {self.op} {self.value:g}"


@dataclass(frozen=True)
class EventSpec:
    """An event type (or ANY) and the filters its events must pass."""

    event: str
    filters: tuple[Filter, ...] = ()

    def render(self, word: str = "with") -> str:
        if not self.filters:
            return self.event
        return f"{self.event} {word} " + " and ".join(f.text for f in self.filters)


@dataclass(frozen=True)
class Count:
    event: str  # an event type, or ANY
    low: int | None
    high: int | None
    filters: tuple[Filter, ...]
    period: Period | None
    text: str


@dataclass(frozen=True)
class Sequence:
    first: EventSpec
    then: EventSpec
    micros: int | None
    text: str


@dataclass(frozen=True)
class Member:
    kind: str  # segment, persona or cohort
    name: str  # the segment id as text, the persona's or the cohort's name
    text: str


@dataclass(frozen=True)
class FirstWithin:
    event: str
    anchor: str  # an event type, ANY, or "signup"
    micros: int
    text: str


@dataclass(frozen=True)
class Feature:
    name: str
    op: str
    value: float
    text: str


@dataclass(frozen=True)
class Not:
    arg: Any


@dataclass(frozen=True)
class And:
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Or:
    args: tuple[Any, ...]


Node = Count | FirstWithin | Sequence | Member | Feature | Not | And | Or
Condition = Count | FirstWithin | Sequence | Member | Feature


def own_events_only(node: Node) -> bool:
    """Whether the rule holds for a customer by their own events alone, whatever the
    newest event of the workspace: no segment, persona, cohort or feature condition, no
    ``in the last`` period, no signup date. Such a cohort changes only for customers
    whose events changed, so a refresh after an append evaluates only those."""
    for c in conditions(node):
        if isinstance(c, Member | Feature):
            return False
        if isinstance(c, Count) and c.period is not None and c.period.kind == "last":
            return False
        if isinstance(c, FirstWithin) and c.anchor == "signup":
            return False
    return True


def conditions(node: Node) -> list[Condition]:
    """The conditions of a rule, in the order written."""
    if isinstance(node, Not):
        return conditions(node.arg)
    if isinstance(node, And | Or):
        return [c for a in node.args for c in conditions(a)]
    return [node]


def render(node: Node) -> str:
    """The rule in its normalized written form."""
    if isinstance(node, Not):
        return f"not {_wrap(node.arg)}"
    if isinstance(node, And):
        return " and ".join(_wrap(a) for a in node.args)
    if isinstance(node, Or):
        return " or ".join(render(a) if not isinstance(a, Or) else f"({render(a)})"
                           for a in node.args)
    return node.text


def _wrap(node: Node) -> str:
    return f"({render(node)})" if isinstance(node, Or) else render(node)


# --- parsing ---------------------------------------------------------------------------


def tokenize(text: str) -> list[str]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise RuleError(f"cannot read the rule at '{text[pos:pos + 20]}'")
        out.append(m.group(m.lastgroup or "word"))
        pos = m.end()
    return [t for t in out if t.strip()]


def event_columns(node: Node) -> list[str]:
    """The event fields (beyond ts and event_type) that the rule's filters test."""
    specs: list[EventSpec] = []
    for c in conditions(node):
        if isinstance(c, Count):
            specs.append(EventSpec(c.event, c.filters))
        elif isinstance(c, Sequence):
            specs += [c.first, c.then]
    return sorted({f.field for s in specs for f in s.filters})


class _Parser:
    def __init__(self, text: str, events: Iterable[str], features: Iterable[str],
                 segments: Iterable[int] = (), personas: Iterable[str] = (),
                 cohorts: Iterable[str] = ()) -> None:
        self.text = text
        self.toks = tokenize(text)
        self.i = 0
        self.events = set(events)
        self.features = set(features)
        self.segments = set(segments)
        self.personas = list(personas)
        self.cohorts = set(cohorts)

    # helpers
    def peek(self, k: int = 0) -> str | None:
        j = self.i + k
        return self.toks[j].lower() if j < len(self.toks) else None

    def take(self) -> str:
        if self.i >= len(self.toks):
            raise RuleError(f"the rule ends too early: '{self.text}'")
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, *words: str) -> None:
        for w in words:
            got = self.take()
            if got.lower() != w:
                raise RuleError(f"expected '{w}' but found '{got}' in: {self.text}")

    def number(self, what: str) -> float:
        tok = self.take()
        try:
            return float(tok)
        except ValueError:
            raise RuleError(f"expected {what} (a number) but found '{tok}' in: "
                            f"{self.text}") from None

    def count(self) -> int:
        v = self.number("a count")
        if v < 0 or v != int(v):
            raise RuleError(f"a count must be a whole number >= 0, not {v:g}")
        return int(v)

    def duration(self) -> tuple[int, str]:
        n = self.number("a duration")
        unit = self.take().lower()
        base = unit[:-1] if unit.endswith("s") else unit
        if base not in UNITS_US or n <= 0:
            raise RuleError(f"expected a duration such as '7 days' (hours, days or weeks), "
                            f"found '{n:g} {unit}'")
        return round(n * UNITS_US[base]), f"{n:g} {base}{'' if n == 1 else 's'}"

    def event(self) -> str:
        tok = self.take()
        low = tok.lower()
        if low in (ANY, "events"):
            return ANY
        if tok in self.events:
            return tok
        if tok.endswith("s") and tok[:-1] in self.events:
            return tok[:-1]
        guess = closest(tok, self.events)
        known = ", ".join(sorted(self.events)) or "none yet"
        raise RuleError(f"unknown event type '{tok}'"
                        + (f"; did you mean '{guess}'?" if guess else "")
                        + f" (known: {known}; 'event' means any)")

    # grammar
    def parse(self) -> Node:
        if not self.toks:
            raise RuleError("the rule is empty; e.g. 'first purchase within 7 days of first "
                            "event'")
        node = self.rule()
        if self.i < len(self.toks):
            raise RuleError(f"unexpected '{self.toks[self.i]}' in: {self.text} (join "
                            "conditions with 'and' / 'or')")
        return node

    def rule(self) -> Node:
        args = [self.term()]
        while self.peek() == "or":
            self.i += 1
            args.append(self.term())
        return args[0] if len(args) == 1 else Or(tuple(args))

    def term(self) -> Node:
        args = [self.factor()]
        while self.peek() == "and":
            self.i += 1
            args.append(self.factor())
        return args[0] if len(args) == 1 else And(tuple(args))

    def factor(self) -> Node:
        tok = self.peek()
        if tok == "not":
            self.i += 1
            return Not(self.factor())
        if tok == "(":
            self.i += 1
            node = self.rule()
            self.expect(")")
            return node
        return self.condition()

    def is_event(self, tok: str | None) -> bool:
        if tok is None:
            return False
        raw = self.toks[self.i]
        return tok in (ANY, "events") or raw in self.events or (
            raw.endswith("s") and raw[:-1] in self.events)

    def condition(self) -> Node:
        tok = self.peek()
        if tok == "first":
            return self.first_within()
        if tok == "in" and self.peek(1) in ("segment", "persona", "cohort"):
            return self.member()
        if tok in ("at", "exactly", "no", "any"):
            return self.counted()
        if tok is not None and self.toks[self.i] in self.features:
            return self.feature()
        if self.is_event(tok):
            first = self.spec()
            if self.peek() == "followed":
                return self.sequence(first)
            raise RuleError(f"expected 'followed by' after '{first.render()}' in: "
                            f"{self.text} (to count events, write e.g. 'any "
                            f"{first.event}')")
        raise RuleError(
            f"cannot read a condition at '{self.toks[self.i] if tok else 'the end'}' in: "
            f"{self.text}. A condition starts with 'first', 'at least', 'at most', "
            "'exactly', 'no', 'any', 'in segment', 'in persona', 'in cohort', an event "
            "type ('X followed by Y') or a feature name"
            + (f" (did you mean '{closest(tok, self.features)}'?)"
               if tok and closest(tok, self.features) else ""))

    def first_within(self) -> Node:
        self.expect("first")
        event = self.event()
        self.expect("within")
        micros, dur = self.duration()
        self.expect("of")
        if self.peek() == "signup":
            self.i += 1
            anchor, anchor_text = "signup", "signup"
        else:
            self.expect("first")
            anchor = self.event()
            anchor_text = f"first {anchor}"
        return FirstWithin(event, anchor, micros,
                           f"first {event} within {dur} of {anchor_text}")

    def counted(self) -> Node:
        word = self.take().lower()
        low: int | None
        high: int | None
        if word == "at":
            bound = self.take().lower()
            n = self.count()
            if bound == "least":
                low, high, head = n, None, f"at least {n}"
            elif bound == "most":
                low, high, head = None, n, f"at most {n}"
            else:
                raise RuleError(f"expected 'at least' or 'at most', found 'at {bound}'")
        elif word == "exactly":
            n = self.count()
            low, high, head = n, n, f"exactly {n}"
        elif word == "no":
            low, high, head = None, 0, "no"
        else:
            low, high, head = 1, None, "any"
        event = self.event()
        many = head not in ("no", "any") and (low or high) != 1
        text = f"{head} {event}{'s' if many else ''}"
        filters = self.filters()
        if filters:
            text += " " + EventSpec(event, filters).render()[len(event) + 1:]
        if head == "any" and self.peek() == "followed":
            return self.sequence(EventSpec(event, filters))
        period = None
        if self.peek() == "in":
            self.expect("in", "the")
            kind = self.take().lower()
            if kind not in ("last", "first"):
                raise RuleError(f"expected 'in the last' or 'in the first', found "
                                f"'in the {kind}'")
            micros, dur = self.duration()
            period = Period(kind, micros, f"in the {kind} {dur}")
            text += f" {period.text}"
        return Count(event, low, high, filters, period, text)

    def filters(self) -> tuple[Filter, ...]:
        """``with``/``where`` tests on the event's fields, joined by ``and``."""
        if self.peek() not in ("with", "where"):
            return ()
        self.i += 1
        out = [self.test()]
        while (self.peek() == "and" and self.peek(1) in FIELDS
               and self.peek(2) in (*OPS, "is")):
            self.i += 1
            out.append(self.test())
        return tuple(out)

    def test(self) -> Filter:
        name = self.take().lower()
        if name not in FIELDS:
            raise RuleError(f"unknown event field '{name}'; use one of {', '.join(FIELDS)}"
                            + (f" (did you mean '{closest(name, FIELDS)}'?)"
                               if closest(name, FIELDS) else ""))
        op = self.take().lower()
        if name in NUMERIC:
            op = "=" if op == "is" else op
            if op not in OPS:
                raise RuleError(f"expected a comparison (<, <=, >, >=, =, !=) after "
                                f"'{name}', found '{op}'")
            return Filter(name, op, self.number(f"a value for {name}"))
        if op not in ("=", "is", "!="):
            raise RuleError(f"expected '=', 'is' or '!=' after '{name}', found '{op}'")
        return Filter(name, "!=" if op == "!=" else "=", self.take().strip("'\""))

    def spec(self) -> EventSpec:
        event = self.event()
        return EventSpec(event, self.filters())

    def sequence(self, first: EventSpec) -> Node:
        self.expect("followed", "by")
        then = self.spec()
        micros, text = None, f"{first.render()} followed by {then.render()}"
        if self.peek() == "within":
            self.i += 1
            micros, dur = self.duration()
            text += f" within {dur}"
        return Sequence(first, then, micros, text)

    def member(self) -> Node:
        self.expect("in")
        kind = self.take().lower()
        if kind == "segment":
            n = self.count()
            if self.segments and n not in self.segments:
                raise RuleError(f"no segment {n} in the active version; segments: "
                                f"{', '.join(map(str, sorted(self.segments)))}")
            if not self.segments:
                raise RuleError("no active segment version; create one with: tribes "
                                "segment")
            return Member("segment", str(n), f"in segment {n}")
        name = self.name()
        if kind == "persona":
            match = [p for p in self.personas if p.lower() == name.lower()]
            if not match:
                guess = closest(name, self.personas)
                raise RuleError(f"no persona '{name}' in the active version"
                                + (f"; did you mean '{guess}'?" if guess else "")
                                + f" (personas: {', '.join(self.personas) or 'none yet'})")
            return Member("persona", match[0], f"in persona '{match[0]}'")
        if name not in self.cohorts:
            guess = closest(name, self.cohorts)
            raise RuleError(f"no cohort '{name}'" + (f"; did you mean '{guess}'?" if guess
                                                     else "")
                            + f" (cohorts: {', '.join(sorted(self.cohorts)) or 'none yet'})")
        return Member("cohort", name, f"in cohort {name}")

    def name(self) -> str:
        """A quoted text, or the words up to the next and/or/parenthesis."""
        tok = self.take()
        if tok[:1] in ("'", '"'):
            return tok[1:-1]
        words = [tok]
        while self.peek() not in (None, "and", "or", ")"):
            words.append(self.take())
        return " ".join(words)

    def feature(self) -> Node:
        name = self.take()
        op = self.take()
        if op not in OPS:
            raise RuleError(f"expected a comparison (<, <=, >, >=, =, !=) after '{name}', "
                            f"found '{op}'")
        value = self.number(f"a value for {name}")
        return Feature(name, op, value, f"{name} {op} {value:g}")


def parse(text: str, *, events: Iterable[str], features: Iterable[str] = (),
          segments: Iterable[int] = (), personas: Iterable[str] = (),
          cohorts: Iterable[str] = ()) -> Node:
    """Parse ``text`` against the known event types, numeric features, segments of the
    active version, persona names and stored cohorts."""
    return _Parser(text, events, features, segments, personas, cohorts).parse()


def parse_spec(text: str, *, events: Iterable[str]) -> EventSpec:
    """One event type with optional filters: ``product_view where category = shoes``."""
    p = _Parser(text, events, ())
    if not p.toks:
        raise RuleError("an empty step; e.g. 'product_view where category = shoes'")
    spec = p.spec()
    if p.i < len(p.toks):
        raise RuleError(f"unexpected '{p.toks[p.i]}' in '{text}' (filters read: "
                        "EVENT where FIELD = VALUE and FIELD > NUMBER)")
    return spec


def spec_predicate(ev: ir.Table, spec: EventSpec) -> ir.BooleanValue:
    """Whether each event of ``ev`` is of the spec's type and passes its filters."""
    hit = _is(ev, spec.event)
    for f in spec.filters:
        col = ev[f.field]
        test = {"<": col < f.value, "<=": col <= f.value, ">": col > f.value,
                ">=": col >= f.value, "=": col == f.value, "!=": col != f.value}[f.op]
        hit = hit & test.fill_null(f.op == "!=")  # a missing value is not equal
    return hit


# --- compiling -------------------------------------------------------------------------


def compile_rule(node: Node, ev: ir.Table, *, as_of: Any, features: ir.Table | None = None,
                 customers: ir.Table | None = None,
                 member_keys: Callable[[Member], ir.Table] | None = None) -> ir.Table:
    """``customer_key`` of the customers of ``ev`` (keyed events with ``ts``,
    ``event_id``, ``event_type`` and the fields the rule's filters test) for whom the
    rule holds. ``member_keys`` gives the ``customer_key`` of a segment's, persona's or
    cohort's members.

    One aggregation over the events gives a column per event condition; features,
    signup dates and memberships are joined on; the formula is one filter over those
    columns.
    """
    conds = conditions(node)
    if any(isinstance(c, Count) and c.period and c.period.kind == "first" for c in conds):
        ev = ev.mutate(_first_ts=ev.ts.min().over(ibis.window(group_by=ev.customer_key)))
    seqs = {i: c for i, c in enumerate(conds) if isinstance(c, Sequence)}
    if seqs:
        # per event, the time of the customer's latest X event strictly before it in the
        # event order (time, then event id)
        before = ibis.window(group_by=ev.customer_key, order_by=[ev.ts, ev.event_id],
                             preceding=(None, 1))
        ev = ev.mutate(**{f"_x{i}": ev.ts.max(where=spec_predicate(ev, c.first)).over(before)
                          for i, c in seqs.items()}).view()
    aggs: dict[str, Any] = {}
    for i, c in enumerate(conds):
        if isinstance(c, Sequence):
            prior = ev[f"_x{i}"]
            hit = spec_predicate(ev, c.then) & prior.notnull()
            if c.micros is not None:
                hit = hit & (ev.ts <= prior + ibis.interval(microseconds=c.micros))
            aggs[f"q{i}"] = hit.fill_null(False).cast("int64").max()
        elif isinstance(c, Count):
            hit = spec_predicate(ev, EventSpec(c.event, c.filters))
            if c.period is not None:
                span = ibis.interval(microseconds=c.period.micros)
                hit = hit & (ev.ts > ibis.literal(as_of) - span if c.period.kind == "last"
                             else ev.ts < ev["_first_ts"] + span)
            aggs[f"c{i}"] = hit.cast("int64").sum()
        elif isinstance(c, FirstWithin):
            aggs[f"x{i}"] = ev.ts.min(where=_is(ev, c.event))
            if c.anchor != "signup":
                aggs[f"y{i}"] = ev.ts.min(where=_is(ev, c.anchor))
    per = ev.group_by("customer_key").aggregate(**aggs) if aggs else (
        ev.select("customer_key").distinct())
    if any(isinstance(c, FirstWithin) and c.anchor == "signup" for c in conds):
        if customers is None:
            raise RuleError("'of signup' needs the customers table")
        cu = customers.select(s_key="customer_id", s_ts="signup_ts")
        per = per.left_join(cu, per.customer_key == cu.s_key).drop("s_key")
    if any(isinstance(c, Feature) for c in conds):
        if features is None:
            raise RuleError("feature conditions need customer features; run: tribes features")
        names = sorted({c.name for c in conds if isinstance(c, Feature)})
        f = features.select(f_key="customer_key", **{f"f_{n}": features[n] for n in names})
        per = per.left_join(f, per.customer_key == f.f_key).drop("f_key")
    for i, c in enumerate(conds):
        if isinstance(c, Member):
            if member_keys is None:
                raise RuleError(f"'{c.text}' needs the workspace's segments and cohorts")
            m = member_keys(c).select(**{f"m{i}": "customer_key"}).distinct()
            per = per.left_join(m, per.customer_key == m[f"m{i}"])
    index = {id(c): i for i, c in enumerate(conds)}
    return per.filter(_predicate(node, per, index)).select("customer_key")


def _is(ev: ir.Table, event: str) -> ir.BooleanValue:
    return ibis.literal(True) if event == ANY else (ev.event_type == event).fill_null(False)


def _predicate(node: Node, per: ir.Table, index: dict[int, int]) -> ir.BooleanValue:
    if isinstance(node, Not):
        return ~_predicate(node.arg, per, index)
    if isinstance(node, And | Or):
        parts = [_predicate(a, per, index) for a in node.args]
        out = parts[0]
        for p in parts[1:]:
            out = (out & p) if isinstance(node, And) else (out | p)
        return out
    i = index[id(node)]
    if isinstance(node, Sequence):
        return (per[f"q{i}"] == 1).fill_null(False)
    if isinstance(node, Member):
        return per[f"m{i}"].notnull()
    if isinstance(node, Count):
        n = per[f"c{i}"]
        cond: Any = ibis.literal(True)
        if node.low is not None:
            cond = cond & (n >= node.low)
        if node.high is not None:
            cond = cond & (n <= node.high)
        return cond.fill_null(False)
    if isinstance(node, FirstWithin):
        x = per[f"x{i}"]
        y = per["s_ts"] if node.anchor == "signup" else per[f"y{i}"]
        span = ibis.interval(microseconds=node.micros)
        return ((x >= y) & (x <= y + span)).fill_null(False)
    col = per[f"f_{node.name}"]
    ops = {"<": col < node.value, "<=": col <= node.value, ">": col > node.value,
           ">=": col >= node.value, "=": col == node.value, "!=": col != node.value}
    return ops[node.op].fill_null(False)
