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

from typing import Any

import numpy as np

from tribes.models import CLUSTERING
from tribes.realtime.reference import Reference

DAY = 86_400.0
ONLINE_METHODS = CLUSTERING  # every clustering method assigns from its stored parameters


_STATE = ("ne", "ns", "first", "last", "no", "nm", "nd", "sb", "sl", "ss", "ncs", "sc",
          "nas", "sp", "nsup")


def _base(ref: Reference, keys: list[str], name: str, rows: np.ndarray) -> np.ndarray:
    """Batch values of ``name`` for the rows (NaN where a customer has no batch row)."""
    out = np.full(len(keys), np.nan)
    if name in ref.base_columns:
        have = rows >= 0
        out[have] = ref.base[rows[have], ref.base_columns.index(name)]
    return out


def feature_matrix(ref: Reference, keys: list[str], states: list[dict[str, Any]],
                   now: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """Feature values (columns ``names``) of customers at event times ``now``, from batch
    features and state (fields as in rules.py), for all customers at once."""
    rows = np.fromiter((ref.base_index.get(k, -1) for k in keys), dtype=np.int64,
                       count=len(keys))
    s = {f: np.fromiter((st[f] for st in states), dtype=float, count=len(states))
         for f in _STATE}
    cats = np.fromiter((len(st["cats"]) for st in states), dtype=float, count=len(states))

    def base0(name: str) -> np.ndarray:
        return np.nan_to_num(_base(ref, keys, name, rows), nan=0.0)

    ns_b = base0("n_sessions")
    ne = base0("n_events") + s["ne"]
    ns = np.maximum(ns_b + s["ns"], 1.0)
    tenure = np.maximum(now - s["first"], 0.0) / DAY
    frequency = base0("frequency") + s["no"]
    monetary = base0("monetary") + s["nm"]
    current = np.where(s["sb"] > 0, 0.0, np.maximum(s["sl"] - s["ss"], 0.0))
    duration = (base0("avg_session_duration_s") * ns_b + s["nd"] + current) / ns
    rate_b = _base(ref, keys, "cart_abandonment_rate", rows)
    w = np.where(np.isnan(rate_b), 0.0, ns_b)
    carts = w + s["ncs"] + s["sc"]
    abandoned = np.nan_to_num(rate_b) * w + s["nas"] + ((s["sc"] > 0) & (s["sp"] == 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        online = {
            "recency_days": np.maximum(now - s["last"], 0.0) / DAY,
            "tenure_days": tenure,
            "frequency": frequency,
            "monetary": monetary,
            "aov": np.where(frequency > 0, monetary / frequency, np.nan),
            "n_events": ne,
            "n_sessions": ns,
            "sessions_per_week": ns / np.maximum(tenure / 7.0, 1.0),
            "events_per_session": ne / ns,
            "avg_session_duration_s": duration,
            "distinct_categories": np.maximum(base0("distinct_categories"), cats),
            "cart_abandonment_rate": np.where(carts > 0, abandoned / carts, np.nan),
            "support_contacts": base0("support_contacts") + s["nsup"],
        }
    return np.column_stack([online[n] if n in online else _base(ref, keys, n, rows)
                            for n in names]) if names else np.zeros((len(keys), 0))


def can_assign(ref: Reference) -> bool:
    return ref.transform is not None and ref.method in ONLINE_METHODS


def assign(ref: Reference, keys: list[str], states: list[dict[str, Any]],
           now: np.ndarray) -> list[int]:
    """Segment ids of customers with the active version (vectorized)."""
    if not keys or ref.transform is None or ref.method is None:
        return []
    # the models' module (scikit-learn) is imported on first use, not by every command
    # that reaches this module
    from tribes.models import stored_segments

    x = ref.transform.apply_array(feature_matrix(ref, keys, states, now,
                                                 ref.transform.features))
    return stored_segments(ref.method, ref.model, x).tolist()
