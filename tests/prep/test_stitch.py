"""Identity stitching: worked examples, the reference implementation, invariants."""

from __future__ import annotations

import random

import ibis
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.features.reference import stitch_reference
from tribes.engine import Engine
from tribes.prep.stitch import drop_temporaries, stitch
from tribes.store.keyed import ID_COLUMNS

COLS = list(ID_COLUMNS)


def run(engine: Engine, rows: list[tuple[str | None, ...]], max_ids: int = 50) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=COLS, dtype=object)
    ids, _ = stitch(engine, ibis.memtable(df, schema=dict.fromkeys(COLS, "string")),
                    max_ids=max_ids)
    out = engine.execute(ids).sort_values(["id_type", "id"]).reset_index(drop=True)
    drop_temporaries(engine)
    return out


def keys(df: pd.DataFrame) -> dict[tuple[str, str], tuple[str, str]]:
    return {(t, i): (k, s) for i, t, k, s in df[["id", "id_type", "customer_key", "status"]]
            .itertuples(index=False)}


def test_cookie_and_device_join_their_customer(engine: Engine) -> None:
    got = keys(run(engine, [("c1", "a1", None), ("c1", None, "d1"), (None, "a2", "d1"),
                            (None, "a2", None)]))
    assert got[("anonymous_id", "a2")] == ("c1", "linked")
    assert got[("device_id", "d1")] == ("c1", "linked")
    assert got[("customer_id", "c1")] == ("c1", "known")


def test_two_known_ids_are_never_merged(engine: Engine) -> None:
    got = keys(run(engine, [("c1", "a1", None), ("c2", "a1", None), (None, "a1", "d1")]))
    assert got[("customer_id", "c1")][0] == "c1"
    assert got[("customer_id", "c2")][0] == "c2"
    # the cookie links to two customers: it and its whole component stay apart
    assert got[("anonymous_id", "a1")] == ("anon:a1", "ambiguous")
    assert got[("device_id", "d1")] == ("anon:a1", "ambiguous")


def test_anonymous_component_key_is_its_smallest_id(engine: Engine) -> None:
    # a chain needs several passes: z9 - d5 - a7 - d2
    got = keys(run(engine, [(None, "z9", "d5"), (None, "a7", "d5"), (None, "a7", "d2")]))
    assert {v for v in got.values()} == {("anon:a7", "anonymous")}


def test_long_chain_converges(engine: Engine) -> None:
    rows: list[tuple[str | None, ...]] = []
    for i in range(40):  # a7 - d7 - a8 - d8 - ...
        rows += [(None, f"a{i:02d}", f"d{i:02d}"), (None, f"a{i + 1:02d}", f"d{i:02d}")]
    rows.append(("c9", "a40", None))
    got = run(engine, rows)
    assert set(got["customer_key"]) == {"c9"}


def test_shared_device_links_nothing(engine: Engine) -> None:
    rows = [(f"c{i}", f"a{i}", None) for i in range(5)]
    rows += [(None, f"a{i}", "tablet") for i in range(5)]
    got = keys(run(engine, rows, max_ids=3))
    assert got[("device_id", "tablet")] == ("anon:tablet", "shared")
    for i in range(5):  # every cookie still joins its own customer
        assert got[("anonymous_id", f"a{i}")] == (f"c{i}", "linked")
    # with a higher cut-off the tablet links all five: ambiguous
    got = keys(run(engine, rows, max_ids=50))
    assert got[("device_id", "tablet")][1] == "ambiguous"


def test_ids_without_links_are_their_own_customers(engine: Engine) -> None:
    got = keys(run(engine, [("c1", None, None), (None, "a1", None), (None, None, "d1")]))
    assert got == {("customer_id", "c1"): ("c1", "known"),
                   ("anonymous_id", "a1"): ("anon:a1", "anonymous"),
                   ("device_id", "d1"): ("anon:d1", "anonymous")}


id_rows = st.lists(
    st.tuples(st.sampled_from([None, "c1", "c2", "c3", "c4"]),
              st.sampled_from([None, "a1", "a2", "a3", "a4", "a5", "a6"]),
              st.sampled_from([None, "d1", "d2", "d3", "d4"]))
    .filter(lambda r: any(v is not None for v in r)),
    min_size=1, max_size=25,
)


@settings(max_examples=25, deadline=None)
@given(rows=id_rows, max_ids=st.sampled_from([2, 3, 50]), seed=st.integers(0, 1000))
def test_matches_reference_and_invariants(engine: Engine, rows: list[tuple[str | None, ...]],
                                          max_ids: int, seed: int) -> None:
    got = run(engine, rows, max_ids=max_ids)
    ref = stitch_reference(pd.DataFrame(rows, columns=COLS, dtype=object), max_ids=max_ids)
    assert keys(got) == keys(ref)
    # no two known ids share a key
    known = got[got.id_type == "customer_id"]
    assert known.customer_key.is_unique
    assert (known.customer_key == known.id).all()
    # every key of a non-anonymous customer is a known id
    named = got[~got.customer_key.str.startswith("anon:")]
    assert set(named.customer_key) <= set(known.id)
    # the result does not depend on row order
    shuffled = rows[:]
    random.Random(seed).shuffle(shuffled)
    assert keys(run(engine, shuffled, max_ids=max_ids)) == keys(got)
