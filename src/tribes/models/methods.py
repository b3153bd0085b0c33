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
from sklearn.cluster import AgglomerativeClustering, KMeans, MiniBatchKMeans
from sklearn.mixture import GaussianMixture

from tribes.models.assign import nearest_centroid
from tribes.models.preprocess import Transform

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
        return a.mutate(probability=ibis.literal(1.0))
    return assign


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
    raise ValueError(method)


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
