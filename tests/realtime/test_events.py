"""Streamed messages get the verdicts file ingest gives them (same reasons, same ids)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.stages import ingest
from tribes.ingest import IngestOptions
from tribes.realtime.events import EventChecker, Rejected, StreamEvent, parse_ts
from tribes.realtime.sink import _line
from tribes.store.db import open_engine
from tribes.workspace import open_workspace

NOW = time.time()

MESSAGES: list[Any] = [
    {"event_id": "ok1", "user_id": "C1", "event_name": "Add To Cart", "timestamp": NOW - 60},
    {"event_id": "ok2", "userId": "C1", "event": "purchase", "ts": "2026-11-30T10:00:00Z",
     "revenue": "$1,200.50", "order_id": "o9"},
    {"event_id": "ok3", "cookie_id": "ck1", "event": "page_view",
     "ts": int((NOW - 5) * 1000)},
    {"event_id": "ok4", "device_id": "d1", "type": "order_completed", "ts":
     "2026-11-30 10:00:00", "amount": 3, "quantity": "2"},
    {"event_id": "ok5", "user_id": "C2", "event": "page_view", "ts": "2026-11-30T10:00:00+02:00",
     "email": "a@example.org", "utm_medium": "Email"},
    {"event_id": "noid", "event": "page_view", "ts": NOW - 1},
    {"event_id": "blankid", "user_id": " ", "cookie_id": "null", "event": "page_view",
     "ts": NOW - 1},
    {"event_id": "nots", "user_id": "C3", "event": "page_view"},
    {"event_id": "badts", "user_id": "C3", "event": "page_view", "ts": "yesterday"},
    {"event_id": "future", "user_id": "C3", "event": "page_view", "ts": NOW + 7 * 86400},
    {"event_id": "old", "user_id": "C3", "event": "page_view", "ts": "1970-01-02T00:00:00Z"},
    {"event_id": "notype", "user_id": "C3", "ts": NOW - 1},
    {"event_id": "nullty", "user_id": "C3", "event": "N/A", "ts": NOW - 1},
    {"event_id": "noamount", "user_id": "C3", "event": "purchase", "ts": NOW - 1},
    {"event_id": "negamount", "user_id": "C3", "event": "purchase", "ts": NOW - 1,
     "amount": -5},
    {"event_id": "badamount", "user_id": "C3", "event": "page_view", "ts": NOW - 1,
     "amount": "lots"},
    {"event_id": "badqty", "user_id": "C3", "event": "add_to_cart", "ts": NOW - 1,
     "quantity": 1.5},
    "this is not json",
    # timestamps as DuckDB reads them, and not otherwise
    {"event_id": "ts1", "user_id": "C4", "event": "page_view", "ts": "2026-11-30 10:00:00 UTC"},
    {"event_id": "ts2", "user_id": "C4", "event": "page_view", "ts": "2026-11-30T24:00:00"},
    {"event_id": "ts3", "user_id": "C4", "event": "page_view", "ts": "2026-11-3 10:00:00"},
    {"event_id": "ts4", "user_id": "C4", "event": "page_view", "ts": "2026-11-30T10:00"},
    {"event_id": "ts5", "user_id": "C4", "event": "page_view", "ts": "2026-11-30T10:00Z"},
    {"event_id": "ts6", "user_id": "C4", "event": "page_view", "ts": "20261130T100000Z"},
    {"event_id": "ts7", "user_id": "C4", "event": "page_view", "ts": "2026-W48-2"},
    {"event_id": "ts8", "user_id": "C4", "event": "page_view", "ts": "2026-11-30t10:00:00z"},
    {"event_id": "ts9", "user_id": "C4", "event": "page_view", "ts": "2026-11-30T10"},
]


def test_checker_and_ingest_agree(rt_ws: Path, tmp_path: Path) -> None:
    ws = open_workspace(rt_ws)
    checker = EventChecker(ws.config, ws.secret())
    checked = [checker.check(m, now=NOW) for m in MESSAGES]
    spool = tmp_path / "spool.jsonl"
    spool.write_text("".join(_line(c.record) for c in checked), encoding="utf-8")
    s = ingest(ws, [str(spool)], IngestOptions(source="stream", fmt="jsonl"))
    assert s.rows_read == len(MESSAGES)
    with open_engine(ws, read_only=True) as engine:
        ev = engine.table("events")
        loaded = set(engine.execute(ev.filter(ev.batch_id == s.batch_id)
                                    .select("event_id"))["event_id"])
        q = engine.table("quarantine")
        rows = engine.execute(q.filter(q.batch_id == s.batch_id).select("reason", "raw"))
    quarantined: dict[str, str] = {}
    for r in rows.itertuples():
        raw = json.loads(r.raw) if r.reason != "E_MALFORMED" else {}
        quarantined[raw.get("event_id", "<malformed>")] = str(r.reason)
    want_loaded = {c.result.event_id for c in checked if isinstance(c.result, StreamEvent)}
    want_q = {(c.result.event_id if c.result.reason != "E_MALFORMED" else "<malformed>"):
              c.result.reason for c in checked if isinstance(c.result, Rejected)}
    assert loaded == want_loaded == {"ok1", "ok2", "ok3", "ok4", "ok5", "ts1", "ts2", "ts3",
                                     "ts4"}
    assert quarantined == want_q
    assert set(want_q.values()) >= {"E_NO_ID", "E_TS_MISSING", "E_TS_PARSE", "E_TS_FUTURE",
                                    "E_TS_RANGE", "E_NO_EVENT_TYPE", "E_AMOUNT",
                                    "E_QUANTITY", "E_MALFORMED"}


def test_checked_values() -> None:
    from tribes.config import Config

    c = EventChecker(Config(), b"s" * 32)
    r = c.check(MESSAGES[1], now=NOW).result
    assert isinstance(r, StreamEvent)
    assert r.event_type == "purchase" and r.amount == 1200.5 and r.order_id == "o9"
    assert r.ts == parse_ts("2026-11-30T10:00:00Z")[0] == 1796032800.0
    r4 = c.check(MESSAGES[3], now=NOW).result
    assert isinstance(r4, StreamEvent) and r4.event_type == "purchase"  # an alias
    assert parse_ts("2026-11-30T10:00:00+02:00")[0] == 1796032800.0 - 7200
    assert parse_ts(1796032800123)[0] == 1796032800.123
    # raw ids never leave the checker: pseudonyms only
    assert all(v != "C1" and len(v) == 32 for _, v in r.ids)


def test_event_ids_without_one_are_derived_from_the_content() -> None:
    from tribes.config import Config

    c = EventChecker(Config(), b"s" * 32)
    m = {"user_id": "C1", "event": "page_view", "ts": NOW - 1}
    a, b = c.check(dict(m), now=NOW), c.check(dict(m), now=NOW)
    other = c.check({**m, "ts": NOW - 2}, now=NOW)
    assert a.result.event_id == b.result.event_id != other.result.event_id


def test_default_time_zone_and_missing_value_policy() -> None:
    from tribes.config import Config

    cfg = Config.model_validate({"ingest": {"default_tz": "Europe/Berlin"},
                                 "missing": {"events": {"channel": "drop"}}})
    c = EventChecker(cfg, b"s" * 32)
    base = {"user_id": "C1", "event": "page_view", "channel": "web"}
    r = c.check({**base, "ts": "2026-07-01 12:00:00"}, now=NOW).result
    assert isinstance(r, StreamEvent)
    assert r.ts == parse_ts("2026-07-01T10:00:00Z")[0]  # CEST is UTC+2
    r = c.check({**base, "ts": "2026-07-01T12:00:00Z"}, now=NOW).result
    assert isinstance(r, StreamEvent) and r.ts == parse_ts("2026-07-01T12:00:00Z")[0]
    r = c.check({**base, "ts": "2026-07-01T12:00:00Z", "channel": " "}, now=NOW).result
    assert isinstance(r, Rejected) and r.reason == "E_MISSING_VALUE"
