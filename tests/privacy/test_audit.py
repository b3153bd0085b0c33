"""The audit log: every change recorded once, after it commits; tampering detected."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from tests.conftest import NOW
from tests.stages import ingest
from tribes.ingest import IngestOptions
from tribes.privacy import audit_log
from tribes.store.db import init_workspace, open_engine
from tribes.workspace import Workspace, open_workspace

CSV = "ts,user_id,event\n2026-03-01T10:00:00Z,u1,page_view\n2026-03-01T10:05:00Z,u2,login\n"


def _lines(ws: Workspace) -> list[str]:
    return (ws.path / audit_log.LOG_FILE).read_text(encoding="utf-8").splitlines()


def _write_lines(ws: Workspace, lines: list[str]) -> None:
    (ws.path / audit_log.LOG_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _append_many(path: str, n: int) -> None:
    ws = open_workspace(Path(path))
    for i in range(n):
        audit_log.audit(ws, "test.concurrent", target=str(i))


def test_records_chain_and_verify(ws: Workspace, write) -> None:
    ingest(ws, [str(write("web.csv", CSV))], IngestOptions(source="web", now=NOW))
    recs = audit_log.read_audit(ws.path)
    assert [r["action"] for r in recs] == ["init", "ingest"]
    assert [r["seq"] for r in recs] == [1, 2]
    assert recs[1]["prev"] == recs[0]["hash"]
    assert recs[1]["rows"] == 2 and recs[1]["detail"]["rows_read"] == 2
    assert recs[1]["actor"].startswith("cli:")
    assert audit_log.verify_audit(ws.path, ws.secret()).ok
    with audit_log.acting_as("key:crm-sync"):
        rec = audit_log.audit(ws, "read.customer", keys=["k1"], rows=1)
    assert rec["actor"] == "key:crm-sync"
    assert audit_log.select_records(audit_log.read_audit(ws.path), key="k1") == [rec]
    assert audit_log.select_records(audit_log.read_audit(ws.path), action="ingest")[0]["seq"] == 2


@pytest.mark.parametrize("tamper, expect", [
    ("edit", "was altered"),
    ("delete", "expected"),
    ("swap", "expected"),
    ("cut_tail", "cut from the end"),
    ("edit_head", "audit.head was altered"),
    ("garbage", "not a JSON record"),
])
def test_verify_detects_tampering(ws: Workspace, tamper: str, expect: str) -> None:
    for i in range(4):
        audit_log.audit(ws, "segment", target=f"version {i}", rows=10 * i)
    lines = _lines(ws)
    if tamper == "edit":
        rec = json.loads(lines[2])
        rec["rows"] = 999
        lines[2] = json.dumps(rec, sort_keys=True)
    elif tamper == "delete":
        del lines[2]
    elif tamper == "swap":
        lines[1], lines[2] = lines[2], lines[1]
    elif tamper == "cut_tail":
        lines = lines[:-1]
    elif tamper == "garbage":
        lines.insert(1, "{not json")
    if tamper == "edit_head":
        head = json.loads((ws.path / audit_log.HEAD_FILE).read_text(encoding="utf-8"))
        head["seq"] = 3
        (ws.path / audit_log.HEAD_FILE).write_text(json.dumps(head), encoding="utf-8")
    else:
        _write_lines(ws, lines)
    result = audit_log.verify_audit(ws.path, ws.secret())
    assert not result.ok
    assert any(expect in p for p in result.problems), result.problems


def test_a_recomputed_chain_without_the_key_does_not_verify(ws: Workspace) -> None:
    audit_log.audit(ws, "export", target="a.csv", rows=5)
    other = b"not-the-workspace-key"
    assert not audit_log.verify_audit(ws.path, other).ok


def test_rolled_back_changes_are_not_recorded(ws: Workspace) -> None:
    before = len(audit_log.read_audit(ws.path))
    with open_engine(ws) as engine, pytest.raises(RuntimeError), engine.transaction():
        engine.audit("segment", target="version 9")
        raise RuntimeError("boom")
    assert len(audit_log.read_audit(ws.path)) == before
    with open_engine(ws) as engine, engine.transaction():
        engine.audit("segment", target="version 9")
        assert len(audit_log.read_audit(ws.path)) == before  # not before the commit
    assert audit_log.read_audit(ws.path)[-1]["target"] == "version 9"


def test_concurrent_writers_keep_one_chain(ws: Workspace) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(ws.path), 40)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    result = audit_log.verify_audit(ws.path, ws.secret())
    assert result.ok, result.problems
    assert result.records == 1 + 3 * 40


def test_cli_list_and_verify(ws: Workspace, cli, write) -> None:
    w = ("--workspace", ws.path)
    assert cli(*w, "ingest", write("web.csv", CSV), "--source", "web").code == 0
    r = cli(*w, "audit", "list", "--json")
    assert r.code == 0
    assert [x["action"] for x in r.json()["records"]] == ["init", "ingest"]
    assert cli(*w, "audit", "list", "--since", "2999-01-01", "--json").json()["matched"] == 0
    assert cli(*w, "audit", "list", "--since", "yesterday").code != 0
    ok = cli(*w, "audit", "verify", "--json")
    assert ok.code == 0 and ok.json() == {
        "ok": True, "records": 2, "problems": [],
        # anchored when the ingest opened the database; the next command that writes
        # anchors the ingest's own record
        "anchor": "record 1 as the database anchored it"}
    lines = _lines(ws)
    rec = json.loads(lines[1])
    rec["actor"] = "cli:someone-else"
    lines[1] = json.dumps(rec, sort_keys=True)
    _write_lines(ws, lines)
    bad = cli(*w, "audit", "verify", "--json")
    assert bad.code == 4
    body = bad.json()
    assert body["error"] == "E_AUDIT_TAMPERED" and "altered" in body["problems"][0]


@pytest.mark.parametrize("how", ["wiped", "replaced", "anchor removed", "anchor edited"])
def test_a_log_emptied_or_replaced_whole_is_detected(ws: Workspace, cli, write,
                                                     tmp_path: Path, how: str) -> None:
    """Emptying the log and removing its head leaves a consistent (empty) chain: the
    anchor the database keeps is what tells."""
    w = ("--workspace", ws.path)
    for i in range(2):
        assert cli(*w, "ingest", write(f"web{i}.csv", CSV.replace("u1", f"x{i}")),
                   "--source", "web").code == 0
    assert cli(*w, "audit", "verify").code == 0
    log, head = ws.path / audit_log.LOG_FILE, ws.path / audit_log.HEAD_FILE
    if how == "wiped":
        log.write_text("")
        head.unlink()
    elif how == "replaced":  # a whole, valid chain of another workspace with its key
        other = init_workspace(tmp_path / "other")
        (ws.path / "secret.key").write_bytes((other.path / "secret.key").read_bytes())
        log.write_bytes((other.path / audit_log.LOG_FILE).read_bytes())
        head.write_bytes((other.path / audit_log.HEAD_FILE).read_bytes())
    else:
        with open_engine(ws) as engine:
            t = engine.table("audit_anchor")
            if how == "anchor removed":
                engine.delete_where("audit_anchor", t.seq >= 0)
            else:
                engine.replace_table("audit_anchor", t.mutate(seq=t.seq - 1))
        # (that open anchored nothing new: the log did not move on)
    bad = cli(*w, "audit", "verify", "--json")
    assert bad.code == 4, bad.out
    problems = " ".join(bad.json()["problems"])
    expect = {"wiped": "emptied, replaced or cut", "replaced": "anchor",
              "anchor removed": "no anchor", "anchor edited": "altered"}[how]
    assert expect in problems, problems
