"""Stage runs: the events fingerprint, recording a run and finding the newest one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import ibis
import pandas as pd

from tribes.engine import Engine
from tribes.privacy import audit_log
from tribes.store.db import open_engine
from tribes.store.runs import (
    Fingerprint,
    events_fingerprint,
    is_current,
    last_run,
    new_run_id,
    record_run,
)
from tribes.store.tables import EVENTS
from tribes.workspace import Workspace

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _add_events(engine: Engine, n: int, ingested_at: datetime) -> None:
    rows = pd.DataFrame({"event_id": [f"e{ingested_at:%H%M}{i}" for i in range(n)],
                         "ts": [T0] * n, "event_type": ["page_view"] * n,
                         "ingested_at": [ingested_at] * n})
    for col in EVENTS.names:
        if col not in rows:
            rows[col] = None
    engine.insert("events", ibis.memtable(rows[list(EVENTS.names)]).cast(EVENTS))


def test_fingerprint_counts_rows_and_newest_load(ws: Workspace) -> None:
    with open_engine(ws) as engine:
        assert events_fingerprint(engine) == Fingerprint(0, None)
        _add_events(engine, 3, T0)
        _add_events(engine, 2, T0 + timedelta(hours=1))
        assert events_fingerprint(engine) == Fingerprint(5, T0 + timedelta(hours=1))


def test_new_run_id_names_stage_and_time() -> None:
    a, b = new_run_id("prep", T0), new_run_id("prep", T0)
    assert a.startswith("prep-20260301T090000-") and len(a) == len("prep-20260301T090000-") + 6
    assert a != b


def test_record_and_read_back_the_newest_run(ws: Workspace) -> None:
    with open_engine(ws) as engine:
        assert last_run(engine, "features") is None
        _add_events(engine, 3, T0)
        fp = events_fingerprint(engine)
        for i, run_id in enumerate(["features-1", "features-2"]):
            record_run(engine, run_id=run_id, stage="features", started_at=T0, fingerprint=fp,
                       params={"as_of": T0, "weights": {"a": 0.5}, "round": i},
                       report={"customers": 10 + i})
        record_run(engine, run_id="prep-1", stage="prep", started_at=T0, fingerprint=fp,
                   params={}, report={})
        run = last_run(engine, "features")
    assert run is not None
    assert run["run_id"] == "features-2" and run["stage"] == "features"
    # params are stored as JSON: datetimes come back as text
    assert run["params"] == {"as_of": str(T0), "weights": {"a": 0.5}, "round": 1}
    assert run["report"] == {"customers": 11}
    assert int(run["events_rows"]) == 3
    recs = [r for r in audit_log.read_audit(ws.path) if r["action"] == "features"]
    assert [r["target"] for r in recs] == ["features-1", "features-2"]
    assert recs[0]["rows"] == 3


def test_a_run_is_current_until_the_events_change(ws: Workspace) -> None:
    assert not is_current(None, Fingerprint(0, None))
    with open_engine(ws) as engine:
        _add_events(engine, 3, T0)
        fp = events_fingerprint(engine)
        record_run(engine, run_id="prep-1", stage="prep", started_at=T0, fingerprint=fp,
                   params={}, report={})
        run = last_run(engine, "prep")
        assert is_current(run, events_fingerprint(engine))
        assert not is_current(run, Fingerprint(3, T0 + timedelta(seconds=1)))
        _add_events(engine, 1, T0)  # same load time, one more row
        assert not is_current(run, events_fingerprint(engine))


def test_a_run_on_no_events_is_current_while_there_are_none(ws: Workspace) -> None:
    with open_engine(ws) as engine:
        fp = events_fingerprint(engine)
        record_run(engine, run_id="prep-0", stage="prep", started_at=T0, fingerprint=fp,
                   params={}, report={})
        run = last_run(engine, "prep")
        assert is_current(run, fp)
        _add_events(engine, 1, T0)
        assert not is_current(run, events_fingerprint(engine))
