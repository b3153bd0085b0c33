"""Changes (admin): ingest, activation and rollback, exports, erasure."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response

from tribes.privacy import ApiKey
from tribes.service.errors import ApiError
from tribes.service.routes.common import responses, service
from tribes.service.schemas import (
    Activated,
    ErasureIn,
    ErasureOut,
    EventsIn,
    ExportIn,
    ExportOut,
    IngestOut,
    RolledBack,
)
from tribes.service.security import require

router = APIRouter()
Admin = Annotated[ApiKey, Depends(require("admin"))]


@router.post("/v1/events", response_model=IngestOut, tags=["ingest"],
             responses=responses(400, 413))
def ingest_events(request: Request, key: Admin, body: EventsIn) -> dict:
    """Ingest a batch of events with the same contract as files: validation, quarantine
    with reason codes, pseudonymization, dedupe by event_id (a resent batch loads 0)."""
    limit = request.app.state.max_batch
    if len(body.events) > limit:
        raise ApiError(413, "E_TOO_LARGE", f"{len(body.events)} events in one batch; send at "
                       f"most {limit} (service.max_batch_events)")
    return service(request).ingest_events(body.events, body.source, request.app.state.metrics)


@router.post("/v1/versions/{version}/activate", response_model=Activated, tags=["segments"],
             responses=responses(404))
def activate(request: Request, key: Admin, version: Annotated[int, Path(ge=1)]) -> dict:
    """Make a segment version the active one."""
    return service(request).activate(version)


@router.post("/v1/versions/rollback", response_model=RolledBack, tags=["segments"],
             responses=responses(400))
def rollback(request: Request, key: Admin) -> dict:
    """Re-activate the version that was active before the current one."""
    return service(request).rollback()


@router.post("/v1/exports", response_model=ExportOut, tags=["exports"],
             responses=responses(400, 404))
def export(request: Request, key: Admin, body: ExportIn) -> dict:
    """Keep features, sessions, segments or CLV scores (consent applied) as they are now,
    in the workspace (encrypted with it); download the file with GET
    /v1/exports/{export_id}/file. An erasure removes the person from it."""
    return service(request).export(body.what, body.format)


@router.get("/v1/exports/{export_id}/file", tags=["exports"], responses=responses(404),
            response_class=Response)
def export_file(request: Request, key: Admin,
                export_id: Annotated[str, Path(min_length=1, max_length=64)]) -> Response:
    """Download an export made by POST /v1/exports (written out in memory)."""
    f = service(request).export_file(export_id)
    return Response(f.content, media_type=f.media_type,
                    headers={"Content-Disposition": f'attachment; filename="{f.filename}"'})


@router.post("/v1/erasures", response_model=ErasureOut, tags=["privacy"],
             responses=responses(400, 409))
def erase(request: Request, key: Admin, body: ErasureIn) -> dict:
    """Erase a person from every table and segment version and tombstone their ids
    (the same as tribes forget)."""
    return service(request).erase(body.id, body.reason)
