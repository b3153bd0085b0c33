"""A workspace: a directory holding tribes.toml, the secret key, the database and reports.

:class:`Workspace` is a plain value (path, configuration, secret). Opening its database
is :func:`tribes.store.db.open_engine`; creating one is :func:`tribes.store.db.init_workspace`.
:class:`RunContext` is what every stage runs with: the workspace, its open engine and the
run's settings (:func:`tribes.store.db.open_run` opens one).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from tribes.config import CONFIG_FILE, DEFAULT_TOML, Config, load_config
from tribes.engine import DB_FILE, DB_KEY_ENV, DB_KEY_FILE, Engine
from tribes.errors import WorkspaceError
from tribes.settings import RunSettings

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


@dataclass(frozen=True)
class RunContext:
    """What a stage runs with, built once at the edge and passed down.

    The CLI, the Python API, the service and the scheduler resolve the run's
    :class:`~tribes.settings.RunSettings` from ``tribes.toml`` and the command's options
    (the only places that may: ``tests/test_layers.py``), open the engine, and hand the
    three to every stage, ingest and the quality checks included.
    """

    ws: Workspace
    engine: Engine
    settings: RunSettings

    @property
    def config(self) -> Config:
        return self.ws.config


def create_files(path: Path, *, force: bool = False, encrypt: bool = False) -> Workspace:
    """Lay out a workspace directory: ``tribes.toml`` with commented defaults and a 0600
    secret key (its database and audit log come with :func:`tribes.store.db.init_workspace`).

    An existing workspace is left as it is (its key is never replaced) unless ``force``
    rewrites the configuration file. ``encrypt`` creates the database encrypted at rest:
    its key is ``TRIBES_DB_KEY`` when set (then nothing is written; set it for every
    command), else a new random key in ``db.key`` (mode 0600).
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
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
        gitignore.write_text(f"{SECRET_FILE}\n{DB_KEY_FILE}\nkeys.json\n*.duckdb*\n.tmp/\n"
                             "tribes.lock\n", encoding="utf-8")
    make_private(path)
    return open_workspace(path)


def make_private(path: Path) -> None:
    """Keep the workspace its owner's alone: the folder 0700 and every file directly in
    it 0600 (the database, the audit log, the configuration...). Folders inside are
    closed by this one; files tribes writes in them are created 0600 too."""
    with contextlib.suppress(OSError):
        if path.stat().st_mode & 0o077:
            path.chmod(0o700)
        for entry in os.scandir(path):
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mode & 0o077:
                os.chmod(entry.path, 0o600)


def private_dir(path: Path) -> Path:
    """``path`` created (with its parents) as a folder only its owner may enter."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


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
