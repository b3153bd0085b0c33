"""File contract, manifest counts, defects and determinism of ``tribes.synth``."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from synth_testlib import SynthData, load

from tribes.synth import SynthConfig, generate
from tribes.synth.tables import WEB_COLUMNS

APP_KEYS = ["eventId", "eventTime", "eventName", "installId", "userId", "platform", "screen",
            "productId", "category"]


def _digests(out: Path) -> dict[str, str]:
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*")) if p.is_file()
    }


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    def cfg(name: str, seed: int) -> SynthConfig:
        return SynthConfig(out=tmp_path / name, seed=seed, customers=900, days=60,
                           chunk_customers=300)

    a = generate(cfg("a", 3))
    b = generate(cfg("b", 3))
    generate(cfg("c", 4))
    da, db, dc = _digests(tmp_path / "a"), _digests(tmp_path / "b"), _digests(tmp_path / "c")
    assert a == b
    assert da == db
    assert len(da) >= 10  # 2+ web, 2+ app, 5 other data files, manifest
    assert set(da) == set(dc)
    assert all(da[k] != dc[k] for k in da)
    # gzip members carry no time stamp or file name
    for rel in da:
        if rel.endswith(".gz"):
            head = (tmp_path / "a" / rel).read_bytes()[:10]
            assert head[3] == 0 and head[4:8] == b"\0\0\0\0"


def test_rerun_into_same_dir_replaces_numbered_files(tmp_path: Path) -> None:
    generate(SynthConfig(out=tmp_path, customers=900, days=30, chunk_customers=300, seed=1))
    m = generate(SynthConfig(out=tmp_path, customers=200, days=30, chunk_customers=300, seed=1))
    assert sorted(p.name for p in (tmp_path / "web").iterdir()) == ["web-000.csv.gz"]
    assert m["files"]["web"] == ["web/web-000.csv.gz"]


def test_file_layout_and_columns(synth_data: SynthData) -> None:
    d, m = synth_data, synth_data.manifest
    assert len(m["files"]["web"]) >= 2 and len(m["files"]["app"]) >= 2
    assert list(d.web.columns[:-1]) == list(WEB_COLUMNS)
    assert list(d.app.columns) == APP_KEYS
    out = d.cfg.out
    with gzip.open(out / m["files"]["web"][0], "rt") as fh:
        assert fh.readline().strip() == ",".join(WEB_COLUMNS)
    with gzip.open(out / m["files"]["app"][0], "rt") as fh:
        line = json.loads(fh.readline())
    assert list(line) == APP_KEYS and isinstance(line["eventTime"], int)
    schema = pq.read_schema(out / "purchases.parquet")
    assert schema.field("sold_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("amount").type == pa.float64()
    assert schema.field("quantity").type == pa.int64()
    assert pq.ParquetFile(out / "purchases.parquet").num_row_groups == 3
    assert list(d.support.columns) == ["ticket_id", "created", "customer_id", "contact_channel",
                                       "topic"]
    assert list(d.customers.columns) == ["customer_id", "email", "first_name", "last_name",
                                         "phone", "signup_date", "country", "state", "city",
                                         "age", "gender"]
    assert list(d.consents.columns) == ["customer_id", "purpose", "granted", "ts"]
    assert list(d.truth.columns) == ["customer_id", "segment"]


def test_manifest_row_counts_match_files(synth_data: SynthData) -> None:
    d, rows = synth_data, synth_data.manifest["rows"]
    assert rows["web"] == len(d.web)
    assert rows["app"] == len(d.app)
    assert rows["purchases"] == len(d.purchases)
    assert rows["support"] == len(d.support)
    assert rows["customers"] == len(d.customers) == d.cfg.customers
    assert rows["consents"] == len(d.consents)
    assert rows["ground_truth"] == len(d.truth) == d.cfg.customers
    assert synth_data.manifest["events"] == rows["web"] + rows["app"] + rows["purchases"] + rows[
        "support"]
    assert sum(synth_data.manifest["segments"].values()) == d.cfg.customers
    assert synth_data.manifest["segments"] == d.truth.segment.value_counts().to_dict()
    assert synth_data.manifest["orders"] == d.purchases.order_id.nunique()


def test_web_defects_match_manifest_and_are_disjoint(synth_data: SynthData) -> None:
    d = synth_data
    web, defects = d.web, d.manifest["defects"]["web"]
    unparseable = web["t"].isna()
    no_id = (web.cookie_id == "") & (web.user_id == "")
    future = web["t"] >= d.end + pd.Timedelta(days=30)
    assert set(defects) == {"E_TS_PARSE", "E_NO_ID", "E_TS_FUTURE"}
    assert unparseable.sum() == defects["E_TS_PARSE"] > 0
    assert no_id.sum() == defects["E_NO_ID"] > 0
    assert future.sum() == defects["E_TS_FUTURE"] > 0
    assert not (unparseable & no_id).any() and not (future & no_id).any()
    assert (web.timestamp != "").all()
    assert (web.loc[no_id, "email"] == "").all()
    # everything else is valid: id, in-range timestamp, event name
    normal = web[~(unparseable | no_id | future)]
    assert ((normal.t >= d.start) & (normal.t < d.end)).all()
    assert ((normal.cookie_id != "") | (normal.user_id != "")).all()
    assert (web.event_name != "").all()
    assert (normal.cookie_id != "").all()  # every normal web row has a cookie
    assert not web.event_name.str.lower().str.contains("purchase").any()


def test_app_duplicates_match_manifest(synth_data: SynthData) -> None:
    d = synth_data
    app = d.app
    n_dup = d.manifest["defects"]["app"]["duplicates"]
    assert n_dup > 0
    assert len(app) - app.eventId.nunique() == n_dup
    # re-deliveries are identical in every field
    assert app.astype(str).duplicated().sum() == n_dup
    t = pd.to_datetime(app.eventTime, unit="ms", utc=True)
    assert ((t >= d.start) & (t < d.end)).all()
    assert app.installId.str.fullmatch(r"in_[0-9a-f]{16}").all()
    assert (app.eventName.str.len() > 0).all()
    assert set(app.platform) <= {"ios", "android"}


def test_purchase_defects_and_values(synth_data: SynthData) -> None:
    d = synth_data
    pur = d.purchases
    n_neg = d.manifest["defects"]["purchases"]["E_AMOUNT"]
    assert (pur.amount < 0).sum() == n_neg > 0
    assert (pur.amount != 0).all()
    assert ((pur.sold_at >= d.start) & (pur.sold_at < d.end)).all()
    assert set(pur.channel) == {"web", "app", "store"}
    assert pur.store_id.isna().eq(pur.channel != "store").all()
    assert (pur.quantity >= 1).all()
    lines = pur.groupby("order_id").agg(n=("amount", "size"), t=("sold_at", "nunique"),
                                        m=("member_no", "nunique"))
    assert lines.n.between(1, 3).all() and (lines.t == 1).all() and (lines.m == 1).all()


def test_ids_are_well_formed_and_unique_across_chunks(synth_data: SynthData) -> None:
    d = synth_data
    n = d.cfg.customers
    expected = [f"C{i:07d}" for i in range(1, n + 1)]
    assert d.customers.customer_id.tolist() == expected
    assert d.truth.customer_id.tolist() == expected
    web = d.web
    ck = web.loc[web.cookie_id != "", "cookie_id"]
    assert ck.str.fullmatch(r"ck_[0-9a-f]{16}").all()
    owners = web[(web.cookie_id != "") & (web.user_id != "")].groupby("cookie_id").user_id.nunique()
    assert (owners == 1).all()
    assert set(ck) == set(owners.index)  # every cookie is stitched by some login
    per_user = web[web.user_id != ""].groupby("user_id").cookie_id.nunique()
    assert per_user.max() <= 6 and (per_user > 1).any()
    inst = d.app.dropna(subset=["userId"]).groupby("installId").userId.nunique()
    assert (inst == 1).all()
    assert d.purchases.order_id.str.fullmatch(r"O\d{11}").all()
    assert d.purchases.member_no.isin(expected).all()
    assert d.support.ticket_id.is_unique
    assert d.support.customer_id.isin(expected).all()
    assert d.customers.email.is_unique


def test_messy_values_are_present(synth_data: SynthData) -> None:
    web = synth_data.web
    names = set(web.event_name)
    assert {"page_view", "Page View", "pageView", "Product View", "Add To Cart", "login",
            "begin_checkout", "search", "remove_from_cart"} <= names
    assert {"Organic", "organic", "Paid Search", "paid_search"} <= set(web.utm_medium)
    assert {"US", "USA", "United States", "u.s.a."} <= set(web.country)
    assert {"NY", "N.Y.", "new york", "New York"} <= set(web.state)
    assert {"desktop", "Desktop", "mobile", "tablet"} <= set(web.device_type)
    ts = web.timestamp
    assert ts.str.endswith("Z").mean() > 0.7
    assert ts.str.fullmatch(r".*T.*[+-]\d{2}:\d{2}").sum() > 0
    assert ts.str.fullmatch(r"\d{13}").sum() > 0
    login = web[web.event_name == "login"]
    assert (login.email != "").all() and (login.user_id != "").all()
    assert (web.loc[web.event_name != "login", "email"] == "").all()
    assert (web.ip.str.count(r"\.") == 3).all()


def test_flat_files(synth_data: SynthData) -> None:
    d = synth_data
    created = pd.to_datetime(d.support.created, format="%d/%m/%Y %H:%M", utc=True)
    assert ((created >= d.start) & (created < d.end)).all()
    assert set(d.consents.purpose) == {"analytics", "marketing"}
    assert set(d.consents.granted) <= {"yes", "no", "true", "false", "1", "0", "granted",
                                       "denied"}
    denied = {"no", "false", "0", "denied"}
    opt_out = d.consents[(d.consents.purpose == "analytics") & d.consents.granted.isin(denied)]
    assert opt_out.customer_id.nunique() == d.manifest["analytics_opt_outs"]
    assert 0.01 < len(opt_out) / d.cfg.customers < 0.06
    for col in ("country", "state", "city", "age", "gender"):
        share = (d.customers[col] == "").mean()
        assert 0.03 < share < (0.5 if col == "state" else 0.12), col
    pd.to_datetime(d.customers.signup_date, format="%Y-%m-%d")
    assert d.customers.age[d.customers.age != ""].astype(int).between(18, 85).all()


def test_parquet_web_format(tmp_path: Path) -> None:
    cfg = SynthConfig(out=tmp_path, customers=600, days=40, chunk_customers=300, seed=5,
                      web_format="parquet", defect_rate=0.01)
    m = generate(cfg)
    assert all(f.endswith(".parquet") for f in m["files"]["web"]) and len(m["files"]["web"]) == 2
    schema = pq.read_schema(tmp_path / m["files"]["web"][0])
    assert schema.names == list(WEB_COLUMNS)
    assert all(t == pa.string() for t in schema.types)
    d = load(tmp_path, cfg)
    assert len(d.web) == m["rows"]["web"]
    assert d.web["t"].isna().sum() == m["defects"]["web"]["E_TS_PARSE"]
    no_id = (d.web.cookie_id == "") & (d.web.user_id == "")
    assert no_id.sum() == m["defects"]["web"]["E_NO_ID"]


@pytest.mark.parametrize("bad", [
    {"customers": 0}, {"days": 3}, {"chunk_customers": 0}, {"web_format": "xml"},
    {"start": "01/01/2026"}, {"defect_rate": 0.5},
])
def test_config_validation(tmp_path: Path, bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SynthConfig(out=tmp_path, **bad)  # type: ignore[arg-type]


def test_progress_is_reported_per_chunk(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    generate(SynthConfig(out=tmp_path, customers=250, days=20, chunk_customers=100),
             progress=lambda done, total: seen.append((done, total)))
    assert seen == [(100, 250), (200, 250), (250, 250)]
    assert np.all(np.diff([s[0] for s in seen]) > 0)


@pytest.mark.parametrize("kw", [
    {"customers": 40, "days": 7, "chunk_customers": 9, "start": "2027-12-28"},
    {"customers": 60, "days": 400, "chunk_customers": 25, "web_format": "parquet"},
])
def test_rules_hold_for_unusual_configs(tmp_path: Path, kw: dict[str, Any]) -> None:
    cfg = SynthConfig(out=tmp_path, seed=2, defect_rate=0.02, **kw)
    m = generate(cfg)
    d = load(tmp_path, cfg)
    web = d.web
    bad_ts = web.t.isna()
    no_id = (web.cookie_id == "") & (web.user_id == "")
    future = web.t >= d.end + pd.Timedelta(days=30)
    assert (bad_ts.sum(), no_id.sum(), future.sum()) == (
        m["defects"]["web"]["E_TS_PARSE"], m["defects"]["web"]["E_NO_ID"],
        m["defects"]["web"]["E_TS_FUTURE"])
    normal = web[~(bad_ts | no_id | future)]
    assert ((normal.t >= d.start) & (normal.t < d.end)).all()
    app_t = pd.to_datetime(d.app.eventTime, unit="ms", utc=True)
    assert ((app_t >= d.start) & (app_t < d.end)).all()
    assert ((d.purchases.sold_at >= d.start) & (d.purchases.sold_at < d.end)).all()
    assert (d.purchases.amount < 0).sum() == m["defects"]["purchases"]["E_AMOUNT"]
    assert len(d.app) - d.app.eventId.nunique() == m["defects"]["app"]["duplicates"]
    assert m["rows"]["web"] == len(web) and m["rows"]["app"] == len(d.app)
