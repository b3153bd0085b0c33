"""Shared fixtures: isolated workspaces, small input files, running the CLI in-process."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tribes.cli import main
from tribes.store.db import init_workspace, open_engine
from tribes.synth import SynthConfig, generate
from tribes.workspace import Workspace

# a fixed "now" so future/range checks do not depend on the day the tests run
NOW = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRIBES_SECRET", raising=False)
    monkeypatch.delenv("TRIBES_WORKSPACE", raising=False)
    monkeypatch.delenv("TRIBES_FAULT_AT", raising=False)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return init_workspace(tmp_path / "ws")


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """Write text (or bytes) to a file under tmp_path and return its path."""

    def _write(name: str, content: str | bytes, encoding: str = "utf-8") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding=encoding)
        return path

    return _write


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def json(self) -> Any:
        return json.loads(self.out.strip().splitlines()[-1])


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``tribes`` in-process: cli("--workspace", p, "status", "--json")."""

    def _run(*args: str | Path) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return _run


def table(ws: Workspace, name: str) -> Any:
    """A whole workspace table as a pandas DataFrame."""
    with open_engine(ws) as engine:
        return engine.execute(engine.table(name))


def shared_data(relative: str) -> Path:
    """A reference data file of the project's shared folder (``shared/data/...``).

    Looked up in ``$TRIBES_SHARED_DATA``, then in ``shared/data`` next to this checkout
    and next to the checkout it was cloned from. Missing, the test fails under CI=true
    (the data is part of the test) and is skipped elsewhere.
    """
    import os
    import subprocess

    root = Path(__file__).resolve().parents[1]
    bases = [Path(os.environ["TRIBES_SHARED_DATA"])] if os.environ.get(
        "TRIBES_SHARED_DATA") else []
    bases.append(root.parent / "shared" / "data")
    try:
        origin = subprocess.run(["git", "-C", str(root), "remote", "get-url", "origin"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        origin = ""
    if origin and Path(origin).exists():
        bases.append(Path(origin).resolve().parent / "shared" / "data")
    for base in bases:
        if (base / relative).exists():
            return base / relative
    message = (f"reference data {relative} not found in {', '.join(map(str, bases))}; "
               "set TRIBES_SHARED_DATA to the shared/data folder")
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


# a small synthetic workspace with a first segment version, copied per test (monitor,
# ops, activate, A/B)
@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A workspace with web and POS events and a first version (k = 3); the app events
    are kept back, to arrive later."""
    root = tmp_path_factory.mktemp("pipeline")
    data = root / "data"
    generate(SynthConfig(out=data, customers=150, days=60, seed=8))
    ws = root / "shop"
    init_workspace(ws)
    w = ["-q", "--workspace", str(ws)]
    for args in (["ingest", str(data / "web"), "--source", "web"],
                 ["ingest", str(data / "purchases.parquet"), "--source", "pos",
                  "--event-type", "purchase", "--map", "ts=sold_at,customer_id=member_no"],
                 ["run"], ["segment", "--k", "3"]):
        assert main([*w, *args]) == 0, args
    return ws, data


@pytest.fixture
def shop(built: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    ws, data = built
    copy = tmp_path / "shop"
    shutil.copytree(ws, copy)
    return copy, data


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    got: list[Received] = field(default_factory=list)
    failing: set[str] = field(default_factory=lambda: {"/fail"})  # paths answered 500


@pytest.fixture
def webhook_receiver() -> Iterator[Receiver]:
    """A webhook receiver on a loopback port that keeps every request; a POST to
    ``<url>/fail`` is answered 500 (``failing`` says which paths), any other 200."""
    rec = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            rec.got.append(Received(self.path, dict(self.headers), body))
            self.send_response(500 if self.path in rec.failing else 200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield rec
    server.shutdown()
