"""The PySpark backend: a Spark session, tables as Parquet directories, batch atomicity.

Tables live in the *warehouse*, one Parquet directory per table
(``<workspace>/warehouse/<table>/`` by default, ``engine.spark_warehouse`` otherwise),
registered as session views when the engine opens. Nothing needs a Hive metastore.

Spark has no transactions on plain Parquet, so :meth:`SparkEngine.transaction` keeps
a journal: before a table is first written in the block, the names of its files are
noted (or, for a replacement, its directory is kept aside). An error rolls the written
tables back from the journal; a crash leaves the journal on disk and the next open
rolls back. A batch is therefore stored whole or not at all, as on DuckDB.

The per-backend differences of the Ibis expressions themselves (function names, JSON
with nulls) are in :mod:`tribes.engine.quirks`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.schema as sch
import ibis.expr.types as ir

from tribes.config import EngineConfig
from tribes.engine.backend import Engine
from tribes.errors import DependencyError, EngineError

log = logging.getLogger(__name__)

WAREHOUSE = "warehouse"
JOURNAL = "_journal.json"
MASTER_ENV = "TRIBES_SPARK_MASTER"
JAVA_HOMES = ("/usr/lib/jvm/java-17-openjdk-amd64", "/usr/lib/jvm/java-17-openjdk-arm64")

# session settings tribes relies on; [engine.spark] may add to them, not change these
FIXED_SETTINGS = {
    "spark.sql.session.timeZone": "UTC",
    # Parquet timestamps as plain microseconds (INT96 is deprecated and not portable)
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
DEFAULT_SETTINGS = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",  # tribes draws its own progress
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.adaptive.enabled": "true",
    "spark.driver.memory": "2g",
}

_sessions: dict[str, Any] = {}

_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
               "g": 1 << 30, "gb": 1 << 30, "t": 1 << 40, "tb": 1 << 40}


def size_bytes(text: str) -> int | None:
    """Bytes of a Spark size setting (``"512k"``, ``"1g"``, ``"1048576"``); None if unreadable."""
    m = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        return None
    return int(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]


def fit_broadcasts(settings: dict[str, str]) -> dict[str, str]:
    """Keep broadcast joins under the driver's result limit.

    A broadcast join first collects its small side to the driver, so with a low
    ``spark.driver.maxResultSize`` the default 10 MB broadcast threshold would abort the
    join (and with it the stage). Unless set explicitly, the threshold becomes an eighth of
    the limit: Spark judges a side's size from its compressed files, and the collected rows
    are larger.
    """
    key = "spark.sql.autoBroadcastJoinThreshold"
    limit = size_bytes(settings.get("spark.driver.maxResultSize", ""))
    if key in settings or not limit:  # unset, unreadable or 0 (no limit)
        return settings
    return {**settings, key: str(max(limit // 8, 1))}


def _java_home() -> None:
    if os.environ.get("JAVA_HOME"):
        return
    for home in JAVA_HOMES:
        if Path(home, "bin", "java").exists():
            os.environ["JAVA_HOME"] = home
            return


def spark_session(cfg: EngineConfig, scratch: Path) -> Any:
    """The process's Spark session (one per master URL; starting one takes seconds)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise DependencyError(
            "the pyspark backend needs PySpark: pip install 'tribes[spark]'", code="E_BACKEND"
        ) from None
    master = os.environ.get(MASTER_ENV) or cfg.spark_master
    if master in _sessions:
        return _sessions[master]
    _java_home()
    if master.startswith("local"):
        # no network here: bind the driver to loopback
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    settings = fit_broadcasts({**DEFAULT_SETTINGS, **{k: str(v) for k, v in cfg.spark.items()},
                               **FIXED_SETTINGS})
    # tables are Parquet directories tribes manages; Spark's own warehouse would only
    # leave a ./spark-warehouse behind
    settings.setdefault("spark.sql.warehouse.dir", str(scratch))
    settings.setdefault("spark.local.dir", str(scratch / "local"))
    log4j = Path(__file__).with_name("log4j2.properties")
    settings.setdefault("spark.driver.extraJavaOptions", f"-Dlog4j.configurationFile={log4j}")
    builder = SparkSession.builder.master(master).appName("tribes")
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:
        raise EngineError(f"cannot start Spark ({master}): {str(exc).splitlines()[0]}; is Java "
                          "17 installed (JAVA_HOME)?", code="E_SPARK") from None
    session.sparkContext.setLogLevel("ERROR")
    _sessions[master] = session
    return session


@dataclass
class SparkEngine(Engine):
    """An :class:`Engine` on a Spark session; tables are Parquet directories."""

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

    def scalar(self, expr: ir.Scalar) -> Any:
        return self.execute(expr)

    def to_pyarrow(self, expr: ir.Table) -> Any:
        import pyarrow as pa

        table = self.con.to_pyarrow(expr)
        fields = [f.with_type(pa.timestamp(f.type.unit, "UTC"))
                  if pa.types.is_timestamp(f.type) and f.type.tz is None else f
                  for f in table.schema]
        return table.cast(pa.schema(fields))

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

    def checkpoint(self) -> None:
        return None

    def close(self) -> None:
        # the session outlives the engine (starting one costs seconds); views go
        for name in self.list_tables():
            with contextlib.suppress(Exception):
                self.session.catalog.dropTempView(name)
        for name in list(self._temps):
            self.drop_temp(name)


def connect_spark(path: Path | None, cfg: EngineConfig) -> SparkEngine:
    """Open the workspace's warehouse on Spark (a scratch one for ``path=None``)."""
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
    from tribes.engine.quirks import SparkCompiler, install_spark_types

    install_spark_types()
    con = ibis.pyspark.connect(session)
    con.compiler = SparkCompiler()
    engine = SparkEngine(con=con, name="pyspark", path=path, session=session,
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
