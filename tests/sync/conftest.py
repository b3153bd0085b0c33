"""A CRM test double that implements the sync contract, and a segmented workspace."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

SECRET = "test-activation-secret-0123456789"


class Crm:
    """Members by customer, from the batches it accepted; checks every signature."""

    def __init__(self) -> None:
        self.members: dict[str, int] = {}
        self.keys: list[str] = []  # Idempotency-Key of every accepted request
        self.requests = 0
        self.fail_next = 0  # answer this many requests with 503
        self.fail_batch: int | None = None  # always refuse this batch number
        self.bad_signatures = 0

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        from tribes.http import verify_signature

        self.requests += 1
        if not verify_signature(SECRET, headers.get("X-Tribes-Signature", ""), body):
            self.bad_signatures += 1
            return 401
        if self.fail_next:
            self.fail_next -= 1
            return 503
        data = json.loads(body)
        if data["batch"] == self.fail_batch:
            return 500
        key = headers["Idempotency-Key"]
        if key in self.keys:
            return 200  # seen: applied once only
        self.keys.append(key)
        for r in data["removals"]:
            self.members.pop(r["customer_key"], None)
        for u in data["upserts"]:
            self.members[u["customer_key"]] = u["segment_id"]
        return 200


@pytest.fixture
def crm() -> Iterator[tuple[str, Crm]]:
    state = Crm()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            code = state.handle(dict(self.headers), body)
            self.send_response(code)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/sync", state
    server.shutdown()
