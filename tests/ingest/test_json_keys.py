"""JSON Lines whose keys and values hold any character: every record loads or is
quarantined on its own, and nothing of a loaded record is lost."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import NOW, table
from tests.stages import ingest
from tribes.ingest import IngestOptions
from tribes.store.db import init_workspace

# the characters that broke, or could break, a JSON path or SQL built from a key
_TRICKY = "'\"\\$.[]*?~/ \x00\x1b\n\tabé€😀"
keys = st.text(alphabet=_TRICKY, max_size=6)
values = st.text(alphabet=_TRICKY, max_size=6)
extras = st.dictionaries(keys, values, min_size=1, max_size=3)
BASE = ("user_id", "event", "timestamp")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _plain(key: str, all_keys: set[str]) -> bool:
    """A key that can be a column name as it is (no NUL, not empty, no other key equal
    to it but for case): it must come back under its own name."""
    return bool(key) and "\x00" not in key and not key.startswith("_") and sum(
        k.casefold() == key.casefold() for k in all_keys) == 1


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(extras, min_size=1, max_size=4))
def test_any_key_or_value_loads_and_keeps_its_value(records) -> None:
    lines = []
    for i, extra in enumerate(records):
        record = {"user_id": f"u{i}", "event": "page_view",
                  "timestamp": (T0 + timedelta(seconds=i)).isoformat()}
        record.update({k: v for k, v in extra.items() if k.casefold() not in BASE})
        lines.append(json.dumps(record))
    with tempfile.TemporaryDirectory() as tmp:
        ws = init_workspace(Path(tmp) / "ws")
        path = Path(tmp) / "in.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        s = ingest(ws, [str(path)], IngestOptions(source="web", now=NOW))
        assert s.rows_read == len(records)
        assert s.loaded == len(records), s.quarantined
        events = table(ws, "events").sort_values("ts")
        all_keys = {k for e in records for k in e if k.casefold() not in BASE}
        for i, (extra, props) in enumerate(zip(records, events.properties, strict=True)):
            sent = {k: v for k, v in extra.items() if k.casefold() not in BASE}
            stored = json.loads(props) if isinstance(props, str) else {}
            # every value sent comes back (keys of other records are null here)
            got = sorted(v for v in stored.values() if v is not None)
            assert got == sorted(sent.values()), (i, sent, stored)
            for k, v in sent.items():
                if _plain(k, all_keys):
                    assert stored[k] == v


def test_a_key_with_an_apostrophe_loads(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    path = tmp_path / "a.jsonl"
    path.write_text(
        '{"user_id":"u1","event":"page_view","timestamp":"2026-01-01T00:00:00Z",'
        '"l\'adresse":"1 rue de l\'Église"}\n'
        '{"user_id":"u2","event":"page_view","timestamp":"2026-01-01T00:00:01Z"}\n',
        encoding="utf-8")
    s = ingest(ws, [str(path)], IngestOptions(source="web", now=NOW))
    assert (s.loaded, s.n_quarantined) == (2, 0)
    props = table(ws, "events").sort_values("ts").properties.tolist()
    assert json.loads(props[0]) == {"l'adresse": "1 rue de l'Église"}


def test_keys_that_differ_only_in_case_or_name_reader_columns_are_kept(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    path = tmp_path / "a.jsonl"
    rec = {"user_id": "u1", "event": "page_view", "timestamp": "2026-01-01T00:00:00Z",
           "Size": "L", "size": "M", "line": "3", "_file": "f", "_valid": "v", "": "e"}
    path.write_text(json.dumps(rec) + "\n", encoding="utf-8")
    s = ingest(ws, [str(path)], IngestOptions(source="web", now=NOW))
    assert s.loaded == 1
    stored = json.loads(table(ws, "events").properties[0])
    assert sorted(stored.values()) == sorted(["L", "M", "3", "f", "v", "e"])
    assert stored["Size"] == "L" and stored["line"] == "3"
    assert any("case" in n for n in s.read.get("notes", [])), s.read
