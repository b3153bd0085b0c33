"""Clustering methods as scikit-learn-style estimators (one contract, :class:`Segmenter`).

Each estimator fits on the (transformed) sample (``fit(x)`` returns self, with
``labels_`` and ``params_``) and knows how to assign any customer in the engine
(``assign``): nearest centroid (KMeans, agglomerative), nearest centroid within a radius
(density methods), Gaussian responsibilities (mixtures). :func:`make_segmenter` builds the
unfitted estimator of a method from the segment configuration. RFM rules need no fit at
all (see ``run.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import ibis.expr.types as ir
import numpy as np
from scipy.cluster.hierarchy import linkage
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import DBSCAN, HDBSCAN, AgglomerativeClustering, KMeans, MiniBatchKMeans
from sklearn.mixture import GaussianMixture

from tribes.models.assign import NOISE, centroid_assign, gaussian_assign, radius_assign
from tribes.stats.knee import knee_eps
from tribes.stats.scaling import Transform

if TYPE_CHECKING:
    from tribes.config import SegmentConfig

DENSITY_MAX = 20_000  # density methods run on at most this many customers
AGGLOMERATIVE_MAX = 10_000  # ward needs O(n^2) memory: fit on at most this many customers
DENDROGRAM_MERGES = 40  # the last merges kept for the report's dendrogram


def _centroid_labels(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid of each row of ``x`` (squared Euclidean)."""
    d = ((x[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    return np.argmin(d, axis=1)


def _radius_labels(x: np.ndarray, centroids: np.ndarray, radius2: np.ndarray
                   ) -> np.ndarray:
    """Index of the nearest centroid when within its squared radius, else noise."""
    if not len(centroids):
        return np.full(len(x), NOISE)
    d = ((x[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    j = np.argmin(d, axis=1)
    near = d[np.arange(len(x)), j] <= radius2[j]
    return np.where(near, j, NOISE)


def _subsample(x: np.ndarray, size: int, seed: int) -> np.ndarray:
    """At most ``size`` rows of ``x`` (a seeded random subset, in their original order)."""
    if len(x) <= size:
        return x
    rng = np.random.default_rng(seed)
    return x[np.sort(rng.choice(len(x), size, replace=False))]


class Segmenter(BaseEstimator, ClusterMixin):
    """Base of the clustering estimators (scikit-learn style: ``__init__`` stores
    parameters, ``fit`` returns self, fitted attributes end in ``_``).

    Attributes
    ----------
    labels_ : numpy.ndarray
        Label of each row of the fitted sample (-1: noise, density methods only).
    params_ : dict
        JSON-ready model parameters stored with a segment version (what
        :func:`predict_stored` needs to assign customers later).
    extra_metrics_ : dict
        Method-specific quality figures reported with the version (inertia, BIC, ...).
    probabilities : bool
        Class attribute: whether :meth:`assign` gives a membership probability (else 1).
    """

    probabilities = False
    # declared for type checkers only: set by fit (unfitted estimators do not have them)
    labels_: np.ndarray
    params_: dict[str, Any]
    extra_metrics_: dict[str, Any]

    def predict(self, X: Any) -> np.ndarray:
        """Labels of rows ``X`` (model coordinates), as :meth:`assign` gives them.

        Parameters
        ----------
        X : array-like of shape (n, p)
            Rows in the coordinates the estimator was fitted in.

        Returns
        -------
        numpy.ndarray
            One label per row.
        """
        if not hasattr(self, "labels_"):
            raise ValueError(f"{type(self).__name__} is not fitted yet")
        return self._predict(np.asarray(X, dtype=float))

    def _predict(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def assign(self, t: ir.Table, transform: Transform) -> ir.Table:
        """Every customer of ``t`` labelled in the engine (no collect).

        Parameters
        ----------
        t : ibis.expr.types.Table
            Customer table with ``customer_key`` and the raw features.
        transform : Transform
            The transform from raw features to the coordinates of the fit.

        Returns
        -------
        ibis.expr.types.Table
            ``customer_key``, ``label`` (int64) and ``probability``.
        """
        raise NotImplementedError


class CentroidSegmenter(Segmenter):
    """Shared by methods whose customers go to the nearest centre."""

    def _predict(self, x: np.ndarray) -> np.ndarray:
        return _centroid_labels(x, self.cluster_centers_)

    def assign(self, t: ir.Table, transform: Transform) -> ir.Table:
        return centroid_assign(t, transform, self.cluster_centers_)


class KMeansSegmenter(CentroidSegmenter):
    """KMeans (MiniBatchKMeans above ``minibatch_above`` rows)."""

    def __init__(self, n_clusters: int = 8, random_state: int = 0,
                 minibatch_above: int = 50_000) -> None:
        self.n_clusters = n_clusters
        self.random_state = random_state
        self.minibatch_above = minibatch_above

    def fit(self, X: Any, y: Any = None) -> KMeansSegmenter:
        x = np.asarray(X, dtype=float)
        if len(x) > self.minibatch_above:
            model: Any = MiniBatchKMeans(n_clusters=self.n_clusters,
                                         random_state=self.random_state, n_init=3,
                                         batch_size=4096).fit(x)
        else:
            model = KMeans(n_clusters=self.n_clusters, random_state=self.random_state,
                           n_init=4).fit(x)
        self.cluster_centers_ = model.cluster_centers_
        self.labels_ = model.predict(x)
        self.inertia_ = float(model.inertia_)
        self.params_ = {"centroids": self.cluster_centers_.tolist()}
        self.extra_metrics_ = {"inertia": self.inertia_}
        return self


class AgglomerativeSegmenter(CentroidSegmenter):
    """Ward agglomerative clustering on at most ``max_fit`` customers (it needs O(n^2)
    memory); everyone goes to the nearest cluster mean. Keeps the last merges of the
    dendrogram for the report."""

    def __init__(self, n_clusters: int = 8, random_state: int = 0,
                 max_fit: int = AGGLOMERATIVE_MAX) -> None:
        self.n_clusters = n_clusters
        self.random_state = random_state
        self.max_fit = max_fit

    def fit(self, X: Any, y: Any = None) -> AgglomerativeSegmenter:
        x = np.asarray(X, dtype=float)
        sub = _subsample(x, self.max_fit, self.random_state)
        k = self.n_clusters
        model = AgglomerativeClustering(n_clusters=k, linkage="ward").fit(sub)
        self.cluster_centers_ = np.stack([sub[model.labels_ == c].mean(axis=0)
                                          for c in range(k)])
        self.labels_ = self._predict(x)
        self.extra_metrics_ = {}
        tree = linkage(sub[: min(len(sub), 2000)], method="ward")
        self.params_ = {
            "centroids": self.cluster_centers_.tolist(), "fitted_on": len(sub),
            "dendrogram": {"linkage_tail": tree[-DENDROGRAM_MERGES:].tolist(),
                           "n_leaves": int(min(len(sub), 2000))}}
        return self


class GaussianMixtureSegmenter(Segmenter):
    """Gaussian mixture (full or diagonal covariance); assignment by responsibilities,
    with the membership probability kept."""

    probabilities = True

    def __init__(self, n_components: int = 8, covariance: str = "full",
                 random_state: int = 0) -> None:
        self.n_components = n_components
        self.covariance = covariance
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> GaussianMixtureSegmenter:
        x = np.asarray(X, dtype=float)
        if self.covariance not in ("full", "diag"):
            raise ValueError(f"covariance '{self.covariance}' is not supported; use full or "
                             "diag")
        model = GaussianMixture(n_components=self.n_components,
                                covariance_type=self.covariance,
                                random_state=self.random_state, n_init=2,
                                reg_covar=1e-5).fit(x)
        self.model_ = model
        if self.covariance == "full":
            self.precisions_cholesky_ = model.precisions_cholesky_
        else:
            self.precisions_cholesky_ = np.stack([np.diag(v)
                                                  for v in model.precisions_cholesky_])
        self.means_, self.weights_ = model.means_, model.weights_
        self.labels_ = model.predict(x)
        self.bic_ = float(model.bic(x))
        self.params_ = {"means": self.means_.tolist(),
                        "precisions_cholesky": self.precisions_cholesky_.tolist(),
                        "weights": self.weights_.tolist(), "covariance": self.covariance,
                        "dims": x.shape[1]}
        self.extra_metrics_ = {"bic": self.bic_, "converged": bool(model.converged_)}
        return self

    def _predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model_.predict(x))

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.asarray(self.model_.predict_proba(np.asarray(X, dtype=float)))

    def bic(self, X: Any) -> float:
        return float(self.model_.bic(np.asarray(X, dtype=float)))

    def assign(self, t: ir.Table, transform: Transform) -> ir.Table:
        return gaussian_assign(t, transform, self.means_, self.precisions_cholesky_,
                           self.weights_)


class DensitySegmenter(Segmenter):
    """DBSCAN (eps from the k-distance knee) or HDBSCAN on at most ``max_fit`` customers.

    Every customer then goes to the nearest cluster centre when within that cluster's
    radius (95th percentile of its members' distances to the centre), else to noise (-1).
    """

    def __init__(self, method: str = "hdbscan", min_samples: int = 10,
                 min_cluster_share: float = 0.02, random_state: int = 0,
                 max_fit: int = DENSITY_MAX) -> None:
        self.method = method
        self.min_samples = min_samples
        self.min_cluster_share = min_cluster_share
        self.random_state = random_state
        self.max_fit = max_fit

    def fit(self, X: Any, y: Any = None) -> DensitySegmenter:
        x = np.asarray(X, dtype=float)
        sub = _subsample(x, self.max_fit, self.random_state)
        params: dict[str, Any] = {"fitted_on": len(sub), "min_samples": self.min_samples}
        if self.method == "dbscan":
            eps = knee_eps(sub, self.min_samples)
            found = DBSCAN(eps=eps, min_samples=self.min_samples).fit(sub).labels_
            params["eps"] = eps
        elif self.method == "hdbscan":
            size = max(self.min_samples, int(self.min_cluster_share * len(sub)))
            found = HDBSCAN(min_cluster_size=size, min_samples=self.min_samples,
                            copy=True).fit(sub).labels_
            params["min_cluster_size"] = size
        else:
            raise ValueError(f"unknown density method '{self.method}'")
        ids = sorted(int(c) for c in set(found) - {NOISE})
        if ids:
            self.cluster_centers_ = np.stack([sub[found == c].mean(axis=0) for c in ids])
            self.radius2_ = np.array([
                np.percentile(((sub[found == c] - self.cluster_centers_[j]) ** 2).sum(axis=1),
                              95) for j, c in enumerate(ids)])
        else:
            self.cluster_centers_, self.radius2_ = np.zeros((0, x.shape[1])), np.zeros(0)
        params.update(centroids=self.cluster_centers_.tolist(), radius2=self.radius2_.tolist(),
                      noise_share_in_fit=float(np.mean(found == NOISE)))
        self.params_ = params
        self.labels_ = self._predict(x)
        self.extra_metrics_ = {}
        return self

    def _predict(self, x: np.ndarray) -> np.ndarray:
        return _radius_labels(x, self.cluster_centers_, self.radius2_)

    def assign(self, t: ir.Table, transform: Transform) -> ir.Table:
        return radius_assign(t, transform, self.cluster_centers_, self.radius2_)


DENSITY = ("dbscan", "hdbscan")
CLUSTERING = ("kmeans", "gmm", "agglomerative", *DENSITY)


def make_segmenter(method: str, k: int, cfg: SegmentConfig, random_state: int
                   ) -> Segmenter:
    """The unfitted estimator of a clustering method, set up from the configuration.

    Parameters
    ----------
    method : str
        One of ``kmeans``, ``gmm``, ``agglomerative``, ``dbscan``, ``hdbscan``.
    k : int
        Number of segments; ignored by the density methods, which find it themselves.
    cfg : SegmentConfig
        The segment configuration (``minibatch_above``, ``covariance``, ``min_samples``,
        ``min_cluster_share``).
    random_state : int
        Seed of the fit (and of the subsample the agglomerative and density methods fit
        on).

    Returns
    -------
    Segmenter
        Unfitted; ``make_segmenter(...).fit(x)`` returns the fitted estimator.

    Raises
    ------
    ValueError
        For a method that is not a clustering method (such as ``rfm``).
    """
    if method == "kmeans":
        return KMeansSegmenter(k, random_state, cfg.minibatch_above)
    if method == "gmm":
        return GaussianMixtureSegmenter(k, cfg.covariance, random_state)
    if method == "agglomerative":
        return AgglomerativeSegmenter(k, random_state)
    if method in DENSITY:
        return DensitySegmenter(method, cfg.min_samples, cfg.min_cluster_share,
                                random_state)
    raise ValueError(f"'{method}' is not a clustering method; use one of "
                     f"{', '.join(CLUSTERING)}")


def sizes(labels: Sequence[int]) -> dict[int, int]:
    values, counts = np.unique(np.asarray(labels), return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True)}


def predict_stored(method: str, params: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Model labels of rows ``x`` (model coordinates) from a version's stored parameters,
    as the engine assignment gives them; used for online assignment. RFM rules have no
    coordinates: ValueError."""
    if method in ("kmeans", "agglomerative"):
        return _centroid_labels(x, np.asarray(params["centroids"], dtype=float))
    if method in DENSITY:
        return _radius_labels(x, np.asarray(params["centroids"], dtype=float),
                              np.asarray(params["radius2"], dtype=float))
    if method == "gmm":
        means = np.asarray(params["means"], dtype=float)
        chol = np.asarray(params["precisions_cholesky"], dtype=float)
        logw = np.log(np.asarray(params["weights"], dtype=float))
        # log N(x | mu_c, Sigma_c) up to the shared constant, plus log pi_c
        scores = np.stack([
            -0.5 * (((x - means[c]) @ chol[c]) ** 2).sum(axis=1)
            + np.log(np.diag(chol[c])).sum() + logw[c] for c in range(len(means))], axis=1)
        return np.argmax(scores, axis=1)
    raise ValueError(f"segments of method '{method}' cannot be assigned online")


def stored_segments(method: str, model: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Segment ids of rows ``x`` (model coordinates) under a stored version: its model's
    labels mapped to the version's stable segment ids."""
    labels = np.asarray(predict_stored(method, model, x), dtype=int)
    mapping: dict[str, Any] = model.get("labels_to_segments") or {}
    if not mapping:
        return labels
    lookup = {int(a): int(b) for a, b in mapping.items()}
    return np.fromiter((lookup.get(int(v), int(v)) for v in labels), dtype=int,
                       count=len(labels))
