"""The silhouette of k selection and of every version: scikit-learn's figure, faster."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import silhouette_score

from tribes.stats import silhouette


@pytest.mark.parametrize(("n", "k", "dims", "block"), [
    (4000, 6, 11, 1024),  # what k selection scores: 4,000 rows of the 11 features
    (999, 3, 2, 100),  # blocks that do not divide the rows
    (300, 25, 5, 1024),
    (40, 2, 1, 7),
])
def test_equals_scikit_learn(n: int, k: int, dims: int, block: int) -> None:
    x, y = make_blobs(n_samples=n, centers=k, n_features=dims, cluster_std=2.5,
                      random_state=n)
    assert silhouette(x, y, block=block) == pytest.approx(silhouette_score(x, y),
                                                          rel=1e-9, abs=1e-12)


def test_rows_alone_in_their_cluster_and_identical_rows() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 3))
    alone = np.r_[np.zeros(27), 1, 2, 3]  # three clusters of one row score 0
    assert silhouette(x, alone) == pytest.approx(silhouette_score(x, alone), rel=1e-9)
    same = np.r_[np.zeros((5, 2)), np.ones((5, 2))]  # a = 0 everywhere
    halves = np.r_[np.zeros(5), np.ones(5)]
    assert silhouette(same, halves) == silhouette_score(same, halves) == 1.0
    labels = np.array(["b", "a", "b", "a", "c", "c"])  # any labels, not only 0..k-1
    x6 = rng.normal(size=(6, 2))
    assert silhouette(x6, labels) == pytest.approx(silhouette_score(x6, labels), rel=1e-9)


@pytest.mark.parametrize("k", [1, 10])
def test_needs_two_to_n_minus_one_clusters(k: int) -> None:
    x = np.arange(20.0).reshape(10, 2)
    with pytest.raises(ValueError, match="2 to n - 1 clusters"):
        silhouette(x, np.arange(10) % k)
