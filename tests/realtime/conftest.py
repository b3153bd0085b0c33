"""A real redis-server on a loopback port, and a small segmented workspace.

Redis is part of these tests: missing (no redis-server, no redis client), they fail
under CI=true and are skipped elsewhere.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tribes.cli import main
from tribes.store.db import init_workspace
from tribes.synth import SynthConfig, generate


def _missing(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why} (required under CI=true)")
    pytest.skip(why)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RedisServer:
    port: int
    url: str
    proc: subprocess.Popen[bytes]

    def client(self) -> Any:
        import redis

        return redis.Redis(port=self.port, decode_responses=True)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    exe = shutil.which("redis-server")
    if exe is None:
        _missing("redis-server is not installed (apt-get install redis-server)")
    try:
        import redis
    except ImportError:
        _missing("the redis client is not installed (pip install 'tribes[stream]')")
    port = free_port()
    d = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([str(exe), "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", str(d)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("redis-server did not start")
    yield RedisServer(port, f"redis://127.0.0.1:{port}/0", proc)
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The server, emptied for each test."""
    redis_server.client().flushall()
    return redis_server.url


def tribes(*args: str | Path) -> str:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = main([str(a) for a in args])
    assert code == 0, (args, out.getvalue()[-2000:])
    return out.getvalue()


@pytest.fixture(scope="session")
def built_rt_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("realtime")
    data = root / "data"
    generate(SynthConfig(out=data, customers=150, days=60, seed=8))
    path = root / "shop"
    init_workspace(path)
    w = ("-q", "--workspace", path)
    tribes(*w, "ingest", data / "web", "--source", "web")
    tribes(*w, "ingest", data / "purchases.parquet", "--source", "pos", "--event-type",
           "purchase", "--map", "ts=sold_at,customer_id=member_no")
    tribes(*w, "run")
    tribes(*w, "segment", "--k", "4")
    tribes(*w, "personas")
    tribes(*w, "clv", "fit")
    tribes(*w, "clv", "score")
    return path


@pytest.fixture
def rt_ws(built_rt_ws: Path, tmp_path: Path) -> Path:
    """A private copy per test."""
    path = tmp_path / "shop"
    shutil.copytree(built_rt_ws, path)
    return path


def set_config(path: Path, text: str) -> None:
    """Append TOML (sections not yet in the file) to the workspace's tribes.toml."""
    cfg = path / "tribes.toml"
    cfg.write_text(cfg.read_text(encoding="utf-8") + "\n" + text, encoding="utf-8")
