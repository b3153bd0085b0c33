"""What the stream reads from the workspace (no Redis needed)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tests.stages import settings_of
from tribes.cli import main
from tribes.realtime import reference
from tribes.store import get_run, open_engine
from tribes.workspace import open_workspace


def test_the_base_features_are_as_of_their_own_day_not_the_versions(rt_ws: Path) -> None:
    """Once tribes run refreshed the version's memberships on newer features, the
    stream's base rows are those features: their as_of, not the day of the fit."""
    ws = open_workspace(rt_ws)
    with open_engine(ws, read_only=True) as engine:
        fitted = get_run(engine, 1)["snapshot"]["as_of"]
    later = (pd.Timestamp(fitted) + pd.Timedelta(days=3)).isoformat()
    assert main(["-q", "-w", str(rt_ws), "run", "--as-of", later, "--no-monitor"]) == 0
    ref = reference.load(ws, settings_of(ws))
    assert ref.as_of == pd.Timestamp(later).timestamp() != pd.Timestamp(fitted).timestamp()
