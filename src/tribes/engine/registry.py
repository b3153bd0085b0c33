"""Which module implements each backend, imported when an engine of it is first opened.

Importing tribes imports no backend: PySpark (an optional extra, slow to import) only
loads when a workspace asks for it.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from tribes.config import EngineConfig
from tribes.engine.base import Engine
from tribes.errors import EngineError

# backend name (``engine.backend`` in tribes.toml) -> the module with its ``connect``
BACKENDS = {
    "duckdb": "tribes.engine.duckdb.backend",
    "pyspark": "tribes.engine.pyspark.backend",
}


def connect(path: Path | None, cfg: EngineConfig | None = None, *, read_only: bool = False) -> (
    Engine
):
    """Open the workspace database.

    Parameters
    ----------
    path
        Workspace directory; ``None`` opens a scratch database (in memory on DuckDB).
    cfg
        Engine settings (backend, memory limit, threads).
    read_only
        Open the DuckDB file read-only (several readers may share it).
    """
    cfg = cfg or EngineConfig()
    module = BACKENDS.get(cfg.backend)
    if module is None:
        raise EngineError(f"unknown backend '{cfg.backend}'; use one of "
                          f"{', '.join(BACKENDS)}", code="E_CONFIG")
    engine: Engine = importlib.import_module(module).connect(path, cfg, read_only=read_only)
    return engine
