"""Data-quality checks on every ingest: volume, quarantine rate, null rates and schema
against the source's recent batches; alerts raised once, clean batches raise nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.conftest import CliResult
from tribes.store.db import init_workspace

HEADER = "event_id,user_id,event,timestamp,product_id,amount"


def batch(write: Callable[..., Path], name: str, n: int, start: int, *,
          bad_ts: int = 0, no_product: bool = False, header: str = HEADER) -> Path:
    rows = [header]
    for i in range(start, start + n):
        ts = "not a time" if i - start < bad_ts else f"2026-05-{1 + i % 28:02d}T10:{i % 60:02d}:00Z"
        product = "" if no_product else f"P{i % 7}"
        kind = "purchase" if i % 5 == 0 else "page_view"
        amount = "12.5" if kind == "purchase" else ""
        rows.append(f"e{i},U{i % 40},{kind},{ts},{product},{amount}")
    return write(name, "\n".join(rows) + "\n")


def ingest(cli: Callable[..., CliResult], ws: Path, path: Path) -> dict:
    r = cli("-w", ws, "ingest", path, "--source", "web", "--json")
    assert r.code == 0, r.err
    return r.json()


def kinds(summary: dict) -> list[str]:
    return sorted(a["kind"] for a in summary["alerts"])


def test_batches_are_checked_against_the_source_history(
        tmp_path: Path, write: Callable[..., Path], cli: Callable[..., CliResult]) -> None:
    ws = init_workspace(tmp_path / "ws").path
    start = 0
    for i in range(3):  # a steady history: no alert
        s = ingest(cli, ws, batch(write, f"b{i}.csv", 300, start))
        start += 300
        assert s["alerts"] == [], s["alerts"]
    # a tenth of the usual volume
    small = ingest(cli, ws, batch(write, "small.csv", 30, start))
    start += 30
    assert kinds(small) == ["dq.volume"]
    a = small["alerts"][0]
    assert a["subject"] == "events from web" and a["value"] < 1 / 3
    # a third of the rows quarantined (bad timestamps)
    bad = ingest(cli, ws, batch(write, "bad.csv", 300, start, bad_ts=100))
    start += 300
    assert kinds(bad) == ["dq.quarantine"]
    assert bad["alerts"][0]["severity"] == "critical"  # 33% >= 4 x 5%
    assert "E_TS_PARSE" in bad["alerts"][0]["message"]
    # product ids empty on every row
    empty = ingest(cli, ws, batch(write, "empty.csv", 300, start, no_product=True))
    start += 300
    assert kinds(empty) == ["dq.nulls"]
    assert empty["alerts"][0]["subject"] == "events from web: product_id"
    # the timestamp column renamed, the product column gone
    renamed = ingest(cli, ws, batch(write, "renamed.csv", 300, start,
                                    header="event_id,user_id,event,event_time,colour,amount"))
    assert "dq.schema" in kinds(renamed)
    schema = next(a for a in renamed["alerts"] if a["kind"] == "dq.schema")
    assert "ts now from 'event_time' (was 'timestamp')" in schema["message"]
    assert "product_id" in schema["detail"]["lost"]
    listed = cli("-w", ws, "alerts", "list", "--kind", "dq", "--json").json()["alerts"]
    assert {a["kind"] for a in listed} == {"dq.volume", "dq.quarantine", "dq.nulls",
                                           "dq.schema"}


def test_an_open_alert_is_not_raised_again_and_micro_batches_keep_no_volume(
        tmp_path: Path, write: Callable[..., Path], cli: Callable[..., CliResult]) -> None:
    from tests.stages import ingest_checked
    from tribes.ingest.loader import IngestOptions
    from tribes.workspace import open_workspace

    ws = init_workspace(tmp_path / "ws").path
    for i in range(3):
        ingest(cli, ws, batch(write, f"b{i}.csv", 300, i * 300))
    first = ingest(cli, ws, batch(write, "q1.csv", 100, 900, bad_ts=50))
    second = ingest(cli, ws, batch(write, "q2.csv", 100, 1000, bad_ts=50))
    assert "dq.quarantine" in kinds(first) and "dq.quarantine" not in kinds(second)
    # the stream's and the API's micro-batches: their size is not judged
    tiny = batch(write, "tiny.jsonl.csv", 5, 2000)
    s = ingest_checked(open_workspace(ws), [str(tiny)],
                       IngestOptions(source="web", check_volume=False)).summary
    assert "dq.volume" not in [a["kind"] for a in s.alerts]


def test_an_alert_is_shown_once_by_the_ingest_and_listed_by_status(cli, tmp_path: Path
                                                                   ) -> None:
    ws = tmp_path / "ws"
    assert cli("init", ws).code == 0
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("ts,user_id,event,channel\n" + "".join(
        f"2026-01-{1 + i % 28:02d}T10:00:00Z,u{i},page_view,email\n" for i in range(60)))
    b.write_text("ts,user_id,event\n" + "".join(
        f"2026-02-{1 + i % 28:02d}T10:00:00Z,u{i},page_view\n" for i in range(60)))
    assert cli("-w", ws, "ingest", a, "--source", "web").code == 0
    r = cli("-w", ws, "ingest", b, "--source", "web")
    text = " ".join((r.out + r.err).split())
    assert text.count("dq.schema") == 1, text
    r = cli("-w", ws, "prep")
    assert "dq.schema" not in r.out + r.err
    r = cli("-w", ws, "status")
    assert "Open alerts" in r.out and "dq.schema" in r.out
    st = cli("-w", ws, "status", "--json").json()
    assert {a["kind"] for a in st["open_alerts"]} >= {"dq.schema"}
