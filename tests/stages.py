"""The stages driven as the edges drive them: the run's settings resolved from the
workspace's configuration (and options), one :class:`~tribes.workspace.RunContext` per
call. Tests that hold a workspace and an engine build the context with :func:`context`;
:func:`ingest`, :func:`ingest_checked` and :func:`replay` open the engine themselves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tribes.engine import Engine
from tribes.ingest import IngestOptions, IngestSummary
from tribes.ingest import ingest as _ingest
from tribes.ingest.replay import ReplayResult
from tribes.ingest.replay import replay_quarantined as _replay
from tribes.ops.checked_ingest import CheckedIngest
from tribes.ops.checked_ingest import ingest_checked as _ingest_checked
from tribes.settings import RunSettings
from tribes.store.db import open_run
from tribes.workspace import RunContext, Workspace


def settings_of(ws: Workspace, **options: Any) -> RunSettings:
    return RunSettings.resolve(ws.config, **options)


def context(ws: Workspace, engine: Engine, settings: RunSettings | None = None
            ) -> RunContext:
    return RunContext(ws, engine, settings or settings_of(ws))


def ingest(ws: Workspace, inputs: list[str], opts: IngestOptions,
           progress: Callable[[str], None] | None = None) -> IngestSummary:
    with open_run(ws, settings_of(ws)) as ctx:
        return _ingest(ctx, inputs, opts, progress=progress)


def ingest_checked(ws: Workspace, inputs: list[str], opts: IngestOptions,
                   **kw: Any) -> CheckedIngest:
    return _ingest_checked(ws, settings_of(ws), inputs, opts, **kw)


def replay(ws: Workspace, opts: IngestOptions, **kw: Any) -> ReplayResult:
    with open_run(ws, settings_of(ws)) as ctx:
        return _replay(ctx, opts, **kw)
