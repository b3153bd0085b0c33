"""Bootstrap stability of a clustering: adjusted Rand index and per-segment Jaccard."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import adjusted_rand_score

from tribes.stats import single_threaded


@dataclass(frozen=True)
class Stability:
    """``ari_mean``/``ari_std`` over resamples; ``jaccard``: per reference label, the mean
    over resamples of its best Jaccard overlap with a resampled cluster."""

    resamples: int
    ari_mean: float
    ari_std: float
    jaccard: dict[int, float]

    def as_dict(self) -> dict[str, Any]:
        return {"resamples": self.resamples, "ari_mean": self.ari_mean,
                "ari_std": self.ari_std, "jaccard": {str(k): v for k, v in self.jaccard.items()}}


def bootstrap_stability(
    x: np.ndarray,
    labels: np.ndarray,
    make: Callable[[int], Any],
    *,
    resamples: int = 20,
    random_state: int = 0,
) -> Stability:
    """Refit on ``resamples`` bootstrap samples of ``x`` and compare with ``labels``.

    Parameters
    ----------
    x : numpy.ndarray
        The rows that were clustered (model coordinates).
    labels : numpy.ndarray
        Their labels under the reference fit. Noise labels (-1) count as a cluster of
        their own.
    make : callable
        ``make(seed)`` returns an unfitted estimator of the same method (for instance
        ``clone(est).set_params(random_state=seed)``); it is fitted on each bootstrap
        sample and its ``predict`` labels the rows of ``x``.
    resamples : int
        Number of bootstrap samples.
    random_state : int
        Seed of the resampling (and, offset, of the refits).

    Returns
    -------
    Stability
        Mean and spread of the adjusted Rand index, and per-label Jaccard overlap.
    """
    rng = np.random.default_rng(random_state)
    n = len(x)
    aris: list[float] = []
    ref_labels = np.unique(labels)
    jac: dict[int, list[float]] = {int(c): [] for c in ref_labels}
    for b in range(resamples):
        idx = rng.integers(0, n, n)
        with single_threaded():  # dozens of small fits: one thread each
            new = np.asarray(make(random_state + 1000 + b).fit(x[idx]).predict(x))
        aris.append(float(adjusted_rand_score(labels, new)))
        for c in ref_labels:
            a = labels == c
            best = 0.0
            for d in np.unique(new[a]):
                bm = new == d
                inter = float(np.sum(a & bm))
                best = max(best, inter / float(np.sum(a | bm)))
            jac[int(c)].append(best)
    return Stability(resamples=resamples, ari_mean=float(np.mean(aris)) if aris else 1.0,
                     ari_std=float(np.std(aris)) if aris else 0.0,
                     jaccard={c: float(np.mean(v)) for c, v in jac.items()})
