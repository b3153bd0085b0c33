"""A small synthetic workspace with a first segment version, copied per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tribes.store.db import init_workspace
from tribes.synth import SynthConfig, generate


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A workspace with web and POS events and a first version (k = 3); the app events
    are kept back, to arrive later."""
    from tribes.cli import main

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


