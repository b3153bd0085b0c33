"""A plain pandas/Python implementation of stitching, sessions and features (DESIGN §5).

Written independently of the engine version, straight from the definitions, to check it
in tests and to time it against in ``benchmarks/bench_features.py``. It holds every event
in memory: use it on samples, not on production data.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from tribes.features.build import MixColumns
from tribes.features.definitions import CHANNEL_PREFIX, DEVICE_PREFIX, OTHER, rfm_label

ID_COLUMNS = ("customer_id", "anonymous_id", "device_id")


def stitch_reference(ids: pd.DataFrame, max_ids: int = 50) -> pd.DataFrame:
    """Identities from the id columns of events, by union-find (one row per id)."""
    neighbours: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
    for row in ids[list(ID_COLUMNS)].drop_duplicates().itertuples(index=False):
        present = [(c, v) for c, v in zip(ID_COLUMNS, row, strict=True)
                   if v is not None and v == v]
        for node in present:
            neighbours[node]
            for other in present:
                if other != node:
                    neighbours[node].add(other)
    shared = {n for n, nb in neighbours.items()
              if n[0] != "customer_id" and len(nb) > max_ids}
    linking = [n for n in neighbours if n[0] != "customer_id" and n not in shared]
    parent = {n: n for n in linking}

    def find(n: tuple[str, str]) -> tuple[str, str]:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for n in linking:
        for m in neighbours[n]:
            if m in parent:
                a, b = find(n), find(m)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    members: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for n in linking:
        members[find(n)].append(n)
    rows = []
    for comp in members.values():
        known = {m[1] for n in comp for m in neighbours[n] if m[0] == "customer_id"}
        anon_key = "anon:" + min(n[1] for n in comp)
        if len(known) == 1:
            key, status = next(iter(known)), "linked"
        else:
            key, status = anon_key, "anonymous" if not known else "ambiguous"
        rows += [(n[1], n[0], key, status) for n in comp]
    rows += [(n[1], n[0], "anon:" + n[1], "shared") for n in shared]
    rows += [(n[1], n[0], n[1], "known") for n in neighbours if n[0] == "customer_id"]
    return pd.DataFrame(rows, columns=["id", "id_type", "customer_key", "status"])


def key_events_reference(events: pd.DataFrame, identities: pd.DataFrame) -> pd.DataFrame:
    """Events with the customer_key of their customer_id, else anonymous_id, else device_id."""
    lookup = {(t, i): k for i, t, k in identities[["id", "id_type", "customer_key"]]
              .itertuples(index=False)}
    keys = []
    for c, a, d in events[list(ID_COLUMNS)].itertuples(index=False):
        if c is not None and c == c:
            keys.append(c)
        elif a is not None and a == a:
            keys.append(lookup[("anonymous_id", a)])
        else:
            keys.append(lookup[("device_id", d)])
    return events.assign(customer_key=keys)


def sessionize_reference(keyed: pd.DataFrame, timeout: timedelta) -> pd.DataFrame:
    """Keyed events sorted by customer_key and time with ``session_seq`` added; events at
    one instant by source, then device (nulls last), so the first row of a session is the
    event the session takes its source and device from."""
    e = keyed.sort_values(["customer_key", "ts", "source", "device"],
                          na_position="last").reset_index(drop=True)
    gap = e.groupby("customer_key")["ts"].diff()
    start = gap.isna() | (gap > pd.Timedelta(timeout))
    return e.assign(session_start=start,
                    session_seq=start.astype("int64").groupby(e["customer_key"]).cumsum())


def sessions_reference(keyed: pd.DataFrame, timeout: timedelta) -> pd.DataFrame:
    """One row per session, as the ``sessions`` table defines it."""
    e = sessionize_reference(keyed, timeout)
    g = e.groupby(["customer_key", "session_seq"], sort=True)
    first = g.head(1).set_index(["customer_key", "session_seq"])
    out = pd.DataFrame({
        "start": g["ts"].min(),
        "end": g["ts"].max(),
        "n_events": g.size(),
        "event_types": g["event_type"].agg(lambda s: sorted(set(s.dropna()))),
        "has_add_to_cart": g["event_type"].agg(lambda s: bool((s == "add_to_cart").any())),
        "has_purchase": g["event_type"].agg(lambda s: bool((s == "purchase").any())),
        "source": first["source"],
        "device": first["device"],
    })
    out["duration_s"] = (out["end"] - out["start"]).dt.total_seconds()
    return out.reset_index()


def _days(delta: pd.Series) -> pd.Series:
    return delta.dt.total_seconds() / 86400.0


def _mix(e: pd.DataFrame, column: str, prefix: str, top: int) -> MixColumns:
    counts = e[column].dropna().value_counts()
    order = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    values = tuple(str(v) for v, _ in order[:top])
    return MixColumns(column, prefix, values, len(order) > top)


def _quintile(values: pd.Series, ascending: bool) -> pd.Series:
    # 1 + floor(5 x share of purchasers strictly worse), ties share a score
    worse = values.rank(method="min", ascending=ascending) - 1
    return np.minimum(5, 1 + np.floor(worse * 5 / len(values))).astype("int64")


def features_reference(
    keyed: pd.DataFrame,
    *,
    as_of: datetime,
    timeout: timedelta = timedelta(minutes=30),
    weights: Mapping[str, float] | None = None,
    mix_values: int = 8,
    excluded: set[str] = frozenset(),  # type: ignore[assignment]
) -> pd.DataFrame:
    """Every customer feature except composite_index, one row per customer_key."""
    weights = weights or {"sessions_per_week": 0.25, "events_per_session": 0.25,
                          "distinct_categories": 0.25, "recency_days": 0.25}
    as_of_ts = pd.Timestamp(as_of)
    e = keyed[keyed["ts"] <= as_of_ts]
    e = sessionize_reference(e, timeout)
    g = e.groupby("customer_key")
    f = pd.DataFrame({"first": g["ts"].min(), "last": g["ts"].max(), "n_events": g.size()})
    f["recency_days"] = _days(as_of_ts - f["last"])
    f["tenure_days"] = _days(as_of_ts - f["first"])

    p = e[e["event_type"] == "purchase"].copy()
    p["order"] = np.where(p["order_id"].notna(), "o" + p["order_id"].astype(str),
                          "e" + p["event_id"].astype(str))
    orders = p.groupby(["customer_key", "order"]).agg(ts=("ts", "min"),
                                                       amount=("amount", "sum"))
    og = orders.groupby(level=0)
    f["frequency"] = og.size().reindex(f.index).fillna(0).astype("int64")
    f["monetary"] = og["amount"].sum().reindex(f.index).fillna(0.0)
    first_order = og["ts"].min().reindex(f.index)
    last_order = og["ts"].max().reindex(f.index)
    f["aov"] = (f["monetary"] / f["frequency"]).where(f["frequency"] > 0)
    f["purchase_recency_days"] = _days(as_of_ts - last_order)
    gaps = orders.reset_index().sort_values(["customer_key", "ts"]).groupby("customer_key")[
        "ts"].diff()
    mean_gap = _days(gaps).groupby(orders.reset_index().sort_values(
        ["customer_key", "ts"])["customer_key"]).mean()
    f["purchase_velocity_days"] = mean_gap.reindex(f.index).where(f["frequency"] >= 2)
    f["days_to_first_purchase"] = _days(first_order - f["first"])

    e = e.assign(is_atc=e["event_type"] == "add_to_cart",
                 is_purchase=e["event_type"] == "purchase",
                 is_support=e["source"] == "support")
    sess = e.groupby(["customer_key", "session_seq"]).agg(
        start=("ts", "min"), end=("ts", "max"), atc=("is_atc", "any"),
        bought=("is_purchase", "any"))
    sess["dur"] = (sess["end"] - sess["start"]).dt.total_seconds()
    sg = sess.groupby(level=0)
    f["n_sessions"] = sg.size()
    f["sessions_per_week"] = f["n_sessions"] / np.maximum(f["tenure_days"] / 7, 1)
    f["avg_session_duration_s"] = sg["dur"].mean()
    f["events_per_session"] = f["n_events"] / f["n_sessions"]
    f["distinct_categories"] = g["category"].nunique()
    atc = sg["atc"].sum()
    abandoned = (sess["atc"] & ~sess["bought"]).groupby(level=0).sum()
    f["cart_abandonment_rate"] = (abandoned / atc).where(atc > 0)
    f["support_contacts"] = e.groupby("customer_key")["is_support"].sum().astype("int64")

    for column, prefix in (("channel", CHANNEL_PREFIX), ("device", DEVICE_PREFIX)):
        mix = _mix(e, column, prefix, mix_values)
        has = e[column].notna().astype("int64").groupby(e["customer_key"]).sum()
        for value, name in mix.names().items():
            n = (e[column] == value).astype("int64").groupby(e["customer_key"]).sum()
            f[name] = (n / has).where(has > 0)
        if mix.has_other:
            other = (e[column].notna() & ~e[column].isin(mix.values)).astype("int64")
            f[prefix + OTHER] = (other.groupby(e["customer_key"]).sum() / has).where(has > 0)

    f = f[~f.index.isin(excluded)].copy()

    def scaled(s: pd.Series) -> pd.Series:
        lo, hi = s.min(), s.max()
        return (s - lo) / (hi - lo) if hi > lo else s * 0.0

    total = sum(weights.values())
    f["engagement_score"] = 100 * (
        weights.get("sessions_per_week", 0) / total * scaled(f["sessions_per_week"])
        + weights.get("events_per_session", 0) / total * scaled(f["events_per_session"])
        + weights.get("distinct_categories", 0) / total * scaled(f["distinct_categories"])
        + weights.get("recency_days", 0) / total * (1 - scaled(f["recency_days"])))
    buyers = f[f["frequency"] > 0]
    f["r_score"] = _quintile(buyers["purchase_recency_days"], ascending=False)
    f["f_score"] = _quintile(buyers["frequency"], ascending=True)
    f["m_score"] = _quintile(buyers["monetary"], ascending=True)
    f["rfm_label"] = [rfm_label(int(r), int(q)) if r == r else None
                      for r, q in zip(f["r_score"], f["f_score"], strict=True)]
    f["known"] = ~f.index.str.startswith("anon:")
    f.index.name = "customer_key"
    return f.drop(columns=["first", "last"]).reset_index()
