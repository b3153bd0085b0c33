"""The engine layer: the only place that knows which query backend runs the Ibis expressions.

Nothing outside ``tribes.engine`` imports ``duckdb`` or ``pyspark``. The layout follows
Ibis': an abstract :class:`Engine` (``base``), one package per backend (``duckdb``,
``pyspark``) owning its readers, its quirks and its SQL, and a registry that imports a
backend when :func:`connect` first opens one. Importing this package loads neither
backend's engine, nor DuckDB or PySpark themselves.
"""

from tribes.engine.base import Engine, TextScan
from tribes.engine.duckdb import DB_FILE, DB_KEY_ENV, DB_KEY_FILE, database_key
from tribes.engine.formats import (
    FILE_COLUMN,
    LINE_COLUMN,
    MAX_LINE_BYTES,
    MAX_RECORD_BYTES,
    READER_COLUMNS,
    VALID_COLUMN,
    WHITESPACE,
    Dialect,
    compression,
)
from tribes.engine.functions import (
    bucket,
    hmac_sha256_hex,
    hmac_sha256_py,
    json_member,
    json_valid,
    let,
    local_to_utc,
    md5_hex,
    micros_between,
    strip_nul,
    struct_to_json,
    trim_spaces,
    try_strptime,
)
from tribes.engine.registry import BACKENDS, connect
from tribes.engine.staging import (
    STAGED_DIR,
    clear_spool,
    clear_staging,
    spool_dir,
    staged_text,
    staging_dirs,
)

__all__ = [
    "BACKENDS",
    "DB_FILE",
    "DB_KEY_ENV",
    "DB_KEY_FILE",
    "FILE_COLUMN",
    "LINE_COLUMN",
    "MAX_LINE_BYTES",
    "MAX_RECORD_BYTES",
    "READER_COLUMNS",
    "STAGED_DIR",
    "VALID_COLUMN",
    "WHITESPACE",
    "Dialect",
    "Engine",
    "TextScan",
    "bucket",
    "clear_spool",
    "clear_staging",
    "compression",
    "connect",
    "database_key",
    "hmac_sha256_hex",
    "hmac_sha256_py",
    "json_member",
    "json_valid",
    "let",
    "local_to_utc",
    "md5_hex",
    "micros_between",
    "spool_dir",
    "staged_text",
    "staging_dirs",
    "strip_nul",
    "struct_to_json",
    "trim_spaces",
    "try_strptime",
]
