"""The DuckDB backend (the default): the workspace database is one file, ``tribes.duckdb``.

The engine itself is in :mod:`tribes.engine.duckdb.backend`, imported when a DuckDB
engine is opened; this module holds what the workspace needs to know without opening
it: the database's file and its encryption key.
"""

from __future__ import annotations

import os
from pathlib import Path

from tribes.errors import EngineError

DB_FILE = "tribes.duckdb"
DB_KEY_ENV = "TRIBES_DB_KEY"
DB_KEY_FILE = "db.key"

__all__ = ["DB_FILE", "DB_KEY_ENV", "DB_KEY_FILE", "database_key"]


def database_key(workspace: Path) -> str:
    """The encryption key of the workspace database: ``TRIBES_DB_KEY``, else ``db.key``."""
    env = os.environ.get(DB_KEY_ENV)
    if env:
        return env.strip()
    key_file = workspace / DB_KEY_FILE
    if key_file.exists():
        return key_file.read_text(encoding="utf-8").strip()
    raise EngineError(
        f"the workspace database is encrypted and no key was found: set {DB_KEY_ENV} (from "
        f"your secret store) or restore {DB_KEY_FILE}", code="E_DB_KEY")
