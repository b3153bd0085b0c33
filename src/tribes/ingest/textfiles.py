"""Input text files as the engines read them: what each file starts with, copies of
those an engine cannot read as they are (line endings that change part-way, Windows-1252
characters DuckDB's Latin-1 refuses, a ``sep=`` line Spark cannot skip), and the lines of
records an engine rejected.

Internal to ``ingest.reader``; copies are named ``spool-*`` in the caller's scratch
directory, so ``engine.staging.clear_staging`` removes any a crashed batch left behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir

from tribes.engine import FILE_COLUMN, WHITESPACE, Dialect
from tribes.errors import InputError
from tribes.ingest.sniff import (
    NEWLINE_NAMES,
    SNIFF_BYTES,
    chunks,
    decode,
    first_record,
    line_endings,
    read_head,
    split_sep_line,
    write_copy,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextFile:
    """One input file, as far as reading it goes."""

    source: Path  # as given
    path: Path  # what the engine reads: the source, or a copy with even line endings
    first: tuple[str, ...]  # the first record (column names when there is a header)
    line: str  # the first non-blank line as written (whitespace files' header)
    ascii: bool  # the sampled head is plain ASCII: no evidence for any encoding
    newline: str = "\n"  # how the lines of ``path`` end
    skip: int = 0  # lines before the first record (a spreadsheet's ``sep=;`` line)

    @property
    def copied(self) -> bool:
        return self.path != self.source


def label(paths: list[Path]) -> str:
    more = f" (and {len(paths) - 1} more files)" if len(paths) > 1 else ""
    return f"{paths[0].name}{more}"


def scratch_dir(scratch: Path | None) -> Path:
    return scratch if scratch is not None else Path(tempfile.gettempdir())


# where copies may not go: an encrypted workspace on a machine without a memory file system
NO_DISK = Path("/nonexistent/tribes-no-plaintext-on-disk")
MEMORY_FS = Path("/dev/shm")


@contextlib.contextmanager
def memory_scratch() -> Iterator[Path]:
    """A private folder in memory (tmpfs) for the copies an input may need, removed at the
    end of the block: an encrypted workspace keeps no plaintext of its inputs on disk.
    Without a memory file system it is :data:`NO_DISK`, where a copy is refused."""
    if not (MEMORY_FS.is_dir() and os.access(MEMORY_FS, os.W_OK | os.X_OK)):
        yield NO_DISK
        return
    folder = Path(tempfile.mkdtemp(prefix="tribes-", dir=MEMORY_FS))  # mode 0700
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def even_copy(path: Path, scratch: Path, *, windows_1252: bool = False,
              skip_first: bool = False) -> Path:
    """A copy of ``path`` (decompressed) whose lines all end in LF; in UTF-8 when
    ``windows_1252`` (the source's encoding); without its first line when ``skip_first``."""
    if scratch == NO_DISK:
        raise InputError(
            f"{path.name} must be copied to be read (mixed line endings, Windows-1252 text "
            "or a sep= line), and this encrypted workspace keeps no plaintext on disk while "
            "this machine has no memory file system (/dev/shm): save the file as UTF-8 with "
            "one kind of line ending and no sep= line, or convert it to Parquet",
            code="E_READ")
    scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
    dest = scratch / f"spool-{secrets.token_hex(6)}.txt"
    try:
        write_copy(path, dest, windows_1252=windows_1252, skip_first=skip_first)
    except OSError as exc:
        dest.unlink(missing_ok=True)
        raise InputError(f"cannot copy {path.name} to read it: {exc}", code="E_READ") from None
    return dest


def mixed_note(path: Path, endings: set[str]) -> str:
    kinds = " and ".join(NEWLINE_NAMES[e] for e in ("\n", "\r\n", "\r") if e in endings)
    return f"{path.name}: lines end in both {kinds}; read as if all ended in LF"


def prepare(paths: list[Path], dialect: Dialect, scratch: Path | None, *,
             first_head: bytes | None = None) -> tuple[list[TextFile], list[str]]:
    """Each file's first record, and a copy of those whose line endings are mixed within
    the sampled head (the engines read one kind of line ending per file)."""
    quoted = dialect.delimiter != WHITESPACE
    files: list[TextFile] = []
    notes: list[str] = []
    for i, p in enumerate(paths):
        head = first_head if i == 0 and first_head is not None else read_head(p)
        path, newline = p, "\n"
        if dialect.encoding != "utf-16":  # line endings are counted in single bytes
            endings = line_endings([head], quoted=quoted, whole=len(head) < SNIFF_BYTES)
            if len(endings) > 1:
                path = even_copy(p, scratch_dir(scratch))
                notes.append(mixed_note(p, endings))
            elif endings:
                newline = endings.pop()
        text = decode(head, dialect.encoding)
        skip = 0
        if quoted:
            hint, text = split_sep_line(text)
            skip = int(hint is not None)
        line = next((ln for ln in text.splitlines() if ln.strip()), "")
        files.append(TextFile(p, path, tuple(first_record(head, dialect)), line,
                               head.isascii(), newline, skip))
    return files, notes


def even_line_endings(files: list[TextFile], dialect: Dialect,
                       scratch: Path | None) -> tuple[list[str], list[TextFile]] | None:
    """The files again, with a copy of each whose line endings are mixed further on than
    the sampled head; None when there is none."""
    if dialect.encoding == "utf-16":
        return None
    notes: list[str] = []
    out: list[TextFile] = []
    for f in files:
        endings = set() if f.copied else line_endings(
            chunks(f.source), quoted=dialect.delimiter != WHITESPACE)
        if len(endings) > 1:
            notes.append(mixed_note(f.source, endings))
            log.info("%s", notes[-1])
            f = replace(f, path=even_copy(f.source, scratch_dir(scratch)), newline="\n")
        out.append(f)
    return (notes, out) if notes else None


def is_encoding_error(problem: str) -> bool:
    text = problem.lower()
    return "unicode" in text or "encod" in text


def sources(files: list[TextFile]) -> dict[str, str]:
    """Path read by the engine -> path as given, for files read through a copy."""
    return {str(f.path): str(f.source) for f in files if f.copied}


def with_sources(table: ir.Table, files: list[TextFile]) -> ir.Table:
    """``_file`` names the given file, not the copy the engine read."""
    renamed = sources(files)
    if not renamed:
        return table
    col = table[FILE_COLUMN]
    cases = [(col == copy, ibis.literal(src)) for copy, src in renamed.items()]
    return table.mutate(**{FILE_COLUMN: ibis.cases(*cases, else_=col)})


def physical_lines(path: Path, newline: str, rows: list[dict[str, Any]]) -> None:
    """Set each rejected record's ``line`` to the line of the file it starts on.

    An engine may number records (DuckDB does), which run ahead of lines after quoted
    fields that span several lines; the line is counted from the record's byte offset
    (``pos``) instead.
    """
    term = b"\r" if newline == "\r" else b"\n"
    targets = sorted({int(r["pos"]) for r in rows if r.get("pos") is not None})
    if not targets:
        return
    lines: dict[int, int] = {}
    seen = count = i = 0
    try:
        for block in chunks(path):
            start = 0
            while i < len(targets) and targets[i] - seen <= len(block):
                end = max(targets[i] - seen, start)
                count += block.count(term, start, end)
                start = end
                lines[targets[i]] = count + 1
                i += 1
            if i == len(targets):
                break
            count += block.count(term, start)
            seen += len(block)
    except InputError:
        return  # the records keep their numbers
    for r in rows:
        pos = r.get("pos")
        if pos is not None and int(pos) in lines:
            r["line"] = max(int(r["line"]), lines[int(pos)])
