"""One JSON error body for every failure: ``{"code", "message"}``, never a traceback."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tribes.errors import DependencyError, InputError, TribesError, WorkspaceError
from tribes.privacy import AuthError

log = logging.getLogger(__name__)

# stable codes that mean "not found" rather than "bad request"
NOT_FOUND = {"E_NOT_FOUND", "E_VERSION_NOT_FOUND", "E_JOB", "E_EXPORT", "E_NO_PREP",
             "E_EMPTY", "E_NO_SEGMENTS"}


class ApiError(TribesError):
    """An error with its HTTP status (403 for a role, 413 for a large body, ...)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message, code=code)
        self.status = status


def status_of(exc: TribesError) -> int:
    if isinstance(exc, ApiError):
        return exc.status
    if isinstance(exc, AuthError):
        return 401
    if exc.code in NOT_FOUND:
        return 404
    if exc.code == "E_BUSY":  # a queue is full: try again later
        return 429
    if isinstance(exc, InputError):
        return 400 if exc.code != "E_AMBIGUOUS" else 409
    if isinstance(exc, WorkspaceError) and exc.code == "E_LOCKED":
        return 503
    if isinstance(exc, DependencyError):
        return 501
    return 422 if exc.code.startswith("E_CONFIG") else 400


def body(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


def record_refusal(request: Request, status: int, code: str) -> None:
    """Requests refused for who sent them (401, 403) or for what they asked (404) go to
    the audit log too: probing is worth knowing about. The route is kept as its template
    (``/v1/customers/{ident}``): an id in the path is never recorded."""
    if status not in (401, 403, 404):
        return
    service = getattr(request.app.state, "service", None)
    if service is None:
        return
    route = request.scope.get("route")
    template = getattr(route, "path", None) or "(no such route)"
    key = getattr(request.state, "key", None)
    actor = f"key:{key.name}" if key is not None else "unauthenticated"
    service.access.read("read.not_found" if status == 404 else "read.denied",
                        target=template, actor=actor,
                        detail={"method": request.method, "status": status, "code": code})


def install(app: FastAPI) -> None:
    @app.exception_handler(TribesError)
    async def _tribes(request: Request, exc: TribesError) -> JSONResponse:
        headers = getattr(exc, "headers", None)
        status = status_of(exc)
        record_refusal(request, status, exc.code)
        return JSONResponse(body(exc.code, exc.message), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        msg = f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request"
        return JSONResponse(body("E_REQUEST", msg), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "E_NOT_FOUND", 405: "E_METHOD", 401: "E_AUTH", 403: "E_FORBIDDEN"}.get(
            exc.status_code, "E_HTTP")
        record_refusal(request, exc.status_code, code)
        return JSONResponse(body(code, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(body("E_INTERNAL", "internal error; see the service log"),
                            status_code=500)
