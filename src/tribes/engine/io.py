"""Reading source files into Ibis tables and writing tables to files.

Readers never fail on a bad row: CSV rows that do not fit the layout and JSON lines that
do not parse are reported back as *malformed* so ingest can quarantine them.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir

from tribes.engine.backend import Engine
from tribes.engine.functions import json_extract_string, json_valid
from tribes.errors import InputError

log = logging.getLogger(__name__)

SNIFF_BYTES = 256 * 1024
WHITESPACE = "whitespace"  # fields separated by runs of spaces or tabs (text exports)
FILE_COLUMN = "_file"
LINE_COLUMN = "_line"


@dataclass
class ReadResult:
    """A source read as a table, plus what the reader could not parse.

    ``malformed()`` must be called after the table has been scanned; it returns one dict
    per rejected record with ``file``, ``line`` and ``error``.
    """

    table: ir.Table
    columns: list[str]
    malformed: Callable[[], list[dict[str, Any]]] = field(default=lambda: [])
    encoding: str = "utf-8"
    delimiter: str | None = None
    # boolean column that is false on records the reader could not parse (JSON Lines)
    valid_column: str | None = None


def _open_head(path: Path) -> bytes:
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            return fh.read(SNIFF_BYTES)
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read {path.name}: {exc}", code="E_READ") from None


def sniff_encoding(head: bytes) -> str:
    """Guess a text encoding from the first bytes: BOMs, then UTF-8, else Latin-1."""
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # a multi-byte character cut at the end of the sample is still UTF-8
        if exc.start < len(head) - 4:
            return "latin-1"
    return "utf-8"


def sniff_delimiter(text: str) -> str:
    """Pick the delimiter among , ; tab | that splits the sample's lines most consistently;
    ``whitespace`` when none occurs but runs of blanks split every line alike."""
    lines = [ln for ln in text.splitlines()[:200] if ln.strip()]
    if len(lines) > 1:
        lines = lines[:-1]  # the last sampled line may be cut
    sample = "\n".join(lines)
    counts = {d: sample.count(d) for d in ",;\t|"}
    if not (counts[","] or counts[";"] or counts["|"]):
        if counts["\t"] and _consistent([ln.split("\t") for ln in lines]):
            return "\t"
        if _consistent([ln.split() for ln in lines]):
            return WHITESPACE
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


def _consistent(rows: list[list[str]]) -> bool:
    """Nine in ten sample lines split into the same number (> 1) of fields."""
    if not rows:
        return False
    widths = [len(r) for r in rows]
    top = max(set(widths), key=widths.count)
    return top > 1 and widths.count(top) >= 0.9 * len(widths)


def _header_line(path: Path, encoding: str) -> str:
    text = _open_head(path).decode(encoding, errors="replace")
    return text.splitlines()[0] if text else ""


def read_csv(
    engine: Engine,
    paths: list[Path],
    *,
    delimiter: str | None = None,
    encoding: str | None = None,
    header: bool = True,
    name: str = "src",
) -> ReadResult:
    """Read CSV files (plain or gzip) with every column as text.

    Files sharing a header line are read together; groups with different headers are
    aligned by column name (a column missing from a file is null there).

    Parameters
    ----------
    delimiter, encoding
        Sniffed from the first file when not given. ``"whitespace"``: fields separated
        by runs of blanks, as in fixed-width text exports (see :func:`read_whitespace`).
    header
        Whether the first line holds column names (else ``column0``, ``column1``...).
    """
    head = _open_head(paths[0])
    if encoding is None:
        encoding = sniff_encoding(head)
    if delimiter is None:
        delimiter = sniff_delimiter(head.decode(encoding, errors="replace"))
    if delimiter == WHITESPACE:
        return read_whitespace(engine, paths, encoding=encoding, header=header, name=name)
    groups: dict[str, list[Path]] = {}
    for p in paths:
        groups.setdefault(_header_line(p, encoding) if header else "", []).append(p)
    parts: list[tuple[ir.Table, str, str, int]] = []
    for i, (head_line, files) in enumerate(groups.items()):
        part = f"{name}_{i}"
        rej, scans = f"{part}_rejects", f"{part}_scans"
        for t in (part, rej, scans):
            engine.drop_temp(t)
        if engine.name == "pyspark":
            from tribes.engine import spark_io

            # the group's header line, or (no header) the first record, for the width
            first = head_line if header else _header_line(files[0], encoding)
            cols = spark_io.header_columns(first, delimiter)
            if not header:
                cols = [f"column{j}" for j in range(len(cols))]
            _check_columns(cols, files[0])
            table = spark_io.read_csv(engine, files, columns=cols,  # type: ignore[arg-type]
                                      delimiter=delimiter, encoding=encoding, header=header,
                                      name=part)
            parts.append((table, rej, scans, -1))
            continue
        try:
            table = engine.con.read_csv(
                [str(p) for p in files],
                table_name=part,
                all_varchar=True,
                header=header,
                delim=delimiter,
                quote='"',
                escape='"',
                encoding=encoding,
                filename=FILE_COLUMN,
                store_rejects=True,
                rejects_table=rej,
                rejects_scan=scans,
            )
        except Exception as exc:
            raise InputError(f"cannot read CSV {files[0].name}: {_first_line(exc)}",
                             code="E_READ") from None
        _check_columns([c for c in table.columns if c != FILE_COLUMN], files[0])
        # rejects are appended at every scan; only count scans after this point
        parts.append((table, rej, scans, _max_scan(engine, scans)))
    table = _union_by_name([p[0] for p in parts])
    if engine.name == "pyspark":
        columns = [c for c in table.columns if c not in (FILE_COLUMN, "_valid")]
        return ReadResult(table, columns, encoding=encoding, delimiter=delimiter,
                          valid_column="_valid")
    columns = [c for c in table.columns if c != FILE_COLUMN]

    def malformed() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for _, rej, scans, before in parts:
            if not engine.has_table(rej):
                continue
            errors = engine.table(rej)
            files = engine.table(scans).select("scan_id", "file_id", "file_path")
            rows = (
                errors.filter(errors.scan_id.cast("int64") > before)
                .join(files, ["scan_id", "file_id"])
                .group_by(file="file_path", line="line")
                .aggregate(error=errors.error_type.min() + ": " + errors.error_message.min())
                .order_by(["file", "line"])
            )
            found.extend(engine.execute(rows).to_dict("records"))
        return found

    return ReadResult(table, columns, malformed, encoding, delimiter)


def read_whitespace(engine: Engine, paths: list[Path], *, encoding: str = "utf-8",
                    header: bool = True, name: str = "src") -> ReadResult:
    """Read text files whose fields are separated by runs of spaces or tabs.

    Leading and trailing blanks are ignored. The number of fields comes from the first
    line (the header, or the first record); a line with another number of fields is
    reported as malformed. Without a header the columns are ``column0``, ``column1``...
    """
    first = ""
    for line in _open_head(paths[0]).decode(encoding, errors="replace").splitlines():
        if line.strip():
            first = line
            break
    if not first:
        raise InputError(f"{paths[0].name} is empty", code="E_READ")
    columns = first.split() if header else [f"column{i}" for i in range(len(first.split()))]
    _check_columns(columns, paths[0])
    engine.drop_temp(name)
    lines = _read_lines(engine, paths, encoding=encoding, header_line=first if header else None,
                        name=name)
    lines = lines.filter(lines.line.notnull() & (lines.line.strip() != ""))
    lines = lines.mutate(_fields=lines.line.strip().re_split(r"\s+")).view()
    lines = lines.mutate(_valid=lines._fields.length() == len(columns)).view()
    cols = {c: ibis.cases((lines._valid, lines._fields[i]), else_=ibis.null("string"))
            for i, c in enumerate(columns)}
    table = lines.select(FILE_COLUMN, "_valid", **cols)
    return ReadResult(table, columns, encoding=encoding, delimiter=WHITESPACE,
                      valid_column="_valid")


def _union_by_name(tables: list[ir.Table]) -> ir.Table:
    if len(tables) == 1:
        return tables[0]
    names: dict[str, None] = {}
    for t in tables:
        names.update(dict.fromkeys(t.columns))
    aligned = [
        t.select(**{n: (t[n] if n in t.columns else ibis.null("string")) for n in names})
        for t in tables
    ]
    return ibis.union(*aligned)


def read_parquet(engine: Engine, paths: list[Path], *, name: str = "src") -> ReadResult:
    """Read Parquet files, keeping their column types."""
    engine.drop_temp(name)
    if engine.name == "pyspark":
        from tribes.engine import spark_io

        table = spark_io.read_parquet(engine, paths, name=name)  # type: ignore[arg-type]
        columns = [c for c in table.columns if c != FILE_COLUMN]
        _check_columns(columns, paths[0])
        return ReadResult(table, columns)
    try:
        table = engine.con.read_parquet(
            [str(p) for p in paths],
            table_name=name,
            union_by_name=len(paths) > 1,
            filename=FILE_COLUMN,
        )
    except Exception as exc:
        raise InputError(
            f"cannot read Parquet {paths[0].name}: {_first_line(exc)}", code="E_READ"
        ) from None
    columns = [c for c in table.columns if c != FILE_COLUMN]
    _check_columns(columns, paths[0])
    return ReadResult(table, columns)


def jsonl_keys(paths: list[Path], sample_lines: int = 5000) -> list[str]:
    """Top-level keys of the first parseable objects of each file, in first-seen order."""
    keys: dict[str, None] = {}
    for path in paths:
        head = _open_head(path)
        text = head.decode(sniff_encoding(head), errors="replace")
        lines = text.splitlines()
        if len(lines) > 1 and not head.endswith(b"\n"):
            lines = lines[:-1]
        for line in itertools.islice(lines, sample_lines):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                keys.update(dict.fromkeys(obj))
    return list(keys)


def read_jsonl(engine: Engine, paths: list[Path], *, name: str = "src") -> ReadResult:
    """Read JSON Lines files; each top-level key becomes a text column.

    Lines are read as text first so that a line that is not a JSON object is reported
    as malformed instead of failing the whole file.
    """
    keys = jsonl_keys(paths)
    if not keys:
        raise InputError(
            f"no JSON object found in the first lines of {paths[0].name}; "
            "is it JSON Lines (one object per line)?",
            code="E_READ",
        )
    engine.drop_temp(name)
    lines = _read_lines(engine, paths, encoding="utf-8", header_line=None, name=name)
    lines = lines.filter(lines.line.notnull() & (lines.line.strip() != ""))
    valid = json_valid(lines.line) & lines.line.lstrip().startswith("{")
    lines = lines.mutate(_valid=valid).view()
    cols = {k: ibis.cases((lines._valid, json_extract_string(lines.line, _json_path(k))),
                          else_=ibis.null("string"))
            for k in keys}
    table = lines.mutate(**cols)
    return ReadResult(table, keys, valid_column="_valid")


def _read_lines(engine: Engine, paths: list[Path], *, encoding: str, header_line: str | None,
                name: str) -> ir.Table:
    """Text files as one ``line`` column (and ``_file``); the first line of each file is
    skipped when ``header_line`` is given."""
    if engine.name == "pyspark":
        from tribes.engine import spark_io

        return spark_io.read_lines(engine, paths, encoding=encoding,  # type: ignore[arg-type]
                                   skip_first=header_line, name=name)
    try:
        return engine.con.read_csv(
            [str(p) for p in paths], table_name=name, columns={"line": "VARCHAR"},
            header=header_line is not None, delim="\x1e", quote="", escape="",
            encoding=encoding, filename=FILE_COLUMN,
        )
    except Exception as exc:
        raise InputError(f"cannot read {paths[0].name}: {_first_line(exc)}",
                         code="E_READ") from None


def _json_path(key: str) -> str:
    return '$."' + key.replace('"', '\\"') + '"'


def _check_columns(columns: list[str], path: Path) -> None:
    if not columns:
        raise InputError(f"{path.name} has no columns", code="E_READ")
    dupes = {c for c in columns if columns.count(c) > 1}
    if dupes:
        raise InputError(f"{path.name} repeats column names: {sorted(dupes)}", code="E_READ")


def _max_scan(engine: Engine, scans: str) -> int:
    if not engine.has_table(scans):
        return -1
    value = engine.scalar(engine.table(scans).scan_id.max())
    return -1 if value is None else int(value)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def spool(engine: Engine, read: ReadResult, path: Path) -> ReadResult:
    """Parse a text source once into a Parquet file and read on from that.

    Later passes then scan compact columns instead of decompressing and parsing the text
    again. Rejected records stay reported, as they were found while writing the file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    table = read.table
    if "line" in table.columns and read.valid_column is not None:
        table = table.drop("line")  # JSON Lines: the text, once its values are extracted
    if engine.name == "pyspark":
        from tribes.engine import spark_io

        spooled = spark_io.spool(engine, table, path)  # type: ignore[arg-type]
        return replace(read, table=spooled)
    if engine.encrypted:
        # raw values never go to a plain file: a temporary table spills encrypted
        return replace(read, table=engine.create_temp("_tribes_spooled", table))
    engine.con.to_parquet(table, str(path), compression="snappy")
    spooled = engine.con.read_parquet(str(path), table_name="_tribes_spooled")
    return replace(read, table=spooled)


def write_table(engine: Engine, expr: ir.Table, path: Path, fmt: str) -> int:
    """Write ``expr`` to ``path`` as ``csv`` or ``parquet``; return the row count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt not in ("csv", "parquet"):
        raise InputError(f"unknown format '{fmt}'; use csv or parquet", code="E_FORMAT")
    if engine.name == "pyspark":
        from tribes.engine import spark_io

        spark_io.write_table(engine, expr, path, fmt)  # type: ignore[arg-type]
    elif fmt == "parquet":
        engine.con.to_parquet(expr, str(path))
    else:
        engine.con.to_csv(expr, str(path))
    return int(engine.scalar(expr.count()))


def spool_dir(workspace: Path) -> Path:
    return workspace / ".tmp" / "spool"


def clear_spool(workspace: Path) -> None:
    """Delete spool files (raw values) of finished or crashed batches."""
    for f in spool_dir(workspace).glob("spool-*.parquet"):
        if f.is_dir():  # Spark writes a directory of parts
            shutil.rmtree(f, ignore_errors=True)
        else:
            f.unlink(missing_ok=True)
