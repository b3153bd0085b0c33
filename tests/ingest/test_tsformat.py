"""Timestamps written in a non-ISO way: the format is sniffed from the first values."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from tests.conftest import table
from tests.ingest.test_real_files import CDNOW, CDNOW_MAP, ingest, quarantine
from tribes.ingest.tsformat import CANDIDATES, guess_ts_format


@pytest.mark.parametrize(("values", "fmt"), [
    (["03/15/2026 10:01", "03/16/2026 11:02"], "%m/%d/%Y %H:%M"),
    (["15/03/2026 10:01:02", "01/04/2026 00:00:00"], "%d/%m/%Y %H:%M:%S"),
    (["15.03.2026", "1.4.2026"], "%d.%m.%Y"),
    (["19970101", "19970118"], "%Y%m%d"),  # the CDNOW master file
    (["20260315101112"], "%Y%m%d%H%M%S"),
    (["10/Oct/2026:13:55:36 -0700"], "%d/%b/%Y:%H:%M:%S %z"),  # Apache logs
    (["Mar 5, 2026", "Dec 24, 2026"], "%b %d, %Y"),
    (["5 May 2026"], "%d %b %Y"),  # 'May' is both a short and a full month name
    (["03/15/2026 10:01:02 PM"], "%m/%d/%Y %I:%M:%S %p"),
    (["2026/03/15"], "%Y/%m/%d"),
])
def test_common_formats_are_named(values: list[str], fmt: str) -> None:
    guess = guess_ts_format(values)
    assert (guess.fmt, guess.ambiguous) == (fmt, [])
    assert guess.example in values
    # the format reads what it was judged on, as Python's strptime does
    for v in values:
        datetime.strptime(v, fmt)


def test_day_or_month_first_is_not_guessed_when_the_values_cannot_tell() -> None:
    guess = guess_ts_format(["03/04/2026 10:01", "05/06/2026 11:00"])
    assert guess.fmt is None
    assert guess.ambiguous == ["%m/%d/%Y %H:%M", "%d/%m/%Y %H:%M"]
    note = guess.note()
    assert note is not None
    assert "--ts-format '%m/%d/%Y %H:%M' or --ts-format '%d/%m/%Y %H:%M'" in note
    # one day above 12 settles it
    assert guess_ts_format(["03/04/2026 10:01", "25/06/2026 11:00"]).fmt == "%d/%m/%Y %H:%M"


@pytest.mark.parametrize("values", [
    ["2026-03-15T10:01:02Z", "2026-03-15 10:01", "2026-03-15"],  # ISO: nothing to guess
    ["1773568862", "1773568862000", "1773568862.5"],  # epoch seconds / milliseconds
    [],
    ["n/a", "soon", "yesterday"],  # nothing reads them: no guess, rows are quarantined
])
def test_values_the_engine_reads_or_nothing_reads_get_no_format(values: list[str]) -> None:
    guess = guess_ts_format(values)
    assert (guess.fmt, guess.ambiguous, guess.note()) == (None, [], None)


def test_a_few_junk_values_do_not_stop_the_guess_but_an_iso_majority_does() -> None:
    us = [f"03/{d:02d}/2026 10:00" for d in range(1, 29)] * 4
    assert guess_ts_format([*us, "garbage"]).fmt == "%m/%d/%Y %H:%M"
    iso = [f"2026-03-{d:02d}T10:00:00Z" for d in range(1, 29)] * 4
    assert guess_ts_format([*iso, *us[:20]]).fmt is None


def test_every_candidate_reads_its_own_output() -> None:
    when = datetime(2026, 3, 15, 22, 1, 2, 123000, tzinfo=UTC)
    for fmt in CANDIDATES:
        text = when.strftime(fmt)
        assert datetime.strptime(text, fmt), fmt


# -- end to end ---------------------------------------------------------------------------


def test_us_dates_are_loaded_in_the_given_zone(cli, ws, write) -> None:
    rows = ["u1,03/15/2026 10:01,login", "u2,03/16/2026 23:59,purchase_intent",
            "u3,2026-03-17T08:00:00Z,login",  # ISO among them is still read
            *[f"v{i},03/18/2026 12:{i:02d},login" for i in range(20)],
            "u4,next tuesday,login"]  # one in 20 may be junk: it is quarantined
    path = write("us.csv", ("user,when,event\n" + "\n".join(rows) + "\n").encode())
    s = ingest(cli, ws, path, "--map", "ts=when", "--tz", "America/New_York")
    assert s["read"]["ts_format"] == "%m/%d/%Y %H:%M"
    assert "were read with the format '%m/%d/%Y %H:%M'" in s["read"]["notes"][0]
    assert (s["loaded"], s["quarantined"]) == (23, {"E_TS_PARSE": 1})
    ts = sorted(table(ws, "events").ts)[:3]
    ny = [pd.Timestamp(v, tz="America/New_York").tz_convert("UTC")
          for v in ("2026-03-15 10:01", "2026-03-16 23:59")]
    assert ts == [*ny, pd.Timestamp("2026-03-17T08:00:00Z")]
    assert max(table(ws, "events").ts) == pd.Timestamp("2026-03-18 16:19:00", tz="UTC")
    [(reason, _, message)] = quarantine(ws)
    assert reason == "E_TS_PARSE"
    assert message == ("timestamp 'next tuesday' could not be parsed (format %m/%d/%Y %H:%M "
                       "as sniffed, ISO-8601 or epoch expected; pass --ts-format)")


def test_cdnow_dates_need_no_format(cli, ws, write) -> None:
    path = write("CDNOW_master.txt", CDNOW.encode())
    s = ingest(cli, ws, path, "--event-type", "purchase", "--map", CDNOW_MAP)
    assert (s["loaded"], s["quarantined"]) == (3, {"E_MALFORMED": 1})
    assert s["read"]["ts_format"] == "%Y%m%d"
    days = sorted(t.strftime("%Y-%m-%d") for t in table(ws, "events").ts)
    assert days == ["1997-01-01", "1997-01-01", "1997-01-18"]


def test_ambiguous_dates_are_quarantined_with_both_flags(cli, ws, write) -> None:
    path = write("eu_or_us.csv", b"user,ts,event\nu1,03/04/2026,login\nu2,05/06/2026,login\n")
    s = ingest(cli, ws, path)
    assert (s["loaded"], s["quarantined"]) == (0, {"E_TS_PARSE": 2})
    assert "ts_format" not in s["read"]
    assert "--ts-format '%m/%d/%Y' or --ts-format '%d/%m/%Y'" in s["read"]["notes"][0]
    # the user's choice settles it
    s = ingest(cli, ws, path, "--ts-format", "%d/%m/%Y")
    assert s["loaded"] == 2 and "notes" not in s["read"]
    assert sorted(t.month for t in table(ws, "events").ts) == [4, 6]


def test_a_unit_after_a_column_name_still_maps(cli, ws, write) -> None:
    text = ('"User ID"\t"Event Time"\t"Event"\t"Revenue (USD)"\r\n'
            'u1\t2026-03-15T10:01:00Z\tPurchase\t"1,234.50"\r\n')
    s = ingest(cli, ws, write("export.tsv", text.encode()))
    assert s["mapping"]["amount"] == "Revenue (USD)" and s["loaded"] == 1
    assert list(table(ws, "events").amount) == [1234.5]
