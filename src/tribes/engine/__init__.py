"""The engine layer: the only place that knows which query backend runs the Ibis expressions.

Nothing outside ``tribes.engine`` imports ``duckdb`` or ``pyspark``.
"""

from tribes.engine.backend import Engine, connect
from tribes.engine.io import ReadResult

__all__ = ["Engine", "ReadResult", "connect"]
