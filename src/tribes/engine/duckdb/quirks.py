"""DuckDB's quirks: the one place its SQL differs from what Ibis' compiler writes.

The built-in functions of ``tribes.engine.functions`` carry DuckDB's names, so DuckDB
runs them as they are; the PySpark backend rewrites them (its quirk table is
:mod:`tribes.engine.pyspark.quirks`).
"""

from __future__ import annotations

from typing import Any

import sqlglot.expressions as sge
from ibis.backends.sql.compilers.duckdb import DuckDBCompiler


class DuckCompiler(DuckDBCompiler):
    """Ibis' DuckDB compiler, with ``json_extract_string`` written as the call it is.

    SQLGlot would rewrite it as ``s ->> path``, re-rendering a ``$`` path without escaping
    its quotes and binding ``->>`` tighter than a ``||`` in the path.
    """

    __slots__ = ()

    def visit_ScalarUDF(self, op: Any, **kw: Any) -> sge.Expression:
        name = self.__sql_name__(op)
        if name == "json_extract_string":
            return sge.Anonymous(this=name, expressions=list(kw.values()))
        return super().visit_ScalarUDF(op, **kw)
