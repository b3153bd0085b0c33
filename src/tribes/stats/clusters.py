"""How well rows are clustered: the silhouette coefficient, with the distance sums as matrix
products."""

from __future__ import annotations

import numpy as np

BLOCK = 1024  # rows of the distance matrix held at once (BLOCK x n floats)


def silhouette(x: np.ndarray, labels: np.ndarray, *, block: int = BLOCK) -> float:
    """Mean silhouette coefficient of the rows of ``x`` (Euclidean distance).

    The same figure as ``sklearn.metrics.silhouette_score(x, labels)`` (to rounding):
    per row, ``a`` the mean distance to the other rows of its cluster, ``b`` the
    smallest mean distance to the rows of another cluster, ``(b - a) / max(a, b)``, and
    0 for a row alone in its cluster. The distances to each cluster are summed for a
    block of rows at once, as one product with the cluster indicator matrix, instead of
    row by row: about twice as fast on 4,000 rows, and every k tried and every method
    compared computes one.

    Parameters
    ----------
    x : numpy.ndarray
        The rows (n, p).
    labels : numpy.ndarray
        Their clusters; between 2 and n - 1 distinct values.
    block : int
        Rows of the distance matrix computed at once.

    Returns
    -------
    float
        The mean over the rows.

    Raises
    ------
    ValueError
        For fewer than 2 or more than n - 1 clusters.
    """
    x = np.asarray(x, dtype=np.float64)
    clusters, codes = np.unique(np.asarray(labels), return_inverse=True)
    n, k = len(x), len(clusters)
    if not 2 <= k <= n - 1:
        raise ValueError(f"the silhouette needs 2 to n - 1 clusters; got {k} for {n} rows")
    sizes = np.bincount(codes, minlength=k).astype(np.float64)
    members = np.zeros((n, k))
    members[np.arange(n), codes] = 1.0
    norms = np.einsum("ij,ij->i", x, x)
    scores = np.empty(n)
    for start in range(0, n, block):
        stop = min(start + block, n)
        rows = np.arange(stop - start)
        d = x[start:stop] @ x.T
        d *= -2.0
        d += norms[start:stop, None]
        d += norms[None, :]
        np.sqrt(np.maximum(d, 0.0, out=d), out=d)
        d[rows, rows + start] = 0.0
        sums = d @ members
        own = codes[start:stop]
        others = sizes[own] - 1
        a = sums[rows, own] / np.where(others > 0, others, 1.0)
        sums[rows, own] = np.inf
        b = (sums / sizes).min(axis=1)
        top = np.maximum(a, b)
        s = np.divide(b - a, top, out=np.zeros_like(a), where=top > 0)
        scores[start:stop] = np.where(others > 0, s, 0.0)
    return float(scores.mean())
