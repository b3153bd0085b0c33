"""Signed JSON POSTs with retries: how tribes talks to any receiver (webhooks of triggers
and alerts, activation batches to a CRM/CDP).

The signature header is ``t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + body>`` with the
receiver's secret; :func:`verify_signature` is the receiver's side of it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.error
import urllib.request

from tribes import __version__

SIGNATURE_HEADER = "X-Tribes-Signature"


def sign(secret: str, body: bytes, ts: int | None = None) -> str:
    """The signature header value of ``body``."""
    t = int(time.time()) if ts is None else ts
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify_signature(secret: str, header: str, body: bytes, *, tolerance_s: float = 300,
                     now: float | None = None) -> bool:
    """Whether ``header`` is a valid signature of ``body`` made within ``tolerance_s``."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        t = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance_s:
        return False
    want = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, parts.get("v1", ""))


def post_signed(url: str, secret: str, body: bytes, *, idempotency_key: str, event: str,
                attempt: int, timeout: float) -> tuple[bool, str]:
    """POST ``body`` (JSON) signed with ``secret`` once: (success, what happened). Every
    failure (refused, timed out, not 2xx, a bad URL) is a failure, never an exception."""
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": f"tribes/{__version__}",
        SIGNATURE_HEADER: sign(secret, body), "Idempotency-Key": idempotency_key,
        "X-Tribes-Event": event, "X-Tribes-Attempt": str(attempt)})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return 200 <= resp.status < 300, f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}"
    except Exception as exc:  # refused, timed out, not HTTP, a bad URL: all failures
        reason = getattr(exc, "reason", exc)
        return False, f"{type(exc).__name__}: {reason}"


def post_with_retries(url: str, secret: str, body: bytes, *, idempotency_key: str,
                      event: str, attempts: int, timeout: float, backoff: float
                      ) -> tuple[bool, str]:
    """:func:`post_signed` up to ``attempts`` times, waiting ``backoff`` (doubling, at
    most a minute) between them: (success, what happened last)."""
    what = ""
    for attempt in range(1, attempts + 1):
        ok, what = post_signed(url, secret, body, idempotency_key=idempotency_key,
                               event=event, attempt=attempt, timeout=timeout)
        if ok:
            return True, what
        if attempt < attempts:
            time.sleep(min(backoff * 2 ** (attempt - 1), 60.0))
    return False, f"{what} after {attempts} attempts"
