"""Reading files with DuckDB: its CSV reader with the layout given (never its own
sniffer), rejected records kept in reject tables, and text read as lines.

The functions take the engine (``self`` of the DuckDB engine's reader methods).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir

from tribes.engine.base import Engine, TextScan, read_error
from tribes.engine.formats import FILE_COLUMN, MAX_LINE_BYTES, Dialect, compression

ENCODING_ERROR = "INVALID ENCODING"  # DuckDB's error type of a record not in the encoding


def read_csv(engine: Engine, paths: list[Path], *, columns: list[str], dialect: Dialect,
             skip: int, name: str) -> TextScan:
    """Delimited files as text columns; records DuckDB cannot parse go to the reject
    tables ``<name>_rejects`` and ``<name>_scans``, told by the result's ``rejects``."""
    rej, scans = f"{name}_rejects", f"{name}_scans"
    for t in (name, rej, scans):
        engine.drop_temp(t)
    try:
        # the layout is known (sniffed or given): DuckDB's own sniffer is not asked,
        # so a record it could not make sense of is a rejected line, not a failed file
        table = engine.con.read_csv(
            [str(p) for p in paths],
            table_name=name,
            columns=dict.fromkeys(columns, "VARCHAR"),
            header=dialect.header,
            skip=skip,
            delim=dialect.delimiter,
            quote='"',
            escape='"',
            encoding=dialect.encoding,
            compression=compression(paths[0]),
            filename=FILE_COLUMN,
            store_rejects=True,
            rejects_table=rej,
            rejects_scan=scans,
        )
    except Exception as exc:
        raise read_error(f"CSV {paths[0].name}", exc) from None
    # rejects are appended at every scan; only count scans after this point
    before = _max_scan(engine, scans)

    def rejects(encoding: bool = False) -> list[dict[str, Any]]:
        if not engine.has_table(rej):
            return []
        errors = engine.table(rej)
        errors = errors.filter(errors.scan_id.cast("int64") > before)
        if encoding:
            errors = errors.filter(errors.error_type == ENCODING_ERROR)
        scanned = engine.table(scans).select("scan_id", "file_id", "file_path")
        rows = (
            errors.join(scanned, ["scan_id", "file_id"])
            .group_by(file="file_path", line="line")
            .aggregate(error=errors.error_type.min() + ": " + errors.error_message.min(),
                       pos=errors.line_byte_position.min())
            .order_by(["file", "line"])
        )
        if encoding:
            rows = rows.limit(1)
        found: list[dict[str, Any]] = engine.execute(rows).to_dict("records")
        for r in found:
            if str(r["error"]).startswith(ENCODING_ERROR):
                r["error"] += " If the file is Latin-1 (Windows-1252), pass --encoding latin-1."
        return found

    return TextScan(table, rejects)


def read_lines(engine: Engine, paths: list[Path], *, encoding: str, skip_first: str | None,
               name: str) -> ir.Table:
    """Text files as one ``line`` column (and ``_file``), one read per compression; the
    first line of each file is skipped when ``skip_first`` is given."""
    by_codec: dict[str, list[Path]] = {}
    for p in paths:
        by_codec.setdefault(compression(p), []).append(p)
    tables = []
    for i, (codec, group) in enumerate(by_codec.items()):
        table_name = name if len(by_codec) == 1 else f"{name}_{i}"
        engine.drop_temp(table_name)
        try:
            tables.append(engine.con.read_csv(
                [str(p) for p in group], table_name=table_name, columns={"line": "VARCHAR"},
                header=skip_first is not None, delim="\x1e", quote="", escape="",
                encoding=encoding, compression=codec, filename=FILE_COLUMN,
                max_line_size=MAX_LINE_BYTES, buffer_size=2 * MAX_LINE_BYTES,
            ))
        except Exception as exc:
            raise read_error(group[0].name, exc) from None
    return tables[0] if len(tables) == 1 else ibis.union(*tables)


def read_parquet(engine: Engine, paths: list[Path], *, name: str) -> ir.Table:
    try:
        return engine.con.read_parquet(
            [str(p) for p in paths],
            table_name=name,
            union_by_name=len(paths) > 1,
            filename=FILE_COLUMN,
        )
    except Exception as exc:
        raise read_error(f"Parquet {paths[0].name}", exc) from None


def _max_scan(engine: Engine, scans: str) -> int:
    if not engine.has_table(scans):
        return -1
    value = engine.scalar(engine.table(scans).scan_id.max())
    return -1 if value is None else int(value)
