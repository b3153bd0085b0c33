"""Erasure: after ``forget`` no table holds the person, and a re-ingest cannot bring them back."""

from __future__ import annotations

from pathlib import Path

import ibis
import pandas as pd
import pytest

from tribes.privacy import audit_log
from tribes.privacy.pseudonyms import pseudonym
from tribes.store.db import open_engine
from tribes.synth import SynthConfig, generate
from tribes.workspace import open_workspace

PERSON = "C0000007"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("erasure-data")
    generate(SynthConfig(out=out, customers=120, days=60, seed=4))
    return out


def _ingest_all(cli, ws: Path, data: Path) -> dict[str, dict]:
    w = ("--workspace", ws)
    runs = {
        "web": ["ingest", data / "web", "--source", "web"],
        "app": ["ingest", data / "app", "--source", "app"],
        "pos": ["ingest", data / "purchases.parquet", "--source", "pos", "--event-type",
                "purchase", "--map", "ts=sold_at,customer_id=member_no"],
        "customers": ["ingest", data / "customers.csv", "--kind", "customers"],
        "consents": ["ingest", data / "consents.csv", "--kind", "consents"],
    }
    out = {}
    for name, args in runs.items():
        r = cli(*w, *args, "--json")
        assert r.code == 0, r.err
        out[name] = r.json()
    return out


def _holding(ws: Path, needles: list[str]) -> dict[str, int]:
    """Rows per table and column whose text contains any of ``needles``."""
    found: dict[str, int] = {}
    with open_engine(open_workspace(ws), read_only=True) as engine:
        for name in engine.list_tables():
            t = engine.table(name)
            for col, typ in t.schema().items():
                if not typ.is_string():
                    continue
                hit = ibis.or_(*(t[col].contains(n) for n in needles))
                n = int(engine.scalar(t.filter(hit).count()))
                if n:
                    found[f"{name}.{col}"] = n
    return found


def test_forget_erases_everywhere_and_reingest_loads_nothing(cli, tmp_path: Path,
                                                             data: Path) -> None:
    ws = tmp_path / "shop"
    w = ("--workspace", ws)
    assert cli("init", ws).code == 0
    _ingest_all(cli, ws, data)
    for args in (["run"], ["segment", "--k", "3"], ["segment", "--k", "4"],
                 ["clv", "fit"], ["clv", "score"],
                 ["cohorts", "define", "buyers", "--rule", "at least 1 purchase"],
                 ["export", "segments", "--out", tmp_path / "seg.csv"],
                 ["export", "features", "--out", tmp_path / "f.parquet"]):
        r = cli(*w, *args)
        assert r.code == 0, (args, r.err)
    key = pseudonym(PERSON, open_workspace(ws).secret())
    view = cli(*w, "customer", PERSON, "--json").json()
    pids = sorted({i["id"] for i in view["ids"]})
    assert key in pids and len(pids) >= 2  # the customer id and at least one cookie/device
    files = {"seg.csv": pd.read_csv(tmp_path / "seg.csv", dtype=str),
             "f.parquet": pd.read_parquet(tmp_path / "f.parquet")}
    assert all((df.customer_key == key).sum() == 1 for df in files.values())
    (tmp_path / "seg.csv").chmod(0o640)
    before = _holding(ws, pids)
    assert {"events.customer_id", "identities.id", "segment_assignments.customer_key",
            "sessions.customer_key", "export_members.customer_key"} <= set(before)

    r = cli(*w, "forget", PERSON, "--reason", "request 123", "--json")
    assert r.code == 0, r.err
    res = r.json()
    assert res["customer_key"] == key and res["ids"] == len(pids)
    assert res["deleted"]["segment_assignments"] == 2  # both versions
    assert [e["what"] for e in res["exports"]] == ["segments", "features"]
    assert all("rewritten without their 1 row" in e["erasure"] for e in res["exports"])
    # the files tribes wrote hold everyone else, as they were, and not the person
    after = {"seg.csv": pd.read_csv(tmp_path / "seg.csv", dtype=str),
             "f.parquet": pd.read_parquet(tmp_path / "f.parquet")}
    for name, df in files.items():
        expected = df[df.customer_key != key].reset_index(drop=True)
        pd.testing.assert_frame_equal(after[name], expected)
    assert (tmp_path / "seg.csv").stat().st_mode & 0o777 == 0o640
    assert _holding(ws, pids) == {"tombstones.id": len(pids)}
    assert cli(*w, "customer", PERSON).code != 0

    # the original files again: none of the person's rows come back, none are kept
    again = _ingest_all(cli, ws, data)
    erased = sum(again[k]["quarantined"].get("E_ERASED", 0) for k in ("web", "app", "pos"))
    assert erased >= res["deleted"]["events"] > 0  # (their defective rows too)
    assert again["customers"]["quarantined"] == {"E_ERASED": 1}
    for s in again.values():
        assert s["loaded"] == 0
    assert cli(*w, "run").code == 0
    assert _holding(ws, pids) == {"tombstones.id": len(pids)}

    # the audit log names the erasure by pseudonymized key, never by the id given
    log = (ws / audit_log.LOG_FILE).read_text(encoding="utf-8")
    assert PERSON not in log
    rec = next(x for x in audit_log.read_audit(ws) if x["action"] == "forget")
    assert rec["keys"] == [key] and rec["detail"]["reason"] == "request 123"
    assert audit_log.verify_audit(ws, open_workspace(ws).secret()).ok


def test_forget_of_an_unknown_id_tombstones_it_in_advance(cli, tmp_path: Path,
                                                          data: Path) -> None:
    ws = tmp_path / "shop"
    w = ("--workspace", ws)
    assert cli("init", ws).code == 0
    r = cli(*w, "forget", "C0000009", "--json")
    assert r.code == 0 and r.json()["rows"] == 0
    s = cli(*w, "ingest", data / "customers.csv", "--kind", "customers", "--json").json()
    assert s["quarantined"] == {"E_ERASED": 1}
    assert cli(*w, "forget", "", "--json").code != 0
