"""Reading and writing files with Spark: each reader builds the DataFrame of its files,
which :class:`~tribes.engine.pyspark.backend.SparkEngine` registers as a session view.

Every DataFrame has the column ``_file`` holding the path as given (Spark itself reports
``file:`` URIs). Records Spark cannot parse are kept with a false ``_valid`` column, so
ingest quarantines them as ``E_MALFORMED``; Spark does not tell their line numbers.
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path
from typing import Any

import ibis.expr.types as ir

from tribes.engine.base import read_error
from tribes.engine.formats import FILE_COLUMN, VALID_COLUMN, Dialect
from tribes.errors import InputError

CORRUPT = "_corrupt_record"
BOM = "\ufeff"
# the names Spark's readers know the engine's encodings by
_CHARSETS = {"utf-8": "UTF-8", "utf-16": "UTF-16", "latin-1": "ISO-8859-1"}

# Windows-1252 characters at the code points Latin-1 gives C1 controls (0x80-0x9f)
_C1 = "".join(chr(c) for c in (0x80, *range(0x82, 0x8D), 0x8E, *range(0x91, 0x9D), 0x9E, 0x9F))
_CP1252 = bytes(ord(c) for c in _C1).decode("cp1252")


def _charset(encoding: str) -> str:
    return _CHARSETS.get(encoding, encoding)


def check_files(paths: list[Path]) -> None:
    """Refuse the compressed files Spark cannot read here."""
    for p in paths:
        name = p.name.lower()
        if name.endswith((".zst", ".zstd")):
            raise InputError(f"{p.name}: zstd-compressed files are read on the DuckDB backend "
                             "only (Spark's Hadoop has no zstd codec here); decompress it "
                             "(zstd -d) or compress it with gzip", code="E_FORMAT")
        if name.endswith(".gzip"):
            raise InputError(f"{p.name}: Spark recognizes gzip files by the ending .gz; "
                             "rename it", code="E_FORMAT")


def as_windows_1252_text(table: ir.Table, columns: list[str]) -> ir.Table:
    """Latin-1 text as Windows-1252 (curly quotes, dashes, the euro sign): Spark reads
    those bytes as control characters (DuckDB refuses them; its reader is given a UTF-8
    copy instead)."""
    return table.mutate(**{c: table[c].translate(_C1, _CP1252) for c in columns})


def _with_file(df: Any, paths: list[Path]) -> Any:
    """Add ``_file``: each row's source path, spelled as the caller gave it."""
    from pyspark.sql import functions as F

    uri = F.col("_metadata.file_path")
    given = None
    for p in paths:
        resolved = Path(p).resolve()
        for spelling in {resolved.as_uri(), "file:" + str(resolved), str(resolved)}:
            cond = uri == spelling
            given = F.when(cond, str(p)) if given is None else given.when(cond, str(p))
    name = given.otherwise(uri) if given is not None else uri
    return df.withColumn(FILE_COLUMN, name)


def csv_frame(session: Any, files: list[Path], *, columns: list[str],
              dialect: Dialect) -> Any:
    """CSV files sharing one header, every column as text, plus ``_file`` and ``_valid``."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    schema = StructType([StructField(c, StringType()) for c in [*columns, CORRUPT]])
    try:
        df = session.read.csv(
            [str(p) for p in files], schema=schema, header=dialect.header,
            sep=dialect.delimiter, encoding=_charset(dialect.encoding), quote='"', escape='"',
            mode="PERMISSIVE", columnNameOfCorruptRecord=CORRUPT, multiLine=True,
            enforceSchema=True,
        )
        df = _with_file(df, files)
        # Spark refuses queries that read only the corrupt-record column of a raw file;
        # the validity flag is computed with the data columns in the same projection
        return df.withColumn(VALID_COLUMN, F.col(CORRUPT).isNull()).drop(CORRUPT)
    except Exception as exc:
        raise read_error(f"CSV {files[0].name}", exc) from None


def lines_frame(session: Any, files: list[Path], *, encoding: str,
                skip_first: str | None) -> Any:
    """Text files as one ``line`` per row plus ``_file``; ``skip_first`` drops header lines.
    A byte-order mark at the start of a file is removed (as DuckDB does)."""
    from pyspark.sql import functions as F

    try:
        df = session.read.option("encoding", _charset(encoding)).text([str(p) for p in files])
        df = _with_file(df, files)
        line = F.col("value")
        line = F.when(line.startswith(BOM), F.substring(line, 2, 1 << 30)).otherwise(line)
        df = df.select(line.alias("line"), FILE_COLUMN)
        if skip_first is not None:
            df = df.filter(F.col("line") != F.lit(skip_first))
    except Exception as exc:
        raise read_error(f"text {files[0].name}", exc) from None
    return df


def parquet_frame(session: Any, files: list[Path]) -> Any:
    try:
        df = session.read.option("mergeSchema", "true").parquet(*[str(p) for p in files])
        return _with_file(df, files)
    except Exception as exc:
        raise read_error(f"Parquet {files[0].name}", exc) from None


def write_file(df: Any, path: Path, fmt: str) -> None:
    """Write ``df`` as one file at ``path`` (Spark writes a directory of parts: the rows
    are brought into one part, by one task, and that file is moved into place)."""
    tmp = path.with_name(f".{path.name}.parts-{secrets.token_hex(4)}")
    df = df.coalesce(1)
    try:
        if fmt == "parquet":
            df.write.mode("overwrite").parquet(str(tmp))
        else:
            df.write.mode("overwrite").csv(str(tmp), header=True, quote='"', escape='"',
                                           timestampFormat="yyyy-MM-dd HH:mm:ss.SSSSSSXXX")
        parts = sorted(tmp.glob("part-*"))
        if not parts:
            raise InputError(f"Spark wrote no file for {path.name}", code="E_WRITE")
        path.unlink(missing_ok=True)
        shutil.move(str(parts[0]), path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
