"""tribes: behavioral customer segmentation, from raw events to segments that act.

``import tribes`` is light: the Python API (``tribes.open``, ``tribes.init``,
``tribes.Workspace``, see :mod:`tribes.api` and docs/python-api.md) is imported on first
use, so the CLI starts fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# the public names, served lazily from tribes.api (the one import of a higher layer the
# root package makes; tests/test_layers.py allows exactly this)
_API = ("Clv", "FrameResult", "FunnelResult", "Result", "RetentionResult", "Table",
        "Workspace", "init", "open")
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        from tribes import api

        return getattr(api, name)
    raise AttributeError(f"module 'tribes' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
