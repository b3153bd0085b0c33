"""Every customer feature: its definition and what a null means (DESIGN §5).

This table is the one place the definitions are written down; ``features describe``, the
report and the docs read it. So are the standard feature sets: what the engagement score,
the composite index and segmentation use when ``tribes.toml`` does not choose.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tribes.errors import ConfigError

# how a feature moves when only the as_of moves (the drift check compares like with like):
# days since a moment fixed for the customer grow by exactly the move; days since the
# latest of something that recurs grow by it too, unless a new one restarts them
AGES = "ages"
RESTARTS = "restarts"


@dataclass(frozen=True)
class FeatureDef:
    name: str
    definition: str
    null_meaning: str = "never null"
    # +1 when more of it is better for the business, -1 when less is; 0 neither
    direction: int = 0
    clock: str = ""  # AGES, RESTARTS, or "" (does not move with the as_of by itself)


FEATURES: tuple[FeatureDef, ...] = (
    FeatureDef("recency_days", "days from the last event to as_of", direction=-1,
               clock=RESTARTS),
    FeatureDef("tenure_days", "days from the first event to as_of", direction=1, clock=AGES),
    FeatureDef("frequency", "distinct orders: order_id, or each purchase event without one",
               direction=1),
    FeatureDef("monetary", "sum of purchase amounts", direction=1),
    FeatureDef("aov", "average order value: monetary / orders with a known amount",
               "never purchased", direction=1),
    FeatureDef("purchase_recency_days", "days from the last order to as_of",
               "never purchased", direction=-1, clock=RESTARTS),
    FeatureDef("purchase_velocity_days",
               "mean days between consecutive distinct orders (an order's time is its "
               "earliest purchase event)", "fewer than 2 orders", direction=-1),
    FeatureDef("days_to_first_purchase", "days from the first event to the first order",
               "never purchased"),
    FeatureDef("n_events", "events of the customer up to as_of", direction=1),
    FeatureDef("n_sessions", "sessions (a gap longer than the session timeout starts one)",
               direction=1),
    FeatureDef("sessions_per_week", "n_sessions / max(tenure_days / 7, 1)", direction=1),
    FeatureDef("avg_session_duration_s",
               "mean session duration in seconds (last ts - first ts; one-event sessions "
               "count as 0)", direction=1),
    FeatureDef("events_per_session", "n_events / n_sessions", direction=1),
    FeatureDef("distinct_categories", "distinct non-null product categories on any event",
               direction=1),
    FeatureDef("cart_abandonment_rate",
               "sessions with add_to_cart and no purchase / sessions with add_to_cart",
               "no session with add_to_cart", direction=-1),
    FeatureDef("support_contacts", "events from the source 'support'"),
    FeatureDef("engagement_score",
               "100 x weighted sum of min-max scaled sessions_per_week, events_per_session, "
               "distinct_categories and 1 - scaled recency_days (weights in "
               "[features.engagement_weights], normalized to sum 1)", direction=1),
    FeatureDef("r_score", "recency quintile 1-5 among purchasers (5 = most recent order)",
               "never purchased", direction=1),
    FeatureDef("f_score", "frequency quintile 1-5 among purchasers", "never purchased",
               direction=1),
    FeatureDef("m_score", "monetary quintile 1-5 among purchasers", "never purchased",
               direction=1),
    FeatureDef("rfm_label", "classic RFM segment from r_score and f_score (Champions, Loyal, "
               "At Risk, ...)", "never purchased"),
    FeatureDef("composite_index",
               "first principal component of the standardized composite inputs "
               "([features] composite), sign chosen so higher = more valuable", direction=1),
)

BY_NAME = {f.name: f for f in FEATURES}

# the inputs of engagement_score ([features.engagement_weights] weighs them; recency enters
# as 1 - scaled recency_days)
ENGAGEMENT_INPUTS = ("sessions_per_week", "events_per_session", "distinct_categories",
                     "recency_days")
# the inputs of composite_index unless [features] composite chooses
COMPOSITE_DEFAULT = ("recency_days", "tenure_days", "frequency", "monetary", "n_events",
                     "n_sessions", "sessions_per_week", "events_per_session",
                     "avg_session_duration_s", "distinct_categories")
# the features segmented on unless [segment] features (or --features) chooses
SEGMENT_FEATURES = ("recency_days", "tenure_days", "frequency", "monetary", "aov",
                    "sessions_per_week", "events_per_session", "avg_session_duration_s",
                    "distinct_categories", "cart_abandonment_rate", "support_contacts")


def engagement_weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    """The weights of the engagement score's inputs: ``weights`` (checked), or equal ones
    when ``tribes.toml`` sets none."""
    if weights is None:
        return dict.fromkeys(ENGAGEMENT_INPUTS, 0.25)
    unknown = sorted(set(weights) - set(ENGAGEMENT_INPUTS))
    if unknown:
        raise ConfigError(f"[features.engagement_weights] names unknown inputs {unknown}; "
                          f"use {', '.join(ENGAGEMENT_INPUTS)}")
    return dict(weights)


def composite_features(chosen: Sequence[str] | None) -> list[str]:
    """The composite index's inputs: ``chosen``, else the standard ones."""
    return list(COMPOSITE_DEFAULT if chosen is None else chosen)


def segment_features(chosen: Sequence[str] | None) -> list[str]:
    """The features segmented on: ``chosen``, else the standard ones."""
    return list(SEGMENT_FEATURES if chosen is None else chosen)

CHANNEL_PREFIX = "channel_share_"
DEVICE_PREFIX = "device_share_"
OTHER = "other"
# share columns: one per frequent value, plus <prefix>other for the rest
MIX_DEF = {
    CHANNEL_PREFIX: ("channel", "no event with a channel"),
    DEVICE_PREFIX: ("device type", "no event with a device type"),
}


def _mix_def(column: str, prefix: str) -> FeatureDef:
    what, null_meaning = MIX_DEF[prefix]
    value = column[len(prefix):]
    which = f"any less common {what}" if value == OTHER else f"{what} '{value}'"
    return FeatureDef(column, f"share of the customer's events with a {what} that have "
                      f"{which}", null_meaning)


# classic RFM labels from the (r_score, f_score) grid; first match wins
RFM_GRID: tuple[tuple[str, tuple[int, int], tuple[int, int]], ...] = (
    ("Champions", (5, 5), (4, 5)),
    ("Loyal Customers", (3, 4), (4, 5)),
    ("Potential Loyalists", (4, 5), (2, 3)),
    ("New Customers", (5, 5), (1, 1)),
    ("Promising", (4, 4), (1, 1)),
    ("Need Attention", (3, 3), (3, 3)),
    ("About to Sleep", (3, 3), (1, 2)),
    ("Cannot Lose Them", (1, 2), (5, 5)),
    ("At Risk", (1, 2), (3, 4)),
    ("Hibernating", (1, 2), (1, 2)),
)


def rfm_label(r: int, f: int) -> str:
    """The RFM label of one (r_score, f_score) pair (the grid covers every pair)."""
    for name, (r_lo, r_hi), (f_lo, f_hi) in RFM_GRID:
        if r_lo <= r <= r_hi and f_lo <= f <= f_hi:
            return name
    raise ValueError(f"scores out of range: r={r}, f={f}")


def definition(column: str) -> FeatureDef | None:
    """The definition of a stored feature column (share columns by their prefix)."""
    if column in BY_NAME:
        return BY_NAME[column]
    for prefix in MIX_DEF:
        if column.startswith(prefix):
            return _mix_def(column, prefix)
    return None


_WORDS = {"aov": "average order value", "rfm": "RFM", "s": "(s)", "days": "(days)",
          "n": "number of"}


def short_label(column: str) -> str:
    """A readable name for cards and charts: ``channel_share_paid_search`` -> "share of
    channel paid_search", ``recency_days`` -> "recency (days)"."""
    for prefix, (what, _) in MIX_DEF.items():
        if column.startswith(prefix):
            return f"share of {what} {column[len(prefix):]}"
    if column == "composite_index":
        return "composite value index"
    words = [_WORDS.get(w, w) for w in column.split("_")]
    return " ".join(words).replace("number of events", "events").replace(
        "number of sessions", "sessions")
