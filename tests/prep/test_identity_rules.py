"""Identity repair (tribes identity): merge, split and block rules applied by prep.

The expected customers are worked out by hand from the events below and DESIGN §5 (with
the rules' definitions in tribes.prep.stitch's doc); keys are the pseudonyms of the raw
ids, computed with the workspace key.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ibis
import pandas as pd
import pytest

from tribes.engine import Engine
from tribes.prep.stitch import drop_temporaries, stitch
from tribes.privacy import audit_log
from tribes.privacy.pseudonyms import pseudonym
from tribes.store.db import open_engine
from tribes.store.identity_rules import IdentityRule
from tribes.store.keyed import ID_COLUMNS
from tribes.workspace import open_workspace

# who is who (raw ids):
# - alice (one order, cookie ck-a) and alice-old (two orders) are two known customers
# - an anonymous visitor: cookie ck-c on phone-c, one order
# - bob logs in with ck-b; ck-b also shows up on the shop's kiosk-1, where a walk-in
#   (cookie ck-walkin) buys: today the kiosk links the walk-in to bob
# - dave uses ck-d1 and ck-d2; ck-d2 was also seen on tablet tab-d (tab-d alone once)
EVENTS = """event_id,ts,event_type,customer_id,anonymous_id,device_id,order_id,amount
e01,2026-03-01T10:00:00Z,purchase,alice,ck-a,,o1,10
e02,2026-03-02T10:00:00Z,purchase,alice-old,,,o2,20
e03,2026-03-03T10:00:00Z,purchase,alice-old,,,o3,30
e04,2026-03-04T10:00:00Z,page_view,,ck-c,phone-c,,
e05,2026-03-04T10:05:00Z,purchase,,ck-c,,o5,15
e06,2026-03-05T10:00:00Z,page_view,bob,ck-b,,,
e07,2026-03-06T10:00:00Z,page_view,,ck-b,kiosk-1,,
e08,2026-03-07T10:00:00Z,page_view,,ck-walkin,kiosk-1,,
e09,2026-03-07T10:10:00Z,purchase,,ck-walkin,,o4,5
e10,2026-03-08T10:00:00Z,page_view,dave,ck-d1,,,
e11,2026-03-08T11:00:00Z,page_view,dave,ck-d2,,,
e12,2026-03-09T10:00:00Z,page_view,,ck-d2,tab-d,,
e13,2026-03-09T10:30:00Z,page_view,,,tab-d,,
"""
RAW = ["alice", "alice-old", "bob", "dave", "ck-a", "ck-c", "phone-c", "ck-b", "kiosk-1",
       "ck-walkin", "ck-d1", "ck-d2", "tab-d"]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tribes.cli import main

    root = tmp_path_factory.mktemp("identity")
    (root / "events.csv").write_text(EVENTS)
    ws = root / "shop"
    assert main(["-q", "init", str(ws)]) == 0
    assert main(["-q", "-w", str(ws), "ingest", str(root / "events.csv"),
                 "--source", "web"]) == 0
    assert main(["-q", "-w", str(ws), "prep"]) == 0
    return ws


@pytest.fixture
def shop(template: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "shop"
    shutil.copytree(template, copy)
    return copy


def pseudonyms(ws: Path) -> dict[str, str]:
    secret = open_workspace(ws).secret()
    return {raw: pseudonym(raw, secret) for raw in RAW}


def read(ws: Path, name: str) -> pd.DataFrame:
    with open_engine(open_workspace(ws), read_only=True) as engine:
        return engine.execute(engine.table(name))


def people(ws: Path) -> dict[str, tuple[str, str]]:
    """pseudonymized id -> (customer_key, status)."""
    ids = read(ws, "identities")
    return {i: (k, s) for i, k, s in ids[["id", "customer_key", "status"]]
            .itertuples(index=False)}


def features(cli: Callable[..., Any], ws: Path) -> pd.DataFrame:
    r = cli("-w", ws, "features", "--json")
    assert r.code == 0, r.err
    return read(ws, "customer_features").set_index("customer_key")


def ok(cli: Callable[..., Any], *args: str | Path) -> dict[str, Any]:
    r = cli(*args, "--json")
    assert r.code == 0, r.err
    return dict(r.json())


def test_merge_two_known_customers(cli, shop: Path) -> None:
    p = pseudonyms(shop)
    before = features(cli, shop)
    assert before.loc[p["alice"], "frequency"] == 1
    assert before.loc[p["alice-old"], "frequency"] == 2

    out = ok(cli, "-w", shop, "identity", "merge", "alice", "alice-old", "--note", "same")
    survivor = min(p["alice"], p["alice-old"])  # the smaller known id keys them
    assert out["rule"]["action"] == "merge" and survivor in out["effect"]
    # nothing changes until the next prep; status says prep is stale
    assert people(shop)[p["alice-old"]] == (p["alice-old"], "known")
    assert ok(cli, "-w", shop, "status")["stages"]["prep"]["current"] is False

    r = cli("-w", shop, "features", "--json")  # runs prep first: the rules changed
    assert r.code == 0 and r.json()["prep_rerun"] is True
    after = read(shop, "customer_features").set_index("customer_key")
    gone = max(p["alice"], p["alice-old"])
    assert gone not in after.index and len(after) == len(before) - 1
    row = after.loc[survivor]
    assert row["frequency"] == 3 and row["monetary"] == pytest.approx(60.0)
    assert row["n_events"] == 3
    ids = people(shop)
    assert ids[gone] == (survivor, "merged")
    assert ids[p["ck-a"]] == (survivor, "linked")
    assert ids[survivor] == (survivor, "known")
    # the sessions follow: every session of both is the survivor's
    sessions = read(shop, "sessions")
    assert gone not in set(sessions.customer_key)
    assert (sessions.customer_key == survivor).sum() == 3


def test_a_merged_customer_follows_the_latest_choice_of_all_their_ids(cli, shop: Path,
                                                                      tmp_path: Path) -> None:
    p = pseudonyms(shop)
    # the account whose id keys the merged customer granted; the other refused later
    keeps, other = sorted(["alice", "alice-old"], key=lambda raw: p[raw])
    consents = tmp_path / "consents.csv"
    consents.write_text("customer_id,purpose,granted,ts\n"
                        f"{keeps},analytics,yes,2026-03-01T00:00:00Z\n"
                        f"{other},analytics,no,2026-03-10T00:00:00Z\n")
    ok(cli, "-w", shop, "ingest", consents, "--kind", "consents")
    f = features(cli, shop)
    assert p[keeps] in f.index and p[other] not in f.index
    ok(cli, "-w", shop, "identity", "merge", "alice", "alice-old")
    f = features(cli, shop)
    # one person now, whose latest choice (under the other account) is a refusal
    assert p[keeps] not in f.index and p[other] not in f.index
    assert ok(cli, "-w", shop, "customer", keeps)["analyzed"] is False


def test_merge_known_and_anonymous(cli, shop: Path) -> None:
    p = pseudonyms(shop)
    anon = "anon:" + min(p["ck-c"], p["phone-c"])
    assert people(shop)[p["ck-c"]] == (anon, "anonymous")
    # the anonymous customer named by its key, the known one by a raw cookie of hers
    ok(cli, "-w", shop, "identity", "merge", anon, "ck-a")
    assert cli("-w", shop, "-q", "prep").code == 0
    ids = people(shop)
    for raw in ("ck-c", "phone-c"):
        assert ids[p[raw]] == (p["alice"], "merged")
    assert ids[p["alice"]] == (p["alice"], "known")
    f = features(cli, shop)
    assert anon not in f.index
    assert f.loc[p["alice"], "frequency"] == 2  # o1 and the visitor's o5
    assert f.loc[p["alice"], "monetary"] == pytest.approx(25.0)


def test_split_an_id_out_of_a_customer(cli, shop: Path) -> None:
    p = pseudonyms(shop)
    assert {people(shop)[p[r]][0] for r in ("ck-d1", "ck-d2", "tab-d")} == {p["dave"]}
    out = ok(cli, "-w", shop, "identity", "split", "dave", "--id", "ck-d2")
    assert out["rule"]["b"] == p["ck-d2"]
    assert cli("-w", shop, "-q", "prep").code == 0
    ids = people(shop)
    assert ids[p["ck-d2"]] == ("anon:" + p["ck-d2"], "split")
    # the tablet was linked to dave only through ck-d2: it is on its own now
    assert ids[p["tab-d"]] == ("anon:" + p["tab-d"], "anonymous")
    assert ids[p["ck-d1"]] == (p["dave"], "linked")
    f = features(cli, shop)
    assert f.loc[p["dave"], "n_events"] == 2  # e10, e11 carry dave's customer id
    assert f.loc["anon:" + p["ck-d2"], "n_events"] == 1  # e12
    assert f.loc["anon:" + p["tab-d"], "n_events"] == 1  # e13


def test_split_the_id_an_anonymous_customer_is_keyed_by(cli, shop: Path) -> None:
    p = pseudonyms(shop)
    first, second = sorted(["ck-c", "phone-c"], key=lambda raw: p[raw])
    out = ok(cli, "-w", shop, "identity", "split", "anon:" + p[first], "--id", first)
    # the rule names the customer by the id that stays
    assert (out["rule"]["a"], out["rule"]["b"]) == (p[second], p[first])
    assert cli("-w", shop, "-q", "prep").code == 0
    ids = people(shop)
    assert ids[p[first]] == ("anon:" + p[first], "split")
    assert ids[p[second]] == ("anon:" + p[second], "anonymous")


def test_block_a_kiosk(cli, shop: Path) -> None:
    p = pseudonyms(shop)
    f = features(cli, shop)
    assert people(shop)[p["ck-walkin"]] == (p["bob"], "linked")  # through the kiosk
    assert f.loc[p["bob"], "frequency"] == 1

    ok(cli, "-w", shop, "identity", "block", "kiosk-1", "--note", "in-store kiosk")
    f = features(cli, shop)
    ids = people(shop)
    assert ids[p["kiosk-1"]] == ("anon:" + p["kiosk-1"], "blocked")
    assert ids[p["ck-walkin"]] == ("anon:" + p["ck-walkin"], "anonymous")
    assert ids[p["ck-b"]] == (p["bob"], "linked")  # bob's own login still links it
    assert f.loc[p["bob"], "frequency"] == 0
    assert f.loc["anon:" + p["ck-walkin"], "frequency"] == 1
    assert f.loc[p["bob"], "n_events"] == 2  # e06 and e07 (its cookie is bob's)


def test_undo_restores_the_previous_stitching(cli, shop: Path) -> None:
    cols = ["id_type", "id", "customer_key", "status"]

    def identities() -> pd.DataFrame:
        return read(shop, "identities")[cols].sort_values(cols).reset_index(drop=True)

    baseline = identities()
    rule = ok(cli, "-w", shop, "identity", "block", "kiosk-1")["rule"]["rule_id"]
    assert cli("-w", shop, "-q", "prep").code == 0
    assert not identities().equals(baseline)
    out = ok(cli, "-w", shop, "identity", "undo", str(rule))
    assert out["rule"]["active"] is False and out["rule"]["undone_at"]
    run = ok(cli, "-w", shop, "run")  # the pipeline sees the undo and runs prep again
    assert run["steps"]["prep"] == "done"
    pd.testing.assert_frame_equal(identities(), baseline)


def test_rules_are_listed_and_audited_without_raw_ids(cli, shop: Path) -> None:
    p = pseudonyms(shop)
    ok(cli, "-w", shop, "identity", "merge", "alice", "alice-old", "--note", "ticket 311")
    ok(cli, "-w", shop, "identity", "block", "kiosk-1")
    ok(cli, "-w", shop, "identity", "split", "dave", "--id", "ck-d2")
    ok(cli, "-w", shop, "identity", "undo", "2")

    listed = ok(cli, "-w", shop, "identity", "rules")["rules"]
    assert [(r["rule_id"], r["action"]) for r in listed] == [(1, "merge"), (3, "split")]
    every = ok(cli, "-w", shop, "identity", "rules", "--all")["rules"]
    assert [(r["rule_id"], r["active"]) for r in every] == [(1, True), (2, False), (3, True)]
    assert every[0]["note"] == "ticket 311" and every[0]["created_by"]
    assert {every[0]["a"], every[0]["b"]} == {p["alice"], p["alice-old"]}
    assert every[1]["a"] == p["kiosk-1"] and every[1]["undone_at"]
    human = cli("-w", shop, "identity", "rules", "--all")
    assert human.code == 0 and "Identity rules" in human.out

    shown = ok(cli, "-w", shop, "identity", "show", "dave")
    assert shown["customer_key"] == p["dave"]
    assert {i["id"] for i in shown["ids"]} == {p[r] for r in ("dave", "ck-d1", "ck-d2",
                                                              "tab-d")}
    assert [r["rule_id"] for r in shown["rules"]] == [3]

    log = [r for r in audit_log.read_audit(shop) if r["action"].startswith("identity.")]
    assert [r["action"] for r in log] == ["identity.merge", "identity.block",
                                          "identity.split", "identity.undo"]
    assert log[0]["detail"]["note"] == "ticket 311"
    assert set(log[0]["keys"]) == {p["alice"], p["alice-old"]}
    # rules and the log keep pseudonyms only
    stored = read(shop, "identity_rules").to_csv() + (shop / audit_log.LOG_FILE).read_text()
    for raw in ("alice", "kiosk-1", "ck-d2", "dave"):
        assert f",{raw}," not in stored and f'"{raw}"' not in stored


def test_forget_removes_the_rules_naming_the_person(cli, shop: Path) -> None:
    p = pseudonyms(shop)
    ok(cli, "-w", shop, "identity", "merge", "alice", "ck-c")
    ok(cli, "-w", shop, "identity", "block", "kiosk-1")
    assert cli("-w", shop, "-q", "prep").code == 0
    out = ok(cli, "-w", shop, "forget", "alice")
    assert out["deleted"]["identity_rules"] == 1
    left = read(shop, "identity_rules")
    assert left.action.tolist() == ["block"]
    for raw in ("alice", "ck-a", "ck-c", "phone-c"):
        assert not left[["a", "b"]].isin([p[raw]]).any().any()


@pytest.mark.parametrize(("args", "code", "words"), [
    (["merge", "alice", "ck-a"], "E_IDENTITY", "already one customer"),
    (["merge", "alice", "nobody"], "E_NOT_FOUND", "nobody"),
    (["split", "dave", "--id", "ck-b"], "E_IDENTITY", "not an id of customer"),
    (["split", "dave", "--id", "dave"], "E_IDENTITY", "customer_id"),
    (["split", "alice-old", "--id", "alice-old"], "E_IDENTITY", "customer_id"),
    (["block", "bob"], "E_IDENTITY", "anonymous and device ids"),
    (["block", "nowhere"], "E_NOT_FOUND", "nowhere"),
    (["undo", "7"], "E_IDENTITY", "no identity rule 7"),
])
def test_bad_input_is_refused(cli, template: Path, args: list[str], code: str,
                              words: str) -> None:
    r = cli("-w", template, "identity", *args)
    assert r.code != 0 and f"[{code}]" in r.err and words in r.err, r.err
    assert read(template, "identity_rules").empty


def test_contradicting_rules_are_refused(cli, shop: Path) -> None:
    ok(cli, "-w", shop, "identity", "block", "kiosk-1")
    r = cli("-w", shop, "identity", "block", "kiosk-1")
    assert "[E_IDENTITY]" in r.err and "blocked already" in r.err
    r = cli("-w", shop, "identity", "merge", "kiosk-1", "alice")
    assert "[E_IDENTITY]" in r.err and "identity undo 1" in r.err
    ok(cli, "-w", shop, "identity", "split", "dave", "--id", "ck-d2")
    assert cli("-w", shop, "-q", "prep").code == 0
    r = cli("-w", shop, "identity", "merge", "ck-d2", "dave")  # would undo the split
    assert "[E_IDENTITY]" in r.err and "identity undo 2" in r.err
    ok(cli, "-w", shop, "identity", "undo", "1")
    r = cli("-w", shop, "identity", "undo", "1")
    assert "[E_IDENTITY]" in r.err and "undone already" in r.err


def test_help_has_examples(cli) -> None:
    for command in ("merge", "split", "block", "undo", "rules", "show"):
        r = cli("identity", command, "--help")
        assert r.code == 0 and "Example" in r.out and "tribes -w shop identity" in r.out


# stitch itself, on id tuples written by hand (no workspace)
COLS = list(ID_COLUMNS)


def stitched(engine: Engine, rows: list[tuple[str | None, ...]],
             rules: list[IdentityRule]) -> dict[str, tuple[str, str]]:
    df = pd.DataFrame(rows, columns=COLS, dtype=object)
    ids, _ = stitch(engine, ibis.memtable(df, schema=dict.fromkeys(COLS, "string")),
                    rules=rules)
    out = engine.execute(ids)
    drop_temporaries(engine)
    return {i: (k, s) for i, k, s in out[["id", "customer_key", "status"]]
            .itertuples(index=False)}


def rule(n: int, action: str, a: tuple[str, str], b: tuple[str, str] | None = None,
         undone: bool = False) -> IdentityRule:
    return IdentityRule(rule_id=n, action=action, a_type=a[0], a=a[1],
                        b_type=b[0] if b else None, b=b[1] if b else None,
                        undone_at=pd.Timestamp("2026-01-01", tz="UTC") if undone else None)


C1, C2 = ("customer_id", "c1"), ("customer_id", "c2")


def test_merging_two_known_ids_resolves_their_ambiguous_cookie(engine: Engine) -> None:
    rows = [("c1", "a1", None), ("c2", "a1", None), (None, "a1", "d1")]
    assert stitched(engine, rows, [])["a1"] == ("anon:a1", "ambiguous")
    got = stitched(engine, rows, [rule(1, "merge", C2, C1)])
    # a1 touches c1 and c2, one customer now: it joins it by the data
    assert got == {"c1": ("c1", "known"), "c2": ("c1", "merged"), "a1": ("c1", "linked"),
                   "d1": ("c1", "linked")}


def test_merging_two_anonymous_customers_keys_by_their_smallest_id(engine: Engine) -> None:
    rows = [(None, "a5", "d9"), (None, "a7", "d3")]
    got = stitched(engine, rows, [rule(1, "merge", ("device_id", "d9"),
                                       ("anonymous_id", "a7"))])
    assert set(got.values()) == {("anon:a5", "merged")}


def test_rules_apply_in_order_and_undone_ones_not_at_all(engine: Engine) -> None:
    rows = [("c1", "a1", None), ("c2", "a2", None), (None, "a3", None)]
    a3, a2 = ("anonymous_id", "a3"), ("anonymous_id", "a2")
    merge = rule(1, "merge", a3, C1)
    assert stitched(engine, rows, [merge])["a3"] == ("c1", "merged")
    # a later split of a3 ends that merge ...
    got = stitched(engine, rows, [merge, rule(2, "split", C1, a3)])
    assert got["a3"] == ("anon:a3", "split")
    # ... and a merge after the split moves it elsewhere
    got = stitched(engine, rows, [merge, rule(2, "split", C1, a3), rule(3, "merge", a3, C2)])
    assert got["a3"] == ("c2", "merged")
    # merging through a cookie of c2 merges c2's customer
    got = stitched(engine, rows, [rule(1, "merge", a2, C1)])
    assert got["c2"] == ("c1", "merged") and got["a2"] == ("c1", "linked")
    # a block ends merges naming the id, before or after it; undone rules do nothing
    assert stitched(engine, rows, [merge, rule(2, "block", a3)])["a3"] == ("anon:a3",
                                                                          "blocked")
    assert stitched(engine, rows, [rule(1, "merge", a3, C1, undone=True)])["a3"] == (
        "anon:a3", "anonymous")
