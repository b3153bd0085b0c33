"""What stays on disk: a workspace is its owner's alone, staged inputs never outlive
their batch, and an encrypted workspace keeps no raw value in a plain file, even when
the process is killed mid-batch."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tribes.ingest.loader import FAULT_ENV
from tribes.privacy.keys import create_key
from tribes.store.db import init_workspace

TRIBES = str(Path(sys.executable).parent / "tribes")
EMAIL = "marker.person-4711@example.org"
RAW_ID = "RAWID-MARKER-0815"


def _loose(path: Path) -> list[str]:
    """Files and folders under ``path`` (itself included) that others may read."""
    found = []
    for p in [path, *path.rglob("*")]:
        if p.is_symlink():
            continue
        if stat.S_IMODE(p.stat().st_mode) & 0o077:
            found.append(f"{p.relative_to(path.parent)} {oct(stat.S_IMODE(p.stat().st_mode))}")
    return found


def _holding(path: Path, *markers: str) -> list[str]:
    """Files under ``path`` whose bytes hold one of the markers."""
    needles = [m.encode() for m in markers]
    return [str(p.relative_to(path)) for p in path.rglob("*")
            if p.is_file() and any(n in p.read_bytes() for n in needles)]


def test_the_workspace_is_private_to_its_owner(cli, tmp_path: Path, write) -> None:
    src = write("e.csv", "ts,user_id,event\n2026-01-01T00:00:00Z,u1,page_view\n")
    ws = tmp_path / "shop"
    assert cli("init", ws).code == 0
    assert cli("-w", ws, "ingest", src).code == 0
    assert cli("-w", ws, "report", "--out", ws / "reports" / "r.html").code == 0
    assert stat.S_IMODE(ws.stat().st_mode) == 0o700
    assert _loose(ws) == []
    for name in ("tribes.toml", "audit.log", "tribes.duckdb", "secret.key"):
        assert stat.S_IMODE((ws / name).stat().st_mode) == 0o600, name


def test_a_workspace_made_before_is_closed_at_the_next_write(tmp_path: Path, write) -> None:
    ws = init_workspace(tmp_path / "shop")
    ws.path.chmod(0o755)
    (ws.path / "tribes.duckdb").chmod(0o644)
    (ws.path / "audit.log").chmod(0o644)
    from tribes.store.db import open_engine

    with open_engine(ws):
        pass
    assert stat.S_IMODE(ws.path.stat().st_mode) == 0o700
    assert stat.S_IMODE((ws.path / "tribes.duckdb").stat().st_mode) == 0o600
    assert stat.S_IMODE((ws.path / "audit.log").stat().st_mode) == 0o600


def test_any_command_clears_what_a_crashed_batch_staged(cli, tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "shop").path
    left = [ws / ".tmp" / "api" / "events-1a2b.jsonl", ws / ".tmp" / "spool" / "spool-x.txt",
            ws / ".tmp" / "staged" / "staged-1.txt",
            ws / ".tmp" / "stream" / "closed-c1.mapped.jsonl"]
    for f in left:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps({"email": EMAIL}) + "\n")
    kept = ws / ".tmp" / "stream" / "closed-c1-1-2-3.jsonl"  # streamed, not yet landed
    kept.write_text(json.dumps({"user_id": "u1"}) + "\n")
    assert cli("-w", ws, "status").code == 0
    assert [f for f in left if f.exists()] == []
    assert kept.exists()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(ws: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = _port()
    proc = subprocess.Popen([TRIBES, "-q", "--workspace", str(ws), "serve", "--port",
                             str(port), "--no-schedule"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        try:
            httpx.get(url + "/v1/health", timeout=2)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"tribes serve did not start: {proc.stderr.read() if proc.stderr else ''}")


@pytest.mark.parametrize("encrypt", [True, False])
def test_a_service_killed_mid_ingest_leaves_no_raw_value_on_disk(tmp_path: Path,
                                                                 encrypt: bool) -> None:
    ws = init_workspace(tmp_path / "shop", encrypt=encrypt)
    admin = create_key(ws.path, name="a", role="admin")[0]
    env = {**os.environ, "TRIBES_REDIS_URL": "redis://127.0.0.1:1/0"}
    proc, url = _serve(ws.path, {**env, FAULT_ENV: "staged:kill"})
    events = [{"user_id": f"{RAW_ID}-{i}", "event": "page_view", "email": EMAIL,
               "ts": f"2026-01-01T00:00:{i % 60:02d}Z"} for i in range(2000)]
    try:
        with pytest.raises(httpx.HTTPError):  # the process dies while it ingests
            httpx.post(url + "/v1/events", json={"events": events, "source": "api"},
                       headers={"Authorization": f"Bearer {admin}"}, timeout=60)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 137
    if encrypt:  # nothing at all: the batch was in memory, the spill encrypted
        assert _holding(ws.path, EMAIL, RAW_ID) == []
    # the service starting again clears what the killed batch staged
    proc, url = _serve(ws.path, env)
    try:
        assert _holding(ws.path, EMAIL, RAW_ID) == []
        r = httpx.post(url + "/v1/events", json={"events": events[:10], "source": "api"},
                       headers={"Authorization": f"Bearer {admin}"}, timeout=60)
        assert r.status_code == 200 and r.json()["loaded"] == 10
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert _loose(ws.path) == []
    if encrypt:
        assert _holding(ws.path, EMAIL, RAW_ID) == []


@pytest.mark.parametrize("encrypt", [True, False])
def test_a_file_that_needs_a_copy_is_copied_in_memory_when_encrypted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encrypt: bool) -> None:
    from tests.stages import ingest
    from tribes.ingest import IngestOptions, textfiles

    ws = init_workspace(tmp_path / "shop", encrypt=encrypt)
    seen: list[Path] = []
    real = textfiles.write_copy

    def spy(src: Path, dest: Path, **kw: bool) -> None:
        real(src, dest, **kw)
        seen.append(dest)
        assert RAW_ID.encode() in dest.read_bytes()  # the copy holds raw values

    monkeypatch.setattr(textfiles, "write_copy", spy)
    src = tmp_path / "mixed.csv"  # mixed line endings: read through an even copy
    src.write_bytes(f"ts,user_id,email,event\r\n2026-01-01T00:00:00Z,{RAW_ID},{EMAIL},a\n"
                    f"2026-01-02T00:00:00Z,u2,x@example.org,b\r\n".encode())
    s = ingest(ws, [str(src)], IngestOptions(source="web"))
    assert s.loaded == 2 and seen
    if encrypt:  # in memory, never under the workspace nor on a disk
        assert all(p.parent.parent == textfiles.MEMORY_FS for p in seen), seen
        assert not any(p.parent.exists() for p in seen)
    else:
        assert all(ws.path in p.parents for p in seen)
    assert not any(p.exists() for p in seen)
    assert _holding(ws.path, RAW_ID, EMAIL) == []
