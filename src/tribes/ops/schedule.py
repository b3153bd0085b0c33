"""When ``tribes run`` runs by itself: a schedule kept in the workspace (``schedule.json``),
run by ``tribes serve`` (or ``tribes schedule --foreground``).

``every`` is ``hourly`` (``at`` = minute past, ``:15``), ``daily`` (``03:00``), ``weekly``
(``mon 03:00``) or a duration (``6h``: that long after the previous run). Times are in
the schedule's time zone (UTC unless given). A run missed while nothing was running is
made up once at the next start, not once per missed slot.

The schedule is the periodic re-segmentation: a scheduled run fits a new segment version
(when the features changed since the last one), as ``tribes run --resegment`` does.
A schedule set with ``resegment = False`` (``tribes schedule --refresh-only``) runs
``tribes run`` as it is: memberships refreshed, a new version by ``[ops] resegment``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tribes.config import parse_duration
from tribes.errors import ConfigError
from tribes.ops.pipeline import history, run_and_notify
from tribes.privacy import acting_as
from tribes.settings import RunSettings
from tribes.store import open_engine
from tribes.workspace import Workspace

log = logging.getLogger(__name__)
FILE = "schedule.json"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HM = re.compile(r"^(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class Schedule:
    every: str  # hourly | daily | weekly | a duration
    at: str = ""
    tz: str = "UTC"
    since: str = ""  # ISO time it was set: the first run is the first slot after it
    resegment: bool = True  # each run fits a new version; False: as [ops] resegment says

    def __post_init__(self) -> None:
        self.zone()  # a clear error now, not at the first run
        if self.every in ("hourly", "daily", "weekly"):
            self._slot()
        else:
            try:
                if parse_duration(self.every).total_seconds() < 60:
                    raise ConfigError("a schedule runs at most once a minute",
                                      code="E_SCHEDULE")
            except ConfigError as exc:
                if exc.code == "E_SCHEDULE":
                    raise
                raise ConfigError(f"--every '{self.every}': use hourly, daily, weekly or a "
                                  "duration such as 6h", code="E_SCHEDULE") from None
            if self.at:
                raise ConfigError("--at goes with hourly, daily or weekly, not with a "
                                  "duration", code="E_SCHEDULE")

    def zone(self) -> Any:
        if self.tz == "UTC":
            return UTC
        try:
            return ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"unknown time zone '{self.tz}' (e.g. Europe/Paris)",
                              code="E_SCHEDULE") from None

    def _slot(self) -> tuple[int | None, int, int]:
        """(weekday or None, hour, minute) of a calendar schedule."""
        text = self.at.strip().lower()
        default = {"hourly": ":00", "daily": "03:00", "weekly": "mon 03:00"}[self.every]
        text = text or default
        hint = {"hourly": "a minute past the hour, e.g. :15",
                "daily": "a time, e.g. 03:00",
                "weekly": "a day and a time, e.g. \"mon 03:00\""}[self.every]
        bad = ConfigError(f"--at '{self.at}' for {self.every}: use {hint}", code="E_SCHEDULE")
        day = None
        if self.every == "hourly":
            m = re.match(r"^:?(\d{1,2})$", text)
            if not m or int(m.group(1)) > 59:
                raise bad
            return None, 0, int(m.group(1))
        if self.every == "weekly":
            parts = text.split()
            if len(parts) != 2 or parts[0][:3] not in DAYS:
                raise bad
            day, text = DAYS.index(parts[0][:3]), parts[1]
        m = _HM.match(text)
        if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
            raise bad
        return day, int(m.group(1)), int(m.group(2))

    def next_after(self, t: datetime) -> datetime:
        """The first run time strictly after ``t`` (a duration: ``t`` + it)."""
        if self.every not in ("hourly", "daily", "weekly"):
            return t + parse_duration(self.every)
        day, hour, minute = self._slot()
        local = t.astimezone(self.zone())
        if self.every == "hourly":
            cand = local.replace(minute=minute, second=0, microsecond=0)
            while cand <= local:
                cand += timedelta(hours=1)
            return cand.astimezone(UTC)
        cand = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if day is not None:
            cand += timedelta(days=(day - cand.weekday()) % 7)
        step = timedelta(days=7 if day is not None else 1)
        while cand <= local:
            cand += step
        # a wall-clock time in the zone (daylight saving moves the UTC instant)
        return cand.replace(tzinfo=None).replace(tzinfo=self.zone()).astimezone(UTC)

    def due(self, now: datetime, last: datetime | None) -> bool:
        """Whether a run is due: a slot has come since ``last`` (the last run, else the
        time the schedule was set)."""
        ref = last or (datetime.fromisoformat(self.since) if self.since else None)
        return ref is None or self.next_after(ref) <= now

    def describe(self) -> str:
        what = ("re-segmenting" if self.resegment else
                "refreshing memberships, re-segmenting as [ops] resegment says")
        if self.every in ("hourly", "daily", "weekly"):
            _, hour, minute = self._slot()
            at = self.at or {"hourly": f":{minute:02d}", "daily": f"{hour:02d}:{minute:02d}",
                             "weekly": "mon 03:00"}[self.every]
            return f"{self.every} at {at} ({self.tz}), {what}"
        return f"every {self.every} after the previous run, {what}"


def path(ws: Workspace) -> Path:
    return ws.path / FILE


def load_schedule(ws: Workspace) -> Schedule | None:
    p = path(ws)
    if not p.exists():
        return None
    try:
        return Schedule(**json.loads(p.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{FILE} is not a valid schedule ({exc}); set it again with "
                          "tribes schedule --every ...", code="E_SCHEDULE") from None


def save_schedule(ws: Workspace, schedule: Schedule | None) -> None:
    p = path(ws)
    if schedule is None:
        p.unlink(missing_ok=True)
        return
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(schedule), indent=2) + "\n", encoding="utf-8")
    tmp.replace(p)


def last_run_at(ws: Workspace, *, wait: float | None = None) -> datetime | None:
    """When the last pipeline run started (any: by hand, cron or the schedule);
    ``wait``: for a process writing the workspace (as for :func:`open_engine`)."""
    with open_engine(ws, read_only=True, wait=wait) as engine:
        runs = history(engine, limit=1)
    return runs[0]["started_at"].to_pydatetime() if runs else None


class Scheduler:
    """Runs ``work`` when the schedule says, on a thread, until stopped. The schedule
    file is read again before every wait, so ``tribes schedule`` changes a running
    service's schedule."""

    def __init__(self, ws: Workspace, work: Callable[[], Any], *,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 poll_s: float = 30.0) -> None:
        self.ws, self.work, self.now, self.poll_s = ws, work, now, poll_s
        self.stop_event = threading.Event()
        self.runs = 0
        self.failures = 0
        self._failed_at: datetime | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.loop, name="tribes-schedule",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def step(self) -> bool:
        """Run once if due; whether it ran."""
        sched = load_schedule(self.ws)
        if sched is None:
            return False
        last = max((t for t in (last_run_at(self.ws), self._failed_at) if t is not None),
                   default=None)
        if not sched.due(self.now(), last):
            return False
        log.info("schedule (%s): running the pipeline", sched.describe())
        try:
            self.work()
            self.runs += 1
        except Exception:
            self.failures += 1
            self._failed_at = self.now()  # not again before the next slot
            log.exception("scheduled run failed; the next slot tries again")
            raise
        return True

    def loop(self) -> None:
        while not self.stop_event.is_set():
            # logged by step; a failed run must not end the schedule
            with contextlib.suppress(Exception):
                self.step()
            self.stop_event.wait(self.poll_s)


SCHEDULED = "the schedule re-segments (tribes schedule)"


def scheduled_run(ws: Workspace) -> dict[str, Any]:
    """One pipeline run as the schedule makes it (audited as ``schedule``), alerts sent:
    a re-segmentation, unless the schedule only refreshes."""
    # the scheduler is an edge: each run takes the configuration as it is then
    settings = RunSettings.resolve(ws.config)
    sched = load_schedule(ws)
    resegment = True if sched is None or sched.resegment else None
    with acting_as("schedule"):
        rep, _ = run_and_notify(ws, settings, resegment=resegment, asked=SCHEDULED)
    log.info("scheduled run %s: %s", rep.run_id, rep.steps)
    return rep.as_dict()
