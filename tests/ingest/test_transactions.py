"""A batch is one transaction: an error or a kill part-way leaves no trace of it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import NOW, table
from tests.stages import ingest
from tribes.ingest import IngestOptions
from tribes.ingest.loader import FAULT_ENV
from tribes.store.db import open_engine

TEXT = "ts,user_id,event,amount\n" + "".join(
    f"2026-01-0{1 + i % 9}T00:00:0{i % 10}Z,u{i},page_view,\n" for i in range(50)
) + "bad,u1,page_view,\n"

GOOD = "ts,user_id,event\n2026-02-01T00:00:00Z,v1,login\n"


def _snapshot(ws) -> dict[str, int]:
    return {name: len(table(ws, name)) for name in ("events", "quarantine", "batches")}


@pytest.mark.parametrize("step", ["staged", "loaded", "recorded"])
def test_error_mid_batch_leaves_workspace_unchanged(ws, write, monkeypatch, step) -> None:
    ingest(ws, [str(write("good.csv", GOOD))], IngestOptions(source="web", now=NOW))
    before = _snapshot(ws)
    monkeypatch.setenv(FAULT_ENV, f"{step}:raise")
    with pytest.raises(RuntimeError, match="fault injected"):
        ingest(ws, [str(write("e.csv", TEXT))], IngestOptions(source="web", now=NOW))
    monkeypatch.delenv(FAULT_ENV)
    assert _snapshot(ws) == before
    # and the same file then loads normally
    s = ingest(ws, [str(write("e.csv", TEXT))], IngestOptions(source="web", now=NOW))
    assert s.loaded == 50 and s.quarantined == {"E_TS_PARSE": 1}


@pytest.mark.parametrize("step", ["loaded", "recorded"])
def test_killed_process_leaves_no_partial_batch(ws, write, step) -> None:
    ingest(ws, [str(write("good.csv", GOOD))], IngestOptions(source="web", now=NOW))
    before = _snapshot(ws)
    path = write("e.csv", TEXT)
    env = {**os.environ, FAULT_ENV: f"{step}:kill"}
    proc = subprocess.run(
        [sys.executable, "-m", "tribes", "--workspace", str(ws.path), "ingest", str(path)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 137, proc.stderr
    spooled = list((ws.path / ".tmp" / "spool").glob("spool-*.parquet"))
    assert spooled  # the dead batch left its raw-value spool behind ...
    # reopening replays the write-ahead log: only committed batches survive
    assert _snapshot(ws) == before
    assert not any(p.exists() for p in spooled)  # ... and reopening removed it
    s = ingest(ws, [str(path)], IngestOptions(source="e", now=NOW))
    assert s.loaded == 50


def test_lock_held_by_another_process_is_a_clear_error(ws, tmp_path: Path) -> None:
    from tribes.errors import EngineError

    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ok', flush=True);"
         " time.sleep(30)", str(ws.db_path)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        started = time.monotonic()
        with pytest.raises(EngineError) as err, open_engine(ws, wait=1.0):
            pass
        assert err.value.code == "E_LOCKED" and "waited 1 s" in err.value.message
        assert time.monotonic() - started >= 1.0
    finally:
        holder.kill()
        holder.wait()
