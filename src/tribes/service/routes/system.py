"""Health (no key needed) and metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse

from tribes.privacy import ApiKey
from tribes.service.routes.common import responses, service
from tribes.service.schemas import Health
from tribes.service.security import require

router = APIRouter()


@router.get("/v1/health", response_model=Health, tags=["system"])
def health(request: Request) -> dict:
    """Liveness and the active segment version. Needs no key."""
    return service(request).health()


@router.get("/metrics", response_class=PlainTextResponse, tags=["system"],
            responses=responses())
def metrics(request: Request, key: Annotated[ApiKey, Depends(require("viewer"))]) -> str:
    """Request counts and latency per route, ingest and quarantine counts (Prometheus)."""
    return str(request.app.state.metrics.render())
