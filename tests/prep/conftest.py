"""Fixtures shared by the prep tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tribes.engine import Engine, connect


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    """An in-memory engine, no workspace: stitching and sessions on hand-written rows."""
    eng = connect(None)
    yield eng
    eng.close()
