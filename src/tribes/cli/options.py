"""The options given before the command (``tribes --workspace shop --json ingest ...``) and
what they set up: logging and JSON output.

The root of the command line needs only this module; it stays free of the workspace, the
engine and the configuration so that ``tribes --help`` loads none of them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.logging import RichHandler


@dataclass
class Options:
    """Options given before the command (``tribes --workspace shop ingest ...``)."""

    workspace: Path | None = None
    backend: str | None = None
    json: bool = False
    verbosity: int = 0


def setup_logging(verbosity: int) -> None:
    level = {-1: logging.WARNING, 0: logging.WARNING, 1: logging.INFO}.get(verbosity,
                                                                           logging.DEBUG)
    if verbosity < 0:
        level = logging.ERROR
    root = logging.getLogger("tribes")
    root.handlers.clear()
    root.addHandler(RichHandler(console=Console(stderr=True), show_path=False,
                                show_time=False))
    root.setLevel(level)


def _default(o: Any) -> Any:
    if isinstance(o, (datetime, date)):
        return o.isoformat()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):
        return o.item()
    return str(o)


def to_json(obj: Any) -> str:
    return json.dumps(obj, default=_default, ensure_ascii=False)
