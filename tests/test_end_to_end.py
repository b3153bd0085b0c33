"""Synthetic data through the CLI: quarantine counts equal the planted defects exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import table
from tribes.privacy.pseudonyms import pseudonym
from tribes.synth import SynthConfig, generate
from tribes.workspace import open_workspace

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth")
    manifest = generate(SynthConfig(out=out, customers=1500, days=120, seed=3,
                                    chunk_customers=500))
    return out, manifest


def test_ingest_all_sources_matches_the_manifest(cli, tmp_path: Path, synth_data) -> None:
    data, manifest = synth_data
    ws = tmp_path / "shop"
    assert cli("init", ws).code == 0

    def ingest(*args: str | Path) -> dict:
        r = cli("--workspace", ws, "ingest", *args, "--json")
        assert r.code == 0, r.err
        s = r.json()
        assert s["loaded"] + s["duplicates"] + s["quarantined_total"] == s["rows_read"]
        return s

    web = ingest(str(data / "web" / "*.csv.gz"), "--source", "web")
    assert web["rows_read"] == manifest["rows"]["web"]
    assert web["quarantined"] == manifest["defects"]["web"]
    assert web["duplicates"] == 0

    app = ingest(data / "app", "--source", "app")
    assert app["rows_read"] == manifest["rows"]["app"]
    assert app["duplicates"] == manifest["defects"]["app"]["duplicates"]
    assert app["quarantined"] == {}

    pos = ingest(data / "purchases.parquet", "--source", "pos", "--event-type", "purchase",
                 "--map", "ts=sold_at,customer_id=member_no")
    assert pos["quarantined"] == manifest["defects"]["purchases"]

    sup = ingest(data / "support.csv", "--source", "support", "--event-type", "support_contact",
                 "--map", "event_id=ticket_id,ts=created", "--ts-format", "%d/%m/%Y %H:%M")
    assert sup["loaded"] == manifest["rows"]["support"]

    cust = ingest(data / "customers.csv", "--kind", "customers")
    assert cust["loaded"] == manifest["rows"]["customers"]
    cons = ingest(data / "consents.csv", "--kind", "consents")
    assert cons["quarantined"] == {}

    again = ingest(str(data / "web" / "*.csv.gz"), "--source", "web")
    # the bad rows are held in the quarantine already: duplicates too, not quarantined
    assert again["loaded"] == 0 and again["quarantined_total"] == 0
    assert again["duplicates"] == web["loaded"] + web["quarantined_total"]
    assert again["already_quarantined"] == web["quarantined_total"]

    w = open_workspace(ws)
    events = table(w, "events")
    assert events.event_id.is_unique
    assert set(events.event_type) >= {"page_view", "add_to_cart", "purchase", "login",
                                      "support_contact"}
    # messy spellings were standardized
    assert set(events.country.dropna()) <= {"United States", "Canada", "United Kingdom",
                                            "Germany"}
    assert "New York" in set(events.region) and "N.Y." not in set(events.region)
    # every planted customer is known, under its pseudonym
    truth = (data / "ground_truth.csv").read_text().splitlines()[1:]
    key = w.secret()
    known = set(events.customer_id.dropna())
    assert {pseudonym(line.split(",")[0], key) for line in truth} <= known
    customers = table(w, "customers")
    assert customers.customer_id.isin(known).all()
    status = cli("--workspace", ws, "status", "--json").json()
    assert status["ingest_totals"]["batches"] == 7
    assert json.dumps(status)  # serializable

    # prep and features: equal to the pandas reference, and the planted behaviors show
    run = cli("--workspace", ws, "run", "--json")
    assert run.code == 0, run.err
    assert run.json()["prep"]["stitching"]["known_ids"] == len(truth)
    check_features(w, data)

    # segmentation with default settings recovers the planted segments
    seg = cli("--workspace", ws, "segment", "--json")
    assert seg.code == 0, seg.err
    out = seg.json()
    assert out["k"] == 6
    check_segments(w, data, out["version"])
    check_personas(cli, ws, w, data, out["version"])
    check_clv(cli, ws, w, data)


def check_clv(cli, ws: Path, w, data: Path) -> None:
    """CLV and churn risk line up with the planted behaviors, and reach the personas."""
    import pandas as pd

    fit = cli("--workspace", ws, "clv", "fit", "--json")
    assert fit.code == 0, fit.err
    assert fit.json()["holdout"]["customers"] > 0 and fit.json()["auto_holdout"]
    score = cli("--workspace", ws, "clv", "score", "--json")
    assert score.code == 0, score.err
    clv = table(w, "clv")
    truth = pd.read_csv(data / "ground_truth.csv")
    truth["customer_key"] = [pseudonym(c, w.secret()) for c in truth.customer_id]
    per = clv.merge(truth, on="customer_key").groupby("segment")[
        ["p_alive", "churn_risk", "clv"]].mean()
    assert per.churn_risk.idxmax() == "lapsing_buyers" and per.p_alive.idxmin() == (
        "lapsing_buyers")
    assert per.clv.idxmax() == "loyal_high_spenders"
    personas = cli("--workspace", ws, "personas", "--json").json()["personas"]
    by_name = {p["name"]: p for p in personas}
    lapsing = by_name[PLANTED_NAMES["lapsing_buyers"]]["churn"]
    loyal = by_name[PLANTED_NAMES["loyal_high_spenders"]]["churn"]
    assert lapsing["share"] > 0.5 > loyal["share"]
    assert "not validated" in lapsing["model"] and not lapsing["validated"]
    loyal_clv = by_name[PLANTED_NAMES["loyal_high_spenders"]]["clv"]
    assert loyal_clv["clv_mean"] == max(p["clv"]["clv_mean"] for p in personas if p["clv"])
    churn = cli("--workspace", ws, "clv", "churn", "--days", "30", "--json")
    assert churn.code == 0, churn.err
    c = churn.json()
    best = c["better_on_purchasers"]
    aucs = {"gradient_boosting": c["gradient_boosting"]["purchasers"]["auc"],
            **{f"p_alive:{m}": v["auc"] for m, v in c["p_alive_models"].items()}}
    assert aucs[best] >= max(aucs.values()) - 0.005
    # both find churners far better than chance on the planted lapsing customers
    assert c["gradient_boosting"]["purchasers"]["auc"] > 0.6
    assert c["p_alive"]["purchasers"]["auc"] > 0.6
    # personas now show the churn risk of the model that validated best, named
    assert c["scored"]["stored"] and c["scored"]["model"] == best
    personas = cli("--workspace", ws, "personas", "--json").json()["personas"]
    by_name = {p["name"]: p for p in personas}
    lapsing = by_name[PLANTED_NAMES["lapsing_buyers"]]["churn"]
    loyal = by_name[PLANTED_NAMES["loyal_high_spenders"]]["churn"]
    assert lapsing["validated"] and lapsing["model"] == c["scored"]["label"]
    assert lapsing["share"] > 0.5 > loyal["share"]


PLANTED_NAMES = {"loyal_high_spenders": "High-value loyalists",
                 "bargain_hunters": "Bargain hunters", "window_shoppers": "Window shoppers",
                 "new_explorers": "New explorers", "lapsing_buyers": "Lapsing former buyers",
                 "support_heavy": "Support-heavy customers"}


def check_personas(cli, ws: Path, w, data: Path, version: int) -> None:
    import pandas as pd

    r = cli("--workspace", ws, "personas", "--json")
    assert r.code == 0, r.err
    names = {p["segment_id"]: p["name"] for p in r.json()["personas"]}
    a = table(w, "segment_assignments")
    a = a[a.version == version]
    truth = pd.read_csv(data / "ground_truth.csv")
    truth["customer_key"] = [pseudonym(c, w.secret()) for c in truth.customer_id]
    m = a.merge(truth, on="customer_key")
    majority = m.groupby("segment_id").segment.agg(lambda s: s.value_counts().index[0])
    # each segment is named after the behavior planted in most of its customers
    assert {s: names[s] for s in majority.index} == {
        s: PLANTED_NAMES[p] for s, p in majority.items()}
    v = cli("--workspace", ws, "validate", "--json")
    assert v.code == 0, v.err
    res = v.json()
    assert res["warning"] is None and res["kpis_differing"] == len(res["tests"])


def check_segments(w, data: Path, version: int) -> None:
    import pandas as pd
    from sklearn.metrics import adjusted_rand_score

    a = table(w, "segment_assignments")
    a = a[a.version == version]
    truth = pd.read_csv(data / "ground_truth.csv")
    truth["customer_key"] = [pseudonym(c, w.secret()) for c in truth.customer_id]
    m = a.merge(truth, on="customer_key")
    assert len(m) >= 0.95 * len(truth)  # all but customers without consent
    assert adjusted_rand_score(m.segment, m.segment_id) >= 0.8


def check_features(w, data: Path) -> None:
    import pandas as pd

    from tests.features.reference import (
        features_reference,
        key_events_reference,
        stitch_reference,
    )
    from tests.features.test_features import compare

    events = table(w, "events")
    feats = table(w, "customer_features")
    keyed = key_events_reference(events, stitch_reference(events))
    excluded = set(keyed.customer_key) - set(feats.customer_key)
    ref = features_reference(keyed, as_of=events.ts.max(), excluded=excluded)
    assert compare(feats.drop(columns=["composite_index", "as_of"]), ref, ["customer_key"]) == {}

    truth = pd.read_csv(data / "ground_truth.csv")
    truth["customer_key"] = [pseudonym(c, w.secret()) for c in truth.customer_id]
    f = feats.merge(truth, on="customer_key")
    med = f.groupby("segment")[["monetary", "frequency", "cart_abandonment_rate", "tenure_days",
                                "distinct_categories", "recency_days", "support_contacts",
                                "aov", "composite_index"]].median()
    assert med.monetary.idxmax() == "loyal_high_spenders"
    assert med.frequency.idxmin() == "window_shoppers"
    assert med.cart_abandonment_rate.idxmax() == "window_shoppers"
    assert med.tenure_days.idxmin() == "new_explorers"
    assert med.distinct_categories.idxmax() == "new_explorers"
    assert med.recency_days.idxmax() == "lapsing_buyers"
    assert med.support_contacts.idxmax() == "support_heavy"
    assert med.aov.idxmin() == "bargain_hunters"
    assert med.composite_index.idxmax() == "loyal_high_spenders"
