"""Orchestration: work that spans stages (``tribes run``, the scheduler, erasure across
tables, segment comparison, ingest with its data-quality checks). The CLI, the service and
the report call into it; nothing below imports it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tribes.lazy import lazy_names
from tribes.ops.erasure import forget
from tribes.ops.identity import (
    RuleChange,
    block_identifier,
    merge_identities,
    rules_table,
    show_identity,
    split_identity,
    undo_rule,
)
from tribes.ops.segment_index import SegmentIndex

if TYPE_CHECKING:
    from tribes.ops.alerts import monitor_and_notify
    from tribes.ops.checked_ingest import ingest_checked
    from tribes.ops.compare import Campaign, compare_methods
    from tribes.ops.handlers import AccessLog, Jobs, Service
    from tribes.ops.pipeline import history, run_and_notify, run_pipeline
    from tribes.ops.schedule import (
        Schedule,
        Scheduler,
        last_run_at,
        load_schedule,
        save_schedule,
        scheduled_run,
    )
    from tribes.ops.versions import activate, rollback

# served on first use: their modules import SciPy and scikit-learn
_LAZY = {
    "monitor_and_notify": "tribes.ops.alerts",
    "ingest_checked": "tribes.ops.checked_ingest",
    "Campaign": "tribes.ops.compare",
    "compare_methods": "tribes.ops.compare",
    "AccessLog": "tribes.ops.handlers",
    "Jobs": "tribes.ops.handlers",
    "Service": "tribes.ops.handlers",
    "history": "tribes.ops.pipeline",
    "run_and_notify": "tribes.ops.pipeline",
    "run_pipeline": "tribes.ops.pipeline",
    "Schedule": "tribes.ops.schedule",
    "Scheduler": "tribes.ops.schedule",
    "last_run_at": "tribes.ops.schedule",
    "load_schedule": "tribes.ops.schedule",
    "save_schedule": "tribes.ops.schedule",
    "scheduled_run": "tribes.ops.schedule",
    "activate": "tribes.ops.versions",
    "rollback": "tribes.ops.versions",
}

__all__ = [
    "AccessLog",
    "Campaign",
    "Jobs",
    "RuleChange",
    "Schedule",
    "Scheduler",
    "SegmentIndex",
    "Service",
    "activate",
    "block_identifier",
    "compare_methods",
    "forget",
    "history",
    "ingest_checked",
    "last_run_at",
    "load_schedule",
    "merge_identities",
    "monitor_and_notify",
    "rollback",
    "rules_table",
    "run_and_notify",
    "run_pipeline",
    "save_schedule",
    "scheduled_run",
    "show_identity",
    "split_identity",
    "undo_rule",
]

__getattr__, __dir__ = lazy_names(__name__, _LAZY)
