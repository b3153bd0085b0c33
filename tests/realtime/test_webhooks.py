"""Webhook delivery: signed, retried with backoff, exactly one success, dead letters and
replay. The receiver is a real HTTP server on a loopback port."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.realtime.conftest import RedisServer, tribes
from tests.realtime.test_stream import configure, consume, ev, push
from tribes.http import sign, verify_signature
from tribes.realtime.webhooks import registry
from tribes.workspace import open_workspace


@dataclass
class Receiver:
    url: str
    statuses: list[int]  # answers in turn; the last one repeats
    requests: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver(url="", statuses=[200])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = rec.statuses[min(len(rec.requests), len(rec.statuses) - 1)]
            rec.requests.append({"headers": dict(self.headers), "body": body,
                                 "status": status, "at": time.monotonic()})
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield rec
    server.shutdown()


SECRET = "s3cret-s3cret-s3cret"


def _fast_retries(path: Path, attempts: int) -> None:
    configure(path, 'max_attempts = 6', f'max_attempts = {attempts}')
    configure(path, 'backoff = "1s"', 'backoff = "0.2s"')


def test_fails_twice_then_one_delivery_with_a_valid_signature(
        rt_ws: Path, redis_url: str, redis_server: RedisServer, receiver: Receiver) -> None:
    _fast_retries(rt_ws, 5)
    receiver.statuses = [500, 503, 200]
    registry(open_workspace(rt_ws)).add(receiver.url, ["trigger.abandoned_cart"], SECRET)
    push(redis_server.client(), [ev("A", "add_to_cart", 0), ev("Z", "page_view", 45)])
    consume(rt_ws, redis_url, idle=3.0)
    reqs = receiver.requests
    assert [r["status"] for r in reqs] == [500, 503, 200]
    assert len({r["headers"]["Idempotency-Key"] for r in reqs}) == 1
    assert [r["headers"]["X-Tribes-Attempt"] for r in reqs] == ["1", "2", "3"]
    for r in reqs:
        assert verify_signature(SECRET, r["headers"]["X-Tribes-Signature"], r["body"])
        assert not verify_signature("another-secret-12345", r["headers"]["X-Tribes-Signature"],
                                    r["body"])
    # backoff: 0.2 s, then 0.4 s
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(reqs)]
    assert gaps[0] >= 0.19 and gaps[1] >= 0.39
    body = json.loads(reqs[-1]["body"])
    assert body["type"] == "trigger.abandoned_cart" and body["id"] == \
        reqs[0]["headers"]["Idempotency-Key"]
    # a restarted consumer does not deliver it again
    consume(rt_ws, redis_url, consumer="c2", idle=1.0)
    assert len(receiver.requests) == 3


def test_dead_letter_and_replay(rt_ws: Path, redis_url: str, redis_server: RedisServer,
                                receiver: Receiver) -> None:
    _fast_retries(rt_ws, 2)
    receiver.statuses = [500]
    hook = registry(open_workspace(rt_ws)).add(receiver.url, ["trigger.*"], SECRET)
    push(redis_server.client(), [ev("A", "add_to_cart", 0), ev("Z", "page_view", 45)])
    consume(rt_ws, redis_url, idle=2.0)
    assert len(receiver.requests) == 2
    dead = json.loads(tribes("-w", rt_ws, "webhooks", "deadletters", "--json"))
    assert [d["webhook_id"] for d in dead["deadletters"]] == [hook.hook_id]
    assert dead["deadletters"][0]["last_error"] == "HTTP 500"
    receiver.statuses = [200]
    receiver.requests.clear()
    res = json.loads(tribes("-w", rt_ws, "webhooks", "replay", "--json"))
    assert res == {"replayed": 1, "failed": 0}
    assert len(receiver.requests) == 1
    r = receiver.requests[0]
    assert verify_signature(SECRET, r["headers"]["X-Tribes-Signature"], r["body"])
    assert json.loads(r["body"])["type"] == "trigger.abandoned_cart"
    again = json.loads(tribes("-w", rt_ws, "webhooks", "deadletters", "--json"))
    assert again["deadletters"] == []


def test_signature_checks() -> None:
    body = b'{"a":1}'
    h = sign("k" * 20, body, ts=1_000_000)
    assert verify_signature("k" * 20, h, body, now=1_000_100)
    assert not verify_signature("k" * 20, h, body + b" ", now=1_000_100)
    assert not verify_signature("k" * 20, h, body, now=1_000_000 + 3600)  # too old
    assert not verify_signature("k" * 20, "garbage", body)


def test_webhooks_cli(rt_ws: Path) -> None:
    out = json.loads(tribes("-w", rt_ws, "webhooks", "add", "--url",
                            "http://127.0.0.1:9/hook", "--events", "trigger.*,segment.entered",
                            "--json"))
    assert len(out["secret"]) >= 32 and out["events"] == ["trigger.*", "segment.entered"]
    listed = json.loads(tribes("-w", rt_ws, "webhooks", "list", "--json"))
    assert [h["id"] for h in listed["webhooks"]] == [out["id"]]
    assert "secret" not in listed["webhooks"][0]
    assert (rt_ws / "webhooks.json").stat().st_mode & 0o777 == 0o600
    from tribes.cli import main

    assert main(["-w", str(rt_ws), "webhooks", "add", "--url", "ftp://x"]) == 3
    assert main(["-w", str(rt_ws), "webhooks", "add", "--url", "http://x", "--events",
                 "order.*"]) == 3
    tribes("-w", rt_ws, "webhooks", "remove", out["id"])
    assert json.loads(tribes("-w", rt_ws, "webhooks", "list", "--json"))["webhooks"] == []


_WORKER = """
import sys, time, redis
from pathlib import Path
from tribes.realtime.webhooks import Delivery
from tribes.workspace import open_workspace
ws = open_workspace(Path(sys.argv[1]))
d = Delivery(ws, redis.Redis(port=int(sys.argv[2]), decode_responses=True),
             stream="triggers", consumer="worker-a")
while True:
    d.step()
"""


def test_a_delivery_cut_off_by_a_killed_worker_is_made_by_another(
        rt_ws: Path, redis_url: str, redis_server: RedisServer, tmp_path: Path) -> None:
    """The worker dies while its receiver holds the POST open: another worker claims the
    trigger and, once the dead one's marker expires, delivers it (same idempotency key);
    no trigger is acknowledged undelivered."""
    import subprocess
    import sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tribes.realtime.rules import Trigger
    from tribes.realtime.webhooks import Delivery

    configure(rt_ws, 'claim_idle = "60s"', 'claim_idle = "1s"')
    configure(rt_ws, 'timeout = "5s"', 'timeout = "2s"')  # the marker: 2 x 2 s + 5 s
    got: list[dict[str, Any]] = []
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            first = not got
            got.append({"key": self.headers["Idempotency-Key"], "id": json.loads(body)["id"],
                        "answered": not first})
            if first:
                release.wait(60)  # hangs until the test ends: its sender is killed
                return
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    ws = open_workspace(rt_ws)
    registry(ws).add(url, ["trigger.*"], SECRET)
    r = redis_server.client()
    ids = [f"t{i}" for i in range(3)]
    for i in ids:
        r.xadd("triggers", Trigger(kind="trigger.abandoned_cart", customer_key="k" + i,
                                   at=time.time(), trigger_id=i, data={}).to_message())
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    a = subprocess.Popen([sys.executable, str(script), str(rt_ws), str(redis_server.port)])
    try:
        deadline = time.time() + 60
        while not got and time.time() < deadline:
            time.sleep(0.05)
        assert got, "worker A never posted"
        a.kill()  # while its POST hangs
        a.wait(timeout=10)
        b = Delivery(ws, redis_server.client(), stream="triggers", consumer="worker-b")
        deadline = time.time() + 40
        while time.time() < deadline:
            b.step()
            if {g["id"] for g in got if g["answered"]} == set(ids):
                break
            time.sleep(0.1)
    finally:
        release.set()
        if a.poll() is None:
            a.kill()
        server.shutdown()
    assert {g["id"] for g in got if g["answered"]} == set(ids)
    assert all(g["key"] == g["id"] for g in got)  # one idempotency key per trigger
    assert len([g for g in got if g["answered"]]) == len(ids)  # each answered once
    assert r.xpending("triggers", "tribes-webhooks")["pending"] == 0
    assert r.zcard("tribes:wh:retry") == 0
