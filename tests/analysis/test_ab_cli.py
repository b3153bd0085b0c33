"""tribes ab analyze on a workspace: assignments by raw customer id, outcomes from the
events after each exposure, per segment of the active version."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from tests.conftest import CliResult
from tribes.privacy.pseudonyms import pseudonym
from tribes.store.db import open_engine
from tribes.workspace import open_workspace


def test_ab_analyze_cli(shop, cli: Callable[..., CliResult], tmp_path) -> None:
    ws, data = shop
    truth = pd.read_csv(data / "ground_truth.csv")
    w = open_workspace(ws)
    with open_engine(w, read_only=True) as engine:
        ev = engine.execute(engine.table("events").select("customer_id", "event_type", "ts",
                                                          "amount"))
        known_ids = set(engine.execute(engine.table("identities"))["id"])
    start = pd.to_datetime(ev.ts, utc=True).min() + pd.Timedelta(days=20)
    ids = [*truth.customer_id.tolist(), "NOBODY-1"]
    exp = pd.DataFrame({"user_id": ids,
                        "group": ["A" if i % 2 else "B" for i in range(len(ids))],
                        "exposed_at": [start.isoformat()] * len(ids)})
    path = tmp_path / "exp.csv"
    exp.to_csv(path, index=False)
    r = cli("-w", ws, "ab", "analyze", "--assignments", path, "--metric", "conversion",
            "--window", "14d", "--json")
    assert r.code == 0, r.err
    res = r.json()
    assert res["control"] == "A" and res["treatment"] == "B"
    secret = w.secret()
    never_seen = sorted(c for c in ids if pseudonym(c, secret) not in known_ids)
    # by default an id that matches no customer is left out, counted and listed
    assert res["unknown_ids"] == len(never_seen) >= 1 and "NOBODY-1" in never_seen
    assert res["unknown_id_list"] == never_seen and res["unknown_ids_policy"] == "exclude"
    assert res["customers"] == len(ids) - len(never_seen)
    assert {s["segment_id"] for s in res["segments"]} == {0, 1, 2}
    n = res["overall"]["n_control"] + res["overall"]["n_treatment"]
    assert n == res["customers"] - res["excluded_by_consent"]
    # counted instead, they are exposed customers who did not convert
    counted = cli("-w", ws, "ab", "analyze", "--assignments", path, "--metric", "conversion",
                  "--window", "14d", "--unknown-ids", "count", "--json").json()
    assert counted["customers"] == len(ids)
    arm = exp.set_index("user_id").group
    extra_a = sum(arm[c] == "A" for c in never_seen)
    assert counted["overall"]["n_control"] == res["overall"]["n_control"] + extra_a
    assert counted["overall"]["control"] * counted["overall"]["n_control"] == pytest.approx(
        res["overall"]["control"] * res["overall"]["n_control"])  # the same conversions
    # the control's conversion, by hand from the events: a purchase in the 14 days after
    key = {pseudonym(c, secret): c for c in truth.customer_id}
    ts = pd.to_datetime(ev.ts, utc=True)
    bought = ev[(ev.event_type == "purchase") & (ts > start)
                & (ts <= start + pd.Timedelta(days=14))].customer_id.map(key).dropna()
    control = [c for c in exp[exp.group == "A"].user_id if c not in never_seen]
    want = np.mean([c in set(bought) for c in control])
    assert res["overall"]["control"] == pytest.approx(want)
    assert res["statement"]
    text = cli("-w", ws, "ab", "analyze", "-a", path, "--metric", "revenue", "--by", "none")
    assert text.code == 0 and "Uplift" in text.out
    bad = cli("-w", ws, "ab", "analyze", "-a", path, "--metric", "clicks")
    assert bad.code != 0
