"""Transitions (and retention) against plain-Python counts on small data; funnels are in
test_funnels.py."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from itertools import pairwise

import pandas as pd
import pytest

from tests.features.conftest import FeatureData, events_frame, table_frame
from tests.features.reference import key_events_reference, sessionize_reference
from tests.stages import context
from tribes.analysis.journeys import transitions
from tribes.store.db import open_engine


def python_transitions(keyed: pd.DataFrame, scope: str, collapse: bool) -> Counter:
    start, end = ("session_start", "session_end") if scope == "session" else (
        "path_start", "path_end")
    # sessions as prep makes them; inside one, events in the journeys' order: ts, event_id
    e = sessionize_reference(keyed, timedelta(minutes=30)).sort_values(
        ["customer_key", "session_seq", "ts", "event_id"])
    group = ["customer_key", "session_seq"] if scope == "session" else ["customer_key"]
    counts: Counter = Counter()
    for _, g in e.groupby(group):
        states = list(g.event_type)
        if collapse:
            states = [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]
        path = [start, *states, end]
        counts.update(pairwise(path))
    return counts


@pytest.fixture(autouse=True)
def _features(feature_data: FeatureData) -> None:
    from tribes.features.feature_table import run_features

    with open_engine(feature_data.ws) as engine:
        run_features(context(feature_data.ws, engine))


def keyed(data: FeatureData) -> pd.DataFrame:
    ev = key_events_reference(events_frame(data.ws), table_frame(data.ws, "identities"))
    consented = set(table_frame(data.ws, "customer_features").customer_key)
    return ev[ev.customer_key.isin(consented)]


@pytest.mark.parametrize(("scope", "collapse"), [("session", False), ("customer", False),
                                                 ("session", True)])
def test_transitions_match_python_counts(feature_data: FeatureData, scope: str,
                                         collapse: bool) -> None:
    with open_engine(feature_data.ws) as engine:
        tr = transitions(engine, scope=scope, collapse=collapse)
    got = Counter({(s, d): n for s, row in tr.counts.items() for d, n in row.items()})
    assert got == python_transitions(keyed(feature_data), scope, collapse)
    probs = tr.probabilities
    assert all(abs(sum(row.values()) - 1) < 1e-12 for row in probs.values())
    reach = tr.absorbing("purchase")
    assert all(0 <= v["p_reach"] <= 1 + 1e-12 for v in reach.values())


@pytest.mark.parametrize("period", ["month", "week"])
def test_first_seen_retention_matches_pandas(feature_data: FeatureData, period: str) -> None:
    from tribes.analysis.cohorts import retention

    with open_engine(feature_data.ws) as engine:
        res = retention(engine, by="first_seen", period=period)
    e = keyed(feature_data)
    ts = e.ts.dt.tz_convert(None)
    if period == "month":
        p = ts.dt.to_period("M")
        idx = lambda a, b: (a.dt.year - b.dt.year) * 12 + (a.dt.month - b.dt.month)  # noqa: E731
    else:
        p = ts.dt.to_period("W-SUN")
        idx = lambda a, b: (a.dt.start_time - b.dt.start_time).dt.days // 7  # noqa: E731
    e = e.assign(p=p)
    first = e.groupby("customer_key").p.min().rename("c")
    e = e.join(first, on="customer_key")
    e["k"] = idx(e.p, e.c)
    cells = e.groupby(["c", "k"]).customer_key.nunique()
    sizes = first.value_counts()
    assert len(res["cohorts"]) == len(sizes)
    end = p.max()  # every period up to the end of the data is there
    for c in res["cohorts"]:
        key = next(s for s in sizes.index if str(s.start_time.date()).startswith(c["cohort"]))
        assert c["size"] == sizes[key]
        assert len(c["counts"]) == (end - key).n + 1
        for k, n in enumerate(c["counts"]):
            assert n == cells.get((key, k), 0)
        assert c["retention"][0] == 1.0


@pytest.mark.parametrize("by", ["first_seen", "first_purchase"])
def test_recurring_retention_matches_pandas(feature_data: FeatureData, by: str) -> None:
    """Recurring cohorts: a customer is in the cohort of every day they had a starting
    event (any event, or a purchase), counted from each."""
    from tribes.analysis.cohorts import retention

    with open_engine(feature_data.ws) as engine:
        res = retention(engine, by=by, period="day", recurring=True)
    e = keyed(feature_data)
    e = e.assign(m=e.ts.dt.tz_convert(None).dt.to_period("D"))
    starts = e if by == "first_seen" else e[e.event_type == "purchase"]
    cohorts = starts.groupby("m").customer_key.apply(set)
    active = e.groupby("m").customer_key.apply(set)
    end = e.m.max()
    want = {str(c): [len(members & active.get(c + k, set())) for k in range((end - c).n + 1)]
            for c, members in cohorts.items()}
    assert {c["cohort"]: c["counts"] for c in res["cohorts"]} == want
    assert {c["cohort"]: c["size"] for c in res["cohorts"]} == {
        str(c): len(m) for c, m in cohorts.items()}
    # more cohort entries than customers: the same customer starts again later
    assert sum(len(m) for m in cohorts) > starts.customer_key.nunique()


def test_retention_breakdown_by_segment_persona_and_cohort(feature_data: FeatureData,
                                                           cli) -> None:
    ws = feature_data.ws.path
    assert cli("--workspace", ws, "segment", "--method", "kmeans", "--k", "2",
               "--json").code == 0
    assert cli("--workspace", ws, "cohorts", "define", "buyers", "--rule",
               "any purchase", "--replace", "--json").code == 0
    e = keyed(feature_data)
    e = e.assign(m=e.ts.dt.tz_convert(None).dt.to_period("D"))
    assign = table_frame(feature_data.ws, "segment_assignments")
    seg_of = dict(zip(assign.customer_key, assign.segment_id, strict=True))
    first = e.groupby("customer_key").m.min()

    def cells(keys: set[str]) -> dict[str, list[int]]:
        mine = e[e.customer_key.isin(keys)]
        out: dict[str, list[int]] = {}
        for c in sorted(first[first.index.isin(keys)].unique()):
            group = set(first.index[first == c]) & keys
            out[str(c)] = [mine[(mine.m == c + k) & mine.customer_key.isin(group)]
                           .customer_key.nunique() for k in range((e.m.max() - c).n + 1)]
        return out

    r = cli("--workspace", ws, "cohorts", "retention", "--breakdown", "segment",
            "--period", "day", "--json")
    assert r.code == 0, r.err
    res = r.json()
    assert res["breakdown"] == "segment" and len(res["groups"]) == 2
    for g in res["groups"]:
        keys = {k for k, s in seg_of.items() if s == g["segment"]} & set(e.customer_key)
        assert {c["cohort"]: c["counts"] for c in g["cohorts"]} == cells(keys)
    names = cli("--workspace", ws, "personas", "--json").json()["personas"]
    r = cli("--workspace", ws, "cohorts", "retention", "--breakdown", "persona", "--json")
    assert {g["group"] for g in r.json()["groups"]} == {p["name"] for p in names}
    r = cli("--workspace", ws, "cohorts", "retention", "--breakdown", "cohort",
            "--returned", "purchase", "--json")
    stored = cli("--workspace", ws, "cohorts", "list", "--json").json()
    assert "buyers" in [g["group"] for g in r.json()["groups"]]
    assert len(r.json()["groups"]) == len(stored["cohorts"])
    text = cli("--workspace", ws, "cohorts", "retention", "--breakdown", "persona").out
    assert all(p["name"] in " ".join(text.split()) for p in names), text
    bad = cli("--workspace", ws, "cohorts", "retention", "--breakdown", "segment",
              "--segment", "1", "--json")
    assert bad.code != 0 and bad.json()["error"] == "E_BY"


def test_retention_shows_periods_nobody_returned_in_as_zero(tmp_path, cli) -> None:
    """A hand-worked example: January's cohort (A, B) has A back in March only; C came
    in February and came back within the month; D's single event in April ends the
    data."""
    from tests.conftest import NOW
    from tests.stages import ingest
    from tribes.analysis.cohorts import retention
    from tribes.ingest import IngestOptions
    from tribes.prep.prep_stage import run_prep
    from tribes.store.db import init_workspace

    ws = init_workspace(tmp_path / "ws")
    path = tmp_path / "e.csv"
    path.write_text("ts,user_id,event\n2026-01-10T10:00:00Z,A,x\n2026-03-05T10:00:00Z,A,x\n"
                    "2026-01-20T10:00:00Z,B,x\n2026-02-15T10:00:00Z,C,x\n"
                    "2026-02-20T10:00:00Z,C,x\n2026-04-02T10:00:00Z,D,x\n")
    ingest(ws, [str(path)], IngestOptions(source="web", now=NOW))
    with open_engine(ws) as engine:
        run_prep(context(ws, engine))
        res = retention(engine, by="first_seen", period="month")
    assert {c["cohort"]: c["counts"] for c in res["cohorts"]} == {
        "2026-01": [2, 0, 1, 0], "2026-02": [1, 0, 0], "2026-04": [1]}
    assert res["cohorts"][0]["retention"] == [1.0, 0.0, 0.5, 0.0]
    # the table says which periods it leaves out, and how to see them
    r = cli("-w", ws.path, "cohorts", "retention", "--periods", "2")
    assert r.code == 0 and "Periods 2 to 3 are not shown" in r.out, r.out
    r = cli("-w", ws.path, "cohorts", "retention", "--periods", "0")
    assert "not shown" not in r.out and "50%" in r.out


def _reference_paths(data: FeatureData) -> list[list[str]]:
    """Every session's path from the pandas sessions: its event types in the order of
    (ts, event_id), repeats collapsed."""
    e = sessionize_reference(keyed(data), timedelta(minutes=30)).sort_values(
        ["customer_key", "session_seq", "ts", "event_id"])
    paths = []
    for _, g in e.groupby(["customer_key", "session_seq"]):
        s = list(g.event_type)
        paths.append([x for i, x in enumerate(s) if i == 0 or s[i - 1] != x])
    return paths


def test_paths_and_sankey(feature_data: FeatureData, cli, tmp_path) -> None:
    from tribes.analysis.paths import (
        following,
        leading_to,
        sankey_links,
        session_paths,
        top_paths,
    )

    with open_engine(feature_data.ws) as engine:
        ps = session_paths(engine)
    want = _reference_paths(feature_data)
    assert sorted(map(tuple, ps)) == sorted(map(tuple, want))
    best = top_paths(ps, top=5, max_length=3)
    assert best[0]["sessions"] >= best[-1]["sessions"] and sum(
        p["share"] for p in top_paths(ps, top=10_000)) == pytest.approx(1.0)
    assert all(p["path"].endswith("purchase") for p in leading_to(ps, "purchase"))
    assert all("purchase" not in p["path"] for p in following(ps, "add_to_cart"))
    links = sankey_links(ps, min_share=0.0)
    first = sum(x["value"] for x in links["links"] if links["nodes"][x["source"]]
                .startswith("1."))
    assert first == len(ps)  # every session leaves its first step exactly once
    # with a cut-off no kept flow starts at a node no kept flow reaches, and every node
    # sits in the column of its step
    cut = sankey_links(ps, min_share=0.05)
    targets = {x["target"] for x in cut["links"]}
    assert all(cut["nodes"][x["source"]].startswith("1.") or x["source"] in targets
               for x in cut["links"])
    steps = [int(n.split(".")[0]) for n in cut["nodes"]]
    assert all((a < b) == (xa < xb) for a, xa in zip(steps, cut["x"], strict=True)
               for b, xb in zip(steps, cut["x"], strict=True) if a != b)
    out = tmp_path / "flows.html"
    r = cli("-w", feature_data.ws.path, "journeys", "sankey", "--out", out, "--json")
    assert r.code == 0, r.err
    assert out.exists() and r.json()["sessions"] == len(ps)
    r = cli("-w", feature_data.ws.path, "journeys", "paths", "--top", "3", "--json")
    assert r.code == 0 and len(r.json()["top"]) == 3


@pytest.mark.parametrize("length", [1, 3, 6])
def test_path_heads_count_the_reference_paths(feature_data: FeatureData, length: int) -> None:
    from tribes.analysis.paths import path_heads, sankey_from_heads, sankey_links

    with open_engine(feature_data.ws) as engine:
        heads = path_heads(engine, length=length)
    paths = _reference_paths(feature_data)
    assert heads == Counter(tuple(p[:length]) for p in paths)
    assert sum(heads.values()) == len(paths)
    # the Sankey from the counted heads is the Sankey of the paths
    if length > 1:
        assert sankey_from_heads(heads, max_length=length - 1, min_share=0.0) == \
            sankey_links(paths, max_length=length - 1, min_share=0.0)


def test_the_worked_example_of_the_retention_docs(tmp_path) -> None:
    """docs/retention.md: four customers, and what each option makes of them."""
    from tests.conftest import NOW
    from tests.stages import ingest
    from tribes.analysis.cohorts import retention
    from tribes.ingest import IngestOptions
    from tribes.prep.prep_stage import run_prep
    from tribes.store.db import init_workspace

    ws = init_workspace(tmp_path / "ws")
    path = tmp_path / "e.csv"
    path.write_text("ts,user_id,event,amount\n2026-01-10T10:00:00Z,A,page_view,\n"
                    "2026-03-05T10:00:00Z,A,purchase,20\n2026-01-20T10:00:00Z,B,purchase,10\n"
                    "2026-02-15T10:00:00Z,C,page_view,\n2026-02-20T10:00:00Z,C,page_view,\n"
                    "2026-04-02T10:00:00Z,D,page_view,\n")
    ingest(ws, [str(path)], IngestOptions(source="web", now=NOW))
    with open_engine(ws) as engine:
        run_prep(context(ws, engine))

        def table(**kw):
            res = retention(engine, period="month", **kw)
            return {c["cohort"]: c["counts"] for c in res["cohorts"]}, res

        anyone, res = table()
        assert anyone == {"2026-01": [2, 0, 1, 0], "2026-02": [1, 0, 0], "2026-04": [1]}
        assert res["cohorts"][0]["revenue"] == [10.0, 0.0, 20.0, 0.0]
        assert table(returned="purchase")[0] == {
            "2026-01": [1, 0, 1, 0], "2026-02": [0, 0, 0], "2026-04": [0]}
        assert table(cumulative=True)[0] == {
            "2026-01": [2, 1, 1, 0], "2026-02": [1, 0, 0], "2026-04": [1]}
        # recurring: A also starts a cohort in March, with its purchase
        assert table(recurring=True)[0] == {
            "2026-01": [2, 0, 1, 0], "2026-02": [1, 0, 0], "2026-03": [1, 0],
            "2026-04": [1]}
        assert table(by="first_purchase", recurring=True)[0] == {
            "2026-01": [1, 0, 0, 0], "2026-03": [1, 0]}
        weeks = {ws_: retention(engine, period="week", week_start=ws_)["cohorts"][0]["cohort"]
                 for ws_ in ("monday", "sunday")}
        assert weeks == {"monday": "2026-01-05", "sunday": "2026-01-04"}
        days = retention(engine, period="day")["cohorts"][0]
        assert days["cohort"] == "2026-01-10" and len(days["counts"]) == 83  # to 04-02
        assert days["counts"][54] == 1  # A's purchase, 54 days after 2026-01-10
