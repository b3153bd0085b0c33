"""Analysis tests reuse the small workspace of the feature tests."""

from tests.features.conftest import feature_data

__all__ = ["feature_data"]
