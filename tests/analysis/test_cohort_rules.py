"""Behavioral cohorts: the rule language, and members equal to a plain pandas evaluation."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from tests.analysis.test_journeys import keyed
from tests.features.conftest import FeatureData, table_frame
from tests.stages import context
from tribes.analysis.cohorts import define_cohort, refresh_cohorts
from tribes.analysis.rules import (
    And,
    Count,
    Filter,
    FirstWithin,
    Member,
    Not,
    Or,
    RuleError,
    Sequence,
    parse,
    render,
)
from tribes.errors import InputError
from tribes.store.cohorts import cohort_members, drop_cohort, list_cohorts
from tribes.store.db import open_engine

EVENTS = ["page_view", "add_to_cart", "purchase", "support_contact"]


@pytest.fixture(autouse=True)
def _features(feature_data: FeatureData) -> None:
    from tribes.features.feature_table import run_features

    with open_engine(feature_data.ws) as engine:
        run_features(context(feature_data.ws, engine))


def test_grammar_precedence_plurals_and_round_trip() -> None:
    node = parse("at least 2 purchases and not (any support_contact or monetary > 10) "
                 "or first purchase within 7 days of first event",
                 events=EVENTS, features=["monetary"])
    assert isinstance(node, Or) and isinstance(node.args[0], And)
    assert isinstance(node.args[0].args[1], Not) and isinstance(node.args[1], FirstWithin)
    count = node.args[0].args[0]
    assert isinstance(count, Count) and (count.event, count.low, count.high) == (
        "purchase", 2, None)
    text = render(node)
    assert text == ("at least 2 purchases and not (any support_contact or monetary > 10) "
                    "or first purchase within 7 days of first event")
    assert render(parse(text, events=EVENTS, features=["monetary"])) == text
    c = parse("any add_to_cart with device is 'mobile' in the first 36 hours", events=EVENTS)
    assert isinstance(c, Count) and c.filters == (Filter("device", "=", "mobile"),)
    assert c.period is not None and (c.period.kind, c.period.micros) == ("first", 36 * 3600e6)
    assert parse("exactly 0 events", events=EVENTS).high == 0  # type: ignore[union-attr]


@pytest.mark.parametrize(("rule", "message"), [
    ("", "empty"),
    ("at least 2 purchse", "did you mean 'purchase'"),
    ("at lest 2 purchase", "at least"),
    ("first purchase within 7 days", "ends too early"),
    ("first purchase within 7 fortnights of first event", "hours, days or weeks"),
    ("monetry > 5", "did you mean 'monetary'"),
    ("at least 2 purchase purchase", "unexpected 'purchase'"),
    ("any purchase with colour = red", "unknown event field"),
    ("any purchase with amount > cheap", "a value for amount"),
    ("any purchase with category > shoes", "expected '=', 'is' or '!='"),
    ("add_to_cart then purchase", "expected 'followed by'"),
    ("add_to_cart followed by purchase within 2 fortnights", "hours, days or weeks"),
    ("in segment 9", "no active segment version"),
    ("in cohort nobody", "no cohort 'nobody'"),
    ("in persona Big spenders", "no persona 'Big spenders'"),
    ("(any purchase", "ends too early"),
    ("at least 1.5 purchase", "whole number"),
])
def test_rule_errors_say_what_is_wrong(rule: str, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        parse(rule, events=EVENTS, features=["monetary"])


def _pandas_members(data: FeatureData) -> dict[str, set[str]]:
    """Each test rule evaluated with plain pandas on the keyed events."""
    e = keyed(data)
    as_of = e.ts.max()
    g = e.groupby("customer_key")
    first_ts = g.ts.min()
    first_purchase = e[e.event_type == "purchase"].groupby("customer_key").ts.min()
    everyone = set(e.customer_key)

    def count(mask: pd.Series) -> pd.Series:
        return mask.groupby(e.customer_key).sum().reindex(list(everyone), fill_value=0)

    recent_purchases = count((e.event_type == "purchase") & (e.ts > as_of - timedelta(days=10)))
    support = count(e.event_type == "support_contact")
    first_day = e.customer_key.map(first_ts)
    early_mobile_cart = count((e.event_type == "add_to_cart") & (e.device == "mobile")
                              & (e.ts < first_day + timedelta(days=3)))
    fast = first_purchase - first_ts.reindex(first_purchase.index)
    f = table_frame(data.ws, "customer_features").set_index("customer_key")
    return {
        "fast": set(fast[(fast >= timedelta(0)) & (fast <= timedelta(days=2))].index),
        "recent_no_support": set(recent_purchases[(recent_purchases >= 1)
                                                  & (support == 0)].index),
        "mobile_or_rich": set(early_mobile_cart[early_mobile_cart >= 1].index)
        | (set(f.index[f.monetary > 100]) & everyone),
        "quiet": set(recent_purchases[recent_purchases == 0].index),
    }


RULES = {
    "fast": "first purchase within 2 days of first event",
    "recent_no_support": "at least 1 purchase in the last 10 days and no support_contact",
    "mobile_or_rich": "any add_to_cart with device = mobile in the first 3 days "
                      "or monetary > 100",
    "quiet": "not any purchase in the last 10 days",
}


def test_stored_cohorts_match_pandas(feature_data: FeatureData) -> None:
    want = _pandas_members(feature_data)
    assert all(want.values()) and len({frozenset(v) for v in want.values()}) == len(want)
    with open_engine(feature_data.ws) as engine:
        for name, rule in RULES.items():
            res = define_cohort(engine, name, rule)
            assert res["stored"] and res["n_customers"] == len(want[name]), name
            got = set(engine.execute(cohort_members(engine, name)).c_key)
            assert got == want[name], name
        assert [c["name"] for c in list_cohorts(engine)] == sorted(RULES)
        with pytest.raises(InputError, match="--replace"):
            define_cohort(engine, "fast", "any purchase")
        dry = define_cohort(engine, "fast", "any purchase", dry_run=True)
        assert not dry["stored"] and dry["n_customers"] > len(want["fast"])
        # refreshing on unchanged data gives the same members
        again = {c["name"]: c["n_customers"] for c in refresh_cohorts(engine)}
        assert again == {n: len(m) for n, m in want.items()}
        drop_cohort(engine, "quiet")
        with pytest.raises(InputError, match="no cohort named 'quiet'"):
            cohort_members(engine, "quiet")


def test_cohort_filters_analyses(feature_data: FeatureData, cli) -> None:
    from tribes.analysis.funnels import funnel
    from tribes.analysis.journeys import transitions

    ws = feature_data.ws.path
    r = cli("--workspace", ws, "cohorts", "define", "buyers", "--rule", "any purchase",
            "--json")
    assert r.code == 0, r.err
    buyers = r.json()["n_customers"]
    with open_engine(feature_data.ws) as engine:
        f = funnel(engine, ["page_view", "purchase"], window=timedelta(days=30),
                   cohort="buyers")
        tr = transitions(engine, cohort="buyers")
    assert f["groups"][0]["steps"][0]["count"] <= buyers
    e = keyed(feature_data)
    members = set(e[e.event_type == "purchase"].customer_key)
    assert sum(n for row in tr.counts.values() for n in row.values()) == len(
        e[e.customer_key.isin(members)]) + sum(tr.counts["session_start"].values())
    for args in (["journeys", "funnel", "--steps", "page_view,purchase"],
                 ["journeys", "paths"], ["trends", "--period", "week"],
                 ["cohorts", "retention"]):
        r = cli("--workspace", ws, *args, "--cohort", "buyers", "--json")
        assert r.code == 0, (args, r.err)
    r = cli("--workspace", ws, "cohorts", "show", "buyers", "--json")
    assert r.code == 0 and r.json()["features"], r.err
    bad = cli("--workspace", ws, "journeys", "transitions", "--cohort", "buyerz")
    assert bad.code != 0 and "did you mean 'buyers'" in bad.err
    r = cli("--workspace", ws, "run", "--json")  # the pipeline evaluates cohorts again
    assert r.code == 0 and {"name": "buyers", "n_customers": buyers} in r.json()["cohorts"]
    r = cli("--workspace", ws, "cohorts", "rules")
    assert r.code == 0 and "first purchase within 7 days of first event" in r.out


def test_a_rule_before_any_features_says_what_to_run(cli, tmp_path) -> None:
    ws = tmp_path / "ws"
    assert cli("init", ws).code == 0
    src = tmp_path / "e.csv"
    src.write_text("ts,user_id,event\n2026-01-01T00:00:00Z,u1,login\n")
    assert cli("-w", ws, "ingest", src).code == 0
    r = cli("-w", ws, "cohorts", "define", "x", "--rule", "at least 1 login", "--json")
    assert r.code != 0 and r.json()["error"] == "E_NO_FEATURES" and "Traceback" not in r.err


def test_new_conditions_parse_and_round_trip() -> None:
    node = parse("add_to_cart with device = mobile followed by purchases within 1 day and "
                 "any purchase with amount > 100 and category = shoes and monetary > 5 or "
                 "in persona 'Big spenders' and not in cohort churned or in segment 2",
                 events=EVENTS, features=["monetary"], segments=[1, 2],
                 personas=["Big spenders"], cohorts=["churned"])
    assert isinstance(node, Or) and isinstance(node.args[0], And)
    seq, count, _feature = node.args[0].args
    assert isinstance(seq, Sequence) and seq.first.filters == (
        Filter("device", "=", "mobile"),) and seq.micros == 86_400_000_000
    assert isinstance(count, Count) and count.filters == (
        Filter("amount", ">", 100.0), Filter("category", "=", "shoes"))
    member = node.args[1].args[0]
    assert isinstance(member, Member) and (member.kind, member.name) == (
        "persona", "Big spenders")
    text = render(node)
    assert render(parse(text, events=EVENTS, features=["monetary"], segments=[1, 2],
                        personas=["Big spenders"], cohorts=["churned"])) == text


def _sequence(e: pd.DataFrame, first: str, then: str, within: timedelta) -> set[str]:
    """Customers with a ``then`` event later in the event order than a ``first`` event,
    at most ``within`` after it: every pair tried."""
    out = set()
    for key, g in e.groupby("customer_key"):
        evs = sorted(zip(g.ts, g.event_id.map(bytes.hex if isinstance(
            g.event_id.iloc[0], bytes | bytearray) else str), g.event_type, strict=True))
        if any(a[2] == first and b[2] == then and b[0] - a[0] <= within
               for i, a in enumerate(evs) for b in evs[i + 1:]):
            out.add(str(key))
    return out


def test_sequences_filters_and_memberships_match_pandas(feature_data: FeatureData,
                                                        cli) -> None:
    ws = feature_data.ws.path
    r = cli("--workspace", ws, "segment", "--method", "kmeans", "--k", "2", "--json")
    assert r.code == 0, r.err
    personas = cli("--workspace", ws, "personas", "--json").json()["personas"]
    e = keyed(feature_data)
    everyone = set(e.customer_key)
    assign = table_frame(feature_data.ws, "segment_assignments")
    seg_of = dict(zip(assign.customer_key, assign.segment_id, strict=True))
    big = set(e[(e.event_type == "purchase") & (e.amount > 50)].customer_key)
    cats = e[e.event_type == "purchase"].category.dropna()
    cat = cats.value_counts().index[0]
    big_cat = set(e[(e.event_type == "purchase") & (e.amount > 20)
                    & (e.category == cat)].customer_key)
    not_cat = set(e[(e.event_type == "page_view") & (e.category != cat)].customer_key)
    carted = _sequence(e, "add_to_cart", "purchase", timedelta(days=1))
    seen = _sequence(e, "product_view", "add_to_cart", timedelta(days=3650))
    persona = personas[0]
    in_persona = {k for k in everyone if seg_of.get(k) == persona["segment_id"]}
    other = {k for k in everyone if seg_of.get(k) not in (None, persona["segment_id"])}
    want = {
        "big": ("any purchase with amount > 50", big),
        "big_cat": (f"any purchase with amount > 20 and category = '{cat}'", big_cat),
        "not_cat": (f"any page_view where category != '{cat}'", not_cat),
        "carted": ("add_to_cart followed by purchase within 1 day", carted),
        "seen": ("any product_view followed by add_to_cart", seen),
        "persona": (f"in persona \"{persona['name']}\"", in_persona),
        "other": (f"not in segment {persona['segment_id']}", other),
        "both": ("in cohort big and not in cohort carted", big - carted),
    }
    assert all(members for _, members in want.values())
    assert carted != seen and big_cat != big
    with open_engine(feature_data.ws) as engine:
        for name, (rule, members) in want.items():
            res = define_cohort(engine, name, rule)
            got = set(engine.execute(cohort_members(engine, name)).c_key)
            assert got == members, (name, rule)
            assert res["n_customers"] == len(members)
        with pytest.raises(InputError, match="its own members"):
            define_cohort(engine, "both", "in cohort both", replace=True)
        # a cohort named in another's rule is refreshed first
        order = [c["name"] for c in refresh_cohorts(engine, ["both", "carted", "big"])]
        assert order.index("big") < order.index("both") > order.index("carted")
