"""Unit and property tests of the vectorised encoders behind ``tribes.synth``."""

from __future__ import annotations

import datetime as dt

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tribes.synth.defects import GARBAGE_TIMESTAMPS, plan_duplicates, plan_web_defects
from tribes.synth.encode import (
    build_vocab,
    digits,
    fixed_strings,
    hex64,
    mix64,
    pick,
    take_strings,
    text_date,
    text_dmy_hm,
    text_epoch_ms,
    text_iso_offset,
    text_iso_z,
)
from tribes.synth.model import EventType
from tribes.synth.population import assign_segments

EPOCHS = st.lists(st.integers(0, 4_102_444_799), min_size=1, max_size=50)  # 1970..2099
UTC = dt.UTC


@given(EPOCHS)
def test_timestamp_text_matches_datetime(values: list[int]) -> None:
    arr = np.array(values, dtype=np.int64)
    expect = [dt.datetime.fromtimestamp(v, UTC) for v in values]
    assert text_iso_z(arr).to_pylist() == [e.strftime("%Y-%m-%dT%H:%M:%SZ") for e in expect]
    assert text_dmy_hm(arr).to_pylist() == [e.strftime("%d/%m/%Y %H:%M") for e in expect]
    assert text_date(arr).to_pylist() == [e.strftime("%Y-%m-%d") for e in expect]
    assert text_epoch_ms(arr * 1000 + 10**12).to_pylist() == [str(v * 1000 + 10**12)
                                                              for v in values]


@given(EPOCHS, st.lists(st.sampled_from([-480, -300, 0, 60, 120, 330, 545]), min_size=50,
                        max_size=50))
def test_offset_text_is_the_same_instant(values: list[int], offsets: list[int]) -> None:
    arr = np.array(values, dtype=np.int64)
    off = np.array(offsets[: len(values)], dtype=np.int64)
    for v, text in zip(values, text_iso_offset(arr, off).to_pylist(), strict=True):
        assert dt.datetime.fromisoformat(text).timestamp() == v


@settings(max_examples=50)
@given(st.lists(st.integers(0, 2**62), min_size=1, max_size=200, unique=True),
       st.integers(0, 2**63))
def test_mix64_is_collision_free_and_hex_is_exact(keys: list[int], salt: int) -> None:
    out = mix64(np.array(keys, dtype=np.int64), salt)
    assert len(set(out.tolist())) == len(keys)
    text = fixed_strings(len(keys), ["ck_", hex64(out)]).to_pylist()
    assert text == [f"ck_{int(v):016x}" for v in out]


def test_digits_and_fixed_strings() -> None:
    vals = np.array([0, 7, 1234567], dtype=np.int64)
    assert fixed_strings(3, ["C", digits(vals, 7)]).to_pylist() == ["C0000000", "C0000007",
                                                                    "C1234567"]


def test_pick_respects_codes_and_missing() -> None:
    vocab = build_vocab([[("a", 1.0), ("A", 1.0)], [("b", 1.0)], [("c", 3.0), ("C", 1.0)]])
    rng = np.random.default_rng(0)
    codes = rng.integers(-1, 3, 5000)
    idx = pick(vocab, codes, rng)
    out = np.array(take_strings(vocab.values, idx).to_pylist(), dtype=object)
    canon = np.array([None if v is None else v.lower() for v in out], dtype=object)
    expected = np.array([None if c < 0 else "abc"[c] for c in codes], dtype=object)
    assert (canon == expected).all()
    share_c = (out[codes == 2] == "c").mean()
    assert 0.7 < share_c < 0.8


def test_web_defects_are_disjoint_and_spare_login_and_checkout() -> None:
    rng = np.random.default_rng(1)
    etype = rng.integers(0, EventType.N, 20000)
    d = plan_web_defects(etype, 0.01, rng)
    rows = np.concatenate([d.ts_parse, d.no_id, d.future])
    assert len(np.unique(rows)) == rows.size > 300
    assert not np.isin(etype[rows], [EventType.LOGIN, EventType.BEGIN_CHECKOUT]).any()
    assert all("," not in g and g.strip() for g in GARBAGE_TIMESTAMPS)


def test_duplicates_follow_their_original() -> None:
    rng = np.random.default_rng(2)
    sel, k = plan_duplicates(10000, 0.01, rng)
    assert sel.size == 10000 + k and k > 0
    first_seen: dict[int, int] = {}
    for pos, row in enumerate(sel.tolist()):
        if row in first_seen:
            assert pos > first_seen[row]
        else:
            first_seen[row] = pos
    assert sorted(first_seen) == list(range(10000))


def test_segment_assignment_is_exact_and_seeded() -> None:
    a = assign_segments(1001, 5)
    assert np.array_equal(a, assign_segments(1001, 5))
    assert not np.array_equal(a, assign_segments(1001, 6))
    counts = np.bincount(a)
    assert counts.sum() == 1001 and abs(counts[2] - 0.22 * 1001) < 1
