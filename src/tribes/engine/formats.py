"""What the readers are told about the files they read, and what they add to them.

Plain values, the same for every backend: the dialect of a delimited text file (sniffed
by ``tribes.ingest.sniff`` unless the user gave it), the columns a reader adds to the
source's own, and the longest record and line a reader takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

WHITESPACE = "whitespace"  # fields separated by runs of spaces or tabs (text exports)
FILE_COLUMN = "_file"  # every reader's: the file a row comes from, as given
VALID_COLUMN = "_valid"  # false on a record the reader could not parse (when it keeps them)
LINE_COLUMN = "_line"  # the text of a JSON line, until its values are extracted
# the columns a reader adds to the source's own (a source column of such a name is renamed)
READER_COLUMNS = (FILE_COLUMN, VALID_COLUMN, LINE_COLUMN)

# a record (one line, one CSV record) may be this long; a longer one is quarantined
MAX_RECORD_BYTES = 2 * 1024 * 1024  # DuckDB's max_line_size for CSV records
# a line read whole (JSON Lines) may be this long; a longer one stops the file (E_READ).
# The engine reads in buffers of twice that (DuckDB's default for its 2 MiB lines; left
# to itself it takes 16 lines' worth: 1 GiB for a compressed file)
MAX_LINE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Dialect:
    """How the records of a delimited text file are written."""

    delimiter: str  # one character, or WHITESPACE
    encoding: str  # utf-8, utf-16 or latin-1
    header: bool  # the first record holds column names
    decimal: str = "."  # decimal mark of numbers written as text: "." or ","
    sniffed: tuple[str, ...] = ()  # the settings above that were guessed

    def describe(self) -> dict[str, Any]:
        """The settings as the user would pass them, and which were guessed."""
        delim = {"\t": "tab", WHITESPACE: WHITESPACE}.get(self.delimiter, self.delimiter)
        return {"delimiter": delim, "encoding": self.encoding, "header": self.header,
                "decimal": self.decimal, "sniffed": list(self.sniffed)}

    def options(self) -> str:
        """The settings as command-line flags (for error messages)."""
        d = self.describe()
        return (f"--delimiter '{d['delimiter']}' --encoding {self.encoding} "
                f"{'--header' if self.header else '--no-header'} --decimal '{self.decimal}'")


def compression(path: Path) -> str:
    """How a file is compressed, from its name: ``gzip``, ``zstd`` or ``none`` (DuckDB's
    option; it guesses from .gz and .zst only)."""
    name = path.name.lower()
    if name.endswith((".gz", ".gzip")):
        return "gzip"
    if name.endswith((".zst", ".zstd")):
        return "zstd"
    return "none"
