"""The PySpark backend: a Spark session, tables as Parquet directories, batch atomicity.

Tables live in the *warehouse*, one Parquet directory per table
(``<workspace>/warehouse/<table>/`` by default, ``engine.spark_warehouse`` otherwise),
registered as session views when the engine opens. Nothing needs a Hive metastore.

Spark has no transactions on plain Parquet, so :meth:`SparkEngine.transaction` keeps
a journal: before a table is first written in the block, the names of its files are
noted (or, for a replacement, its directory is kept aside). An error rolls the written
tables back from the journal; a crash leaves the journal on disk and the next open
rolls back. A batch is therefore stored whole or not at all, as on DuckDB.

The differences of the Ibis expressions themselves (function names, JSON with nulls)
are in :mod:`tribes.engine.pyspark.quirks`; the session in
:mod:`~tribes.engine.pyspark.session`; how Spark reads files in
:mod:`~tribes.engine.pyspark.reader`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import ibis
import ibis.expr.schema as sch
import ibis.expr.types as ir

from tribes.config import EngineConfig
from tribes.engine.base import Engine, TextScan
from tribes.engine.formats import Dialect
from tribes.engine.pyspark import reader
from tribes.engine.pyspark.quirks import SparkCompiler, install_spark_types
from tribes.engine.pyspark.session import spark_session
from tribes.errors import EngineError

log = logging.getLogger(__name__)

WAREHOUSE = "warehouse"
JOURNAL = "_journal.json"


@dataclass
class SparkEngine(Engine):
    """An :class:`~tribes.engine.base.Engine` on a Spark session; tables are Parquet
    directories."""

    name: ClassVar[str] = "pyspark"
    skips_lines: ClassVar[bool] = False  # its CSV reader cannot skip a sep= line

    session: Any = None
    warehouse: Path = field(default_factory=Path)
    scratch: Path = field(default_factory=Path)
    _journal: dict[str, Any] = field(default_factory=dict)
    _temps: set[str] = field(default_factory=set)

    # ----------------------------------------------------------------- tables
    def list_tables(self) -> list[str]:
        return sorted(t.name for t in self.session.catalog.listTables())

    def has_table(self, name: str) -> bool:
        return bool(self.session.catalog.tableExists(name))

    def _dir(self, name: str) -> Path:
        return self.warehouse / name

    def _register(self, name: str, path: Path) -> None:
        self.session.read.parquet(str(path)).createOrReplaceTempView(name)

    def _df(self, expr: ir.Table) -> Any:
        """The Spark DataFrame of an Ibis expression (in-memory tables registered)."""
        self.con._run_pre_execute_hooks(expr)
        return self.session.sql(self.con.compile(expr))

    def _write(self, expr: ir.Table, path: Path, mode: str) -> None:
        self._df(expr).write.mode(mode).parquet(str(path))

    def create_empty(self, name: str, schema: sch.Schema) -> None:
        from ibis.backends.pyspark.datatypes import PySparkSchema

        path = self._dir(name)
        self._note(name)
        df = self.session.createDataFrame([], PySparkSchema.from_ibis(schema))
        df.write.mode("overwrite").parquet(str(path))
        self._register(name, path)

    def create_temp(self, name: str, expr: ir.Table) -> ir.Table:
        """Materialize ``expr`` as Parquet in the scratch directory, seen as view ``name``."""
        path = self.scratch / "temp" / name
        tmp = path.with_name(f"{name}.new-{secrets.token_hex(4)}")
        self._write(expr, tmp, "overwrite")
        shutil.rmtree(path, ignore_errors=True)
        tmp.rename(path)
        self._register(name, path)
        self._temps.add(name)
        return self.con.table(name)

    def drop_temp(self, name: str) -> None:
        with contextlib.suppress(Exception):
            self.session.catalog.dropTempView(name)
        shutil.rmtree(self.scratch / "temp" / name, ignore_errors=True)
        self._temps.discard(name)

    def replace_table(self, name: str, expr: ir.Table) -> ir.Table:
        path = self._dir(name)
        new = self.warehouse / f".{name}.new-{secrets.token_hex(4)}"
        self._write(expr, new, "overwrite")
        self._note(name, replacing=True)
        if path.exists():
            entry = self._journal.get("tables", {}).get(name) if self._in_tx else None
            if entry and entry["backup"] and not Path(entry["backup"]).exists():
                # keep the table as it was before the block: drop this block's own files
                keep = set(entry["files"])
                for f in path.iterdir():
                    if f.name not in keep:
                        f.unlink() if f.is_file() else shutil.rmtree(f)
                path.rename(entry["backup"])
            else:
                shutil.rmtree(path)
        new.rename(path)
        self._register(name, path)
        return self.con.table(name)

    def insert(self, name: str, expr: ir.Table) -> None:
        target = self.con.table(name)
        expr = expr.select(**{c: expr[c].cast(t) for c, t in target.schema().items()})
        self._note(name)
        self._write(expr, self._dir(name), "append")
        self._register(name, self._dir(name))

    def delete_where(self, name: str, predicate: ir.BooleanValue) -> None:
        """Rewrite table ``name`` without the rows matching ``predicate`` (Parquet files
        cannot be edited in place)."""
        t = self.table(name)
        self.replace_table(name, t.filter(~ibis.coalesce(predicate, False)))

    def execute(self, expr: ir.Expr) -> Any:
        """Results as on DuckDB: Spark hands timestamps to pandas without their zone
        (the session's, UTC); they get it back."""
        import pandas as pd

        result = self.con.execute(expr)
        if isinstance(result, pd.DataFrame):
            for c in result.columns:
                if isinstance(result[c].dtype, pd.DatetimeTZDtype):
                    continue
                if pd.api.types.is_datetime64_dtype(result[c].dtype):
                    result[c] = result[c].dt.tz_localize("UTC")
        elif isinstance(result, pd.Series) and pd.api.types.is_datetime64_dtype(result.dtype):
            result = result.dt.tz_localize("UTC")
        elif isinstance(result, pd.Timestamp) and result.tzinfo is None:
            result = result.tz_localize("UTC")
        return result

    def to_pyarrow(self, expr: ir.Table) -> Any:
        import pyarrow as pa

        table = self.con.to_pyarrow(expr)
        fields = [f.with_type(pa.timestamp(f.type.unit, "UTC"))
                  if pa.types.is_timestamp(f.type) and f.type.tz is None else f
                  for f in table.schema]
        return table.cast(pa.schema(fields))

    # ---------------------------------------------------------------- readers
    def _view(self, df: Any, name: str) -> ir.Table:
        df.createOrReplaceTempView(name)
        self._temps.add(name)
        return self.con.table(name)

    def check_files(self, paths: list[Path]) -> None:
        reader.check_files(paths)

    def read_csv(self, paths: list[Path], *, columns: list[str], dialect: Dialect, skip: int,
                 name: str) -> TextScan:
        """Records Spark cannot parse are kept, flagged by ``_valid`` (``skip``: always 0,
        see ``skips_lines``)."""
        self.drop_temp(name)
        table = self._view(reader.csv_frame(self.session, paths, columns=columns,
                                            dialect=dialect), name)
        if dialect.encoding == "latin-1":
            table = reader.as_windows_1252_text(table, columns)
        return TextScan(table)

    def read_lines(self, paths: list[Path], *, encoding: str, skip_first: str | None,
                   name: str) -> ir.Table:
        table = self._view(reader.lines_frame(self.session, paths, encoding=encoding,
                                              skip_first=skip_first), name)
        if encoding == "latin-1":
            table = reader.as_windows_1252_text(table, ["line"])
        return table

    def read_parquet(self, paths: list[Path], *, name: str) -> ir.Table:
        return self._view(reader.parquet_frame(self.session, paths), name)

    def spool(self, table: ir.Table, path: Path) -> ir.Table:
        """Write ``table`` once as a Parquet directory and read on from there."""
        self._write(table, path, "overwrite")
        return self._view(self.session.read.parquet(str(path)), "_tribes_spooled")

    def _write_file(self, expr: ir.Table, path: Path, fmt: str) -> None:
        reader.write_file(self._df(expr), path, fmt)

    # ------------------------------------------------------------ transactions
    def _note(self, name: str, *, replacing: bool = False) -> None:
        """Journal table ``name`` before its first write inside a transaction."""
        if not self._in_tx:
            return
        tables = self._journal.setdefault("tables", {})
        entry = tables.get(name)
        path = self._dir(name)
        if entry is None:
            entry = {"existed": path.exists(),
                     "files": sorted(p.name for p in path.iterdir()) if path.exists() else [],
                     "backup": None}
            tables[name] = entry
        if replacing and entry["backup"] is None and path.exists():
            entry["backup"] = str(self.warehouse / f".{name}.backup-{secrets.token_hex(4)}")
        self._save_journal()

    def _save_journal(self) -> None:
        tmp = self.warehouse / (JOURNAL + ".tmp")
        tmp.write_text(json.dumps(self._journal), encoding="utf-8")
        tmp.replace(self.warehouse / JOURNAL)

    def _begin(self) -> None:
        self._journal = {"tables": {}}
        self._save_journal()

    def _abort(self) -> None:
        self.rollback()

    def _end(self) -> None:
        self._commit()

    def _commit(self) -> None:
        for entry in self._journal.get("tables", {}).values():
            if entry["backup"]:
                shutil.rmtree(entry["backup"], ignore_errors=True)
        (self.warehouse / JOURNAL).unlink(missing_ok=True)
        self._journal = {}

    def rollback(self) -> None:
        """Undo the writes recorded in the journal (this process's, or a crashed one's)."""
        journal_file = self.warehouse / JOURNAL
        journal = self._journal or (json.loads(journal_file.read_text(encoding="utf-8"))
                                    if journal_file.exists() else {})
        for name, entry in journal.get("tables", {}).items():
            path = self._dir(name)
            backup = Path(entry["backup"]) if entry["backup"] else None
            if not entry["existed"]:
                shutil.rmtree(path, ignore_errors=True)
                if backup is not None:
                    shutil.rmtree(backup, ignore_errors=True)
            elif backup is not None and backup.exists():
                shutil.rmtree(path, ignore_errors=True)
                backup.rename(path)
            elif path.exists():
                keep = set(entry["files"])
                for f in path.iterdir():
                    if f.name not in keep:
                        f.unlink() if f.is_file() else shutil.rmtree(f)
            if path.exists():
                self._register(name, path)
            else:
                with contextlib.suppress(Exception):
                    self.session.catalog.dropTempView(name)
        for stale in self.warehouse.glob(".*.new-*"):
            shutil.rmtree(stale, ignore_errors=True)
        journal_file.unlink(missing_ok=True)
        self._journal = {}

    def close(self) -> None:
        # the session outlives the engine (starting one costs seconds); views go
        for name in self.list_tables():
            with contextlib.suppress(Exception):
                self.session.catalog.dropTempView(name)
        for name in list(self._temps):
            self.drop_temp(name)


def connect(path: Path | None, cfg: EngineConfig, *, read_only: bool = False) -> SparkEngine:
    """Open the workspace's warehouse on Spark (a scratch one for ``path=None``).
    ``read_only`` changes nothing: Spark keeps no lock on the warehouse."""
    if path is None:
        import tempfile

        path = Path(tempfile.mkdtemp(prefix="tribes-spark-"))
    scratch = path / ".tmp" / "spark"
    scratch.mkdir(parents=True, exist_ok=True)
    if cfg.spark_warehouse and "://" in cfg.spark_warehouse:
        raise EngineError(
            f"engine.spark_warehouse '{cfg.spark_warehouse}': only filesystem paths are "
            "supported (on a cluster, a directory mounted on the driver and every executor)",
            code="E_CONFIG",
        )
    warehouse = Path(cfg.spark_warehouse) if cfg.spark_warehouse else path / WAREHOUSE
    warehouse.mkdir(parents=True, exist_ok=True)
    session = spark_session(cfg, scratch)
    install_spark_types()
    con = ibis.pyspark.connect(session)
    con.compiler = SparkCompiler()
    engine = SparkEngine(con=con, path=path, session=session,
                         warehouse=warehouse, scratch=scratch)
    for name in list(engine.list_tables()):  # views left by an earlier engine of the session
        session.catalog.dropTempView(name)
    if (warehouse / JOURNAL).exists():
        log.warning("rolling back a batch interrupted in an earlier run")
        engine.rollback()
    for table_dir in sorted(warehouse.iterdir()):
        if table_dir.is_dir() and not table_dir.name.startswith((".", "_")):
            engine._register(table_dir.name, table_dir)
    return engine
