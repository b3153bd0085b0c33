"""The versioned segment store: runs, assignments and which version is active.

Versions are never changed after they are written; activating one appends a row to
``segment_activations`` and the newest row names the active version.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from tribes.engine import Engine
from tribes.errors import InputError
from tribes.store.tables import SEGMENT_ACTIVATIONS

JSON_COLUMNS = ("params", "features", "transform", "model", "metrics", "snapshot", "segments")
# member overlap (Jaccard) above which a new segment is "the same group" as an old one
SAME_GROUP = 0.5
NOISE = -1


def active_version(engine: Engine) -> int | None:
    t = engine.table("segment_activations")
    df = engine.execute(t.order_by([ibis.desc("activated_at"), ibis.desc("version")]).limit(1))
    return None if df.empty else int(df["version"].iloc[0])


def next_version(engine: Engine) -> int:
    v = engine.scalar(engine.table("segment_runs").version.max())
    return 1 if v is None or pd.isna(v) else int(v) + 1


def get_run(engine: Engine, version: int) -> dict[str, Any]:
    t = engine.table("segment_runs")
    df = engine.execute(t.filter(t.version == version))
    if df.empty:
        known = list_versions(engine)
        raise InputError(f"no segment version {version}; versions: "
                         f"{', '.join(str(v['version']) for v in known) or 'none yet'}",
                         code="E_VERSION_NOT_FOUND")
    row = df.iloc[0].to_dict()
    for c in JSON_COLUMNS:
        row[c] = json.loads(row[c] or "null")
    row["version"] = int(row["version"])
    row["k"] = int(row["k"])
    row["parent_version"] = None if pd.isna(row["parent_version"]) else int(
        row["parent_version"])
    row["status"] = "active" if active_version(engine) == version else "inactive"
    return row


def list_versions(engine: Engine) -> list[dict[str, Any]]:
    t = engine.table("segment_runs")
    df = engine.execute(t.select("version", "created_at", "method", "k", "metrics",
                                 "snapshot", "parent_version").order_by("version"))
    active = active_version(engine)
    acts = engine.table("segment_activations")
    ever = set(engine.execute(acts.select("version").distinct())["version"].astype(int))
    out = []
    for r in df.to_dict("records"):
        m = json.loads(r["metrics"] or "{}")
        snap = json.loads(r["snapshot"] or "{}")
        v = int(r["version"])
        status = "active" if v == active else (
            "held" if snap.get("held") and v not in ever else "inactive")
        out.append({"version": int(r["version"]), "created_at": r["created_at"],
                    "method": r["method"], "k": int(r["k"]),
                    "customers": snap.get("n_customers"),
                    "silhouette": m.get("silhouette"),
                    "stability_ari": (m.get("stability") or {}).get("ari_mean"),
                    "parent_version": None if pd.isna(r["parent_version"])
                    else int(r["parent_version"]),
                    "active": v == active, "status": status})
    return out


def activate(engine: Engine, version: int, action: str = "activate") -> int | None:
    """Make ``version`` the active one; returns the previously active version."""
    get_run(engine, version)
    previous = active_version(engine)
    row = pd.DataFrame([{"version": version, "activated_at": datetime.now(UTC),
                         "action": action, "previous": previous}])
    engine.insert("segment_activations", ibis.memtable(row).cast(SEGMENT_ACTIVATIONS))
    if action != "create":  # a new version is recorded by its segmentation
        engine.audit(f"versions.{action}", target=f"version {version}",
                     detail={"previous": previous})
    return previous


def history(engine: Engine) -> list[dict[str, Any]]:
    """Every activation, oldest first: version, time, action (create, activate, rollback)
    and the version active before."""
    t = engine.table("segment_activations")
    df = engine.execute(t.order_by(["activated_at", "version"]))
    return [{"version": int(r["version"]), "activated_at": r["activated_at"],
             "action": r["action"],
             "previous": None if pd.isna(r["previous"]) else int(r["previous"])}
            for r in df.to_dict("records")]


def rollback(engine: Engine) -> tuple[int, int]:
    """Re-activate the version that was active before the current one.

    Activations form a stack: creating or activating a version pushes it, a rollback
    pops the current one, so rolling back twice goes back two steps (3 -> 2 -> 1), not
    back and forth.
    """
    stack: list[int] = []
    for h in history(engine):
        if h["action"] == "rollback" and len(stack) > 1:
            stack.pop()
        elif not stack or stack[-1] != h["version"]:
            stack.append(h["version"])
    if not stack:
        raise InputError("no segment version is active; nothing to roll back",
                         code="E_VERSION")
    current = stack[-1]
    earlier = [v for v in stack[:-1] if v != current]
    if not earlier:
        raise InputError(f"version {current} is the first version activated; nothing to "
                         "roll back to (activate another with: tribes versions activate N)",
                         code="E_VERSION")
    activate(engine, earlier[-1], action="rollback")
    return current, earlier[-1]


def crosstab(engine: Engine, a: int, b: int) -> pd.DataFrame:
    """Customers per (segment in version a, segment in version b), customers in both."""
    t = engine.table("segment_assignments")
    x = t.filter(t.version == a).select("customer_key", seg_a="segment_id")
    y = t.filter(t.version == b).select(k2="customer_key", seg_b="segment_id")
    j = x.join(y, x.customer_key == y.k2)
    df = engine.execute(j.group_by(["seg_a", "seg_b"]).aggregate(n=j.count()))
    if df.empty:
        return pd.DataFrame()
    return df.pivot(index="seg_a", columns="seg_b", values="n").fillna(0).astype("int64")


def ari_from_table(table: pd.DataFrame) -> float:
    """Adjusted Rand index from a contingency table (Hubert and Arabie 1985)."""
    if table.empty:
        return float("nan")
    n_ij = table.to_numpy(dtype=float)

    def pairs(v: np.ndarray) -> float:
        return float((v * (v - 1) / 2).sum())

    n = n_ij.sum()
    index = pairs(n_ij)
    a, b = pairs(n_ij.sum(axis=1)), pairs(n_ij.sum(axis=0))
    expected = a * b / (n * (n - 1) / 2) if n > 1 else 0.0
    top = (a + b) / 2
    return 1.0 if top == expected else float((index - expected) / (top - expected))


def diff(engine: Engine, a: int, b: int) -> dict[str, Any]:
    """Migration matrix between versions ``a`` and ``b``, their ARI and size changes."""
    ra, rb = get_run(engine, a), get_run(engine, b)
    table = crosstab(engine, a, b)
    sizes_a = {s["segment_id"]: s["size"] for s in ra["segments"]}
    sizes_b = {s["segment_id"]: s["size"] for s in rb["segments"]}
    ids = sorted(set(sizes_a) | set(sizes_b))
    return {
        "a": a, "b": b,
        "ari": ari_from_table(table),
        "matrix": {str(i): {str(j): int(table.loc[i, j]) for j in table.columns}
                   for i in table.index},
        "sizes": [{"segment_id": i, "size_a": sizes_a.get(i, 0), "size_b": sizes_b.get(i, 0),
                   "change": sizes_b.get(i, 0) - sizes_a.get(i, 0)} for i in ids],
        "customers_in_both": int(table.to_numpy().sum()) if not table.empty else 0,
    }


def match_segment_ids(overlap: pd.DataFrame, new_sizes: dict[int, int],
                      old_sizes: dict[int, int], next_id: int,
                      tie_key: dict[int, str] | None = None) -> dict[int, int]:
    """New model labels -> segment ids, keeping the old id of the same group.

    ``overlap``: customers per (new label, old segment id). Labels are paired by the
    Hungarian method on Jaccard overlap; a pair with Jaccard >= 0.5 keeps the old id, every
    other label gets a fresh id from ``next_id`` on (largest first; groups of one size by
    ``tie_key``, e.g. their smallest customer key, so the ids do not depend on the order
    in which a model numbered its clusters). Noise stays -1.
    """
    tie = tie_key or {}
    labels = sorted(new_sizes, key=lambda lab: (-new_sizes[lab], tie.get(lab, ""), lab))
    mapping: dict[int, int] = {NOISE: NOISE} if NOISE in new_sizes else {}
    real = [lab for lab in labels if lab != NOISE]
    olds = [o for o in old_sizes if o != NOISE]
    if real and olds and not overlap.empty:
        jac = np.zeros((len(real), len(olds)))
        for i, lab in enumerate(real):
            for j, o in enumerate(olds):
                inter = (float(overlap.at[lab, o])  # type: ignore[arg-type]
                         if lab in overlap.index and o in overlap.columns else 0.0)
                jac[i, j] = inter / (new_sizes[lab] + old_sizes[o] - inter)
        from scipy.optimize import linear_sum_assignment  # slow to import: on use

        rows, cols = linear_sum_assignment(-jac)
        for i, j in zip(rows, cols, strict=True):
            if jac[i, j] >= SAME_GROUP:
                mapping[real[i]] = olds[j]
    for lab in real:
        if lab not in mapping:
            mapping[lab] = next_id
            next_id += 1
    return mapping


def active_segments(engine: Engine, version: int | None = None) -> ir.Table:
    """customer_key, segment_id, segment_name, probability, version of the active (or the
    given) version."""
    v = active_version(engine) if version is None else version
    if v is None:
        raise InputError("no segment version yet; create one with: tribes segment",
                         code="E_EMPTY")
    names = {int(s["segment_id"]): s["name"] for s in get_run(engine, v)["segments"]}
    p = engine.table("personas")
    named = engine.execute(p.filter(p.version == v).select("segment_id", "name"))
    names.update({int(r.segment_id): str(r.name) for r in named.itertuples()})
    t = engine.table("segment_assignments")
    t = t.filter(t.version == v)
    name = ibis.cases(*[(t.segment_id == i, n) for i, n in names.items()],
                      else_=t.segment_id.cast("string"))
    return t.select("customer_key", "segment_id", segment_name=name,
                    probability="probability", version="version")


def members(engine: Engine, version: int | None = None) -> ir.Table:
    """``a_key, segment_id`` of every customer in a segment version (default: active)."""
    v = active_version(engine) if version is None else version
    if v is None:
        raise InputError("no segment version yet; create one with: tribes segment",
                         code="E_NO_SEGMENTS")
    a = engine.table("segment_assignments")
    return a.filter(a.version == v).select(a_key="customer_key", segment_id="segment_id")


def segment_names(engine: Engine, version: int) -> dict[int, str]:
    """Segment id -> name in ``version``: the persona's name where there are personas,
    else the version's own ("Segment 3")."""
    run = get_run(engine, version)
    names = {int(s["segment_id"]): str(s["name"]) for s in run["segments"] or []}
    p = engine.table("personas")
    df = engine.execute(p.filter(p.version == version).select("segment_id", "name"))
    return {**names, **{int(r.segment_id): str(r.name) for r in df.itertuples()}}
