"""Request and response models of the API (pydantic at the edge only)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(_Model):
    code: str = Field(examples=["E_FORBIDDEN"])
    message: str


class Health(_Model):
    status: Literal["ok"]
    workspace: str
    active_version: int | None
    uptime_s: float


class Segment(_Model):
    segment_id: int
    name: str
    size: int
    share: float
    action: str | None = None


class Segments(_Model):
    version: int
    method: str
    k: int
    created_at: Any
    segments: list[Segment]


class Personas(_Model):
    version: int | None
    personas: list[dict[str, Any]]


class Version(BaseModel):
    version: int
    created_at: Any
    method: str
    k: int
    customers: int | None = None
    silhouette: float | None = None
    stability_ari: float | None = None
    parent_version: int | None = None
    active: bool
    status: str


class Versions(_Model):
    versions: list[Version]


class Activated(_Model):
    active: int
    previous: int | None


class RolledBack(_Model):
    rolled_back: int
    active: int


class SegmentOf(_Model):
    customer_key: str
    segment_id: int
    segment_name: str
    probability: float | None
    version: int


class Profile(_Model):
    customer_key: str
    ids: int
    segment: SegmentOf | None
    persona: dict[str, Any] | None
    features: dict[str, Any]
    clv: dict[str, Any] | None
    n_events: int
    n_sessions: int
    analyzed: bool
    consents: list[dict[str, Any]]
    online: dict[str, Any] | None = Field(None, description="Online segment and newest "
                                          "event from tribes stream (when Redis is "
                                          "reachable).")
    recent_triggers: list[dict[str, Any]] = Field(default_factory=list)


class Triggers(_Model):
    available: bool = Field(description="Whether the real-time state (tribes stream's "
                            "Redis) is reachable.")
    counts: dict[str, int]
    triggers: list[dict[str, Any]]
    since: float | None = Field(None, description="Event time (epoch s) of the oldest "
                                "trigger counted.")
    message: str | None = None


class Content(_Model):
    customer_key: str
    segment_id: int
    segment_name: str
    source: Literal["online", "batch"]
    content: str | None = Field(None, description="The persona's recommended action.")
    campaign: str | None = None
    offer: str | None = Field(None, description="The session offer configured for the "
                              "segment ([realtime.rules.session_offer]).")
    version: int | None = None


class EventsIn(_Model):
    source: str = Field("api", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$",
                        description="Source name stored with the events.")
    events: list[dict[str, Any]] = Field(
        min_length=1, description="Events as JSON objects, in any of the column spellings "
        "files may use (ts/timestamp, event_type/event_name, customer_id/user_id, ...).",
        examples=[[{"event_id": "e1", "ts": "2026-03-01T10:00:00Z", "event_type": "page_view",
                    "customer_id": "C0000042"}]])


class IngestOut(BaseModel):
    batch_id: str
    rows_read: int
    loaded: int
    duplicates: int = Field(description="already stored, or held in the quarantine already "
                            "(already_quarantined of them)")
    quarantined: dict[str, int]
    already_quarantined: int = 0


class SegmentationIn(_Model):
    method: Literal["kmeans", "gmm", "agglomerative", "dbscan", "hdbscan", "rfm"] = "kmeans"
    k: int | None = Field(None, ge=2, le=50, description="Segments; omit to choose k.")
    features: list[str] | None = Field(None, max_length=100)
    activate: bool = Field(False, description="Also make it the active version (admin keys "
                           "only). Otherwise it is stored held for review: activate it with "
                           "POST /v1/versions/{version}/activate.")


class JobOut(_Model):
    job_id: str
    kind: str
    params: dict[str, Any]
    status: Literal["queued", "running", "done", "failed"]
    created_at: str
    finished_at: str | None
    result: dict[str, Any] | None
    error: dict[str, str] | None


class ExportIn(_Model):
    what: Literal["features", "sessions", "segments", "clv"]
    format: Literal["csv", "parquet"] = "csv"


class ExportOut(_Model):
    export_id: str | None
    what: str
    format: str
    rows: int
    file: str


class ErasureIn(_Model):
    id: str = Field(min_length=1, max_length=256, description="Any id of the person.")
    reason: str = Field("", max_length=500)


class ErasureOut(BaseModel):
    customer_key: str | None
    ids: int
    deleted: dict[str, int]
    exports: list[dict[str, Any]]
    rows: int
