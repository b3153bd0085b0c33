"""Repairing quarantined rows: replay, a flat export fixed by hand, drop, accounting.

The reference for a replay is the other route to the same data: ingesting the original
file with the new options in a copy of the workspace made before anything was loaded
(same secret). Both must store the same events and, after prep, the same identities.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from tests.conftest import table
from tests.stages import context, ingest, replay
from tribes.ingest import IngestOptions
from tribes.ingest.replay import drop_quarantined
from tribes.store.db import init_workspace, open_engine
from tribes.store.status import accounting
from tribes.workspace import Workspace, open_workspace

HEADER = "ts,user_id,cookie,event,amount,email,name,page"
GOOD = [
    "2026-03-01T10:00:00Z,u1,k1,page_view,,a@x.com,Ann,home",
    "2026-03-01T10:05:00Z,u1,k1,purchase,20.5,a@x.com,Ann,checkout",
    "2026-03-02T09:00:00Z,,k2,page_view,,,,home",
    "2026-03-02T09:10:00Z,u2,,add_to_cart,,,,cart",
]
BAD = [
    # a purchase without an amount: the only row that links cookie k2 to u2
    "2026-03-02T09:20:00Z,u2,k2,purchase,,b@x.com,Bo,checkout",
    # u3 is seen only in rows without an amount, twice the very same record
    "2026-03-03T11:00:00Z,u3,,purchase,,,,checkout",
    "2026-03-03T11:00:00Z,u3,,purchase,,,,checkout",
    # no id at all, and a negative amount: no option makes these load
    "2026-03-04T12:00:00Z,,,page_view,,,,home",
    "2026-03-04T12:00:00Z,u1,k1,purchase,-5,,,refund",
]
NOW = pd.Timestamp("2026-04-01", tz="UTC").to_pydatetime()


def _twins(tmp_path: Path) -> tuple[Workspace, Workspace]:
    """Two workspaces with the same secret and nothing loaded."""
    init_workspace(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    return open_workspace(tmp_path / "a"), open_workspace(tmp_path / "b")


def _file(tmp_path: Path, rows: list[str], name: str = "web.csv") -> str:
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return str(path)


def _events(ws: Workspace) -> pd.DataFrame:
    ev = table(ws, "events").drop(columns=["batch_id", "ingested_at"])
    return ev.sort_values("event_id").reset_index(drop=True)


def _identities(ws: Workspace) -> pd.DataFrame:
    from tribes.prep.prep_stage import run_prep

    with open_engine(ws) as engine:
        run_prep(context(ws, engine))
    ids = table(ws, "identities")
    return ids.sort_values(list(ids.columns)).reset_index(drop=True)


def _open(ws: Workspace) -> dict[str, int]:
    with open_engine(ws) as engine:
        q = engine.table("quarantine")
        q = q.filter(q.status.isnull())
        df = engine.execute(q.group_by("reason").aggregate(n=q.count()))
    return dict(zip(df["reason"], df["n"], strict=True))


def _balanced(ws: Workspace) -> dict[str, int]:
    with open_engine(ws) as engine:
        acc = accounting(engine)
    assert acc["read"] == acc["loaded"] + acc["duplicates"] + acc["open"] + acc["dropped"], acc
    return acc


def test_replay_gives_what_ingesting_the_original_with_the_new_options_gives(
        tmp_path: Path) -> None:
    direct, repaired = _twins(tmp_path)
    src = _file(tmp_path, GOOD + BAD)
    s = ingest(direct, [src], IngestOptions(source="web", now=NOW,
                                            missing={"amount": "flag"}))
    assert s.loaded == 7 and s.quarantined == {"E_AMOUNT": 1, "E_NO_ID": 1}

    first = ingest(repaired, [src], IngestOptions(source="web", now=NOW))
    assert first.loaded == 4 and first.quarantined == {"E_AMOUNT": 4, "E_NO_ID": 1}
    result = replay(repaired, IngestOptions(now=NOW, missing={"amount": "flag"}))
    assert result.selected == 5 and result.replayed == 5
    assert result.loaded == 3 and result.still_quarantined == {"E_AMOUNT": 1, "E_NO_ID": 1}

    pd.testing.assert_frame_equal(_events(repaired), _events(direct))
    assert _open(repaired) == _open(direct) == {"E_AMOUNT": 1, "E_NO_ID": 1}
    ids = _identities(repaired)
    pd.testing.assert_frame_equal(ids, _identities(direct))
    # the bug this replaces: u2 split in two (its pseudonym hashed a second time)
    keys = ids.groupby("customer_key").size()
    assert len(keys) == 3  # u1 (with k1), u2 (with k2), u3
    acc = _balanced(repaired)
    assert acc == {"read": 9, "loaded": 7, "duplicates": 0, "open": 2, "dropped": 0,
                   "replayed": 5}
    # a replay of what is left loads nothing and keeps the books
    again = replay(repaired, IngestOptions(now=NOW))
    assert again.loaded == 0 and again.still_quarantined == {"E_AMOUNT": 1, "E_NO_ID": 1}
    assert _open(repaired) == {"E_AMOUNT": 1, "E_NO_ID": 1}
    _balanced(repaired)


def test_replay_with_a_timestamp_format_keeps_the_customer(tmp_path: Path) -> None:
    direct, repaired = _twins(tmp_path)
    rows = [*GOOD, "15.03.2026 10:00,u1,k1,page_view,,,,home",
            "16.03.2026 08:30,u4,,page_view,,,,home"]
    src = _file(tmp_path, rows)
    s = ingest(repaired, [src], IngestOptions(source="web", now=NOW))
    assert s.quarantined == {"E_TS_PARSE": 2}
    r = replay(repaired, IngestOptions(now=NOW, ts_format="%d.%m.%Y %H:%M"),
               reason="E_TS_PARSE")
    assert r.loaded == 2 and not r.still_quarantined
    ev = table(repaired, "events")
    late = ev[ev.ts >= pd.Timestamp("2026-03-15", tz="UTC")].sort_values("ts")
    assert [str(t) for t in late.ts] == ["2026-03-15 10:00:00+00:00",
                                         "2026-03-16 08:30:00+00:00"]
    u1 = set(ev[ev.event_type == "purchase"].customer_id)  # only u1 bought
    assert late.customer_id.iloc[0] in u1  # the same pseudonym as u1's other events
    # and the same as ingesting those rows where the format is given from the start
    ingest(direct, [_file(tmp_path, rows[-2:], "late.csv")],
           IngestOptions(source="web", now=NOW, ts_format="%d.%m.%Y %H:%M"))
    assert set(table(direct, "events").customer_id) == set(late.customer_id)


def test_a_flat_export_fixed_by_hand_loads_without_splitting_anyone(
        tmp_path: Path, cli) -> None:
    direct, repaired = _twins(tmp_path)
    src = _file(tmp_path, GOOD + BAD)
    fixed_rows = [r.replace("purchase,,", "purchase,7,") for r in GOOD + BAD]
    ingest(direct, [_file(tmp_path, fixed_rows, "fixed_web.csv")],
           IngestOptions(source="web", now=NOW))
    ingest(repaired, [src], IngestOptions(source="web", now=NOW))

    out = tmp_path / "bad_rows.csv"
    r = cli("-w", repaired.path, "quarantine", "export", "--reason", "E_AMOUNT", "--out", out,
            "--json")
    assert r.code == 0, r.err
    flat = pd.read_csv(out, dtype=str, keep_default_na=False)
    # a flat file: the source's own columns, no JSON; ids and email as pseudonyms
    assert {"ts", "user_id", "cookie", "event", "amount", "email", "page"} <= set(flat.columns)
    assert "name" not in flat.columns  # personal data that is dropped stays dropped
    assert "u2" not in set(flat.user_id) and "b@x.com" not in set(flat.email)
    assert len(flat) == 4
    # fixed in a spreadsheet: the missing amounts filled in
    flat.loc[flat.amount == "", "amount"] = "7"
    flat.to_csv(out, index=False)
    r = cli("-w", repaired.path, "ingest", out, "--json")
    assert r.code == 0, r.err
    res = r.json()
    assert res["source"] == "web"  # the export names its source
    assert res["loaded"] == 3 and res["replayed"] == 4
    assert res["quarantined"] == {"E_AMOUNT": 1}  # the negative amount, still wrong

    # the same events (ids and pseudonyms) as the file fixed before its first ingest;
    # fixed_web.csv differs only in the 3 amounts and the derived ids of those rows
    got, want = _events(repaired), _events(direct)
    assert set(got.customer_id.dropna()) == set(want.customer_id.dropna())
    assert sorted(got.amount.dropna()) == sorted(want.amount.dropna())
    assert len(_identities(repaired).groupby("customer_key")) == 3
    _balanced(repaired)
    # ingesting the fixed file again loads nothing
    r = cli("-w", repaired.path, "ingest", out, "--json")
    assert r.json()["loaded"] == 0
    _balanced(repaired)


def test_an_id_typed_into_the_export_by_hand_is_hashed(tmp_path: Path, cli) -> None:
    ws = open_workspace(init_workspace(tmp_path / "w").path)
    ingest(ws, [_file(tmp_path, GOOD + BAD)], IngestOptions(source="web", now=NOW))
    out = tmp_path / "no_id.csv"
    assert cli("-w", ws.path, "quarantine", "export", "--reason", "E_NO_ID", "--out",
               out).code == 0
    flat = pd.read_csv(out, dtype=str, keep_default_na=False)
    flat["user_id"] = "u1"
    flat.to_csv(out, index=False)
    r = cli("-w", ws.path, "ingest", out, "--json")
    assert r.code == 0 and r.json()["loaded"] == 1, r.out
    ev = table(ws, "events")
    assert "u1" not in set(ev.customer_id)
    assert ev.customer_id.nunique() == 2  # u1 and u2: the new row is u1's


def test_an_old_quarantine_export_is_refused_with_the_way_out(tmp_path: Path, cli) -> None:
    ws = init_workspace(tmp_path / "w")
    old = tmp_path / "old.csv"
    old.write_text("batch_id,kind,source,file,reason,message,raw,quarantined_at\n"
                   'b1,events,web,f.csv,E_AMOUNT,purchase without an amount,"{}",'
                   "2026-03-01 00:00:00\n")
    r = cli("-w", ws.path, "ingest", old)
    assert r.code != 0 and "E_QUARANTINE_EXPORT" in r.err and "quarantine replay" in r.err


def test_drop_show_and_status_count_open_rows_with_the_resolved_beside(
        tmp_path: Path, cli) -> None:
    ws = open_workspace(init_workspace(tmp_path / "w").path)
    ingest(ws, [_file(tmp_path, GOOD + BAD)], IngestOptions(source="web", now=NOW))
    r = cli("-w", ws.path, "quarantine", "drop", "--why", "x")
    assert r.code != 0 and "E_DROP" in r.err  # no filter, no --all
    assert drop_quarantined(ws, "bot traffic", reason="E_NO_ID") == 1
    replay(ws, IngestOptions(now=NOW, missing={"amount": "flag"}), reason="E_AMOUNT")
    acc = _balanced(ws)
    assert acc["open"] == 1 and acc["dropped"] == 1 and acc["replayed"] == 4

    r = cli("-w", ws.path, "quarantine", "show", "--json")
    res = r.json()
    assert res["total"] == 1 and res["resolved"] == {"replayed": 4, "dropped": 1}
    r = cli("-w", ws.path, "quarantine", "show", "--status", "dropped", "--json")
    assert [row["note"] for row in r.json()["rows"]] == ["bot traffic"]
    st = cli("-w", ws.path, "status", "--json").json()
    assert st["quarantine"] == {"E_AMOUNT": 1}
    assert st["quarantine_resolved"] == {"replayed": 4, "dropped": 1}
    assert st["ingest_totals"]["quarantined"] == 1
    r = cli("-w", ws.path, "status")
    assert "1 dropped" in " ".join(r.out.split())


def test_forget_erases_the_stored_record(tmp_path: Path) -> None:
    from tribes.ops.erasure import forget

    ws = open_workspace(init_workspace(tmp_path / "w").path)
    ingest(ws, [_file(tmp_path, GOOD + BAD)], IngestOptions(source="web", now=NOW))
    with open_engine(ws) as engine:
        forget(ws, engine, "u3")
        q = engine.execute(engine.table("quarantine"))
    assert len(q) == 3  # u3's two rows are gone, with their records
    # nothing left names u3's pseudonym
    from tribes.privacy.pseudonyms import pseudonym

    pid = pseudonym("u3", ws.secret())
    assert not q.record.fillna("").str.contains(pid).any()


def test_a_workspace_from_before_replay_gets_the_new_columns(tmp_path: Path) -> None:
    import ibis

    ws = open_workspace(init_workspace(tmp_path / "w").path)
    ingest(ws, [_file(tmp_path, GOOD + BAD)], IngestOptions(source="web", now=NOW))
    old_q = ["batch_id", "kind", "source", "file", "reason", "message", "raw",
             "quarantined_at"]
    with open_engine(ws) as engine:
        for name, keep in (("quarantine", old_q), ("batches", None)):
            t = engine.table(name)
            cols = keep or [c for c in t.columns if c != "replayed"]
            df = engine.execute(t.select(*cols))
            engine.con.drop_table(name)
            engine.con.create_table(name, ibis.memtable(df))
    # opened again: the columns are there, the old rows open and not replayable
    r = replay(ws, IngestOptions(now=NOW, missing={"amount": "flag"}))
    assert r.selected == 5 and r.replayed == 0
    assert r.not_replayable == {"E_AMOUNT": 4, "E_NO_ID": 1}
    _balanced(ws)


def test_the_readme_worked_example(tmp_path: Path, cli) -> None:
    """README, "Repairing quarantined rows": the same file, commands and figures."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Repairing quarantined rows")[1].split("\n## ")[0]
    csv_text = section.split("```\n")[1].split("```")[0]
    orders = tmp_path / "orders.csv"
    orders.write_text(csv_text)
    ws = tmp_path / "shop"
    assert cli("init", ws).code == 0
    r = cli("-w", ws, "ingest", orders, "--source", "web", "--json")
    assert r.code == 3 and r.json()["quarantined"] == {"E_AMOUNT": 1, "E_NO_ID": 1,
                                                       "E_TS_PARSE": 1}
    r = cli("-w", ws, "quarantine", "replay", "--reason", "E_TS_PARSE", "--ts-format",
            "%d.%m.%Y %H:%M", "--json")
    assert (r.json()["replayed"], r.json()["loaded"]) == (1, 1)
    r = cli("-w", ws, "quarantine", "replay", "--reason", "E_AMOUNT", "--missing",
            "amount=flag", "--json")
    assert r.json()["loaded"] == 1
    assert cli("-w", ws, "quarantine", "drop", "--reason", "E_NO_ID", "--why",
               "test traffic without ids").code == 0
    out = " ".join(cli("-w", ws, "status").out.split())
    claimed = ("Ingested 3 batches: 5 rows read, 4 loaded, 0 duplicates, 0 quarantined "
               "(open), 1 dropped; 2 quarantined rows were replayed")
    assert claimed in out and claimed.split(": ", 1)[1].split(";")[0] in " ".join(
        section.split())
