"""Clustering methods behind one small interface.

Each method fits a scikit-learn estimator on the (transformed) sample and knows how to
assign any customer in the engine: nearest centroid (KMeans, agglomerative), Gaussian
responsibilities (mixtures). RFM rules need no fit at all (see ``run.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
from scipy.cluster.hierarchy import linkage
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import DBSCAN, HDBSCAN, AgglomerativeClustering, KMeans, MiniBatchKMeans
from sklearn.mixture import GaussianMixture

from tribes.models.assign import nearest_centroid
from tribes.stats.knee import knee_eps
from tribes.stats.scaling import Transform

NOISE = -1
DENSITY_MAX = 20_000  # density methods run on at most this many customers
AGGLOMERATIVE_MAX = 10_000  # ward needs O(n^2) memory: fit on at most this many customers
DENDROGRAM_MERGES = 40  # the last merges kept for the report's dendrogram


@dataclass
class Fitted:
    """A fitted method: labels of the sample, parameters to store, engine assignment."""

    labels: np.ndarray
    params: dict[str, Any]
    assign: Callable[[ir.Table, Transform], ir.Table]
    predict: Callable[[np.ndarray], np.ndarray]
    probabilities: bool = False
    extra_metrics: dict[str, Any] = field(default_factory=dict)


def _centroid_predict(centroids: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    def predict(x: np.ndarray) -> np.ndarray:
        d = ((x[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
        return np.argmin(d, axis=1)
    return predict


def _centroid_assign(centroids: np.ndarray) -> Callable[[ir.Table, Transform], ir.Table]:
    def assign(t: ir.Table, transform: Transform) -> ir.Table:
        a = nearest_centroid(t, transform, centroids.tolist())
        return a.select("customer_key", "label", probability=ibis.literal(1.0))
    return assign


def _radius_predict(centroids: np.ndarray, radius2: np.ndarray, ids: list[int]
                    ) -> Callable[[np.ndarray], np.ndarray]:
    def predict(x: np.ndarray) -> np.ndarray:
        d = ((x[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
        j = np.argmin(d, axis=1)
        near = d[np.arange(len(x)), j] <= radius2[j]
        return np.where(near, np.array(ids)[j], NOISE)
    return predict


def _radius_assign(centroids: np.ndarray, radius2: np.ndarray, ids: list[int]
                   ) -> Callable[[ir.Table, Transform], ir.Table]:
    def assign(t: ir.Table, transform: Transform) -> ir.Table:
        a = nearest_centroid(t, transform, centroids.tolist())
        limit = ibis.cases(*[(a.label == j, float(r)) for j, r in enumerate(radius2)],
                           else_=0.0)
        label = ibis.cases(*[(a.label == j, i) for j, i in enumerate(ids)], else_=NOISE)
        return a.select("customer_key",
                        label=ibis.ifelse(a.distance2 <= limit, label, NOISE).cast("int64"),
                        probability=ibis.literal(1.0))
    return assign


def _gmm_assign(t: ir.Table, transform: Transform, means: np.ndarray, chol: np.ndarray,
                weights: np.ndarray, key: str = "customer_key") -> ir.Table:
    """Responsibilities of each component as engine expressions; label = the most likely."""
    z = transform.exprs(t)
    coords = t.select(key, **{f"_z{i}": e for i, e in enumerate(z)}).view()
    p = len(z)
    logs: dict[str, ir.FloatingValue] = {}
    for c in range(len(means)):
        # log N(x | mu, Sigma) + log pi = -0.5 (p log 2pi + |(x - mu) U|^2) + log det U + log pi
        const = (-0.5 * p * np.log(2 * np.pi) + float(np.log(np.diag(chol[c])).sum())
                 + float(np.log(weights[c])))
        sq: ir.FloatingValue = ibis.literal(0.0)
        for j in range(p):
            y: ir.FloatingValue = ibis.literal(0.0)
            for i in range(p):
                if chol[c][i][j] != 0.0:
                    y = y + (coords[f"_z{i}"] - float(means[c][i])) * float(chol[c][i][j])
            sq = sq + y * y
        logs[f"_l{c}"] = sq * -0.5 + const
    lt = coords.select(key, **logs).view()
    cols = [lt[n] for n in logs]
    top = ibis.greatest(*cols) if len(cols) > 1 else cols[0]
    total: ir.FloatingValue = ibis.literal(0.0)
    for col in cols:
        total = total + (col - top).exp()
    label = ibis.cases(*[(col == top, i) for i, col in enumerate(cols)], else_=0)
    return lt.select(key, label=label.cast("int64"), probability=1.0 / total)


def _subsample(x: np.ndarray, size: int, seed: int) -> np.ndarray:
    """At most ``size`` rows of ``x`` (a seeded random subset, in their original order)."""
    if len(x) <= size:
        return x
    rng = np.random.default_rng(seed)
    return x[np.sort(rng.choice(len(x), size, replace=False))]


class Segmenter(BaseEstimator, ClusterMixin):
    """Base of the clustering estimators (scikit-learn style: ``__init__`` stores
    parameters, ``fit`` returns self, fitted attributes end in ``_``).

    Besides ``labels_`` and ``predict`` each knows how to assign customers in the engine
    (``assign``) and what to store with a segment version (``params_``).
    """

    probabilities = False

    def predict(self, X: Any) -> np.ndarray:
        if not hasattr(self, "labels_"):
            raise ValueError(f"{type(self).__name__} is not fitted yet")
        return self._predict(np.asarray(X, dtype=float))

    def _predict(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def assign(self, t: ir.Table, transform: Transform) -> ir.Table:
        raise NotImplementedError

    def to_fitted(self) -> Fitted:
        return Fitted(labels=self.labels_, params=self.params_, assign=self.assign,
                      predict=self.predict, probabilities=self.probabilities,
                      extra_metrics=dict(getattr(self, "extra_metrics_", {})))


class CentroidSegmenter(Segmenter):
    """Shared by methods whose customers go to the nearest centre."""

    def _predict(self, x: np.ndarray) -> np.ndarray:
        return _centroid_predict(self.cluster_centers_)(x)

    def assign(self, t: ir.Table, transform: Transform) -> ir.Table:
        return _centroid_assign(self.cluster_centers_)(t, transform)


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
        return _gmm_assign(t, transform, self.means_, self.precisions_cholesky_,
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
        return self

    def _predict(self, x: np.ndarray) -> np.ndarray:
        if not len(self.cluster_centers_):
            return np.full(len(x), NOISE)
        ids = list(range(len(self.cluster_centers_)))
        return _radius_predict(self.cluster_centers_, self.radius2_, ids)(x)

    def assign(self, t: ir.Table, transform: Transform) -> ir.Table:
        if not len(self.cluster_centers_):
            return t.select("customer_key", label=ibis.literal(NOISE, type="int64"),
                            probability=ibis.literal(1.0))
        ids = list(range(len(self.cluster_centers_)))
        return _radius_assign(self.cluster_centers_, self.radius2_, ids)(t, transform)


def fit_density(x: np.ndarray, method: str, seed: int, min_samples: int = 10,
                min_cluster_share: float = 0.02) -> Fitted:
    return DensitySegmenter(method, min_samples, min_cluster_share, seed).fit(x).to_fitted()


def fit_kmeans(x: np.ndarray, k: int, seed: int, minibatch_above: int = 50_000) -> Fitted:
    return KMeansSegmenter(k, seed, minibatch_above).fit(x).to_fitted()


def fit_gmm(x: np.ndarray, k: int, seed: int, covariance: str = "full") -> Fitted:
    return GaussianMixtureSegmenter(k, covariance, seed).fit(x).to_fitted()


def fit_agglomerative(x: np.ndarray, k: int, seed: int) -> Fitted:
    return AgglomerativeSegmenter(k, seed).fit(x).to_fitted()


def fitter(method: str, cfg: Any) -> Callable[[np.ndarray, int, int], Fitted]:
    """``fit(x, k, seed)`` for a clustering method."""
    if method == "kmeans":
        return lambda x, k, s: fit_kmeans(x, k, s, cfg.minibatch_above)
    if method == "gmm":
        return lambda x, k, s: fit_gmm(x, k, s, cfg.covariance)
    if method == "agglomerative":
        return fit_agglomerative
    if method in DENSITY:
        return lambda x, k, s: fit_density(x, method, s, cfg.min_samples,
                                           cfg.min_cluster_share)
    raise ValueError(method)


DENSITY = ("dbscan", "hdbscan")


class _Labelled:
    """Adapter so k selection sees ``labels_`` (and ``bic`` for mixtures)."""

    def __init__(self, fitted: Fitted, x: np.ndarray) -> None:
        self.labels_ = fitted.labels
        self._bic = fitted.extra_metrics.get("bic")

    def bic(self, x: np.ndarray) -> float:
        return float(self._bic) if self._bic is not None else float("nan")


def for_selection(fit: Callable[[np.ndarray, int, int], Fitted]
                  ) -> Callable[[np.ndarray, int, int], Any]:
    return lambda x, k, s: _Labelled(fit(x, k, s), x)


def sizes(labels: Sequence[int]) -> dict[int, int]:
    values, counts = np.unique(np.asarray(labels), return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True)}


def predict_stored(method: str, params: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Model labels of rows ``x`` (model coordinates) from a version's stored parameters,
    as the engine assignment gives them; used for online assignment. RFM rules have no
    coordinates: ValueError."""
    if method in ("kmeans", "agglomerative"):
        return _centroid_predict(np.asarray(params["centroids"], dtype=float))(x)
    if method in DENSITY:
        centroids = np.asarray(params["centroids"], dtype=float)
        if not len(centroids):
            return np.full(len(x), NOISE)
        return _radius_predict(centroids, np.asarray(params["radius2"], dtype=float),
                               list(range(len(centroids))))(x)
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
