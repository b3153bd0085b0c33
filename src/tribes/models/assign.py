"""Assigning customers to segments in the engine (no collect of the customer table)."""

from __future__ import annotations

from collections.abc import Sequence

import ibis
import ibis.expr.types as ir
import numpy as np

from tribes.stats import Transform

NOISE = -1  # the label of customers in no cluster (density methods)


def nearest_centroid(t: ir.Table, transform: Transform,
                     centroids: Sequence[Sequence[float]], key: str = "customer_key"
                     ) -> ir.Table:
    """``key``, ``label`` (the index of the nearest centroid; squared Euclidean in model
    space, ties to the lowest index) and ``distance2`` (its squared distance)."""
    z = transform.exprs(t)
    coords = t.select(key, **{f"_z{i}": e for i, e in enumerate(z)}).view()
    dists: dict[str, ir.FloatingValue] = {}
    for j, c in enumerate(centroids):
        d: ir.FloatingValue = ibis.literal(0.0)
        for i, ci in enumerate(c):
            diff = coords[f"_z{i}"] - ci
            d = d + diff * diff
        dists[f"_d{j}"] = d
    dt = coords.select(key, **dists).view()
    cols = [dt[name] for name in dists]
    best = ibis.least(*cols) if len(cols) > 1 else cols[0]
    label = ibis.cases(*[(c == best, j) for j, c in enumerate(cols)], else_=0)
    return dt.select(key, label=label.cast("int64"), distance2=best)


def relabel(label: ir.IntegerValue, mapping: dict[int, int]) -> ir.IntegerValue:
    """Map model labels to segment ids."""
    if not mapping:
        return label
    return ibis.cases(*[(label == k, v) for k, v in mapping.items()],
                      else_=label).cast("int64")


def rule_assign(t: ir.Table, names: Sequence[str], column: str = "rfm_label") -> ir.Table:
    """Rule-based segments: label = the index of the customer's ``column`` value in
    ``names``, the last name for any other value (or none); probability 1."""
    label = ibis.cases(*[(t[column] == name, i) for i, name in enumerate(names[:-1])],
                       else_=len(names) - 1)
    return t.select("customer_key", label=label.cast("int64"), probability=ibis.literal(1.0))


def centroid_assign(t: ir.Table, transform: Transform, centroids: np.ndarray) -> ir.Table:
    """Each customer's nearest centroid (label) as engine expressions; probability 1."""
    a = nearest_centroid(t, transform, centroids.tolist())
    return a.select("customer_key", "label", probability=ibis.literal(1.0))


def radius_assign(t: ir.Table, transform: Transform, centroids: np.ndarray,
                  radius2: np.ndarray) -> ir.Table:
    """Each customer's nearest centroid when within its squared radius, else noise
    (-1), as engine expressions; probability 1."""
    if not len(centroids):
        return t.select("customer_key", label=ibis.literal(NOISE, type="int64"),
                        probability=ibis.literal(1.0))
    a = nearest_centroid(t, transform, centroids.tolist())
    limit = ibis.cases(*[(a.label == j, float(r)) for j, r in enumerate(radius2)],
                       else_=0.0)
    return a.select("customer_key",
                    label=ibis.ifelse(a.distance2 <= limit, a.label, NOISE).cast("int64"),
                    probability=ibis.literal(1.0))


def gaussian_assign(t: ir.Table, transform: Transform, means: np.ndarray,
                    chol: np.ndarray, weights: np.ndarray, key: str = "customer_key") -> ir.Table:
    """Responsibilities of each Gaussian component as engine expressions; label = the
    most likely, probability = its responsibility."""
    z = transform.exprs(t)
    coords = t.select(key, **{f"_z{i}": e for i, e in enumerate(z)}).view()
    p = len(z)
    logs: dict[str, ir.FloatingValue] = {}
    for c in range(len(means)):
        # log N(x | mu, Sigma) + log pi = -0.5 (p log 2pi + |(x - mu) U|^2) + log det U + log pi
        const = (-0.5 * p * np.log(2 * np.pi) + float(np.log(np.diag(chol[c])).sum())
                 + float(np.log(weights[c])))
        sq: ir.FloatingValue = ibis.literal(0.0)
        for j in range(p):
            y: ir.FloatingValue = ibis.literal(0.0)
            for i in range(p):
                if chol[c][i][j] != 0.0:
                    y = y + (coords[f"_z{i}"] - float(means[c][i])) * float(chol[c][i][j])
            sq = sq + y * y
        logs[f"_l{c}"] = sq * -0.5 + const
    lt = coords.select(key, **logs).view()
    cols = [lt[n] for n in logs]
    top = ibis.greatest(*cols) if len(cols) > 1 else cols[0]
    total: ir.FloatingValue = ibis.literal(0.0)
    for col in cols:
        total = total + (col - top).exp()
    label = ibis.cases(*[(col == top, i) for i, col in enumerate(cols)], else_=0)
    return lt.select(key, label=label.cast("int64"), probability=1.0 / total)
