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
from sklearn.cluster import DBSCAN, HDBSCAN, AgglomerativeClustering, KMeans, MiniBatchKMeans
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors

from tribes.models.assign import nearest_centroid
from tribes.models.preprocess import Transform

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


def knee_eps(x: np.ndarray, min_samples: int) -> float:
    """DBSCAN eps: the knee of the sorted distances to the min_samples-th neighbour."""
    nn = NearestNeighbors(n_neighbors=min_samples).fit(x)
    dist = np.sort(nn.kneighbors(x)[0][:, -1])
    xn = np.linspace(0.0, 1.0, len(dist))
    span = dist[-1] - dist[0]
    if span <= 0:
        return float(dist[-1]) or 1.0
    yn = (dist - dist[0]) / span
    return float(dist[int(np.argmax(xn - yn))])


def fit_density(x: np.ndarray, method: str, seed: int, min_samples: int = 10,
                min_cluster_share: float = 0.02) -> Fitted:
    """DBSCAN (eps from the k-distance knee) or HDBSCAN on a sample.

    Every customer then goes to the nearest cluster centre when within that cluster's
    radius (95th percentile of its members' distances to the centre), else to noise (-1).
    """
    rng = np.random.default_rng(seed)
    idx = np.arange(len(x)) if len(x) <= DENSITY_MAX else np.sort(
        rng.choice(len(x), DENSITY_MAX, replace=False))
    sub = x[idx]
    params: dict[str, Any] = {"fitted_on": len(sub), "min_samples": min_samples}
    if method == "dbscan":
        eps = knee_eps(sub, min_samples)
        found = DBSCAN(eps=eps, min_samples=min_samples).fit(sub).labels_
        params["eps"] = eps
    else:
        size = max(min_samples, int(min_cluster_share * len(sub)))
        found = HDBSCAN(min_cluster_size=size, min_samples=min_samples,
                        copy=True).fit(sub).labels_
        params["min_cluster_size"] = size
    ids = sorted(int(c) for c in set(found) - {NOISE})
    if not ids:
        centroids, radius2 = np.zeros((0, x.shape[1])), np.zeros(0)
    else:
        centroids = np.stack([sub[found == c].mean(axis=0) for c in ids])
        radius2 = np.array([np.percentile(((sub[found == c] - centroids[j]) ** 2).sum(axis=1),
                                          95) for j, c in enumerate(ids)])
    params.update(centroids=centroids.tolist(), radius2=radius2.tolist(),
                  noise_share_in_fit=float(np.mean(found == NOISE)))
    if not ids:
        def none(xx: np.ndarray) -> np.ndarray:
            return np.full(len(xx), NOISE)

        def assign_none(t: ir.Table, transform: Transform) -> ir.Table:
            return t.select("customer_key", label=ibis.literal(NOISE, type="int64"),
                            probability=ibis.literal(1.0))
        return Fitted(labels=none(x), params=params, assign=assign_none, predict=none)
    predict = _radius_predict(centroids, radius2, list(range(len(ids))))
    return Fitted(labels=predict(x), params=params,
                  assign=_radius_assign(centroids, radius2, list(range(len(ids)))),
                  predict=predict)


def fit_kmeans(x: np.ndarray, k: int, seed: int, minibatch_above: int = 50_000) -> Fitted:
    if len(x) > minibatch_above:
        model: Any = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3,
                                     batch_size=4096).fit(x)
    else:
        model = KMeans(n_clusters=k, random_state=seed, n_init=4).fit(x)
    c = model.cluster_centers_
    return Fitted(labels=model.predict(x), params={"centroids": c.tolist()},
                  assign=_centroid_assign(c), predict=model.predict,
                  extra_metrics={"inertia": float(model.inertia_)})


def fit_gmm(x: np.ndarray, k: int, seed: int, covariance: str = "full") -> Fitted:
    model = GaussianMixture(n_components=k, covariance_type=covariance, random_state=seed,
                            n_init=2, reg_covar=1e-5).fit(x)
    p = x.shape[1]
    if covariance == "full":
        chol = model.precisions_cholesky_
    elif covariance == "diag":
        chol = np.stack([np.diag(v) for v in model.precisions_cholesky_])
    else:
        raise ValueError(f"covariance '{covariance}' is not supported; use full or diag")
    means, weights = model.means_, model.weights_

    def assign(t: ir.Table, transform: Transform) -> ir.Table:
        return _gmm_assign(t, transform, means, chol, weights)

    return Fitted(
        labels=model.predict(x),
        params={"means": means.tolist(), "precisions_cholesky": chol.tolist(),
                "weights": weights.tolist(), "covariance": covariance, "dims": p},
        assign=assign, predict=model.predict, probabilities=True,
        extra_metrics={"bic": float(model.bic(x)), "converged": bool(model.converged_)})


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


def fit_agglomerative(x: np.ndarray, k: int, seed: int) -> Fitted:
    rng = np.random.default_rng(seed)
    idx = np.arange(len(x)) if len(x) <= AGGLOMERATIVE_MAX else np.sort(
        rng.choice(len(x), AGGLOMERATIVE_MAX, replace=False))
    sub = x[idx]
    model = AgglomerativeClustering(n_clusters=k, linkage="ward").fit(sub)
    centroids = np.stack([sub[model.labels_ == c].mean(axis=0) for c in range(k)])
    predict = _centroid_predict(centroids)
    tree = linkage(sub[: min(len(sub), 2000)], method="ward")
    return Fitted(labels=predict(x), params={
        "centroids": centroids.tolist(), "fitted_on": len(sub),
        "dendrogram": {"linkage_tail": tree[-DENDROGRAM_MERGES:].tolist(),
                       "n_leaves": int(min(len(sub), 2000))}},
        assign=_centroid_assign(centroids), predict=predict)


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
