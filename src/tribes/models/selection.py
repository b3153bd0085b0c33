"""Choosing k: every criterion per k, and one documented rule to combine them.

Criteria (each votes for one k):

* silhouette (higher is better), on a sample stratified by cluster;
* elbow: the knee of the inertia curve (kneedle: the point farthest below the chord of the
  normalized curve);
* Calinski-Harabasz (higher is better) and Davies-Bouldin (lower is better);
* gap statistic (Tibshirani et al. 2001): the smallest k with gap(k) >= gap(k+1) - s(k+1),
  against uniform reference data in the bounding box of the data;
* BIC (lower is better), for Gaussian mixtures only.

Rule for Gaussian mixtures: BIC decides, being the likelihood criterion of the model
itself: its minimum, or, when BIC still falls at the largest k tried (common when the
groups are not exactly Gaussian, so ever more components fit better), the knee of the BIC
curve. The other criteria are reported alongside.

Rule for the other methods: the k with most votes; a tie goes to the smallest tied k.
Parsimony: when as many criteria back a finer split as back a coarser one, the extra
segments are not supported by the data more than the coarser ones, and fewer segments are
easier to act on. (Silhouette as the tie-break was tried and chose 8 for 6 planted
segments in a quarter of samples: it tends to favour splitting one broad group into two
tight ones.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

RULE = ("each criterion votes for its best k (silhouette max, elbow knee, Calinski-Harabasz "
        "max, Davies-Bouldin min, gap-statistic rule); the k with most votes wins, a tie goes "
        "to the smallest k")
BIC_RULE = ("Gaussian mixture: BIC decides (its minimum; the knee of the BIC curve when it "
            "still falls at the largest k); the other criteria are shown for comparison")


@dataclass(frozen=True)
class KScore:
    k: int
    inertia: float
    silhouette: float
    calinski_harabasz: float
    davies_bouldin: float
    gap: float | None = None
    gap_se: float | None = None
    bic: float | None = None


@dataclass(frozen=True)
class KSelection:
    scores: list[KScore]
    votes: dict[str, int]
    chosen: int
    rule: str = RULE
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"chosen": self.chosen, "votes": self.votes, "rule": self.rule,
                "scores": [asdict(s) for s in self.scores], "notes": self.notes}


def kneedle(ks: Sequence[int], values: Sequence[float]) -> int:
    """The knee of a decreasing curve: the k farthest below the chord (normalized)."""
    x = np.asarray(ks, dtype=float)
    y = np.asarray(values, dtype=float)
    if len(x) < 3 or y.max() == y.min():
        return int(x[0])
    xn = (x - x.min()) / (x.max() - x.min())
    yn = (y - y.min()) / (y.max() - y.min())
    return int(x[int(np.argmax(1.0 - xn - yn))])


def stratified_sample(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices: about ``size`` rows, each cluster in proportion (at least 2 each)."""
    n = len(labels)
    if n <= size:
        return np.arange(n)
    out = []
    for lab in np.unique(labels):
        idx = np.flatnonzero(labels == lab)
        take = min(len(idx), max(2, round(size * len(idx) / n)))
        out.append(rng.choice(idx, take, replace=False))
    return np.sort(np.concatenate(out))


def gap_choice(ks: Sequence[int], gaps: Sequence[float], ses: Sequence[float]) -> int:
    for i in range(len(ks) - 1):
        if gaps[i] >= gaps[i + 1] - ses[i + 1]:
            return int(ks[i])
    return int(ks[int(np.argmax(gaps))])


def select_k(
    x: np.ndarray,
    ks: Sequence[int],
    make: Callable[[int, int], Any],
    *,
    random_state: int = 0,
    silhouette_size: int = 4000,
    gap_references: int = 5,
    with_bic: bool = False,
    progress: Callable[[str], None] | None = None,
) -> KSelection:
    """Score every k in ``ks`` on ``x`` and choose one.

    Parameters
    ----------
    x : numpy.ndarray
        The rows to cluster (model coordinates).
    ks : sequence of int
        The k to try (those outside ``2 <= k < len(x)`` are skipped).
    make : callable
        ``make(k, seed)`` returns an unfitted estimator (such as
        :func:`tribes.models.methods.make_segmenter`) whose ``fit(x)`` returns itself
        with ``labels_`` (or ``predict``), and ``bic(x)`` for mixtures.
    random_state : int
        Seed of the fits, the reference data of the gap statistic and the silhouette
        sample.
    silhouette_size : int
        Rows the silhouette is computed on (stratified by cluster).
    gap_references : int
        Reference data sets of the gap statistic.
    with_bic : bool
        Score BIC and let it decide (Gaussian mixtures).
    progress : callable, optional
        Called with a short message per k.

    Returns
    -------
    KSelection
        Every criterion per k, the votes and the chosen k.
    """
    say = progress or (lambda s: None)
    rng = np.random.default_rng(random_state)
    ks = [k for k in ks if 2 <= k < len(x)]
    if not ks:
        raise ValueError("no k to try: need 2 <= k < number of customers")
    refs = _gap_references(x, gap_references, rng)
    scores = []
    for k in ks:
        say(f"k = {k}")
        model = make(k, random_state).fit(x)
        labels = np.asarray(model.labels_ if hasattr(model, "labels_") else model.predict(x))
        inertia = _inertia(x, labels)
        if len(np.unique(labels)) < 2:
            sil, ch, db = -1.0, 0.0, float("inf")
        else:
            idx = stratified_sample(labels, silhouette_size, rng)
            sil = float(silhouette_score(x[idx], labels[idx])) if len(
                np.unique(labels[idx])) > 1 else -1.0
            ch = float(calinski_harabasz_score(x, labels))
            db = float(davies_bouldin_score(x, labels))
        ref_logs = []
        for j, ref in enumerate(refs):
            m = make(k, random_state + 1 + j).fit(ref)
            rl = np.asarray(m.labels_ if hasattr(m, "labels_") else m.predict(ref))
            ref_logs.append(np.log(max(_inertia(ref, rl), 1e-300)))
        gap = float(np.mean(ref_logs) - np.log(max(inertia, 1e-300)))
        se = float(np.std(ref_logs) * np.sqrt(1 + 1 / len(refs)))
        bic = float(model.bic(x)) if with_bic and hasattr(model, "bic") else None
        scores.append(KScore(k, inertia, sil, ch, db, gap, se, bic))
    votes = {
        "silhouette": max(scores, key=lambda s: s.silhouette).k,
        "elbow": kneedle(ks, [s.inertia for s in scores]),
        "calinski_harabasz": max(scores, key=lambda s: s.calinski_harabasz).k,
        "davies_bouldin": min(scores, key=lambda s: s.davies_bouldin).k,
        "gap": gap_choice(ks, [s.gap or 0.0 for s in scores], [s.gap_se or 0.0 for s in scores]),
    }
    if with_bic and all(s.bic is not None for s in scores):
        votes["bic"] = bic_choice(ks, [float(s.bic) for s in scores])  # type: ignore[arg-type]
        return KSelection(scores=scores, votes=votes, chosen=votes["bic"], rule=BIC_RULE)
    count = Counter(votes.values())
    top = max(count.values())
    tied = [k for k, c in count.items() if c == top]
    chosen = min(tied)
    return KSelection(scores=scores, votes=votes, chosen=chosen)


def bic_choice(ks: Sequence[int], bics: Sequence[float]) -> int:
    """The k of the lowest BIC, or the knee of the curve when it is lowest at the end."""
    best = int(np.argmin(bics))
    if best < len(ks) - 1 or len(ks) < 3:
        return ks[best]
    return kneedle(ks, bics)


def _gap_references(x: np.ndarray, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Uniform reference data in the box aligned with the principal axes of ``x``
    (Tibshirani et al. 2001, method b): it follows the shape of correlated data, so the gap
    measures clustering rather than correlation."""
    centre = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - centre, full_matrices=False)
    z = (x - centre) @ vt.T
    lo, hi = z.min(axis=0), z.max(axis=0)
    return [rng.uniform(lo, hi, size=z.shape) @ vt + centre for _ in range(n)]


def _inertia(x: np.ndarray, labels: np.ndarray) -> float:
    total = 0.0
    for lab in np.unique(labels):
        pts = x[labels == lab]
        total += float(((pts - pts.mean(axis=0)) ** 2).sum())
    return total
