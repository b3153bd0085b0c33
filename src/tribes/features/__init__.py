"""Customer features (DESIGN §5): one row per customer, computed in the engine."""

from tribes.features.build import base_features, scored_features
from tribes.features.definitions import (
    AGES,
    FEATURES,
    RESTARTS,
    RFM_GRID,
    definition,
    segment_features,
    short_label,
)
from tribes.features.describe import describe_features
from tribes.features.feature_table import (
    FEATURES_TABLE,
    STATE_TABLE,
    FeaturesReport,
    features_params,
    last_features,
    parse_as_of,
    run_features,
)
from tribes.features.history import (
    HISTORY_TABLE,
    NO_PURCHASE,
    NO_SEGMENT,
    NOT_YET,
    SNAPSHOTS_TABLE,
    DatedFeatures,
    features_on,
    list_snapshots,
    parse_day,
    snapshot_features,
)

__all__ = [
    "AGES",
    "FEATURES",
    "FEATURES_TABLE",
    "HISTORY_TABLE",
    "NOT_YET",
    "NO_PURCHASE",
    "NO_SEGMENT",
    "RESTARTS",
    "RFM_GRID",
    "SNAPSHOTS_TABLE",
    "STATE_TABLE",
    "DatedFeatures",
    "FeaturesReport",
    "base_features",
    "definition",
    "describe_features",
    "features_on",
    "features_params",
    "last_features",
    "list_snapshots",
    "parse_as_of",
    "parse_day",
    "run_features",
    "scored_features",
    "segment_features",
    "short_label",
    "snapshot_features",
]
