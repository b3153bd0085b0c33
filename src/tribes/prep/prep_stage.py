"""The prep stage: stitch identities and sessionize, stored as ``identities`` and ``sessions``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tribes.config import format_duration
from tribes.engine import Engine
from tribes.prep.incremental import appended_events, incremental_prep
from tribes.prep.sessions import parts, sessionize
from tribes.prep.stitch import StitchReport, drop_temporaries, stitch
from tribes.settings import RunSettings
from tribes.store import (
    ID_TUPLES,
    IDENTITIES,
    PREP_TOUCHED,
    SESSIONS,
    IdentityRule,
    events_fingerprint,
    last_run,
    list_rules,
    new_run_id,
    record_run,
)
from tribes.workspace import RunContext

log = logging.getLogger(__name__)

STAGE = "prep"


@dataclass(frozen=True)
class PrepReport:
    """What a prep run did."""

    run_id: str
    events: int
    session_timeout: str
    stitching: StitchReport
    sessions: int
    seconds: float
    tuples: int = 0  # rows of id_tuples
    # an incremental prep's figures (Increment.as_dict); None: a full prep
    incremental: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "events": self.events,
                "session_timeout": self.session_timeout,
                "stitching": self.stitching.as_dict(), "sessions": self.sessions,
                "tuples": self.tuples, "incremental": self.incremental,
                "seconds": self.seconds}


def run_prep(ctx: RunContext, *, progress: Callable[[str], None] | None = None,
             full: bool = False) -> PrepReport:
    """Stitch identities and sessionize all stored events; replaces both tables at once.

    Idempotent: the same events and identity rules give the same ``identities`` and
    ``sessions``. The run's settings give the session timeout and the shared-id limit;
    the identity rules in force (tribes identity) are applied.

    When the only change since the last prep is an append of new events (same settings,
    no identity rules, nothing erased), only what they touch is redone
    (:mod:`tribes.prep.incremental`), with the same result; ``full`` redoes everything.
    """
    say = progress or (lambda step: None)
    started_perf, started = time.perf_counter(), datetime.now(UTC)
    ws, engine, settings = ctx.ws, ctx.engine, ctx.settings
    timeout = settings.session_timeout
    fingerprint = events_fingerprint(engine)
    events = engine.table("events")
    rules = list_rules(engine)
    last = last_prep(engine)
    new = None
    if not full and not any(r.active for r in rules) and last is not None and (
            last.get("params") == prep_params(settings, rules)):
        new = appended_events(engine, last)
    if new is not None:
        run_id = new_run_id(STAGE, started)
        with engine.transaction():
            inc = incremental_prep(engine, new, timeout=timeout,
                                   max_ids=settings.max_ids_per_component, say=say)
            report = PrepReport(
                run_id=run_id, events=fingerprint.rows, session_timeout=settings.timeout_text,
                stitching=inc.stitching,
                sessions=int(engine.scalar(engine.table("sessions").count())),
                seconds=round(time.perf_counter() - started_perf, 3),
                tuples=int(engine.scalar(engine.table("id_tuples").count())),
                incremental={**inc.as_dict(), "after": last["run_id"] if last else None},
            )
            record_run(engine, run_id=run_id, stage=STAGE, started_at=started,
                       fingerprint=fingerprint, params=prep_params(settings, rules),
                       report=report.as_dict())
        log.info("prep (incremental): %s", report.as_dict())
        return report

    say("stitching identities")
    try:
        identities, stitched = stitch(
            engine, events, max_ids=settings.max_ids_per_component, rules=rules,
            on_pass=lambda n, changed: say(f"stitching identities (pass {n}, {changed:,} "
                                           "labels changed)"),
        )
        run_id = new_run_id(STAGE, started)
        with engine.transaction():
            say("storing identities")
            engine.replace_table("identities", identities.cast(IDENTITIES))
            engine.replace_table("id_tuples", engine.table("_st_tuples").cast(ID_TUPLES))
            touched = engine.table("prep_touched")
            engine.replace_table("prep_touched", touched.limit(0).cast(PREP_TOUCHED))
            n_tuples = int(engine.scalar(engine.table("id_tuples").count()))
            n_parts = parts(fingerprint.rows, ws.config.prep.part_events)
            ids = engine.table("identities")
            types = engine.execute(events.select("event_type").distinct())["event_type"]
            vocabulary = sorted(str(v) for v in types.dropna())
            for i in range(n_parts):
                say("sessionizing" + (f" (part {i + 1} of {n_parts})" if n_parts > 1 else ""))
                sessions = sessionize(events, ids, timeout,
                                      (i, n_parts) if n_parts > 1 else None,
                                      vocabulary).cast(SESSIONS)
                if i == 0:
                    engine.replace_table("sessions", sessions)
                else:
                    engine.insert("sessions", sessions)
            n_sessions = int(engine.scalar(engine.table("sessions").count()))
            report = PrepReport(
                run_id=run_id, events=fingerprint.rows, session_timeout=settings.timeout_text,
                stitching=stitched, sessions=n_sessions,
                seconds=round(time.perf_counter() - started_perf, 3), tuples=n_tuples,
            )
            record_run(engine, run_id=run_id, stage=STAGE, started_at=started,
                       fingerprint=fingerprint, params=prep_params(settings, rules),
                       report=report.as_dict())
    finally:
        drop_temporaries(engine)
    log.info("prep: %s", report.as_dict())
    return report


def prep_params(settings: RunSettings, rules: Sequence[IdentityRule] = ()) -> dict[str, Any]:
    """The parameters a prep run is stored with (and compared by, in ``tribes run`` and
    ``tribes features``): a new or undone identity rule makes the stored prep stale."""
    params: dict[str, Any] = {"session_timeout": settings.timeout_text,
                              "max_ids_per_component": settings.max_ids_per_component}
    in_force = [r.rule_id for r in rules if r.active]
    if in_force:  # absent without rules, as before rules existed
        params["identity_rules"] = in_force
    return params


def last_prep(engine: Engine) -> dict[str, Any] | None:
    run = last_run(engine, STAGE)
    params = (run or {}).get("params") or {}
    if "session_timeout_s" in params:  # stored before the timeout had one stored form
        seconds = params.pop("session_timeout_s")
        run = {**(run or {}), "params": {
            "session_timeout": format_duration(timedelta(seconds=seconds)), **params}}
    return run
