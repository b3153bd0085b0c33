"""Guess how a file writes its timestamps when it does not use ISO-8601 or epoch numbers.

Exports from spreadsheets and older systems write ``03/15/2026 10:01``,
``15.03.2026``, ``19970101`` (the CDNOW master file) or Apache's
``10/Oct/2026:13:55:36 -0700``. Without ``--ts-format`` every such row would be
quarantined (or, for ``19970101``, read as epoch seconds in 1970). ``guess_ts_format``
looks at the first values of the column and names the one strftime format that reads
them, or, when two read them equally well (day-first or month-first, all days 12 or
less), names both and guesses neither: the user chooses with ``--ts-format``.

A guessed format only adds a way to read: values in ISO-8601 or epoch are still read
as before (see ``parse.parse_ts``), so a guess never loses a row that parsed without it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from itertools import product

SAMPLE = 1000  # values looked at (the first non-empty ones of the batch)
MIN_SHARE = 0.5  # guess only when at least this share of the sample is not ISO/epoch
MIN_FIT = 0.95  # a format must read at least this share of those values

_DATES = (
    "%m/%d/%Y", "%d/%m/%Y", "%Y/%m/%d", "%m/%d/%y", "%d/%m/%y",
    "%d.%m.%Y", "%d.%m.%y", "%d-%m-%Y", "%m-%d-%Y",
    "%d %b %Y", "%d-%b-%Y", "%b %d %Y", "%b %d, %Y", "%d %B %Y", "%B %d, %Y",
)
_TIMES = ("", " %H:%M", " %H:%M:%S", " %H:%M:%S.%f", " %I:%M %p", " %I:%M:%S %p")
# whole formats that are not a date part plus a time part
_OTHERS = ("%Y%m%d", "%Y%m%d%H%M%S", "%d/%b/%Y:%H:%M:%S %z")
CANDIDATES: tuple[str, ...] = tuple(d + t for d, t in product(_DATES, _TIMES)) + _OTHERS

_ISO = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}([T ]|$)")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_YYYYMMDD = re.compile(r"^(19|20)\d{6}(\d{6})?$")  # 19970101, 20260315101112


@dataclass(frozen=True)
class TsGuess:
    """The format found (None: keep ISO-8601/epoch only) and, when no single format
    could be chosen, the formats that read the values equally well."""

    fmt: str | None = None
    ambiguous: list[str] = field(default_factory=list)
    example: str | None = None  # a value the formats were judged on

    def note(self) -> str | None:
        """What to tell the user about the guess (None when there is nothing to say)."""
        if self.fmt:
            return (f"timestamps such as '{self.example}' were read with the format "
                    f"'{self.fmt}' (sniffed from the first values; pass --ts-format to "
                    "choose another)")
        if self.ambiguous:
            flags = " or ".join(f"--ts-format '{f}'" for f in self.ambiguous)
            return (f"timestamps such as '{self.example}' can be read in more than one way "
                    f"(day first or month first?) and were not guessed: pass {flags}")
        return None


def _reads(fmt: str, value: str) -> bool:
    try:
        datetime.strptime(value, fmt)
    except ValueError:
        return False
    return True


def _plain(value: str) -> bool:
    """Whether the engine reads ``value`` without a format: ISO-8601 or an epoch number
    (8-digit dates such as 19970101 excepted: as epoch seconds they would be in 1970)."""
    if _ISO.match(value):
        return True
    return bool(_NUMBER.match(value)) and not _YYYYMMDD.match(value)


def _same_readings(formats: list[str], values: list[str]) -> bool:
    """Whether the formats read every value they all read as the same time ('May' is
    both a full and an abbreviated month name): then the choice does not matter."""
    for v in values:
        readings = set()
        for fmt in formats:
            try:
                readings.add(datetime.strptime(v, fmt))
            except ValueError:
                break
        if len(readings) > 1:
            return False
    return True


def _fits(values: list[str]) -> dict[str, int]:
    """How many of ``values`` each candidate reads, for the candidates that read at
    least ``MIN_FIT`` of them; a candidate is dropped at its first miss beyond that."""
    allowed = len(values) - math.ceil(MIN_FIT * len(values))
    fits: dict[str, int] = {}
    for fmt in CANDIDATES:
        misses = 0
        for v in values:
            misses += not _reads(fmt, v)
            if misses > allowed:
                break
        else:
            fits[fmt] = len(values) - misses
    return fits


def guess_ts_format(values: list[str]) -> TsGuess:
    """The strftime format of the timestamps ``values`` (text, first ones of a batch)."""
    sample = [v.strip() for v in values if v is not None and v.strip()][:SAMPLE]
    other = [v for v in sample if not _plain(v)]
    if not other or len(other) < MIN_SHARE * len(sample):
        return TsGuess()
    fits = _fits(other)
    if not fits:
        return TsGuess()
    best = max(fits.values())
    chosen = [fmt for fmt, n in fits.items() if n == best]
    example = next((v for v in other if _reads(chosen[0], v)), other[0])
    if len(chosen) == 1 or _same_readings(chosen, other):
        return TsGuess(fmt=chosen[0], example=example)
    return TsGuess(ambiguous=chosen[:3], example=example)
