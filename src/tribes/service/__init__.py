"""The REST service (``tribes serve``): FastAPI app, roles, audit of every access.

Needs the ``service`` extra: ``pip install 'tribes[service]'``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tribes.errors import DependencyError

if TYPE_CHECKING:
    from tribes.workspace import Workspace

__all__ = ["create_app"]


def create_app(ws: Workspace, **kwargs: Any) -> Any:
    """The FastAPI application serving workspace ``ws`` (see :mod:`tribes.service.app`)."""
    # FastAPI is an optional extra: looked for first, to give the install hint, then the
    # app that imports it
    try:
        import fastapi  # noqa: F401
    except ImportError:
        raise DependencyError("the service needs FastAPI: pip install 'tribes[service]'",
                              code="E_DEPENDENCY") from None
    from tribes.service.app import create_app as _create

    return _create(ws, **kwargs)
