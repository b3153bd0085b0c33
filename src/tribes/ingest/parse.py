"""Engine expressions that turn raw source values into typed values.

Parsers take text already cleaned by :func:`as_text` (or a typed column) and return an
expression that is null where the input cannot be parsed; the caller compares it with
the text to tell "missing" from "invalid". The staging step evaluates each of them once
per row (see ``stage.py``), so they may reference their input several times.
"""

from __future__ import annotations

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from tribes.engine import local_to_utc, trim_spaces, try_strptime
from tribes.ingest.standardize import NULL_MARKERS

UTC = dt.Timestamp(timezone="UTC")
_EPOCH_MS_MIN = 1e11  # above this a number is milliseconds (1e11 s is the year 5138)
_EPOCH_US_MIN = 1e14


_MARKER_LEN = max(len(m) for m in NULL_MARKERS)


def as_text(value: ir.Value, *, trim: bool = True) -> ir.StringValue:
    """The value as text, with empty strings and null markers turned into null.

    ``trim`` removes surrounding spaces; parsers tolerate them, so typed columns skip it.
    """
    text = value if value.type().is_string() else value.cast("string")
    if trim:
        text = trim_spaces(text)
    # behind a length guard, so that only short values are lowered and compared; the
    # lowered text is named once (named in several comparisons, DuckDB lowers every value
    # of the column in advance) and looked up in an array (an IN list becomes a join)
    markers = ibis.literal(sorted(NULL_MARKERS - {""}), type="array<string>")
    return ibis.cases(
        (text.length() > _MARKER_LEN, text),
        ((text == "") | markers.contains(text.lower()), ibis.null("string")),
        else_=text,
    )


def parse_ts(value: ir.Value, *, fmt: str | None = None, tz: str = "UTC",
             fallback: bool = False) -> ir.TimestampValue:
    """Parse a timestamp to UTC.

    Text is read as ISO-8601 (an offset or ``Z`` is honored; without one the time is
    wall-clock time in ``tz``), as epoch seconds/milliseconds/microseconds, or with the
    strftime format ``fmt`` when given; with ``fallback`` (a format that was guessed, see
    ``tsformat``) text the format does not read is still read as ISO-8601 or epoch.
    Typed timestamps are converted; zone-less ones are taken to be in ``tz``.
    """
    t = value.type()
    if t.is_timestamp():
        if t.timezone is None:
            return value.cast(UTC) if tz == "UTC" else local_to_utc(value, tz)
        return value.cast(UTC)
    if t.is_date():
        return _from_naive(value.cast(dt.Timestamp()), tz)
    if t.is_numeric():
        return _from_epoch(value.cast("float64"))
    text = value  # already trimmed text (see as_text)
    if fmt:
        if "%z" in fmt or "%Z" in fmt:
            formatted = try_strptime(text, fmt).cast(UTC)
        else:
            formatted = _from_naive(try_strptime(text, fmt), tz)
        return formatted.coalesce(parse_ts(text, tz=tz)) if fallback else formatted
    if tz == "UTC":
        iso = text.try_cast(UTC)
    else:
        has_offset = text.re_search(r"([Zz]|[+-]\d{2}(:?\d{2})?)$")
        iso = ibis.cases(
            (has_offset, text.try_cast(UTC)),
            else_=_from_naive(text.try_cast(dt.Timestamp()), tz),
        )
    # epoch numbers are read only where ISO failed: in a projection the engine computes a
    # subexpression named several times once for every row, so the text goes in only for
    # those rows; in a filter it repeats the subexpression at every mention, so the
    # number is named once, as the argument of a lambda
    number = ibis.cases((iso.isnull(), text), else_=ibis.null("string")).try_cast("float64")
    return iso.coalesce(ibis.array([number]).map(_from_epoch)[0])


def _from_naive(naive: ir.TimestampValue, tz: str) -> ir.TimestampValue:
    return naive.cast(UTC) if tz == "UTC" else local_to_utc(naive, tz)


def _from_epoch(number: ir.FloatingValue) -> ir.TimestampValue:
    ms = ibis.cases(
        (number.abs() >= _EPOCH_US_MIN, number / 1000),
        (number.abs() >= _EPOCH_MS_MIN, number),
        else_=number * 1000,
    )
    finite = ~number.isnan() & ~number.isinf() & (number.abs() < 1e17)
    return ibis.cases((finite, ms.round().cast("int64").as_timestamp("ms").cast(UTC)),
                      else_=ibis.null(UTC))


# spaces (also the no-break ones of French thousands) and currency symbols around numbers
_NOISE = "[\\s\u00a0\u202f$€£¥]"
_GROUPS = {".": r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$", ",": r"^[+-]?\d{1,3}(\.\d{3})+(,\d*)?$"}


def parse_float(value: ir.Value, *, decimal: str = ".") -> ir.FloatingValue:
    """A float from a number, or from text that may carry currency symbols, spaces and
    thousands separators.

    ``decimal`` is the decimal mark of the text: with ``"."``, ``1,234.50`` is 1234.5 and
    ``12,50`` is not a number (a comma only groups thousands); with ``","``, ``12,50`` is
    12.5, ``1.234,50`` is 1234.5 and ``12.5`` is still 12.5.
    """
    if value.type().is_numeric():
        return value.cast("float64")
    clean = value.re_replace(_NOISE, "")
    grouped = clean.re_search(_GROUPS[decimal])
    if decimal == ",":
        text = ibis.cases((grouped, clean.replace(".", "")), else_=clean).replace(",", ".")
        return text.try_cast("float64")
    text = ibis.cases((grouped, clean.replace(",", "")),
                      (clean.contains(","), ibis.null("string")), else_=clean)
    return value.try_cast("float64").coalesce(text.try_cast("float64"))


def finite(number: ir.FloatingValue) -> ir.FloatingValue:
    """Null instead of NaN and infinities."""
    return ibis.cases((number.isnan() | number.isinf(), ibis.null("float64")), else_=number)


def whole(number: ir.FloatingValue) -> ir.IntegerValue:
    """The number as int64 when it is a whole number (``3.0``), else null (``3.5``)."""
    return ibis.cases(
        ((number.abs() < 9e15) & (number == number.floor()), number.cast("int64")),
        else_=ibis.null("int64"),
    )


_TRUE = ["true", "t", "yes", "y", "1", "granted", "grant", "opt_in", "opt-in", "optin",
         "accept", "accepted", "allow", "allowed", "agree", "agreed", "on", "given"]
_FALSE = ["false", "f", "no", "n", "0", "denied", "deny", "opt_out", "opt-out", "optout",
          "refused", "declined", "decline", "revoked", "withdrawn", "rejected", "off",
          "disallowed"]


def parse_bool(value: ir.Value) -> ir.BooleanValue:
    """yes/no, true/false, 1/0, granted/denied, opt-in/opt-out, ... (case-insensitive)."""
    if value.type().is_boolean():
        return value
    text = value.lower()
    return ibis.cases(
        (text.isin(_TRUE), ibis.literal(True)),
        (text.isin(_FALSE), ibis.literal(False)),
        else_=ibis.null("boolean"),
    )
