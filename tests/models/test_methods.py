"""The segmenter contract: scikit-learn-style estimators that also assign in the engine."""

from __future__ import annotations

import json

import ibis
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from tribes.config import SegmentConfig
from tribes.engine import connect
from tribes.models import CLUSTERING, METHODS
from tribes.models.methods import (
    NOISE,
    SEGMENTERS,
    AgglomerativeSegmenter,
    DBSCANSegmenter,
    GaussianMixtureSegmenter,
    HDBSCANSegmenter,
    KMeansSegmenter,
    Segmenter,
    make_segmenter,
    predict_stored,
    segmenter_class,
)
from tribes.stats.scaling import fit_transform

FEATS = ["f1", "f2", "f3"]
CFG = SegmentConfig(features=FEATS, log1p=[])


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    x, _ = make_blobs(n_samples=900, centers=4, n_features=3, cluster_std=0.8,
                      random_state=7)
    return pd.DataFrame(x * [1.0, 10.0, 100.0], columns=FEATS).assign(
        customer_key=[f"c{i:04d}" for i in range(len(x))])


def _estimators() -> list[tuple[str, Segmenter]]:
    """Each method as the segment stage builds it, and the variants behind its options."""
    made = [(m, make_segmenter(m, 4, CFG, 3)) for m in CLUSTERING]
    return [*made,
            ("kmeans", KMeansSegmenter(4, random_state=3, minibatch_above=100)),
            ("gmm", GaussianMixtureSegmenter(4, "diag", random_state=3)),
            # fitted on a subsample: the other customers go to the nearest cluster
            ("agglomerative", AgglomerativeSegmenter(4, random_state=3, max_fit=300)),
            ("hdbscan", HDBSCANSegmenter(random_state=3, max_fit=400))]


ESTIMATORS = _estimators()
IDS = [f"{m}-{type(e).__name__}-{i}" for i, (m, e) in enumerate(ESTIMATORS)]


@pytest.mark.parametrize(("method", "est"), ESTIMATORS, ids=IDS)
def test_estimator_contract(sample: pd.DataFrame, method: str, est: Segmenter) -> None:
    params = est.get_params()
    assert "random_state" in params
    # __init__ stores its parameters and nothing else
    assert set(vars(est)) == set(params)
    with pytest.raises(NotFittedError):
        check_is_fitted(est)
    with pytest.raises(NotFittedError):
        est.predict(sample[FEATS].to_numpy())
    twin = clone(est)
    assert twin is not est and twin.get_params() == params

    x = fit_transform(sample, FEATS, log1p=[]).apply(sample)
    assert twin.fit(x) is twin
    fitted_attrs = set(vars(twin)) - set(params)
    assert fitted_attrs and all(a.endswith("_") for a in fitted_attrs)
    assert {"labels_", "params_", "extra_metrics_"} <= fitted_attrs
    check_is_fitted(twin)
    assert twin.get_params() == params  # fitting leaves the parameters alone
    assert len(twin.labels_) == len(x) and (twin.predict(x) == twin.labels_).all()
    found = set(twin.labels_.tolist()) - {NOISE}
    assert len(found) == 4
    # stored parameters are plain JSON and assign later customers the same way
    stored = json.loads(json.dumps(twin.params_))
    assert (predict_stored(method, stored, x) == twin.labels_).all()
    # same seed, same labels
    again = clone(est).fit(x)
    assert (again.labels_ == twin.labels_).all() and again.params_ == twin.params_


@pytest.mark.parametrize(("method", "est"), ESTIMATORS, ids=IDS)
def test_assign_in_the_engine_agrees_with_predict(sample: pd.DataFrame, method: str,
                                                  est: Segmenter) -> None:
    transform = fit_transform(sample, FEATS, log1p=[])
    x = transform.apply(sample)
    est = clone(est).fit(x)
    engine = connect(None)
    got = engine.execute(est.assign(ibis.memtable(sample), transform))
    assert list(got.columns) == ["customer_key", "label", "probability"]
    got = got.set_index("customer_key").loc[sample.customer_key]
    assert (got.label.to_numpy() == est.predict(x)).all()
    if est.probabilities:
        want = est.predict_proba(x).max(axis=1)
        assert np.allclose(got.probability.to_numpy(), want, atol=1e-9)
    else:
        assert (got.probability == 1.0).all()


def test_a_density_fit_without_clusters_calls_everyone_noise() -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.uniform(size=(200, 3)), columns=FEATS).assign(
        customer_key=[f"u{i:03d}" for i in range(200)])
    transform = fit_transform(df, FEATS, log1p=[])
    x = transform.apply(df)
    est = HDBSCANSegmenter(min_cluster_share=0.9, random_state=0).fit(x)
    assert (est.labels_ == NOISE).all() and est.params_["centroids"] == []
    assert (predict_stored("hdbscan", est.params_, x) == NOISE).all()
    got = connect(None).execute(est.assign(ibis.memtable(df), transform))
    assert (got.label == NOISE).all() and len(got) == len(df)


def test_make_segmenter_follows_the_configuration() -> None:
    cfg = SegmentConfig(features=FEATS, minibatch_above=123, covariance="diag",
                        min_samples=7, min_cluster_share=0.05)
    # the settings that are not in the configuration keep the defaults of the estimators
    assert make_segmenter("kmeans", 5, cfg, 9).get_params() == {
        "n_clusters": 5, "random_state": 9, "minibatch_above": 123, "n_init": 4,
        "minibatch_n_init": 3, "batch_size": 4096}
    assert make_segmenter("gmm", 5, cfg, 9).get_params() == {
        "n_components": 5, "covariance": "diag", "random_state": 9, "n_init": 2,
        "reg_covar": 1e-5}
    assert make_segmenter("agglomerative", 5, cfg, 9).get_params()["n_clusters"] == 5
    dbscan = make_segmenter("dbscan", 5, cfg, 9)
    assert isinstance(dbscan, DBSCANSegmenter) and dbscan.get_params() == {
        "min_samples": 7, "random_state": 9, "max_fit": 20_000, "eps": None,
        "radius_percentile": 95.0}
    hdbscan = make_segmenter("hdbscan", 5, cfg, 9)
    assert isinstance(hdbscan, HDBSCANSegmenter) and hdbscan.get_params() == {
        "min_samples": 7, "min_cluster_share": 0.05, "random_state": 9, "max_fit": 20_000,
        "radius_percentile": 95.0}
    with pytest.raises(ValueError, match="not a clustering method"):
        make_segmenter("rfm", 5, cfg, 9)
    with pytest.raises(ValueError, match="cannot be assigned online"):
        predict_stored("rfm", {}, np.zeros((1, 3)))


def test_the_registry_names_every_clustering_method() -> None:
    # the light list the command line shows is the registry's (plus rule-based RFM)
    assert tuple(SEGMENTERS) == CLUSTERING
    assert METHODS[:-1] == CLUSTERING and METHODS[-1] == "rfm"
    for name, cls in SEGMENTERS.items():
        assert segmenter_class(name) is cls and issubclass(cls, Segmenter)
        assert isinstance(make_segmenter(name, 3, CFG, 0), cls)
    assert [n for n, c in SEGMENTERS.items() if c.finds_k] == ["dbscan", "hdbscan"]


def test_ward_tree_cut_at_every_k_is_scikit_learns_agglomerative_clustering() -> None:
    from scipy.cluster.hierarchy import linkage
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import adjusted_rand_score

    from tribes.models.methods import cut_tree, ward_tree

    x, _ = make_blobs(n_samples=600, centers=5, n_features=4, cluster_std=1.5,
                      random_state=11)
    tree = ward_tree(x)
    assert ward_tree(x.copy()) is tree  # the same rows: the tree is not built again
    assert ward_tree(x[:-1]) is not tree
    np.testing.assert_array_equal(tree, linkage(x, method="ward"))
    for k in (1, 2, 3, 5, 8, 30, len(x)):
        labels = cut_tree(tree, k)
        assert sorted(np.unique(labels)) == list(range(k))
        if 1 < k < len(x):
            ref = AgglomerativeClustering(n_clusters=k, linkage="ward").fit(x).labels_
            assert adjusted_rand_score(ref, labels) == 1.0
    with pytest.raises(ValueError, match="cannot cut"):
        cut_tree(tree, len(x) + 1)


def test_agglomerative_keeps_the_top_of_the_tree_it_clustered() -> None:
    x, _ = make_blobs(n_samples=500, centers=3, n_features=3, random_state=2)
    est = AgglomerativeSegmenter(3, random_state=0, max_fit=400).fit(x)
    tree = est.params_["dendrogram"]
    assert tree["n_leaves"] == est.params_["fitted_on"] == 400
    tail = np.asarray(tree["linkage_tail"])
    assert tail.shape == (40, 4) and np.all(np.diff(tail[:, 2]) >= 0)
    assert tail[-1, 3] == 400  # the last merge joins every fitted customer
