"""The schedule of tribes run: slots in calendar time and time zones, a missed run made up
once, the scheduler thread running the real pipeline, and the CLI."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import CliResult
from tribes.cli import main
from tribes.errors import ConfigError
from tribes.ops import schedule as sched
from tribes.ops.pipeline import history
from tribes.store.db import open_engine
from tribes.workspace import open_workspace

WED = datetime(2026, 12, 2, 10, 30, tzinfo=UTC)  # a Wednesday


def test_calendar_slots() -> None:
    weekly = sched.Schedule("weekly", "mon 03:00")
    assert weekly.next_after(WED) == datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    # exactly at the slot: the next one, a week on
    assert weekly.next_after(datetime(2026, 12, 7, 3, 0, tzinfo=UTC)) == \
        datetime(2026, 12, 14, 3, 0, tzinfo=UTC)
    assert sched.Schedule("daily", "03:00").next_after(WED) == \
        datetime(2026, 12, 3, 3, 0, tzinfo=UTC)
    assert sched.Schedule("hourly", ":15").next_after(WED) == \
        datetime(2026, 12, 2, 11, 15, tzinfo=UTC)
    assert sched.Schedule("6h").next_after(WED) == WED + timedelta(hours=6)
    assert sched.Schedule("weekly").describe() == "weekly at mon 03:00 (UTC), re-segmenting"


def test_wall_clock_time_in_a_time_zone_across_daylight_saving() -> None:
    paris = sched.Schedule("daily", "03:00", tz="Europe/Paris")
    # winter: 03:00 in Paris is 02:00 UTC; summer: 01:00 UTC
    assert paris.next_after(datetime(2026, 1, 10, 12, tzinfo=UTC)) == \
        datetime(2026, 1, 11, 2, 0, tzinfo=UTC)
    assert paris.next_after(datetime(2026, 7, 10, 12, tzinfo=UTC)) == \
        datetime(2026, 7, 11, 1, 0, tzinfo=UTC)
    # the night the clocks go forward (29 March 2026)
    assert paris.next_after(datetime(2026, 3, 28, 12, tzinfo=UTC)) == \
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(("every", "at", "tz", "message"), [
    ("weekly", "monday", "UTC", "a day and a time"), ("daily", "25:00", "UTC", "a time"),
    ("hourly", ":75", "UTC", "a minute past"), ("fortnightly", "", "UTC", "use hourly"),
    ("30s", "", "UTC", "once a minute"), ("6h", "03:00", "UTC", "not with a duration"),
    ("daily", "03:00", "Mars/Olympus", "unknown time zone")])
def test_bad_schedules_say_what_to_write(every: str, at: str, tz: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        sched.Schedule(every, at, tz)


def test_a_missed_run_is_made_up_once() -> None:
    s = sched.Schedule("daily", "03:00", since=WED.isoformat())
    assert not s.due(WED + timedelta(hours=1), None)
    # the service was down for three days: one run due, then none until the next slot
    late = WED + timedelta(days=3)
    assert s.due(late, None)
    assert not s.due(late + timedelta(minutes=1), late)
    assert s.due(late + timedelta(days=1), late)


def test_the_scheduler_runs_the_pipeline_when_due(shop) -> None:
    ws_path, _ = shop
    ws = open_workspace(ws_path)
    with open_engine(ws) as engine:  # the copy's own tribes run would count as the last run
        t = engine.table("stage_runs")
        engine.delete_where("stage_runs", t.stage == "pipeline")
    since = datetime.now(UTC) - timedelta(days=2)
    sched.save_schedule(ws, sched.Schedule("daily", "03:00", since=since.isoformat()))
    runner = sched.Scheduler(ws, lambda: sched.scheduled_run(ws), poll_s=0.05)
    runner.start()
    deadline = time.monotonic() + 120
    while runner.runs < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # more polls: the run is recorded, so none follows
    runner.stop()
    assert runner.runs == 1 and runner.failures == 0
    with open_engine(ws, read_only=True) as engine:
        runs = history(engine)
    assert len(runs) == 1 and runs[0]["steps"]["monitor"] == "done"
    assert sched.last_run_at(ws) is not None
    # a failing run is not retried before the next slot
    bad = sched.Scheduler(ws, lambda: 1 / 0, now=lambda: datetime.now(UTC) + timedelta(
        days=1))
    with pytest.raises(ZeroDivisionError):
        bad.step()
    assert not bad.step() and bad.failures == 1


def test_a_scheduled_run_resegments_unless_it_only_refreshes(shop) -> None:
    """The schedule is the periodic re-segmentation; --refresh-only leaves it to [ops]
    resegment, like tribes run."""
    ws_path, data = shop
    ws = open_workspace(ws_path)
    assert main(["-q", "-w", str(ws_path), "ingest", str(data / "app"), "--source",
                 "app"]) == 0
    sched.save_schedule(ws, sched.Schedule("daily", resegment=False))
    out = sched.scheduled_run(ws)
    assert out["segment"] is None and out["refresh"]["version"] == 1
    assert out["steps"]["segment"].endswith("([ops] resegment = on-drift)")
    sched.save_schedule(ws, sched.Schedule("weekly", "mon 03:00"))
    assert sched.load_schedule(ws).resegment  # the default, and that of older files
    out = sched.scheduled_run(ws)
    assert out["segment"]["version"] == 2 and out["refresh"] is None
    assert out["resegment"] == sched.SCHEDULED
    assert "refreshing memberships" in sched.Schedule("daily", resegment=False).describe()


def test_schedule_cli(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    ws = tmp_path / "ws"
    assert cli("init", ws).code == 0
    assert "No schedule" in cli("-w", ws, "schedule").out
    r = cli("-w", ws, "schedule", "--every", "weekly", "--at", "mon 03:00", "--json")
    assert r.code == 0, r.err
    out = r.json()
    nxt = datetime.fromisoformat(out["next_run"])
    assert nxt.weekday() == 0 and (nxt.hour, nxt.minute) == (3, 0)
    assert out["last_run"] is None
    assert "weekly at mon 03:00" in cli("-w", ws, "schedule").out
    assert out["schedule"]["resegment"] is True
    r = cli("-w", ws, "schedule", "--every", "daily", "--refresh-only", "--json")
    assert r.code == 0 and r.json()["schedule"]["resegment"] is False
    assert cli("-w", ws, "schedule", "--refresh-only").code != 0  # without --every
    bad = cli("-w", ws, "schedule", "--every", "weekly", "--at", "someday")
    assert bad.code != 0 and "a day and a time" in (bad.err + bad.out)
    assert cli("-w", ws, "schedule", "--off").code == 0
    assert not (ws / sched.FILE).exists()
