"""Drift of a feature between a version's reference and now: PSI and Kolmogorov-Smirnov.

A segment version keeps, per feature, a *profile* of the customers it was fitted on
(:func:`profile`): quantile bin edges with the share of customers in each bin, the
empirical CDF at 201 quantiles, and the null share. That is enough to compare any later
sample with it without keeping a single customer's values:

* PSI = sum over bins of (now - ref) * ln(now / ref), nulls a bin of their own, shares
  floored at 1e-4 (an empty bin would make it infinite). 0.1 and 0.25 are the usual
  thresholds of a moderate and a major shift.
* KS distance = the largest gap between the two empirical CDFs, evaluated at the
  reference's quantiles (at most half a percent of the reference between two of them, so
  the distance is exact to about 0.005), with the asymptotic two-sample p-value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

GRID = 200  # the reference CDF is kept at GRID + 1 quantiles
FLOOR = 1e-4


def profile(values: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """The reference of one feature from its values (NaN = null)."""
    v = np.asarray(values, dtype=float)
    ok = np.sort(v[~np.isnan(v)])
    n, total = len(ok), len(v)
    out: dict[str, Any] = {"n": int(n), "null_share": float(1 - n / total) if total else 0.0,
                           "edges": [], "shares": [], "grid": [], "cdf": []}
    if not n:
        return out
    edges = np.unique(np.quantile(ok, np.arange(1, bins) / bins))
    counts = np.bincount(np.searchsorted(edges, ok, side="left"), minlength=len(edges) + 1)
    grid = np.unique(np.quantile(ok, np.linspace(0.0, 1.0, GRID + 1)))
    out.update(edges=edges.tolist(), shares=(counts / n).tolist(), grid=grid.tolist(),
               cdf=(np.searchsorted(ok, grid, side="right") / n).tolist())
    return out


def aged(ref: dict[str, Any], days: float) -> dict[str, Any]:
    """A :func:`profile` moved ``days`` later: every value plus ``days``. What a feature
    counting the days since a moment fixed for each customer (tenure) becomes when the
    as-of moves by ``days``: the bin shares and the CDF stay, the values move."""
    return {**ref, "edges": [e + days for e in ref["edges"]],
            "grid": [g + days for g in ref["grid"]]}


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    psi: float
    ks: float  # distance
    ks_p: float
    n_ref: int
    n_now: int
    null_ref: float
    null_now: float
    mean_ref: float | None
    mean_now: float | None

    def as_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                for k, v in self.__dict__.items()}


def psi(ref: dict[str, Any], values: np.ndarray) -> float:
    """Population stability index of ``values`` against a :func:`profile`."""
    v = np.asarray(values, dtype=float)
    if not len(v) or not ref["n"]:
        return float("nan")
    nulls = np.isnan(v)
    ok = v[~nulls]
    edges = np.asarray(ref["edges"], dtype=float)
    now = np.bincount(np.searchsorted(edges, ok, side="left"), minlength=len(edges) + 1)
    now_share = now / len(v)
    ref_share = np.asarray(ref["shares"], dtype=float) * (1 - ref["null_share"])
    if ref["null_share"] > 0 or nulls.any():
        now_share = np.append(now_share, nulls.mean())
        ref_share = np.append(ref_share, ref["null_share"])
    a, e = np.maximum(now_share, FLOOR), np.maximum(ref_share, FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def ks(ref: dict[str, Any], values: np.ndarray) -> tuple[float, float]:
    """(distance, p-value) of the non-null ``values`` against a :func:`profile`."""
    from scipy import stats  # slow to import: on use

    v = np.asarray(values, dtype=float)
    ok = np.sort(v[~np.isnan(v)])
    n, m = ref["n"], len(ok)
    if not n or not m:
        return float("nan"), float("nan")
    grid = np.asarray(ref["grid"], dtype=float)
    now = np.searchsorted(ok, grid, side="right") / m
    d = float(np.max(np.abs(now - np.asarray(ref["cdf"], dtype=float))))
    # below the reference's smallest value the reference CDF is 0
    d = max(d, float(np.searchsorted(ok, grid[0], side="left") / m))
    en = n * m / (n + m)
    return d, float(stats.kstwobign.sf(d * np.sqrt(en)))


def feature_drift(name: str, ref: dict[str, Any], values: np.ndarray,
                  mean_ref: float | None = None) -> FeatureDrift:
    v = np.asarray(values, dtype=float)
    ok = v[~np.isnan(v)]
    d, p = ks(ref, v)
    return FeatureDrift(feature=name, psi=psi(ref, v), ks=d, ks_p=p, n_ref=int(ref["n"]),
                        n_now=len(ok), null_ref=float(ref["null_share"]),
                        null_now=float(np.isnan(v).mean()) if len(v) else float("nan"),
                        mean_ref=mean_ref, mean_now=float(ok.mean()) if len(ok) else None)


@dataclass(frozen=True)
class ShareShift:
    """Segment shares now (the active model applied to today's features) against the
    shares the version was created with: chi-square goodness of fit."""

    chi2: float
    dof: int
    p_value: float
    n_now: int
    segments: list[dict[str, Any]]  # segment_id, name, share_ref, share_now, shift

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def share_shift(ref_shares: dict[int, float], names: dict[int, str],
                labels: np.ndarray) -> ShareShift:
    """``ref_shares``: segment id -> share at the version's creation; ``labels``: the
    segment ids of a sample of today's customers."""
    from scipy import stats

    labels = np.asarray(labels, dtype=int)
    n = len(labels)
    ids = sorted(set(ref_shares) | set(np.unique(labels).tolist()))
    observed = np.array([(labels == i).sum() for i in ids], dtype=float)
    expected_share = np.array([ref_shares.get(i, 0.0) for i in ids], dtype=float)
    expected_share = expected_share / expected_share.sum() if expected_share.sum() else \
        expected_share
    expected = np.maximum(expected_share * n, 1e-9)
    chi2 = float(((observed - expected) ** 2 / expected).sum()) if n else float("nan")
    dof = max(len(ids) - 1, 1)
    p = float(stats.chi2.sf(chi2, dof)) if n else float("nan")
    rows = [{"segment_id": i, "name": names.get(i, f"Segment {i}"),
             "share_ref": float(expected_share[j]),
             "share_now": float(observed[j] / n) if n else float("nan"),
             "shift": float(observed[j] / n - expected_share[j]) if n else float("nan")}
            for j, i in enumerate(ids)]
    return ShareShift(chi2=chi2, dof=dof, p_value=p, n_now=n, segments=rows)
