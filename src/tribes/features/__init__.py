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

__all__ = [
    "AGES",
    "FEATURES",
    "FEATURES_TABLE",
    "RESTARTS",
    "RFM_GRID",
    "STATE_TABLE",
    "FeaturesReport",
    "base_features",
    "definition",
    "describe_features",
    "features_params",
    "last_features",
    "parse_as_of",
    "run_features",
    "scored_features",
    "segment_features",
    "short_label",
]
