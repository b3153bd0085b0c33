"""The abstract engine: what every backend implements, and what they share.

A backend is a package under ``tribes.engine`` (``duckdb``, ``pyspark``) with a subclass
of :class:`Engine` and a ``connect(path, cfg, *, read_only)`` function;
:mod:`tribes.engine.registry` finds it by name. Nothing here knows a backend: the shared
parts are written with Ibis' own API and the abstract methods.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import ibis
import ibis.expr.types as ir

from tribes.engine.formats import (
    FILE_COLUMN,
    LINE_COLUMN,
    MAX_RECORD_BYTES,
    VALID_COLUMN,
    Dialect,
)
from tribes.engine.functions import json_member, json_valid
from tribes.errors import InputError

# one dict per rejected record: file (the path read), line, error, pos (its byte offset)
Rejects = Callable[[bool], list[dict[str, Any]]]


@dataclass
class TextScan:
    """Delimited text files as a backend read them.

    ``table`` holds the data columns and ``_file``. A backend that keeps the records it
    could not parse flags them with a false ``_valid`` column and has no ``rejects``; one
    that sets them aside tells them with ``rejects``, once the table has been scanned
    (called with ``True``: only the first record refused for its encoding).
    """

    table: ir.Table
    rejects: Rejects | None = None


def read_error(what: str, exc: BaseException) -> InputError:
    """``cannot read <what>: <the first line of the backend's error>``."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return InputError(f"cannot read {what}: {text}", code="E_READ")


@dataclass
class Engine(ABC):
    """A connection to the workspace database through Ibis.

    Parameters
    ----------
    con
        The Ibis backend.
    path
        The workspace directory (None: a scratch database).
    """

    name: ClassVar[str]  # the backend's name in the configuration and the registry
    # whether read_csv can skip the lines before a file's first record (a ``sep=;``
    # line); when not, it is given a copy without them
    skips_lines: ClassVar[bool] = True

    con: Any
    path: Path | None = None
    _in_tx: bool = False
    encrypted: bool = False  # the database is encrypted at rest: so must be anything spilled
    read_only: bool = False  # opened for reading: derived tables are computed, not stored
    # set by the workspace: appends to its audit log (see tribes.privacy.audit_log.record)
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
    @abstractmethod
    def list_tables(self) -> list[str]: ...

    @abstractmethod
    def has_table(self, name: str) -> bool: ...

    @abstractmethod
    def create_empty(self, name: str, schema: Any) -> None:
        """Create table ``name`` with ``schema`` and no rows."""

    def table(self, name: str) -> ir.Table:
        return self.con.table(name)

    @abstractmethod
    def create_temp(self, name: str, expr: ir.Table) -> ir.Table:
        """Materialize ``expr`` as a temporary table ``name`` and return it."""

    @abstractmethod
    def drop_temp(self, name: str) -> None:
        """Drop temporary table or view ``name`` if there is one."""

    def drop_temps(self, prefix: str) -> None:
        """Drop every temporary table whose name starts with ``prefix``."""
        for name in self.list_tables():
            if name.startswith(prefix):
                self.drop_temp(name)

    @abstractmethod
    def replace_table(self, name: str, expr: ir.Table) -> ir.Table:
        """Store ``expr`` as table ``name``, replacing what was there (transaction-safe)."""

    @abstractmethod
    def insert(self, name: str, expr: ir.Table) -> None:
        """Append the rows of ``expr`` to table ``name``."""

    @abstractmethod
    def delete_where(self, name: str, predicate: ir.BooleanValue) -> None:
        """Delete rows of table ``name`` matching ``predicate`` (an expression on that table)."""

    def execute(self, expr: ir.Expr) -> Any:
        return self.con.execute(expr)

    def scalar(self, expr: ir.Scalar) -> Any:
        return self.execute(expr)

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

    @abstractmethod
    def _begin(self) -> None: ...

    @abstractmethod
    def _abort(self) -> None:
        """Undo the block's writes (must not raise)."""

    @abstractmethod
    def _end(self) -> None: ...

    def checkpoint(self) -> None:
        """Write what the database keeps in its log into its file (if it has a log)."""
        return None

    @abstractmethod
    def close(self) -> None: ...

    # ---------------------------------------------------------------- readers
    # Every reader registers the files as a temporary view ``name`` with the column
    # ``_file`` (each row's path as given) and every source column as text (Parquet:
    # with its own types). Records it cannot parse never fail the read: they are
    # reported (TextScan.rejects) or flagged (``_valid``).

    def check_files(self, paths: list[Path]) -> None:
        """Refuse files this backend cannot read, before anything is read."""
        return None  # it reads every file ingest accepts

    def refuses_windows_1252(self, problem: str) -> bool:
        """Whether reading Latin-1 text failed with ``problem`` because the backend refuses
        the characters Windows-1252 adds to Latin-1 (the caller then reads a UTF-8 copy)."""
        return False

    @abstractmethod
    def read_csv(self, paths: list[Path], *, columns: list[str], dialect: Dialect, skip: int,
                 name: str) -> TextScan:
        """Delimited text files sharing one header (or none) and one compression, read as
        ``columns`` after ``skip`` lines (see ``skips_lines``)."""

    @abstractmethod
    def read_lines(self, paths: list[Path], *, encoding: str, skip_first: str | None,
                   name: str) -> ir.Table:
        """Text files as one ``line`` column (and ``_file``). ``skip_first``: the files'
        header line, if they have one, which is left out. A byte-order mark is not part of
        the first line."""

    @abstractmethod
    def read_parquet(self, paths: list[Path], *, name: str) -> ir.Table:
        """Parquet files, their columns aligned by name."""

    def read_whitespace(self, paths: list[Path], *, columns: list[str], encoding: str,
                        header_line: str | None, name: str) -> ir.Table:
        """Text files whose fields are separated by runs of blanks, as ``columns`` plus
        ``_valid`` (false on a line with another number of fields)."""
        self.drop_temp(name)
        lines = self.read_lines(paths, encoding=encoding, skip_first=header_line, name=name)
        lines = lines.filter(lines.line.notnull() & (lines.line.strip() != ""))
        lines = lines.mutate(_fields=lines.line.strip().re_split(r"\s+")).view()
        lines = lines.mutate(_valid=lines._fields.length() == len(columns)).view()
        cols = {c: ibis.cases((lines._valid, lines._fields[i]), else_=ibis.null("string"))
                for i, c in enumerate(columns)}
        return lines.select(FILE_COLUMN, VALID_COLUMN, **cols)

    def read_jsonl(self, paths: list[Path], keys: Mapping[str, str], *, name: str) -> ir.Table:
        """JSON Lines files: for each key of ``keys``, the column it names holds the key's
        value as text; ``_valid`` is false on a line that is not a JSON object or is longer
        than a record may be, and ``_line`` holds the line."""
        self.drop_temp(name)
        lines = self.read_lines(paths, encoding="utf-8", skip_first=None, name=name)
        text = lines.line
        lines = lines.filter(text.notnull() & (text.strip() != "")).select(
            FILE_COLUMN, **{LINE_COLUMN: text})
        line = lines[LINE_COLUMN]
        lines = lines.mutate(_valid=json_valid(line) & line.lstrip().startswith("{")
                             & (line.length() <= MAX_RECORD_BYTES)).view()
        line = lines[LINE_COLUMN]
        cols = {n: ibis.cases((lines._valid, json_member(line, k)), else_=ibis.null("string"))
                for k, n in keys.items()}
        return lines.mutate(**cols)

    @abstractmethod
    def spool(self, table: ir.Table, path: Path) -> ir.Table:
        """Write ``table`` once (as Parquet at ``path``, or where the backend keeps such
        data) and return it read from there."""

    # ---------------------------------------------------------------- writers
    def write_table(self, expr: ir.Table, path: Path, fmt: str) -> int:
        """Write ``expr`` to ``path`` as ``csv`` or ``parquet``; return the row count."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt not in ("csv", "parquet"):
            raise InputError(f"unknown format '{fmt}'; use csv or parquet", code="E_FORMAT")
        self._write_file(expr, path, fmt)
        return int(self.scalar(expr.count()))

    @abstractmethod
    def _write_file(self, expr: ir.Table, path: Path, fmt: str) -> None:
        """Write ``expr`` as one file at ``path`` (``fmt``: csv or parquet)."""
