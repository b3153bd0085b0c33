"""Identity repair (tribes identity): merge, split and block rules applied by prep.

The expected customers are worked out by hand from the ids below and DESIGN §5 (with
the rules' definitions in tribes.prep.stitch's doc).
"""

from __future__ import annotations

from collections.abc import Iterator

import ibis
import pandas as pd
import pytest

from tribes.engine import Engine, connect
from tribes.prep.stitch import drop_temporaries, stitch
from tribes.store.identity_rules import IdentityRule

# stitch itself, on id tuples written by hand (no workspace)
COLS = ["customer_id", "anonymous_id", "device_id"]


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    eng = connect(None)
    yield eng
    eng.close()


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
