"""Alerts to the webhooks subscribed to them: the one sender of alerts to webhooks.

Each new alert becomes a :class:`~tribes.hooks.Trigger` of type ``alert.<kind>`` (id
``alert-<alert_id>``: the idempotency key), POSTed signed to every webhook subscribed to
it (``alert.*`` or ``alert.<kind>``), tried :data:`ATTEMPTS` times with a doubling
backoff. A delivery that fails them all goes to the caller's ``dead_letter`` (the
dead-letter table, from where ``tribes webhooks replay`` sends it again). Only
:mod:`tribes.ops` calls this, once a stage that raises alerts is done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pandas as pd

from tribes.hooks import Hook, Trigger, hooks_path, read_hooks, trigger_body
from tribes.http import post_with_retries
from tribes.workspace import Workspace

log = logging.getLogger(__name__)
ATTEMPTS = 3  # a check waits for at most this many tries; then a dead letter
# what a receiver gets of an alert row, under "data"
FIELDS = ("alert_id", "severity", "subject", "metric", "value", "threshold", "message",
          "detail", "version")
DeadLetter = Callable[[Hook, Trigger, int, str], None]  # hook, trigger, attempts, error


def alert_trigger(alert: dict[str, Any]) -> Trigger:
    """The event a webhook receives for ``alert`` (a row of the alerts table)."""
    return Trigger(kind=f"alert.{alert['kind']}", customer_key="",
                   at=pd.Timestamp(alert["created_at"]).timestamp(),
                   trigger_id=f"alert-{alert['alert_id']}",
                   data={k: alert[k] for k in FIELDS})


def notify_alerts(ws: Workspace, alerts: list[dict[str, Any]], *,
                  dead_letter: DeadLetter) -> dict[str, int]:
    """POST new alerts to the webhooks subscribed to ``alert.<kind>`` (signed like the
    triggers); a delivery that fails every attempt is handed to ``dead_letter``. Returns
    the deliveries made and failed."""
    sent = failed = 0
    hooks = read_hooks(hooks_path(ws))
    if not alerts or not hooks:
        return {"sent": 0, "failed": 0}
    cfg = ws.config.realtime.webhooks
    timeout = cfg.timeout.total_seconds()
    backoff = cfg.backoff.total_seconds()
    for a in alerts:
        trigger = alert_trigger(a)
        for hook in hooks:
            if not hook.wants(trigger.kind):
                continue
            ok, what = post_with_retries(hook.url, hook.secret, trigger_body(trigger),
                                         idempotency_key=trigger.trigger_id,
                                         event=trigger.kind, attempts=ATTEMPTS,
                                         timeout=timeout, backoff=min(backoff, 10.0))
            if ok:
                sent += 1
            else:
                failed += 1
                log.warning("alert %s to %s failed: %s", a["alert_id"], hook.url, what)
                dead_letter(hook, trigger, ATTEMPTS, what)
    return {"sent": sent, "failed": failed}
