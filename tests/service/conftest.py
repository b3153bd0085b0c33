"""A small segmented workspace and one API key per role, shared by the service tests."""

from __future__ import annotations

import contextlib
import io
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tribes.cli import main
from tribes.privacy.keys import create_key
from tribes.store.db import init_workspace
from tribes.synth import SynthConfig, generate


@dataclass
class Built:
    path: Path
    data: Path
    keys: dict[str, str]


def tribes(*args: str | Path) -> None:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = main([str(a) for a in args])
    assert code == 0, (args, out.getvalue()[-2000:])


@pytest.fixture(scope="session")
def built_service_ws(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("service")
    data = root / "data"
    generate(SynthConfig(out=data, customers=150, days=60, seed=8))
    path = root / "shop"
    init_workspace(path)
    w = ("-q", "--workspace", path)
    tribes(*w, "ingest", data / "web", "--source", "web")
    tribes(*w, "ingest", data / "purchases.parquet", "--source", "pos", "--event-type",
           "purchase", "--map", "ts=sold_at,customer_id=member_no")
    tribes(*w, "ingest", data / "customers.csv", "--kind", "customers")
    tribes(*w, "run")
    tribes(*w, "segment", "--k", "3")
    tribes(*w, "segment", "--k", "4")
    tribes(*w, "personas")
    tribes(*w, "clv", "fit")
    tribes(*w, "clv", "score")
    tribes(*w, "monitor")
    keys = {role: create_key(path, name=f"test-{role}", role=role)[0]
            for role in ("viewer", "analyst", "admin")}
    return Built(path=path, data=data, keys=keys)


@pytest.fixture
def service_ws(built_service_ws: Built, tmp_path: Path) -> Built:
    """A private copy per test: tests change data (ingest, erasure, activation)."""
    path = tmp_path / "shop"
    shutil.copytree(built_service_ws.path, path)
    return Built(path=path, data=built_service_ws.data, keys=built_service_ws.keys)


@pytest.fixture(autouse=True)
def _no_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    """No real-time state here (port 1 refuses at once): a Redis the machine happens to
    run must not change what these tests see (tests/realtime covers it)."""
    monkeypatch.setenv("TRIBES_REDIS_URL", "redis://127.0.0.1:1/0")
