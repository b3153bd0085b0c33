"""New alerts to the webhooks, whichever check raised them.

Every check that records alerts runs through ``ops`` (the ingest's data-quality checks,
``tribes run`` and the schedule, ``tribes monitor``), and each sends its new alerts with
:func:`send_alerts`: :mod:`tribes.notify` POSTs them, and a delivery that fails every
attempt goes to the dead-letter table of :mod:`tribes.realtime.webhooks`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from tribes.monitor import MonitorReport, run_monitor
from tribes.notify import notify_alerts
from tribes.realtime import dead_letter
from tribes.settings import RunSettings
from tribes.store import open_run
from tribes.workspace import Workspace


def send_alerts(ws: Workspace, alerts: list[dict[str, Any]]) -> dict[str, int]:
    """POST new ``alerts`` (rows of the alerts table) to the webhooks subscribed to them;
    failed deliveries go to the dead-letter table (``tribes webhooks replay``). Returns
    the deliveries made and failed. Best called with the database closed: the POSTs may
    take seconds, and a dead letter opens the database again."""
    return notify_alerts(ws, alerts, dead_letter=partial(dead_letter, ws))


def monitor_and_notify(ws: Workspace, settings: RunSettings, *, dry_run: bool = False,
                       progress: Callable[[str], None] | None = None
                       ) -> tuple[MonitorReport, dict[str, int]]:
    """The drift check of ``tribes monitor`` against the active version, then, the
    database closed, its new alerts to the webhooks. ``dry_run`` only computes: no alert
    recorded, nothing sent."""
    with open_run(ws, settings, read_only=dry_run) as ctx:
        report = run_monitor(ctx, record=not dry_run, progress=progress)
    sent = {"sent": 0, "failed": 0} if dry_run else send_alerts(ws, report.new_alerts)
    return report, sent
