"""The service with the stream in it (tribes serve --stream): online segments, recent
triggers and next-best-content through the API."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.realtime.conftest import RedisServer
from tests.realtime.test_stream import ev, push
from tribes.privacy.keys import create_key
from tribes.service import create_app
from tribes.workspace import open_workspace

KNOWN = "C0000003"


def test_serve_with_the_stream(rt_ws: Path, redis_url: str, redis_server: RedisServer,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIBES_REDIS_URL", redis_url)
    key = create_key(rt_ws, name="t", role="analyst")[0]
    h = {"Authorization": f"Bearer {key}"}
    r = redis_server.client()
    app = create_app(open_workspace(rt_ws), stream=True, redis_url=redis_url)
    with TestClient(app, raise_server_exceptions=False) as client:
        batch = client.get(f"/v1/customers/{KNOWN}/next-best-content", headers=h).json()
        assert batch["source"] == "batch"
        push(r, [ev(KNOWN, "page_view", 0), ev(KNOWN, "add_to_cart", 1),
                 ev("NEWBIE", "page_view", 2), ev("Z", "page_view", 60)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
                r.xinfo_groups("events")[0]["entries-read"] != 4
                or r.xpending("events", "tribes")["pending"]):
            time.sleep(0.05)
        assert r.xinfo_groups("events")[0]["entries-read"] == 4
        new = client.get("/v1/customers/NEWBIE/next-best-content", headers=h)
        assert new.status_code == 200, new.text
        assert new.json()["source"] == "online" and new.json()["content"]
        p = client.get(f"/v1/customers/{KNOWN}", headers=h).json()
        assert p["online"]["segment_id"] is not None and p["online"]["last_event_at"]
        kinds = [t["type"] for t in p["recent_triggers"]]
        assert "trigger.abandoned_cart" in kinds  # Z's event an hour later settled it
        content = client.get(f"/v1/customers/{KNOWN}/next-best-content", headers=h).json()
        assert content["source"] == "online"
        assert content["segment_id"] == p["online"]["segment_id"]
        latest = client.get("/v1/triggers", headers=h).json()
        assert latest["available"] and latest["triggers"]
        assert latest["counts"]["trigger.abandoned_cart"] == 1
        assert sum(latest["counts"].values()) == len(latest["triggers"])
        viewer = create_key(rt_ws, name="v", role="viewer")[0]
        summary = client.get("/v1/triggers/summary",
                             headers={"Authorization": f"Bearer {viewer}"}).json()
        assert summary["counts"] == latest["counts"] and summary["triggers"] == []
        assert client.get("/v1/triggers", headers={"Authorization": f"Bearer {viewer}"}
                          ).status_code == 403
