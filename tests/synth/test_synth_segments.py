"""The planted segments differ as designed, computed from the raw files."""

from __future__ import annotations

import pandas as pd
from synth_testlib import SynthData


def _per_customer(synth_data: SynthData, stitched: pd.DataFrame) -> pd.DataFrame:
    d = synth_data
    pur = d.purchases[d.purchases.amount >= 0]
    orders = pur.groupby("order_id").agg(cid=("member_no", "first"), amount=("amount", "sum"))
    f = d.truth.set_index("customer_id")
    f["orders"] = orders.groupby("cid").size()
    f["aov"] = orders.groupby("cid").amount.mean()
    f["support"] = d.support.groupby("customer_id").size()
    ev = stitched.dropna(subset=["cid"])
    f["first"] = ev.groupby("cid").t.min()
    f["last"] = ev.groupby("cid").t.max()
    online = ev[ev.src.isin(["web", "app"])]
    f["online_events"] = online.groupby("cid").size()
    f["app_share"] = (online.src == "app").groupby(online.cid).mean()
    return f.fillna({"orders": 0, "support": 0, "online_events": 0})


def test_all_events_are_attributable(stitched: pd.DataFrame) -> None:
    # normal rows always stitch to a customer (via their cookie's or install's login)
    assert stitched.cid.notna().all()
    assert stitched.segment.notna().all()


def test_segments_are_separated(synth_data: SynthData, stitched: pd.DataFrame) -> None:
    d = synth_data
    f = _per_customer(d, stitched)
    seg = f.groupby("segment")
    orders = seg.orders.mean()
    assert orders["window_shoppers"] < 0.1 * orders["loyal_high_spenders"]
    assert orders["bargain_hunters"] > 3 * orders["window_shoppers"]
    assert f.loc[f.segment == "new_explorers", "orders"].max() <= 1
    aov = seg.aov.median()
    assert aov["loyal_high_spenders"] > 3 * aov["bargain_hunters"]

    span = d.end - d.start
    lapsing = f[f.segment == "lapsing_buyers"]
    assert (lapsing["last"] < d.start + 0.6 * span).all()
    explorers = f[f.segment == "new_explorers"]
    assert (explorers["first"] >= d.start + 0.8 * span).all()
    loyal = f[f.segment == "loyal_high_spenders"]
    assert (loyal["last"] >= d.end - pd.Timedelta(days=7)).mean() > 0.9
    assert (loyal["first"] < d.start + 0.2 * span).all()

    support = seg.support.mean()
    assert (f.loc[f.segment == "support_heavy", "support"] >= 4).all()
    assert support.drop("support_heavy").max() < 1
    app_share = seg.app_share.mean()
    assert app_share["support_heavy"] > 0.6
    assert app_share[["window_shoppers", "new_explorers"]].max() == 0


def test_window_shoppers_abandon_carts(stitched: pd.DataFrame) -> None:
    ev = stitched.dropna(subset=["cid"]).sort_values(["cid", "t"]).reset_index(drop=True)
    gap = ev.groupby("cid").t.diff()
    ev["sid"] = (gap.isna() | (gap > pd.Timedelta(minutes=30))).cumsum()
    name = ev.name.str.lower().str.replace(" ", "_")
    sess = pd.DataFrame({
        "segment": ev.groupby("sid").segment.first(),
        "cart": (name == "add_to_cart").groupby(ev.sid).any(),
        "bought": (ev.src == "purchase").groupby(ev.sid).any(),
    })
    carts = sess[sess.cart]
    abandon = (~carts.bought).groupby(carts.segment).mean()
    assert abandon["window_shoppers"] > 0.9
    assert abandon["loyal_high_spenders"] < 0.2
    assert 0.15 < abandon["bargain_hunters"] < 0.6


def test_online_purchases_fall_inside_a_session(synth_data: SynthData) -> None:
    d = synth_data
    pur = d.purchases[d.purchases.channel.isin(["web", "app"])]
    web = d.web[(d.web.user_id != "") & d.web.t.notna()]
    app = d.app.dropna(subset=["userId"])
    known = pd.concat([
        pd.DataFrame({"cid": web.user_id, "t": web.t}),
        pd.DataFrame({"cid": app.userId, "t": pd.to_datetime(app.eventTime, unit="ms", utc=True)}),
    ]).astype({"t": "datetime64[us, UTC]"})
    known = known[known.t < d.end].sort_values("t")
    left = pur[["member_no", "sold_at", "order_id"]].sort_values("sold_at")
    hit = pd.merge_asof(left, known, left_on="sold_at", right_on="t", left_by="member_no",
                        right_by="cid", direction="backward")
    delay = hit.sold_at - hit.t
    assert delay.notna().all()
    assert (delay <= pd.Timedelta(minutes=30)).all()
    assert (delay <= pd.Timedelta(minutes=3)).mean() > 0.99


def test_segment_sizes_follow_shares(synth_data: SynthData) -> None:
    sizes = synth_data.truth.segment.value_counts(normalize=True)
    assert len(sizes) >= 5
    assert sizes.min() > 0.05
    assert abs(sizes["window_shoppers"] - 0.22) < 0.01
