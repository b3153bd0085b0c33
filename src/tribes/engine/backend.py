"""Connecting to the backend, transactions, and table helpers shared by every stage."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir

from tribes.config import EngineConfig
from tribes.errors import DependencyError, EngineError

log = logging.getLogger(__name__)

DB_FILE = "tribes.duckdb"
DB_KEY_ENV = "TRIBES_DB_KEY"
DB_KEY_FILE = "db.key"
CATALOG = "tribes"  # the database's name in DuckDB's catalog, whether attached or opened


@dataclass
class Engine:
    """A connection to the workspace database through Ibis.

    Parameters
    ----------
    con
        The Ibis backend.
    name
        Backend name, ``"duckdb"`` or ``"pyspark"``; selects per-backend quirks.
    """

    con: Any
    name: str
    path: Path | None = None
    _in_tx: bool = False
    encrypted: bool = False  # the database is encrypted at rest: so must be anything spilled
    # set by the workspace: appends to its audit log (see tribes.privacy.audit.record)
    auditor: Callable[..., Any] | None = None
    _pending_audit: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def audit(self, action: str, **what: Any) -> None:
        """Record a change or data access in the workspace's audit log (no workspace, no
        log: an in-memory engine records nothing)."""
        if self.auditor is None:
            return
        if self._in_tx:
            self._pending_audit.append((action, what))
        else:
            self.auditor(action, **what)

    # ----------------------------------------------------------------- tables
    def list_tables(self) -> list[str]:
        return list(self.con.list_tables())

    def has_table(self, name: str) -> bool:
        return name in self.con.list_tables()

    def create_empty(self, name: str, schema: Any) -> None:
        """Create table ``name`` with ``schema`` and no rows."""
        self.con.create_table(name, schema=schema)

    def table(self, name: str) -> ir.Table:
        return self.con.table(name)

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

    def drop_temps(self, prefix: str) -> None:
        """Drop every temporary table whose name starts with ``prefix``."""
        for name in self.list_tables():
            if name.startswith(prefix):
                self.drop_temp(name)

    def replace_table(self, name: str, expr: ir.Table) -> ir.Table:
        """Store ``expr`` as table ``name``, replacing what was there (transaction-safe)."""
        self.con.create_table(name, expr, overwrite=True)
        return self.con.table(name)

    def insert(self, name: str, expr: ir.Table) -> None:
        self.con.insert(name, expr)

    def delete_where(self, name: str, predicate: ir.BooleanValue) -> None:
        """Delete rows of table ``name`` matching ``predicate`` (an expression on that table)."""
        from tribes.engine.sql import delete_statement

        # register in-memory tables the predicate refers to, as Ibis does before a query
        self.con._run_pre_execute_hooks(self.table(name).filter(predicate))
        self.con.raw_sql(delete_statement(self, name, predicate))

    def execute(self, expr: ir.Expr) -> Any:
        return self.con.execute(expr)

    def scalar(self, expr: ir.Scalar) -> Any:
        return self.con.execute(expr)

    def to_pyarrow(self, expr: ir.Table) -> Any:
        return self.con.to_pyarrow(expr)

    # ------------------------------------------------------------ transactions
    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the block as one transaction: all of it is stored, or none of it.

        Audit records written inside the block are appended once it has committed, so
        the log never tells of a change that was rolled back.
        """
        if self._in_tx:
            yield
            return
        self._begin()
        self._in_tx = True
        self._pending_audit = []
        try:
            yield
        except BaseException:
            self._in_tx = False
            self._pending_audit = []
            self._abort()
            raise
        self._in_tx = False
        self._end()
        pending, self._pending_audit = self._pending_audit, []
        for action, what in pending:
            self.audit(action, **what)

    def _begin(self) -> None:
        self.con.raw_sql("BEGIN TRANSACTION")

    def _abort(self) -> None:
        with contextlib.suppress(Exception):
            self.con.raw_sql("ROLLBACK")

    def _end(self) -> None:
        self.con.raw_sql("COMMIT")

    def checkpoint(self) -> None:
        if self.name == "duckdb":
            self.con.raw_sql("CHECKPOINT")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.con.disconnect()


def connect(path: Path | None, cfg: EngineConfig | None = None, *, read_only: bool = False) -> (
    Engine
):
    """Open the workspace database.

    Parameters
    ----------
    path
        Workspace directory; ``None`` opens an in-memory database (tests, scratch work).
    cfg
        Engine settings (backend, memory limit, threads).
    read_only
        Open the DuckDB file read-only (several readers may share it).
    """
    cfg = cfg or EngineConfig()
    if cfg.backend == "pyspark":
        from tribes.engine.spark import connect_spark

        return connect_spark(path, cfg)
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
    from tribes.engine.quirks import DuckCompiler

    con.compiler = DuckCompiler()
    # timestamps are stored and compared in UTC whatever the machine's zone
    con.raw_sql("SET TimeZone = 'UTC'")
    # stdout belongs to the command's result (--json); tribes shows its own progress
    con.raw_sql("SET enable_progress_bar = false")
    return Engine(con=con, name="duckdb", path=path, encrypted=key is not None)


def database_key(workspace: Path) -> str:
    """The encryption key of the workspace database: ``TRIBES_DB_KEY``, else ``db.key``."""
    import os

    env = os.environ.get(DB_KEY_ENV)
    if env:
        return env.strip()
    key_file = workspace / DB_KEY_FILE
    if key_file.exists():
        return key_file.read_text(encoding="utf-8").strip()
    raise EngineError(
        f"the workspace database is encrypted and no key was found: set {DB_KEY_ENV} (from "
        f"your secret store) or restore {DB_KEY_FILE}", code="E_DB_KEY")


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
    from tribes.engine.sql import attach_statement, use_statement

    con = ibis.duckdb.connect(":memory:", **config)
    # loaded from the installed wheel's file: nothing is downloaded
    con.con.load_extension(str(_crypto_extension()))
    con.raw_sql(attach_statement(database, CATALOG, key=key, read_only=read_only))
    con.raw_sql(use_statement(CATALOG))
    return con
