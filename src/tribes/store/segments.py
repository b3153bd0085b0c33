"""The versioned segment store: runs, memberships and which version is active.

This module owns the tables ``segment_runs``, ``segment_assignments``,
``segment_activations`` and ``segment_refreshes``: every read and write of them goes
through it. A version's run (method, transform, model, metrics, the snapshot of the data
it was fitted on) is never changed after it is written (:func:`store_version`).
Activating one appends a row to ``segment_activations`` and the newest row names the
active version.

A version's memberships, its rows of ``segment_assignments``, are the one place every
reader of "the members of version N" reads (exports, activation, personas, the API, the
report). They follow the customers: a refresh applies the version's own model to today's
customers (``tribes.models.refresh_memberships``) and :func:`replace_memberships` swaps
the version's rows for the new ones in one transaction, logged in ``segment_refreshes``
(when, from which features, how many customers are new, moved or left). The only change
a refresh makes to a run is to give a segment id to a model label no customer had when
the version was fitted (an RFM rule nobody matched then): :func:`add_segments`.

How segment ids carry over from one version to the next is a modelling choice, made in
``tribes.models.matching``; this module only answers the questions it asks
(:func:`overlap_with`, :func:`next_segment_id`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from tribes.engine import Engine
from tribes.errors import InputError, NoSegmentVersionError
from tribes.store.tables import (
    SEGMENT_ACTIVATIONS,
    SEGMENT_ASSIGNMENTS,
    SEGMENT_REFRESHES,
    SEGMENT_RUNS,
)

JSON_COLUMNS = ("params", "features", "transform", "model", "metrics", "snapshot", "segments")


def active_version(engine: Engine) -> int | None:
    t = engine.table("segment_activations")
    df = engine.execute(t.order_by([ibis.desc("activated_at"), ibis.desc("version")]).limit(1))
    return None if df.empty else int(df["version"].iloc[0])


def next_version(engine: Engine) -> int:
    v = engine.scalar(engine.table("segment_runs").version.max())
    return 1 if v is None or pd.isna(v) else int(v) + 1


def require_version(engine: Engine, version: int | None = None, *, purpose: str = ""
                    ) -> int:
    """``version`` when given, else the active version.

    Parameters
    ----------
    engine : Engine
        The workspace's engine.
    version : int, optional
        A version the caller asked for (returned as is; :func:`get_run` checks it exists).
    purpose : str
        What the version is needed for, for the message ("to monitor").

    Returns
    -------
    int
        The version to read.

    Raises
    ------
    NoSegmentVersionError
        ``E_NO_SEGMENTS``: no version was given and none is active (there is none yet,
        or every version is held for review; the message says which and what to run).
    """
    v = active_version(engine) if version is None else version
    if v is None:
        held = engine.execute(engine.table("segment_runs").select("version")
                              .order_by("version"))["version"]
        raise NoSegmentVersionError(purpose, held=[int(h) for h in held])
    return v


@dataclass(frozen=True)
class NewVersion:
    """What a segmentation stores as one row of ``segment_runs`` (the JSON parts as
    plain values; :func:`store_version` writes them as text)."""

    method: str
    k: int
    params: dict[str, Any]  # the segment configuration it was built with
    features: list[str]
    transform: dict[str, Any]
    model: dict[str, Any]  # the model's parameters, with its labels -> segment ids
    metrics: dict[str, Any]
    snapshot: dict[str, Any]  # the data it was fitted on (sizes, feature profiles)
    segments: list[dict[str, Any]]
    parent_version: int | None
    n_customers: int


def store_version(engine: Engine, new: NewVersion, assignments: ir.Table, *,
                  make_active: bool = True) -> int:
    """Write a new segment version: its run, every customer's segment, and (unless held
    for review) its activation, in one transaction with its audit record.

    Parameters
    ----------
    engine : Engine
        The workspace's engine.
    new : NewVersion
        The version's run: method, parameters, metrics, segments.
    assignments : ibis.expr.types.Table
        ``customer_key``, ``segment_id`` (the stable ids) and ``probability``.
    make_active : bool
        Make the new version the active one; False: stored, held for review.

    Returns
    -------
    int
        The new version's number.
    """
    with engine.transaction():
        version = next_version(engine)
        rows = assignments.select(
            version=ibis.literal(version, type="int64"),
            customer_key=assignments.customer_key, segment_id=assignments.segment_id,
            probability=assignments.probability.cast("float64"))
        engine.insert("segment_assignments", rows.cast(SEGMENT_ASSIGNMENTS))
        run = {
            "version": version, "created_at": datetime.now(UTC), "method": new.method,
            "k": new.k, "params": json.dumps(new.params), "features": json.dumps(new.features),
            "transform": json.dumps(new.transform), "model": json.dumps(new.model),
            "metrics": json.dumps(new.metrics), "snapshot": json.dumps(new.snapshot),
            "segments": json.dumps(new.segments), "parent_version": new.parent_version,
        }
        engine.insert("segment_runs", ibis.memtable(pd.DataFrame([run])).cast(SEGMENT_RUNS))
        if make_active:
            activate_version(engine, version, action="create")
        engine.audit("segment", target=f"version {version}", rows=new.n_customers,
                     detail={"method": new.method, "k": new.k,
                             "parent_version": new.parent_version,
                             "held": not make_active})
    return version


def overlap_with(engine: Engine, labels: ir.Table, version: int
                 ) -> tuple[pd.DataFrame, dict[int, int]]:
    """How new model labels overlap the segments of a stored version.

    Parameters
    ----------
    engine : Engine
        The workspace's engine.
    labels : ibis.expr.types.Table
        ``customer_key`` and ``label`` (a model's labels).
    version : int
        The stored version to compare with.

    Returns
    -------
    overlap : pandas.DataFrame
        Customers per (label: index, segment id of ``version``: columns); empty when no
        customer is in both.
    sizes : dict
        Customers per segment id of ``version``.
    """
    sa = engine.table("segment_assignments")
    old = sa.filter(sa.version == version)
    j = labels.join(old, labels.customer_key == old.customer_key)
    df = engine.execute(j.group_by(["label", "segment_id"]).aggregate(n=j.count()))
    overlap = (pd.DataFrame() if df.empty else
               df.pivot(index="label", columns="segment_id", values="n").fillna(0))
    od = engine.execute(old.group_by("segment_id").aggregate(n=old.count()))
    return overlap, {int(r.segment_id): int(r.n) for r in od.itertuples()}


def next_segment_id(engine: Engine) -> int:
    """The first segment id no version has used (ids are never reused, even those of
    segments that a refresh or an erasure left empty)."""
    top = engine.scalar(engine.table("segment_assignments").segment_id.max())
    ids = [-1 if top is None or pd.isna(top) else int(top)]
    runs = engine.execute(engine.table("segment_runs").select("segments"))
    for text in runs["segments"]:
        ids.extend(int(seg["segment_id"]) for seg in json.loads(text or "[]"))
    return max(ids) + 1


def versions_built_from(engine: Engine, features_run: str | None) -> list[int]:
    """The versions (held or not) fitted on the customer features of ``features_run``
    (a ``stage_runs`` id of the features stage), oldest first."""
    runs = engine.execute(engine.table("segment_runs").select("version", "snapshot")
                          .order_by("version"))
    return [int(v) for v, snap in zip(runs["version"], runs["snapshot"], strict=True)
            if json.loads(snap or "{}").get("features_run") == features_run]


def replace_memberships(engine: Engine, version: int, rows: ir.Table, *,
                        features_run: str | None, trigger: str) -> dict[str, Any]:
    """Make ``rows`` the memberships of ``version``: its rows of ``segment_assignments``
    replaced, a row in ``segment_refreshes`` and an audit record, in one transaction.

    Parameters
    ----------
    engine : Engine
        The workspace's engine.
    version : int
        The version whose memberships these are (its run is left as it is).
    rows : ibis.expr.types.Table
        ``customer_key``, ``segment_id`` and ``probability`` of every customer the
        version holds now (best materialized: it is read twice).
    features_run : str, optional
        The features stage run the rows were computed from.
    trigger : str
        What set the refresh off: ``run``, ``activate``, ``rollback``.

    Returns
    -------
    dict
        ``version``, ``refreshed_at``, ``trigger``, ``features_run``, ``customers``
        (members now), ``new`` (members now, not before), ``moved`` (members before and
        now, in another segment), ``left`` (members before, not now) and ``sizes``
        (segment id -> members now).
    """
    get_run(engine, version)  # a clear error for an unknown version
    sa = engine.table("segment_assignments")
    old = sa.filter(sa.version == version).select(o_key="customer_key", o_seg="segment_id")
    j = old.outer_join(rows, old.o_key == rows.customer_key)
    is_new, gone = j.o_key.isnull(), j.customer_key.isnull()
    moved = ~is_new & ~gone & (j.o_seg != j.segment_id)
    with engine.transaction():
        c = engine.execute(j.aggregate(
            customers=ibis.ifelse(gone, 0, 1).sum(), new=ibis.ifelse(is_new, 1, 0).sum(),
            moved=ibis.ifelse(moved, 1, 0).sum(), left=ibis.ifelse(gone, 1, 0).sum()))
        counts = {k: 0 if pd.isna(c[k].iloc[0]) else int(c[k].iloc[0])
                  for k in ("customers", "new", "moved", "left")}
        per = engine.execute(rows.group_by("segment_id").aggregate(n=rows.count()))
        sizes = {int(r.segment_id): int(r.n) for r in per.sort_values("segment_id")
                 .itertuples()}
        engine.delete_where("segment_assignments", sa.version == version)
        engine.insert("segment_assignments", rows.select(
            version=ibis.literal(version, type="int64"), customer_key=rows.customer_key,
            segment_id=rows.segment_id,
            probability=rows.probability.cast("float64")).cast(SEGMENT_ASSIGNMENTS))
        now = datetime.now(UTC)
        entry = {"version": version, "refreshed_at": now, "trigger": trigger,
               "features_run": features_run, **counts,
               "sizes": json.dumps({str(k): v for k, v in sizes.items()})}
        engine.insert("segment_refreshes",
                      ibis.memtable(pd.DataFrame([entry])).cast(SEGMENT_REFRESHES))
        engine.audit("segment.refresh", target=f"version {version}",
                     rows=counts["customers"],
                     detail={"trigger": trigger, "features_run": features_run,
                             **{k: counts[k] for k in ("new", "moved", "left")}})
    return {**entry, "sizes": sizes}


def refresh_history(engine: Engine, version: int | None = None) -> list[dict[str, Any]]:
    """The refreshes of the memberships of ``version`` (None: of every version), oldest
    first, as :func:`replace_memberships` returns them."""
    if not engine.has_table("segment_refreshes"):  # from before refreshes, read-only
        return []
    r = engine.table("segment_refreshes")
    if version is not None:
        r = r.filter(r.version == version)
    df = engine.execute(r.order_by(["refreshed_at", "version"]))
    return [{**{k: (None if isinstance(v, float) and pd.isna(v) else v)
                for k, v in row.items()},
             "version": int(row["version"]),
             **{k: int(row[k]) for k in ("customers", "new", "moved", "left")},
             "sizes": {int(k): int(n) for k, n in json.loads(row["sizes"] or "{}").items()}}
            for row in df.to_dict("records")]


def memberships_from(engine: Engine, version: int) -> str | None:
    """The features stage run the memberships of ``version`` come from: that of its last
    refresh, else the one it was fitted on."""
    df = pd.DataFrame()
    if engine.has_table("segment_refreshes"):  # a workspace from before refreshes
        r = engine.table("segment_refreshes")
        df = engine.execute(r.filter(r.version == version)
                            .order_by(ibis.desc("refreshed_at")).limit(1))
    if not df.empty:
        run_id = df["features_run"].iloc[0]
        return None if run_id is None or pd.isna(run_id) else str(run_id)
    snap = get_run(engine, version)["snapshot"] or {}
    return snap.get("features_run")


def add_segments(engine: Engine, version: int, added: dict[int, tuple[int, str]]) -> None:
    """Give model labels that no customer had when ``version`` was fitted a segment:
    ``added`` maps each label to (segment id, name). They join the version's label map
    and its segments, with no customer at the fit (size 0)."""
    if not added:
        return
    t = engine.table("segment_runs")
    df = engine.execute(t.filter(t.version == version))
    if df.empty:
        get_run(engine, version)  # raises: no such version
    row = df.iloc[0].to_dict()
    model = json.loads(row["model"] or "{}")
    mapping = dict(model.get("labels_to_segments") or {})
    segments = list(json.loads(row["segments"] or "[]"))
    for label, (sid, name) in sorted(added.items()):
        mapping[str(label)] = sid
        segments.append({"segment_id": sid, "size": 0, "share": 0.0, "name": name,
                         "added_by_refresh": True})
    row["model"] = json.dumps({**model, "labels_to_segments": mapping})
    row["segments"] = json.dumps(segments)
    with engine.transaction():
        engine.delete_where("segment_runs", t.version == version)
        engine.insert("segment_runs", ibis.memtable(pd.DataFrame([row])).cast(SEGMENT_RUNS))
        engine.audit("segment.add_segments", target=f"version {version}",
                     detail={"segments": {str(sid): name for sid, name in added.values()}})


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
    sa = engine.table("segment_assignments")
    per = engine.execute(sa.group_by("version").aggregate(n=sa.count()))
    members_now = {int(r.version): int(r.n) for r in per.itertuples()}
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
                    "members": members_now.get(v, 0),
                    "silhouette": m.get("silhouette"),
                    "stability_ari": (m.get("stability") or {}).get("ari_mean"),
                    "parent_version": None if pd.isna(r["parent_version"])
                    else int(r["parent_version"]),
                    "active": v == active, "status": status})
    return out


def activate_version(engine: Engine, version: int, action: str = "activate") -> int | None:
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


def activation_history(engine: Engine) -> list[dict[str, Any]]:
    """Every activation, oldest first: version, time, action (create, activate, rollback)
    and the version active before."""
    t = engine.table("segment_activations")
    df = engine.execute(t.order_by(["activated_at", "version"]))
    return [{"version": int(r["version"]), "activated_at": r["activated_at"],
             "action": r["action"],
             "previous": None if pd.isna(r["previous"]) else int(r["previous"])}
            for r in df.to_dict("records")]


def rollback_version(engine: Engine) -> tuple[int, int]:
    """Re-activate the version that was active before the current one.

    Activations form a stack: creating or activating a version pushes it, a rollback
    pops the current one, so rolling back twice goes back two steps (3 -> 2 -> 1), not
    back and forth.
    """
    stack: list[int] = []
    for h in activation_history(engine):
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
    activate_version(engine, earlier[-1], action="rollback")
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


def diff_versions(engine: Engine, a: int, b: int) -> dict[str, Any]:
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


def active_segments(engine: Engine, version: int | None = None) -> ir.Table:
    """customer_key, segment_id, segment_name, probability, version of the active (or the
    given) version."""
    v = require_version(engine, version)
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
    v = require_version(engine, version)
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
