"""Choosing k: every criterion per k, and one documented rule to decide.

Criteria reported for every k:

* silhouette (higher is better), on a sample stratified by cluster;
* elbow: the knee of the inertia curve (kneedle: the point farthest below the chord of the
  normalized curve);
* Calinski-Harabasz (higher is better) and Davies-Bouldin (lower is better);
* gap statistic (Tibshirani et al. 2001): the smallest k with gap(k) >= gap(k+1) - s(k+1),
  against uniform reference data in the box of the principal axes of the data;
* BIC (lower is better), for Gaussian mixtures only;
* separation: for every pair of clusters, the distance between their means on the line
  that best tells them apart (Fisher's discriminant of the pair), in units of the sum of
  their standard deviations on that line, ``|m_a - m_b| / (s_a + s_b)``, with a bootstrap
  standard error; a k's separation is that of its least separated pair. Counts are spread
  over their unit cells first (:func:`dequantize`), and a pair is compared on the features
  where both clusters vary: a feature on which 90% of a cluster share one value (no spend,
  an imputed order value) has no spread to measure a distance by, and would make a few
  non-buyers of a group look like a group of their own.

Rule: the largest k whose segments are all distinct groups, i.e. whose least separated
pair still scores at least ``MIN_SEPARATION`` (2) after one standard error is taken off
(``separation - se >= 2``), and whose smallest segment holds at least ``MIN_SHARE`` (1%)
of the scored customers (and ``MIN_ROWS``). Why this works where the single indices do
not:

* two clusters cut out of one unimodal group are not separated: cut where k-means cuts
  (halfway between the two means), a Gaussian scores about 1.3, skewed, heavy-tailed or
  elongated groups 1.0-1.6, and a uniform group, the flattest unimodal shape, sqrt(3) =
  1.73. So a k that splits a planted group fails, however the group is shaped, which is
  what makes silhouette, Calinski-Harabasz and the gap statistic choose too many
  segments on skewed, unequal behavioural groups;
* a k below the planted number merges groups but keeps its clusters apart, so it passes:
  the largest passing k is the planted number, also when some groups lie close to each
  other and far from the rest (where silhouette and Calinski-Harabasz prefer merging);
* k-means isolates a handful of extreme customers as their own cluster as k grows; such
  clusters can look separated, so a segment must hold 1% of the customers to count.

The chosen k is then fitted on the whole sample and refitted on bootstrap resamples
(:mod:`tribes.models.stability`); when a segment does not come back (its mean best
Jaccard overlap below ``MIN_JACCARD``, 0.75, where a planted group scores about 1), it was
a chance cut, not a group, and the next smaller distinct k is taken instead
(``decided_by = "stability"``). A few dozen customers between two groups can pass the
separation test by luck of the sample (about one run in three on the end-to-end data);
the same cluster dissolves in half the resamples.

When no k passes (no k splits the customers into distinct groups: a continuum), each of
silhouette, elbow, Calinski-Harabasz, Davies-Bouldin and the gap rule votes for its best k,
the k with most votes wins and a tie goes to the smallest tied k (fewer segments are easier
to act on; silhouette as the tie-break chose 8 for 6 planted segments in a quarter of
samples). A note says so. Gaussian mixtures use the same rule; BIC is reported with them
and decides when no k passes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score

from tribes.stats import silhouette, single_threaded

MIN_SEPARATION = 2.0  # |m_a - m_b| / (s_a + s_b) on the pair's discriminant, less one s.e.
MIN_SHARE = 0.01  # the smallest segment of an admissible k, share of the scored rows
MIN_ROWS = 10  # ... and at least this many rows
MIN_JACCARD = 0.75  # every segment of the chosen k: mean bootstrap Jaccard at least this
SEPARATION_RESAMPLES = 100  # bootstrap resamples for the standard error of a separation
POINT_MASS = 0.9  # a column where 90% of a cluster share one value says nothing of its place
LATTICE_LEVELS = 32  # a column with at most this many distinct values is a count (dequantized)
RESTARTS = 3  # fits per k (seeds random_state + 101 r); the lowest objective is kept

RULE = ("the largest k whose segments are all distinct: every pair separated by at least "
        f"{MIN_SEPARATION:g} (distance of their means on the pair's discriminant line over "
        "the sum of their standard deviations, less one bootstrap standard error) and every "
        f"segment at least {MIN_SHARE:.0%} of the customers, and stable (every segment's "
        f"mean bootstrap Jaccard at least {MIN_JACCARD:g}); when no k qualifies, each "
        "criterion votes for its best k (silhouette max, elbow knee, Calinski-Harabasz max, "
        "Davies-Bouldin min, gap-statistic rule), the k with most votes wins and a tie goes "
        "to the smallest k")
BIC_RULE = ("Gaussian mixture: the largest k whose segments are all distinct (as for the "
            "other methods); when no k qualifies, BIC decides (its minimum; the knee of the "
            "BIC curve when it still falls at the largest k)")

RESTART_TOL = 1e-9


def objective(model: Any) -> float | None:
    """What a fit minimizes: k-means inertia, a mixture's BIC (at a fixed k, its negative
    log-likelihood plus a constant); None when restarts make no difference."""
    for attr in ("inertia_", "bic_"):
        v = getattr(model, attr, None)
        if v is not None:
            return float(v)
    return None


def fit_best(make: Callable[[int, int], Any], k: int, x: np.ndarray, random_state: int,
             restarts: int = RESTARTS) -> Any:
    """The best of ``restarts`` fits (seeds ``random_state + 101 r``) by :func:`objective`.

    k-means with a few k-means++ starts often stops in a local optimum when groups differ
    in size (one large group split in two, two small ones merged); more starts find the
    planted partition. Estimators without an objective are fitted once.
    """
    best = make(k, random_state).fit(x)
    score = objective(best)
    if score is None:
        return best
    for r in range(1, restarts):
        model = make(k, random_state + 101 * r).fit(x)
        s = objective(model)
        # a restart must be better by more than rounding: the same optimum reached again
        # (in another label order) must not win on the last bits of a sum, which differ
        # between backends and would change the segment ids
        if s is not None and s < score - RESTART_TOL * max(abs(score), 1.0):
            best, score = model, s
    return best


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
    separation: float | None = None  # of the least separated pair
    separation_se: float | None = None
    least_separated: tuple[int, int] | None = None  # that pair (labels of this fit)
    smallest_share: float | None = None
    distinct: bool = False  # passes the separation and size test


@dataclass(frozen=True)
class KSelection:
    scores: list[KScore]
    votes: dict[str, int]
    chosen: int
    rule: str = RULE
    notes: list[str] = field(default_factory=list)
    decided_by: str = "separation"  # separation | stability | votes | bic
    vote_choice: int | None = None  # what the votes (or BIC) alone would choose
    unstable: dict[int, float] = field(default_factory=dict)  # k -> its least stable Jaccard

    @property
    def distinct(self) -> list[int]:
        """The k whose segments are all distinct groups."""
        return [s.k for s in self.scores if s.distinct]

    def as_dict(self) -> dict[str, Any]:
        return {"chosen": self.chosen, "votes": self.votes, "rule": self.rule,
                "scores": [asdict(s) for s in self.scores], "notes": self.notes,
                "decided_by": self.decided_by, "vote_choice": self.vote_choice,
                "distinct": self.distinct, "min_separation": MIN_SEPARATION,
                "min_share": MIN_SHARE, "min_jaccard": MIN_JACCARD,
                "unstable": {str(k): v for k, v in self.unstable.items()}}

    def step_down(self, jaccard: dict[int, float], sizes: dict[int, int]) -> KSelection | None:
        """The selection with the next smaller distinct k when a segment of the chosen one
        did not come back in the bootstrap (``jaccard``: per label, its mean best
        overlap; ``sizes``: per label, its customers); None when every segment is stable,
        when k was not chosen by the separation rule, or when no smaller k is distinct."""
        weak = {lab: j for lab, j in jaccard.items() if j < MIN_JACCARD}
        smaller = [k for k in self.distinct if k < self.chosen]
        if not weak or not smaller or self.decided_by not in ("separation", "stability"):
            return None
        lab = min(weak, key=lambda c: weak[c])
        k = max(smaller)
        note = (f"k = {self.chosen} is not stable: a segment of {sizes.get(lab, 0):,} "
                f"customers comes back in resamples with a mean Jaccard of {weak[lab]:.2f} "
                f"(< {MIN_JACCARD:g}), a chance cut rather than a group; k = {k} is the "
                "next smaller k with distinct segments")
        return replace(self, chosen=k, decided_by="stability", notes=[*self.notes, note],
                       unstable={**self.unstable, self.chosen: float(weak[lab])})


@dataclass(frozen=True)
class Separation:
    """The least separated pair of a clustering (the pair with the lowest
    ``separation - se``) and the smallest cluster's share of the rows."""

    separation: float
    se: float
    pair: tuple[int, int]
    smallest_share: float
    smallest_size: int

    def distinct(self, n: int) -> bool:
        """All pairs separated and every cluster large enough to count."""
        return (self.separation - self.se >= MIN_SEPARATION
                and self.smallest_share >= MIN_SHARE
                and self.smallest_size >= min(MIN_ROWS, n))


def separation(x: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
               resamples: int = SEPARATION_RESAMPLES) -> Separation:
    """How well the clusters of ``labels`` are separated, pair by pair.

    For each pair (a, b) the rows of both are projected on Fisher's discriminant of the
    pair, ``w = S^-1 (mean_a - mean_b)`` with ``S`` their pooled covariance, and scored
    ``|m_a - m_b| / (s_a + s_b)`` (means and standard deviations of the projections),
    on the columns where neither cluster has ``POINT_MASS`` of its rows on one value.
    Its standard error comes from ``resamples`` bootstrap resamples of each cluster's
    projections (direction kept).

    Parameters
    ----------
    x : numpy.ndarray
        The rows (model coordinates).
    labels : numpy.ndarray
        Their clusters (at least two).
    rng : numpy.random.Generator
        Draws the bootstrap resamples.
    resamples : int
        Bootstrap resamples per pair.

    Returns
    -------
    Separation
        The pair with the lowest ``separation - se``, with both numbers, and the size of
        the smallest cluster.
    """
    labs, counts = np.unique(labels, return_counts=True)
    if len(labs) < 2:
        raise ValueError("separation needs at least two clusters")
    n = len(x)
    groups = [x[labels == c] for c in labs]
    means = [g.mean(axis=0) for g in groups]
    scatter = [((g - m).T @ (g - m)) for g, m in zip(groups, means, strict=True)]
    massed = [_massed(g) for g in groups]
    best: tuple[float, float, float, tuple[int, int]] | None = None
    for a in range(len(labs)):
        for b in range(a + 1, len(labs)):
            keep = ~(massed[a] | massed[b])
            sep, se = _pair_separation(groups[a][:, keep], groups[b][:, keep],
                                       (means[a] - means[b])[keep],
                                       (scatter[a] + scatter[b])[np.ix_(keep, keep)], rng,
                                       resamples)
            if best is None or sep - se < best[0]:
                best = (sep - se, sep, se, (int(labs[a]), int(labs[b])))
    assert best is not None
    return Separation(separation=best[1], se=best[2], pair=best[3],
                      smallest_share=float(counts.min() / n), smallest_size=int(counts.min()))


def dequantize(x: np.ndarray, rng: np.random.Generator,
               max_levels: int = LATTICE_LEVELS) -> np.ndarray:
    """``x`` with every column of at most ``max_levels`` distinct values (counts such as
    orders or support contacts, after any transform) spread uniformly over the cell of
    each value: halfway to the neighbouring values (the end cells as wide as their inner
    half).

    A count has no values between 0 and 1 contact, so k-means can cut there and the two
    sides look separated; that gap is the lattice of the measurement, not a gap between
    groups of customers. Spread over their cells, the values fill the line and only real
    gaps remain.
    """
    out = np.array(x, dtype=float, copy=True)
    for j in range(out.shape[1]):
        levels, inverse = np.unique(out[:, j], return_inverse=True)
        if len(levels) < 2 or len(levels) > max_levels:
            continue
        mid = (levels[1:] + levels[:-1]) / 2
        lo = np.concatenate([[2 * levels[0] - mid[0]], mid])
        hi = np.concatenate([mid, [2 * levels[-1] - mid[-1]]])
        out[:, j] = rng.uniform(lo[inverse], hi[inverse])
    return out


def _massed(g: np.ndarray) -> np.ndarray:
    """Per column: do at least ``POINT_MASS`` of the rows share one value (no spend, an
    imputed value, a rate of exactly 1)?"""
    out = np.zeros(g.shape[1], dtype=bool)
    for j in range(g.shape[1]):
        out[j] = np.unique(g[:, j], return_counts=True)[1].max() >= POINT_MASS * len(g)
    return out


def _pair_separation(xa: np.ndarray, xb: np.ndarray, diff: np.ndarray, scatter: np.ndarray,
                     rng: np.random.Generator, resamples: int) -> tuple[float, float]:
    na, nb = len(xa), len(xb)
    if na < 2 or nb < 2 or not len(diff) or not np.any(diff):
        return 0.0, 0.0
    pooled = scatter / (na + nb - 2)
    ridge = 1e-9 * max(float(np.trace(pooled)) / len(diff), 1e-12)
    w = np.linalg.solve(pooled + ridge * np.eye(len(diff)), diff)
    w /= np.linalg.norm(w)
    pa, pb = xa @ w, xb @ w
    sep = float(_sep(pa[None, :], pb[None, :])[0])
    if resamples < 2 or not np.isfinite(sep):
        return sep, 0.0
    boot = _sep(pa[rng.integers(0, na, (resamples, na))],
                pb[rng.integers(0, nb, (resamples, nb))])
    boot = boot[np.isfinite(boot)]
    return sep, float(np.std(boot, ddof=1)) if len(boot) > 1 else 0.0


def _sep(pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
    """Row-wise ``|mean a - mean b| / (sd a + sd b)``; no spread at all: infinitely apart
    (distinct means) or not apart (equal means)."""
    gap = np.abs(pa.mean(axis=1) - pb.mean(axis=1))
    spread = pa.std(axis=1) + pb.std(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(spread > 0, gap / np.where(spread > 0, spread, 1.0),
                       np.where(gap > 0, np.inf, 0.0))
    return out


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
    """Score every k in ``ks`` on ``x`` and choose one (the rule: module docstring).

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
        Seed of the fits, the reference data of the gap statistic, the silhouette
        sample and the bootstrap of the separations.
    silhouette_size : int
        Rows the silhouette is computed on (stratified by cluster).
    gap_references : int
        Reference data sets of the gap statistic.
    with_bic : bool
        Score BIC, which decides when no k has distinct segments (Gaussian mixtures).
    progress : callable, optional
        Called with a short message per k.

    Returns
    -------
    KSelection
        Every criterion per k, the votes, the chosen k and what decided it.
    """
    say = progress or (lambda s: None)
    rng = np.random.default_rng(random_state)
    sep_rng = np.random.default_rng([random_state, 1])
    ks = [k for k in ks if 2 <= k < len(x)]
    if not ks:
        raise ValueError("no k to try: need 2 <= k < number of customers")
    with single_threaded():
        refs = _gap_references(x, gap_references, rng)
        smooth = dequantize(x, sep_rng)
        scores = [_score(x, smooth, k, make, refs, rng, sep_rng, random_state=random_state,
                         silhouette_size=silhouette_size, with_bic=with_bic, say=say)
                  for k in ks]
    votes = {
        "silhouette": max(scores, key=lambda s: s.silhouette).k,
        "elbow": kneedle(ks, [s.inertia for s in scores]),
        "calinski_harabasz": max(scores, key=lambda s: s.calinski_harabasz).k,
        "davies_bouldin": min(scores, key=lambda s: s.davies_bouldin).k,
        "gap": gap_choice(ks, [s.gap or 0.0 for s in scores], [s.gap_se or 0.0 for s in scores]),
    }
    rule, fallback_by = RULE, "votes"
    if with_bic and all(s.bic is not None for s in scores):
        votes["bic"] = bic_choice(ks, [float(s.bic) for s in scores])  # type: ignore[arg-type]
        rule, fallback_by, fallback = BIC_RULE, "bic", votes["bic"]
    else:
        count = Counter(votes.values())
        top = max(count.values())
        fallback = min(k for k, c in count.items() if c == top)
    distinct = [s.k for s in scores if s.distinct]
    notes: list[str] = []
    if distinct:
        chosen, decided_by = max(distinct), "separation"
        if chosen == ks[-1] and len(ks) > 1:
            notes.append(f"the largest k tried ({chosen}) still gives distinct segments: "
                         "there may be more; try a wider k range")
    else:
        chosen, decided_by = fallback, fallback_by
    pocket = next((sc for sc in scores if sc.separation is not None and sc.separation_se
                   is not None and sc.smallest_share is not None
                   and sc.smallest_share < MIN_SHARE
                   and sc.separation - sc.separation_se >= MIN_SEPARATION), None)
    if pocket is not None and pocket.smallest_share is not None:
        notes.append(f"k = {pocket.k} gives {round(pocket.smallest_share * len(x))} customers "
                     f"({pocket.smallest_share:.1%}) a cluster of their own, apart from the "
                     "rest: too few for a segment; outliers like these can hide groups "
                     "(tribes anomalies finds them, to exclude)")
    if not distinct:
        notes.append(f"no k in {ks[0]}-{ks[-1]} splits the customers into distinct groups "
                     f"(separation >= {MIN_SEPARATION:g}, segments >= {MIN_SHARE:.0%}); "
                     f"k chosen by {'BIC' if fallback_by == 'bic' else 'the votes'}: the "
                     "segments are regions of a continuum rather than separate groups")
    return KSelection(scores=scores, votes=votes, chosen=chosen, rule=rule, notes=notes,
                      decided_by=decided_by, vote_choice=fallback)


def _score(x: np.ndarray, smooth: np.ndarray, k: int, make: Callable[[int, int], Any],
           refs: list[np.ndarray], rng: np.random.Generator, sep_rng: np.random.Generator,
           *, random_state: int, silhouette_size: int, with_bic: bool,
           say: Callable[[str], None]) -> KScore:
    """Every criterion for one k (``smooth``: ``x`` dequantized, for the separation)."""
    say(f"k = {k}")
    model = fit_best(make, k, x, random_state)
    labels = np.asarray(model.labels_ if hasattr(model, "labels_") else model.predict(x))
    inertia = _inertia(x, labels)
    sep: Separation | None = None
    if len(np.unique(labels)) < 2:
        sil, ch, db = -1.0, 0.0, float("inf")
    else:
        idx = stratified_sample(labels, silhouette_size, rng)
        sil = silhouette(x[idx], labels[idx]) if len(
            np.unique(labels[idx])) > 1 else -1.0
        ch = float(calinski_harabasz_score(x, labels))
        db = float(davies_bouldin_score(x, labels))
        sep = separation(smooth, labels, sep_rng)
    ref_logs = []
    for j, ref in enumerate(refs):
        m = make(k, random_state + 1 + j).fit(ref)
        rl = np.asarray(m.labels_ if hasattr(m, "labels_") else m.predict(ref))
        ref_logs.append(np.log(max(_inertia(ref, rl), 1e-300)))
    gap = float(np.mean(ref_logs) - np.log(max(inertia, 1e-300)))
    se = float(np.std(ref_logs) * np.sqrt(1 + 1 / len(refs)))
    bic = float(model.bic(x)) if with_bic and hasattr(model, "bic") else None
    if sep is None:
        return KScore(k, inertia, sil, ch, db, gap, se, bic)
    return KScore(k, inertia, sil, ch, db, gap, se, bic, separation=_finite(sep.separation),
                  separation_se=_finite(sep.se), least_separated=sep.pair,
                  smallest_share=sep.smallest_share, distinct=sep.distinct(len(x)))


def _finite(v: float) -> float | None:
    """JSON has no infinity: None stands for 'no spread at all'."""
    return float(v) if np.isfinite(v) else None


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
