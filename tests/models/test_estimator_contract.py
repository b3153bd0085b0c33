"""Every segmenter passes scikit-learn's own estimator checks.

``parametrize_with_checks`` runs each check of scikit-learn's developer contract
(cloning, ``get_params``, input validation, ``n_features_in_``, ``NotFittedError``
before ``fit``, pickling, idempotent fits, clustering on blobs, ...) on each estimator
as it is built by default, plus the MiniBatchKMeans path of the k-means segmenter.

A check that is known to fail is listed in ``EXPECTED_FAILURES`` with its reason; it is
then an expected failure, and strict: should it pass one day, the test fails, so the list
stays true. The only check reported as skipped is scikit-learn's array API check, which
runs only when ``SCIPY_ARRAY_API`` is set (these estimators take NumPy arrays).
"""

from __future__ import annotations

from typing import Any

import pytest
from sklearn.base import BaseEstimator, is_clusterer
from sklearn.utils.estimator_checks import parametrize_with_checks

from tribes.models.methods import SEGMENTERS, KMeansSegmenter
from tribes.stats import single_threaded

# the registry's estimators with their defaults; MiniBatchKMeans above 0 rows (always)
ESTIMATORS = [cls() for cls in SEGMENTERS.values()] + [KMeansSegmenter(minibatch_above=0)]

# estimator class -> {check name: why it fails}; none at present
EXPECTED_FAILURES: dict[type, dict[str, str]] = {}


def _expected_failures(estimator: BaseEstimator) -> dict[str, str]:
    return EXPECTED_FAILURES.get(type(estimator), {})


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failures,
                         xfail_strict=True)
def test_scikit_learn_estimator_checks(estimator: BaseEstimator, check: Any) -> None:
    with single_threaded():  # hundreds of tiny fits: native thread pools only cost here
        check(estimator)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_segmenters_are_clusterers(estimator: BaseEstimator) -> None:
    assert is_clusterer(estimator)
