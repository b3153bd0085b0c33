"""The workspace's writer lock: one process writes at a time; the others wait their turn.

A writer holds an exclusive ``flock`` on ``tribes.lock`` in the workspace for as long as
it has the database open for writing (``tribes serve`` for its whole life) and notes in
the file who it is. Another writer waits for it, saying who holds it, up to
``engine.lock_wait``; readers do not take the lock. Within one process the lock is
taken once and shared by every writing block (they are serialized by the engine).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tribes.errors import WorkspaceError

log = logging.getLogger(__name__)
LOCK_FILE = "tribes.lock"

_held: dict[Path, list[Any]] = {}  # lock file -> [open file, blocks holding it]
_guard = threading.Lock()


def holder(workspace: Path) -> str:
    """Who holds the writer lock, as a person would say it (or that nobody does)."""
    try:
        data = json.loads((workspace / LOCK_FILE).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        data = {}
    pid = data.get("pid")
    if not pid:
        return "another process"
    command = f"process {pid}"
    with contextlib.suppress(Exception):
        import psutil

        words = psutil.Process(int(pid)).cmdline()
        shown = " ".join(Path(w).name if i < 2 else w for i, w in enumerate(words))
        command = f"'{shown[:100]}' (pid {pid})"
    since = str(data.get("since", ""))[:19].replace("T", " ")
    return f"{command}, since {since} UTC" if since else command


def _open(path: Path) -> Any:
    """The lock file, open for the lock's lifetime (closing it releases the lock)."""
    return open(os.open(path, os.O_RDWR | os.O_CREAT, 0o600), "r+",
                encoding="utf-8")


def _try(fh: Any) -> bool:
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def writing(workspace: Path, *, wait: float,
            say: Callable[[str], None] | None = None) -> Iterator[bool]:
    """Hold the writer lock for the block, waiting up to ``wait`` seconds for the
    process that has it; ``E_LOCKED`` (saying who holds it) after that. Yields whether
    this block took it (no other block of this process holds it)."""
    path = workspace / LOCK_FILE
    key = path.resolve()
    with _guard:
        mine = _held.get(key)
        if mine is not None:
            mine[1] += 1
    if mine is None:
        fh = _acquire(path, workspace, wait, say)
        with _guard:
            _held[key] = mine = [fh, 1]
    try:
        yield mine[1] == 1
    finally:
        with _guard:
            mine[1] -= 1
            last = mine[1] == 0
            if last:
                _held.pop(key, None)
        if last:
            mine[0].close()  # releases the lock


def _acquire(path: Path, workspace: Path, wait: float,
             say: Callable[[str], None] | None) -> Any:
    fh = _open(path)
    deadline = time.monotonic() + wait
    told = False
    while not _try(fh):
        if time.monotonic() >= deadline:
            fh.close()
            raise WorkspaceError(
                f"the workspace is being written by {holder(workspace)}; waited "
                f"{wait:.0f} s (engine.lock_wait). Try again when it is done"
                + (" (a running tribes serve holds it while it answers requests and hands "
                   "it over after service.release_after without one: try again when it "
                   "is quiet, send the change through its REST API, or stop it)"
                   if "serve" in holder(workspace) else ""),
                code="E_LOCKED")
        if not told:
            (say or log.warning)(f"waiting for the workspace: {holder(workspace)} is "
                                 f"writing to it (at most {wait:.0f} s)")
            told = True
        time.sleep(0.2)
    fh.seek(0)
    fh.truncate()
    fh.write(json.dumps({"pid": os.getpid(), "since": datetime.now(UTC).isoformat()}))
    fh.flush()
    return fh


@contextlib.contextmanager
def unless_writing(workspace: Path) -> Iterator[bool]:
    """Whether nobody is writing the workspace now (holding the lock for the block if
    so): the moment to clear what crashed batches left."""
    path = workspace / LOCK_FILE
    with _guard:
        if path.resolve() in _held:  # this process is writing
            yield False
            return
    try:
        fh = _open(path)
    except OSError:
        yield False
        return
    with fh:
        yield _try(fh)
