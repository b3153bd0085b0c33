"""Webhooks: triggers delivered to HTTP endpoints, signed, retried, dead-lettered.

``webhooks.json`` in the workspace (mode 0600) lists the endpoints: id, URL, event
patterns (``trigger.*``, ``segment.entered``) and the signing secret (kept as is: signing
needs it). A delivery is a POST of the trigger as JSON with headers

* ``X-Tribes-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the
  endpoint's secret>`` (check it with :func:`verify_signature`);
* ``Idempotency-Key``: the trigger id, the same on every attempt (receivers dedupe on it);
* ``X-Tribes-Event`` (the trigger type) and ``X-Tribes-Attempt``.

Any 2xx is a success. Otherwise the delivery is retried after ``backoff``, doubling up
to ``max_backoff``, ``max_attempts`` times in all; then it goes to the
``webhook_deadletters`` table, from where ``tribes webhooks replay`` sends it again.
Pending retries live in Redis (they survive a restart); a trigger is acknowledged on the
output stream once each endpoint has it delivered or scheduled. Alerts reach the same
endpoints through :mod:`tribes.notify` (called by ``ops``), their failed deliveries
written here by :func:`dead_letter`.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import logging
import os
import re
import secrets
import threading
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import ibis
import pandas as pd

from tribes.errors import InputError
from tribes.hooks import Hook, Trigger, hooks_path, read_entries, read_hooks, trigger_body
from tribes.http import post_signed
from tribes.monitor import KINDS as ALERT_KINDS
from tribes.privacy import locked
from tribes.realtime.sink import DB_LOCK
from tribes.store import WEBHOOK_DEADLETTERS, open_engine
from tribes.workspace import Workspace

log = logging.getLogger(__name__)
EVENT_TYPES = ("trigger.abandoned_cart", "trigger.high_value_views", "trigger.session_offer",
               "trigger.churn_risk", "segment.entered", "segment.exited",
               *(f"alert.{kind}" for kind in ALERT_KINDS))
_PATTERN = re.compile(r"^[a-z_.*]+$")


# ---------------------------------------------------------------------- registry
class Registry:
    def __init__(self, ws: Workspace) -> None:
        self.path = hooks_path(ws)

    def _read(self) -> list[dict[str, Any]]:
        return read_entries(self.path)

    def _write(self, hooks: list[dict[str, Any]]) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"webhooks": hooks}, fh, indent=1)
        os.replace(tmp, self.path)

    def hooks(self) -> list[Hook]:
        return read_hooks(self.path)

    def get(self, hook_id: str) -> Hook:
        for h in self.hooks():
            if h.hook_id == hook_id:
                return h
        raise InputError(f"no webhook '{hook_id}'; see tribes webhooks list",
                         code="E_WEBHOOK")

    def add(self, url: str, events: list[str], secret: str | None = None) -> Hook:
        if not re.match(r"^https?://[^\s/]+", url):
            raise InputError(f"webhook URL '{url}' is not an http(s) URL", code="E_WEBHOOK")
        patterns = [e.strip() for e in events if e.strip()] or ["trigger.*", "segment.*"]
        for p in patterns:
            if not _PATTERN.match(p) or not any(fnmatch.fnmatchcase(t, p)
                                                for t in EVENT_TYPES):
                raise InputError(f"event pattern '{p}' matches no event; events: "
                                 f"{', '.join(EVENT_TYPES)} (wildcards: trigger.*)",
                                 code="E_WEBHOOK")
        if secret is not None and len(secret) < 16:
            raise InputError("a webhook secret needs at least 16 characters",
                             code="E_WEBHOOK")
        hook = Hook("wh_" + secrets.token_hex(6), url, tuple(patterns),
                    secret or secrets.token_urlsafe(32), datetime.now(UTC).isoformat())
        with locked(self.path.with_suffix(".lock")):
            hooks = self._read()
            hooks.append(asdict(hook) | {"events": list(hook.events)})
            self._write(hooks)
        return hook

    def remove(self, hook_id: str) -> None:
        with locked(self.path.with_suffix(".lock")):
            hooks = self._read()
            kept = [h for h in hooks if h["hook_id"] != hook_id]
            if len(kept) == len(hooks):
                raise InputError(f"no webhook '{hook_id}'", code="E_WEBHOOK")
            self._write(kept)


def registry(ws: Workspace) -> Registry:
    return Registry(ws)


# ---------------------------------------------------------------------- one POST
def post(hook: Hook, trigger: Trigger, attempt: int, timeout: float) -> tuple[bool, str]:
    """Deliver once: (success, what happened)."""
    return post_signed(hook.url, hook.secret, trigger_body(trigger),
                       idempotency_key=trigger.trigger_id, event=trigger.kind,
                       attempt=attempt, timeout=timeout)


# ---------------------------------------------------------------------- dead letters
DEADLETTERS = "webhook_deadletters"


def dead_letter(ws: Workspace, hook: Hook, trigger: Trigger, attempts: int, error: str
                ) -> None:
    row = pd.DataFrame([{
        "deadletter_id": "dl_" + secrets.token_hex(6), "webhook_id": hook.hook_id,
        "url": hook.url, "trigger_id": trigger.trigger_id, "type": trigger.kind,
        "customer_key": trigger.customer_key,
        "trigger": json.dumps(trigger.to_message(), sort_keys=True), "attempts": attempts,
        "last_error": error, "failed_at": datetime.now(UTC), "replayed_at": None}])
    with DB_LOCK, open_engine(ws) as engine:
        t = engine.table(DEADLETTERS)
        already = t.filter((t.webhook_id == hook.hook_id) & (t.trigger_id == trigger.trigger_id)
                           & t.replayed_at.isnull())
        if int(engine.scalar(already.count())):
            return  # written before a restart
        engine.insert(DEADLETTERS, ibis.memtable(row).cast(WEBHOOK_DEADLETTERS))
        engine.audit("webhooks.deadletter", target=hook.hook_id, rows=1,
                     keys=[trigger.customer_key] if trigger.customer_key else [],
                     detail={"trigger": trigger.trigger_id, "error": error})


def deadletters(ws: Workspace, *, pending_only: bool = True) -> pd.DataFrame:
    with open_engine(ws, read_only=True) as engine:
        t = engine.table(DEADLETTERS)
        if pending_only:
            t = t.filter(t.replayed_at.isnull())
        return engine.execute(t.order_by("failed_at"))


def replay(ws: Workspace, *, deadletter_id: str | None = None, hook_id: str | None = None
           ) -> dict[str, int]:
    """Send dead letters again (one attempt each); delivered ones are marked replayed."""
    cfg = ws.config.realtime.webhooks
    timeout = cfg.timeout.total_seconds()
    reg = registry(ws)
    df = deadletters(ws)
    if deadletter_id:
        df = df[df["deadletter_id"] == deadletter_id]
        if df.empty:
            raise InputError(f"no pending dead letter '{deadletter_id}'; see tribes webhooks "
                             "deadletters", code="E_WEBHOOK")
    if hook_id:
        df = df[df["webhook_id"] == hook_id]
    done: list[str] = []
    failed = 0
    for r in df.to_dict("records"):
        try:
            hook = reg.get(str(r["webhook_id"]))
        except InputError:
            failed += 1
            continue
        trigger = Trigger.from_message(json.loads(str(r["trigger"])))
        ok, what = post(hook, trigger, int(r["attempts"]) + 1, timeout)
        if ok:
            done.append(str(r["deadletter_id"]))
        else:
            failed += 1
            log.warning("replay of %s to %s failed: %s", r["deadletter_id"], hook.url, what)
    if done:
        with DB_LOCK, open_engine(ws) as engine:
            t = engine.table(DEADLETTERS)
            kept = t.mutate(replayed_at=ibis.ifelse(
                t.deadletter_id.isin(done), ibis.literal(datetime.now(UTC),
                                                         type="timestamp('UTC')"),
                t.replayed_at))
            engine.replace_table(DEADLETTERS, kept)
            engine.audit("webhooks.replay", rows=len(done), detail={"failed": failed})
    return {"replayed": len(done), "failed": failed}


# ---------------------------------------------------------------------- the worker
class Delivery:
    """Reads the output stream with its own consumer group and delivers each trigger to
    every endpoint that wants it (a thread of ``tribes stream``)."""

    def __init__(self, ws: Workspace, client: Any, *, stream: str,
                 consumer: str = "delivery") -> None:
        cfg = ws.config.realtime
        self.ws, self.r, self.stream = ws, client, stream
        self.group = f"{cfg.group}-webhooks"
        self.consumer = consumer
        w = cfg.webhooks
        self.timeout = w.timeout.total_seconds()
        self.max_attempts = w.max_attempts
        self.backoff = w.backoff.total_seconds()
        self.max_backoff = w.max_backoff.total_seconds()
        self.retry_key = f"{cfg.prefix}:wh:retry"
        self.done_prefix = f"{cfg.prefix}:wh:done"
        self.done_ttl = int(cfg.seen_ttl.total_seconds())
        self.claim_idle_ms = int(cfg.claim_idle.total_seconds() * 1000)
        self._claimed_at = 0.0
        self.hooks = registry(ws).hooks()
        self.delivered = 0
        self.failed_attempts = 0
        self.dead = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        import redis

        try:
            self.r.xgroup_create(stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tribes-webhooks",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def _done_key(self, hook: Hook, trigger_id: str) -> str:
        return f"{self.done_prefix}:{hook.hook_id}:{trigger_id}"

    def _attempt(self, hook: Hook, trigger: Trigger, attempt: int) -> bool | None:
        """Deliver once: True (delivered, now or before), False (failed), None (another
        process is delivering it right now)."""
        done = self._done_key(hook, trigger.trigger_id)
        if self.r.exists(done):
            return True  # delivered before a restart
        claim = done.replace(":done:", ":busy:", 1)
        if not self.r.set(claim, self.consumer, nx=True,
                          px=int((self.timeout * 2 + 5) * 1000)):
            return None
        try:
            ok, what = post(hook, trigger, attempt, self.timeout)
            if ok:
                self.r.set(done, "1", ex=self.done_ttl)
        finally:
            self.r.delete(claim)
        if ok:
            self.delivered += 1
            return True
        self.failed_attempts += 1
        self._last_error = what
        log.info("webhook %s: %s attempt %d failed (%s)", hook.hook_id, trigger.trigger_id,
                 attempt, what)
        return False

    def _schedule_retry(self, hook: Hook, trigger: Trigger, attempt: int,
                        old: str | None = None, wait: float | None = None) -> None:
        if wait is None:
            wait = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
        entry = json.dumps({"hook": hook.hook_id, "attempt": attempt + 1,
                            "trigger": trigger.to_message()}, sort_keys=True)
        pipe = self.r.pipeline(transaction=True)
        if old is not None:
            pipe.zrem(self.retry_key, old)
        pipe.zadd(self.retry_key, {entry: time.time() + wait})
        pipe.execute()

    def step(self) -> int:
        """One round: new triggers, then due retries. Returns deliveries attempted."""
        n = 0
        msgs = self._messages()
        for msg_id, fields in msgs:
            trigger = Trigger.from_message(fields)
            for hook in self.hooks:
                if hook.wants(trigger.kind):
                    n += 1
                    result = self._attempt(hook, trigger, 1)
                    if result is False:
                        self._retry_or_dead(hook, trigger, 1, None)
                    elif result is None:
                        self._check_later(hook, trigger, 1, None)
            # acknowledged once every endpoint has it delivered or kept among the retries
            self.r.xack(self.stream, self.group, msg_id)
        for entry in self.r.zrangebyscore(self.retry_key, "-inf", time.time(), start=0,
                                          num=50):
            item = json.loads(entry)
            target = next((h for h in self.hooks if h.hook_id == item["hook"]), None)
            if target is None:  # endpoint removed since
                self.r.zrem(self.retry_key, entry)
                continue
            trigger = Trigger.from_message(item["trigger"])
            n += 1
            result = self._attempt(target, trigger, int(item["attempt"]))
            if result:
                self.r.zrem(self.retry_key, entry)
            elif result is False:
                self._retry_or_dead(target, trigger, int(item["attempt"]), entry)
            else:
                self._check_later(target, trigger, int(item["attempt"]), entry)
        return n

    def _check_later(self, hook: Hook, trigger: Trigger, attempt: int, old: str | None
                     ) -> None:
        """Another worker is delivering this trigger right now, or was when it died (its
        marker outlives it by at most twice the timeout): look again once the marker
        expires. Then it was delivered (done) or it is delivered here: never dropped."""
        claim = self._done_key(hook, trigger.trigger_id).replace(":done:", ":busy:", 1)
        left = max(int(self.r.pttl(claim)), 0) / 1000
        self._schedule_retry(hook, trigger, attempt - 1, old, wait=left + 0.1)

    def _messages(self) -> list[tuple[str, dict[str, str]]]:
        """This worker's unacknowledged triggers (after a restart), those a stopped
        worker left (idle longer than claim_idle), else new ones."""
        got = self.r.xreadgroup(self.group, self.consumer, {self.stream: "0"}, count=100)
        msgs = [(i, f) for i, f in got[0][1] if f] if got else []
        if msgs:
            return msgs
        if time.monotonic() - self._claimed_at > self.claim_idle_ms / 2000:
            self._claimed_at = time.monotonic()
            res = self.r.xautoclaim(self.stream, self.group, self.consumer,
                                    self.claim_idle_ms, "0-0", count=100)
            claimed = [(i, f) for i, f in res[1] if f]
            if claimed:
                return claimed
        got = self.r.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=100,
                                block=200)
        return list(got[0][1]) if got else []

    def _retry_or_dead(self, hook: Hook, trigger: Trigger, attempt: int, old: str | None
                       ) -> None:
        if attempt >= self.max_attempts:
            try:
                dead_letter(self.ws, hook, trigger, attempt, getattr(self, "_last_error", ""))
            except Exception:
                # the database is busy (or worse): keep it in the retries, try again later
                log.exception("cannot write the dead letter of %s; kept for later",
                              trigger.trigger_id)
                self._schedule_retry(hook, trigger, attempt - 1, old, wait=self.max_backoff)
                return
            self.dead += 1
            if old is not None:
                self.r.zrem(self.retry_key, old)
            return
        self._schedule_retry(hook, trigger, attempt, old)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.step():
                    self._stop.wait(0.05)
            except Exception:
                log.exception("webhook delivery failed; retrying in 1 s")
                with contextlib.suppress(Exception):
                    self._stop.wait(1.0)

