"""Customer-level reads and runs (analyst): profiles, segment lookups, segmentation jobs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from tribes.privacy import ApiKey
from tribes.service.errors import ApiError
from tribes.service.routes.common import responses, service
from tribes.service.schemas import (
    Content,
    JobOut,
    Profile,
    SegmentationIn,
    SegmentOf,
    Triggers,
)
from tribes.service.security import require

router = APIRouter()
Analyst = Annotated[ApiKey, Depends(require("analyst"))]
Ident = Annotated[str, Path(min_length=1, max_length=256,
                            description="Any id of the customer (raw, pseudonym or key).")]


@router.get("/v1/customers/{ident}/segment", response_model=SegmentOf, tags=["customers"],
            responses=responses(400, 404))
async def segment_of(request: Request, key: Analyst, ident: Ident) -> dict:
    """The active segment of a customer, by any of their ids (answered from memory)."""
    # in-memory and non-blocking, so it runs on the event loop without a thread hop
    return service(request).segment_of(ident)


@router.get("/v1/customers/{ident}", response_model=Profile, tags=["customers"],
            responses=responses(400, 404, 409))
def profile(request: Request, key: Analyst, ident: Ident) -> dict:
    """A customer's profile: segment, persona, key features, CLV and P(alive), consent."""
    return service(request).profile(ident)


@router.get("/v1/customers/{ident}/next-best-content", response_model=Content,
            tags=["customers"], responses=responses(400, 404))
def next_best_content(request: Request, key: Analyst, ident: Ident) -> dict:
    """The content to show a customer now: their persona's recommended action and the
    segment's offer, from their online segment (tribes stream) or their batch segment."""
    return service(request).next_best_content(ident)


@router.get("/v1/triggers", response_model=Triggers, tags=["realtime"],
            responses=responses())
def triggers(request: Request, key: Analyst,
             limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict:
    """The newest triggers of tribes stream (customer-level), newest first."""
    return service(request).triggers(limit, customers=True)


@router.post("/v1/segmentations", response_model=JobOut, status_code=202, tags=["jobs"],
             responses=responses(400))
def segmentation(request: Request, key: Analyst, body: SegmentationIn) -> dict:
    """Start a segmentation as a job (poll /v1/jobs/{job_id}): a new version, held for
    review until an admin activates it (or made active at once with ``activate``, admin
    keys only). A key may have a few jobs queued at once (429 beyond)."""
    if body.activate and not key.allows("admin"):
        raise ApiError(403, "E_FORBIDDEN", "activating a version needs the admin role; "
                       f"the key '{key.name}' is {key.role}: leave activate out, and an "
                       "admin activates the version with POST /v1/versions/{version}/activate")
    return service(request).segmentation(body.model_dump(), owner=key.key_id).to_dict()


@router.get("/v1/jobs/{job_id}", response_model=JobOut, tags=["jobs"],
            responses=responses(404))
def job(request: Request, key: Analyst,
        job_id: Annotated[str, Path(min_length=1, max_length=64)]) -> dict:
    """A job's status and, once done, its result or error."""
    return service(request).jobs.get(job_id).to_dict()
