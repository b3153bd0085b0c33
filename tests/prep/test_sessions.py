"""Sessionization: the timeout rule, ties, the reference implementation, invariants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import ibis
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.features.reference import sessionize_reference, sessions_reference
from tribes.engine import Engine
from tribes.prep.sessions import mark_session_starts, number_sessions, sessions_table

T0 = datetime(2026, 3, 1, tzinfo=UTC)
SCHEMA = {"customer_key": "string", "event_id": "string", "ts": "timestamp('UTC')",
          "event_type": "string", "source": "string", "device": "string"}
TIMEOUT = timedelta(minutes=30)
TYPES = ["page_view", "add_to_cart", "purchase", "search"]


def events(rows: list[tuple[str, str, float, str]]) -> pd.DataFrame:
    """(customer_key, event_id, seconds after T0, event_type) rows."""
    return pd.DataFrame({
        "customer_key": [r[0] for r in rows],
        "event_id": [r[1] for r in rows],
        "ts": pd.to_datetime([T0 + timedelta(seconds=r[2]) for r in rows], utc=True)
        .astype("datetime64[us, UTC]"),
        "event_type": [r[3] for r in rows],
        "source": ["web" if i % 2 else "app" for i in range(len(rows))],
        "device": ["mobile" if i % 3 else "desktop" for i in range(len(rows))],
    })


def numbered(engine: Engine, df: pd.DataFrame, timeout: timedelta = TIMEOUT) -> pd.DataFrame:
    t = ibis.memtable(df, schema=SCHEMA)
    out = engine.execute(number_sessions(mark_session_starts(t, timeout)))
    return out.sort_values(["customer_key", "ts", "event_id"]).reset_index(drop=True)


def test_exact_timeout_gap_stays_in_the_session(engine: Engine) -> None:
    df = events([("k", "e1", 0, "page_view"), ("k", "e2", 1800, "page_view"),
                 ("k", "e3", 3600.000001, "page_view"), ("k", "e4", 3600.000002, "x")])
    got = numbered(engine, df)
    assert got.session_seq.tolist() == [1, 1, 2, 2]
    assert got.gap_us.tolist()[1:] == [1_800_000_000, 1_800_000_001, 1]


@pytest.mark.parametrize("order", [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]])
def test_events_at_one_instant_share_a_session_and_its_first_event_is_chosen_by_value(
        engine: Engine, order: list[int]) -> None:
    # three events at the session's first instant, in any stored order: the session's
    # source and device come from the smallest source, then device with nulls last
    rows = [("k", "b", 0, "page_view", "web", "mobile"),
            ("k", "a", 0, "add_to_cart", "app", None),
            ("k", "c", 0, "page_view", "app", "tablet"),
            ("k", "d", 5000, "purchase", "web", "mobile")]
    df = events([rows[i][:4] for i in order]).assign(
        source=[rows[i][4] for i in order], device=[rows[i][5] for i in order])
    got = numbered(engine, df)
    assert got.session_seq.tolist() == [1, 1, 1, 2]
    assert got.session_start.sum() == 2  # one start per session, whichever tied row
    s = engine.execute(sessions_table(ibis.memtable(got, schema={**SCHEMA, **{
        "gap_us": "int64", "session_start": "boolean", "session_seq": "int64"}})))
    first = s[s.session_seq == 1].iloc[0]
    assert (first.source, first.device) == ("app", "tablet")
    assert first.n_events == 3 and first.has_add_to_cart and not first.has_purchase
    assert list(first.event_types) == ["add_to_cart", "page_view"]
    # all devices null at the first instant: the device is null, the source still chosen
    df2 = df.assign(device=None)
    s2 = engine.execute(sessions_table(number_sessions(mark_session_starts(
        ibis.memtable(df2, schema=SCHEMA), TIMEOUT))))
    first2 = s2[s2.session_seq == 1].iloc[0]
    assert first2.source == "app" and pd.isna(first2.device)


def test_one_event_session_has_zero_duration(engine: Engine) -> None:
    df = events([("k", "e1", 0, "page_view")])
    t = ibis.memtable(df, schema=SCHEMA)
    s = engine.execute(sessions_table(number_sessions(mark_session_starts(t, TIMEOUT))))
    assert s.duration_s.tolist() == [0.0] and s.n_events.tolist() == [1]


gaps = st.lists(st.one_of(st.sampled_from([0.0, 1799.0, 1800.0, 1800.5, 1801.0, 7200.0]),
                          st.floats(0, 5000, allow_nan=False).map(lambda x: round(x, 3))),
                min_size=1, max_size=30)


@settings(max_examples=30, deadline=None)
@given(per_customer=st.lists(gaps, min_size=1, max_size=4),
       timeout_s=st.sampled_from([60.0, 1800.0, 3600.0]))
def test_sessions_partition_events_and_match_reference(
    engine: Engine, per_customer: list[list[float]], timeout_s: float
) -> None:
    rows = []
    for c, gs in enumerate(per_customer):
        t = 0.0
        for i, g in enumerate(gs):
            t += g
            rows.append((f"k{c}", f"e{(i * 7919) % 1000:03d}{i}", t,
                         TYPES[(i * 31 + c) % len(TYPES)]))
    df = events(rows)
    timeout = timedelta(seconds=timeout_s)
    got = numbered(engine, df, timeout)
    # sessions partition the events; inside one gaps are <= timeout, across them > timeout
    assert len(got) == len(df)
    for _, e in got.groupby("customer_key"):
        diffs = e.ts.diff().iloc[1:]
        same = (e.session_seq.diff().iloc[1:] == 0)
        assert (diffs[same] <= pd.Timedelta(timeout)).all()
        assert (diffs[~same] > pd.Timedelta(timeout)).all()
        assert e.session_seq.iloc[0] == 1 and e.session_seq.diff().iloc[1:].isin([0, 1]).all()
    ref = sessionize_reference(df, timeout)
    assert got.session_seq.tolist() == ref.session_seq.tolist()
    marked = number_sessions(mark_session_starts(ibis.memtable(df, schema=SCHEMA), timeout))
    s = engine.execute(sessions_table(marked))
    # the event types as flags of a known vocabulary (what prep does) or collected
    flagged = engine.execute(sessions_table(marked, ["search", *TYPES, "unused"]))
    r = sessions_reference(df, timeout)
    for got_s in (s, flagged):
        m = got_s.merge(r, on=["customer_key", "start"], suffixes=("", "_r"))
        assert len(m) == len(r)
        assert m.event_types.map(tuple).tolist() == m.event_types_r.map(tuple).tolist()
    merged = s.merge(r, on=["customer_key", "start"], suffixes=("", "_r"))
    assert len(merged) == len(s) == len(r)
    assert s.n_events.sum() == len(df)
    assert (merged.n_events == merged.n_events_r).all()
    assert (merged.end == merged.end_r).all()
    assert ((merged.duration_s - merged.duration_s_r).abs() < 1e-6).all()
