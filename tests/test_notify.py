"""The alert notifier: each new alert to every webhook subscribed to its kind, signed, tried
three times; a delivery that fails them all goes to the dead-letter table (through ops),
from where a replay sends the same event again."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import NOW, CliResult, Receiver
from tribes.hooks import Hook, Trigger
from tribes.http import verify_signature
from tribes.notify import ATTEMPTS, FIELDS, notify_alerts
from tribes.ops.alerts import send_alerts
from tribes.realtime.webhooks import registry
from tribes.store.db import init_workspace
from tribes.workspace import Workspace, open_workspace

SECRET = "s3cret-s3cret-s3cret"
ALERT = {"alert_id": 7, "created_at": NOW, "kind": "drift.psi", "severity": "critical",
         "subject": "f1", "metric": "psi", "value": 0.41, "threshold": 0.25,
         "message": "f1 drifted", "detail": "{}", "version": 1, "acked_at": None,
         "acked_by": None, "note": None}
DQ = ALERT | {"alert_id": 8, "kind": "dq.volume", "subject": "events from web"}


def _workspace(tmp_path: Path) -> Workspace:
    """A workspace whose deliveries wait 50 ms between attempts, not a second."""
    ws = init_workspace(tmp_path / "ws")
    cfg = ws.path / "tribes.toml"
    cfg.write_text(cfg.read_text(encoding="utf-8").replace('backoff = "1s"',
                                                           'backoff = "0.05s"', 1),
                   encoding="utf-8")
    return open_workspace(ws.path)


def test_each_alert_to_the_webhooks_of_its_kind(tmp_path: Path,
                                                webhook_receiver: Receiver) -> None:
    url, got = webhook_receiver.url, webhook_receiver.got
    ws = _workspace(tmp_path)
    reg = registry(ws)
    drift = reg.add(f"{url}/drift", ["alert.drift.*"], SECRET)
    reg.add(f"{url}/all", ["alert.*"], SECRET)
    reg.add(f"{url}/triggers", ["trigger.*"], SECRET)
    dead: list[tuple[Hook, Trigger, int, str]] = []
    sent = notify_alerts(ws, [ALERT, DQ], dead_letter=lambda *a: dead.append(a))
    assert sent == {"sent": 3, "failed": 0} and dead == []
    assert [(r.path, r.headers["X-Tribes-Event"]) for r in got] == [
        ("/drift", "alert.drift.psi"), ("/all", "alert.drift.psi"),
        ("/all", "alert.dq.volume")]
    first = next(r for r in got if r.path == "/drift")
    assert verify_signature(drift.secret, first.headers["X-Tribes-Signature"], first.body)
    assert first.headers["Idempotency-Key"] == "alert-7"
    assert json.loads(first.body) == {
        "id": "alert-7", "type": "alert.drift.psi", "customer_key": "",
        "at": NOW.timestamp(), "segment_id": None, "data": {k: ALERT[k] for k in FIELDS}}
    assert notify_alerts(ws, [], dead_letter=lambda *a: dead.append(a)) == {
        "sent": 0, "failed": 0}


def test_a_failed_alert_is_a_dead_letter_and_replays_the_same_event(
        tmp_path: Path, webhook_receiver: Receiver, cli: Callable[..., CliResult]) -> None:
    got = webhook_receiver.got
    ws = _workspace(tmp_path)
    hook = registry(ws).add(f"{webhook_receiver.url}/fail", ["alert.*"], SECRET)
    assert send_alerts(ws, [ALERT]) == {"sent": 0, "failed": 1}
    assert [r.headers["X-Tribes-Attempt"] for r in got] == [
        str(n) for n in range(1, ATTEMPTS + 1)]
    dead = cli("-w", ws.path, "webhooks", "deadletters", "--json").json()["deadletters"]
    assert [(d["webhook_id"], d["trigger_id"], d["type"], d["attempts"], d["last_error"])
            for d in dead] == [(hook.hook_id, "alert-7", "alert.drift.psi", ATTEMPTS,
                                f"HTTP 500 after {ATTEMPTS} attempts")]
    webhook_receiver.failing.clear()  # the receiver is back
    replay = cli("-w", ws.path, "webhooks", "replay", "--json")
    assert replay.json() == {"replayed": 1, "failed": 0}
    again = got[-1]
    assert again.headers["Idempotency-Key"] == "alert-7"
    assert again.headers["X-Tribes-Attempt"] == str(ATTEMPTS + 1)
    assert json.loads(again.body) == json.loads(got[0].body)
    assert verify_signature(SECRET, again.headers["X-Tribes-Signature"], again.body)
