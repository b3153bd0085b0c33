"""Opening a workspace's database: engine lifecycle, its tables, and its audit hook.

Every stage opens the database with :func:`open_engine`. A long-running process (``tribes
serve``) keeps one engine open with :func:`shared_engine`; inside it, every
:func:`open_engine` block gets that engine, one block at a time.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from tribes.engine import Engine, connect
from tribes.engine.io import clear_staging
from tribes.privacy.audit import audit
from tribes.store.tables import ensure_tables
from tribes.workspace import Workspace, create_files, make_private

_shared: dict[Path, tuple[Engine, threading.RLock]] = {}


@contextlib.contextmanager
def open_engine(ws: Workspace, *, read_only: bool = False) -> Iterator[Engine]:
    """Open the workspace database for the duration of the block.

    Opening clears what a crashed batch staged (it holds raw values); a writer also keeps
    the workspace private (:func:`tribes.workspace.make_private`) and creates any missing
    table. Every change the engine records goes to the workspace's audit log.
    """
    shared = _shared.get(ws.path.resolve())
    if shared is not None:
        eng, lock = shared
        with lock:
            yield eng
        return
    eng = connect(ws.path, ws.config.engine, read_only=read_only)
    eng.auditor = partial(audit, ws)
    try:
        _after_open(ws, eng, read_only=read_only)
        yield eng
    finally:
        eng.close()


def _after_open(ws: Workspace, eng: Engine, *, read_only: bool) -> None:
    # whoever holds the database open knows no other process is running a batch (DuckDB
    # keeps writers and readers of other processes out): what a crashed one staged (raw
    # values) goes
    clear_staging(ws.path)
    if not read_only:
        make_private(ws.path)  # the database file, made by the engine with its own mode
        ensure_tables(eng)


@contextlib.contextmanager
def shared_engine(ws: Workspace) -> Iterator[Engine]:
    """Keep one engine open for the whole process (a long-running service) and hand it to
    every :func:`open_engine` block, serialized by a lock."""
    eng = connect(ws.path, ws.config.engine)
    eng.auditor = partial(audit, ws)
    _after_open(ws, eng, read_only=False)
    key = ws.path.resolve()
    _shared[key] = (eng, threading.RLock())
    try:
        yield eng
    finally:
        _shared.pop(key, None)
        eng.close()


def holds_shared_engine(ws: Workspace) -> bool:
    """Whether this process holds the workspace's database open (``tribes serve``)."""
    return ws.path.resolve() in _shared


def init_workspace(path: Path, *, force: bool = False, encrypt: bool = False) -> Workspace:
    """Create a workspace: its files (see :func:`tribes.workspace.create_files`), its
    database with every table, and the first audit record.

    An existing workspace is left as it is (its key is never replaced) unless ``force``
    rewrites the configuration file.
    """
    ws = create_files(path, force=force, encrypt=encrypt)
    with open_engine(ws):
        pass
    audit(ws, "init", target=str(path.name))
    return ws
