"""DuckDB statements Ibis cannot express (ATTACH, USE, DELETE), built as sqlglot trees,
never as strings."""

from __future__ import annotations

import ibis.expr.types as ir
import sqlglot.expressions as sge

from tribes.engine.base import Engine


def attach_statement(path: str, name: str, *, key: str | None = None,
                     read_only: bool = False) -> str:
    """``ATTACH 'path' AS name (ENCRYPTION_KEY '…', READ_ONLY)`` for DuckDB, quoted by
    sqlglot."""
    options: list[sge.Expression] = []
    if key is not None:
        options.append(sge.AttachOption(this=sge.Var(this="ENCRYPTION_KEY"),
                                        expression=sge.Literal.string(key)))
    if read_only:
        options.append(sge.AttachOption(this=sge.Var(this="READ_ONLY")))
    stmt = sge.Attach(this=sge.Alias(this=sge.Literal.string(path), alias=sge.to_identifier(name)),
                      exists=False, expressions=options)
    return stmt.sql(dialect="duckdb")


def use_statement(name: str) -> str:
    """``USE name`` for DuckDB."""
    return sge.Use(this=sge.to_identifier(name)).sql(dialect="duckdb")


def delete_statement(engine: Engine, name: str, predicate: ir.BooleanValue) -> str:
    """``DELETE FROM name WHERE predicate`` for DuckDB.

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
    return stmt.sql(dialect="duckdb")
