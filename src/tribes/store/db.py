"""Opening a workspace's database: engine lifecycle, its tables, and its audit hook.

Every stage opens the database with :func:`open_engine`. A long-running process (``tribes
serve``) keeps one engine open with :func:`shared_engine`; inside it, every
:func:`open_engine` block gets that engine, one block at a time.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import ibis

from tribes.engine import Engine, clear_staging, connect
from tribes.errors import EngineError
from tribes.privacy import Anchor, audit, current_anchor
from tribes.settings import RunSettings
from tribes.store.tables import AUDIT_ANCHOR, ensure_tables
from tribes.store.writer import holder, unless_writing, writing
from tribes.workspace import RunContext, Workspace, create_files, make_private

log = logging.getLogger(__name__)
ANCHOR = "audit_anchor"


class _Shared:
    """The engine a long-running process (``tribes serve``) keeps for its blocks.

    It is opened when a block needs it and closed, with the writer lock released, once
    no block has used it for ``idle`` seconds, so that other commands (``tribes status``,
    a CLI ingest) can use the workspace while the service waits for requests. Blocks run
    one at a time under ``lock``.
    """

    def __init__(self, ws: Workspace, idle: float) -> None:
        self.ws, self.idle = ws, idle
        self.lock = threading.RLock()
        self.engine: Engine | None = None
        self._stack: contextlib.ExitStack | None = None
        self._depth = 0
        self._last = time.monotonic()
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap, name="tribes-release", daemon=True)

    def acquire(self) -> Engine:
        """The open engine (opened now if it was released); call with ``lock`` held."""
        if self.engine is None:
            stack = contextlib.ExitStack()
            try:
                first = stack.enter_context(writing(self.ws.path, wait=lock_wait(self.ws)))
                eng = _connect(self.ws, read_only=False, wait=lock_wait(self.ws))
                stack.callback(eng.close)
                eng.auditor = partial(audit, self.ws)
                _after_open(self.ws, eng, read_only=False, first=first)
            except BaseException:
                stack.close()
                raise
            self.engine, self._stack = eng, stack
        self._depth += 1
        return self.engine

    def release(self) -> None:
        self._depth -= 1
        self._last = time.monotonic()

    def close(self) -> None:
        """Close the engine and release the writer lock (it reopens at the next block)."""
        with self.lock:
            if self._stack is not None:
                self._stack.close()
            self.engine, self._stack = None, None

    def _reap(self) -> None:
        while not self._stop.wait(min(0.25, self.idle / 2)):
            with self.lock:
                idle = time.monotonic() - self._last
                if self.engine is not None and self._depth == 0 and idle >= self.idle:
                    log.debug("releasing the workspace database after %.1f s idle", idle)
                    self.close()

    def start(self) -> None:
        self._reaper.start()

    def stop(self) -> None:
        self._stop.set()
        self._reaper.join(timeout=5)
        self.close()


_shared: dict[Path, _Shared] = {}


@contextlib.contextmanager
def open_engine(ws: Workspace, *, read_only: bool = False,
                wait: float | None = None) -> Iterator[Engine]:
    """Open the workspace database for the duration of the block.

    A writer holds the workspace's writer lock (:mod:`tribes.store.writer`) for the
    block; while another process writes, opening waits up to ``wait`` seconds (default
    ``engine.lock_wait``), saying who it waits for, then fails with ``E_LOCKED``.
    Readers take no lock (DuckDB still keeps them out while another process writes:
    they wait the same way). What a crashed batch staged (raw values) is cleared once
    nobody writes; a writer also keeps the workspace private
    (:func:`tribes.workspace.make_private`), creates any missing table and anchors the
    audit log. Every change the engine records goes to the workspace's audit log.
    """
    shared = _shared.get(ws.path.resolve())
    if shared is not None:
        with shared.lock:
            eng = shared.acquire()
            try:
                yield eng
            finally:
                shared.release()
        return
    wait = lock_wait(ws) if wait is None else wait
    with contextlib.ExitStack() as stack:
        first = False
        if not read_only:
            first = stack.enter_context(writing(ws.path, wait=wait))
        eng = _connect(ws, read_only=read_only, wait=wait)
        stack.callback(eng.close)
        eng.auditor = partial(audit, ws)
        _after_open(ws, eng, read_only=read_only, first=first)
        yield eng


@contextlib.contextmanager
def open_run(ws: Workspace, settings: RunSettings, *, read_only: bool = False,
             wait: float | None = None) -> Iterator[RunContext]:
    """:func:`open_engine` for a stage: the block gets the :class:`RunContext` of
    ``ws``, the open engine and ``settings``."""
    with open_engine(ws, read_only=read_only, wait=wait) as engine:
        yield RunContext(ws, engine, settings)


def lock_wait(ws: Workspace) -> float:
    return ws.config.engine.lock_wait.total_seconds()


def _connect(ws: Workspace, *, read_only: bool, wait: float) -> Engine:
    """Connect, waiting up to ``wait`` seconds while another process has the database
    (DuckDB lets one process write, or several read)."""
    deadline = time.monotonic() + wait
    told = False
    while True:
        try:
            return connect(ws.path, ws.config.engine, read_only=read_only)
        except EngineError as exc:
            if exc.code != "E_LOCKED":
                raise
            if time.monotonic() >= deadline:
                raise EngineError(f"the workspace database is in use by {holder(ws.path)}; "
                                  f"waited {wait:.0f} s (engine.lock_wait). Try again when "
                                  "it is done", code="E_LOCKED") from None
            if not told:
                log.warning("waiting for the workspace database: %s has it open (at most "
                            "%.0f s)", holder(ws.path), wait)
                told = True
            time.sleep(0.2)


def _after_open(ws: Workspace, eng: Engine, *, read_only: bool, first: bool) -> None:
    if first:
        clear_staging(ws.path)  # this process now writes, alone: crashed batches' staging
    elif read_only:
        with unless_writing(ws.path) as nobody:
            if nobody:
                clear_staging(ws.path)
    if not read_only:
        make_private(ws.path)  # the database file, made by the engine with its own mode
        ensure_tables(eng)
        update_anchor(ws, eng)


def read_anchor(eng: Engine) -> Anchor | None:
    """The audit log's anchor the database keeps (None: none)."""
    if not eng.has_table(ANCHOR):
        return None
    rows = eng.execute(eng.table(ANCHOR)).to_dict("records")
    return Anchor(int(rows[0]["seq"]), str(rows[0]["hash"]), str(rows[0]["mac"])) \
        if rows else None


def update_anchor(ws: Workspace, eng: Engine) -> None:
    """Anchor the audit log's last record in the database (when it moved on)."""
    now = current_anchor(ws.path, ws.secret())
    kept = read_anchor(eng)
    if kept is not None and kept.seq >= now.seq:
        return
    row = {"seq": now.seq, "hash": now.hash, "mac": now.mac,
           "anchored_at": datetime.now(UTC)}
    eng.replace_table(ANCHOR, ibis.memtable([row], schema=AUDIT_ANCHOR))


@contextlib.contextmanager
def shared_engine(ws: Workspace, *, idle: float | None = None) -> Iterator[Engine]:
    """Share one engine among the whole process's :func:`open_engine` blocks (a
    long-running service), one block at a time. It is open when the block starts; after
    ``idle`` seconds without a block (default ``service.release_after``) it is closed and
    the writer lock released, so that CLI commands work on the workspace meanwhile, and
    the next block opens it again. Yields the engine as first opened."""
    if idle is None:
        idle = ws.config.service.release_after.total_seconds()
    shared = _Shared(ws, idle)
    with shared.lock:
        eng = shared.acquire()
        shared.release()
    key = ws.path.resolve()
    _shared[key] = shared
    shared.start()
    try:
        yield eng
    finally:
        _shared.pop(key, None)
        shared.stop()


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
