"""Statements Ibis cannot express (DELETE), built as sqlglot trees, never as strings."""

from __future__ import annotations

from typing import TYPE_CHECKING

import ibis.expr.types as ir
import sqlglot.expressions as sge

if TYPE_CHECKING:
    from tribes.engine.backend import Engine


def delete_statement(engine: Engine, name: str, predicate: ir.BooleanValue) -> str:
    """``DELETE FROM name WHERE predicate`` in the backend's dialect.

    ``predicate`` is an expression over ``engine.table(name)``; it may reference other
    tables through ``isin`` sub-queries.
    """
    table = engine.table(name)
    select = engine.con.compiler.to_sqlglot(table.filter(predicate))
    where = select.args.get("where")
    if where is None:
        raise ValueError("refusing to delete without a condition")
    source = select.args.get("from_") or select.args.get("from")
    alias = source.this.alias_or_name

    def unqualify(node: sge.Expression) -> sge.Expression:
        if isinstance(node, sge.Column) and node.table == alias:
            return sge.column(node.this)
        return node

    condition = where.this.transform(unqualify)
    stmt = sge.Delete(this=sge.to_table(name), where=sge.Where(this=condition))
    return stmt.sql(dialect=engine.name)
