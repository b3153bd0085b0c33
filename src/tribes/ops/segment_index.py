"""The segment lookup index: every id's customer and every customer's active segment, in
memory, so ``GET /v1/customers/{id}/segment`` answers without a query.

It is rebuilt after a change to the workspace: every change writes an audit record, so
the number of the last change in the audit log's head tells when (checked at most once a
second; reads are recorded too, but do not count, nor do loads of events, which change
no identity or segment until prep and segment run).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from tribes.errors import InputError, NoSegmentVersionError
from tribes.privacy import last_derived_change, pseudonym
from tribes.store import active_segments, active_version, clean_ident, open_engine
from tribes.workspace import Workspace

log = logging.getLogger(__name__)
CHECK_EVERY_S = 1.0


@dataclass(frozen=True)
class Assignment:
    customer_key: str
    segment_id: int
    segment_name: str
    probability: float | None
    version: int

    def to_dict(self) -> dict[str, Any]:
        return {"customer_key": self.customer_key, "segment_id": self.segment_id,
                "segment_name": self.segment_name, "probability": self.probability,
                "version": self.version}


class SegmentIndex:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._secret = ws.secret()
        self._ids: dict[str, str] = {}
        self._segments: dict[str, Assignment] = {}
        self._version: int | None = None
        self._seq = -2
        self._checked = 0.0
        self._lock = threading.Lock()
        self._rebuilding = threading.Event()

    def watch(self) -> None:
        """Called on every lookup: at most once a second, see whether the workspace changed
        and if so rebuild in the background (lookups meanwhile get the previous index)."""
        now = time.monotonic()
        if self._seq == -2:
            self.refresh(force=True)  # the first lookup builds it
            return
        if now - self._checked < CHECK_EVERY_S or self._rebuilding.is_set():
            return
        self._checked = now
        if last_derived_change(self.ws.path) != self._seq:
            self._rebuilding.set()
            threading.Thread(target=self._rebuild, name="tribes-index", daemon=True).start()

    def _rebuild(self) -> None:
        try:
            self.refresh(force=True)
        except Exception:
            log.exception("cannot rebuild the segment index; keeping the previous one")
        finally:
            self._rebuilding.clear()

    def refresh(self, force: bool = False) -> None:
        """Rebuild now if the workspace changed (or always, with ``force``)."""
        with self._lock:
            self._checked = time.monotonic()
            seq = last_derived_change(self.ws.path)
            if seq == self._seq and not force:
                return
            started = time.perf_counter()
            with open_engine(self.ws) as engine:
                ids = engine.execute(engine.table("identities").select("id", "customer_key"))
                version = active_version(engine)
                segs: dict[str, Assignment] = {}
                if version is not None:
                    df = engine.execute(active_segments(engine, version))
                    for r in df.itertuples(index=False):
                        p = None if r.probability != r.probability else float(r.probability)
                        segs[str(r.customer_key)] = Assignment(
                            str(r.customer_key), int(r.segment_id), str(r.segment_name), p,
                            int(r.version))
            self._ids = dict(zip(ids["id"].astype(str), ids["customer_key"].astype(str),
                                 strict=True))
            self._segments, self._version, self._seq = segs, version, seq
            log.info("segment index: %d ids, %d customers (version %s) in %.2fs",
                     len(self._ids), len(segs), version, time.perf_counter() - started)

    @property
    def version(self) -> int | None:
        return self._version

    def customer_key(self, ident: str) -> str:
        """The customer_key of a raw id, a pseudonym or a customer_key."""
        self.watch()
        ident = clean_ident(ident)
        if ident in self._segments:
            return ident
        for candidate in (ident, pseudonym(ident, self._secret)):
            key = self._ids.get(candidate)
            if key is not None:
                return key
        raise InputError(f"no customer with id '{ident}'", code="E_NOT_FOUND")

    def lookup(self, ident: str) -> Assignment:
        key = self.customer_key(ident)
        a = self._segments.get(key)
        if a is None:
            if self._version is None:
                raise NoSegmentVersionError()
            raise InputError(f"customer '{ident}' is in no segment of version "
                             f"{self._version} (not analyzed: consent, or new since)",
                             code="E_NOT_FOUND")
        return a
