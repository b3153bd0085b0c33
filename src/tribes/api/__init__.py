"""The Python API: tribes from a notebook or a pipeline.

>>> import tribes
>>> ws = tribes.init("shop")                     # doctest: +SKIP
>>> ws.ingest("events.csv", source="web")        # doctest: +SKIP
>>> ws.run()                                     # doctest: +SKIP
>>> ws.features().to_pandas()                    # doctest: +SKIP

Each method does what the CLI command of the same name does (the CLI calls these) and
returns a result whose ``summary`` is what ``--json`` prints. See docs/python-api.md.
"""

from tribes.api.results import FrameResult, FunnelResult, Result, RetentionResult, Table
from tribes.api.workspace import Clv, Workspace, init, open

__all__ = ["Clv", "FrameResult", "FunnelResult", "Result", "RetentionResult", "Table",
           "Workspace", "init", "open"]
