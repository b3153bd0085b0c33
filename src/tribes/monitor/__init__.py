"""Monitoring: drift of features and segment shares against the active version, and the
alerts it raises (DESIGN §7)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tribes.lazy import lazy_names
from tribes.monitor.alerts import KINDS, ack, list_alerts
from tribes.monitor.quality import check_ingest

if TYPE_CHECKING:
    from tribes.monitor.drift_check import STAGE, MonitorReport, run_monitor

# served on first use: their modules import SciPy and scikit-learn
_LAZY = {
    "MonitorReport": "tribes.monitor.drift_check",
    "STAGE": "tribes.monitor.drift_check",
    "run_monitor": "tribes.monitor.drift_check",
}

__all__ = ["KINDS", "STAGE", "MonitorReport", "ack", "check_ingest", "list_alerts", "run_monitor"]

__getattr__, __dir__ = lazy_names(__name__, _LAZY)
