"""A workspace: a directory holding tribes.toml, the secret key, the database and reports."""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tribes.config import CONFIG_FILE, DEFAULT_TOML, Config, load_config
from tribes.engine import Engine, connect
from tribes.engine.backend import DB_FILE, DB_KEY_ENV, DB_KEY_FILE
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
        return self.path / DB_FILE

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
        """Open the workspace database for the duration of the block.

        Inside :meth:`shared_engine` (``tribes serve``) every caller in the process gets
        the one open engine instead, one block at a time.
        """
        from tribes.store.tables import ensure_tables

        shared = _shared.get(self.path.resolve())
        if shared is not None:
            eng, lock = shared
            with lock:
                yield eng
            return
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


@contextlib.contextmanager
def shared_engine(ws: Workspace) -> Iterator[Engine]:
    """Keep one engine open for the whole process (a long-running service) and hand it to
    every ``ws.engine()`` block, serialized by a lock."""
    from tribes.store.tables import ensure_tables

    eng = connect(ws.path, ws.config.engine)
    eng.auditor = ws.audit
    ensure_tables(eng)
    key = ws.path.resolve()
    _shared[key] = (eng, threading.RLock())
    try:
        yield eng
    finally:
        _shared.pop(key, None)
        eng.close()


_shared: dict[Path, tuple[Engine, threading.RLock]] = {}


def shared_engine_of(ws: Workspace) -> bool:
    """Whether this process holds the workspace's database open (``tribes serve``)."""
    return ws.path.resolve() in _shared


def init_workspace(path: Path, *, force: bool = False, encrypt: bool = False) -> Workspace:
    """Create a workspace: ``tribes.toml`` with commented defaults and a 0600 secret key.

    An existing workspace is left as it is (its key is never replaced) unless ``force``
    rewrites the configuration file. ``encrypt`` creates the database encrypted at rest:
    its key is ``TRIBES_DB_KEY`` when set (then nothing is written; set it for every
    command), else a new random key in ``db.key`` (mode 0600).
    """
    path.mkdir(parents=True, exist_ok=True)
    cfg_file = path / CONFIG_FILE
    if encrypt and (path / DB_FILE).exists() and not _is_encrypted(cfg_file):
        raise WorkspaceError(
            f"'{path}' already has an unencrypted database; encryption is chosen when the "
            "workspace is created: init a new workspace with --encrypt and ingest again",
            code="E_ENCRYPT")
    if force or not cfg_file.exists():
        text = DEFAULT_TOML
        if encrypt or _is_encrypted(cfg_file):
            text = text.replace("encrypted = false", "encrypted = true ", 1)
        cfg_file.write_text(text, encoding="utf-8")
    if encrypt and not os.environ.get(DB_KEY_ENV) and not (path / DB_KEY_FILE).exists():
        fd = os.open(path / DB_KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secrets.token_hex(32) + "\n")
    key_file = path / SECRET_FILE
    if not key_file.exists():
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secrets.token_hex(32) + "\n")
    os.chmod(key_file, 0o600)
    gitignore = path / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text(f"{SECRET_FILE}\n{DB_KEY_FILE}\nkeys.json\n*.duckdb*\n.tmp/\n",
                             encoding="utf-8")
    ws = open_workspace(path)
    with ws.engine():
        pass
    ws.audit("init", target=str(path.name))
    return ws


def _is_encrypted(cfg_file: Path) -> bool:
    return cfg_file.exists() and load_config(cfg_file).engine.encrypted


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
