"""The API's routers, one module per resource; each route is parse, authorize, delegate."""

from __future__ import annotations

from fastapi import FastAPI

from tribes.service.routes import admin, customers, dashboard, segments, system


def register(app: FastAPI) -> None:
    for module in (system, segments, customers, admin, dashboard):
        app.include_router(module.router)
