"""Deterministic streaming writers (gzip CSV, gzip JSON lines, Parquet, CSV).

gzip members are written with ``mtime=0`` and no file name so that identical
content gives identical bytes.  CSV text is produced by Arrow without quoting
(the generator never emits delimiters, quotes or newlines inside values); the
header line is written by hand so it is not quoted either.
"""

from __future__ import annotations

import gzip
import logging
from pathlib import Path
from typing import IO, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

__all__ = ["CsvSink", "JsonlGzSink", "ParquetSink", "RollingSink", "TableSink"]

log = logging.getLogger(__name__)

_CSV_OPTIONS = pcsv.WriteOptions(include_header=False, quoting_style="none", batch_size=65536)


class TableSink(Protocol):
    """Something that accepts chunks of rows and can be closed."""

    def write(self, data: pa.Table | pa.Array) -> None:
        """Append rows."""

    def close(self) -> None:
        """Flush and close."""


class CsvSink:
    """CSV file (optionally gzip-compressed) written chunk by chunk.

    Parameters
    ----------
    path : Path
        Target file; ``.gz`` suffix selects gzip.
    schema : pyarrow.Schema
        Column names and types of every chunk.
    compresslevel : int
        gzip level when compressing.
    """

    def __init__(self, path: Path, schema: pa.Schema, compresslevel: int = 1) -> None:
        self.path = path
        self._raw: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._gz: gzip.GzipFile | None = None
        stream: IO[bytes] = self._raw
        if path.suffix == ".gz":
            self._gz = gzip.GzipFile(
                filename="", mode="wb", fileobj=self._raw, compresslevel=compresslevel, mtime=0
            )
            stream = self._gz  # type: ignore[assignment]
        stream.write((",".join(schema.names) + "\n").encode("utf-8"))
        self._stream = stream
        self._schema = schema

    def write(self, data: pa.Table | pa.Array) -> None:
        """Append a table chunk."""
        assert isinstance(data, pa.Table)
        # One-shot write: a long-lived CSVWriter keeps its last batch alive.
        pcsv.write_csv(data.cast(self._schema), self._stream, write_options=_CSV_OPTIONS)

    def close(self) -> None:
        """Flush and close the file."""
        if self._gz is not None:
            self._gz.close()
        self._raw.close()


class JsonlGzSink:
    """gzip file of pre-rendered, newline-terminated JSON lines.

    Parameters
    ----------
    path : Path
        Target ``.jsonl.gz`` file.
    compresslevel : int
        gzip level.
    """

    def __init__(self, path: Path, compresslevel: int = 1) -> None:
        self.path = path
        self._raw: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._gz = gzip.GzipFile(
            filename="", mode="wb", fileobj=self._raw, compresslevel=compresslevel, mtime=0
        )

    def write(self, data: pa.Table | pa.Array) -> None:
        """Append lines given as a string array (each ending in ``\\n``)."""
        assert isinstance(data, pa.Array)
        if len(data) == 0:
            return
        if data.type not in (pa.string(), pa.large_string()):
            raise TypeError(f"expected a string array, got {data.type}")
        if data.null_count:
            raise ValueError("JSON lines must not be null")
        offsets, values = data.buffers()[1], data.buffers()[2]
        assert offsets is not None and values is not None
        dtype = np.int32 if data.type == pa.string() else np.int64
        off = np.frombuffer(offsets, dtype=dtype)[data.offset : data.offset + len(data) + 1]
        self._gz.write(memoryview(values)[int(off[0]) : int(off[-1])])

    def close(self) -> None:
        """Flush and close the file."""
        self._gz.close()
        self._raw.close()


class ParquetSink:
    """Parquet file with one row group per written chunk.

    Parameters
    ----------
    path : Path
        Target file.
    schema : pyarrow.Schema
        Schema of every chunk.
    """

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self._schema = schema
        self._writer = pq.ParquetWriter(path, schema, compression="zstd")

    def write(self, data: pa.Table | pa.Array) -> None:
        """Append a table chunk as one row group."""
        assert isinstance(data, pa.Table)
        self._writer.write_table(data.cast(self._schema), row_group_size=max(len(data), 1))

    def close(self) -> None:
        """Finish the file."""
        self._writer.close()


class RollingSink:
    """Numbered files (``stem-000.ext`` …) that roll over between chunks.

    A new file is started before a chunk if the current file already holds
    data and either adding the chunk would exceed ``rows_per_file`` rows or the
    file already holds ``chunks_per_file`` chunks.

    Parameters
    ----------
    directory : Path
        Folder of the files.
    stem : str
        File name prefix.
    suffix : str
        File name suffix including the dot(s), e.g. ``.csv.gz``.
    opener : callable
        ``opener(path)`` returns a fresh sink.
    rows_per_file : int
        Soft row cap per file.
    chunks_per_file : int
        Hard chunk cap per file.
    """

    def __init__(
        self,
        directory: Path,
        stem: str,
        suffix: str,
        opener: _Opener,
        rows_per_file: int,
        chunks_per_file: int,
    ) -> None:
        self.directory = directory
        self.stem = stem
        self.suffix = suffix
        self._opener = opener
        self._rows_per_file = rows_per_file
        self._chunks_per_file = max(chunks_per_file, 1)
        self._sink: TableSink | None = None
        self._rows = 0
        self._chunks = 0
        self.files: list[Path] = []

    def _roll(self) -> None:
        if self._sink is not None:
            self._sink.close()
        path = self.directory / f"{self.stem}-{len(self.files):03d}{self.suffix}"
        log.debug("opening %s", path)
        self._sink = self._opener(path)
        self.files.append(path)
        self._rows = 0
        self._chunks = 0

    def write(self, data: pa.Table | pa.Array, rows: int) -> None:
        """Append one chunk of ``rows`` rows, rolling over first if needed."""
        full = self._rows + rows > self._rows_per_file or self._chunks >= self._chunks_per_file
        if self._sink is None or (self._chunks > 0 and full):
            self._roll()
        assert self._sink is not None
        self._sink.write(data)
        self._rows += rows
        self._chunks += 1

    def close(self) -> None:
        """Close the current file (creating an empty one if nothing was written)."""
        if self._sink is None:
            self._roll()
        assert self._sink is not None
        self._sink.close()
        self._sink = None


class _Opener(Protocol):
    def __call__(self, path: Path) -> TableSink: ...
