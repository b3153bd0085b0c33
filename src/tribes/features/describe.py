"""``features describe``: per feature its definition, nulls, spread and a histogram."""

from __future__ import annotations

import math
from typing import Any

import ibis
import ibis.expr.types as ir

from tribes.engine import Engine
from tribes.features.definitions import definition

SPARK = "▁▂▃▄▅▆▇█"
BINS = 12


def sparkline(counts: list[int]) -> str:
    """Bar heights for histogram counts (an empty bin is a space)."""
    top = max(counts) if counts else 0
    if top == 0:
        return ""
    return "".join(" " if c == 0 else SPARK[min(len(SPARK) - 1, (c * len(SPARK) - 1) // top)]
                   for c in counts)


def _histogram(engine: Engine, col: ir.NumericValue, t: ir.Table, lo: float,
               hi: float) -> list[int]:
    if hi <= lo:
        return [int(engine.scalar(t.filter(col.notnull()).count()))]
    width = (hi - lo) / BINS
    b = ibis.least(((col.cast("float64") - lo) / width).floor().cast("int64"), BINS - 1)
    f = t.filter(col.notnull())
    df = engine.execute(f.group_by(bin=b).aggregate(n=f.count()))
    counts = [0] * BINS
    for k, n in zip(df["bin"], df["n"], strict=True):
        counts[int(k)] = int(n)
    return counts


def describe_features(engine: Engine, table: str = "customer_features") -> list[dict[str, Any]]:
    """One entry per feature column of ``table``: definition, null share, min/median/max,
    histogram counts (12 equal-width bins) and its sparkline; top values for text columns."""
    t = engine.table(table)
    n = int(engine.scalar(t.count()))
    out: list[dict[str, Any]] = []
    numeric = [c for c, typ in t.schema().items()
               if (typ.is_numeric() or typ.is_boolean()) and c != "customer_key"]
    aggs: dict[str, ir.Scalar] = {}
    for c in numeric:
        v = t[c].cast("float64") if t[c].type().is_boolean() else t[c]
        aggs[f"{c}__nulls"] = t[c].isnull().cast("int64").sum()
        aggs[f"{c}__min"] = v.min()
        aggs[f"{c}__median"] = v.median()
        aggs[f"{c}__max"] = v.max()
    stats = engine.execute(t.aggregate(**aggs)).iloc[0].to_dict() if aggs and n else {}
    for c, typ in t.schema().items():
        if c in ("customer_key", "as_of"):
            continue
        d = definition(c)
        entry: dict[str, Any] = {
            "feature": c,
            "definition": d.definition if d else ("true for customers with a known id"
                                                  if c == "known" else ""),
            "null_meaning": d.null_meaning if d else "never null",
        }
        if c in numeric and n:
            nulls = int(stats[f"{c}__nulls"] or 0)
            lo, med, hi = (stats[f"{c}__{k}"] for k in ("min", "median", "max"))
            entry.update(null_share=nulls / n, min=_num(lo), median=_num(med), max=_num(hi))
            v = t[c].cast("float64") if typ.is_boolean() else t[c]
            counts = _histogram(engine, v, t, float(lo), float(hi)) if nulls < n else []
            entry.update(histogram=counts, sparkline=sparkline(counts))
        elif n:
            nulls = int(engine.scalar(t[c].isnull().cast("int64").sum()))
            f = t.filter(t[c].notnull())
            top = engine.execute(f.group_by(value=f[c]).aggregate(n=f.count())
                                 .order_by([ibis.desc("n"), "value"]).limit(5))
            entry.update(null_share=nulls / n,
                         top_values={str(v): int(k) for v, k in zip(top["value"], top["n"],
                                                                   strict=True)})
        out.append(entry)
    return out


def _num(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    return None if math.isnan(f) else f
