"""The engine's recency-frequency summary against a plain pandas computation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tribes.features.feature_table import parse_as_of
from tribes.models.clv.summary import UNIT_DAYS, SummarySpec, repeat_by_period, rfm_summary
from tribes.privacy.pseudonyms import pseudonym
from tribes.store.db import open_engine
from tribes.workspace import open_workspace

START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    from tribes.cli import main

    rng = np.random.default_rng(3)
    rows = []
    for c in range(150):
        n = int(rng.integers(1, 9))
        for i in range(n):
            t = START + timedelta(seconds=float(rng.uniform(0, 120 * 86400)))
            order = f"o{c}-{i}" if rng.random() < 0.7 else ""
            lines = 2 if order and rng.random() < 0.3 else 1
            for li in range(lines):
                # a second line of an order comes a few minutes later (the order's time is
                # its first line's)
                rows.append({"event_id": f"e{c}-{i}-{li}", "user_id": f"C{c:03d}",
                             "ts": (t + timedelta(minutes=3 * li)).isoformat(),
                             "event_type": "purchase", "order_id": order,
                             "amount": round(float(rng.gamma(2, 20)), 2)})
        rows.append({"event_id": f"v{c}", "user_id": f"C{c:03d}", "event_type": "page_view",
                     "ts": (START + timedelta(days=1)).isoformat(), "order_id": "",
                     "amount": ""})
    events = pd.DataFrame(rows)
    root = tmp_path_factory.mktemp("clvsum")
    events.to_csv(root / "events.csv", index=False)
    pd.DataFrame({"customer_id": ["C000", "C001"], "purpose": "analytics",
                  "granted": "no", "ts": "2026-01-01"}).to_csv(root / "consents.csv",
                                                                index=False)
    ws = root / "ws"
    for args in (["init", str(ws)], ["-w", str(ws), "ingest", str(root / "events.csv")],
                 ["-w", str(ws), "ingest", str(root / "consents.csv"), "--kind", "consents"]):
        assert main(["-q", *args]) == 0
    return ws, events


def reference(events: pd.DataFrame, cal_end: datetime, hold_end: datetime, period: str,
              unit: str, excluded: set[str]) -> pd.DataFrame:
    p = events[(events.event_type == "purchase") & ~events.user_id.isin(excluded)].copy()
    p["ts"] = pd.to_datetime(p.ts, utc=True)
    p = p[p.ts <= hold_end]
    p["order"] = np.where(p.order_id.fillna("") != "", "o" + p.order_id.fillna(""),
                          "e" + p.event_id)
    o = p.groupby(["user_id", "order"]).agg(ts=("ts", "min"), value=("amount", "sum"))
    o = o.reset_index()
    day = o.ts.dt.floor("D")
    o["period"] = day - pd.to_timedelta(day.dt.day_of_week, unit="D") if period == "week" else day
    o["holdout"] = o.ts > cal_end
    cal = o[~o.holdout].groupby(["user_id", "period"]).value.sum().reset_index()
    u = pd.Timedelta(days=UNIT_DAYS[unit])
    end_day = pd.Timestamp(cal_end).floor("D")
    end_p = end_day - pd.Timedelta(days=end_day.weekday()) if period == "week" else end_day
    out = []
    for cid, g in cal.sort_values("period").groupby("user_id"):
        n = len(g)
        out.append({"user_id": cid, "frequency": n - 1,
                    "recency": (g.period.max() - g.period.min()) / u,
                    "T": (end_p - g.period.min()) / u,
                    "monetary": (g.value.sum() - g.value.iloc[0]) / (n - 1) if n > 1 else np.nan,
                    "first_value": g.value.iloc[0]})
    ref = pd.DataFrame(out).set_index("user_id")
    hold = o[o.holdout].groupby(["user_id", "period"]).value.sum().reset_index()
    h = hold.groupby("user_id").agg(holdout_purchases=("value", "size"),
                                    holdout_value=("value", "sum"))
    ref = ref.join(h).fillna({"holdout_purchases": 0, "holdout_value": 0.0})
    return ref


@pytest.mark.parametrize(("period", "unit"), [("day", "week"), ("week", "week"),
                                              ("day", "day"), ("day", "month")])
def test_summary_matches_pandas(shop: tuple[Path, pd.DataFrame], period: str, unit: str) -> None:
    ws_path, events = shop
    ws = open_workspace(ws_path)
    cal_end, hold_end = parse_as_of("2026-03-10"), parse_as_of("2026-04-30")
    spec = SummarySpec(cal_end, hold_end, period, unit)
    with open_engine(ws, read_only=True) as e:
        got = e.execute(rfm_summary(e, spec, "opt-out"))
        reps = e.execute(repeat_by_period(e, spec, "opt-out"))
    ref = reference(events, cal_end, hold_end, period, unit, excluded={"C000", "C001"})
    names = {pseudonym(c, ws.secret()): c for c in events.user_id.unique()}
    got = got.assign(user_id=got.customer_key.map(names)).set_index("user_id")
    assert set(got.index) == set(ref.index)  # the two opted-out customers are left out
    got = got.loc[ref.index]
    for col in ("frequency", "holdout_purchases"):
        assert (got[col].astype(int) == ref[col].astype(int)).all(), col
    for col in ("recency", "T", "monetary", "first_value", "holdout_value"):
        np.testing.assert_allclose(got[col].astype(float), ref[col].astype(float), rtol=1e-9,
                                   atol=1e-9, err_msg=col)
    # the tracking series counts every repeat transaction of the calibration customers
    assert reps.repeats.sum() == ref.frequency.sum() + ref.holdout_purchases.sum()


def test_bad_specs_are_refused() -> None:
    from tribes.errors import InputError

    with pytest.raises(InputError):
        SummarySpec(parse_as_of("2026-03-10"), period="month")
    with pytest.raises(InputError):
        SummarySpec(parse_as_of("2026-03-10"), parse_as_of("2026-03-01"))
