"""Who is calling: API keys with roles on every route, a rate limit per key, the audit actor."""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request

from tribes.privacy import KEYS_FILE, ApiKey, authenticate, load_keys, set_actor
from tribes.service.errors import ApiError


class KeyRing:
    """The workspace's keys, re-read when ``keys.json`` changes (a revoke applies at once)."""

    def __init__(self, workspace: Path) -> None:
        self.path = workspace / KEYS_FILE
        self.workspace = workspace
        self._stamp: tuple[float, int] | None = None
        self._keys: list[ApiKey] = []
        self._lock = threading.Lock()

    def keys(self) -> list[ApiKey]:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime, st.st_size)
        except FileNotFoundError:
            return []
        with self._lock:
            if stamp != self._stamp:
                self._keys = load_keys(self.workspace)
                self._stamp = stamp
            return self._keys


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class RateLimiter:
    """A token bucket per key: ``rate`` requests per second, bursts up to ``burst``."""

    rate: float
    burst: int
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, key_id: str) -> float:
        """0 when the request may go ahead, else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            b = self._buckets.get(key_id)
            if b is None:
                b = self._buckets[key_id] = _Bucket(float(self.burst), now)
            b.tokens = min(float(self.burst), b.tokens + (now - b.at) * self.rate)
            b.at = now
            if b.tokens >= 1:
                b.tokens -= 1
                return 0.0
            return (1 - b.tokens) / self.rate


class TooManyRequests(ApiError):
    def __init__(self, wait: float) -> None:
        super().__init__(429, "E_RATE_LIMIT", f"too many requests for this key; retry in "
                         f"{wait:.2f}s")
        self.headers = {"Retry-After": str(max(1, round(wait + 0.5)))}


def require(role: str) -> Callable[[Request], Awaitable[ApiKey]]:
    """A dependency: the caller's key, which must include ``role`` (viewer < analyst <
    admin). Sets the audit actor for the rest of the request."""

    async def dependency(request: Request) -> ApiKey:
        state = request.app.state
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        presented = token if scheme.lower() == "bearer" else request.cookies.get("tribes_key")
        key = authenticate(state.keyring.keys(), presented)
        request.state.key = key  # who was refused, should the role not do
        wait = state.limiter.take(key.key_id)
        if wait:
            raise TooManyRequests(wait)
        if not key.allows(role):
            raise ApiError(403, "E_FORBIDDEN", f"this route needs the {role} role; the key "
                           f"'{key.name}' is {key.role}")
        # an async dependency runs in the request's context: the (threaded) route inherits it
        set_actor(f"key:{key.name}")
        return key

    return dependency
