"""Online features and segment assignment from a customer's running counters.

A customer's online feature row = their batch features (as of the version's ``as_of``)
updated by the counters of the events streamed since (DESIGN §5 definitions): counts and
sums add up, recency and tenure follow the newest event, averages and rates are
recomputed from their parts. Two are approximations, said here once: the batch's count of
sessions with a cart is not stored, so the batch rate is weighted by its session count;
distinct categories is at least the larger of the batch count and the streamed one.
The row then goes through the active version's stored transform and model
(:func:`tribes.models.methods.predict_stored`), as a batch assignment would.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from tribes.models.methods import predict_stored
from tribes.realtime.reference import Reference

DAY = 86_400.0
ONLINE_METHODS = ("kmeans", "agglomerative", "gmm", "dbscan", "hdbscan")


def _get(b: dict[str, float] | None, name: str) -> float:
    if not b:
        return 0.0
    v = b.get(name, 0.0)
    return 0.0 if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def features(ref: Reference, key: str, st: dict[str, Any], now: float) -> dict[str, float]:
    """The customer's feature values at event time ``now`` (state ``st`` as in rules.py)."""
    b = ref.base_row(key)
    ns_b = _get(b, "n_sessions")
    ne = _get(b, "n_events") + st["ne"]
    ns = max(ns_b + st["ns"], 1.0)
    tenure = max(now - st["first"], 0.0) / DAY
    frequency = _get(b, "frequency") + st["no"]
    monetary = _get(b, "monetary") + st["nm"]
    duration = (_get(b, "avg_session_duration_s") * ns_b + st["nd"]
                + (0.0 if st["sb"] else max(st["sl"] - st["ss"], 0.0))) / ns
    rate_b = b.get("cart_abandonment_rate") if b else None
    w = ns_b if rate_b is not None and not math.isnan(rate_b) else 0.0
    carts = w + st["ncs"] + st["sc"]
    abandoned = (rate_b or 0.0) * w + st["nas"] + (st["sc"] and not st["sp"])
    out = dict(b or {})
    out.update(
        recency_days=max(now - st["last"], 0.0) / DAY,
        tenure_days=tenure,
        frequency=frequency,
        monetary=monetary,
        aov=monetary / frequency if frequency > 0 else float("nan"),
        n_events=ne,
        n_sessions=ns,
        sessions_per_week=ns / max(tenure / 7.0, 1.0),
        events_per_session=ne / ns,
        avg_session_duration_s=duration,
        distinct_categories=max(_get(b, "distinct_categories"), float(len(st["cats"]))),
        cart_abandonment_rate=abandoned / carts if carts > 0 else float("nan"),
        support_contacts=_get(b, "support_contacts") + st["nsup"],
    )
    return out


def can_assign(ref: Reference) -> bool:
    return ref.transform is not None and ref.method in ONLINE_METHODS


def assign(ref: Reference, rows: list[dict[str, float]]) -> list[int]:
    """Segment ids of feature rows with the active version (vectorized)."""
    if not rows or ref.transform is None or ref.method is None:
        return []
    df = pd.DataFrame(rows, columns=list(ref.transform.features))
    x = ref.transform.apply(df)
    labels = predict_stored(ref.method, ref.model, x)
    mapping: dict[str, Any] = ref.model.get("labels_to_segments") or {}
    return [int(mapping.get(str(int(lab)), int(lab))) for lab in np.asarray(labels)]
