"""Segment versions in the store: writing and reading versions, the error when there is
none, agreement of two versions."""

from __future__ import annotations

from pathlib import Path

import ibis
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

import tribes
from tribes.errors import NoSegmentVersionError
from tribes.privacy import audit_log
from tribes.store.db import init_workspace, open_engine
from tribes.store.segments import (
    NewVersion,
    active_segments,
    active_version,
    ari_from_table,
    get_run,
    members,
    next_segment_id,
    overlap_with,
    require_version,
    store_version,
    versions_built_from,
)


def test_ari_from_contingency_equals_sklearn() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.integers(0, 4, 500), rng.integers(0, 3, 500)
    b[:250] = a[:250] % 3
    table = pd.crosstab(a, b)
    assert ari_from_table(table) == pytest.approx(adjusted_rand_score(a, b))


def _version(engine, keys_to_segments: dict[str, int], *, features_run: str = "f1",
             make_active: bool = True, parent: int | None = None) -> int:
    sizes: dict[int, int] = {}
    for s in keys_to_segments.values():
        sizes[s] = sizes.get(s, 0) + 1
    rows = ibis.memtable(pd.DataFrame({"customer_key": list(keys_to_segments),
                                       "segment_id": list(keys_to_segments.values()),
                                       "probability": 1.0}))
    new = NewVersion(
        method="kmeans", k=len(sizes), params={"k_range": "2-4"}, features=["a", "b"],
        transform={"features": ["a", "b"]}, model={"centroids": [[0.0, 1.0]]},
        metrics={"silhouette": 0.5}, snapshot={"features_run": features_run,
                                               "held": not make_active},
        segments=[{"segment_id": s, "size": n, "share": n / len(keys_to_segments),
                   "name": f"Segment {s}"} for s, n in sizes.items()],
        parent_version=parent, n_customers=len(keys_to_segments))
    return store_version(engine, new, rows, make_active=make_active)


def test_a_stored_version_reads_back(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "shop")
    with open_engine(ws) as engine:
        assert next_segment_id(engine) == 0
        v = _version(engine, {"a": 0, "b": 0, "c": 1})
        assert v == 1 and active_version(engine) == 1 and next_segment_id(engine) == 2
        run = get_run(engine, v)
        assert run["method"] == "kmeans" and run["k"] == 2 and run["status"] == "active"
        assert run["params"] == {"k_range": "2-4"} and run["metrics"] == {"silhouette": 0.5}
        assert run["features"] == ["a", "b"] and run["parent_version"] is None
        got = engine.execute(members(engine)).sort_values("a_key")
        assert got["segment_id"].tolist() == [0, 0, 1]
        # a held version is stored, not active
        held = _version(engine, {"a": 5, "b": 6}, features_run="f2", make_active=False,
                        parent=v)
        assert held == 2 and active_version(engine) == 1
        assert versions_built_from(engine, "f1") == [1]
        assert versions_built_from(engine, "f2") == [2] and versions_built_from(engine, None) == []
        labels = ibis.memtable(pd.DataFrame({"customer_key": ["a", "b", "c", "d"],
                                             "label": [3, 3, 4, 4]}))
        overlap, sizes = overlap_with(engine, labels, 1)
        assert sizes == {0: 2, 1: 1}
        assert overlap.loc[3, 0] == 2 and overlap.loc[4, 1] == 1 and overlap.loc[3, 1] == 0
    segmentations = [r for r in audit_log.read_audit(ws.path) if r["action"] == "segment"]
    assert [r["target"] for r in segmentations] == ["version 1", "version 2"]


def test_no_version_is_one_error_with_one_code(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "shop")
    with open_engine(ws) as engine:
        with pytest.raises(NoSegmentVersionError) as none_yet:
            require_version(engine)
        for read in (active_segments, members):
            with pytest.raises(NoSegmentVersionError):
                read(engine)
        assert require_version(engine, 7) == 7  # an explicit version is the caller's
        _version(engine, {"a": 0}, make_active=False)
        with pytest.raises(NoSegmentVersionError) as held:
            require_version(engine, purpose="to monitor")
    assert none_yet.value.code == held.value.code == "E_NO_SEGMENTS"
    assert str(none_yet.value) == "no segment version yet; create one with: tribes segment"
    assert "segment version to monitor" in str(held.value)
    assert "version 1 is held for review" in str(held.value)
    assert "tribes versions activate" in str(held.value)


def test_only_the_store_names_the_segment_tables() -> None:
    # store.segments owns them: everything else reads and writes through it
    src = Path(tribes.__file__).parent
    tables = ("segment_runs", "segment_assignments", "segment_activations")
    naming = [str(p.relative_to(src)) for p in src.rglob("*.py")
              if not p.is_relative_to(src / "store")
              and any(t in p.read_text(encoding="utf-8") for t in tables)]
    assert naming == []
