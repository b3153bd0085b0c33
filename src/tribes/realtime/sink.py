"""Streamed events into the events table: spooled to disk, ingested in micro-batches.

Every message the consumer reads is appended (as received: one line of text) to a spool
file and synced before the batch is acknowledged, so nothing acknowledged can be lost.
Spool files are closed every ``flush_every`` or ``flush_events`` and ingested by the
normal ingest (same checks, quarantine, dedupe on event_id: a message spooled twice loads
once), in a child process (so that the consumer keeps its core; inside ``tribes serve``,
which holds the database, on a thread instead); a file is deleted only after its ingest
committed. Files left by a stopped (killed) consumer are taken over by any running
consumer of the workspace within ``flush_every``, or by the next one that starts.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from tribes.engine import STAGED_DIR, database_key, staged_text
from tribes.errors import TribesError
from tribes.ingest import EVENTS, IngestOptions, ingest
from tribes.monitor import check_ingest
from tribes.privacy import Sealer, is_sealed
from tribes.realtime.events import EventChecker
from tribes.settings import RunSettings
from tribes.store import open_run
from tribes.workspace import Workspace, open_workspace

log = logging.getLogger(__name__)
DB_LOCK = threading.Lock()  # one thread of the stream process in the database at a time
# a landing is tried this many times before the consumer stops with its error: what
# fails again and again (a bug, a full disk, a broken workspace) needs a person
LAND_ATTEMPTS = 3


def stream_spool(ws: Workspace) -> Path:
    d = ws.path / ".tmp" / "stream"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


class Sink:
    def __init__(self, ws: Workspace, settings: RunSettings, *, source: str, consumer: str,
                 in_process: bool = False) -> None:
        cfg = ws.config.realtime
        self.ws, self.settings, self.source = ws, settings, source
        self.every = cfg.flush_every.total_seconds()
        self.max_events = cfg.flush_events
        self.dir = stream_spool(ws)
        self.consumer = consumer
        self.in_process = in_process
        self._syncer = concurrent.futures.ThreadPoolExecutor(1, "tribes-fsync")
        self._sync: concurrent.futures.Future[None] | None = None
        self._child: Any = None
        self._pipe: Any = None
        self._fh: Any = None
        self._path: Path | None = None
        self._n = 0
        self._opened = 0.0
        self._seq = 0
        # every spool file is locked by the process that owns it, until it has landed:
        # what nobody holds belongs to a stopped consumer, and is taken over (locked)
        self._held: dict[Path, Any] = {}
        self._sealer = spool_sealer(ws)
        self._ready: list[Path] = []
        self._lock = threading.Condition()
        self._adopted_at = time.monotonic()
        self.adopted = 0
        self.adopt()
        self._stop = False
        self.loaded = self.quarantined = self.duplicates = 0
        self.errors: list[str] = []
        self.failure: TribesError | None = None  # why landing stopped (see check())
        if not in_process:
            self._start_child()  # now: starting it costs a core for a second or two
        self._thread = threading.Thread(target=self._run, name="tribes-sink", daemon=True)
        self._thread.start()

    def _close_name(self, f: Path) -> Path:
        target = self.dir / ("closed-" + f.name.removeprefix("open-"))
        f.rename(target)
        return target

    def write(self, records: Sequence[dict[str, Any] | str]) -> None:
        """Write one batch's records and start syncing them to disk; the batch may be
        acknowledged once :meth:`wait_synced` returned (the sync overlaps the work
        between the two)."""
        if not records:
            return
        if self._fh is None:
            self._seq += 1
            name = f"{self.consumer}-{os.getpid()}-{time.time_ns()}-{self._seq}.jsonl"
            self._path = self.dir / f"open-{name}"
            # locked before it has the name others look for
            tmp = self.dir / f"new-{name}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(tmp, self._path)
            self._fh = os.fdopen(fd, "a", encoding="utf-8")
            self._opened = time.monotonic()
        text = "".join(_line(r) for r in records)
        self._fh.write(text if self._sealer is None else self._sealer.seal(text))
        self._fh.flush()
        self._sync = self._syncer.submit(os.fdatasync, self._fh.fileno())
        self._n += len(records)

    def check(self) -> None:
        """Raise why streamed events cannot land, once landing has failed
        ``LAND_ATTEMPTS`` times in a row: the consumer stops loudly, and the spool files
        stay to land when it starts again after the cause is fixed."""
        if self.failure is not None:
            raise self.failure

    def wait_synced(self) -> None:
        self.check()
        if self._sync is not None:
            self._sync.result()
            self._sync = None
        if self._n >= self.max_events:
            self.rotate()

    def tick(self) -> None:
        self.check()
        now = time.monotonic()
        if self._fh is not None and now - self._opened >= self.every:
            self.rotate()
        if now - self._adopted_at >= self.every:
            self.adopt()

    def adopt(self) -> int:
        """Take over the spool files no running process holds (those of a consumer that
        was killed): they land with this consumer's own. Returns how many."""
        self._adopted_at = time.monotonic()
        taken = []
        for f in sorted(self.dir.glob("closed-*.jsonl")) + sorted(self.dir.glob("open-*.jsonl")):
            if f in self._held or f == self._path:
                continue
            fh = _take(f)
            if fh is None:
                continue  # a live consumer's
            if f.name.startswith("open-"):
                f = self._close_name(f)
            self._held[f] = fh
            taken.append(f)
        if taken:
            self.adopted += len(taken)
            log.info("stream sink: took over %d spool file(s) of a stopped consumer",
                     len(taken))
            with self._lock:
                self._ready.extend(taken)
                self._lock.notify()
        return len(taken)

    def rotate(self) -> None:
        if self._fh is None or self._path is None:
            return
        if self._sync is not None:
            self._sync.result()
            self._sync = None
        closed = self._close_name(self._path)
        self._held[closed] = self._fh  # the lock stays until the file has landed
        self._fh, self._path, self._n = None, None, 0
        with self._lock:
            self._ready.append(closed)
            self._lock.notify()

    def pending(self) -> int:
        with self._lock:
            return len(self._ready)

    def _run(self) -> None:
        failed = 0
        while True:
            with self._lock:
                while not self._ready and not self._stop:
                    self._lock.wait(1.0)
                if not self._ready and self._stop:
                    return
                self._ready = [f for f in self._ready if f.exists()]
                files = list(self._ready)
            if not files:
                continue
            try:
                self._ingest(files)
            except Exception as exc:  # the files stay in the spool
                why = exc.message if isinstance(exc, TribesError) else \
                    f"{type(exc).__name__}: {exc}"
                self.errors.append(why)
                failed += 1
                if failed >= LAND_ATTEMPTS:
                    self.failure = TribesError(
                        f"streamed events cannot land in the events table ({failed} attempts): "
                        f"{why}; the consumer stops. The {len(files)} spool file(s) stay in "
                        ".tmp/stream and land when tribes stream starts again once the cause "
                        "is fixed", code="E_STREAM_LAND")
                    log.error("%s", self.failure.message)
                    return
                log.error("streamed events not yet in the events table (kept in the spool, "
                          "tried again): %s", why)
                time.sleep(min(self.every, 5.0))
                if self._stop:
                    return
                continue
            failed = 0
            with self._lock:
                self._ready = [f for f in self._ready if f not in files]

    def _ingest(self, files: list[Path]) -> None:
        started = time.perf_counter()
        names = [str(f) for f in files]
        with DB_LOCK:
            s = land(self.ws, self.settings, names, self.source) if self.in_process else \
                self._in_child(names)
        for f in files:
            f.unlink(missing_ok=True)
            fh = self._held.pop(f, None)
            if fh is not None:
                fh.close()
        self.loaded += s["loaded"]
        self.duplicates += s["duplicates"]
        self.quarantined += s["quarantined"]
        log.info("stream sink: %d events loaded, %d duplicates, %d quarantined (%.2fs)",
                 s["loaded"], s["duplicates"], s["quarantined"],
                 time.perf_counter() - started)

    def _start_child(self) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self._pipe, child_end = ctx.Pipe()
        self._child = ctx.Process(target=_lander, args=(str(self.ws.path), self.settings,
                                                        self.source, child_end),
                                  name="tribes-lander", daemon=True)
        self._child.start()

    def _in_child(self, files: list[str]) -> dict[str, int]:
        if self._child is None or not self._child.is_alive():
            self._start_child()
        self._pipe.send(files)
        try:
            answer = self._pipe.recv()
        except EOFError:
            self._child = None
            raise TribesError("the landing process died; the files stay in the spool",
                              code="E_STREAM_SINK") from None
        if "error" in answer:
            raise TribesError(answer["error"], code=answer.get("code", "E_STREAM_SINK"))
        return dict(answer)

    def close(self, timeout: float = 120.0) -> None:
        """Close the open spool and wait until everything is ingested (or ``timeout``),
        with the spools of stopped consumers found meanwhile."""
        self.rotate()
        self.adopt()
        self._syncer.shutdown(wait=True)
        deadline = time.monotonic() + timeout
        while self.pending() and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.05)
        with self._lock:
            self._stop = True
            self._lock.notify()
        self._thread.join(timeout=max(deadline - time.monotonic(), 1.0))
        if self._child is not None:
            with contextlib.suppress(Exception):
                self._pipe.send(None)
            self._child.join(timeout=10)
            if self._child.is_alive():
                self._child.kill()
        for fh in self._held.values():  # what did not land is anyone's to take over
            fh.close()
        self._held.clear()
        left = self.pending()
        if left and self.failure is None:
            self.failure = TribesError(
                f"{left} spool file(s) of streamed events did not land within {timeout:.0f} s"
                + (f" ({self.errors[-1]})" if self.errors else "") + "; they stay in "
                ".tmp/stream and land when tribes stream starts again", code="E_STREAM_LAND")


def _line(record: dict[str, Any] | str) -> str:
    """A record as a JSON line; a message that was not a JSON object stays the text it
    was (on one line), so that ingest quarantines it as malformed too."""
    if isinstance(record, str):
        return record.replace("\r", " ").replace("\n", " ") + "\n"
    return json.dumps(record, default=str, separators=(",", ":")) + "\n"


def _take(f: Path) -> Any:
    """The file, opened and locked, when no other process holds it; else None."""
    try:  # never created here: a file that is gone has landed
        fd = os.open(f, os.O_WRONLY | os.O_APPEND)
    except FileNotFoundError:
        return None
    fh = os.fdopen(fd, "a", encoding="utf-8")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # its owner may have landed, deleted and released it since it was opened
        if os.fstat(fd).st_ino != os.stat(f).st_ino:
            raise FileNotFoundError(f)
    except (BlockingIOError, FileNotFoundError):
        fh.close()
        return None
    return fh


def spool_sealer(ws: Workspace) -> Sealer | None:
    """What seals the spool of an encrypted workspace (None: the spool is plain text)."""
    if not ws.config.engine.encrypted:
        return None

    return Sealer(database_key(ws.path).encode("utf-8"), "stream spool")


def _messages(path: str, sealer: Sealer | None) -> Iterator[str]:
    """The lines a spool file holds, sealed chunks opened; a line cut off by a crash while
    it was written (never acknowledged) ends the file."""
    with open(path, encoding="utf-8") as src:
        for line in src:
            if not line.endswith("\n"):
                return
            if is_sealed(line):
                if sealer is None:
                    raise TribesError(f"{Path(path).name} holds sealed messages but the "
                                      "workspace is not encrypted", code="E_SEALED")
                yield from sealer.open(line).splitlines(keepends=True)
            else:
                yield line


def land(ws: Workspace, settings: RunSettings, files: list[str], source: str
         ) -> dict[str, int]:
    """Ingest spool files into the events table: each message with event column names
    and its event_id, as the consumer checked it (events.py), then the file ingest. The
    messages are handed to ingest from memory where the system allows it (see
    ``engine.staging.staged_text``), so an encrypted workspace's spool is only opened there."""
    checker = EventChecker(ws.config, ws.secret())
    columns = dict.fromkeys(EVENTS.names)
    sealer = spool_sealer(ws)

    def mapped() -> Iterator[str]:
        for f in files:
            for line in _messages(f, sealer):
                if not line.strip():
                    continue
                try:
                    message = json.loads(line)
                except ValueError:
                    message = None
                if isinstance(message, dict):
                    # every event column on every line: ingest learns the columns from
                    # the first lines
                    yield _line({**columns, **checker.record_for(message)})
                else:  # not a JSON object: quarantined as malformed, as from a file
                    yield line

    with staged_text(mapped(), ws.path / STAGED_DIR) as path, open_run(ws, settings) as ctx:
        s = check_ingest(ctx, ingest(ctx, [str(path)], IngestOptions(
            source=source, fmt="jsonl", check_volume=False)), volume=False)
    return {"loaded": s.loaded, "duplicates": s.duplicates, "quarantined": s.n_quarantined}


def _lander(path: str, settings: RunSettings, source: str, conn: Any) -> None:
    """The landing process: ingests the files it is sent until it is sent None."""
    # the consumer's latency comes first: landing may take a while, on one core, niced
    with contextlib.suppress(OSError):
        os.nice(10)
    ws = open_workspace(Path(path))
    engine = ws.config.engine.model_copy(update={"threads": 1})
    ws = replace(ws, config=ws.config.model_copy(update={"engine": engine}))
    while True:
        try:
            files = conn.recv()
        except EOFError:
            return
        if files is None:
            return
        try:
            conn.send(land(ws, settings, files, source))
        except TribesError as exc:
            conn.send({"error": exc.message, "code": exc.code})
        except Exception as exc:
            conn.send({"error": f"{type(exc).__name__}: {exc}"})
