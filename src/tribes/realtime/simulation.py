"""The rules over a file of events, in memory: ``tribes triggers test``.

The same checks and rules as ``tribes stream`` (events.py, rules.py) with state in a
dict instead of Redis and nothing written anywhere: for trying a rule's settings on
sample events before it reaches customers. Batches and the watermark work as in the
stream (event time; timers fire once the newest event time passes them), and
``advance`` moves the clock on after the last event, as a quiet stream would.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tribes.config import parse_duration
from tribes.errors import InputError
from tribes.realtime import reference
from tribes.realtime.events import EventChecker, Rejected, StreamEvent
from tribes.realtime.rules import CLOCK_SKEW, Processor, Trigger
from tribes.settings import RunSettings
from tribes.workspace import Workspace


@dataclass
class Simulation:
    triggers: list[Trigger] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    events: int = 0
    duplicates: int = 0
    pending_timers: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"events": self.events, "duplicates": self.duplicates,
                "rejected": dict(self.rejected), "pending_timers": self.pending_timers,
                "triggers": [t.to_dict() for t in self.triggers]}


def read_messages(path: Path) -> list[Any]:
    """JSON Lines (one event object per line) or a JSON array of objects."""
    if not path.exists():
        raise InputError(f"no file '{path}'", code="E_NO_INPUT")
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InputError(f"{path.name} is not valid JSON: {exc}", code="E_INPUT") from None
        return list(data)
    out: list[Any] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append(line)  # rejected as malformed, as ingest would
    return out


def simulate(ws: Workspace, settings: RunSettings, messages: Iterable[Any], *,
             advance: str | None = None,
             batch: int | None = None, ref: reference.Reference | None = None,
             now: float | None = None) -> Simulation:
    cfg = ws.config
    ref = ref or reference.load(ws, settings)
    checker = EventChecker(cfg, ws.secret(), erased=ref.erased)
    proc = Processor(cfg.realtime, ref,
                     session_timeout=settings.timeout_s,
                     churn_threshold=cfg.clv.churn_threshold, clv_period=cfg.clv.period)
    size = batch or cfg.realtime.batch
    wall = time.time() if now is None else now
    states: dict[str, dict[str, Any]] = {}
    timers: dict[str, float] = {}
    seen: set[str] = set()
    sim = Simulation()
    watermark = 0.0
    msgs = list(messages)

    def run(events: list[StreamEvent], until: float) -> None:
        due = sorted(((m, s) for m, s in timers.items() if s <= until), key=lambda x: x[1])
        out = proc.process(events, states, due, until)
        for m in out.fired:
            timers.pop(m, None)
        for m in out.cancel:
            timers.pop(m, None)
        timers.update(out.schedule)
        sim.triggers.extend(out.triggers)

    first_ts = None
    for i in range(0, len(msgs), size):
        events: list[StreamEvent] = []
        for m in msgs[i:i + size]:
            c = checker.check(m, now=wall)
            eid = c.result.event_id
            if eid in seen:
                sim.duplicates += 1
                continue
            seen.add(eid)
            if isinstance(c.result, Rejected):
                sim.rejected[c.result.reason] += 1
            else:
                events.append(c.result)
        sim.events += len(events)
        if first_ts is None and events:
            # churn timers of the CLV fit's customers, as the stream seeds them
            first_ts = min(e.ts for e in events)
            for m, due in proc.churn_schedule(after=first_ts).items():
                timers.setdefault(m, due)
        watermark = max([watermark, *(min(e.ts, wall + CLOCK_SKEW) for e in events)])
        run(events, watermark)
    if advance:
        run([], watermark + parse_duration(advance).total_seconds())
    sim.pending_timers = len(timers)
    return sim
