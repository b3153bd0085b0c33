"""Clustering methods as scikit-learn estimators (one contract, :class:`Segmenter`).

Each estimator follows scikit-learn's contract (``__init__`` stores hyper-parameters,
``fit(X)`` validates ``X``, sets ``n_features_in_``, ``labels_`` and ``params_`` and
returns self; ``predict`` before ``fit`` raises ``NotFittedError``) and knows how to
assign any customer in the engine (``assign``): nearest centroid (KMeans,
agglomerative), nearest centroid within a radius (DBSCAN, HDBSCAN), Gaussian
responsibilities (mixtures).

:data:`SEGMENTERS` maps each method's name to its class; a class builds its unfitted
estimator from the segment configuration (``from_config``, what :func:`make_segmenter`
calls), labels rows from a stored version's parameters (``labels_from_params``, what
:func:`predict_stored` calls) and assigns a customer table in the engine from them
(``assign_from_params``: what a fit's ``assign`` and a refresh of a version's memberships
both call). RFM rules need no fit at all (see ``segmentation.py``).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Self

import ibis.expr.types as ir
import numpy as np
from scipy.cluster.hierarchy import linkage
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import DBSCAN, HDBSCAN, KMeans, MiniBatchKMeans
from sklearn.mixture import GaussianMixture
from sklearn.utils.validation import check_is_fitted, validate_data

from tribes.models.assign import NOISE, centroid_assign, gaussian_assign, radius_assign
from tribes.stats import Transform, knee_eps

if TYPE_CHECKING:
    from tribes.config import SegmentConfig

DENSITY_MAX = 20_000  # density methods run on at most this many customers
AGGLOMERATIVE_MAX = 10_000  # ward needs O(n^2) memory: fit on at most this many customers
DENDROGRAM_MERGES = 40  # the last merges kept for the report's dendrogram
WARD_TREES = 8  # Ward trees kept in memory (choosing k cuts the same 6 trees at every k)


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


_TREES: OrderedDict[bytes, np.ndarray] = OrderedDict()
_TREES_LOCK = threading.Lock()


def ward_tree(x: np.ndarray) -> np.ndarray:
    """The Ward linkage matrix of the rows of ``x`` (scipy's format: merges in order of
    distance, merge ``i`` making node ``len(x) + i``).

    The tree does not depend on the number of clusters, and choosing k fits the same rows
    (and the same reference data of the gap statistic) at every k: the last
    ``WARD_TREES`` trees are kept, by the rows' content, and cut again.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    digest = hashlib.blake2b(str(x.shape).encode(), digest_size=20)
    digest.update(x.data)
    key = digest.digest()
    with _TREES_LOCK:
        if key in _TREES:
            _TREES.move_to_end(key)
            return _TREES[key]
    tree = linkage(x, method="ward")
    with _TREES_LOCK:
        _TREES[key] = tree
        while len(_TREES) > WARD_TREES:
            _TREES.popitem(last=False)
    return tree


def cut_tree(tree: np.ndarray, k: int) -> np.ndarray:
    """Cluster (0 to k - 1) of each leaf of a linkage matrix when its last ``k - 1``
    merges are undone; clusters numbered in the order of their top nodes."""
    n = len(tree) + 1
    if not 1 <= k <= n:
        raise ValueError(f"cannot cut {n} leaves into {k} clusters")
    parent = np.full(2 * n - 1, 2 * n - 1, dtype=np.int64)  # the root's: past every node
    merged = tree[:, :2].astype(np.int64)
    parent[merged[:, 0]] = parent[merged[:, 1]] = np.arange(n, 2 * n - 1)
    kept = 2 * n - k  # nodes below this id stay merged
    top = np.empty(2 * n - 1, dtype=np.int64)
    for node in range(kept - 1, -1, -1):  # a parent's id is always larger than its child's
        up = int(parent[node])
        top[node] = node if up >= kept else top[up]
    return np.unique(top[:n], return_inverse=True)[1]


def _subsample(x: np.ndarray, size: int, seed: int) -> np.ndarray:
    """At most ``size`` rows of ``x`` (a seeded random subset, in their original order)."""
    if len(x) <= size:
        return x
    rng = np.random.default_rng(seed)
    return x[np.sort(rng.choice(len(x), size, replace=False))]


class Segmenter(ClusterMixin, BaseEstimator):
    """Base of the clustering estimators.

    scikit-learn's contract: ``__init__`` stores hyper-parameters and nothing else,
    ``fit`` validates its input and returns self, fitted attributes end in ``_``,
    ``predict`` before ``fit`` raises ``sklearn.exceptions.NotFittedError``. The mixin
    comes first, so ``sklearn.base.is_clusterer`` knows these estimators.

    Attributes
    ----------
    n_features_in_ : int
        Number of columns seen by ``fit``.
    feature_names_in_ : numpy.ndarray
        Their names, when ``fit`` was given a DataFrame with string column names.
    labels_ : numpy.ndarray
        Label of each row of the fitted sample (-1: noise, density methods only).
    params_ : dict
        JSON-ready model parameters stored with a segment version (what
        :meth:`labels_from_params` needs to label rows later).
    extra_metrics_ : dict
        Method-specific quality figures reported with the version (inertia, BIC, ...).
    probabilities : bool
        Class attribute: whether :meth:`assign` gives a membership probability (else 1).
    finds_k : bool
        Class attribute: whether the method finds the number of segments itself.
    """

    probabilities: ClassVar[bool] = False
    finds_k: ClassVar[bool] = False
    # declared for type checkers only: set by fit (unfitted estimators do not have them)
    n_features_in_: int
    labels_: np.ndarray
    params_: dict[str, Any]
    extra_metrics_: dict[str, Any]

    @classmethod
    def from_config(cls, k: int, cfg: SegmentConfig, random_state: int) -> Self:
        """The unfitted estimator the segment stage fits for ``k`` segments."""
        raise NotImplementedError

    @classmethod
    def labels_from_params(cls, params: dict[str, Any], x: np.ndarray) -> np.ndarray:
        """Model labels of rows ``x`` (model coordinates) from stored ``params_``, as
        :meth:`assign` gives them."""
        raise NotImplementedError

    @classmethod
    def assign_from_params(cls, params: dict[str, Any], t: ir.Table,
                           transform: Transform) -> ir.Table:
        """Every customer of ``t`` labelled in the engine from stored ``params_`` (a
        stored version's model), exactly as :meth:`assign` of the fitted estimator.

        Parameters
        ----------
        params : dict
            The estimator's ``params_`` (as stored with a segment version).
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

    def _fit_input(self, X: Any) -> np.ndarray:
        """``X`` checked (2-D, finite, numeric) as float64; records ``n_features_in_``."""
        return np.asarray(validate_data(self, X, dtype=np.float64))

    def _predict_input(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return np.asarray(validate_data(self, X, dtype=np.float64, reset=False))

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

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before ``fit``.
        """
        return self._predict(self._predict_input(X))

    def _predict(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def assign(self, t: ir.Table, transform: Transform) -> ir.Table:
        """Every customer of ``t`` labelled in the engine (no collect), from the
        parameters the version stores (:meth:`assign_from_params`), so that a stored
        version assigns later customers as its fit did.

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
        check_is_fitted(self)
        return self.assign_from_params(self.params_, t, transform)


class CentroidSegmenter(Segmenter):
    """Shared by methods whose customers go to the nearest centre."""

    cluster_centers_: np.ndarray

    @classmethod
    def labels_from_params(cls, params: dict[str, Any], x: np.ndarray) -> np.ndarray:
        return _centroid_labels(x, np.asarray(params["centroids"], dtype=float))

    @classmethod
    def assign_from_params(cls, params: dict[str, Any], t: ir.Table,
                           transform: Transform) -> ir.Table:
        return centroid_assign(t, transform, np.asarray(params["centroids"], dtype=float))

    def _predict(self, x: np.ndarray) -> np.ndarray:
        return _centroid_labels(x, self.cluster_centers_)


class KMeansSegmenter(CentroidSegmenter):
    """KMeans (MiniBatchKMeans above ``minibatch_above`` rows).

    Parameters
    ----------
    n_clusters : int
        Number of segments.
    random_state : int
        Seed of the initializations.
    minibatch_above : int
        Fit MiniBatchKMeans when there are more rows than this.
    n_init : int
        KMeans initializations (the fit with the lowest inertia is kept).
    minibatch_n_init : int
        MiniBatchKMeans initializations.
    batch_size : int
        MiniBatchKMeans rows per batch.
    """

    def __init__(self, n_clusters: int = 8, random_state: int = 0,
                 minibatch_above: int = 50_000, n_init: int = 4, minibatch_n_init: int = 3,
                 batch_size: int = 4096) -> None:
        self.n_clusters = n_clusters
        self.random_state = random_state
        self.minibatch_above = minibatch_above
        self.n_init = n_init
        self.minibatch_n_init = minibatch_n_init
        self.batch_size = batch_size

    @classmethod
    def from_config(cls, k: int, cfg: SegmentConfig, random_state: int) -> Self:
        return cls(k, random_state, cfg.minibatch_above)

    def fit(self, X: Any, y: Any = None) -> Self:
        x = self._fit_input(X)
        if len(x) > self.minibatch_above:
            model: Any = MiniBatchKMeans(n_clusters=self.n_clusters,
                                         random_state=self.random_state,
                                         n_init=self.minibatch_n_init,
                                         batch_size=self.batch_size).fit(x)
        else:
            model = KMeans(n_clusters=self.n_clusters, random_state=self.random_state,
                           n_init=self.n_init).fit(x)
        self.cluster_centers_ = model.cluster_centers_
        self.labels_ = model.predict(x)
        self.inertia_ = float(model.inertia_)
        self.params_ = {"centroids": self.cluster_centers_.tolist()}
        self.extra_metrics_ = {"inertia": self.inertia_}
        return self


class AgglomerativeSegmenter(CentroidSegmenter):
    """Ward agglomerative clustering on at most ``max_fit`` customers (it needs O(n^2)
    memory); everyone goes to the nearest cluster mean. Keeps the last merges of that
    tree (the top of its dendrogram) for the report.

    Parameters
    ----------
    n_clusters : int
        Number of segments.
    random_state : int
        Seed of the subsample (when there are more than ``max_fit`` rows).
    max_fit : int
        Rows the tree is built on at most.
    """

    def __init__(self, n_clusters: int = 8, random_state: int = 0,
                 max_fit: int = AGGLOMERATIVE_MAX) -> None:
        self.n_clusters = n_clusters
        self.random_state = random_state
        self.max_fit = max_fit

    @classmethod
    def from_config(cls, k: int, cfg: SegmentConfig, random_state: int) -> Self:
        return cls(k, random_state)

    def fit(self, X: Any, y: Any = None) -> Self:
        x = self._fit_input(X)
        sub = _subsample(x, self.max_fit, self.random_state)
        k = self.n_clusters
        if len(sub) < 2 or k > len(sub):
            raise ValueError(f"cannot cluster n_samples = {len(sub)} into {k} clusters")
        tree = ward_tree(sub)
        found = cut_tree(tree, k)
        self.cluster_centers_ = np.stack([sub[found == c].mean(axis=0) for c in range(k)])
        self.labels_ = self._predict(x)
        self.extra_metrics_ = {}
        self.params_ = {
            "centroids": self.cluster_centers_.tolist(), "fitted_on": len(sub),
            "dendrogram": {"linkage_tail": tree[-DENDROGRAM_MERGES:].tolist(),
                           "n_leaves": len(sub)}}
        return self


class GaussianMixtureSegmenter(Segmenter):
    """Gaussian mixture (full or diagonal covariance); assignment by responsibilities,
    with the membership probability kept.

    Parameters
    ----------
    n_components : int
        Number of segments.
    covariance : {"full", "diag"}
        Covariance of each component.
    random_state : int
        Seed of the initializations.
    n_init : int
        Initializations (the fit with the best likelihood is kept).
    reg_covar : float
        Added to the diagonal of each covariance (keeps it invertible).
    """

    probabilities = True

    def __init__(self, n_components: int = 8, covariance: str = "full",
                 random_state: int = 0, n_init: int = 2, reg_covar: float = 1e-5) -> None:
        self.n_components = n_components
        self.covariance = covariance
        self.random_state = random_state
        self.n_init = n_init
        self.reg_covar = reg_covar

    @classmethod
    def from_config(cls, k: int, cfg: SegmentConfig, random_state: int) -> Self:
        return cls(k, cfg.covariance, random_state)

    @classmethod
    def labels_from_params(cls, params: dict[str, Any], x: np.ndarray) -> np.ndarray:
        means = np.asarray(params["means"], dtype=float)
        chol = np.asarray(params["precisions_cholesky"], dtype=float)
        logw = np.log(np.asarray(params["weights"], dtype=float))
        # log N(x | mu_c, Sigma_c) up to the shared constant, plus log pi_c
        scores = np.stack([
            -0.5 * (((x - means[c]) @ chol[c]) ** 2).sum(axis=1)
            + np.log(np.diag(chol[c])).sum() + logw[c] for c in range(len(means))], axis=1)
        return np.argmax(scores, axis=1)

    def fit(self, X: Any, y: Any = None) -> Self:
        if self.covariance not in ("full", "diag"):
            raise ValueError(f"covariance '{self.covariance}' is not supported; use full or "
                             "diag")
        x = self._fit_input(X)
        model = GaussianMixture(n_components=self.n_components,
                                covariance_type=self.covariance,
                                random_state=self.random_state, n_init=self.n_init,
                                reg_covar=self.reg_covar).fit(x)
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
        """Membership probability of rows ``X`` in each component."""
        x = self._predict_input(X)
        return np.asarray(self.model_.predict_proba(x))

    def bic(self, X: Any) -> float:
        """Bayesian information criterion of the fit on rows ``X`` (lower is better)."""
        x = self._predict_input(X)
        return float(self.model_.bic(x))

    @classmethod
    def assign_from_params(cls, params: dict[str, Any], t: ir.Table,
                           transform: Transform) -> ir.Table:
        return gaussian_assign(t, transform, np.asarray(params["means"], dtype=float),
                               np.asarray(params["precisions_cholesky"], dtype=float),
                               np.asarray(params["weights"], dtype=float))


class DensitySegmenter(Segmenter):
    """Shared by DBSCAN and HDBSCAN, fitted on at most ``max_fit`` customers.

    Every customer then goes to the nearest cluster centre when within that cluster's
    radius (the ``radius_percentile`` of its members' squared distances to the centre),
    else to noise (-1).
    """

    finds_k = True
    cluster_centers_: np.ndarray
    radius2_: np.ndarray

    # set by the subclasses' __init__
    min_samples: int
    random_state: int
    max_fit: int
    radius_percentile: float

    def _cluster(self, sub: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """Labels of the fitted rows (-1: noise) and the parameters the method chose."""
        raise NotImplementedError

    @classmethod
    def labels_from_params(cls, params: dict[str, Any], x: np.ndarray) -> np.ndarray:
        return _radius_labels(x, np.asarray(params["centroids"], dtype=float),
                              np.asarray(params["radius2"], dtype=float))

    def fit(self, X: Any, y: Any = None) -> Self:
        x = self._fit_input(X)
        sub = _subsample(x, self.max_fit, self.random_state)
        params: dict[str, Any] = {"fitted_on": len(sub), "min_samples": self.min_samples}
        found, chosen = self._cluster(sub)
        params.update(chosen)
        ids = sorted(int(c) for c in set(found) - {NOISE})
        if ids:
            self.cluster_centers_ = np.stack([sub[found == c].mean(axis=0) for c in ids])
            self.radius2_ = np.array([
                np.percentile(((sub[found == c] - self.cluster_centers_[j]) ** 2).sum(axis=1),
                              self.radius_percentile) for j, c in enumerate(ids)])
        else:
            self.cluster_centers_, self.radius2_ = np.zeros((0, x.shape[1])), np.zeros(0)
        params.update(centroids=self.cluster_centers_.tolist(), radius2=self.radius2_.tolist(),
                      noise_share_in_fit=float(np.mean(found == NOISE)))
        self.params_ = params
        self.labels_ = self._predict(x)
        self.extra_metrics_ = {}
        return self

    @classmethod
    def assign_from_params(cls, params: dict[str, Any], t: ir.Table,
                           transform: Transform) -> ir.Table:
        return radius_assign(t, transform, np.asarray(params["centroids"], dtype=float),
                             np.asarray(params["radius2"], dtype=float))

    def _predict(self, x: np.ndarray) -> np.ndarray:
        return _radius_labels(x, self.cluster_centers_, self.radius2_)


class DBSCANSegmenter(DensitySegmenter):
    """DBSCAN, with eps from the knee of the k-distance curve unless given.

    Parameters
    ----------
    min_samples : int
        Neighbours (the point included) that make a core point.
    random_state : int
        Seed of the subsample (when there are more than ``max_fit`` rows).
    max_fit : int
        Rows the clusters are found on at most.
    eps : float, optional
        Neighbourhood radius; None: the knee of the sorted distances to the
        ``min_samples``-th neighbour.
    radius_percentile : float
        Percentile of its members' distances that bounds a cluster when assigning.
    """

    def __init__(self, min_samples: int = 10, random_state: int = 0,
                 max_fit: int = DENSITY_MAX, eps: float | None = None,
                 radius_percentile: float = 95.0) -> None:
        self.min_samples = min_samples
        self.random_state = random_state
        self.max_fit = max_fit
        self.eps = eps
        self.radius_percentile = radius_percentile

    @classmethod
    def from_config(cls, k: int, cfg: SegmentConfig, random_state: int) -> Self:
        return cls(min_samples=cfg.min_samples, random_state=random_state)

    def _cluster(self, sub: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        eps = knee_eps(sub, self.min_samples) if self.eps is None else float(self.eps)
        return DBSCAN(eps=eps, min_samples=self.min_samples).fit(sub).labels_, {"eps": eps}


class HDBSCANSegmenter(DensitySegmenter):
    """HDBSCAN, its smallest cluster a share of the customers.

    Parameters
    ----------
    min_samples : int
        Neighbours that make a core point.
    min_cluster_share : float
        Smallest cluster, as a share of the fitted rows (at least ``min_samples``).
    random_state : int
        Seed of the subsample (when there are more than ``max_fit`` rows).
    max_fit : int
        Rows the clusters are found on at most.
    radius_percentile : float
        Percentile of its members' distances that bounds a cluster when assigning.
    """

    def __init__(self, min_samples: int = 10, min_cluster_share: float = 0.02,
                 random_state: int = 0, max_fit: int = DENSITY_MAX,
                 radius_percentile: float = 95.0) -> None:
        self.min_samples = min_samples
        self.min_cluster_share = min_cluster_share
        self.random_state = random_state
        self.max_fit = max_fit
        self.radius_percentile = radius_percentile

    @classmethod
    def from_config(cls, k: int, cfg: SegmentConfig, random_state: int) -> Self:
        return cls(min_samples=cfg.min_samples, min_cluster_share=cfg.min_cluster_share,
                   random_state=random_state)

    def _cluster(self, sub: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        size = max(self.min_samples, int(self.min_cluster_share * len(sub)))
        found = HDBSCAN(min_cluster_size=size, min_samples=self.min_samples,
                        copy=True).fit(sub).labels_
        return found, {"min_cluster_size": size}


# the clustering methods by name (the names stored with each version); RFM rules are
# no estimator (see segmentation.py)
SEGMENTERS: dict[str, type[Segmenter]] = {
    "kmeans": KMeansSegmenter,
    "gmm": GaussianMixtureSegmenter,
    "agglomerative": AgglomerativeSegmenter,
    "dbscan": DBSCANSegmenter,
    "hdbscan": HDBSCANSegmenter,
}
DENSITY = tuple(name for name, cls in SEGMENTERS.items() if cls.finds_k)


def segmenter_class(method: str) -> type[Segmenter]:
    """The estimator class of a clustering method.

    Raises
    ------
    ValueError
        For a method that is not a clustering method (such as ``rfm``).
    """
    try:
        return SEGMENTERS[method]
    except KeyError:
        raise ValueError(f"'{method}' is not a clustering method; use one of "
                         f"{', '.join(SEGMENTERS)}") from None


def make_segmenter(method: str, k: int, cfg: SegmentConfig, random_state: int
                   ) -> Segmenter:
    """The unfitted estimator of a clustering method, set up from the configuration.

    Parameters
    ----------
    method : str
        A name in :data:`SEGMENTERS`.
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
    return segmenter_class(method).from_config(k, cfg, random_state)


def sizes(labels: Sequence[int]) -> dict[int, int]:
    values, counts = np.unique(np.asarray(labels), return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True)}


def predict_stored(method: str, params: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Model labels of rows ``x`` (model coordinates) from a version's stored parameters,
    as the engine assignment gives them; used for online assignment. RFM rules have no
    coordinates: ValueError."""
    if method not in SEGMENTERS:
        raise ValueError(f"segments of method '{method}' cannot be assigned online")
    return SEGMENTERS[method].labels_from_params(params, x)


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
