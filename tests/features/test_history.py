"""Dated feature snapshots: every run that reaches the newest event keeps the changed
customers' state, and the features of any snapshot are rebuilt from it exactly as they
were stored then; migration between two dates counts what the two tables say.

The reference for a snapshot is the ``customer_features`` table the run wrote (read and
kept by the test before the next append), not a recomputation; the reference for the
migration matrix is a plain pandas cross-tabulation of two such tables.
"""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import duckdb
import ibis
import pandas as pd
import pytest

import tribes
from tests.prep.test_incremental import SETTINGS, T0, _batch
from tribes.errors import InputError
from tribes.features import (
    FEATURES_TABLE,
    HISTORY_TABLE,
    features_on,
    list_snapshots,
    run_features,
    snapshot_features,
)
from tribes.features.definitions import FEATURES
from tribes.models import migration, run_segmentation
from tribes.prep import run_prep
from tribes.privacy import audit_log
from tribes.store import active_segments
from tribes.store.db import init_workspace, open_engine
from tribes.store.tables import EVENTS
from tribes.workspace import RunContext

FIXED = ["customer_key", "known", *[f.name for f in FEATURES]]


def _fixed(df: pd.DataFrame) -> pd.DataFrame:
    return df[FIXED].sort_values("customer_key").reset_index(drop=True)


def test_every_snapshot_is_rebuilt_as_it_was_stored(tmp_path: Path) -> None:
    rng = random.Random(11)
    pools = {"c": 5, "a": 12, "d": 5}
    ws = init_workspace(tmp_path / "ws")
    stored: dict[pd.Timestamp, pd.DataFrame] = {}
    with open_engine(ws) as engine:
        ctx = RunContext(ws, engine, SETTINGS)
        batch = _batch(rng, 60, 0, 600, pools, T0 + timedelta(days=1), "b0")
        engine.insert("events", ibis.memtable(batch).cast(EVENTS))
        for step in range(1, 6):
            run_prep(ctx)
            rep = run_features(ctx)
            assert rep.snapshot is not None and not rep.snapshot["skipped"]
            stored[pd.Timestamp(rep.as_of)] = _fixed(engine.execute(
                engine.table(FEATURES_TABLE)))
            if step == 3:
                # the same events again: the snapshot is redone, not doubled
                again = run_features(ctx)
                assert again.snapshot is not None and again.snapshot["replaced"]
                assert (again.snapshot["changed"], again.snapshot["gone"]) == (
                    rep.snapshot["changed"], rep.snapshot["gone"])
            pools = {k: v + rng.randrange(0, 3) for k, v in pools.items()}
            later = _batch(rng, rng.randrange(3, 12), 560 + 120 * step, 700 + 120 * step,
                           pools, T0 + timedelta(days=1 + step), f"b{step}n")
            late = _batch(rng, rng.randrange(0, 5), 0, 560 + 120 * step, pools,
                          T0 + timedelta(days=1 + step), f"b{step}l")
            engine.insert("events", ibis.memtable(pd.concat([later, late])).cast(EVENTS))
        snaps = list_snapshots(engine)
        assert [pd.Timestamp(s["as_of"]) for s in snaps] == sorted(stored)
        # only changed customers are written after the first snapshot
        hist = engine.execute(engine.table(HISTORY_TABLE))
        assert len(hist) == sum(s["changed"] + s["gone"] for s in snaps)
        assert len(hist) < sum(s["customers"] for s in snaps)
        assert sum(s["gone"] for s in snaps) > 0, "an identity merge makes a gone row"
        for when, want in stored.items():
            got = _fixed(engine.execute(snapshot_features(
                engine, when.to_pydatetime(), consent_mode=SETTINGS.consent_mode)))
            pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12,
                                          obj=f"snapshot as of {when}")

        # migration between the first and the last day, against pandas: a day stands for
        # its newest snapshot
        days = sorted({w.date() for w in stored})
        assert len(days) >= 2
        a = features_on(engine, days[0], consent_mode=SETTINGS.consent_mode,
                        weights=None, composite=None, sample_size=1000)
        b = features_on(engine, days[-1], consent_mode=SETTINGS.consent_mode,
                        weights=None, composite=None, sample_size=1000)
        assert (a.source, b.source) == ("snapshot", "snapshot")
        first = max(w for w in stored if w.date() == days[0])
        last = max(stored)
        assert (pd.Timestamp(a.as_of), pd.Timestamp(b.as_of)) == (first, last)
        m = migration(engine, a, b, by="rfm")
        x = stored[first].set_index("customer_key")["rfm_label"].fillna("no purchase")
        y = stored[last].set_index("customer_key")["rfm_label"].fillna("no purchase")
        both = pd.concat([x.rename("from"), y.rename("to")], axis=1).fillna("not a customer")
        want_cells = both.value_counts().rename("customers").reset_index()
        got_cells = m.cells.sort_values(["from", "to"]).reset_index(drop=True)
        want_cells = want_cells.sort_values(["from", "to"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(got_cells, want_cells, check_dtype=False)
        summary = m.as_dict()
        assert summary["new"] == int((both["from"] == "not a customer").sum())
        assert summary["stayed"] + summary["moved"] == summary["customers_on_both"]
        # the customers of a cell are the ones pandas puts there
        cell = want_cells.iloc[0]
        keys = set(engine.execute(m.customers(cell["from"], cell["to"]))["customer_key"])
        assert keys == set(both[(both["from"] == cell["from"])
                                & (both["to"] == cell["to"])].index)
        with pytest.raises(InputError, match="no label"):
            m.customers("Nobody")
        assert summary["moved"] > 0 and summary["stayed"] > 0, summary

        # by segment: on the last date (the table the version was fitted on) each
        # customer is where the fit put them
        run_segmentation(ctx, method="kmeans", k=2)
        seg = migration(engine, a, b, by="segment")
        to = engine.execute(seg.pairs).set_index("customer_key")["to"]
        fitted = engine.execute(active_segments(engine)).set_index("customer_key")
        assert to[to != "not a customer"].sort_index().equals(
            fitted["segment_name"].sort_index().rename("to"))
        assert seg.as_dict()["version"] == 1


def test_a_day_without_snapshot_is_computed_from_the_events(tmp_path: Path) -> None:
    """Features on a date without a snapshot equal ``features --as-of`` that date."""
    rng = random.Random(3)
    ws = init_workspace(tmp_path / "ws")
    with open_engine(ws) as engine:
        # three days of events, one snapshot (the last day)
        for day in range(3):
            batch = _batch(rng, 40, day * 1440, day * 1440 + 600, {"c": 6, "a": 14, "d": 5},
                           T0 + timedelta(days=4), f"d{day}")
            engine.insert("events", ibis.memtable(batch).cast(EVENTS))
        ctx = RunContext(ws, engine, SETTINGS)
        run_prep(ctx)
        run_features(ctx)
        day1 = (T0 + timedelta(days=1)).date()
        dated = features_on(engine, day1, consent_mode=SETTINGS.consent_mode, weights=None,
                            composite=None, sample_size=1000)
        assert dated.source == "events"
        got = _fixed(engine.execute(dated.table))
        past = RunContext(ws, engine, SETTINGS.__class__(**{**SETTINGS.__dict__,
                                                          "as_of": dated.as_of}))
        rep = run_features(past)
        assert rep.snapshot is None, "a past as-of is not kept as a snapshot"
        want = _fixed(engine.execute(engine.table(FEATURES_TABLE)))
        pd.testing.assert_frame_equal(got.drop(columns="composite_index"),
                                      want.drop(columns="composite_index"),
                                      check_exact=False, rtol=1e-12)
        with pytest.raises(InputError, match="no events on or before"):
            features_on(engine, (T0 - timedelta(days=3)).date(),
                        consent_mode=SETTINGS.consent_mode, weights=None, composite=None,
                        sample_size=1000)


def test_cli_history_and_migration_with_a_customer_list(cli, tmp_path: Path) -> None:
    """``features history`` and ``features migration`` print what the Python API
    returns; ``--customers`` writes the cell's customers and the audit log records it."""
    rng = random.Random(8)
    ws = init_workspace(tmp_path / "ws")
    with open_engine(ws) as engine:
        ctx = RunContext(ws, engine, SETTINGS)
        for day in range(3):
            batch = _batch(rng, 40, day * 1440, day * 1440 + 600, {"c": 6, "a": 14, "d": 5},
                           T0 + timedelta(days=day + 1), f"d{day}")
            engine.insert("events", ibis.memtable(batch).cast(EVENTS))
            run_prep(ctx)
            run_features(ctx)
    w = ("--workspace", ws.path)
    hist = cli(*w, "features", "history", "--json")
    assert hist.code == 0, hist.err
    assert len(hist.json()["snapshots"]) == 3
    first, last = (T0.date(), (T0 + timedelta(days=2)).date())
    r = cli(*w, "features", "migration", "--from", first, "--to", last, "--json")
    assert r.code == 0, r.err
    got = r.json()
    api = tribes.open(ws.path).migration(first, last)
    assert got["cells"] == api.summary["cells"]
    assert got["from"]["source"] == got["to"]["source"] == "snapshot"
    out = tmp_path / "moved.csv"
    cell = next(c for c in got["cells"] if c["from"] != c["to"])
    r = cli(*w, "features", "migration", "--from", first, "--to", last,
            "--customers", f"{cell['from']}>{cell['to']}", "--out", out, "--json")
    assert r.code == 0, r.err
    listed = pd.read_csv(out)
    assert len(listed) == cell["customers"] == r.json()["customers_out"]["rows"]
    assert set(listed["customer_key"]) == set(api.customers(cell["from"], cell["to"])
                                              ["customer_key"])
    rec = [x for x in audit_log.read_audit(ws.path) if x["action"] == "export"][-1]
    assert rec["rows"] == len(listed) and rec["detail"]["what"] == "migration"
    assert cli(*w, "features", "migration", "--from", first, "--to", last,
               "--customers", "a>b").code != 0  # --out missing
    bad = cli(*w, "features", "migration", "--from", last, "--to", first)
    assert bad.code != 0 and "after the second" in bad.err
    assert cli(*w, "features", "migration", "--from", first, "--to", last,
               "--by", "segment").code != 0  # no segment version yet


def test_a_workspace_from_before_snapshots_reads_without_them(tmp_path: Path) -> None:
    """Read-only commands on a workspace no writer has opened since snapshots came in
    (no snapshot tables): no snapshots listed, dates computed from the events."""
    rng = random.Random(5)
    ws = init_workspace(tmp_path / "ws")
    with open_engine(ws) as engine:
        for day in range(2):
            batch = _batch(rng, 40, day * 1440, day * 1440 + 600, {"c": 6, "a": 14, "d": 5},
                           T0 + timedelta(days=3), f"d{day}")
            engine.insert("events", ibis.memtable(batch).cast(EVENTS))
        run_features(RunContext(ws, engine, SETTINGS))
    # as an older version left the database: without the snapshot tables
    with duckdb.connect(str(ws.path / "tribes.duckdb")) as con:
        for name in (HISTORY_TABLE, "feature_snapshots"):
            con.execute(f'DROP TABLE "{name}"')
    api = tribes.open(ws.path)
    assert api.snapshots().summary == {"snapshots": []}
    m = api.migration(T0.date(), (T0 + timedelta(days=1)).date())
    assert m.summary["from"]["source"] == m.summary["to"]["source"] == "events"
    assert sum(c["customers"] for c in m.summary["cells"]) > 0
