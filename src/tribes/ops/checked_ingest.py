"""Ingest a batch, then check its data quality and tell the webhooks.

The ingest stage loads (or quarantines) the rows and returns its summary; the checks of
:mod:`tribes.monitor.quality` judge the batch against the source's history and record new
alerts, which are POSTed to the webhooks subscribed to them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tribes.ingest import IngestOptions, IngestSummary, Progress, ingest
from tribes.monitor import check_ingest
from tribes.ops.alerts import send_alerts
from tribes.settings import RunSettings
from tribes.store import open_run
from tribes.workspace import Workspace


@dataclasses.dataclass(frozen=True)
class CheckedIngest:
    """An ingested batch with its data-quality alerts and their webhook deliveries."""

    summary: IngestSummary
    webhooks: dict[str, int]


def ingest_checked(ws: Workspace, settings: RunSettings, inputs: list[str],
                   opts: IngestOptions, progress: Progress | None = None, *,
                   notify: bool = True) -> CheckedIngest:
    """Ingest ``inputs`` as one batch (:func:`tribes.ingest.ingest`) and run the batch's
    data-quality checks on one open database; then, the database closed (retries do not
    hold the workspace), and when ``notify``, POST its new alerts to the webhooks."""
    with open_run(ws, settings) as ctx:
        summary = ingest(ctx, inputs, opts, progress=progress)
        if progress is not None:
            progress("checking data quality")
        summary = check_ingest(ctx, summary, volume=opts.check_volume)
    delivered: dict[str, Any] = {"sent": 0, "failed": 0}
    if notify and summary.alerts:
        delivered = send_alerts(ws, summary.alerts)
    return CheckedIngest(summary=summary, webhooks=delivered)
