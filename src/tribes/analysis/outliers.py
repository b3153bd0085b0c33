"""Unusual customers: Isolation Forest, Local Outlier Factor or DBSCAN noise on the scaled
feature table, each flagged customer with the features that make them unusual.

Works on the per-customer table (never on events); beyond ``sample_size`` customers the
model is fitted on a deterministic sample and every customer is scored in batches.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.cluster import DBSCAN
from sklearn.ensemble import IsolationForest
from sklearn.manifold import TSNE
from sklearn.neighbors import LocalOutlierFactor

from tribes.engine import Engine, md5_hex
from tribes.errors import InputError
from tribes.stats import fit_transform, knee_eps

OUTLIER_METHODS = ("isolation_forest", "lof", "dbscan")
BATCH = 100_000


def find_outliers(engine: Engine, features: list[str], *, method: str = "isolation_forest",
                  contamination: float = 0.02, sample_size: int = 200_000,
                  random_state: int = 0, reasons: int = 3) -> dict[str, Any]:
    """Flag unusual customers; returns them (most unusual first) with their reasons."""
    if method not in OUTLIER_METHODS:
        raise InputError(f"unknown method '{method}'; use {', '.join(OUTLIER_METHODS)}",
                         code="E_METHOD")
    if not 0 < contamination < 0.5:
        raise InputError("--contamination must be between 0 and 0.5", code="E_CONTAMINATION")
    if not engine.has_table("customer_features"):
        raise InputError("no customer features yet; run tribes features", code="E_NO_FEATURES")
    t = engine.table("customer_features")
    unknown = [f for f in features if f not in t.columns]
    if unknown:
        raise InputError(f"unknown features {unknown}", code="E_FEATURE")
    n = int(engine.scalar(t.count()))
    if n < 10:
        raise InputError(f"{n} customers are too few to look for outliers", code="E_TOO_FEW")
    ordered = t.order_by(md5_hex(t.customer_key)).select("customer_key", *features)
    sample = engine.execute(ordered.limit(sample_size))
    # robust scaling: the outliers themselves must not set the scale
    tr = fit_transform(sample, features, scaler="robust")
    x = tr.apply(sample)
    if method == "isolation_forest":
        # larger subsamples than the default 256 separate moderate outliers better
        model: Any = IsolationForest(contamination=contamination, random_state=random_state,
                                     n_estimators=300, max_samples=min(len(x), 2048)).fit(x)
    elif method == "lof":
        model = LocalOutlierFactor(n_neighbors=20, contamination=contamination,
                                   novelty=True).fit(x)
    else:
        model = None
    flagged: list[dict[str, Any]] = []
    for start in range(0, n, BATCH):
        part = sample if n <= sample_size else engine.execute(
            ordered.limit(BATCH, offset=start))
        z = tr.apply(part)
        if model is not None:
            # predict() is score_samples() below offset_: one scoring pass gives both
            raw = model.score_samples(z)
            flag = raw < model.offset_
            score = -raw  # higher = more unusual
        else:
            flag, score = _dbscan(z, random_state)
        keys = part.customer_key.to_numpy()
        for i in np.flatnonzero(flag):
            top = np.argsort(-np.abs(z[i]))[:reasons]
            flagged.append({"customer_key": str(keys[i]), "score": float(score[i]),
                            "reasons": [{"feature": features[j], "z": float(z[i, j])}
                                        for j in top]})
        if n <= sample_size:
            break
    flagged.sort(key=lambda o: -o["score"])
    return {"method": method, "contamination": contamination, "customers": n,
            "features": features, "flagged": len(flagged), "outliers": flagged}


def _dbscan(z: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    min_samples = 10
    eps = knee_eps(z, min_samples)
    labels = DBSCAN(eps=eps, min_samples=min_samples).fit(z).labels_
    # score: distance to the nearest core-cluster centre, in units of eps
    cores = [z[labels == c].mean(axis=0) for c in set(labels) - {-1}]
    if cores:
        d = np.min(np.stack([np.linalg.norm(z - c, axis=1) for c in cores]), axis=0) / eps
    else:
        d = np.zeros(len(z))
    return labels == -1, d


def embed_2d(x: np.ndarray, *, random_state: int = 0,
             method: str = "tsne") -> tuple[np.ndarray, str]:
    """A 2-D view of scaled features: t-SNE (perplexity 30, PCA start) for a sample of at
    most a few thousand rows, PCA when t-SNE is not asked for, the rows are too few for
    it, or it fails. Returns the coordinates and the method used."""
    x = np.asarray(x, dtype=float)
    if method == "tsne" and len(x) > 3 * 30 + 1:
        try:
            xy = TSNE(n_components=2, perplexity=30, init="pca", learning_rate="auto",
                      random_state=random_state, max_iter=500).fit_transform(x)
            return np.asarray(xy), "t-SNE"
        except (ValueError, MemoryError):
            pass
    z = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    return z @ vt[:2].T, "PCA"
