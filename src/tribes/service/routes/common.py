"""What every router shares: the service of the app, error responses for the docs."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from tribes.ops import Service
from tribes.service.schemas import ErrorBody


def service(request: Request) -> Service:
    return request.app.state.service


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error responses a route may give, for the OpenAPI document."""
    text = {400: "Bad request", 401: "Missing, unknown, revoked or expired API key",
            403: "The key's role does not allow this route", 404: "Not found",
            409: "Ambiguous id", 413: "Request body too large", 422: "Invalid request",
            429: "Rate limit exceeded (see Retry-After)"}
    base = (401, 403, 422, 429)
    return {c: {"model": ErrorBody, "description": text[c]} for c in sorted({*base, *codes})}
