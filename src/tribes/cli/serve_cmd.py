"""``tribes serve``: the REST API (and, with it, the dashboard)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from tribes.cli.common import Output, state
from tribes.errors import DependencyError, InputError
from tribes.service import create_app

log = logging.getLogger(__name__)


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(
        "--host", help="Address to listen on (default: service.host, 127.0.0.1).",
        show_default=False)] = None,
    port: Annotated[int | None, typer.Option(
        "--port", "-p", min=1, max=65535, help="Port (default: service.port, 8000).",
        show_default=False)] = None,
    tls_cert: Annotated[Path | None, typer.Option(
        "--tls-cert", help="PEM certificate: serve HTTPS.", show_default=False)] = None,
    tls_key: Annotated[Path | None, typer.Option(
        "--tls-key", help="PEM private key of --tls-cert.", show_default=False)] = None,
    stream: Annotated[bool, typer.Option(
        "--stream", help="Also run the tribes stream consumer in this process (it needs "
        "the database the service holds; settings from \\[realtime]).")] = False,
    redis: Annotated[str | None, typer.Option(
        "--redis", help="Redis URL for --stream and the online state shown by the API "
        "(default: env TRIBES_REDIS_URL, else \\[realtime] redis).", show_default=False)
    ] = None,
    no_schedule: Annotated[bool, typer.Option(
        "--no-schedule", help="Do not run the workspace's schedule (tribes schedule) in "
        "this process.")] = False,
) -> None:
    """Serve the REST API: segments, personas, customer lookups, ingest, erasure, metrics.

    Every route but /v1/health needs an API key (tribes keys create). OpenAPI docs are at
    /docs. While the service runs it holds the workspace database; other tribes commands
    on the same workspace wait until it stops (use the API meanwhile). It runs the
    workspace's schedule of tribes run (see tribes schedule) unless --no-schedule.

    [bold]Examples[/bold]

      tribes -w shop serve

      tribes -w shop serve --host 0.0.0.0 --port 8443 --tls-cert cert.pem --tls-key key.pem

      tribes -w shop serve --stream --redis redis://127.0.0.1:6379/0
    """
    out = Output(ctx, False)
    try:  # the service extra is optional: without it, say how to install it
        import uvicorn
    except ImportError:
        raise DependencyError("tribes serve needs the service extra: pip install "
                              "'tribes[service]'", code="E_DEPENDENCY") from None

    if (tls_cert is None) != (tls_key is None):
        raise InputError("give both --tls-cert and --tls-key for HTTPS", code="E_TLS")
    for f in (tls_cert, tls_key):
        if f is not None and not f.exists():
            raise InputError(f"TLS file '{f}' not found", code="E_TLS")
    ws = state(ctx).open()
    cfg = ws.config.service
    host = host or cfg.host
    port = port or cfg.port
    if tls_cert is None and host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving plain HTTP on %s: API keys cross the network in the clear; "
                    "give --tls-cert/--tls-key", host)
    scheme = "https" if tls_cert else "http"
    out.print(f"tribes serving [bold]{ws.path}[/bold] on {scheme}://{host}:{port} "
              f"(docs: {scheme}://{host}:{port}/docs); Ctrl-C stops")
    if redis:
        os.environ["TRIBES_REDIS_URL"] = redis  # the API's view of the online state too
    uvicorn.run(create_app(ws, stream=stream, redis_url=redis,
                           schedule=not no_schedule), host=host, port=port,
                log_level="warning",
                ssl_certfile=str(tls_cert) if tls_cert else None,
                ssl_keyfile=str(tls_key) if tls_key else None)


def register(app: typer.Typer) -> None:
    app.command()(serve)
