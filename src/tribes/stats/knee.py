"""Knee points of sorted curves (the elbow of a k-distance graph)."""

from __future__ import annotations

import numpy as np


def knee_eps(x: np.ndarray, min_samples: int) -> float:
    """DBSCAN eps: the knee of the sorted distances to the min_samples-th neighbour."""
    from sklearn.neighbors import NearestNeighbors  # imported when needed: it is slow

    nn = NearestNeighbors(n_neighbors=min_samples).fit(x)
    dist = np.sort(nn.kneighbors(x)[0][:, -1])
    xn = np.linspace(0.0, 1.0, len(dist))
    span = dist[-1] - dist[0]
    if span <= 0:
        return float(dist[-1]) or 1.0
    yn = (dist - dist[0]) / span
    return float(dist[int(np.argmax(xn - yn))])
