"""End-to-end ingest behavior on small files: every row accounted for, dedupe, kinds."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import NOW, table
from tests.stages import ingest
from tribes.errors import InputError
from tribes.ingest import IngestOptions
from tribes.privacy.pseudonyms import pseudonym
from tribes.store.db import open_engine

WEB = """timestamp,event_name,user_id,cookie_id,amount,state,email,page
2026-03-04T10:15:02Z,Page View,u1,c1,,NY,alice@example.com,/home
2026-03-04T10:16:02Z,Add To Cart,u1,c1,,N.Y.,alice@example.com,/p/1
2026-03-04T10:16:02Z,Add To Cart,u1,c1,,N.Y.,alice@example.com,/p/1
not-a-date,purchase,u2,,10,new york,,/x
2026-03-04T10:17:02Z,purchase,u1,c1,-5,ca,,/checkout
2026-03-04T10:18:02Z,purchase,u1,c1,19.99,ca,,/checkout
2026-03-04T10:18:02Z,page_view,,,,ca,,/checkout
2031-03-04T10:18:02Z,page_view,u3,,,ca,,/future
,page_view,u3,,,ca,,/nots
2026-03-04T10:19:02Z,purchase,u3,,abc,ca,,/bad-amount
2026-03-04T10:19:02Z,,u3,,,ca,,/no-type
2026-03-04T10:18:02Z,page_view,u3,,,ca,,/future,extra
"""


def opts(**kw: object) -> IngestOptions:
    return IngestOptions(now=NOW, **kw)  # type: ignore[arg-type]


def test_every_row_is_loaded_duplicate_or_quarantined(ws, write) -> None:
    s = ingest(ws, [str(write("web.csv", WEB))], opts(source="web"))
    assert s.rows_read == 12
    assert s.quarantined == {"E_AMOUNT": 2, "E_MALFORMED": 1, "E_NO_EVENT_TYPE": 1,
                             "E_NO_ID": 1, "E_TS_FUTURE": 1, "E_TS_MISSING": 1,
                             "E_TS_PARSE": 1}
    assert s.loaded == 4 and s.duplicates == 0
    assert s.loaded + s.duplicates + s.n_quarantined == s.rows_read
    events = table(ws, "events")
    # the two identical "Add To Cart" lines stay two events
    assert sorted(events.event_type) == ["add_to_cart", "add_to_cart", "page_view", "purchase"]
    assert set(events.region) == {"New York", "California"}
    assert events.event_id.is_unique
    q = table(ws, "quarantine")
    assert len(q) == 8
    assert set(q.batch_id) == {s.batch_id}
    msg = dict(zip(q.reason, q.message, strict=False))
    assert "'not-a-date'" in msg["E_TS_PARSE"]
    assert "line 13" in msg["E_MALFORMED"]
    batches = table(ws, "batches")
    assert batches.loc[0, "rows_read"] == 12 and batches.loc[0, "quarantined"] == 8
    # the time of each step is reported, and the steps account for the whole run (the
    # data-quality checks are the caller's: ops.checked_ingest.ingest_checked)
    assert list(s.steps) == ["reading", "parsing", "scanning", "quarantining", "loading",
                             "cleaning up"]
    assert all(v >= 0 for v in s.steps.values())
    assert sum(s.steps.values()) <= s.seconds + 1e-3


def test_reingest_loads_nothing_and_counts_duplicates(ws, write) -> None:
    path = str(write("web.csv", WEB))
    first = ingest(ws, [path], opts(source="web"))
    before = table(ws, "events").sort_values("event_id").reset_index(drop=True)
    again = ingest(ws, [path], opts(source="web"))
    # the bad rows sit in the quarantine already: duplicates too, not quarantined again
    assert first.n_quarantined > 0 and again.n_quarantined == 0
    assert again.loaded == 0 and again.duplicates == first.loaded + first.n_quarantined
    assert again.already_quarantined == first.n_quarantined
    after = table(ws, "events").sort_values("event_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(before, after)


def test_source_event_ids_dedupe_within_the_file_and_against_the_store(ws, write) -> None:
    text = ("id,ts,type,device_id\n"
            "e1,2026-01-01T00:00:00Z,app_open,d1\n"
            "e1,2026-01-01T00:00:00Z,app_open,d1\n"
            "e2,2026-01-01T00:01:00Z,screen_view,d1\n")
    s = ingest(ws, [str(write("a.csv", text))],
               opts(source="app", mapping={"event_id": "id", "event_type": "type"}))
    assert (s.loaded, s.duplicates) == (2, 1)
    more = ("id,ts,type,device_id\n"
            "e2,2026-01-01T00:01:00Z,screen_view,d1\n"
            "e3,2026-01-01T00:02:00Z,screen_view,d1\n")
    s = ingest(ws, [str(write("b.csv", more))],
               opts(source="app", mapping={"event_id": "id", "event_type": "type"}))
    assert (s.loaded, s.duplicates) == (1, 1)
    assert sorted(table(ws, "events").event_id) == ["e1", "e2", "e3"]


def test_ids_are_pseudonymized_with_the_workspace_key(ws, write) -> None:
    ingest(ws, [str(write("web.csv", WEB))], opts(source="web"))
    events = table(ws, "events")
    key = ws.secret()
    assert set(events.customer_id) == {pseudonym("u1", key)}
    assert set(events.anonymous_id) == {pseudonym("c1", key)}
    props = [json.loads(p) for p in events.properties]
    assert all("ip" not in p for p in props)
    assert {p["email"] for p in props if p["email"]} == {pseudonym("alice@example.com", key)}


def test_personal_data_is_hashed_once_per_value_like_an_id(ws, write) -> None:
    """Hashed personal-data columns share the batch's pseudonym lookup with the ids: each
    row gets the HMAC of its cleaned value (spaces trimmed, null markers null), also when
    the value is an id elsewhere in the batch."""
    text = ("timestamp,event_name,user_id,email\n"
            "2026-03-04T10:15:02Z,page_view,u1, bob@example.com \n"
            "2026-03-04T10:16:02Z,page_view,u1,bob@example.com\n"
            "2026-03-04T10:17:02Z,page_view,u2,N/A\n"
            "2026-03-04T10:18:02Z,page_view,u2,u1\n"
            "2026-03-04T10:19:02Z,page_view,u3,\n")
    ingest(ws, [str(write("p.csv", text))], opts(source="web"))
    events = table(ws, "events").sort_values("ts")
    key = ws.secret()
    emails = [json.loads(p)["email"] for p in events.properties]
    bob = pseudonym("bob@example.com", key)
    assert emails == [bob, bob, None, pseudonym("u1", key), None]
    assert list(events.customer_id) == [pseudonym(u, key) for u in
                                        ("u1", "u1", "u2", "u2", "u3")]


def test_constant_event_type_mapping_and_typed_parquet(ws, tmp_path: Path) -> None:
    path = tmp_path / "purchases.parquet"
    pq.write_table(pa.table({
        "sold_at": pa.array([pd.Timestamp("2026-02-01 10:00", tz="UTC"),
                             pd.Timestamp("2026-02-02 11:00", tz="UTC"), None],
                            type=pa.timestamp("us", tz="UTC")),
        "member_no": ["m1", "m2", "m3"],
        "order_id": ["o1", "o2", "o3"],
        "amount": [10.5, -1.0, 3.0],
        "quantity": pa.array([1, 2, 3], type=pa.int64()),
    }), path)
    s = ingest(ws, [str(path)], opts(source="pos", event_type="Purchase",
                                     mapping={"ts": "sold_at", "customer_id": "member_no"}))
    assert s.loaded == 1 and s.quarantined == {"E_AMOUNT": 1, "E_TS_MISSING": 1}
    ev = table(ws, "events").iloc[0]
    assert ev.event_type == "purchase" and ev.amount == 10.5 and ev.quantity == 1
    assert ev.ts == pd.Timestamp("2026-02-01 10:00", tz="UTC")
    assert ev.source == "pos" and ev.order_id == "o1"


def test_jsonl_gz_with_malformed_lines(ws, tmp_path: Path) -> None:
    lines = [json.dumps({"eventId": "a1", "eventTime": 1772619302000, "eventName": "appOpen",
                         "installId": "i1", "extra": {"k": 1}}),
             "this is not json",
             "",
             json.dumps({"eventId": "a2", "eventTime": 1772619303000, "eventName": "login",
                         "installId": "i1", "userId": "u1"})]
    path = tmp_path / "app.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    s = ingest(ws, [str(path)], opts(source="app"))
    assert (s.rows_read, s.loaded, s.quarantined) == (3, 2, {"E_MALFORMED": 1})
    ev = table(ws, "events").sort_values("event_id")
    assert ev.event_type.tolist() == ["app_open", "login"]
    assert json.loads(ev.properties.iloc[0])["extra"] == '{"k":1}'


def test_latin1_semicolon_csv_and_ts_format_and_tz(ws, write) -> None:
    text = "Zeit;Kunde;Ereignis;Stadt\n04/03/2026 10:15;k1;Seitenaufruf;Zürich\n"
    path = write("de.csv", text.encode("latin-1"))
    s = ingest(ws, [str(path)], opts(source="web", ts_format="%d/%m/%Y %H:%M",
                                     tz="Europe/Zurich",
                                     mapping={"ts": "Zeit", "customer_id": "Kunde",
                                              "event_type": "Ereignis", "city": "Stadt"}))
    assert s.loaded == 1
    ev = table(ws, "events").iloc[0]
    assert ev.city == "Zürich"
    assert ev.ts == pd.Timestamp("2026-03-04 09:15", tz="UTC")


def test_whitespace_separated_text_with_and_without_header(ws, write) -> None:
    from tribes.ingest.sniff import WHITESPACE, sniff_delimiter

    body = (" 00004 0001 19970101  2   29.33\n"
            " 00004 0001 19970118  2   29.73\n"
            "00021\t0002   19970101 3 63.34   \n"
            " 00021 0002 19970102  1\n"          # a field short: malformed
            "\n")
    assert sniff_delimiter(body) == WHITESPACE
    path = write("log.txt", body)
    s = ingest(ws, [str(path)], opts(source="pos", event_type="purchase", header=False,
                                     ts_format="%Y%m%d",
                                     mapping={"customer_id": "column0", "ts": "column2",
                                              "quantity": "column3", "amount": "column4"}))
    assert (s.rows_read, s.loaded, s.quarantined) == (4, 3, {"E_MALFORMED": 1})
    ev = table(ws, "events").sort_values(["ts", "amount"])
    assert list(ev.amount) == [29.33, 63.34, 29.73] and list(ev.quantity) == [2, 3, 2]
    assert ev.ts.iloc[0] == pd.Timestamp("1997-01-01", tz="UTC")
    headed = write("headed.txt", "when   who  what\n2026-01-01T00:00:00Z  u1  page_view\n")
    s = ingest(ws, [str(headed)], opts(source="web", mapping={"ts": "when",
                                                              "customer_id": "who",
                                                              "event_type": "what"}))
    assert s.loaded == 1


def test_glob_and_directory_inputs_are_one_batch(ws, tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    for i in range(3):
        (d / f"part-{i}.csv").write_text(
            f"ts,user_id,event\n2026-01-0{i + 1}T00:00:00Z,u{i},page_view\n")
    s = ingest(ws, [str(d / "part-*.csv")], opts(source="web"))
    assert s.loaded == 3 and len(s.files) == 3
    s = ingest(ws, [str(d)], opts(source="web"))
    assert s.loaded == 0 and s.duplicates == 3


def test_whitelist_quarantines_unknown_types(tmp_path: Path, write) -> None:
    from tribes.store.db import init_workspace
    from tribes.workspace import open_workspace

    path = tmp_path / "w"
    init_workspace(path)
    cfg = (path / "tribes.toml").read_text().replace(
        "event_types = []", 'event_types = ["page_view", "Purchase"]')
    (path / "tribes.toml").write_text(cfg)
    ws = open_workspace(path)
    text = "ts,user_id,event,amount\n2026-01-01,u1,page_view,\n2026-01-01,u1,hover,\n" \
           "2026-01-01,u1,purchase,5\n"
    s = ingest(ws, [str(write("e.csv", text))], opts(source="web"))
    assert s.loaded == 2 and s.quarantined == {"E_EVENT_TYPE": 1}


def test_missing_value_policies(tmp_path: Path, write) -> None:
    from tribes.store.db import init_workspace
    from tribes.workspace import open_workspace

    path = tmp_path / "w"
    init_workspace(path)
    with (path / "tribes.toml").open("a") as fh:
        fh.write('\n[missing.events]\nchannel = "constant:unknown"\ncategory = "drop"\n'
                 'device = "mode"\n\n[missing.customers]\nage = "median"\n')
    ws = open_workspace(path)
    text = ("ts,user_id,event,channel,category,device\n"
            "2026-01-01,u1,page_view,,books,mobile\n"
            "2026-01-01,u2,page_view,email,,mobile\n"
            "2026-01-01,u3,page_view,email,toys,\n"
            "2026-01-01,u4,page_view,Email,toys,mobile\n"
            "2026-01-01,u5,page_view,email,toys,desktop\n")
    s = ingest(ws, [str(write("e.csv", text))], opts(source="web"))
    assert s.loaded == 4 and s.quarantined == {"E_MISSING_VALUE": 1}
    ev = table(ws, "events").sort_values("ts")
    assert sorted(ev.channel) == ["email", "email", "email", "unknown"]
    assert sorted(ev.device) == ["desktop", "mobile", "mobile", "mobile"]
    assert s.missing["channel"] == {"policy": "constant:unknown", "missing": 1, "imputed": 1,
                                    "value": "unknown"}
    from tribes.store.status import workspace_status

    with open_engine(ws) as engine:
        reported = workspace_status(engine)["missing"]["events"]
    assert reported["channel"] == {"policy": "constant:unknown", "missing": 1, "imputed": 1}
    assert reported["category"]["policy"] == "drop"
    cust = "customer_id,age\nu1,20\nu2,\nu3,40\n"
    s = ingest(ws, [str(write("c.csv", cust))], opts(kind="customers"))
    c = table(ws, "customers").sort_values("customer_id")
    assert s.missing["age"]["value"] == 30
    assert set(c.age_band) == {"18-24", "25-34", "35-44"}


def test_customers_replace_changed_profiles_and_skip_identical(ws, write) -> None:
    text = ("customer_id,email,first_name,signup_date,country,state,age\n"
            "c1,a@x.com,Ann,2025-01-01,USA,N.Y.,33\n"
            "c2,b@x.com,Bob,2025-02-01,u.s.,tx,71\n")
    s = ingest(ws, [str(write("c.csv", text))], opts(kind="customers"))
    assert s.loaded == 2
    text2 = text.replace("tx,71", "ca,72") + "c3,c@x.com,Cy,2025-03-01,Canada,,\n"
    s = ingest(ws, [str(write("c2.csv", text2))], opts(kind="customers"))
    assert (s.loaded, s.duplicates) == (2, 1)
    c = table(ws, "customers").sort_values("signup_ts").reset_index(drop=True)
    assert len(c) == 3
    assert c.country.tolist() == ["United States", "United States", "Canada"]
    assert c.region.tolist()[:2] == ["New York", "California"]
    assert c.age_band.tolist()[:2] == ["25-34", "65+"]
    assert all("first_name" not in (p or "") for p in c.properties)


def test_consents_log_and_bad_values(ws, write) -> None:
    text = ("customer_id,purpose,granted,ts\n"
            "c1,analytics,yes,2026-01-01\nc1,analytics,no,2026-02-01\n"
            "c2,Analytics,TRUE,2026-01-01\nc3,analytics,maybe,2026-01-01\n")
    s = ingest(ws, [str(write("k.csv", text))], opts(kind="consents"))
    assert s.loaded == 3 and s.quarantined == {"E_CONSENT_VALUE": 1}
    s = ingest(ws, [str(write("k.csv", text))], opts(kind="consents"))
    # the bad row is held in the quarantine already: a duplicate as well
    assert s.loaded == 0 and s.duplicates == 4 and s.already_quarantined == 1
    c = table(ws, "consents")
    assert set(c.purpose) == {"analytics"}


def test_bad_inputs_raise_clear_errors(ws, write, tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        ingest(ws, [str(tmp_path / "missing.csv")], opts())
    assert err.value.code == "E_NO_INPUT"
    with pytest.raises(InputError) as err:
        ingest(ws, [str(write("x.xlsx", "a"))], opts())
    assert err.value.code == "E_FORMAT"
    with pytest.raises(InputError) as err:
        ingest(ws, [str(write("e.csv", ""))], opts())
    assert err.value.code == "E_EMPTY"
    with pytest.raises(InputError) as err:
        ingest(ws, [str(write("t.csv", "ts,user_id\n2026-01-01,u\n"))], opts(tz="Mars/Base"))
    assert err.value.code == "E_TZ"
