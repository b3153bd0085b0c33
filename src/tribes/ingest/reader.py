"""Reading a source into an Ibis table, whatever its files turn out to hold.

How a text file is written (encoding, delimiter, header line, decimal mark) is sniffed
(:mod:`tribes.ingest.sniff`) unless given, and the engine's readers are given that dialect
(``Engine.read_csv`` and the rest). Readers never fail on a bad row: CSV rows that do not
fit the layout and JSON lines that do not parse are reported back as *malformed* so
ingest can quarantine them. When parsing shows the sample was misleading (line endings
that change part-way, a Latin-1 file that starts in plain ASCII), :func:`spool` reads the
source again the right way, through a copy (:mod:`tribes.ingest.textfiles`) that lives in
the caller's scratch directory until the source has been spooled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir

from tribes.engine import (
    FILE_COLUMN,
    LINE_COLUMN,
    MAX_RECORD_BYTES,
    READER_COLUMNS,
    VALID_COLUMN,
    WHITESPACE,
    Dialect,
    Engine,
    TextScan,
    compression,
)
from tribes.errors import InputError, TribesError, printable
from tribes.ingest.sniff import SNIFF_BYTES, column_names, jsonl_keys, read_head, sniff_dialect
from tribes.ingest.textfiles import (
    TextFile,
    even_copy,
    even_line_endings,
    is_encoding_error,
    label,
    physical_lines,
    prepare,
    scratch_dir,
    sources,
    with_sources,
)

log = logging.getLogger(__name__)

__all__ = ["ReadResult", "read_csv", "read_jsonl", "read_parquet", "read_whitespace", "spool"]


@dataclass
class ReadResult:
    """A source read as a table, plus what the reader could not parse.

    ``malformed()`` must be called after the table has been scanned; it returns one dict
    per rejected record with ``file``, ``line`` and ``error``.
    """

    table: ir.Table
    columns: list[str]
    malformed: Callable[[], list[dict[str, Any]]] = field(default=lambda: [])
    dialect: Dialect | None = None  # how a delimited text source was read
    # boolean column that is false on records the reader could not parse (JSON Lines)
    valid_column: str | None = None
    invalid_message: str = "the line is not a JSON object"  # what such a record is
    # what the reader did that the user should know (a copy with even line endings...)
    notes: list[str] = field(default_factory=list)
    # copies of input files the table reads; deleted once the source is spooled
    copies: list[Path] = field(default_factory=list)
    # called by spool() with the engine's error when parsing failed, or with None once it
    # succeeded: returns the source read another way (line endings evened out, Latin-1),
    # or None to keep this read. The reader also settles here what it needs from the
    # files (the lines of rejected records), as its copies are deleted right after.
    after_parse: Callable[[str | None], ReadResult | None] | None = None
    label: str = ""  # the input, as error messages name it


def read_csv(
    engine: Engine,
    paths: list[Path],
    *,
    delimiter: str | None = None,
    encoding: str | None = None,
    header: bool | None = None,
    decimal: str | None = None,
    scratch: Path | None = None,
    name: str = "src",
) -> ReadResult:
    """Read delimited text files (plain, gzip or zstd) with every column as text.

    Files sharing a header line are read together; groups with different headers are
    aligned by column name (a column missing from a file is null there).

    Parameters
    ----------
    delimiter, encoding, header, decimal
        Sniffed from the first file when not given (see
        :func:`tribes.ingest.sniff.sniff_dialect`). ``"whitespace"``: fields separated by
        runs of blanks, as in fixed-width text exports. ``header``: whether the first line
        holds column names (else ``column0``, ``column1``...). ``decimal`` is not applied
        here: it is reported in the result's dialect for the parsers of numbers.
    scratch
        Directory for copies of files whose line endings are mixed (default: the system's
        temporary directory); :func:`spool` deletes them.
    """
    engine.check_files(paths)
    head = read_head(paths[0])
    dialect = sniff_dialect(head, delimiter=delimiter, encoding=encoding, header=header,
                            decimal=decimal)
    files, notes = prepare(paths, dialect, scratch, first_head=head)
    for note in notes:
        log.info("%s", note)
    return _read_text(engine, files, dialect, notes, scratch, name)


def read_whitespace(engine: Engine, paths: list[Path], *, encoding: str | None = None,
                    header: bool | None = None, scratch: Path | None = None,
                    name: str = "src") -> ReadResult:
    """Read text files whose fields are separated by runs of spaces or tabs.

    Leading and trailing blanks are ignored. The number of fields comes from the first
    line (the header, or the first record); a line with another number of fields is
    reported as malformed. Without a header the columns are ``column0``, ``column1``...
    """
    return read_csv(engine, paths, delimiter=WHITESPACE, encoding=encoding, header=header,
                    scratch=scratch, name=name)


def _read_text(engine: Engine, files: list[TextFile], dialect: Dialect, notes: list[str],
               scratch: Path | None, name: str, shown: Dialect | None = None) -> ReadResult:
    """The files read with ``dialect``; ``shown`` is the dialect to report when the files
    are copies in another encoding."""
    if dialect.delimiter == WHITESPACE:
        read, bad_encoding = _read_whitespace(engine, files, dialect, name), None
    else:
        read, bad_encoding = _read_delimited(engine, files, dialect, name, scratch)

    def after_parse(problem: str | None) -> ReadResult | None:
        guessed_utf8 = ("encoding" in dialect.sniffed and dialect.encoding == "utf-8"
                        and all(f.ascii for f in files))
        if problem is not None:
            again = even_line_endings(files, dialect, scratch)
            if again is not None:
                more, files2 = again
                return _read_text(engine, files2, dialect, [*notes, *more], scratch, name)
            if guessed_utf8 and is_encoding_error(problem):
                return _as_latin1(engine, files, dialect, notes, scratch, name,
                                  label([f.source for f in files]))
            if dialect.encoding == "latin-1" and engine.refuses_windows_1252(problem):
                return _as_windows_1252(engine, files, dialect, notes, scratch, name)
            return None
        if guessed_utf8 and bad_encoding is not None:
            where = bad_encoding()
            if where is not None:
                return _as_latin1(engine, files, dialect, notes, scratch, name, where)
        read.malformed()  # line numbers are counted in the files, before copies go
        return None

    read.dialect = shown or dialect
    read.notes = list(notes)
    read.copies = [f.path for f in files if f.copied]
    read.after_parse = after_parse
    read.label = label([f.source for f in files])
    return read


def _as_latin1(engine: Engine, files: list[TextFile], dialect: Dialect, notes: list[str],
               scratch: Path | None, name: str, where: str) -> ReadResult:
    note = (f"{where}: not UTF-8 although the first {SNIFF_BYTES // 1024} KiB are plain "
            "ASCII; read as Latin-1 (Windows-1252). Pass --encoding utf-8 to quarantine "
            "such lines instead")
    log.info("%s", note)
    latin = replace(dialect, encoding="latin-1")
    return _read_text(engine, files, latin, [*notes, note], scratch, name)


def _as_windows_1252(engine: Engine, files: list[TextFile], dialect: Dialect,
                     notes: list[str], scratch: Path | None, name: str) -> ReadResult:
    """Latin-1 files with Windows-1252 characters (the euro sign, curly quotes), which
    DuckDB's Latin-1 refuses, read through UTF-8 copies."""
    note = (f"{label([f.source for f in files])}: has Windows-1252 characters Latin-1 lacks "
            "(such as €); read through a copy in UTF-8")
    log.info("%s", note)
    copies = [replace(f, path=even_copy(f.source, scratch_dir(scratch), windows_1252=True),
                      newline="\n") for f in files]
    utf8 = replace(dialect, encoding="utf-8",
                   sniffed=tuple(s for s in dialect.sniffed if s != "encoding"))
    return _read_text(engine, copies, utf8, [*notes, note], scratch, name, shown=dialect)


def _read_delimited(engine: Engine, files: list[TextFile], dialect: Dialect,
                    name: str, scratch: Path | None = None,
                    ) -> tuple[ReadResult, Callable[[], str | None]]:
    """Delimited files as text columns; also returns a function telling the first record
    (``file:line``) that was not in the dialect's encoding, once the table was scanned."""
    if not engine.skips_lines:
        # the backend cannot skip a file's first lines (a ``sep=;`` line): it reads a
        # copy without them
        files = [replace(f, path=even_copy(f.path, scratch_dir(scratch), skip_first=True),
                         skip=0) if f.skip else f for f in files]
    groups: dict[tuple[tuple[str, ...], str, int], list[TextFile]] = {}
    for f in files:
        key = (f.first if dialect.header else (), compression(f.path), f.skip)
        groups.setdefault(key, []).append(f)
    scans: list[TextScan] = []
    for i, group in enumerate(groups.values()):
        cols = column_names(list(group[0].first), dialect.header, reserved=READER_COLUMNS)
        _check_columns(cols, group[0].source)
        scans.append(engine.read_csv([f.path for f in group], columns=cols, dialect=dialect,
                                     skip=group[0].skip, name=f"{name}_{i}"))
    table = _union_by_name([with_sources(scan.table, files) for scan in scans])
    found = [scan.rejects for scan in scans if scan.rejects is not None]
    if len(found) < len(scans):  # the backend keeps what it cannot parse, flagged
        columns = [c for c in table.columns if c not in (FILE_COLUMN, VALID_COLUMN)]
        return (ReadResult(table, columns, valid_column=VALID_COLUMN,
                           invalid_message="the record could not be parsed"),
                lambda: None)
    columns = [c for c in table.columns if c != FILE_COLUMN]
    renamed = sources(files)
    newlines = {str(f.path): f.newline for f in files}

    def rejects(encoding: bool = False) -> list[dict[str, Any]]:
        return [r for scan_rejects in found for r in scan_rejects(encoding)]

    settled: list[list[dict[str, Any]]] = []

    def malformed() -> list[dict[str, Any]]:
        if not settled:
            rows = rejects()
            by_file: dict[str, list[dict[str, Any]]] = {}
            for r in rows:
                by_file.setdefault(r["file"], []).append(r)
            for path, file_rows in by_file.items():
                physical_lines(Path(path), newlines.get(path, "\n"), file_rows)
            for r in rows:
                r.pop("pos", None)
                r["file"] = renamed.get(r["file"], r["file"])
            settled.append(rows)
        return settled[0]

    def bad_encoding() -> str | None:
        first = rejects(encoding=True)
        if not first:
            return None
        where = Path(renamed.get(first[0]["file"], first[0]["file"])).name
        return f"{where} line {first[0]['line']}"

    return ReadResult(table, columns, malformed), bad_encoding


def _read_whitespace(engine: Engine, files: list[TextFile], dialect: Dialect,
                     name: str) -> ReadResult:
    first = list(files[0].first)
    if not first:
        raise InputError(f"{files[0].source.name} is empty", code="E_READ")
    columns = column_names(first, dialect.header, reserved=READER_COLUMNS)
    _check_columns(columns, files[0].source)
    table = engine.read_whitespace([f.path for f in files], columns=columns,
                                   encoding=dialect.encoding,
                                   header_line=files[0].line if dialect.header else None,
                                   name=name)
    return ReadResult(with_sources(table, files), columns, valid_column=VALID_COLUMN,
                      invalid_message=f"the line does not split into {len(columns)} fields "
                      "separated by blanks")


def _union_by_name(tables: list[ir.Table]) -> ir.Table:
    if len(tables) == 1:
        return tables[0]
    names: dict[str, None] = {}
    for t in tables:
        names.update(dict.fromkeys(t.columns))
    aligned = [
        t.select(**{n: (t[n] if n in t.columns else ibis.null("string")) for n in names})
        for t in tables
    ]
    return ibis.union(*aligned)


def read_parquet(engine: Engine, paths: list[Path], *, name: str = "src") -> ReadResult:
    """Read Parquet files, keeping their column types."""
    engine.drop_temp(name)
    table = engine.read_parquet(paths, name=name)
    columns = [c for c in table.columns if c != FILE_COLUMN]
    _check_columns(columns, paths[0])
    return ReadResult(table, columns)


def read_jsonl(engine: Engine, paths: list[Path], *, scratch: Path | None = None,
               name: str = "src", empty_keys: Sequence[str] = ()) -> ReadResult:
    """Read JSON Lines files (plain, gzip or zstd); each top-level key becomes a text column.

    Lines are read as text first so that a line that is not a JSON object, or longer
    than :data:`MAX_RECORD_BYTES`, is reported as malformed instead of failing the whole
    file (lines up to :data:`MAX_LINE_BYTES` are read). Objects without any key get the
    columns ``empty_keys`` (all null) when no object has a key. ``scratch``: as for
    :func:`read_csv`.
    """
    engine.check_files(paths)
    keys, found = jsonl_keys(paths)
    if found and not keys:
        keys = list(empty_keys)
    if not found:
        raise InputError(
            f"no JSON object found in the first lines of {paths[0].name}; "
            "is it JSON Lines (one object per line)?",
            code="E_READ",
        )
    files, notes = prepare(paths, _LINES, scratch)
    names = column_names(keys, True, reserved=READER_COLUMNS)
    renamed = [f"'{printable(k)}' as '{printable(n)}'" for k, n in zip(keys, names, strict=True)
               if k != n]
    if renamed:
        notes = [*notes, "JSON keys that cannot be column names as they are (empty, a NUL, "
                 "the same name as another key or a reader column but for case) are kept "
                 "under other names: " + ", ".join(renamed)]
    for note in notes:
        log.info("%s", note)
    return _read_jsonl(engine, files, dict(zip(keys, names, strict=True)), notes, scratch,
                       name)


# JSON Lines are read line by line: no quoting across lines, no header
_LINES = Dialect(WHITESPACE, "utf-8", header=False)


def _read_jsonl(engine: Engine, files: list[TextFile], keys: dict[str, str],
                notes: list[str], scratch: Path | None, name: str) -> ReadResult:
    """``keys``: each key read, and the name of its column."""
    table = with_sources(engine.read_jsonl([f.path for f in files], keys, name=name), files)

    def after_parse(problem: str | None) -> ReadResult | None:
        again = None if problem is None else even_line_endings(files, _LINES, scratch)
        if again is None:
            return None
        more, files2 = again
        return _read_jsonl(engine, files2, keys, [*notes, *more], scratch, name)

    return ReadResult(table, list(keys.values()), valid_column=VALID_COLUMN, notes=list(notes),
                      invalid_message="the line is not a JSON object, or is longer than "
                      f"{MAX_RECORD_BYTES // 2**20} MiB (a record's limit)",
                      copies=[f.path for f in files if f.copied], after_parse=after_parse,
                      label=label([f.source for f in files]))


def _check_columns(columns: list[str], path: Path) -> None:
    if not columns:
        raise InputError(f"{path.name} has no columns", code="E_READ")
    dupes = {c for c in columns if columns.count(c) > 1}
    if dupes:
        raise InputError(f"{path.name} repeats column names: {sorted(dupes)}", code="E_READ")


def spool(engine: Engine, read: ReadResult, path: Path) -> ReadResult:
    """Parse a text source once into a Parquet file and read on from that.

    Later passes then scan compact columns instead of decompressing and parsing the text
    again. Rejected records stay reported, as they were found while writing the file.

    When parsing fails, or shows the source is not what its sample suggested (line
    endings that change further on, a Latin-1 file that starts in plain ASCII), the
    reader reads it again the right way (``ReadResult.after_parse``); otherwise the error names
    the problem and the options that were used. Copies the reader made are deleted.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    copies: set[Path] = set()
    try:
        for _ in range(4):  # as sniffed; line endings evened; as Latin-1; Windows-1252
            copies.update(read.copies)
            try:
                spooled = _spool_once(engine, read, path)
            except TribesError:
                raise
            except Exception as exc:
                again = read.after_parse(str(exc)) if read.after_parse is not None else None
                if again is None:
                    raise InputError(_parse_error(read, exc), code="E_READ") from None
                read = again
                continue
            again = read.after_parse(None) if read.after_parse is not None else None
            if again is None:
                return spooled
            read = again
        raise InputError(f"cannot parse {read.label}: it was read four ways and none "
                         "worked", code="E_READ")
    finally:
        for copy in copies:
            copy.unlink(missing_ok=True)


def _spool_once(engine: Engine, read: ReadResult, path: Path) -> ReadResult:
    table = read.table
    if LINE_COLUMN in table.columns:
        table = table.drop(LINE_COLUMN)  # JSON Lines: the text, once its values are read
    return replace(read, table=engine.spool(table, path))


def _parse_error(read: ReadResult, exc: BaseException) -> str:
    """What went wrong, in the engine's words, and which option may fix it."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    # DuckDB's "Possible Solution" lines name its own options, not ours; "LINE 1:" lines
    # quote the generated SQL, which is no business of whoever sent the data
    lines = [ln for ln in lines if not ln.startswith(("Possible Solution", "LINE "))][:3]
    text = " / ".join(printable(ln)[:300] for ln in lines) or type(exc).__name__
    what = read.label or "the input"
    if is_encoding_error(text):
        hint = ("the file is not in the encoding it was read with"
                + (f" ({read.dialect.encoding})" if read.dialect else "")
                + "; if it is Latin-1 (Windows-1252) pass --encoding latin-1")
    elif read.dialect is not None:
        guessed = ", ".join(read.dialect.sniffed) or "none"
        hint = (f"it was read with {read.dialect.options()} (sniffed: {guessed}); pass the "
                "right values if these are wrong")
    else:
        hint = "is it the format its name says? (--format)"
    return f"cannot parse {what}: {text}; {hint}"
