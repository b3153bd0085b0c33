"""The FastAPI application: middleware (body limit, metrics), error bodies, routers."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tribes import __version__
from tribes.ops import AccessLog, Jobs, Scheduler, SegmentIndex, Service, scheduled_run
from tribes.realtime import Consumer, Live
from tribes.service import errors
from tribes.service.metrics import Metrics
from tribes.service.routes import register
from tribes.service.security import KeyRing, RateLimiter
from tribes.settings import RunSettings
from tribes.store import shared_engine
from tribes.workspace import Workspace

log = logging.getLogger(__name__)


class BodyLimit:
    """413 for a request body over ``limit`` bytes, by header or as it streams in
    (chunked): the body is read here, up to the limit, before the route sees it."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_large = f"request body over {self.limit // 1024} KiB; send smaller batches"
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _reply(send, 413, "E_TOO_LARGE", too_large)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            if len(body) > self.limit:
                await _reply(send, 413, "E_TOO_LARGE", too_large)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _reply(send: Send, status: int, code: str, message: str) -> None:
    payload = json.dumps({"code": code, "message": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


class Timing:
    """Request counts and latency per route template (``/v1/customers/{ident}``)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(scope.get("method", "?"), path, status[0],
                                 time.perf_counter() - started)


def create_app(ws: Workspace, *, keep_open: bool = True, stream: bool = False,
               redis_url: str | None = None, schedule: bool = True) -> FastAPI:
    """The app for workspace ``ws``.

    ``keep_open`` shares one engine among the app's requests; it is handed over to other
    processes (CLI commands) after ``service.release_after`` without a request, and
    taken back at the next one. ``stream`` also runs the
    ``tribes stream`` consumer in the process (it shares the open database).
    ``schedule`` runs the workspace's schedule (tribes schedule) on a thread.
    """
    cfg = ws.config.service
    settings = RunSettings.resolve(ws.config)  # the service is an edge: resolved once
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with contextlib.ExitStack() as stack:
            if keep_open:
                stack.enter_context(shared_engine(ws))
            access = AccessLog(ws)
            stack.callback(access.close)
            index = SegmentIndex(ws)
            index.refresh(force=True)  # before the first request, not during it

            live = Live(ws)
            stack.callback(live.close)
            if stream:
                stack.enter_context(_consumer(ws, settings, redis_url))
            if schedule:
                runner = Scheduler(ws, lambda: scheduled_run(ws))
                runner.start()
                stack.callback(runner.stop)
            jobs = Jobs(cfg.max_jobs, cfg.max_jobs_per_key)
            app.state.service = Service(ws=ws, settings=settings, index=index,
                                        access=access, jobs=jobs, live=live)
            yield

    app = FastAPI(
        title="tribes",
        version=__version__,
        summary="Behavioral customer segmentation: segments, personas and customers of a "
                "tribes workspace.",
        description="Every route but /v1/health needs `Authorization: Bearer <key>` "
                    "(create keys with `tribes keys create`). Roles: viewer (aggregates), "
                    "analyst (customer level, runs), admin (ingest, erasure, activation, "
                    "exports). Errors are `{\"code\", \"message\"}`.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.ws = ws
    app.state.metrics = metrics
    app.state.keyring = KeyRing(ws.path)
    app.state.limiter = RateLimiter(rate=cfg.rate_limit, burst=cfg.rate_burst)
    app.state.max_batch = cfg.max_batch_events
    errors.install(app)
    register(app)
    app.add_middleware(Timing, metrics=metrics)
    app.add_middleware(BodyLimit, limit=cfg.max_body_kb * 1024)
    return app


@contextlib.contextmanager
def _consumer(ws: Workspace, settings: RunSettings, redis_url: str | None
              ) -> Iterator[None]:
    """``tribes stream`` on a thread of the service, stopped with it."""
    c = Consumer(ws, settings, redis_url=redis_url)
    stop = threading.Event()
    t = threading.Thread(target=c.run, args=(stop,), name="tribes-stream", daemon=True)
    t.start()
    log.info("stream consumer %s/%s runs in the service", c.group, c.name)
    try:
        yield
    finally:
        stop.set()
        t.join(timeout=60)
