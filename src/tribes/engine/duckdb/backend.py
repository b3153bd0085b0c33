"""The DuckDB engine: the workspace database is one DuckDB file, opened through Ibis."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any, ClassVar

import ibis
import ibis.expr.types as ir

from tribes.config import EngineConfig
from tribes.engine.base import Engine, TextScan
from tribes.engine.duckdb import DB_FILE, DB_KEY_ENV, database_key, reader
from tribes.engine.duckdb.quirks import DuckCompiler
from tribes.engine.duckdb.sql import attach_statement, delete_statement, use_statement
from tribes.engine.formats import Dialect
from tribes.errors import DependencyError, EngineError

log = logging.getLogger(__name__)

CATALOG = "tribes"  # the database's name in DuckDB's catalog, whether attached or opened


class DuckDBEngine(Engine):
    """An :class:`~tribes.engine.base.Engine` on a DuckDB database (a file, or memory)."""

    name: ClassVar[str] = "duckdb"

    # ----------------------------------------------------------------- tables
    def list_tables(self) -> list[str]:
        return list(self.con.list_tables())

    def has_table(self, name: str) -> bool:
        return name in self.con.list_tables()

    def create_empty(self, name: str, schema: Any) -> None:
        self.con.create_table(name, schema=schema)

    def create_temp(self, name: str, expr: ir.Table) -> ir.Table:
        """Materialize ``expr`` as a temporary table (memory, spilled to disk when large).

        An empty table of the expression's schema, then one ``INSERT``: Ibis' own
        ``create_table`` fills a table under another name and copies it, writing every
        row twice; a bare ``CREATE TABLE AS`` would take the engine's own result types
        (a sum of integers is a 128-bit integer there), not the expression's.
        """
        self.con.create_table(name, schema=expr.schema(), temp=True, overwrite=True)
        self.con.insert(name, expr)
        return self.con.table(name)

    def drop_temp(self, name: str) -> None:
        with contextlib.suppress(Exception):
            self.con.drop_table(name, force=True)
        with contextlib.suppress(Exception):
            self.con.drop_view(name, force=True)

    def replace_table(self, name: str, expr: ir.Table) -> ir.Table:
        self.con.create_table(name, expr, overwrite=True)
        return self.con.table(name)

    def insert(self, name: str, expr: ir.Table) -> None:
        self.con.insert(name, expr)

    def delete_where(self, name: str, predicate: ir.BooleanValue) -> None:
        # register in-memory tables the predicate refers to, as Ibis does before a query
        self.con._run_pre_execute_hooks(self.table(name).filter(predicate))
        self.con.raw_sql(delete_statement(self, name, predicate))

    # ------------------------------------------------------------ transactions
    def _begin(self) -> None:
        self.con.raw_sql("BEGIN TRANSACTION")

    def _abort(self) -> None:
        with contextlib.suppress(Exception):
            self.con.raw_sql("ROLLBACK")

    def _end(self) -> None:
        self.con.raw_sql("COMMIT")

    def checkpoint(self) -> None:
        self.con.raw_sql("CHECKPOINT")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.con.disconnect()

    # ---------------------------------------------------------------- readers
    def refuses_windows_1252(self, problem: str) -> bool:
        # DuckDB's Latin-1 has no euro sign, no curly quotes
        return "latin-1" in problem.lower()

    def read_csv(self, paths: list[Path], *, columns: list[str], dialect: Dialect, skip: int,
                 name: str) -> TextScan:
        return reader.read_csv(self, paths, columns=columns, dialect=dialect, skip=skip,
                               name=name)

    def read_lines(self, paths: list[Path], *, encoding: str, skip_first: str | None,
                   name: str) -> ir.Table:
        return reader.read_lines(self, paths, encoding=encoding, skip_first=skip_first,
                                 name=name)

    def read_parquet(self, paths: list[Path], *, name: str) -> ir.Table:
        return reader.read_parquet(self, paths, name=name)

    def spool(self, table: ir.Table, path: Path) -> ir.Table:
        if self.encrypted:
            # raw values never go to a plain file: a temporary table spills encrypted
            return self.create_temp("_tribes_spooled", table)
        self.con.to_parquet(table, str(path), compression="snappy")
        return self.con.read_parquet(str(path), table_name="_tribes_spooled")

    def _write_file(self, expr: ir.Table, path: Path, fmt: str) -> None:
        if fmt == "parquet":
            self.con.to_parquet(expr, str(path))
        else:
            self.con.to_csv(expr, str(path))


def connect(path: Path | None, cfg: EngineConfig, *, read_only: bool = False) -> DuckDBEngine:
    """Open the workspace database (``path=None``: an in-memory one).

    Parameters
    ----------
    path
        Workspace directory; ``None`` opens an in-memory database (tests, scratch work).
    cfg
        Engine settings (memory limit, threads, encryption, ``[engine.duckdb]``).
    read_only
        Open the DuckDB file read-only (several readers may share it).
    """
    config: dict[str, Any] = {
        # never reach the network for extensions: parquet, json and icu are built in
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": True,
        # tables are sets: letting DuckDB write in any order is faster and leaner
        "preserve_insertion_order": False,
    }
    if cfg.memory_limit:
        config["memory_limit"] = cfg.memory_limit
    if cfg.threads:
        config["threads"] = cfg.threads
    config.update(cfg.duckdb)
    if path is None:
        database = ":memory:"
    else:
        database = str(path / DB_FILE)
        config.setdefault("temp_directory", str(path / ".tmp"))
    key = None
    if cfg.encrypted and path is not None:
        key = database_key(path)
        config["temp_file_encryption"] = True  # spilled data is encrypted too
    try:
        if key is None:
            con = ibis.duckdb.connect(database, read_only=read_only, **config)
        else:
            con = _connect_encrypted(database, key, read_only, config)
    except Exception as exc:  # duckdb raises its own IOException on a locked file
        text = str(exc)
        if "lock" in text.lower():
            raise EngineError(
                f"the workspace database is in use by another process ({text.splitlines()[0]}); "
                "wait for it to finish or stop it",
                code="E_LOCKED",
            ) from None
        if key is not None and ("key" in text.lower() or "decrypt" in text.lower()):
            raise EngineError(f"cannot open the encrypted workspace database: the key is "
                              f"wrong ({text.splitlines()[0]}); set {DB_KEY_ENV} to the key "
                              "given at tribes init --encrypt", code="E_DB_KEY") from None
        raise EngineError(f"cannot open the workspace database: {text}") from None
    con.compiler = DuckCompiler()
    # timestamps are stored and compared in UTC whatever the machine's zone
    con.raw_sql("SET TimeZone = 'UTC'")
    # stdout belongs to the command's result (--json); tribes shows its own progress
    con.raw_sql("SET enable_progress_bar = false")
    return DuckDBEngine(con=con, path=path, encrypted=key is not None, read_only=read_only)


def _crypto_extension() -> Path:
    """DuckDB's httpfs extension (OpenSSL), which writing encrypted databases needs."""
    import importlib.util

    import duckdb

    spec = importlib.util.find_spec("duckdb_extension_httpfs")
    version = duckdb.__version__
    if spec is not None and spec.origin is not None:
        ext = Path(spec.origin).parent / "extensions" / f"v{version}" / "httpfs.duckdb_extension"
        if ext.exists():
            return ext
    raise DependencyError(
        f"encrypted workspaces need DuckDB's httpfs extension built for DuckDB {version}: "
        f"pip install duckdb-extension-httpfs=={version}", code="E_DEPENDENCY")


def _connect_encrypted(database: str, key: str, read_only: bool,
                       config: dict[str, Any]) -> Any:
    """An in-memory DuckDB with the encrypted workspace file attached and in use."""
    con = ibis.duckdb.connect(":memory:", **config)
    # loaded from the installed wheel's file: nothing is downloaded
    con.con.load_extension(str(_crypto_extension()))
    con.raw_sql(attach_statement(database, CATALOG, key=key, read_only=read_only))
    con.raw_sql(use_statement(CATALOG))
    return con
