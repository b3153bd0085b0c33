"""The process's Spark session: started once per master URL, with the settings tribes
relies on (UTC, Arrow, Parquet timestamps) and the user's ``[engine.spark]``."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from tribes.config import EngineConfig
from tribes.errors import DependencyError, EngineError

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
