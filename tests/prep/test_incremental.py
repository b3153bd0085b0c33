"""Prep and features after an append give what full ones give on the same events.

Random shops of a few customers, cookies and devices (a small shared-id limit, so ids
become shared as links are added), appended to in several batches: later events, late
events that fall inside or between existing sessions, events at the same instant, new
cookies, and links that join two customers or make a component ambiguous. After each
append the incremental prep's ``identities``, ``id_tuples`` and ``sessions`` must equal a
full prep's of the same events, row for row, and the features recomputed for the touched
customers only (``customer_features`` and ``customer_state``) a full build's, and so must
the weeks of monitoring's ``customer_weeks`` redone from each touched customer's first
changed event, and the members of cohorts whose rules read a customer's own events
only, evaluated again for the touched customers alone.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import ibis
import pandas as pd
import pytest

from tribes.analysis import define_cohort, refresh_after_prep
from tribes.analysis.cohorts import COHORTS_STAGE
from tribes.engine import Engine
from tribes.features import FEATURES_TABLE, STATE_TABLE, run_features
from tribes.monitor.spc import WEEKS_STAGE, WEEKS_TABLE, _stored_weeks
from tribes.prep import run_prep
from tribes.settings import RunSettings
from tribes.store import last_run
from tribes.store.db import init_workspace, open_engine
from tribes.store.tables import EVENTS
from tribes.workspace import RunContext, Workspace

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
SETTINGS = RunSettings(session_timeout=timedelta(minutes=30), consent_mode="off",
                       as_of=None, max_ids_per_component=3)


def _batch(rng: random.Random, n: int, lo: int, hi: int, pools: dict[str, int],
           ingested: datetime, tag: str) -> pd.DataFrame:
    rows = []
    for i in range(n):
        ids: dict[str, str | None] = {
            "customer_id": f"c{rng.randrange(pools['c'])}" if rng.random() < 0.35 else None,
            "anonymous_id": f"a{rng.randrange(pools['a'])}" if rng.random() < 0.7 else None,
            "device_id": f"d{rng.randrange(pools['d'])}" if rng.random() < 0.35 else None,
        }
        if not any(ids.values()):
            ids["anonymous_id"] = f"a{rng.randrange(pools['a'])}"
        rows.append({
            "event_id": f"{tag}-{i}",
            # whole minutes over a few hours: ties, and gaps either side of the timeout
            "ts": T0 + timedelta(minutes=rng.randrange(lo, hi)),
            "event_type": rng.choice(["page_view", "page_view", "add_to_cart", "purchase",
                                      "search"]),
            **ids,
            "source": rng.choice(["web", "app", "support"]),
            "device": rng.choice(["mobile", "desktop", None]),
            "channel": rng.choice(["email", "search", "social", None]),
            "category": rng.choice(["shoes", "bags", "hats", None]),
            "order_id": rng.choice([f"o{rng.randrange(6)}", None]),
            "amount": rng.choice([round(rng.uniform(5, 200), 2), None]),
            "ingested_at": ingested,
        })
    df = pd.DataFrame(rows)
    for col in EVENTS.names:
        if col not in df:
            df[col] = None
    return df[list(EVENTS.names)]


def _tables(engine: Engine) -> dict[str, pd.DataFrame]:
    out = {}
    for name, order in (("identities", ["id_type", "id"]),
                        ("id_tuples", ["customer_id", "anonymous_id", "device_id"]),
                        ("sessions", ["customer_key", "session_seq"])):
        df = engine.execute(engine.table(name)).sort_values(order, na_position="first")
        if name == "sessions":
            df["event_types"] = df["event_types"].map(list)
        out[name] = df.reset_index(drop=True)
    return out


def _weeks(engine: Engine) -> tuple[str, pd.DataFrame]:
    """Bring customer_weeks up to date (as monitoring does) and read it."""
    _stored_weeks(engine)
    how = last_run(engine, WEEKS_STAGE)["report"]["how"]
    df = engine.execute(engine.table(WEEKS_TABLE)).sort_values(["customer_key", "week"])
    df["orders"] = df["orders"].map(lambda v: None if v is None else list(v))
    return how, df.reset_index(drop=True)


COHORTS = {
    "cart_then_buy": "add_to_cart followed by purchase within 1 hour",
    "quick_buyers": "first purchase within 2 hours of first event",
    "browsers": "at least 2 page_view in the first 3 hours and not any search",
    # reads the newest event: evaluated in full every time
    "recent": "any purchase in the last 2 hours",
}


def _cohorts(engine: Engine) -> tuple[str, pd.DataFrame]:
    """Refresh the cohorts as tribes run does and read their members."""
    refresh_after_prep(engine, consent_mode=SETTINGS.consent_mode)
    how = last_run(engine, COHORTS_STAGE)["report"]["how"]
    df = engine.execute(engine.table("cohort_members")).sort_values(["cohort",
                                                                     "customer_key"])
    return how, df.reset_index(drop=True)


def _features(engine: Engine) -> dict[str, pd.DataFrame]:
    out = {}
    for name in (FEATURES_TABLE, STATE_TABLE):
        df = engine.execute(engine.table(name)).sort_values("customer_key")
        out[name] = df[sorted(df.columns)].reset_index(drop=True)
    return out


def _derived(engine: Engine, how: str) -> dict[str, pd.DataFrame]:
    """Bring the weekly table and the cohorts up to date (each the way ``how`` says: full
    or incremental) and read every table prep, features, monitoring and cohorts keep."""
    weeks_how, weeks = _weeks(engine)
    cohorts_how, cohorts = _cohorts(engine)
    assert (weeks_how, cohorts_how) == (how, how)
    return {**_tables(engine), **_features(engine), WEEKS_TABLE: weeks,
            "cohort_members": cohorts}


def _check_appends(ws: Workspace, seed: int) -> list[dict[str, int]]:
    rng = random.Random(seed)
    pools = {"c": 5, "a": 12, "d": 5}
    done = []
    with open_engine(ws) as engine:
        ctx = RunContext(ws, engine, SETTINGS)
        first = _batch(rng, 60, 0, 600, pools, T0 + timedelta(days=1), "b0")
        engine.insert("events", ibis.memtable(first).cast(EVENTS))
        history = first
        assert run_prep(ctx).incremental is None
        assert run_features(ctx).recomputed is None
        assert _weeks(engine)[0] == "full"
        for name, rule in COHORTS.items():
            define_cohort(engine, name, rule, consent_mode=SETTINGS.consent_mode)
        assert _cohorts(engine)[0] == "full"
        for step in range(1, 4):
            pools = {k: v + rng.randrange(0, 3) for k, v in pools.items()}
            later = _batch(rng, rng.randrange(3, 12), 560 + 120 * step, 700 + 120 * step,
                           pools, T0 + timedelta(days=1 + step), f"b{step}n")
            late = _batch(rng, rng.randrange(0, 5), 0, 560 + 120 * step, pools,
                          T0 + timedelta(days=1 + step), f"b{step}l")
            # exactly the timeout after a cookie's last event: the same session
            seen = history[history.anonymous_id.notnull()]
            last = seen.sort_values("ts").groupby("anonymous_id").tail(1).sample(
                n=min(2, len(seen)), random_state=rng.randrange(1 << 30))
            edge = last.assign(ts=last.ts + SETTINGS.session_timeout,
                               event_id=[f"b{step}e{i}" for i in range(len(last))],
                               ingested_at=T0 + timedelta(days=1 + step))
            batch = pd.concat([later, late, edge], ignore_index=True)
            history = pd.concat([history, batch], ignore_index=True)
            engine.insert("events", ibis.memtable(batch).cast(EVENTS))
            rep = run_prep(ctx)
            assert rep.incremental is not None, "an append alone runs prep incrementally"
            feats = run_features(ctx)
            assert feats.recomputed is not None, "features after an append recompute some"
            got = _derived(engine, "incremental")
            full = run_prep(ctx, full=True)
            assert full.incremental is None
            assert run_features(ctx).recomputed is None
            want = _derived(engine, "full")
            for name in want:
                # sums over a customer's rows in another order may differ in the last bit
                pd.testing.assert_frame_equal(got[name], want[name], check_exact=False,
                                              rtol=1e-12, atol=0,
                                              obj=f"{name} (seed {seed}, append {step})")
            assert rep.sessions == full.sessions
            assert rep.stitching.as_dict() | {"passes": 0} == (
                full.stitching.as_dict() | {"passes": 0})
            done.append({**rep.incremental, "recomputed": feats.recomputed,
                         "customers": feats.customers})
    return done


@pytest.mark.parametrize("seeds", [range(0, 2), range(2, 4)])
def test_incremental_prep_and_features_equal_full_ones(tmp_path: Path, seeds: range) -> None:
    seen = {"new_tuples": 0, "rekeyed_customers": 0, "sessions_replaced": 0,
            "recomputed": 0, "customers": 0}
    for seed in seeds:
        for d in _check_appends(init_workspace(tmp_path / f"ws{seed}"), seed):
            assert d["new_events"] > 0
            for k in seen:
                seen[k] += d[k]
    # the appends re-stitched ids, moved ids between customers and replaced existing
    # sessions: the equality is not only about new customers
    assert all(v > 0 for v in seen.values()), seen
    # and features carried some customers over without recomputing them
    assert seen["recomputed"] < seen["customers"], seen


def test_prep_says_what_an_append_touched_and_full_redoes_all(tmp_path: Path, cli) -> None:
    ws = init_workspace(tmp_path / "ws")
    rng = random.Random(42)
    pools = {"c": 5, "a": 12, "d": 5}
    with open_engine(ws) as engine:
        first = _batch(rng, 60, 0, 600, pools, T0 + timedelta(days=1), "b0")
        engine.insert("events", ibis.memtable(first).cast(EVENTS))
    assert cli("-w", ws.path, "prep", "--json").json()["incremental"] is None
    with open_engine(ws) as engine:
        later = _batch(rng, 8, 700, 800, pools, T0 + timedelta(days=2), "b1")
        engine.insert("events", ibis.memtable(later).cast(EVENTS))
    r = cli("-w", ws.path, "prep")
    assert r.code == 0 and "after an append: 8 new events touched" in r.out
    with open_engine(ws) as engine:
        engine.insert("events", ibis.memtable(
            _batch(rng, 3, 800, 900, pools, T0 + timedelta(days=3), "b2")).cast(EVENTS))
    r = cli("-w", ws.path, "prep", "--full", "--json")
    assert r.code == 0 and r.json()["incremental"] is None
