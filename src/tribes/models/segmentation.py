"""The segment stage: fit on a sample, assign everyone in the engine, store a version."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score

from tribes.config import SegmentConfig, parse_k_range
from tribes.engine import Engine, md5_hex
from tribes.errors import InputError
from tribes.features import FEATURES_TABLE, RFM_GRID, last_features, segment_features
from tribes.models.assign import relabel, rule_assign
from tribes.models.matching import stable_ids
from tribes.models.method_names import METHODS
from tribes.models.methods import DENSITY, Segmenter, make_segmenter
from tribes.models.selection import MIN_JACCARD, KSelection, fit_best, select_k, stratified_sample
from tribes.models.stability import Stability, bootstrap_stability
from tribes.stats import Transform, fit_transform, profile, silhouette, single_threaded
from tribes.store import NewVersion, store_version
from tribes.workspace import RunContext, Workspace

log = logging.getLogger(__name__)

RFM_FEATURES = ["r_score", "f_score", "m_score"]
NO_PURCHASE = "No Purchase Yet"
_TMP = ("_sg_labels",)


@dataclass(frozen=True)
class SegmentReport:
    version: int
    method: str
    k: int
    n_customers: int
    features: list[str]
    metrics: dict[str, Any]
    segments: list[dict[str, Any]]
    parent_version: int | None
    seconds: float
    warnings: list[str] = field(default_factory=list)
    held: bool = False  # stored, not active: held for review

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


SMALL_SEGMENT = 10  # fewer customers than this: too few to describe or target


def size_warnings(segments: list[dict[str, Any]], n: int) -> list[str]:
    """Segments too small to act on (a k too large for the data)."""
    small = [s for s in segments if s["size"] < SMALL_SEGMENT and s["segment_id"] != -1]
    if not small:
        return []
    ids = ", ".join(f"{s['segment_id']} ({s['size']})" for s in small)
    return [f"segments {ids} have fewer than {SMALL_SEGMENT} customers of {n:,}: too few "
            "to describe or target; try a smaller --k or wait for more data"]


def fingerprint(t: ir.Table, features: list[str]) -> ir.StringValue:
    """A text that depends on a customer's feature values alone: the md5 of the values
    to six decimals, written as integers (the same on every engine). Customer keys
    depend on each workspace's secret; what is fitted, and how it is numbered, must
    not."""
    parts = [(t[f].cast("float64") * 1e6).round().cast("int64").cast("string").fill_null("-")
             for f in features]
    return md5_hex(ibis.literal("|").join(parts))


def refit_note(selection: dict[str, Any]) -> str | None:
    """What a reader of the k-selection table must know when the stored version is not
    the partition the table scored (see ``_stored_fit``)."""
    fit = selection.get("stored_fit") or {}
    if not fit.get("refit"):
        return None
    table, stored = fit.get("table_silhouette"), fit.get("silhouette")
    figures = ("" if table is None or stored is None else
               f": silhouette {stored:.3f} against {table:.3f} in the table at k = "
               f"{selection['chosen']}")
    return (f"the table scores fits on {fit['scored_on']:,} customers; the stored version "
            f"was fitted again on {fit['customers']:,}, so its own figures differ{figures}")


def stability_warning(metrics: dict[str, Any]) -> str | None:
    """What to say of a version some of whose segments do not come back when it is
    fitted again on bootstrap resamples (mean Jaccard under ``MIN_JACCARD``)."""
    jaccard = (metrics.get("stability") or {}).get("jaccard") or {}
    weak = sorted(((float(j), sid) for sid, j in jaccard.items() if j is not None
                   and float(j) < MIN_JACCARD))
    if not weak:
        return None
    listed = ", ".join(f"{sid} (Jaccard {j:.2f})" for j, sid in weak)
    return (f"segment{'s' if len(weak) > 1 else ''} {listed} "
            f"{'are' if len(weak) > 1 else 'is'} not stable: fitted again on bootstrap "
            f"resamples, {'they do' if len(weak) > 1 else 'it does'} not come back (mean "
            f"Jaccard under {MIN_JACCARD}), so {'they' if len(weak) > 1 else 'it'} may not "
            "be a real group. Try --k auto or another k, another --method, or more data")


def sample_customers(engine: Engine, t: ir.Table, features: list[str], size: int
                     ) -> pd.DataFrame:
    """Up to ``size`` customers with ``features``, always the same ones for the same
    feature values, in the order of those values (whatever the workspace's secret:
    customers with equal values are interchangeable)."""
    s = t.order_by([fingerprint(t, features), t.customer_key]).limit(size)
    df = engine.execute(s.select("customer_key", *features))
    return df.sort_values(features, na_position="last", kind="mergesort",
                          ignore_index=True)


@dataclass
class Prepared:
    """The customer table, the chosen features, and the transformed fit sample."""

    table: ir.Table
    features: list[str]
    n: int
    transform: Transform
    x: np.ndarray
    sub_idx: np.ndarray  # rows of x used for k selection and stability
    stats: dict[str, dict[str, float | None]]  # per feature on the sample: the data snapshot
    keys: np.ndarray | None = None  # customer_key of each row of x


def prepare(ws: Workspace, engine: Engine, cfg: SegmentConfig, method: str,
            features: list[str] | None, say: Callable[[str], None]) -> Prepared:
    """Check the inputs, sample the customers and fit the transform."""
    if method not in METHODS:
        raise InputError(f"unknown method '{method}'; use one of {', '.join(METHODS)}",
                         code="E_METHOD")
    if not engine.has_table(FEATURES_TABLE):
        raise InputError("no customer features yet; build them with: tribes features",
                         code="E_NO_FEATURES")
    t = engine.table(FEATURES_TABLE)
    feats = list(features or segment_features(cfg.features)) if method != "rfm" else RFM_FEATURES
    unknown = [f for f in feats if f not in t.columns]
    if unknown:
        available = ", ".join(c for c in t.columns if c not in ("customer_key", "as_of"))
        raise InputError(f"unknown features {unknown}; available: {available}",
                         code="E_FEATURE")
    n = int(engine.scalar(t.count()))
    if n < 3:
        raise InputError(f"{n} customers are too few to segment", code="E_TOO_FEW")
    if method == "rfm":
        empty = np.zeros((0, 0))
        return Prepared(t, feats, n, Transform((), (), (), "none", (), ()), empty,
                        np.arange(0), {})
    say("sampling customers")
    sample = sample_customers(engine, t, feats, cfg.sample_size)
    transform = fit_transform(sample, feats, log1p=cfg.log1p, scaler=cfg.scaler,
                              impute=cfg.impute, pca=cfg.pca)
    x = transform.apply(sample)
    rng = np.random.default_rng(cfg.random_state)
    sub_idx = np.arange(len(x)) if len(x) <= cfg.selection_sample else np.sort(
        rng.choice(len(x), cfg.selection_sample, replace=False))
    return Prepared(t, feats, n, transform, x, sub_idx,
                    _stats(sample, feats, bins=ws.config.monitor.bins),
                    keys=sample["customer_key"].to_numpy())


def _stats(sample: pd.DataFrame, feats: list[str], bins: int = 10) -> dict[str, Any]:
    """Per feature on the fit sample: mean, spread, null share and the drift reference
    (:func:`tribes.stats.drift.profile`) that tribes monitor compares later data with."""
    out: dict[str, Any] = {}
    for f in feats:
        col = pd.to_numeric(sample[f], errors="coerce").astype(float)
        ok = col.dropna()
        out[f] = {"mean": float(ok.mean()) if len(ok) else None,
                  "std": float(ok.std(ddof=0)) if len(ok) else None,
                  "median": float(ok.median()) if len(ok) else None,
                  "null_share": float(col.isna().mean()) if len(col) else None,
                  "profile": profile(col.to_numpy(dtype=float, na_value=np.nan), bins)}
    return out


def fit_method(p: Prepared, method: str, k: int | None, ks: list[int], cfg: SegmentConfig,
               say: Callable[[str], None]) -> tuple[Segmenter, int, dict[str, Any]]:
    """Choose k (when None), fit, and measure quality and stability on the sample.

    Returns the fitted estimator, the number of segments and the metrics to store.
    Every fit runs with one native thread (:func:`tribes.stats.single_threaded`): up to
    the 200,000 rows of a fitting sample, the thread pools made the stored fit 4x (gaussian
    mixture) to 15x (k-means) slower on a busy 2-core machine.
    """
    with single_threaded():
        return _fit_method(p, method, k, ks, cfg, say)


def _fit_method(p: Prepared, method: str, k: int | None, ks: list[int], cfg: SegmentConfig,
                say: Callable[[str], None]) -> tuple[Segmenter, int, dict[str, Any]]:
    seed = cfg.random_state
    x, sub_idx = p.x, p.sub_idx
    density = method in DENSITY
    if density and k is not None:
        raise InputError(f"{method} finds the number of segments itself; leave out --k "
                         "(or use kmeans, gmm or agglomerative)", code="E_METHOD")
    if k is not None and k >= len(x):
        raise InputError(f"{len(x):,} customers in the fitting sample are too few to segment "
                         f"into {k} (segment.sample_size = {cfg.sample_size:,})",
                         code="E_TOO_FEW")
    selection: KSelection | None = None
    if density:
        k = 0  # the method finds the number of clusters itself
    elif k is None:
        say("choosing k")
        selection = select_k(x[sub_idx], ks,
                             lambda kk, s: make_segmenter(method, kk, cfg, s),
                             random_state=seed, with_bic=method == "gmm",
                             progress=lambda s: say(f"choosing k: {s}"))
        k = selection.chosen
    fitted, stab, selection = fit_stable(p, method, k, cfg, selection, say)
    if density:
        k = len(set(fitted.labels_.tolist()) - {-1})
    elif selection is not None:
        k = selection.chosen
    metrics = {**_quality(x, fitted.labels_, seed), **fitted.extra_metrics_}
    if density:
        metrics["noise_share"] = float(np.mean(fitted.labels_ == -1))
    if stab is not None:
        metrics["stability"] = stab.as_dict()
    if selection is not None:
        metrics["k_selection"] = {**selection.as_dict(),
                                  "stored_fit": _stored_fit(selection, k, metrics, len(x),
                                                            len(sub_idx))}
    return fitted, k, metrics


def _stored_fit(selection: KSelection, k: int, metrics: dict[str, Any], n: int,
                scored_on: int) -> dict[str, Any]:
    """How the stored version relates to the k-selection table's row of its k: the table
    scores fits on ``scored_on`` customers; the version is fitted again on ``n`` (the
    whole fitting sample), and its own figures may differ."""
    row = next((s for s in selection.scores if s.k == k), None)
    table = None if row is None else row.silhouette
    stored = metrics.get("silhouette")
    same = (scored_on == n and table is not None and stored is not None
            and abs(table - stored) < 0.005)
    return {"customers": n, "scored_on": scored_on, "silhouette": stored,
            "table_silhouette": table, "refit": not same}


def fit_stable(p: Prepared, method: str, k: int, cfg: SegmentConfig,
               selection: KSelection | None, say: Callable[[str], None]
               ) -> tuple[Segmenter, Stability | None, KSelection | None]:
    """Fit ``method`` with ``k`` on the sample and measure its bootstrap stability; when k
    was chosen and a segment does not come back in the resamples, step down to the next
    smaller distinct k (:meth:`KSelection.step_down`) and fit again."""
    make = lambda kk, s: make_segmenter(method, kk, cfg, s)  # noqa: E731
    while True:
        say(f"fitting {method}" + ("" if method in DENSITY else f" with k = {k}"))
        fitted = fit_best(make, k, p.x, cfg.random_state)
        if not cfg.resamples:
            return fitted, None, selection
        say(f"stability ({cfg.resamples} bootstrap resamples)")
        labels = fitted.labels_[p.sub_idx]
        stab = bootstrap_stability(p.x[p.sub_idx], labels, partial(_refit, fitted),
                                   resamples=cfg.resamples, random_state=cfg.random_state)
        lower = None if selection is None else selection.step_down(
            stab.jaccard, {int(c): int(n) for c, n in zip(
                *np.unique(labels, return_counts=True), strict=True)})
        if lower is None:
            return fitted, stab, selection
        say(f"k = {k} is not stable: trying k = {lower.chosen}")
        selection, k = lower, lower.chosen


def _refit(fitted: Segmenter, seed: int) -> Any:
    """An unfitted copy of ``fitted`` with another seed (a bootstrap refit)."""
    return clone(fitted).set_params(random_state=seed)


def run_segmentation(
    ctx: RunContext,
    *,
    method: str = "kmeans",
    k: int | None = None,
    features: list[str] | None = None,
    k_range: str | None = None,
    cfg: SegmentConfig | None = None,
    progress: Callable[[str], None] | None = None,
    activate: bool = True,
) -> SegmentReport:
    """Segment the customers of ``customer_features`` and store the result as the new
    active version (``activate=False``: stored, held for review; tribes versions
    activate makes it active). ``k=None`` chooses k (see
    :mod:`tribes.models.selection`)."""
    say = progress or (lambda s: None)
    started = time.perf_counter()
    ws, engine = ctx.ws, ctx.engine
    cfg = cfg or ws.config.segment
    ks = parse_k_range(k_range or cfg.k_range)
    p = prepare(ws, engine, cfg, method, features, say)
    if method == "rfm":
        return _run_rfm(engine, p.table, cfg=cfg, n=p.n, started=started, say=say,
                        bins=ws.config.monitor.bins, activate=activate)
    fitted, k, metrics = fit_method(p, method, k, ks, cfg, say)
    say("assigning every customer")
    try:
        assigned = engine.create_temp("_sg_labels", fitted.assign(p.table, p.transform))
        report = _store(engine, assigned, method=method, k=k, feats=p.features,
                        transform=p.transform.as_dict(), model=fitted.params_,
                        metrics=metrics, cfg=cfg, n=p.n, started=started,
                        stats=p.stats, fitted_on=len(p.x), activate=activate)
    finally:
        for name in _TMP:
            engine.drop_temp(name)
    return report


def choose_k(ctx: RunContext, *, method: str = "kmeans",
             features: list[str] | None = None, k_range: str | None = None,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every k-selection criterion per k, without storing anything."""
    say = progress or (lambda s: None)
    ws, engine = ctx.ws, ctx.engine
    cfg = ws.config.segment
    if method in (*DENSITY, "rfm"):
        raise InputError(f"{method} finds the number of segments itself; select-k applies "
                         "to kmeans, gmm and agglomerative", code="E_METHOD")
    p = prepare(ws, engine, cfg, method, features, say)
    with single_threaded():
        sel = select_k(p.x[p.sub_idx], parse_k_range(k_range or cfg.k_range),
                       lambda k, s: make_segmenter(method, k, cfg, s),
                       random_state=cfg.random_state,
                       with_bic=method == "gmm", progress=say)
        _, _, checked = fit_stable(p, method, sel.chosen, cfg, sel, say)  # as segment does
    sel = checked or sel
    return {"method": method, "features": p.features, "n_customers": p.n,
            "n_scored": len(p.sub_idx), **sel.as_dict()}


def _run_rfm(engine: Engine, t: ir.Table, *, cfg: SegmentConfig, n: int, started: float,
             say: Callable[[str], None], bins: int = 10, activate: bool = True
             ) -> SegmentReport:
    """Rule-based segments: the classic RFM label of every customer (no clustering)."""
    names = rfm_names()
    say("assigning RFM segments")
    try:
        assigned = engine.create_temp("_sg_labels", rule_assign(t, names))
        k = int(engine.scalar(assigned.label.nunique()))
        return _store(engine, assigned, method="rfm", k=k, feats=RFM_FEATURES,
                      transform={}, model={"rules": "rfm_label from (r_score, f_score)",
                                           "labels": names},
                      metrics={}, cfg=cfg, n=n, started=started,
                      names=dict(enumerate(names)),
                      stats=_stats(sample_customers(engine, t, RFM_FEATURES,
                                                    cfg.sample_size), RFM_FEATURES, bins=bins),
                      activate=activate)
    finally:
        for name in _TMP:
            engine.drop_temp(name)


def rfm_names() -> list[str]:
    """The labels of the RFM rules, in the order of their model labels (the last one,
    no purchase yet, also takes any other value)."""
    return [name for name, _, _ in RFM_GRID] + [NO_PURCHASE]


def _quality(x: np.ndarray, labels: np.ndarray, seed: int) -> dict[str, Any]:
    if len(np.unique(labels)) < 2:
        return {"silhouette": None, "calinski_harabasz": None, "davies_bouldin": None}
    idx = stratified_sample(labels, 4000, np.random.default_rng(seed))
    return {
        "silhouette": silhouette(x[idx], labels[idx]),
        "calinski_harabasz": float(calinski_harabasz_score(x, labels)),
        "davies_bouldin": float(davies_bouldin_score(x, labels)),
    }


def _relabel_metrics(metrics: dict[str, Any], mapping: dict[int, int]) -> dict[str, Any]:
    """Per-segment metrics keyed by the model's labels, re-keyed by segment id."""
    stab = metrics.get("stability")
    if not isinstance(stab, dict) or not stab.get("jaccard"):
        return metrics
    jaccard = {str(mapping[int(lab)]): v for lab, v in stab["jaccard"].items()
               if int(lab) in mapping}
    return {**metrics, "stability": {**stab, "jaccard": jaccard}}


def _store(engine: Engine, assigned: ir.Table, *, method: str, k: int, feats: list[str],
           transform: dict[str, Any], model: dict[str, Any], metrics: dict[str, Any],
           cfg: SegmentConfig, n: int, started: float,
           names: dict[int, str] | None = None,
           stats: dict[str, Any] | None = None, fitted_on: int | None = None,
           activate: bool = True) -> SegmentReport:
    """Number the new segments (ids carried over from the active version) and store the
    version (:func:`tribes.store.segments.store_version`)."""
    # groups of one size are numbered by their members' values, never by their keys
    f = engine.table(FEATURES_TABLE)
    marks = f.select(m_key="customer_key", mark=fingerprint(f, feats))
    marked = assigned.left_join(marks, assigned.customer_key == marks.m_key)
    sizes_df = engine.execute(marked.group_by("label").aggregate(
        n=marked.count(), first=marked.mark.min()))
    new_sizes = {int(r.label): int(r.n) for r in sizes_df.itertuples()}
    first_key = {int(r.label): str(r.first) for r in sizes_df.itertuples()}
    mapping, parent = stable_ids(engine, assigned, new_sizes, first_key)
    metrics = _relabel_metrics(metrics, mapping)

    def name_of(lab: int) -> str:
        if names and lab in names:
            return names[lab]
        return "Unusual" if mapping[lab] == -1 else f"Segment {mapping[lab]}"

    segments: list[dict[str, Any]] = [
        {"segment_id": mapping[lab], "size": size, "share": size / n, "name": name_of(lab)}
        for lab, size in sorted(new_sizes.items(), key=lambda kv: -kv[1])]
    features_run = last_features(engine)
    snapshot = {"n_customers": n, "fitted_on": fitted_on, "feature_stats": stats or {},
                "features_run": features_run["run_id"] if features_run else None,
                "as_of": (features_run or {}).get("report", {}).get("as_of"),
                "held": not activate}
    new = NewVersion(
        method=method, k=k,
        params={**cfg.model_dump(), "features": segment_features(cfg.features)},
        features=feats, transform=transform,
        model={**model, "labels_to_segments": {str(a): b for a, b in mapping.items()}},
        metrics=metrics, snapshot=snapshot, segments=segments, parent_version=parent,
        n_customers=n)
    version = store_version(engine, new, assigned.select(
        "customer_key", segment_id=relabel(assigned.label, mapping),
        probability="probability"), make_active=activate)
    log.info("segment version %d: %s k=%d", version, method, k)
    return SegmentReport(version=version, method=method, k=k, n_customers=n, features=feats,
                         metrics=metrics, segments=segments, parent_version=parent,
                         seconds=round(time.perf_counter() - started, 3),
                         warnings=[*size_warnings(segments, n),
                                   *filter(None, [stability_warning(metrics)])],
                         held=not activate)
