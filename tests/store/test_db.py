"""Opening a workspace's database: tables, spool, shared engine, and creating a workspace."""

from __future__ import annotations

import stat
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from tribes.config import CONFIG_FILE, DEFAULT_TOML
from tribes.engine import DB_FILE, spool_dir
from tribes.privacy import audit_log
from tribes.store.db import holds_shared_engine, init_workspace, open_engine, shared_engine
from tribes.store.tables import SCHEMAS
from tribes.workspace import SECRET_FILE, Workspace, open_workspace


def _spool_file(ws: Workspace) -> Path:
    path = spool_dir(ws.path) / "spool-crashed.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"raw values of a crashed batch")
    return path


def _drop(ws: Workspace, table: str) -> None:
    with open_engine(ws) as engine:
        engine.con.drop_table(table)


def test_init_workspace_writes_config_secret_database_and_audit(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "shop")
    assert (ws.path / CONFIG_FILE).read_text(encoding="utf-8") == DEFAULT_TOML
    key = ws.path / SECRET_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(key.read_text(encoding="utf-8").strip()) == 64
    assert (ws.path / DB_FILE).exists()
    with open_engine(ws, read_only=True) as engine:
        assert set(SCHEMAS) <= set(engine.list_tables())
    recs = audit_log.read_audit(ws.path)
    assert [(r["action"], r["target"]) for r in recs] == [("init", "shop")]
    assert audit_log.verify_audit(ws.path, ws.secret()).ok


def test_init_workspace_again_keeps_the_key_and_config(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "shop")
    key = (ws.path / SECRET_FILE).read_text(encoding="utf-8")
    (ws.path / CONFIG_FILE).write_text('[prep]\nsession_timeout = "1h"\n', encoding="utf-8")
    again = init_workspace(ws.path)
    assert (ws.path / SECRET_FILE).read_text(encoding="utf-8") == key
    assert again.config.prep.session_timeout == timedelta(hours=1)
    forced = init_workspace(ws.path, force=True)
    assert forced.config.prep.session_timeout == timedelta(minutes=30)
    assert (ws.path / SECRET_FILE).read_text(encoding="utf-8") == key
    assert [r["action"] for r in audit_log.read_audit(ws.path)] == ["init"] * 3


def test_writer_creates_missing_tables_and_clears_the_spool(ws: Workspace) -> None:
    _drop(ws, "alerts")
    spooled = _spool_file(ws)
    with open_engine(ws) as engine:
        assert engine.has_table("alerts")
        assert engine.auditor is not None
    assert not spooled.exists()


def test_read_only_open_writes_nothing(ws: Workspace) -> None:
    _drop(ws, "alerts")
    spooled = _spool_file(ws)
    log = (ws.path / audit_log.LOG_FILE).read_bytes()
    db = (ws.path / DB_FILE).read_bytes()
    with open_engine(ws, read_only=True) as engine:
        assert not engine.has_table("alerts")
        assert engine.execute(engine.table("events").count()) == 0
        with pytest.raises(duckdb.Error, match="read-only"):
            engine.create_empty("alerts", SCHEMAS["alerts"])
    assert not spooled.exists()  # nobody was writing: a crashed batch's raw values go
    assert (ws.path / audit_log.LOG_FILE).read_bytes() == log
    assert (ws.path / DB_FILE).read_bytes() == db


_HOLD = """
import sys, time
from pathlib import Path
from tribes.store.writer import writing
with writing(Path(sys.argv[1]), wait=0):
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _hold(ws: Workspace, seconds: float) -> subprocess.Popen[str]:
    """Another process holding the workspace's writer lock for ``seconds``."""
    p = subprocess.Popen([sys.executable, "-c", _HOLD, str(ws.path), str(seconds)],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "holding"
    return p


def test_a_writer_waits_for_another_and_says_for_whom(ws: Workspace, cli, write,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    holder = _hold(ws, 2.0)
    started = time.monotonic()
    try:
        r = cli("-w", ws.path, "ingest", write("e.csv", "ts,user_id,event\n"
                                                "2026-01-01T00:00:00Z,u1,login\n"))
    finally:
        holder.wait(timeout=30)
    assert r.code == 0, r.err
    assert time.monotonic() - started >= 1.0  # it waited its turn, then ran
    said = caplog.text + r.err
    assert "waiting for the workspace" in said and f"pid {holder.pid}" in said


def test_a_writer_that_waits_too_long_names_the_holder(ws: Workspace) -> None:
    from tribes.errors import TribesError

    holder = _hold(ws, 30.0)
    try:
        spooled = _spool_file(ws)
        with pytest.raises(TribesError) as err, open_engine(ws, wait=0.5):
            pass
        assert err.value.code == "E_LOCKED" and f"pid {holder.pid}" in err.value.message
        # a reader takes no lock; it keeps what the writer may be staging
        with open_engine(ws, read_only=True, wait=0) as engine:
            assert engine.execute(engine.table("events").count()) == 0
        assert spooled.exists()
    finally:
        holder.kill()
        holder.wait()
    with open_engine(ws, wait=0):  # a killed holder's lock is gone with it
        pass


def test_shared_engine_is_handed_to_every_open_engine_block(ws: Workspace) -> None:
    assert not holds_shared_engine(ws)
    with shared_engine(ws) as shared:
        assert holds_shared_engine(ws)
        # the same workspace through another spelling of its path
        alias = Workspace(path=ws.path / ".." / ws.path.name, config=ws.config)
        assert holds_shared_engine(alias)
        with open_engine(ws) as a, open_engine(alias, read_only=True) as b:
            assert a is shared and b is shared
        with open_engine(ws):
            pass
        assert shared.execute(shared.table("events").count()) == 0  # still open
    assert not holds_shared_engine(ws)
    with open_engine(ws) as own:
        assert own is not shared


def test_shared_engine_serializes_the_blocks(ws: Workspace) -> None:
    inside, order = threading.Event(), []

    def other() -> None:
        inside.wait()
        with open_engine(ws):
            order.append("other")

    with shared_engine(ws):
        t = threading.Thread(target=other)
        with open_engine(ws):
            t.start()
            inside.set()
            t.join(timeout=0.3)
            order.append("first")
        t.join(timeout=10)
    assert order == ["first", "other"]



def test_commands_use_the_workspace_while_a_service_waits_for_requests(
        ws: Workspace) -> None:
    """A process sharing one engine (tribes serve) hands the workspace over when idle:
    another process reads (tribes status) and writes (tribes ingest) meanwhile, and the
    service's next block opens it again."""
    cfg = (ws.path / "tribes.toml").read_text()
    (ws.path / "tribes.toml").write_text(cfg.replace('lock_wait = "2m"', 'lock_wait = "20s"'))
    ws = open_workspace(ws.path)
    src = ws.path.parent / "e.csv"
    src.write_text("ts,user_id,event\n2026-01-01T00:00:00Z,u1,page_view\n")

    def tribes(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tribes", "-w", str(ws.path), *args],
                              capture_output=True, text=True, timeout=120)

    with shared_engine(ws, idle=0.3):
        with open_engine(ws) as engine:  # a request
            assert engine.execute(engine.table("events").count()) == 0
        r = tribes("status", "--json")
        assert r.returncode == 0, r.stderr
        r = tribes("ingest", str(src), "--json")
        assert r.returncode == 0, r.stderr
        with open_engine(ws) as engine:  # the next request sees what the CLI wrote
            assert engine.execute(engine.table("events").count()) == 1
