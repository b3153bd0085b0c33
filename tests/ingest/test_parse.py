from datetime import UTC, datetime

import ibis
import pytest

from tribes.engine import connect
from tribes.ingest.parse import as_text, finite, parse_bool, parse_float, parse_ts, whole


def _run(values: list, fn, type_: str = "string") -> list:
    engine = connect(None)
    t = ibis.memtable({"v": values}, schema={"v": type_})
    out = engine.execute(t.mutate(p=fn(t.v)))["p"].tolist()
    return [None if x is None or x != x else x for x in out]


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-03-04T10:15:02Z", _utc(2026, 3, 4, 10, 15, 2)),
    ("2026-03-04T12:15:02+02:00", _utc(2026, 3, 4, 10, 15, 2)),
    ("2026-03-04 10:15:02", _utc(2026, 3, 4, 10, 15, 2)),
    ("2026-03-04", _utc(2026, 3, 4)),
    ("1772619302", _utc(2026, 3, 4, 10, 15, 2)),
    ("1772619302000", _utc(2026, 3, 4, 10, 15, 2)),
    ("1772619302000000", _utc(2026, 3, 4, 10, 15, 2)),
    ("not-a-date", None),
    (" 1772619302 ", _utc(2026, 3, 4, 10, 15, 2)),
    ("-1e3", _utc(1969, 12, 31, 23, 43, 20)),
    ("2026-13-45T99:00:00Z", None),
])
def test_parse_ts_text(text: str, expected: datetime | None) -> None:
    got = _run([text], lambda v: parse_ts(as_text(v)))[0]
    assert (got.to_pydatetime() if got is not None else None) == expected


def test_parse_ts_naive_text_in_given_zone_and_offsets_kept() -> None:
    got = _run(["2026-03-04 10:00:00", "2026-03-04T10:00:00Z", "2026-07-04 10:00:00"],
               lambda v: parse_ts(as_text(v), tz="Europe/Paris"))
    assert [g.to_pydatetime() for g in got] == [
        _utc(2026, 3, 4, 9), _utc(2026, 3, 4, 10), _utc(2026, 7, 4, 8)]


def test_parse_ts_with_format() -> None:
    got = _run(["04/03/2026 10:15", "2026-03-04"],
               lambda v: parse_ts(as_text(v), fmt="%d/%m/%Y %H:%M"))
    assert got[0].to_pydatetime() == _utc(2026, 3, 4, 10, 15)
    assert got[1] is None


def test_parse_ts_typed_timestamp_naive_is_local_time() -> None:
    got = _run([datetime(2026, 1, 1, 12)], lambda v: parse_ts(v, tz="America/New_York"),
               "timestamp")
    assert got[0].to_pydatetime() == _utc(2026, 1, 1, 17)


def test_parse_float_cleans_currency_and_rejects_nan() -> None:
    got = _run(["12.5", " $1,234.50 ", "€3", "abc", "nan", "inf", None],
               lambda v: finite(parse_float(as_text(v))))
    assert got == [12.5, 1234.5, 3.0, None, None, None, None]


def test_whole_accepts_integral_floats_only() -> None:
    got = _run(["3", "3.0", "3.5", "x"], lambda v: whole(finite(parse_float(as_text(v)))))
    assert got == [3, 3, None, None]


def test_parse_bool_spellings() -> None:
    got = _run(["yes", "No", "1", "0", "granted", "DENIED", "opt-out", "maybe", None],
               lambda v: parse_bool(as_text(v)))
    assert got == [True, False, True, False, True, False, False, None, None]


def test_as_text_null_markers_and_spaces() -> None:
    got = _run(["  a  ", "", "NULL", "n/a", "undefined", "-", "nullable"], as_text)
    assert got == ["a", None, None, None, None, None, "nullable"]
    # spaces on one side only, markers padded with spaces, long values, only spaces
    got = _run([" a", "a ", "  None ", "   ", " long value with spaces  ", "a b", None,
                "\ta"], as_text)
    assert got == ["a", "a", None, None, "long value with spaces", "a b", None, "\ta"]
    # values of a typed column are not trimmed (the parsers tolerate spaces)
    assert _run([" 5 ", "NaN", " "], lambda v: as_text(v, trim=False)) == [" 5 ", None, " "]


def test_parse_float_decimal_marks() -> None:
    values = ["12.5", "1,234.50", "12,50", "1.234,50", "1.234", "12,5 €", "-3,25",
              "1\u00a0234,5", "1,2,3"]
    point = _run(values, lambda v: finite(parse_float(as_text(v))))
    comma = _run(values, lambda v: finite(parse_float(as_text(v), decimal=",")))
    # with a decimal point a comma only groups thousands: 12,50 is not a number
    assert point == [12.5, 1234.5, None, None, 1.234, None, None, None, None]
    assert comma == [12.5, None, 12.5, 1234.5, 1234.0, 12.5, -3.25, 1234.5, None]
