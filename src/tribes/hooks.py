"""Webhooks as data: who is subscribed, and the event each receives.

``webhooks.json`` in the workspace lists the endpoints (added and removed by
:mod:`tribes.realtime.webhooks`); :func:`read_hooks` reads it. Whatever a webhook receives,
a trigger of the stream rules or an alert (type ``alert.<kind>``), is a :class:`Trigger`,
POSTed as :func:`trigger_body` with :mod:`tribes.http`.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tribes.workspace import Workspace

HOOKS_FILE = "webhooks.json"


@dataclass(frozen=True)
class Hook:
    hook_id: str
    url: str
    events: tuple[str, ...]
    secret: str
    created_at: str

    def wants(self, kind: str) -> bool:
        return any(fnmatch.fnmatchcase(kind, p) for p in self.events)

    def public(self) -> dict[str, Any]:
        return {"id": self.hook_id, "url": self.url, "events": list(self.events),
                "created_at": self.created_at}


def hooks_path(ws: Workspace) -> Path:
    return ws.path / HOOKS_FILE


def read_entries(path: Path) -> list[dict[str, Any]]:
    """The entries of a subscriptions file as stored (none when there is no file)."""
    if not path.exists():
        return []
    return list(json.loads(path.read_text(encoding="utf-8")).get("webhooks", []))


def read_hooks(path: Path) -> list[Hook]:
    """The endpoints of a subscriptions file, in the order they were added."""
    return [Hook(h["hook_id"], h["url"], tuple(h["events"]), h["secret"], h["created_at"])
            for h in read_entries(path)]


@dataclass(frozen=True)
class Trigger:
    kind: str
    customer_key: str
    at: float  # event time, epoch seconds
    trigger_id: str
    data: dict[str, Any]
    segment_id: int | None = None
    source_msg: str = ""  # stream id of the message that caused it (none for a timer)

    def data_json(self) -> str:
        return json.dumps(self.data, sort_keys=True, separators=(",", ":"))

    def to_message(self, data_json: str | None = None) -> dict[str, str]:
        return {"id": self.trigger_id, "type": self.kind, "customer_key": self.customer_key,
                "at": f"{self.at:.3f}", "segment_id": "" if self.segment_id is None
                else str(self.segment_id), "source_msg": self.source_msg,
                "data": self.data_json() if data_json is None else data_json}

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.trigger_id, "type": self.kind, "customer_key": self.customer_key,
                "at": self.at, "segment_id": self.segment_id, "data": self.data}

    @classmethod
    def from_message(cls, m: dict[str, str]) -> Trigger:
        seg = m.get("segment_id") or ""
        return cls(kind=m["type"], customer_key=m["customer_key"], at=float(m["at"]),
                   trigger_id=m["id"], data=json.loads(m.get("data") or "{}"),
                   segment_id=int(seg) if seg else None, source_msg=m.get("source_msg", ""))


def trigger_body(trigger: Trigger) -> bytes:
    """The JSON a webhook receives for ``trigger``."""
    return json.dumps(trigger.to_dict(), sort_keys=True, separators=(",", ":")).encode()
