"""Switching the active segment version (``tribes versions activate | rollback``, the
API's admin routes): the activation, then the version's memberships brought up to date
with today's customers, at once, so that exports, activation and lookups serve the
customers of today from the version's own model.
"""

from __future__ import annotations

import logging
from typing import Any

from tribes.engine import Engine
from tribes.errors import InputError
from tribes.models import refresh_memberships
from tribes.store import activate_version, rollback_version

log = logging.getLogger(__name__)


def activate(engine: Engine, version: int) -> dict[str, Any]:
    """Make ``version`` active and refresh its memberships.

    Returns
    -------
    dict
        ``active``, ``previous``, and ``refresh`` (what the refresh did; None, with a
        ``note``, when it could not be done: the next ``tribes run`` tries again).
    """
    previous = activate_version(engine, version)
    return {"active": version, "previous": previous,
            **_refresh(engine, version, "activate")}


def rollback(engine: Engine) -> dict[str, Any]:
    """Re-activate the version active before the current one and refresh its
    memberships; ``active``, ``previous`` (the version rolled back) and ``refresh``."""
    current, back = rollback_version(engine)
    return {"active": back, "previous": current, **_refresh(engine, back, "rollback")}


def _refresh(engine: Engine, version: int, trigger: str) -> dict[str, Any]:
    try:
        done = refresh_memberships(engine, version, trigger=trigger)
    except InputError as exc:
        # the activation stands; its memberships stay as last stored
        log.warning("version %d is active; its memberships were not refreshed: %s",
                    version, exc)
        return {"refresh": None, "note": f"memberships as last stored, not refreshed: {exc}"}
    return {"refresh": done.as_dict()}
