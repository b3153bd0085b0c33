"""Reading the real-time state for the service: online segment and recent triggers.

The service works without Redis (batch segments only); when ``[realtime] redis`` (or
``TRIBES_REDIS_URL``) is reachable, profiles show the customer's online segment and
newest triggers, and the next-best-content hint follows the online segment. A failed
connection is retried at most every ``RETRY_S`` seconds, so an absent Redis costs
nothing per request.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from tribes.errors import TribesError
from tribes.realtime.redis_state import RedisState, connect_redis, redis_url
from tribes.realtime.rules import Trigger
from tribes.workspace import Workspace

log = logging.getLogger(__name__)
RETRY_S = 10.0


class Live:
    def __init__(self, ws: Workspace) -> None:
        self.cfg = ws.config.realtime
        self.url = redis_url(self.cfg)
        self._store: RedisState | None = None
        self._next_try = 0.0
        self._lock = threading.Lock()

    def store(self) -> RedisState | None:
        """The state store, or None while Redis is not reachable."""
        if self._store is not None:
            return self._store
        with self._lock:
            if self._store is not None or time.monotonic() < self._next_try:
                return self._store
            try:
                self._store = RedisState(connect_redis(self.url, timeout=2, connect_timeout=0.5),
                                         self.cfg.prefix)
            except TribesError as exc:  # no client installed, nothing listening, ...
                self._next_try = time.monotonic() + RETRY_S
                log.debug("real-time state not available: %s", exc)
            return self._store

    def _call(self, fn: Any, default: Any) -> Any:
        s = self.store()
        if s is None:
            return default
        try:
            return fn(s)
        except Exception as exc:
            log.warning("real-time state unavailable: %s", exc)
            self._store, self._next_try = None, time.monotonic() + RETRY_S
            return default

    def online(self, customer_key: str) -> dict[str, Any] | None:
        """The customer's online segment and newest event time (None: no state)."""
        st = self._call(lambda s: s.state(customer_key), None)
        if not st:
            return None
        return {"segment_id": int(st["seg"]) if st["hasseg"] else None,
                "last_event_at": datetime.fromtimestamp(st["last"], UTC).isoformat()
                if st["last"] else None}

    def recent(self, customer_key: str, limit: int = 20) -> list[dict[str, Any]]:
        return list(self._call(lambda s: s.recent_triggers(customer_key, limit), []))

    def latest(self, limit: int = 100) -> list[dict[str, Any]] | None:
        """The newest triggers on the output stream, newest first (None: no Redis)."""
        def read(s: RedisState) -> list[dict[str, Any]]:
            got = s.r.xrevrange(self.cfg.output_stream, count=limit)
            return [Trigger.from_message(f).to_dict() for _, f in got]

        return self._call(read, None)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store.r.close()
