"""Choosing a segmentation by what it does for the business (``segment compare``).

For each candidate on the same sample: how well its segments separate business KPIs
(eta squared: the share of a KPI's variance between segments, with a Kruskal-Wallis
test), and, given a past campaign, how differently its segments responded (the uplift
per segment, how many respond after correction, and Cochran's Q test of whether the
uplifts differ more than their noise allows).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import ibis
import numpy as np
import pandas as pd

from tribes.analysis import Design, analyze_experiment
from tribes.config import SegmentConfig, parse_k_range
from tribes.engine import Engine
from tribes.errors import InputError
from tribes.models import METHODS, Prepared, Segmenter, fit_method, prepare
from tribes.stats import heterogeneity
from tribes.workspace import Workspace

KPIS = ("buyer", "monetary", "frequency", "churned", "engagement_score")


def sample_kpis(engine: Engine, keys: np.ndarray | None, *, churn_days: int = 60
                ) -> pd.DataFrame:
    """Per customer of the sample (in its order): the KPIs from customer_features."""
    if keys is None or not len(keys):
        return pd.DataFrame(columns=list(KPIS))
    f = engine.table("customer_features")
    cols = [c for c in ("monetary", "frequency", "recency_days", "engagement_score")
            if c in f.columns]
    wanted = ibis.memtable(pd.DataFrame({"k": keys}))
    df = engine.execute(f.join(wanted, f.customer_key == wanted.k).select(
        "customer_key", *cols)).set_index("customer_key").reindex(keys)
    out = pd.DataFrame(index=df.index)
    if "frequency" in df:
        out["buyer"] = (df["frequency"] > 0).astype(float)
        out["frequency"] = df["frequency"].astype(float)
    if "monetary" in df:
        out["monetary"] = df["monetary"].astype(float)
    if "recency_days" in df:
        out["churned"] = (df["recency_days"] > churn_days).astype(float)
    if "engagement_score" in df:
        out["engagement_score"] = df["engagement_score"].astype(float)
    return out.reset_index(drop=True)


def eta_squared(values: np.ndarray, labels: np.ndarray) -> float:
    """Between-segment share of the variance of ``values``."""
    ok = ~np.isnan(values)
    v, g = values[ok], labels[ok]
    if len(v) < 2 or v.var() == 0:
        return float("nan")
    mean = v.mean()
    between = sum(len(v[g == k]) * (v[g == k].mean() - mean) ** 2 for k in np.unique(g))
    return float(between / ((v - mean) ** 2).sum())


def kpi_separation(kpis: pd.DataFrame, labels: np.ndarray) -> dict[str, Any]:
    """eta squared and the Kruskal-Wallis p-value per KPI, and their mean."""
    from scipy import stats  # slow to import: on use

    labels = np.asarray(labels)
    per: dict[str, dict[str, float]] = {}
    for c in kpis.columns:
        v = kpis[c].to_numpy(dtype=float)
        groups = [v[(labels == k) & ~np.isnan(v)] for k in np.unique(labels)]
        groups = [g for g in groups if len(g)]
        distinct = np.unique(v[~np.isnan(v)]).size
        p = float(stats.kruskal(*groups).pvalue) if len(groups) > 1 and distinct > 1 \
            else float("nan")
        per[c] = {"eta2": eta_squared(v, labels), "kruskal_p": p}
    etas = [x["eta2"] for x in per.values() if x["eta2"] == x["eta2"]]
    return {"mean_eta2": float(np.mean(etas)) if etas else None, "kpis": per}


@dataclass
class Campaign:
    """A past experiment: per exposed customer the outcome (ab.outcomes) and features."""

    outcomes: pd.DataFrame  # customer_key, variant, y, x[, n]
    features: pd.DataFrame  # customer_key and the features of the candidates
    design: Design


def campaign_uplift(c: Campaign, fitted: Segmenter, p: Prepared) -> dict[str, Any]:
    """The campaign measured with a candidate's segments (``fitted.predict`` on the
    exposed customers, in the coordinates of ``p.transform``)."""
    from scipy import stats

    feats = c.features.set_index("customer_key")
    have = c.outcomes[c.outcomes.customer_key.isin(feats.index)].copy()
    if have.empty:
        return {"note": "no exposed customer has features"}
    x = p.transform.apply(feats.loc[have.customer_key].reset_index())
    have["segment_id"] = np.asarray(fitted.predict(x), dtype=float)
    res = analyze_experiment(have, c.design)
    key = "cuped" if res["cuped"] else None
    tested = [s for s in res["segments"] if "p_adjusted" in s]
    z = stats.norm.ppf(1 - c.design.alpha / 2)
    effects = [(s[key] if key else s)["uplift"] for s in tested]
    ses = [((s[key] if key else s)["ci"][1] - (s[key] if key else s)["ci"][0]) / (2 * z)
           for s in tested]
    q, q_p = heterogeneity(effects, ses)
    return {"responding": sum(bool(s["responds"]) for s in tested),
            "segments_tested": len(tested),
            "uplift": {str(s["segment_id"]): e for s, e in zip(tested, effects, strict=True)},
            "best_uplift": max(effects) if effects else None,
            "heterogeneity_q": q, "heterogeneity_p": q_p, "customers": len(have)}


def compare_methods(ws: Workspace, engine: Engine, methods: list[str], *,
                    k: int | None = None, features: list[str] | None = None,
                    progress: Callable[[str], None] | None = None,
                    campaign: Any = None, jobs: int = 1) -> list[dict[str, Any]]:
    """Fit each method on the same sample and features; quality side by side (not stored),
    with how well each separates business KPIs and, given a ``campaign``
    (:class:`Campaign`), how differently its segments respond.

    ``jobs``: methods fitted at once (at most one per method); above 1, each in a process
    of its own (started afresh, so a script calling this needs the usual ``if __name__
    == "__main__":`` guard). The results do not depend on it: every fit is seeded and
    single-threaded.
    """
    say = progress or (lambda s: None)
    cfg = ws.config.segment
    bad = [m for m in methods if m not in METHODS or m == "rfm"]
    if bad:
        raise InputError(f"cannot compare {bad}; use {', '.join(METHODS[:-1])}",
                         code="E_METHOD")
    if jobs < 1:
        raise InputError("--jobs must be at least 1", code="E_JOBS")
    jobs = min(len(methods), jobs)
    p = prepare(ws, engine, cfg, methods[0], features, say)
    kpis = sample_kpis(engine, p.keys, churn_days=ws.config.clv.churn_days)
    ks = parse_k_range(cfg.k_range)
    rows = []
    for m, (fitted, kk, metrics, seconds) in zip(
            methods, _fits(p, methods, k, ks, cfg, jobs, say), strict=True):
        t0 = time.perf_counter()
        stab = metrics.get("stability") or {}
        extra = {"kpi_separation": kpi_separation(kpis, fitted.labels_)}
        if campaign is not None:
            say(f"{m}: campaign uplift per segment")
            extra["campaign"] = campaign_uplift(campaign, fitted, p)
        rows.append({"method": m, "k": kk, "silhouette": metrics.get("silhouette"),
                     "calinski_harabasz": metrics.get("calinski_harabasz"),
                     "davies_bouldin": metrics.get("davies_bouldin"),
                     "stability_ari": stab.get("ari_mean"),
                     "noise_share": metrics.get("noise_share"),
                     **extra, "seconds": round(seconds + time.perf_counter() - t0, 2)})
    return rows


Fit = tuple[Segmenter, int, dict[str, Any], float]
# rough CPU seconds of a fit (k chosen, stability) on the 20,000-customer demo: the order
# the methods are handed to the processes in (only the order matters)
COST = {"agglomerative": 24, "gmm": 21, "hdbscan": 6, "dbscan": 5, "kmeans": 3}


def _fits(p: Prepared, methods: list[str], k: int | None, ks: list[int],
          cfg: SegmentConfig, jobs: int, say: Callable[[str], None]) -> list[Fit]:
    """Each method fitted on ``p`` as ``tribes segment`` fits it, in ``jobs`` processes."""
    if jobs == 1:
        return [_fit(p, m, k, ks, cfg, lambda s, m=m: say(f"{m}: {s}"))  # type: ignore[misc]
                for m in methods]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    rows = replace(p, table=p.table.unbind(), keys=None)  # what a fit reads, picklable
    say(f"fitting {', '.join(methods)} in {jobs} processes")
    # the longest first, so that the short ones fill in at the end
    longest = sorted(methods, key=lambda m: -COST.get(m, 0))
    # spawn: a fresh interpreter, not a copy of this one with its engine's threads
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_fit, rows, m, k, ks, cfg, None): m for m in longest}
        done: dict[str, Fit] = {}
        for f in as_completed(futures):
            done[futures[f]] = f.result()
            say(f"{futures[f]}: fitted in {done[futures[f]][3]:.1f} s")
    return [done[m] for m in methods]


def _fit(p: Prepared, method: str, k: int | None, ks: list[int], cfg: SegmentConfig,
         say: Callable[[str], None] | None) -> Fit:
    t0 = time.perf_counter()
    fitted, kk, metrics = fit_method(p, method, k, ks, cfg, say or (lambda s: None))
    return fitted, kk, metrics, time.perf_counter() - t0
