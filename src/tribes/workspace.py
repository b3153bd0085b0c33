"""A workspace: a directory holding tribes.toml, the secret key, the database and reports."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tribes.config import CONFIG_FILE, DEFAULT_TOML, Config, load_config
from tribes.engine import Engine, connect
from tribes.errors import WorkspaceError

DEFAULT_WORKSPACE = "tribes-workspace"
SECRET_FILE = "secret.key"
SECRET_ENV = "TRIBES_SECRET"


@dataclass(frozen=True)
class Workspace:
    """An initialized workspace directory and its validated configuration."""

    path: Path
    config: Config = field(default_factory=Config)

    @property
    def db_path(self) -> Path:
        return self.path / "tribes.duckdb"

    def secret(self) -> bytes:
        """The pseudonymization key: ``TRIBES_SECRET`` if set, else the workspace key file."""
        env = os.environ.get(SECRET_ENV)
        if env:
            return env.encode("utf-8")
        key_file = self.path / SECRET_FILE
        if not key_file.exists():
            raise WorkspaceError(
                f"secret key {SECRET_FILE} is missing from the workspace; restore it or set "
                f"{SECRET_ENV} (a new key would make every stored pseudonym unmatchable)",
                code="E_SECRET",
            )
        return key_file.read_text(encoding="utf-8").strip().encode("utf-8")

    def audit(self, action: str, **what: Any) -> dict[str, Any]:
        """Append a record to the workspace's audit log (see :mod:`tribes.privacy.audit`)."""
        from tribes.privacy.audit import record

        return record(self.path, self.secret(), action, **what)

    @contextlib.contextmanager
    def engine(self, *, read_only: bool = False) -> Iterator[Engine]:
        """Open the workspace database for the duration of the block."""
        from tribes.store.tables import ensure_tables

        eng = connect(self.path, self.config.engine, read_only=read_only)
        eng.auditor = self.audit
        try:
            if not read_only:
                from tribes.ingest.loader import clear_spool

                # holding the write lock, so no other batch is running: left-overs of a
                # crashed one (raw values) go
                clear_spool(self.path)
                ensure_tables(eng)
            yield eng
        finally:
            eng.close()


def init_workspace(path: Path, *, force: bool = False) -> Workspace:
    """Create a workspace: ``tribes.toml`` with commented defaults and a 0600 secret key.

    An existing workspace is left as it is (its key is never replaced) unless ``force``
    rewrites the configuration file.
    """
    path.mkdir(parents=True, exist_ok=True)
    cfg_file = path / CONFIG_FILE
    if force or not cfg_file.exists():
        cfg_file.write_text(DEFAULT_TOML, encoding="utf-8")
    key_file = path / SECRET_FILE
    if not key_file.exists():
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secrets.token_hex(32) + "\n")
    os.chmod(key_file, 0o600)
    gitignore = path / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text(f"{SECRET_FILE}\n*.duckdb*\n.tmp/\n", encoding="utf-8")
    ws = open_workspace(path)
    with ws.engine():
        pass
    ws.audit("init", target=str(path.name))
    return ws


def open_workspace(path: Path | None = None, *, backend: str | None = None) -> Workspace:
    """Open an initialized workspace (``path``, else ``TRIBES_WORKSPACE``, else the default)."""
    if path is None:
        path = Path(os.environ.get("TRIBES_WORKSPACE") or DEFAULT_WORKSPACE)
    if not (path / CONFIG_FILE).exists():
        raise WorkspaceError(
            f"no workspace at '{path}' (no {CONFIG_FILE}); create one with: tribes init {path}",
            code="E_NO_WORKSPACE",
        )
    config = load_config(path / CONFIG_FILE)
    if backend is not None and backend != config.engine.backend:
        engine = config.engine.model_copy(update={"backend": backend})
        config = config.model_copy(update={"engine": engine})
    return Workspace(path=path, config=config)
