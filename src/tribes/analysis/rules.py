"""A small rule language for behavioral cohorts, compiled to one engine query.

A rule is a boolean formula over conditions on a customer's events and features::

    rule       := term ("or" term)*
    term       := factor ("and" factor)*
    factor     := "not" factor | "(" rule ")" | condition
    condition  := "first" EVENT "within" N UNIT "of" ("first" EVENT | "signup")
                | ("at least" | "at most" | "exactly") N EVENT [filter] [period]
                | ("no" | "any") EVENT [filter] [period]
                | FEATURE OP NUMBER
    filter     := "with" ATTRIBUTE ("=" | "is") VALUE
    period     := "in the" ("last" | "first") N UNIT
    UNIT       := hour(s) | day(s) | week(s)
    OP         := < | <= | > | >= | = | !=

* ``EVENT`` is an event type (``purchase``, ``add_to_cart``, ...; a plural ``purchases``
  is read as ``purchase``) or ``event`` / ``events`` for any event.
* ``ATTRIBUTE`` is an event attribute (source, channel, device, country, region, city,
  category); ``VALUE`` a word or a quoted text.
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
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.types as ir

from tribes.errors import InputError, closest

ATTRIBUTES = ("source", "channel", "device", "country", "region", "city", "category")
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
class Count:
    event: str  # an event type, or ANY
    low: int | None
    high: int | None
    attr: tuple[str, str] | None
    period: Period | None
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


Node = Count | FirstWithin | Feature | Not | And | Or


def conditions(node: Node) -> list[Count | FirstWithin | Feature]:
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


class _Parser:
    def __init__(self, text: str, events: Iterable[str], features: Iterable[str]) -> None:
        self.text = text
        self.toks = tokenize(text)
        self.i = 0
        self.events = set(events)
        self.features = set(features)

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

    def condition(self) -> Node:
        tok = self.peek()
        if tok == "first":
            return self.first_within()
        if tok in ("at", "exactly", "no", "any"):
            return self.counted()
        if tok is not None and self.toks[self.i] in self.features:
            return self.feature()
        raise RuleError(
            f"cannot read a condition at '{self.toks[self.i] if tok else 'the end'}' in: "
            f"{self.text}. A condition starts with 'first', 'at least', 'at most', "
            "'exactly', 'no', 'any' or a feature name"
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
        attr = None
        if self.peek() == "with":
            self.i += 1
            name = self.take().lower()
            if name not in ATTRIBUTES:
                raise RuleError(f"unknown event attribute '{name}'; use one of "
                                f"{', '.join(ATTRIBUTES)}")
            op = self.take().lower()
            if op not in ("=", "is"):
                raise RuleError(f"expected '=' or 'is' after '{name}', found '{op}'")
            value = self.take().strip("'\"")
            attr = (name, value)
            text += f" with {name} = '{value}'"
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
        return Count(event, low, high, attr, period, text)

    def feature(self) -> Node:
        name = self.take()
        op = self.take()
        if op not in OPS:
            raise RuleError(f"expected a comparison (<, <=, >, >=, =, !=) after '{name}', "
                            f"found '{op}'")
        value = self.number(f"a value for {name}")
        return Feature(name, op, value, f"{name} {op} {value:g}")


def parse(text: str, *, events: Iterable[str], features: Iterable[str] = ()) -> Node:
    """Parse ``text`` against the known event types and numeric features."""
    return _Parser(text, events, features).parse()


# --- compiling -------------------------------------------------------------------------


def compile_rule(node: Node, ev: ir.Table, *, as_of: Any, features: ir.Table | None = None,
                 customers: ir.Table | None = None) -> ir.Table:
    """``customer_key`` of the customers of ``ev`` (keyed events with ``ts``,
    ``event_type`` and the attributes the rule uses) for whom the rule holds.

    One aggregation over the events gives a column per event condition; features and
    signup dates are joined on; the formula is one filter over those columns.
    """
    conds = conditions(node)
    if any(isinstance(c, Count) and c.period and c.period.kind == "first" for c in conds):
        ev = ev.mutate(_first_ts=ev.ts.min().over(ibis.window(group_by=ev.customer_key)))
    aggs: dict[str, Any] = {}
    for i, c in enumerate(conds):
        if isinstance(c, Count):
            hit = _is(ev, c.event)
            if c.attr is not None:
                hit = hit & (ev[c.attr[0]] == c.attr[1]).fill_null(False)
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
