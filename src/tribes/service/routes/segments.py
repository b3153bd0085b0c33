"""Aggregates (viewer): segments and personas of the active version, versions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from tribes.privacy import ApiKey
from tribes.service.routes.common import responses, service
from tribes.service.schemas import Personas, Segments, Triggers, Versions
from tribes.service.security import require

router = APIRouter(tags=["segments"])
Viewer = Annotated[ApiKey, Depends(require("viewer"))]


@router.get("/v1/segments", response_model=Segments, responses=responses(404))
def segments(request: Request, key: Viewer) -> dict:
    """Segments of the active version: id, name, size and share (its members now, as
    last refreshed by tribes run), and recommended action."""
    return service(request).segments()


@router.get("/v1/personas", response_model=Personas, responses=responses())
def personas(request: Request, key: Viewer) -> dict:
    """Persona cards of the active version."""
    return service(request).personas()


@router.get("/v1/versions", response_model=Versions, responses=responses())
def versions(request: Request, key: Viewer) -> dict:
    """Every segment version with its method, k, quality and status."""
    return service(request).versions()


@router.get("/v1/versions/diff", responses=responses(400, 404))
def diff(request: Request, key: Viewer, a: Annotated[int, Query(ge=1)],
         b: Annotated[int, Query(ge=1)]) -> dict:
    """Migration matrix between versions a and b, their ARI and size changes."""
    return service(request).diff(a, b)


@router.get("/v1/segments/history", responses=responses())
def history(request: Request, key: Viewer) -> dict:
    """Segment sizes and shares in every version, oldest first (the trend of each segment)."""
    return service(request).history()


@router.get("/v1/kpis", responses=responses(404))
def kpis(request: Request, key: Viewer) -> dict:
    """Business KPIs per segment of the active version, with a significance test per KPI
    (the same as tribes validate)."""
    return service(request).kpis()


@router.get("/v1/me", responses=responses())
def me(request: Request, key: Viewer) -> dict:
    """The calling key: name, role, expiry (the dashboard shows what it may open)."""
    return {"key_id": key.key_id, "name": key.name, "role": key.role,
            "expires_at": key.expires_at}


Limit = Annotated[int, Query(ge=1, le=1000, description="How many of the newest triggers.")]


@router.get("/v1/triggers/summary", response_model=Triggers, tags=["realtime"],
            responses=responses())
def trigger_counts(request: Request, key: Viewer, limit: Limit = 200) -> dict:
    """Counts by type of the newest triggers of tribes stream (no customers)."""
    return service(request).triggers(limit, customers=False)


@router.get("/v1/alerts", tags=["monitor"], responses=responses(400))
def alerts(request: Request, key: Viewer,
           status: Annotated[str, Query(pattern="^(open|acked|all)$",
                                        description="open, acked or all")] = "open",
           limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict:
    """Alerts raised by tribes monitor, newest first: kind (drift.psi, drift.ks,
    segment.share), severity, subject, value, threshold, message and when."""
    return service(request).alerts(status, limit)


@router.get("/v1/monitor", tags=["monitor"], responses=responses())
def monitor(request: Request, key: Viewer) -> dict:
    """The last drift check: PSI and Kolmogorov-Smirnov per feature against the active
    version, segment shares then and now, and the weekly KPI control charts."""
    return service(request).monitor()
