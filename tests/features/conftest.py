"""A small workspace with the edge cases of DESIGN §5, built through the real ingest."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import NOW
from tests.stages import ingest
from tribes.ingest import IngestOptions
from tribes.privacy.pseudonyms import pseudonym
from tribes.store.db import init_workspace, open_engine
from tribes.workspace import Workspace

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
OFFSETS = ["Z", "+02:00", "-05:00", "+05:30"]
CATEGORIES = ["shoes", "bags", "toys", "books", None]
CHANNELS = ["email", "organic", "paid_search", "social", "direct", "referral", "affiliate",
            "display", "sms", "push", None]


def iso(t: datetime, offset: str) -> str:
    """``t`` written in the zone of ``offset`` (the same instant)."""
    if offset == "Z":
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    sign = 1 if offset[0] == "+" else -1
    h, m = int(offset[1:3]), int(offset[4:6])
    local = t + sign * timedelta(hours=h, minutes=m)
    return local.strftime("%Y-%m-%dT%H:%M:%S.%f") + offset


@dataclass
class FeatureData:
    ws: Workspace
    raw: pd.DataFrame  # what was written, with the true UTC instant per row
    secret: bytes


def make_events(seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    n = 0

    def add(t: datetime, etype: str, cid: str | None = None, anon: str | None = None,
            dev: str | None = None, source: str = "web", **extra: object) -> None:
        nonlocal n
        n += 1
        rows.append({"t": t, "event_type": etype, "customer_id": cid, "anonymous_id": anon,
                     "device_id": dev, "source": source,
                     "channel": CHANNELS[rng.integers(len(CHANNELS))],
                     "device": ["mobile", "desktop", "tablet", None][rng.integers(4)],
                     "category": CATEGORIES[rng.integers(len(CATEGORIES))],
                     "order_id": None, "amount": None, **extra})

    for c in range(40):
        cid = f"C{c:03d}"
        cookies = [f"ck{c}-{i}" for i in range(1 + c % 3)]
        t = T0 + timedelta(hours=float(rng.uniform(0, 24 * 20)))
        for s in range(int(rng.integers(1, 6))):
            cookie = cookies[s % len(cookies)]
            logged = s > 0 or c % 4 != 0  # some first sessions stay anonymous until login
            app = c % 5 == 0 and s % 2 == 1
            for _ in range(int(rng.integers(1, 7))):
                etype = str(rng.choice(["page_view", "product_view", "add_to_cart",
                                        "purchase", "search"], p=[.35, .3, .15, .1, .1]))
                extra: dict[str, object] = {}
                if etype == "purchase":
                    # orders: an id shared by two line items, or none at all
                    extra = {"amount": round(float(rng.uniform(5, 200)), 2),
                             "order_id": None if rng.random() < 0.3 else f"O{c}-{s}"}
                if app:
                    add(t, etype, cid if logged else None, None, f"dev{c}", "app", **extra)
                else:
                    add(t, etype, cid if logged else None, cookie, None, **extra)
                # in-session gaps include exactly the timeout, which must not split
                t += timedelta(seconds=float(rng.choice([5, 60, 600, 1800, 1799.5])))
            t += timedelta(seconds=float(rng.choice([1800.000001, 1801, 7200, 86400 * 2])))
        if c % 7 == 0:
            add(t, "support_contact", cid, source="support", channel=None, device=None,
                category=None)
    # one-event customer, anonymous-only visitors, a cookie+device anonymous chain
    add(T0 + timedelta(days=3), "page_view", "C900")
    for v in range(4):
        tv = T0 + timedelta(days=2 + v, minutes=7 * v)
        for k in range(3):
            add(tv + timedelta(minutes=10 * k), "product_view", None, f"visitor{v}")
    add(T0 + timedelta(days=9), "page_view", None, "visitor0", "devX", "app")
    add(T0 + timedelta(days=9, minutes=5), "add_to_cart", None, None, "devX", "app")
    # ties: two events at the same instant
    add(T0 + timedelta(days=4), "page_view", "C001", "ck1-0")
    add(T0 + timedelta(days=4), "add_to_cart", "C001", "ck1-0")
    df = pd.DataFrame(rows)
    df["ts"] = [iso(t, OFFSETS[i % len(OFFSETS)]) for i, t in enumerate(df["t"])]
    return df


@pytest.fixture(scope="session")
def feature_data(tmp_path_factory: pytest.TempPathFactory) -> FeatureData:
    root = tmp_path_factory.mktemp("features")
    ws = init_workspace(root / "ws")
    raw = make_events()
    for source, part in raw.groupby("source"):
        path = root / f"{source}.csv"
        part.drop(columns=["t", "source"]).to_csv(path, index=False)
        ingest(ws, [str(path)], IngestOptions(source=str(source), now=NOW))
    consents = pd.DataFrame({"customer_id": ["C003", "C001", "C001"],
                             "purpose": ["analytics"] * 3, "granted": [False, False, True],
                             "ts": ["2026-04-01T00:00:00Z", "2026-04-01T00:00:00Z",
                                    "2026-04-02T00:00:00Z"]})
    cpath = root / "consents.csv"
    consents.to_csv(cpath, index=False)
    ingest(ws, [str(cpath)], IngestOptions(kind="consents", now=NOW))
    return FeatureData(ws=ws, raw=raw, secret=ws.secret())


def pid(data: FeatureData, raw_id: str) -> str:
    return pseudonym(raw_id, data.secret)


def events_frame(ws: Workspace) -> pd.DataFrame:
    with open_engine(ws) as engine:
        return engine.execute(engine.table("events"))


def table_frame(ws: Workspace, name: str) -> pd.DataFrame:
    with open_engine(ws) as engine:
        return engine.execute(engine.table(name))


__all__ = ["FeatureData", "Path", "events_frame", "feature_data", "pid", "table_frame"]
