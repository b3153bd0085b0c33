"""The standard feature sets: defined features, used when tribes.toml leaves them unset,
and the ones the tribes.toml of ``tribes init`` shows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.test_config import shown
from tribes.config import Config, FeaturesConfig
from tribes.errors import ConfigError
from tribes.features.definitions import (
    BY_NAME,
    COMPOSITE_DEFAULT,
    ENGAGEMENT_INPUTS,
    SEGMENT_FEATURES,
    composite_features,
    engagement_weights,
    segment_features,
)
from tribes.features.feature_table import features_params
from tribes.settings import RunSettings


def test_standard_sets_name_defined_features() -> None:
    unknown = {n for n in (*ENGAGEMENT_INPUTS, *COMPOSITE_DEFAULT, *SEGMENT_FEATURES)
               if n not in BY_NAME}
    assert unknown == set()


def test_unset_means_the_standard_set() -> None:
    cfg = Config()
    assert segment_features(cfg.segment.features) == list(SEGMENT_FEATURES)
    assert composite_features(cfg.features.composite) == list(COMPOSITE_DEFAULT)
    assert engagement_weights(cfg.features.engagement_weights) == dict.fromkeys(
        ENGAGEMENT_INPUTS, 0.25)
    assert segment_features(["monetary"]) == ["monetary"] and segment_features([]) == []
    assert composite_features(["a", "b"]) == ["a", "b"]
    assert engagement_weights({"recency_days": 2.0}) == {"recency_days": 2.0}


def test_tribes_toml_shows_the_standard_sets() -> None:
    toml = shown()
    assert toml["segment"]["features"] == list(SEGMENT_FEATURES)
    assert toml["features"]["composite"] == list(COMPOSITE_DEFAULT)
    assert toml["features"]["engagement_weights"] == engagement_weights(None)


def test_unknown_engagement_input_is_a_config_error() -> None:
    weights = FeaturesConfig(engagement_weights={"recency": 1.0}).engagement_weights
    with pytest.raises(ConfigError, match=r"unknown inputs \['recency'\]; use sessions_per_week"):
        engagement_weights(weights)


def test_stored_run_parameters_spell_out_the_sets_used() -> None:
    as_of = datetime(2026, 6, 30, tzinfo=UTC)
    unset = features_params(RunSettings(), as_of, FeaturesConfig().model_dump())
    explicit = FeaturesConfig(composite=list(COMPOSITE_DEFAULT),
                              engagement_weights=dict.fromkeys(ENGAGEMENT_INPUTS, 0.25))
    assert unset == features_params(RunSettings(), as_of, explicit.model_dump())
    assert unset["composite"] == list(COMPOSITE_DEFAULT)
