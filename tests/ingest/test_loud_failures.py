"""A batch that loads nothing, or mostly nothing, says so: a non-zero exit after storing
what it could, and the column that would have loaded the rest."""

from __future__ import annotations

from pathlib import Path

import pytest


def _orders(path: Path, money: str, n: int = 40, bad: int = 0, who: str = "c") -> Path:
    lines = [f"customer_id,ts,{money}"]
    lines += [f"{who}{i},2026-03-{1 + i % 28:02d}T10:00:00Z,{10 + i}.50" for i in range(n)]
    lines += [f"{who}{i},not a time,5" for i in range(bad)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("money", ["dollar_value", "transactionValue"])
def test_purchases_without_an_amount_column_fail_loudly(cli, tmp_path: Path,
                                                        money: str) -> None:
    ws = tmp_path / "ws"
    assert cli("init", ws).code == 0
    data = _orders(tmp_path / "orders.csv", money)
    r = cli("-w", ws, "ingest", data, "--event-type", "purchase", "--json")
    assert r.code == 3, r.out
    res = r.json()
    assert res["error"] == "E_QUARANTINED" and res["loaded"] == 0
    assert res["quarantined"] == {"E_AMOUNT": 40}
    assert f"--map amount={money}" in res["message"]
    assert f"--map amount={money}" in r.err and "E_QUARANTINED" in r.err
    # the hint works
    r = cli("-w", ws, "ingest", data, "--event-type", "purchase", "--map",
            f"amount={money}", "--json")
    assert r.code == 0, r.err
    assert r.json()["loaded"] == 40 and "error" not in r.json()


def test_the_share_that_fails_a_batch_is_a_setting(cli, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert cli("init", ws).code == 0
    data = _orders(tmp_path / "orders.csv", "amount", n=30, bad=10)  # 25% bad
    r = cli("-w", ws, "ingest", data, "--event-type", "purchase", "--json")
    assert r.code == 0 and r.json()["loaded"] == 30
    toml = ws / "tribes.toml"
    toml.write_text(toml.read_text().replace("max_quarantined_share = 0.5",
                                             "max_quarantined_share = 0.2"))
    more = _orders(tmp_path / "more.csv", "amount", n=30, bad=10, who="d")
    r = cli("-w", ws, "ingest", more, "--event-type", "purchase", "--json")
    assert r.code == 3 and r.json()["error"] == "E_QUARANTINED"
    assert r.json()["loaded"] == 30  # what could be stored, was
    assert "tribes quarantine show" in r.json()["message"]


def test_money_like_column_names() -> None:
    from tribes.ingest.loader import money_like

    assert money_like(["customer_id", "dollar_value", "transactionValue", "TotalPaid",
                       "valid", "ts", "order_no"]) == [
        "dollar_value", "transactionValue", "TotalPaid"]


def test_a_header_line_repeated_inside_a_file_is_named(cli, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert cli("init", ws).code == 0
    part = "user_id,timestamp,event\nu1,2026-03-01T10:00:00Z,page_view\n"
    data = tmp_path / "joined.csv"
    data.write_text(part + part.replace("u1", "u2") + part.replace("u1", "u3"))
    r = cli("-w", ws, "ingest", data, "--json")
    assert r.code == 0, r.err
    assert r.json()["loaded"] == 3 and r.json()["quarantined"] == {"E_HEADER": 2}
    shown = cli("-w", ws, "quarantine", "show", "--json").json()
    rows = shown.get("rows") or shown.get("quarantine") or []
    assert rows and all("header line again" in q["message"] for q in rows), shown


def test_reingesting_a_file_quarantines_its_bad_rows_once(cli, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert cli("init", ws).code == 0
    data = _orders(tmp_path / "orders.csv", "amount", n=20, bad=6)
    with data.open("a") as f:  # and a line the reader cannot parse
        f.write('c99,"2026-03-01T10:00:00Z,5\n')
    first = cli("-w", ws, "ingest", data, "--event-type", "purchase", "--json").json()
    assert first["loaded"] == 20 and first["quarantined_total"] == 7
    again = cli("-w", ws, "ingest", data, "--event-type", "purchase", "--json").json()
    assert again["quarantined_total"] == 0 and again["loaded"] == 0
    assert again["duplicates"] == 27 and again["already_quarantined"] == 7
    assert again["rows_read"] == again["loaded"] + again["duplicates"] + again[
        "quarantined_total"]
    st = cli("-w", ws, "status", "--json").json()
    assert st["tables"]["quarantine"] == 7 and st["ingest_totals"]["quarantined"] == 7
    assert sum(st["quarantine"].values()) == 7
    shown = cli("-w", ws, "quarantine", "show", "--limit", "100", "--json").json()
    rows = shown.get("rows") or shown.get("quarantine") or []
    assert len(rows) == 7


def test_no_events_of_a_type_mentions_those_in_quarantine(cli, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert cli("init", ws).code == 0
    data = tmp_path / "clicks.csv"
    data.write_text("user_id,timestamp,event\n" + "".join(
        f"u{i},2026-03-01T10:0{i}:00Z,{'purchase' if i % 2 else 'page_view'}\n"
        for i in range(8)))
    r = cli("-w", ws, "ingest", data, "--json")  # purchases without an amount
    assert r.json()["quarantined"] == {"E_AMOUNT": 4}
    r = cli("-w", ws, "journeys", "funnel", "--steps", "page_view,purchase", "--json")
    assert r.code != 0 and r.json()["error"] == "E_STEPS"
    assert "4 'purchase' rows are in quarantine (E_AMOUNT: 4)" in r.json()["message"]


def _with_policy(ws: Path, policy: str) -> None:
    toml = ws / "tribes.toml"
    toml.write_text(toml.read_text() + f'\n[missing.events]\namount = "{policy}"\n')


def test_purchases_without_an_amount_can_be_kept(cli, tmp_path: Path) -> None:
    """amount = "flag": purchases with no amount are kept (orders and funnels count
    them); monetary and aov use the known amounts only."""
    import duckdb

    ws = tmp_path / "ws"
    assert cli("init", ws).code == 0
    _with_policy(ws, "flag")
    data = tmp_path / "clicks.csv"
    rows = ["user_id,timestamp,event,amount"]
    # u0: two priced orders (10, 30) and one without; u1: one unpriced order only
    for i, (user, event, amount) in enumerate([
            ("u0", "page_view", ""), ("u0", "purchase", "10"), ("u0", "purchase", "30"),
            ("u0", "purchase", ""), ("u1", "page_view", ""), ("u1", "purchase", "")]):
        rows.append(f"{user},2026-03-01T10:0{i}:00Z,{event},{amount}")
    data.write_text("\n".join(rows) + "\n")
    r = cli("-w", ws, "ingest", data, "--json")
    assert r.code == 0, r.err
    res = r.json()
    assert res["loaded"] == 6 and res["quarantined"] == {}
    assert res["missing"]["amount"]["missing"] == 2  # the purchases, not the page views
    assert cli("-w", ws, "features", "--json").code == 0
    with duckdb.connect(str(ws / "tribes.duckdb"), read_only=True) as con:
        f = con.sql("select frequency, monetary, aov from customer_features "
                    "order by frequency desc").fetchall()
    assert f == [(3, 40.0, 20.0), (1, 0.0, None)]
    funnel = cli("-w", ws, "journeys", "funnel", "--steps", "page_view,purchase",
                 "--json").json()
    assert [s["count"] for s in funnel["groups"][0]["steps"]] == [2, 2]


def test_a_constant_amount_fills_purchases_only(cli, tmp_path: Path) -> None:
    import duckdb

    ws = tmp_path / "ws"
    assert cli("init", ws).code == 0
    _with_policy(ws, "constant:0")
    data = tmp_path / "clicks.csv"  # no amount column at all
    data.write_text("user_id,timestamp,event\nu0,2026-03-01T10:00:00Z,page_view\n"
                    "u0,2026-03-01T10:01:00Z,purchase\nu1,2026-03-01T10:02:00Z,purchase\n")
    r = cli("-w", ws, "ingest", data, "--json")
    assert r.code == 0, r.err
    assert r.json()["loaded"] == 3
    assert r.json()["missing"]["amount"] == {"policy": "constant:0", "missing": 2,
                                             "imputed": 2, "value": "0"}
    with duckdb.connect(str(ws / "tribes.duckdb"), read_only=True) as con:
        got = con.sql("select event_type, amount from events order by ts").fetchall()
    assert got == [("page_view", None), ("purchase", 0.0), ("purchase", 0.0)]


def test_a_file_without_event_types_is_quarantined_not_a_crash(cli, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert cli("init", ws).code == 0
    data = tmp_path / "visits.csv"
    data.write_text("ts,user_id\n2026-01-01T00:00:00Z,u1\n2026-01-02T00:00:00Z,u2\n")
    r = cli("-w", ws, "ingest", data, "--json")
    assert r.code == 3 and "Traceback" not in r.err
    assert r.json()["quarantined"] == {"E_NO_EVENT_TYPE": 2}
