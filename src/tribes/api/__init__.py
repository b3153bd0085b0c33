"""The Python API: tribes from a notebook or a pipeline.

>>> import tribes
>>> ws = tribes.init("shop")                     # doctest: +SKIP
>>> ws.ingest("events.csv", source="web")        # doctest: +SKIP
>>> ws.run()                                     # doctest: +SKIP
>>> ws.features().to_pandas()                    # doctest: +SKIP

Each method does what the CLI command of the same name does (the CLI calls these) and
returns a result whose ``summary`` is what ``--json`` prints. See docs/python-api.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tribes.api.results import FrameResult, FunnelResult, Result, RetentionResult, Table
from tribes.lazy import lazy_names

if TYPE_CHECKING:
    from tribes.api.workspace import Clv, Workspace, init, open

# served on first use: their modules import SciPy and scikit-learn
_LAZY = {
    "Clv": "tribes.api.workspace",
    "Workspace": "tribes.api.workspace",
    "init": "tribes.api.workspace",
    "open": "tribes.api.workspace",
}

__all__ = ["Clv", "FrameResult", "FunnelResult", "Result", "RetentionResult", "Table",
           "Workspace", "init", "open"]

__getattr__, __dir__ = lazy_names(__name__, _LAZY)
