"""Properties of ingest that must hold for any input."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import NOW, table
from tests.stages import ingest
from tribes.ingest import IngestOptions
from tribes.store.db import init_workspace

timestamps = st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-02 10:00:00", "1767225600",
                              "garbage", "", "2999-01-01T00:00:00Z", "1960-01-01"])
ids = st.sampled_from(["", "u1", "u2", " u1 ", "null", "ü3"])
types = st.sampled_from(["page_view", "Page View", "purchase", "add_to_cart", ""])
amounts = st.sampled_from(["", "10", "-3", "abc", "1,000.50", "nan"])
rows = st.lists(st.tuples(timestamps, ids, ids, types, amounts), min_size=1, max_size=40)


def _csv(data: list[tuple[str, ...]], ragged: int) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["ts", "user_id", "cookie_id", "event", "amount"])
    w.writerows(data)
    text = buf.getvalue()
    return text + "2026-01-01,u1,c1,page_view,1,extra\n" * ragged


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=rows, ragged=st.integers(0, 2), repeat=st.integers(1, 3))
def test_rows_are_conserved_and_ingest_is_idempotent(data, ragged, repeat) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ws = init_workspace(Path(tmp) / "ws")
        path = Path(tmp) / "in.csv"
        path.write_text(_csv(data * repeat, ragged))
        first = ingest(ws, [str(path)], IngestOptions(source="web", now=NOW))
        assert first.rows_read == len(data) * repeat + ragged
        assert first.loaded + first.duplicates + first.n_quarantined == first.rows_read
        # no source event ids: identical lines are kept, never counted as duplicates
        assert first.duplicates == 0
        events = table(ws, "events")
        assert len(events) == first.loaded and events.event_id.is_unique
        second = ingest(ws, [str(path)], IngestOptions(source="web", now=NOW))
        # the bad rows are in the quarantine already: counted as duplicates, once
        assert second.loaded == 0 and second.quarantined == {}
        assert second.duplicates == first.loaded + first.n_quarantined
        assert second.already_quarantined == first.n_quarantined
        assert len(table(ws, "quarantine")) == first.n_quarantined
        assert len(table(ws, "events")) == first.loaded
