import subprocess
import sys

import pytest

from tribes.config import EngineConfig
from tribes.engine import BACKENDS, Engine, connect
from tribes.errors import EngineError


def test_importing_tribes_imports_no_backend_and_duckdb_not_spark() -> None:
    """The registry imports a backend when an engine of it is first opened: PySpark (an
    optional extra) never loads for a DuckDB workspace."""
    code = ("import sys, tribes, tribes.engine, tribes.ingest, tribes.store.db\n"
            "loaded = lambda: sorted(m for m in ('pyspark', 'tribes.engine.duckdb.backend',"
            " 'tribes.engine.pyspark.backend') if m in sys.modules)\n"
            "print(loaded())\n"
            "tribes.engine.connect(None).close()\n"
            "print(loaded())\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True)
    assert r.stdout.split("\n")[:2] == ["[]", "['tribes.engine.duckdb.backend']"]


def test_connect_opens_the_configured_backend() -> None:
    engine = connect(None, EngineConfig())
    assert isinstance(engine, Engine) and engine.name == "duckdb"
    assert set(BACKENDS) == {"duckdb", "pyspark"}
    engine.close()


def test_an_unknown_backend_is_refused() -> None:
    cfg = EngineConfig().model_copy(update={"backend": "oracle"})
    with pytest.raises(EngineError, match="unknown backend 'oracle'"):
        connect(None, cfg)
