"""Assigning customers to segments in the engine (no collect of the customer table)."""

from __future__ import annotations

from collections.abc import Sequence

import ibis
import ibis.expr.types as ir

from tribes.stats.scaling import Transform


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
