"""PySpark's quirks: where the same Ibis expression needs other SQL than on DuckDB.

Expressions are written once (``tribes.engine.functions`` declares the few built-in
functions Ibis has no portable name for, under their DuckDB names). On PySpark, the
compiler below rewrites them when SQL is generated:

=====================  ==========================  ==================================
expression             DuckDB                      PySpark
=====================  ==========================  ==================================
``sha256(b)``          ``sha256(b)``               ``sha2(b, 256)``
``encode(s)``          ``encode(s)`` (UTF-8)       ``encode(s, 'UTF-8')``
``json_valid(s)``      ``json_valid(s)``           ``try_parse_json(s) IS NOT NULL``
``json_extract_        ``json_extract_string(s,    ``get_json_object(s, '$['k']')``,
string(s, '/k')``      '/k')`` (a JSON Pointer)    ``from_json`` for other keys
``try_strptime(s, f)`` strftime format ``f``       ``try_to_timestamp(s, f')``, ``f``
                                                   turned into a Java pattern
``timezone(z, ts)``    wall clock in ``z`` → UTC   ``to_utc_timestamp(ts, z)``
struct → JSON text     nulls kept as ``null``      ``to_json(..., ignoreNullFields
                                                   = false)`` (Spark drops them)
JSON text → JSON       kept as an object           ``try_parse_json`` (else quoted)
UTC timestamp → text   ``2026-01-01 10:00:00+00``  ``cast(...) || '+00'``
double → text          ``1e+20``                   ``1.0E20`` (not rewritten: values
                                                   between 1e-3 and 1e7 read alike)
``hash(x)``            64-bit                      ``xxhash64`` (Ibis' ``hash`` is the
                                                   32-bit Murmur3 on Spark)
``collect(order_by)``   ``array_agg(... ORDER BY)`` ``collect_list`` of (keys, value),
                                                   ``array_sort``, ``transform``
epoch ms/us → ts       ``make_timestamp``, ...     ``timestamp_millis``,
                                                   ``timestamp_micros``
=====================  ==========================  ==================================

Spark's ``TimestampType`` is read as ``timestamp('UTC')`` (Ibis reads it zone-less; it is
an instant, like DuckDB's TIMESTAMPTZ): see :func:`install_spark_types`.

Other differences are handled where the engine stores and reads data
(:mod:`tribes.engine.pyspark.backend` and :mod:`~tribes.engine.pyspark.reader`): Parquet
directories instead of a database file, a journal instead of transactions, a rewrite
instead of ``DELETE``, no line numbers for malformed CSV records (Spark does not report
them), a copy of a file without its ``sep=`` line (Spark cannot skip lines), Latin-1
text read as Windows-1252, and no zstd files.
"""

from __future__ import annotations

from typing import Any

import ibis.expr.datatypes as dt
import sqlglot as sg
import sqlglot.expressions as sge
from ibis.backends.sql.compilers.pyspark import PySparkCompiler

# strftime directive -> Java DateTimeFormatter pattern (Spark's datetime patterns)
_STRFTIME_TO_JAVA = {
    "%Y": "yyyy", "%y": "yy", "%m": "MM", "%d": "dd", "%H": "HH", "%I": "hh", "%M": "mm",
    "%S": "ss", "%f": "SSSSSS", "%p": "a", "%b": "MMM", "%B": "MMMM", "%a": "EEE",
    "%A": "EEEE", "%j": "DDD", "%z": "xx", "%Z": "z", "%e": "d", "%%": "%",
}


def strftime_to_java(fmt: str) -> str:
    """Translate a strftime format into a Spark datetime pattern (literal text quoted)."""
    out: list[str] = []
    literal: list[str] = []
    i = 0

    def flush() -> None:
        if literal:
            text = "".join(literal).replace("'", "''")
            out.append(f"'{text}'" if any(c.isalpha() for c in text) else text)
            literal.clear()

    while i < len(fmt):
        code = fmt[i:i + 2]
        if fmt[i] == "%" and code in _STRFTIME_TO_JAVA:
            flush()
            out.append(_STRFTIME_TO_JAVA[code])
            i += 2
        else:
            literal.append(fmt[i])
            i += 1
    flush()
    return "".join(out)


def _literal_text(node: sge.Expression) -> str | None:
    return node.this if isinstance(node, sge.Literal) and node.is_string else None


def _json_member(self: PySparkCompiler, value: sge.Expression,
                 pointer: sge.Expression) -> sge.Expression:
    """``json_extract_string(s, '/key')`` (a JSON Pointer, see ``functions.json_member``)
    on Spark. Its JSONPath reads ``$['key']`` for a key without ``'`` or ``?``; any other
    key is read from the object parsed into a struct whose one field is that key, and a
    pointer that is not a constant (a key with NUL) from the object parsed into a map."""
    text = _literal_text(pointer)
    if text is not None and text.startswith("/"):
        key = text[1:].replace("~1", "/").replace("~0", "~")
        if key and not set(key) & set("'?"):
            return self.f.get_json_object(value, sge.Literal.string(f"$['{key}']"))
        quoted = "`" + key.replace("`", "``") + "`"
        parsed = self.f.from_json(value, sge.Literal.string(f"struct<{quoted}: string>"))
        return sge.Dot(this=parsed, expression=sg.to_identifier(key, quoted=True))
    key_expr = self.f.replace(self.f.replace(self.f.substring(pointer, 2), "~1", "/"),
                              "~0", "~")
    parsed = self.f.from_json(value, sge.Literal.string("map<string, string>"))
    return self.f.try_element_at(parsed, key_expr)


def _utc_timestamp(nullable: bool = True) -> dt.Timestamp:
    return dt.Timestamp(timezone="UTC", nullable=nullable)


def install_spark_types() -> None:
    """Read Spark's ``TimestampType`` as ``timestamp('UTC')``.

    It is an instant (shown in the session zone, UTC here), as DuckDB's TIMESTAMPTZ is;
    Ibis reads it as a zone-less timestamp, which would make expressions treat stored
    instants as wall-clock times. ``TimestampNTZType`` stays zone-less.
    """
    from ibis.backends.pyspark import datatypes as spark_types
    from pyspark.sql import types as pt

    spark_types._from_pyspark_dtypes[pt.TimestampType] = _utc_timestamp


class SparkCompiler(PySparkCompiler):
    """Ibis' PySpark compiler with the tribes quirk table applied."""

    __slots__ = ()

    def visit_ScalarUDF(self, op: Any, **kw: Any) -> sge.Expression:
        name = self.__sql_name__(op)
        args = list(kw.values())
        if name == "sha256":
            return self.f.sha2(args[0], 256)
        if name == "encode":
            return self.f.encode(args[0], sge.convert("UTF-8"))
        if name == "json_valid":
            return self.f.try_parse_json(args[0]).is_(sg.not_(sge.Null()))
        if name == "json_extract_string":
            return _json_member(self, args[0], args[1])
        if name == "try_strptime":
            fmt = _literal_text(args[1])
            pattern = sge.convert(strftime_to_java(fmt)) if fmt is not None else args[1]
            return self.f.try_to_timestamp(args[0], pattern)
        if name == "timezone":
            return self.f.to_utc_timestamp(args[1], args[0])
        return super().visit_ScalarUDF(op, **kw)

    def visit_Cast(self, op: Any, *, arg: Any, to: Any) -> sge.Expression:
        source = op.arg.dtype
        if to.is_json() and source.is_string():
            # JSON text inside a struct must stay an object, not become a quoted string
            return self.f.try_parse_json(arg)
        if to.is_json():
            options = sge.Anonymous(this="map", expressions=[sge.convert("ignoreNullFields"),
                                                             sge.convert("false")])
            return self.f.to_json(arg, options)
        if to.is_string() and source.is_timestamp() and source.timezone is not None:
            # DuckDB writes the offset of a UTC timestamp ("... 10:00:00+00"); so do we
            return self.f.concat(self.cast(arg, to), sge.convert("+00"))
        return super().visit_Cast(op, arg=arg, to=to)

    def visit_ArrayCollect(self, op: Any, *, arg: Any, where: Any, order_by: Any,
                           include_null: Any, distinct: Any) -> sge.Expression:
        """``collect(order_by=...)``: Spark's ``collect_list`` keeps no order, so the
        values are collected with their sort keys, sorted, and taken out again."""
        if (not order_by or distinct or include_null
                or any(o.args.get("desc") for o in order_by)):
            return super().visit_ArrayCollect(op, arg=arg, where=where, order_by=order_by,
                                              include_null=include_null, distinct=distinct)
        fields: list[sge.Expression] = []
        for i, o in enumerate(order_by):
            fields += [sge.Literal.string(f"k{i}"), o.this]
        fields += [sge.Literal.string("v"), arg]
        item = self.f.named_struct(*fields)
        keep = arg.is_(sg.not_(sge.Null()))
        if where is not None:
            keep = sg.and_(keep, where)
        collected = self.f.collect_list(self.if_(keep, item, sge.Null()))
        var = sg.to_identifier("_e")
        take = sge.Lambda(this=sge.Dot(this=sge.column(var), expression=sg.to_identifier("v")),
                          expressions=[var])
        return self.f.transform(self.f.array_sort(collected), take)

    def visit_Hash(self, op: Any, *, arg: Any) -> sge.Expression:
        return self.f.xxhash64(arg)

    def visit_TimestampFromUNIX(self, op: Any, *, arg: Any, unit: Any) -> sge.Expression:
        short = op.unit.short if op.unit else "s"
        func = {"s": "timestamp_seconds", "ms": "timestamp_millis",
                "us": "timestamp_micros"}.get(short)
        if func is None:
            return super().visit_TimestampFromUNIX(op, arg=arg, unit=unit)
        return self.f[func](arg)
