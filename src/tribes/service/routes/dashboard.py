"""The dashboard page and its assets (the page asks for a key; data comes from /v1)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from tribes.service.errors import ApiError

router = APIRouter(include_in_schema=False)
STATIC = Path(__file__).resolve().parent.parent / "static"
ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}


def _plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


@router.get("/", response_class=HTMLResponse)
def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html")


@router.get("/assets/{name}")
def asset(name: str) -> FileResponse:
    if name == "plotly.min.js":  # vendored from the plotly package: no CDN
        return FileResponse(_plotly_js(), media_type="text/javascript",
                            headers={"Cache-Control": "max-age=86400"})
    if name not in ASSETS:
        raise ApiError(404, "E_NOT_FOUND", f"no asset '{name}'")
    return FileResponse(STATIC / name, media_type=ASSETS[name])
