"""How a text file is laid out, guessed from its first bytes: compression, encoding,
delimiter, header line, decimal mark, line endings, the first record, and the keys of
JSON Lines (plain Python, the same whatever the backend; the engine's readers are given
the result, a :class:`~tribes.engine.Dialect`).

Every guess can be overridden (``tribes ingest --encoding/--delimiter/--header/
--decimal``); what was guessed is reported back with the batch.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import io
import itertools
import json
import os
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tribes.engine import MAX_RECORD_BYTES, WHITESPACE, Dialect
from tribes.errors import InputError

SNIFF_BYTES = 256 * 1024
CHUNK_BYTES = 4 * 1024 * 1024
BOM = "\ufeff"

# what users write -> the engines' name; Latin-1 is read as its superset Windows-1252,
# which is what "Latin-1" files from Windows tools really are (see
# tribes.ingest.reader._as_windows_1252)
_ENCODINGS = {
    "utf-8": "utf-8", "utf8": "utf-8", "utf-8-sig": "utf-8",
    "utf-16": "utf-16", "utf16": "utf-16",
    "latin-1": "latin-1", "latin1": "latin-1", "iso-8859-1": "latin-1", "iso8859-1": "latin-1",
    "l1": "latin-1", "cp1252": "latin-1", "windows-1252": "latin-1",
}
_DELIMITERS = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|",
               "space": WHITESPACE, "spaces": WHITESPACE, WHITESPACE: WHITESPACE}
NEWLINE_NAMES = {"\n": "LF", "\r\n": "CRLF", "\r": "CR"}
_FALLBACK = "tribes-latin1"  # decoding error handler: undefined Windows-1252 bytes as Latin-1

_NUMBER = re.compile(r"[+-]?[$€£¥]?\d[\d\s.,']*")
_DATE = re.compile(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([T ].*)?")
_COMMA_DECIMAL = re.compile(r"[+-]?(\d{1,3}(\.\d{3})+|\d+),\d+")
_POINT_DECIMAL = re.compile(r"[+-]?(\d{1,3}(,\d{3})+|\d+)\.\d+")
# 1,234 and 1.234: thousands or decimals, depending on the writer's locale
_GROUPED = re.compile(r"[+-]?\d{1,3}([.,]\d{3})+")
_CURRENCY = re.compile(r"[\s\u00a0\u202f$€£¥]")


def open_binary(path: Path) -> Any:
    """The file's bytes, decompressed when its name ends in .gz or .zst (a binary file
    object: ``read(n)``, a context manager)."""
    name = path.name.lower()
    if name.endswith((".gz", ".gzip")):
        return gzip.open(path, "rb")
    if name.endswith((".zst", ".zstd")):
        import pyarrow as pa

        return pa.input_stream(str(path), compression="zstd")
    return open(path, "rb")


def read_head(path: Path, size: int = SNIFF_BYTES) -> bytes:
    """The first ``size`` bytes of the (decompressed) file."""
    try:
        with open_binary(path) as fh:
            return fh.read(size)
    except (OSError, EOFError, ValueError) as exc:
        raise InputError(f"cannot read {path.name}: {exc}", code="E_READ") from None


def chunks(path: Path) -> Iterator[bytes]:
    """The whole (decompressed) file in pieces of a few MB."""
    try:
        with open_binary(path) as fh:
            while block := fh.read(CHUNK_BYTES):
                yield block
    except (OSError, EOFError, ValueError) as exc:
        raise InputError(f"cannot read {path.name}: {exc}", code="E_READ") from None


def cut_short(paths: list[Path]) -> str | None:
    """Where the first compressed file that does not decompress to its end stops (a
    truncated download or copy, a corrupt block); None when every one is whole. The
    engines read such a file as if it ended there, so it must be told before anything
    of it is stored. Plain files have no end to check."""
    for path in paths:
        name = path.name.lower()
        if name.endswith((".gz", ".gzip")):
            problem = _gzip_problem(path)
        elif name.endswith((".zst", ".zstd")):
            problem = _zstd_problem(path)
        else:
            continue
        if problem is not None:
            return (f"{path.name} is cut short or corrupt: its compressed data {problem}; "
                    "nothing of it was stored. Fetch or copy the file again")
    return None


def _deflate() -> Any:
    """ISA-L's zlib work-alike where installed (it inflates about 2.4x as fast), else
    zlib."""
    try:
        from isal import isal_zlib
    except ImportError:
        return zlib
    return isal_zlib


def _gzip_problem(path: Path) -> str | None:
    deflate = _deflate()
    size = lines = 0
    inflate = deflate.decompressobj(wbits=31)
    try:
        with open(path, "rb") as fh:
            while block := fh.read(CHUNK_BYTES):
                while block:
                    out = inflate.decompress(block)
                    size, lines = size + len(out), lines + out.count(b"\n")
                    block = inflate.unused_data
                    if block:  # the next member of a concatenated file
                        inflate = deflate.decompressobj(wbits=31)
    except deflate.error as exc:
        return f"is corrupt after {size:,} bytes of text (line {lines + 1:,}): {exc}"
    if not inflate.eof:
        return f"stops after {size:,} bytes of text (line {lines + 1:,})"
    return None


def _zstd_problem(path: Path) -> str | None:
    size = lines = 0
    try:
        with open_binary(path) as fh:
            while block := fh.read(1 << 20):
                size, lines = size + len(block), lines + block.count(b"\n")
    except (OSError, EOFError, ValueError) as exc:
        return f"stops after about {size:,} bytes of text (line {lines + 1:,}): {exc}"
    return None


def normalize_encoding(name: str) -> str:
    """The engine's name of a user-given encoding; raises on one the engines cannot read."""
    found = _ENCODINGS.get(name.strip().lower().replace("_", "-"))
    if found is None:
        raise InputError(f"unknown encoding '{name}'; use utf-8, utf-16 or latin-1 "
                         "(Latin-1 files are read as Windows-1252)", code="E_ENCODING")
    return found


def normalize_delimiter(text: str) -> str:
    """A user-given delimiter: one character, or a name (tab, semicolon, whitespace...)."""
    found = _DELIMITERS.get(text.lower(), text)
    if found != WHITESPACE and len(found) != 1:
        raise InputError(f"delimiter '{text}' is not one character; use e.g. ',' ';' '|' "
                         "tab or whitespace (runs of blanks)", code="E_DELIMITER")
    return found


def sniff_encoding(head: bytes) -> str:
    """Guess a text encoding from the first bytes: BOMs, then UTF-8, else Latin-1."""
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # a multi-byte character cut at the end of the sample is still UTF-8
        if exc.start < len(head) - 4:
            return "latin-1"
    return "utf-8"


def decode(head: bytes, encoding: str) -> str:
    """The sample as text (Latin-1 as Windows-1252), without a byte-order mark."""
    if encoding == "latin-1":
        return head.decode("cp1252", errors=_fallback()).removeprefix(BOM)
    return head.decode(encoding, errors="replace").removeprefix(BOM)


_SEP_LINE = re.compile(r"sep=([^\r\n])\r?(\n|$)")


def split_sep_line(text: str) -> tuple[str | None, str]:
    """The delimiter named by a first line such as ``sep=;`` (written by spreadsheet
    programs to tell themselves how to split the file) and the text after that line;
    ``(None, text)`` without one."""
    m = _SEP_LINE.match(text)
    return (m.group(1), text[m.end():]) if m else (None, text)


def sniff_delimiter(text: str) -> str:
    """Pick the delimiter among , ; tab | that splits the sample's lines most consistently;
    ``whitespace`` when none occurs but runs of blanks split every line alike."""
    lines = [ln for ln in text.splitlines()[:200] if ln.strip()]
    if len(lines) > 1:
        lines = lines[:-1]  # the last sampled line may be cut
    sample = "\n".join(lines)
    counts = {d: sample.count(d) for d in ",;\t|"}
    if not (counts[","] or counts[";"] or counts["|"]):
        if counts["\t"] and _consistent([ln.split("\t") for ln in lines]):
            return "\t"
        if _consistent([ln.split() for ln in lines]):
            return WHITESPACE
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


def _consistent(rows: list[list[str]]) -> bool:
    """Nine in ten sample lines split into the same number (> 1) of fields."""
    if not rows:
        return False
    widths = [len(r) for r in rows]
    top = max(set(widths), key=widths.count)
    return top > 1 and widths.count(top) >= 0.9 * len(widths)


def sample_rows(text: str, delimiter: str, *, complete: bool, limit: int = 200) -> list[list[str]]:
    """The first records of the sample, split into fields (the last one dropped when the
    sample may have cut it)."""
    rows: list[list[str]] = []
    if delimiter == WHITESPACE:
        rows = [ln.split() for ln in text.splitlines()[:limit + 1] if ln.strip()]
    else:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"')
        try:
            for row in reader:
                if row:
                    rows.append(row)
                if len(rows) > limit:
                    break
        except csv.Error:
            pass  # a NUL or an overlong field: the rows read so far are the sample
    if not complete and len(rows) > 1:
        rows = rows[:-1]
    return rows[:limit]


def _kind(value: str) -> str | None:
    v = value.strip()
    if _DATE.fullmatch(v):
        return "date"
    if _NUMBER.fullmatch(v):
        return "number"
    return None


def sniff_header(rows: list[list[str]]) -> bool:
    """Whether the first record holds column names.

    It does not when one of its fields is a number or a date and the same column holds
    that kind of value in the next records too (column names are not numbers)."""
    if not rows:
        return True
    first, rest = rows[0], rows[1:11]
    for j, value in enumerate(first):
        kind = _kind(value)
        if kind is None:
            continue
        if not rest or any(len(r) > j and _kind(r[j]) == kind for r in rest):
            return False
    return True


def sniff_decimal(rows: list[list[str]], delimiter: str) -> str:
    """``,`` when numbers in the sample are written with a decimal comma (``12,50``) and
    none with a decimal point; only when the delimiter is not a comma itself."""
    if delimiter == ",":
        return "."
    comma = point = 0
    for row in rows:
        for value in row:
            v = _CURRENCY.sub("", value)
            if _GROUPED.fullmatch(v):
                continue
            if _COMMA_DECIMAL.fullmatch(v):
                comma += 1
            elif _POINT_DECIMAL.fullmatch(v):
                point += 1
    return "," if comma and not point else "."


def sniff_dialect(head: bytes, *, delimiter: str | None = None, encoding: str | None = None,
                  header: bool | None = None, decimal: str | None = None) -> Dialect:
    """The dialect of a file from its first bytes; given settings are kept as they are."""
    sniffed: list[str] = []
    if encoding is None:
        encoding = sniff_encoding(head)
        sniffed.append("encoding")
    else:
        encoding = normalize_encoding(encoding)
    text = decode(head, encoding)
    hint, text = split_sep_line(text)
    if delimiter is None:
        delimiter = hint or sniff_delimiter(text)
        sniffed.append("delimiter")
    else:
        delimiter = normalize_delimiter(delimiter)
    rows = sample_rows(text, delimiter, complete=len(head) < SNIFF_BYTES)
    if header is None:
        header = sniff_header(rows)
        sniffed.append("header")
    if decimal is None:
        decimal = sniff_decimal(rows[1:] if header else rows, delimiter)
        sniffed.append("decimal")
    elif decimal not in (".", ","):
        raise InputError(f"decimal mark '{decimal}' is not supported; use '.' or ','",
                         code="E_DECIMAL")
    return Dialect(delimiter, encoding, header, decimal, tuple(sniffed))


def first_record(head: bytes, dialect: Dialect) -> list[str]:
    """The first record of a file (its column names when it has a header), fields trimmed."""
    text = decode(head, dialect.encoding)
    if dialect.delimiter != WHITESPACE:
        text = split_sep_line(text)[1]
    rows = sample_rows(text, dialect.delimiter, complete=True, limit=1)
    return [f.strip() for f in rows[0]] if rows else []


def column_names(first: list[str], header: bool, reserved: tuple[str, ...] = ()) -> list[str]:
    """Column names from a header, or ``column0``, ``column1``... without one.

    Every name is usable by both engines: an empty one is named by its position, NUL
    becomes U+FFFD (SQL text cannot hold it), and a name equal to an earlier one or to a
    ``reserved`` one (the reader's own columns) but for case gets ``_1``, ``_2``...
    (DuckDB's names ignore case).
    """
    if not header:
        return [f"column{j}" for j in range(len(first))]
    names: list[str] = []
    taken = {r.casefold() for r in reserved}
    for j, name in enumerate(first):
        base = name.replace("\x00", "\ufffd") or f"column{j}"
        candidate, n = base, 0
        while candidate.casefold() in taken:
            n += 1
            candidate = f"{base}_{n}"
        names.append(candidate)
        taken.add(candidate.casefold())
    return names


def line_endings(blocks: Iterator[bytes] | list[bytes], *, quoted: bool,
                 whole: bool = True) -> set[str]:
    """The line terminators (``\\n``, ``\\r\\n``, ``\\r``) that end records: those outside
    double-quoted fields when ``quoted``. Stops early once two kinds are seen; ``whole``
    is false for a sample that may end between ``\\r`` and ``\\n``."""
    found: set[str] = set()
    inside = False  # within a quoted field at the start of the block
    carry = b""
    for block in blocks:
        data = carry + block
        carry = b""
        if data.endswith(b"\r"):
            data, carry = data[:-1], b"\r"  # may be the first half of \r\n
        parts = data.split(b'"') if quoted else [data]
        for i, part in enumerate(parts):
            if inside ^ (i % 2 == 1):
                continue
            crlf = part.count(b"\r\n")
            if crlf:
                found.add("\r\n")
            if part.count(b"\n") > crlf:
                found.add("\n")
            if part.count(b"\r") > crlf:
                found.add("\r")
        if quoted and len(parts) % 2 == 0:
            inside = not inside
        if len(found) > 1:
            return found
    if carry and whole:
        found.add("\r")
    return found


def _latin1(err: UnicodeError) -> tuple[str, int]:
    """Decode bytes Windows-1252 leaves undefined as their Latin-1 characters."""
    if not isinstance(err, UnicodeDecodeError):
        raise err
    return err.object[err.start:err.end].decode("latin-1"), err.end


def _fallback() -> str:
    """The name of the error handler of Windows-1252 decoding (registered on first use)."""
    try:
        codecs.lookup_error(_FALLBACK)
    except LookupError:
        codecs.register_error(_FALLBACK, _latin1)
    return _FALLBACK


def write_copy(path: Path, dest: Path, *, windows_1252: bool = False,
               skip_first: bool = False) -> None:
    """Copy the (decompressed) file to ``dest`` with every line ending made ``\\n``; with
    ``windows_1252`` its text is also re-encoded from Windows-1252 to UTF-8.

    Line numbers stay the same, so quarantined records still point at the right line of
    the original file; unless ``skip_first`` drops the first line (for an engine that
    cannot skip it and tells no line numbers anyway).
    """
    decoder = None
    if windows_1252:
        decoder = codecs.getincrementaldecoder("cp1252")(errors=_fallback())
    carry = b""
    with open(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
        for block in chunks(path):
            data = carry + block
            carry = b""
            if data.endswith(b"\r"):
                data, carry = data[:-1], b"\r"  # may be the first half of \r\n
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if skip_first:
                if b"\n" not in data:
                    continue  # the first line goes on in the next block
                data, skip_first = data.split(b"\n", 1)[1], False
            out.write(decoder.decode(data).encode("utf-8") if decoder else data)
        tail = b"\n" if carry else b""
        out.write(decoder.decode(tail, final=True).encode("utf-8") if decoder else tail)


_KEY_SAMPLE_BYTES = 64 * 1024 * 1024


def jsonl_keys(paths: list[Path], sample_lines: int = 5000) -> tuple[list[str], bool]:
    """Top-level keys of the first parseable objects of each file, in first-seen order,
    and whether any object was found. Lines longer than a record may be are passed
    over (they are quarantined), however long the first of them is."""
    keys: dict[str, None] = {}
    found = False
    for path in paths:
        lines = itertools.islice(_lines(path, MAX_RECORD_BYTES, _KEY_SAMPLE_BYTES),
                                 sample_lines)
        with contextlib.suppress(InputError):  # a file cut short: ingest says so
            for raw in lines:
                try:
                    obj = json.loads(raw.decode("utf-8", errors="replace").lstrip("\ufeff"))
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    found = True
                    keys.update(dict.fromkeys(obj))
    return list(keys), found


def _lines(path: Path, limit: int, budget: int) -> Iterator[bytes]:
    """The non-blank lines of a (decompressed) file among its first ``budget`` bytes,
    leaving out those longer than ``limit`` (never held whole in memory)."""
    carry, skipping, size = b"", False, 0
    for block in chunks(path):
        parts = (carry + block).split(b"\n")
        carry = parts.pop()
        for part in parts:
            if skipping:
                skipping = False  # the end of a line too long to keep
            elif len(part) <= limit and part.strip():
                yield part
        if len(carry) > limit:
            carry, skipping = b"", True
        size += len(block)
        if size > budget:
            return
    if carry.strip() and not skipping:
        yield carry
