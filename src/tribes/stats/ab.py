"""The statistics of A/B tests by segment, on plain arrays.

* Rates (conversion, CTR): Wilson score intervals per variant; the difference with
  Newcombe's hybrid score interval (his method 10); the two-proportion z-test (pooled).
* Means (revenue): Welch's t-test and interval (Welch-Satterthwaite degrees of freedom),
  and a percentile bootstrap interval of the difference.
* CUPED (Deng et al. 2013): y - theta * (x - mean(x)) with x the pre-period value of the
  same metric and theta = cov(y, x) / var(x) over both variants; the variance of the
  estimate falls by the squared correlation of x and y.
* Multiple segments: Holm's step-down or Benjamini-Hochberg adjusted p-values.
* Sample-ratio mismatch: a chi-square test of the variant counts against the planned
  split.
"""

from __future__ import annotations

import math

import numpy as np


def wilson(x: float, n: float, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval of the proportion x / n."""
    from scipy import stats  # slow to import: on use

    if n <= 0:
        return float("nan"), float("nan")
    z = stats.norm.ppf(1 - alpha / 2)
    p = x / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def newcombe(x1: float, n1: float, x2: float, n2: float, alpha: float = 0.05
             ) -> tuple[float, float]:
    """Newcombe's hybrid score interval of p2 - p1 (treatment minus control)."""
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, alpha)
    l2, u2 = wilson(x2, n2, alpha)
    d = p2 - p1
    lo = d - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)
    hi = d + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)
    return lo, hi


def two_proportion_p(x1: float, n1: float, x2: float, n2: float) -> float:
    """Two-sided p-value of the pooled two-proportion z-test."""
    from scipy import stats

    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (x2 / n2 - x1 / n1) / se
    return float(2 * stats.norm.sf(abs(z)))


def welch(a: np.ndarray, b: np.ndarray, alpha: float = 0.05
          ) -> tuple[float, float, float, float]:
    """(mean(b) - mean(a), lower, upper, p-value) by Welch's t-test."""
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    d = float(b.mean() - a.mean())
    se = math.sqrt(va + vb)
    if se == 0:
        return d, d, d, 1.0
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    t = stats.t.ppf(1 - alpha / 2, df)
    p = float(2 * stats.t.sf(abs(d / se), df))
    return d, d - t * se, d + t * se, p


def bootstrap_diff(a: np.ndarray, b: np.ndarray, *, resamples: int = 2000,
                   alpha: float = 0.05, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(b) - mean(a) (each variant resampled)."""
    rng = np.random.default_rng(seed)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ia = rng.integers(0, len(a), (resamples, len(a)))
    ib = rng.integers(0, len(b), (resamples, len(b)))
    diffs = b[ib].mean(axis=1) - a[ia].mean(axis=1)
    lo, hi = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def cuped(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, float]:
    """(adjusted y, theta): y - theta * (x - mean(x))."""
    y, x = np.asarray(y, dtype=float), np.asarray(x, dtype=float)
    vx = x.var(ddof=1) if len(x) > 1 else 0.0
    if not vx > 0:
        return y, 0.0
    theta = float(np.cov(y, x, ddof=1)[0, 1] / vx)
    return y - theta * (x - x.mean()), theta


def holm(p: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error)."""
    m = len(p)
    order = np.argsort(p)
    out = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def benjamini_hochberg(p: list[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (false discovery rate)."""
    m = len(p)
    order = np.argsort(p)[::-1]
    out = np.empty(m)
    running = 1.0
    for rank, i in enumerate(order):
        running = min(running, p[i] * m / (m - rank))
        out[i] = running
    return out.tolist()


def srm(counts: list[int], split: list[float]) -> float:
    """p-value of the variant counts against the planned split (chi-square)."""
    from scipy import stats

    n = sum(counts)
    expected = np.asarray(split, dtype=float) / sum(split) * n
    return float(stats.chisquare(counts, expected).pvalue) if n else float("nan")


def heterogeneity(effects: list[float], ses: list[float]) -> tuple[float, float]:
    """Cochran's Q of effects with standard errors ``ses`` and its p-value: do the
    segments' uplifts differ more than their noise allows?"""
    from scipy import stats

    d, se = np.asarray(effects, dtype=float), np.asarray(ses, dtype=float)
    ok = se > 0
    d, w = d[ok], 1.0 / se[ok] ** 2
    if len(d) < 2:
        return float("nan"), float("nan")
    mean = float((w * d).sum() / w.sum())
    q = float((w * (d - mean) ** 2).sum())
    return q, float(stats.chi2.sf(q, len(d) - 1))
