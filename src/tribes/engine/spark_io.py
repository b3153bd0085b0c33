"""Reading and writing files on the PySpark backend (the twins of ``engine.io``'s DuckDB
readers; ``engine.io`` picks these when the engine is Spark).

Every reader returns the source as a session view with the column ``_file`` holding the
path as given (Spark itself reports ``file:`` URIs). Records Spark cannot parse are kept
with a false ``_valid`` column, so ingest quarantines them as ``E_MALFORMED``; Spark does
not tell their line numbers.
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ibis.expr.types as ir

from tribes.errors import InputError

if TYPE_CHECKING:
    from tribes.engine.spark import SparkEngine

FILE_COLUMN = "_file"
VALID_COLUMN = "_valid"
CORRUPT = "_corrupt_record"
BOM = "\ufeff"
# the names Spark's readers know the engine's encodings by
_CHARSETS = {"utf-8": "UTF-8", "utf-16": "UTF-16", "latin-1": "ISO-8859-1"}


def _charset(encoding: str) -> str:
    return _CHARSETS.get(encoding, encoding)


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


def _view(engine: SparkEngine, df: Any, name: str) -> ir.Table:
    df.createOrReplaceTempView(name)
    engine._temps.add(name)
    return engine.con.table(name)


def _fail(kind: str, path: Path, exc: BaseException) -> InputError:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return InputError(f"cannot read {kind} {path.name}: {text}", code="E_READ")


def read_csv(engine: SparkEngine, files: list[Path], *, columns: list[str], delimiter: str,
             encoding: str, header: bool, name: str) -> ir.Table:
    """CSV files sharing one header, every column as text, plus ``_file`` and ``_valid``."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    schema = StructType([StructField(c, StringType()) for c in [*columns, CORRUPT]])
    try:
        df = engine.session.read.csv(
            [str(p) for p in files], schema=schema, header=header, sep=delimiter,
            encoding=_charset(encoding), quote='"', escape='"', mode="PERMISSIVE",
            columnNameOfCorruptRecord=CORRUPT, multiLine=True, enforceSchema=True,
        )
        df = _with_file(df, files)
        # Spark refuses queries that read only the corrupt-record column of a raw file;
        # the validity flag is computed with the data columns in the same projection
        df = df.withColumn(VALID_COLUMN, F.col(CORRUPT).isNull()).drop(CORRUPT)
    except Exception as exc:
        raise _fail("CSV", files[0], exc) from None
    return _view(engine, df, name)


def read_lines(engine: SparkEngine, files: list[Path], *, encoding: str, skip_first: str | None,
               name: str) -> ir.Table:
    """Text files as one ``line`` per row plus ``_file``; ``skip_first`` drops header lines.
    A byte-order mark at the start of a file is removed (as DuckDB does)."""
    from pyspark.sql import functions as F

    try:
        df = engine.session.read.option("encoding", _charset(encoding)).text(
            [str(p) for p in files])
        df = _with_file(df, files)
        line = F.col("value")
        line = F.when(line.startswith(BOM), F.substring(line, 2, 1 << 30)).otherwise(line)
        df = df.select(line.alias("line"), FILE_COLUMN)
        if skip_first is not None:
            df = df.filter(F.col("line") != F.lit(skip_first))
    except Exception as exc:
        raise _fail("text", files[0], exc) from None
    return _view(engine, df, name)


def read_parquet(engine: SparkEngine, files: list[Path], *, name: str) -> ir.Table:
    try:
        df = engine.session.read.option("mergeSchema", "true").parquet(*[str(p) for p in files])
        df = _with_file(df, files)
    except Exception as exc:
        raise _fail("Parquet", files[0], exc) from None
    return _view(engine, df, name)


def spool(engine: SparkEngine, table: ir.Table, path: Path) -> ir.Table:
    """Write ``table`` once as a Parquet directory and read on from there."""
    engine._write(table, path, "overwrite")
    df = engine.session.read.parquet(str(path))
    return _view(engine, df, "_tribes_spooled")


def write_table(engine: SparkEngine, expr: ir.Table, path: Path, fmt: str) -> None:
    """Write ``expr`` as one file at ``path`` (Spark writes a directory of parts: the rows
    are brought into one part, by one task, and that file is moved into place)."""
    tmp = path.with_name(f".{path.name}.parts-{secrets.token_hex(4)}")
    df = engine._df(expr).coalesce(1)
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
