"""Encryption at rest: the database file holds no plaintext, and opens only with its key."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.conftest import NOW
from tests.stages import ingest
from tribes.engine import DB_KEY_ENV, DB_KEY_FILE
from tribes.errors import EngineError, WorkspaceError
from tribes.ingest import IngestOptions
from tribes.privacy.pseudonyms import pseudonym
from tribes.store.db import init_workspace, open_engine
from tribes.workspace import open_workspace

MARKER = "plaintext-marker-7f3a9c"
CSV = "ts,user_id,event,page\n" + "".join(
    f"2026-03-01T10:{i % 60:02d}:00Z,u{i},page_view,/{MARKER}/{i}\n" for i in range(3000))


def _uncompressed(path: Path) -> None:
    # no compression: a stored string would otherwise show byte for byte (the control)
    with (path / "tribes.toml").open("a") as fh:
        fh.write('\n[engine.duckdb]\nforce_compression = "uncompressed"\n')


def _file_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.glob("tribes.duckdb*"))


@pytest.mark.parametrize("encrypt", [False, True])
def test_database_file_holds_no_plaintext_when_encrypted(tmp_path: Path, write,
                                                          encrypt: bool) -> None:
    path = tmp_path / "ws"
    init_workspace(path, encrypt=encrypt)
    _uncompressed(path)
    ws = open_workspace(path)
    s = ingest(ws, [str(write("web.csv", CSV))], IngestOptions(source="web", now=NOW))
    assert s.loaded == 3000
    with open_engine(ws) as engine:
        engine.checkpoint()
        n = engine.scalar(engine.table("events").properties.contains(MARKER).sum())
        assert int(n) == 3000  # readable through tribes either way
    blob = _file_bytes(path)
    assert len(blob) > 100_000
    pid = pseudonym("u7", ws.secret()).encode()
    if encrypt:
        assert MARKER.encode() not in blob and pid not in blob
        assert not list((path / ".tmp").rglob("*.parquet"))  # nothing spooled in the clear
    else:
        assert MARKER.encode() in blob and pid in blob  # the check can see plaintext


def test_key_file_env_override_and_wrong_key(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "ws"
    ws = init_workspace(path, encrypt=True)
    key_file = path / DB_KEY_FILE
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert ws.config.engine.encrypted
    assert "db.key" in (path / ".gitignore").read_text(encoding="utf-8")
    key = key_file.read_text(encoding="utf-8").strip()
    # the key can live in the secret store only
    key_file.unlink()
    with pytest.raises(EngineError) as missing, open_engine(open_workspace(path)):
        pass
    assert missing.value.code == "E_DB_KEY"
    monkeypatch.setenv(DB_KEY_ENV, key)
    with open_engine(open_workspace(path)) as engine:
        assert engine.encrypted and engine.has_table("events")
    monkeypatch.setenv(DB_KEY_ENV, "0" * 64)
    with pytest.raises(EngineError) as wrong, open_engine(open_workspace(path)):
        pass
    assert wrong.value.code == "E_DB_KEY"


def test_an_unencrypted_workspace_is_not_encrypted_afterwards(tmp_path: Path) -> None:
    init_workspace(tmp_path / "ws")
    with pytest.raises(WorkspaceError):
        init_workspace(tmp_path / "ws", encrypt=True)


def test_cli_init_encrypt(cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(DB_KEY_ENV, "a" * 64)
    r = cli("init", tmp_path / "shop", "--encrypt", "--json")
    assert r.code == 0
    body = r.json()
    assert body["encrypted"] is True and body["db_key"] is None  # the env key, not a file
    assert not (tmp_path / "shop" / DB_KEY_FILE).exists()
    assert cli("--workspace", tmp_path / "shop", "status").code == 0
