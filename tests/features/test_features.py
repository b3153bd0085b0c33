"""Every feature against the independent pandas computation, on data through real ingest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from tests.features.conftest import FeatureData, events_frame, pid, table_frame
from tests.features.reference import (
    features_reference,
    key_events_reference,
    sessions_reference,
    stitch_reference,
)
from tests.stages import context
from tribes.features.definitions import FEATURES, RFM_GRID, rfm_label
from tribes.features.feature_table import parse_as_of, run_features
from tribes.prep.prep_stage import run_prep
from tribes.settings import RunSettings
from tribes.store.db import open_engine
from tribes.workspace import Workspace


def compare(got: pd.DataFrame, ref: pd.DataFrame, on: list[str]) -> dict[str, int]:
    """Columns of ``ref`` that differ in ``got`` (floats at 1e-9 relative), with counts."""
    j = got.merge(ref, on=on, suffixes=("", "_ref"), how="outer", indicator=True)
    assert (j["_merge"] == "both").all(), j[j["_merge"] != "both"][on]
    bad: dict[str, int] = {}
    for c in ref.columns:
        if c in on:
            continue
        a, b = j[c], j[c + "_ref"]
        na, nb = a.isna().to_numpy(), b.isna().to_numpy()
        if pd.api.types.is_numeric_dtype(a) and not pd.api.types.is_bool_dtype(a):
            eq = np.isclose(a.astype(float), b.astype(float), rtol=1e-9, atol=1e-9,
                            equal_nan=True)
        else:
            eq = (na & nb) | (~na & ~nb & (a.astype(object) == b.astype(object)).to_numpy())
        if (~eq).sum():
            bad[c] = int((~eq).sum())
    return bad


def reference(data: FeatureData, as_of: datetime | None = None,
              timeout: timedelta = timedelta(minutes=30), excluded: set[str] | None = None,
              ) -> pd.DataFrame:
    ev = events_frame(data.ws)
    ids = stitch_reference(ev, max_ids=50)
    keyed = key_events_reference(ev, ids)
    when = as_of or ev.ts.max().to_pydatetime()
    excl = {pid(data, "C003")} if excluded is None else excluded
    return features_reference(keyed, as_of=when, timeout=timeout, excluded=excl)


def stored(ws: Workspace) -> pd.DataFrame:
    return table_frame(ws, "customer_features").drop(columns=["composite_index", "as_of"])


def test_every_row_loads_and_timestamps_become_utc(feature_data: FeatureData) -> None:
    ev = events_frame(feature_data.ws)
    assert len(ev) == len(feature_data.raw)
    want = sorted(pd.Timestamp(t) for t in feature_data.raw["t"])
    assert sorted(ev.ts) == want


def test_identities_and_sessions_match_reference(feature_data: FeatureData) -> None:
    ws = feature_data.ws
    with open_engine(ws) as engine:
        run_prep(context(ws, engine))
    ev = events_frame(ws)
    ids = table_frame(ws, "identities")
    ref_ids = stitch_reference(ev)
    assert compare(ids, ref_ids, ["id_type", "id"]) == {}
    # the anonymous visitor with a device: cookie and device are one anonymous customer
    row = ids.set_index("id").loc[pid(feature_data, "devX")]
    assert row.customer_key == "anon:" + min(pid(feature_data, "devX"),
                                             pid(feature_data, "visitor0"))
    # cookies used before login join their customer
    raw = feature_data.raw.dropna(subset=["anonymous_id"])
    logged = raw.dropna(subset=["customer_id"]).groupby("anonymous_id").customer_id.first()
    before = set(raw[raw.customer_id.isna()].anonymous_id) & set(logged.index)
    assert before
    by_id = ids.set_index("id")
    for cookie in before:
        assert by_id.loc[pid(feature_data, cookie)].customer_key == pid(
            feature_data, logged[cookie])
    sessions = table_frame(ws, "sessions")
    ref = sessions_reference(key_events_reference(ev, ref_ids), timedelta(minutes=30))
    got = sessions.assign(event_types=sessions.event_types.map(list))
    ref = ref.assign(event_types=ref.event_types.map(list)).drop(columns=["session_seq"])
    got = got.drop(columns=["session_id", "session_seq"])
    bad = compare(got.drop(columns=["event_types", "duration_s"]),
                  ref.drop(columns=["event_types", "duration_s"]), ["customer_key", "start"])
    assert bad == {}
    j = got.merge(ref, on=["customer_key", "start"])
    assert (j.event_types_x.map(tuple) == j.event_types_y.map(tuple)).all()
    assert np.allclose(j.duration_s_x, j.duration_s_y, atol=1e-6)
    assert sessions.session_id.is_unique


def test_features_match_reference(feature_data: FeatureData) -> None:
    ws = feature_data.ws
    with open_engine(ws) as engine:
        report = run_features(context(ws, engine))
    got = stored(ws)
    ref = reference(feature_data)
    assert compare(got, ref, ["customer_key"]) == {}
    assert report.excluded_by_consent == 1
    assert pid(feature_data, "C003") not in set(got.customer_key)
    # edge cases are present
    one = got.set_index("customer_key").loc[pid(feature_data, "C900")]
    assert one.n_events == 1 and one.n_sessions == 1 and one.avg_session_duration_s == 0
    assert np.isnan(one.aov) and one.frequency == 0 and pd.isna(one.rfm_label)
    assert (~got.known).sum() >= 4  # anonymous-only visitors are customers too
    # every documented feature is a column
    assert {f.name for f in FEATURES} <= set(table_frame(ws, "customer_features").columns)


def test_purchases_without_order_id_count_as_their_own_orders(feature_data: FeatureData) -> None:
    ws = feature_data.ws
    with open_engine(ws) as engine:  # on its own too, not only after the tests above
        run_features(context(ws, engine))
    ev = key_events_reference(events_frame(feature_data.ws),
                              table_frame(feature_data.ws, "identities"))
    buys = ev[ev.event_type == "purchase"]
    assert buys.order_id.isna().any() and buys.order_id.dropna().duplicated().any()
    got = stored(feature_data.ws).set_index("customer_key")
    for cid, part in buys.groupby("customer_key"):
        want = part.order_id.dropna().nunique() + part.order_id.isna().sum()
        if cid in got.index:
            assert got.loc[cid, "frequency"] == want
            assert got.loc[cid, "monetary"] == pytest.approx(part.amount.sum())


@pytest.mark.parametrize("as_of", ["2026-05-08", "2026-05-12T06:30:00+02:00"])
def test_past_snapshot_uses_only_events_up_to_as_of(feature_data: FeatureData,
                                                    as_of: str) -> None:
    ws = feature_data.ws
    when = parse_as_of(as_of)
    with open_engine(ws) as engine:
        report = run_features(context(ws, engine, RunSettings.resolve(ws.config, as_of=when)))
    got = stored(ws)
    assert report.as_of == when
    assert compare(got, reference(feature_data, as_of=when), ["customer_key"]) == {}
    assert (got.recency_days >= 0).all()


def test_past_snapshot_inside_sessions_cuts_them(feature_data: FeatureData) -> None:
    # an as_of between two events of sessions under way: the stored sessions (built from
    # all events) are cut there, and agree with sessionizing the earlier events alone
    ws = feature_data.ws
    with open_engine(ws) as engine:
        run_prep(context(ws, engine))
    s = table_frame(ws, "sessions")
    long = s[s.n_events >= 3].sort_values("start")
    mid = long.iloc[len(long) // 2]
    when = (mid.start + (mid.end - mid.start) / 2).to_pydatetime()
    under_way = ((s.start <= when) & (s.end > when)).sum()
    assert under_way >= 1
    with open_engine(ws) as engine:
        run_features(context(ws, engine, RunSettings.resolve(ws.config, as_of=when)))
    got = stored(ws)
    assert compare(got, reference(feature_data, as_of=when), ["customer_key"]) == {}


def test_session_timeout_option(feature_data: FeatureData) -> None:
    ws = feature_data.ws
    with open_engine(ws) as engine:
        run_features(context(ws, engine, RunSettings.resolve(ws.config, session_timeout="2h")))
    got = stored(ws)
    ref = reference(feature_data, timeout=timedelta(hours=2))
    assert compare(got, ref, ["customer_key"]) == {}


def test_opt_in_keeps_only_granted_customers(feature_data: FeatureData) -> None:
    base = feature_data.ws
    privacy = base.config.privacy.model_copy(update={"consent_mode": "opt-in"})
    ws = Workspace(base.path, base.config.model_copy(update={"privacy": privacy}))
    with open_engine(ws) as engine:
        report = run_features(context(ws, engine))
    got = stored(ws)
    # C001 refused, then granted: the latest choice counts
    assert set(got.customer_key) == {pid(feature_data, "C001")}
    assert report.customers == 1
    # a single customer: min = max, so every scaled input is 0 (recency enters as 1 - 0)
    assert got.engagement_score.iloc[0] == pytest.approx(25.0)
    with open_engine(base) as engine:
        run_features(context(base, engine))


def test_scores_and_labels(feature_data: FeatureData) -> None:
    got = stored(feature_data.ws)
    assert got.engagement_score.between(0, 100).all()
    buyers = got[got.frequency > 0]
    for col in ("r_score", "f_score", "m_score"):
        assert buyers[col].between(1, 5).all() and got.loc[got.frequency == 0, col].isna().all()
    # more recent orders never get a lower r_score
    b = buyers.sort_values("purchase_recency_days")
    assert b.r_score.is_monotonic_decreasing
    assert (buyers.rfm_label == [rfm_label(int(r), int(f)) for r, f in
                                 zip(buyers.r_score, buyers.f_score, strict=True)]).all()


def test_rfm_grid_labels_every_score_pair() -> None:
    labels = {rfm_label(r, f) for r in range(1, 6) for f in range(1, 6)}
    assert labels == {name for name, _, _ in RFM_GRID}
    assert rfm_label(5, 5) == "Champions" and rfm_label(1, 1) == "Hibernating"
    assert rfm_label(1, 5) == "Cannot Lose Them" and rfm_label(5, 1) == "New Customers"


def test_composite_is_the_first_principal_component(feature_data: FeatureData) -> None:
    ws = feature_data.ws
    with open_engine(ws) as engine:
        report = run_features(context(ws, engine))
    t = table_frame(ws, "customer_features")
    inputs = report.composite["features"]
    x = t[inputs].to_numpy(float)
    sd = x.std(axis=0)
    keep = sd > 0
    z = (x[:, keep] - x[:, keep].mean(axis=0)) / sd[keep]
    eigval, eigvec = np.linalg.eigh(np.cov(z, rowvar=False, bias=True))
    pc = z @ eigvec[:, -1]
    assert report.composite["explained_variance_ratio"] == pytest.approx(
        eigval[-1] / eigval.sum(), rel=1e-9)
    # the same axis up to sign, and the sign makes it rise with monetary
    assert abs(np.corrcoef(pc, t.composite_index)[0, 1]) == pytest.approx(1.0, abs=1e-9)
    assert np.corrcoef(t.monetary, t.composite_index)[0, 1] > 0
    assert t.composite_index.mean() == pytest.approx(0.0, abs=1e-9)


def test_prep_is_idempotent_and_reruns_when_events_change(
    feature_data: FeatureData, tmp_path
) -> None:
    ws = feature_data.ws
    with open_engine(ws) as engine:
        run_prep(context(ws, engine))
        first = [engine.execute(engine.table(n)) for n in ("identities", "sessions")]
        run_prep(context(ws, engine))
        again = [engine.execute(engine.table(n)) for n in ("identities", "sessions")]
        assert not run_features(context(ws, engine)).prep_rerun
    for a, b in zip(first, again, strict=True):
        key = list(a.columns[:2])
        pd.testing.assert_frame_equal(
            a.sort_values(key).reset_index(drop=True).astype(str),
            b.sort_values(key).reset_index(drop=True).astype(str))
    from tests.conftest import NOW
    from tests.stages import ingest
    from tribes.ingest import IngestOptions

    extra = tmp_path / "late.csv"
    extra.write_text("ts,event_type,customer_id\n2026-05-30T10:00:00Z,page_view,C777\n")
    ingest(ws, [str(extra)], IngestOptions(source="web", now=NOW))
    with open_engine(ws) as engine:
        report = run_features(context(ws, engine))
    assert report.prep_rerun
    assert report.as_of == datetime(2026, 5, 30, 10, tzinfo=UTC)
    assert pid(feature_data, "C777") in set(stored(ws).customer_key)


def test_processing_in_parts_gives_the_same_tables(feature_data: FeatureData) -> None:
    base = feature_data.ws
    prep = base.config.prep.model_copy(update={"part_events": 97})
    ws = Workspace(base.path, base.config.model_copy(update={"prep": prep}))
    with open_engine(base) as engine:
        run_prep(context(base, engine))
        whole = engine.execute(engine.table("sessions"))
    with open_engine(ws) as engine:
        run_prep(context(ws, engine))
        parted = engine.execute(engine.table("sessions"))
        run_features(context(ws, engine))
    key = ["customer_key", "start"]
    pd.testing.assert_frame_equal(
        whole.sort_values(key).reset_index(drop=True).astype(str),
        parted.sort_values(key).reset_index(drop=True).astype(str))
    assert compare(stored(ws), reference(feature_data), ["customer_key"]) == {}
