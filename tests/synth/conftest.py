"""Shared fixtures for the synthetic data generator tests."""

from __future__ import annotations

import pandas as pd
import pytest
from synth_testlib import SynthData, load

from tribes.synth import SynthConfig, generate


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory: pytest.TempPathFactory) -> SynthData:
    """3,000 customers in three chunks (so ids must be unique across chunks)."""
    out = tmp_path_factory.mktemp("synth") / "data"
    cfg = SynthConfig(out=out, customers=3000, days=120, seed=11, start="2026-02-01",
                      chunk_customers=1000, defect_rate=0.004)
    generate(cfg)
    return load(out, cfg)


@pytest.fixture(scope="session")
def stitched(synth_data: SynthData) -> pd.DataFrame:
    """All valid web, app, purchase and support events with their customer id."""
    d = synth_data
    has_id = (d.web["cookie_id"] != "") | (d.web["user_id"] != "")
    web = d.web[d.web["t"].notna() & (d.web["t"] < d.end) & has_id]
    link = web.loc[(web.cookie_id != "") & (web.user_id != ""), ["cookie_id", "user_id"]]
    cookie_owner = link.drop_duplicates().set_index("cookie_id")["user_id"]
    web_cid = web["user_id"].where(web["user_id"] != "", web["cookie_id"].map(cookie_owner))
    app = d.app
    inst = app.dropna(subset=["userId"]).drop_duplicates("installId")
    app_cid = app["installId"].map(inst.set_index("installId")["userId"])
    pur = d.purchases[d.purchases.amount >= 0]
    sup_t = pd.to_datetime(d.support.created, format="%d/%m/%Y %H:%M", utc=True)
    parts = [
        pd.DataFrame({"cid": web_cid, "t": web["t"], "src": "web", "name": web.event_name}),
        pd.DataFrame({"cid": app_cid, "t": pd.to_datetime(app.eventTime, unit="ms", utc=True),
                      "src": "app", "name": app.eventName}),
        pd.DataFrame({"cid": pur.member_no, "t": pur.sold_at, "src": "purchase",
                      "name": "purchase"}),
        pd.DataFrame({"cid": d.support.customer_id, "t": sup_t, "src": "support",
                      "name": "support"}),
    ]
    ev = pd.concat([p.astype({"t": "datetime64[us, UTC]"}) for p in parts], ignore_index=True)
    return ev.merge(d.truth, left_on="cid", right_on="customer_id", how="left")
