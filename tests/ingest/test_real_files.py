"""Files as they come from real systems, read end to end through ``tribes ingest``: mixed
line endings, fixed-width text exports, byte-order marks, Latin-1, decimal commas, quoted
line breaks, compressed files. Each is read as a person would expect, or stops with an
error that names the problem and the option that fixes it."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CliResult, shared_data, table
from tribes.ingest.sniff import WHITESPACE, sniff_dialect
from tribes.privacy.pseudonyms import pseudonym
from tribes.workspace import Workspace

HEADER = "ts,user_id,event,amount,page"
ROWS = ["2026-03-04T10:15:02Z,u1,page_view,,/home",
        "2026-03-04T10:16:02Z,u1,purchase,19.99,/checkout",
        "2026-03-04T10:17:02Z,u2,purchase,5,/checkout"]

Cli = Callable[..., CliResult]


def ingest(cli: Cli, ws: Workspace, path: Path, *args: str) -> dict[str, Any]:
    r = cli("--workspace", ws.path, "ingest", path, "--json", *args)
    summary: dict[str, Any] = r.json()
    # a batch quarantining most of its rows stores them and exits 3 (E_QUARANTINED)
    assert r.code == 0 or (r.code == 3 and summary.get("error") == "E_QUARANTINED"), r.err
    assert summary["rows_read"] == (summary["loaded"] + summary["duplicates"]
                                    + summary["quarantined_total"])
    return summary


def fails(cli: Cli, ws: Workspace, path: Path, *args: str) -> tuple[str, str]:
    """The error code and message of an ingest that must fail."""
    r = cli("--workspace", ws.path, "ingest", path, "--json", *args)
    assert r.code != 0 and "Traceback" not in r.err
    return r.json()["error"], r.err


def quarantine(ws: Workspace) -> list[tuple[str, str, str]]:
    q = table(ws, "quarantine").sort_values("message")
    return list(zip(q.reason, q.file, q.message, strict=True))


# -- line endings -----------------------------------------------------------------------


@pytest.mark.parametrize(("head_end", "row_end"), [("\n", "\r\n"), ("\r\n", "\n")])
def test_mixed_line_endings_are_read(cli, ws, write, head_end, row_end) -> None:
    text = HEADER + head_end + row_end.join([*ROWS, ROWS[0] + ",extra"]) + row_end
    path = write("mixed.csv", text.encode())
    s = ingest(cli, ws, path, "--source", "web")
    assert (s["rows_read"], s["loaded"], s["quarantined"]) == (4, 3, {"E_MALFORMED": 1})
    assert "mixed.csv: lines end in both LF and CRLF" in s["read"]["notes"][0]
    events = table(ws, "events")
    # the last column carries no stray carriage return
    assert sorted(events.amount.dropna()) == [5.0, 19.99]
    assert {json.loads(p)["page"] for p in events.properties} == {"/home", "/checkout"}
    # the bad record is named by the file as given and its line in it
    [(reason, file, message)] = quarantine(ws)
    assert (reason, file) == ("E_MALFORMED", str(path.resolve()))
    assert message.startswith("line 5: TOO MANY COLUMNS")
    # the copy with even line endings is gone
    assert not list((ws.path / ".tmp").rglob("spool-*"))


def test_line_endings_that_change_after_the_sampled_head(cli, ws, write) -> None:
    # 300 KB of LF lines, then CRLF lines (two exports concatenated)
    first = [f"2026-03-04T10:15:02Z,u{i},page_view,,/p/{i}" for i in range(6000)]
    later = [f"2026-03-05T10:15:02Z,v{i},page_view,,/q/{i}" for i in range(10)]
    text = HEADER + "\n" + "\n".join(first) + "\n" + "\r\n".join(later) + "\r\n"
    assert len(text) > 256 * 1024
    s = ingest(cli, ws, write("joined.csv", text.encode()), "--source", "web")
    assert (s["rows_read"], s["loaded"]) == (6010, 6010)
    assert "lines end in both" in s["read"]["notes"][0]
    pages = {json.loads(p)["page"] for p in table(ws, "events").properties}
    assert "/q/9" in pages and not any(p.endswith("\r") for p in pages)


def test_files_with_different_line_endings_in_one_batch(cli, ws, write) -> None:
    a = write("in/a.csv", (HEADER + "\n" + ROWS[0] + "\n").encode())
    write("in/b.csv", (HEADER + "\r\n" + ROWS[1] + "\r\n").encode())
    write("in/c.csv", (HEADER + "\r" + ROWS[2] + "\r").encode())  # classic Mac
    s = ingest(cli, ws, a.parent, "--source", "web")
    assert (s["rows_read"], s["loaded"]) == (3, 3)
    assert "notes" not in s["read"]
    r = cli("--workspace", ws.path, "ingest", a.parent, "--source", "web")
    out = " ".join(r.out.split())  # the console wraps long lines
    assert r.code == 0 and "3 duplicates" in out
    assert "read as: delimiter ',', encoding utf-8, header yes, decimal '.'" in out


def test_json_lines_with_mixed_line_endings_and_a_bom(cli, ws, tmp_path: Path) -> None:
    lines = [json.dumps({"eventId": "a1", "eventTime": 1772619302000, "eventName": "appOpen",
                         "installId": "i1"}), "not json",
             json.dumps({"eventId": "a2", "eventTime": 1772619303000, "eventName": "login",
                         "installId": "i1"})]
    path = tmp_path / "app.jsonl.gz"
    path.write_bytes(gzip.compress(("\ufeff" + lines[0] + "\r\n" + lines[1] + "\n"
                                    + lines[2] + "\n").encode()))
    r = cli("--workspace", ws.path, "ingest", path)  # the human summary, not --json
    assert r.code == 0, r.err
    out = " ".join(r.out.split())  # the console wraps long lines
    assert "lines end in both LF and CRLF" in out and "read as:" not in out
    assert "2 loaded" in out and "E_MALFORMED" in out


# -- fixed-width / whitespace-separated text ----------------------------------------------

CDNOW = (" 00004 0001 19970101  2   29.33\r\n"
         " 00004 0001 19970118  2   29.73\r\n"
         " 00021 0002 19970101  3   63.34\r\n"
         " 00021 0002 19970102  1\r\n")          # a field short: malformed
CDNOW_MAP = "customer_id=column0,ts=column2,quantity=column3,amount=column4"


def test_cdnow_like_text_is_sniffed_without_options(cli, ws, write) -> None:
    path = write("CDNOW_master.txt", ("\ufeff" + CDNOW).encode())
    dialect = sniff_dialect(path.read_bytes())
    assert (dialect.delimiter, dialect.header, dialect.decimal) == (WHITESPACE, False, ".")
    s = ingest(cli, ws, path, "--event-type", "purchase", "--ts-format", "%Y%m%d",
               "--map", CDNOW_MAP)
    assert (s["rows_read"], s["loaded"], s["quarantined"]) == (4, 3, {"E_MALFORMED": 1})
    assert s["read"]["delimiter"] == WHITESPACE and s["read"]["header"] is False
    ev = table(ws, "events").sort_values(["ts", "amount"])
    assert list(ev.amount) == [29.33, 63.34, 29.73] and list(ev.quantity) == [2, 3, 2]
    # leading blanks, the byte-order mark and CR are not part of any value
    key = ws.secret()
    assert set(ev.customer_id) == {pseudonym("00004", key), pseudonym("00021", key)}
    [(_, _, message)] = quarantine(ws)
    assert message == "the line does not split into 5 fields separated by blanks"


def test_cdnow_like_text_without_a_mapping_says_how_to_name_columns(cli, ws, write) -> None:
    code, err = fails(cli, ws, write("CDNOW_master.txt", CDNOW.encode()))
    assert code == "E_MISSING_COLUMN"
    assert "column0" in err and "--map ts=" in err and "--header" in err


def test_cdnow_sample_file(cli, ws) -> None:
    # as the README runs it: the 19970101 dates need no --ts-format
    path = shared_data("cdnow/CDNOW_sample.txt")
    s = ingest(cli, ws, path, "--event-type", "purchase", "--map", CDNOW_MAP,
               "--source", "cdnow")
    assert (s["rows_read"], s["loaded"], s["quarantined"]) == (6919, 6919, {})
    assert s["read"]["ts_format"] == "%Y%m%d"
    ev = table(ws, "events")
    assert ev.customer_id.nunique() == 2357
    assert ev.ts.min().year == 1997 and ev.ts.max().strftime("%Y-%m") == "1998-06"


# -- encodings ----------------------------------------------------------------------------


def test_utf8_bom_is_not_part_of_the_first_column_name(cli, ws, write) -> None:
    text = "\ufeffpage,ts,user_id,event\r\n/home,2026-03-04T10:15:02Z,u1,page_view\r\n"
    s = ingest(cli, ws, write("bom.csv", text.encode()), "--source", "web")
    assert s["loaded"] == 1 and s["mapping"]["ts"] == "ts"
    assert json.loads(table(ws, "events").properties[0]) == {"page": "/home"}


def test_latin1_is_detected(cli, ws, write) -> None:
    text = HEADER + ",city\n" + ROWS[0] + ",Zürich\n" + ROWS[1] + ",Orléans\n"
    s = ingest(cli, ws, write("latin.csv", text.encode("latin-1")), "--source", "web")
    assert s["loaded"] == 2 and s["read"]["encoding"] == "latin-1"
    assert "encoding" in s["read"]["sniffed"]
    assert set(table(ws, "events").city) == {"Zürich", "Orléans"}


def test_latin1_found_after_a_plain_ascii_head(cli, ws, write) -> None:
    rows = [f"2026-03-04T10:15:02Z,u{i},page_view,,/p/{i},Paris" for i in range(6000)]
    text = HEADER + ",city\n" + "\n".join(rows) + "\n2026-03-04T10:15:02Z,v,page_view,,/,Orléans\n"
    path = write("late.csv", text.encode("latin-1"))
    s = ingest(cli, ws, path, "--source", "web")
    assert (s["loaded"], s["quarantined"]) == (6001, {})
    assert s["read"]["encoding"] == "latin-1"
    assert "late.csv line 6002: not UTF-8" in s["read"]["notes"][0]
    assert "Orléans" in set(table(ws, "events").city)


def test_latin1_read_as_utf8_on_request_is_quarantined_with_the_fix(cli, ws, write) -> None:
    text = HEADER + ",city\n" + ROWS[0] + ",Paris\n" + ROWS[1] + ",Orléans\n"
    path = write("latin.csv", text.encode("latin-1"))
    s = ingest(cli, ws, path, "--source", "web", "--encoding", "utf-8")
    assert (s["loaded"], s["quarantined"]) == (1, {"E_MALFORMED": 1})
    [(_, _, message)] = quarantine(ws)
    assert message.startswith("line 3: INVALID ENCODING") and "--encoding latin-1" in message


def test_windows_1252_euro_sign_semicolons_and_decimal_commas(cli, ws, write) -> None:
    text = ("Zeitpunkt;Kunde;Ereignis;Betrag;Stadt\n"
            "04.03.2026 10:15;k1;Kauf;12,50 €;München\n"
            "04.03.2026 10:16;k2;Kauf;1.234,50 €;Köln\n"
            "04.03.2026 10:17;k3;Kauf;-;Köln\n")
    path = write("export.csv", text.encode("cp1252"))
    s = ingest(cli, ws, path, "--source", "pos", "--ts-format", "%d.%m.%Y %H:%M",
               "--map", "ts=Zeitpunkt,customer_id=Kunde,event_type=Ereignis,amount=Betrag,"
               "city=Stadt", "--event-type", "purchase")
    read = s["read"]
    assert (read["delimiter"], read["encoding"], read["header"], read["decimal"]) == (
        ";", "latin-1", True, ",")
    assert "Windows-1252" in read["notes"][0]
    assert (s["loaded"], s["quarantined"]) == (2, {"E_AMOUNT": 1})
    ev = table(ws, "events").sort_values("amount")
    # read right, the cities are found in the gazetteer, which names München Munich
    assert list(ev.amount) == [12.5, 1234.5] and list(ev.city) == ["Munich", "Köln"]


def test_unknown_encoding_is_refused_with_the_choices(cli, ws, write) -> None:
    code, err = fails(cli, ws, write("e.csv", HEADER + "\n" + ROWS[0] + "\n"),
                      "--encoding", "ebcdic")
    assert code == "E_ENCODING" and "latin-1" in err


# -- decimal commas -----------------------------------------------------------------------


def test_decimal_comma_in_a_comma_separated_file(cli, ws, write) -> None:
    text = 'ts,user_id,event,amount\n2026-03-04T10:15:02Z,u1,purchase,"12,50"\n'
    path = write("quoted.csv", text)
    s = ingest(cli, ws, path)
    # a comma only groups thousands by default: 12,50 is not a number, and the
    # quarantine says how to read it
    assert s["quarantined"] == {"E_AMOUNT": 1} and s["read"]["decimal"] == "."
    [(_, _, message)] = quarantine(ws)
    assert "'12,50' is not a number (a decimal comma? pass --decimal ,)" in message
    s = ingest(cli, ws, path, "--decimal", ",")
    assert s["loaded"] == 1 and table(ws, "events").amount[0] == 12.5


def test_decimal_option_is_documented_and_checked(cli, ws, write) -> None:
    r = cli("ingest", "--help")
    assert "--decimal" in r.out and "--header" in r.out and "--no-header" in r.out
    assert ".zst" in r.out
    r = cli("--workspace", ws.path, "ingest", write("e.csv", HEADER + "\n"), "--decimal", ";")
    assert r.code == 2 and "--decimal" in r.err


# -- layout errors say which option fixes them ---------------------------------------------


def test_wrong_delimiter_names_the_right_one(cli, ws, write) -> None:
    text = "ts;user_id;event\n2026-03-04T10:15:02Z;u1;page_view\n"
    code, err = fails(cli, ws, write("semi.csv", text), "--delimiter", ",")
    assert code == "E_MISSING_COLUMN" and "--delimiter ';'" in err


def test_header_can_be_forced_either_way(cli, ws, write) -> None:
    # a header made of numbers (years) looks like data: --header says otherwise
    text = "ts,user_id,event,2025,2026\n2026-03-04T10:15:02Z,u1,page_view,1,2\n"
    s = ingest(cli, ws, write("years.csv", text), "--header")
    assert s["loaded"] == 1 and s["read"]["header"] is True
    assert json.loads(table(ws, "events").properties[0]) == {"2025": "1", "2026": "2"}
    # names of a header-less file asked of a file whose header was found
    code, err = fails(cli, ws, write("named.csv", HEADER + "\n" + ROWS[0] + "\n"),
                      "--map", "ts=column0")
    assert code == "E_MAP" and "--no-header" in err
    s = ingest(cli, ws, write("bare.csv", ROWS[2] + "\n"), "--no-header",
               "--map", "ts=column0,customer_id=column1,event_type=column2,amount=column3")
    assert s["loaded"] == 1 and s["read"]["header"] is False


@pytest.mark.parametrize("end", ["\n", "\r\n"])
def test_a_spreadsheet_sep_line_names_the_delimiter(cli, ws, write, end) -> None:
    # spreadsheet programs write "sep=;" as the first line; it is no record and no header
    text = end.join(["sep=;", "user_id;timestamp;event;amount",
                     "u1;2026-03-04T10:15:02Z;purchase;12,50", "u2;2026-03-04T10:16:02Z;login;",
                     "u3;2026-03-04T10:17:02Z;login;;extra"]) + end
    s = ingest(cli, ws, write("sheet.csv", text.encode()))
    assert (s["rows_read"], s["loaded"], s["quarantined"]) == (3, 2, {"E_MALFORMED": 1})
    assert (s["read"]["delimiter"], s["read"]["header"], s["read"]["decimal"]) == (";", True, ",")
    assert s["mapping"]["customer_id"] == "user_id"
    assert sorted(table(ws, "events").amount.dropna()) == [12.5]
    # the bad record is named by its line in the file, the sep= line counted
    [(_, _, message)] = quarantine(ws)
    assert message.startswith("line 5: TOO MANY COLUMNS")
    # a delimiter given on the command line wins, and a file without the line is read too
    other = write("plain.csv", b"user_id;timestamp;event\nu9;2026-03-04T10:18:02Z;login\n")
    s = ingest(cli, ws, other, "--delimiter", ";")
    assert s["loaded"] == 1


# -- quoting ------------------------------------------------------------------------------


@pytest.mark.parametrize("end", ["\n", "\r\n"])
def test_quoted_line_breaks_stay_in_one_record(cli, ws, write, end) -> None:
    text = end.join([
        "ts,user_id,event,note",
        '2026-03-04T10:15:02Z,u1,page_view,"first line',
        'second line, with a comma"',
        '2026-03-04T10:16:02Z,u2,page_view,"he said ""hi"""',
        '2026-03-04T10:17:02Z,u3,page_view,"x",extra',
    ]) + end
    s = ingest(cli, ws, write("notes.csv", text.encode()))
    assert (s["rows_read"], s["loaded"], s["quarantined"]) == (3, 2, {"E_MALFORMED": 1})
    notes = sorted(json.loads(p)["note"] for p in table(ws, "events").properties)
    assert notes == [f"first line{end}second line, with a comma", 'he said "hi"']
    # the bad record starts on line 5 of the file (record 4)
    [(_, _, message)] = quarantine(ws)
    assert message.startswith("line 5: TOO MANY COLUMNS")


def test_excel_style_crlf_records_with_lf_inside_cells(cli, ws, write) -> None:
    text = ('ts,user_id,event,note\r\n2026-03-04T10:15:02Z,u1,page_view,"a\nb"\r\n'
            "2026-03-04T10:16:02Z,u2,page_view,plain\r\n")
    s = ingest(cli, ws, write("excel.csv", text.encode()))
    assert (s["rows_read"], s["loaded"]) == (2, 2) and "notes" not in s["read"]


# -- compression --------------------------------------------------------------------------


def test_gzip_and_zstd_files(cli, ws, write, tmp_path: Path) -> None:
    text = HEADER + "\n" + "\n".join(ROWS) + "\n"
    gz = tmp_path / "in" / "web.csv.gz"
    gz.parent.mkdir()
    gz.write_bytes(gzip.compress(text.encode()))
    s = ingest(cli, ws, gz, "--source", "web")
    assert s["loaded"] == 3
    if shutil.which("zstd") is None:
        pytest.skip("the zstd command is needed to write a .zst file")
    plain = write("zweb.csv", text.replace("u1", "z1").replace("u2", "z2"))
    subprocess.run(["zstd", "-q", str(plain), "-o", str(tmp_path / "in" / "web2.csv.zst")],
                   check=True)
    s = ingest(cli, ws, tmp_path / "in" / "web2.csv.zst", "--source", "web")
    assert s["loaded"] == 3 and s["read"]["delimiter"] == ","
    # a directory mixing both is one batch: everything is already there
    s = ingest(cli, ws, tmp_path / "in", "--source", "web")
    assert (s["loaded"], s["duplicates"]) == (0, 6)


@pytest.mark.parametrize("kind", ["jsonl.gz", "csv.gz", "csv.zst", "corrupt.csv.gz"])
def test_a_compressed_file_cut_short_is_refused_whole(cli, ws, tmp_path: Path,
                                                      kind: str) -> None:
    """Beyond the sniffed head, so only the end tells: the engines read such a file as
    if it ended early; ingest refuses it and stores none of its rows."""
    import pyarrow as pa

    n = 20_000
    if kind.startswith("jsonl"):
        text = "".join(json.dumps({"ts": f"2026-01-01T00:00:{i % 60:02d}Z", "user_id": f"u{i}",
                                   "event": "page_view"}) + "\n" for i in range(n))
    else:
        text = HEADER + "\n" + "".join(f"2026-01-01T00:00:{i % 60:02d}Z,u{i},page_view,\n"
                                       for i in range(n))
    path = tmp_path / f"big.{kind.removeprefix('corrupt.')}"
    if kind.endswith(".zst"):
        with pa.output_stream(str(path), compression="zstd") as out:
            out.write(text.encode())
    else:
        path.write_bytes(gzip.compress(text.encode()))
    data = path.read_bytes()
    if kind.startswith("corrupt"):
        at = len(data) * 3 // 4
        path.write_bytes(data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:])
    else:
        path.write_bytes(data[:len(data) * 3 // 4])
    code, err = fails(cli, ws, path, "--source", "web")
    assert code == "E_TRUNCATED", err
    assert "cut short or corrupt" in err and "line " in err
    assert len(table(ws, "events")) == 0 and len(table(ws, "quarantine")) == 0
    assert len(table(ws, "batches")) == 0


def test_concatenated_gzip_members_read_as_one_file(cli, ws, tmp_path: Path) -> None:
    path = tmp_path / "two.csv.gz"
    path.write_bytes(gzip.compress((HEADER + "\n" + ROWS[0] + "\n").encode())
                     + gzip.compress((ROWS[1] + "\n").encode()))
    assert ingest(cli, ws, path, "--source", "web")["loaded"] == 2


# -- the same files on Spark --------------------------------------------------------------


def test_real_files_on_spark(tmp_path: Path, write) -> None:
    """Mixed line endings with a byte-order mark, and a Windows-1252 export with decimal
    commas, read alike on the PySpark backend (zstd is refused there with a hint)."""
    from tests.conftest import NOW
    from tests.parity.conftest import SPARK_TOML, require_spark
    from tests.stages import ingest as run_ingest
    from tribes.errors import InputError
    from tribes.ingest import IngestOptions
    from tribes.store.db import init_workspace

    require_spark()
    (tmp_path / "sws").mkdir()
    (tmp_path / "sws" / "tribes.toml").write_text(SPARK_TOML, encoding="utf-8")
    sws = init_workspace(tmp_path / "sws")
    text = "\ufeff" + HEADER + "\n" + "\r\n".join([*ROWS, ROWS[0] + ",extra"]) + "\r\n"
    s = run_ingest(sws, [str(write("mixed.csv", text.encode()))],
                   IngestOptions(source="web", now=NOW))
    assert (s.rows_read, s.loaded, s.quarantined) == (4, 3, {"E_MALFORMED": 1})
    assert s.mapping["ts"] == "ts"
    # a spreadsheet's sep= line, and day-first dates read without --ts-format
    german = ("sep=;\r\nZeitpunkt;Kunde;Ereignis;Betrag\r\n04.03.2026 10:15;k1;Kauf;12,50 €\r\n"
              "04.03.2026 10:16;k2;Kauf;1.234,50 €\r\n")
    s = run_ingest(sws, [str(write("export.csv", german.encode("cp1252")))], IngestOptions(
        source="pos", now=NOW, event_type="purchase",
        mapping={"ts": "Zeitpunkt", "customer_id": "Kunde", "amount": "Betrag"}))
    assert s.loaded == 2 and (s.read["encoding"], s.read["decimal"]) == ("latin-1", ",")
    assert (s.read["delimiter"], s.read["ts_format"]) == (";", "%d.%m.%Y %H:%M")
    events = table(sws, "events")
    assert sorted(events.amount.dropna()) == [5.0, 12.5, 19.99, 1234.5]
    with pytest.raises(InputError, match="zstd"):
        run_ingest(sws, [str(write("x.csv.zst", b"\x28\xb5\x2f\xfd"))],
                   IngestOptions(source="web", now=NOW))


def test_long_json_records_load_or_are_quarantined_one_by_one(cli, ws, tmp_path: Path) -> None:
    """A first line longer than the sniffed head still gives its keys; a record over the
    limit is quarantined on its own, and no error or message repeats it."""
    from tribes.engine import MAX_RECORD_BYTES

    def rec(i: int, blob: str = "") -> str:
        return json.dumps({"ts": f"2026-01-01T00:00:{i:02d}Z", "user_id": f"u{i}",
                           "event": "page_view", **({"blob": blob} if blob else {})})

    lines = [rec(0, "a" * 300_000), *(rec(i) for i in range(1, 5)),
             rec(5, "b" * (MAX_RECORD_BYTES + 10)), rec(6)]
    path = tmp_path / "long.jsonl"
    path.write_text("\n".join(lines) + "\n")
    s = ingest(cli, ws, path, "--source", "web")
    assert s["rows_read"] == 7 and s["loaded"] == 6 and s["quarantined"] == {"E_MALFORMED": 1}
    events = table(ws, "events")
    blobs = [json.loads(p)["blob"] for p in events.properties]
    assert sorted(len(b) for b in blobs if b) == [300_000]
    q = table(ws, "quarantine")
    assert "longer than 2 MiB" in q.message[0] and "bbbb" not in q.raw[0]


def test_a_file_of_empty_objects_is_quarantined_not_refused(cli, ws, tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("{}\n{}\n")
    s = ingest(cli, ws, path, "--source", "web")
    assert s["rows_read"] == 2 and s["loaded"] == 0 and s["quarantined"] == {"E_NO_ID": 2}
