"""A stored version applied in the engine (tribes.models.apply_version), and the refresh
of its memberships: the fit's own assignment reproduced exactly, new customers placed as
NumPy places them from the stored numbers, and new / moved / left counted."""

from __future__ import annotations

from pathlib import Path

import ibis
import numpy as np
import pandas as pd
import pytest
from scipy.stats import multivariate_normal
from sklearn.datasets import make_blobs

from tests.stages import context
from tribes.config import SegmentConfig
from tribes.models import CLUSTERING, apply_version, refresh_memberships, run_segmentation
from tribes.privacy import read_audit
from tribes.store import get_run, next_segment_id, open_engine, refresh_history
from tribes.store.db import init_workspace
from tribes.workspace import Workspace

FEATS = ["f1", "f2", "f3"]
CFG = SegmentConfig(features=FEATS, log1p=[], resamples=0, min_samples=8)
CENTERS = np.array([[0.0, 0.0, 0.0], [6.0, 6.0, 0.0], [0.0, 6.0, 6.0]])
SCALE = np.array([1.0, 10.0, 100.0])  # the features on unlike scales: the transform matters
RFM = ["Champions", "Loyal", "At Risk", None]


def customers(n: int, seed: int, prefix: str = "c") -> pd.DataFrame:
    x, _ = make_blobs(n_samples=n, centers=CENTERS, n_features=3, cluster_std=0.8,
                      random_state=seed)
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(x * SCALE, columns=FEATS)
    return df.assign(customer_key=[f"{prefix}{i:04d}" for i in range(n)],
                     rfm_label=rng.choice(np.array(RFM, dtype=object), n),
                     r_score=1.0, f_score=1.0, m_score=1.0)


def put_features(ws: Workspace, df: pd.DataFrame) -> None:
    with open_engine(ws) as engine:
        engine.replace_table("customer_features", ibis.memtable(df))


def members(ws: Workspace, version: int) -> pd.DataFrame:
    with open_engine(ws) as engine:
        t = engine.table("segment_assignments")
        df = engine.execute(t.filter(t.version == version).select(
            "customer_key", "segment_id", "probability"))
    return df.sort_values("customer_key", ignore_index=True)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, dict[str, int]]:
    """One version per method the project stores, all fitted on the same customers."""
    ws = init_workspace(tmp_path_factory.mktemp("membership") / "ws")
    put_features(ws, customers(450, seed=5))
    versions = {}
    with open_engine(ws) as engine:
        for method in [*CLUSTERING, "rfm"]:
            k = 3 if method in ("kmeans", "gmm", "agglomerative") else None
            versions[method] = run_segmentation(context(ws, engine), method=method, k=k,
                                                cfg=CFG).version
    return ws, versions


@pytest.mark.parametrize("method", [*CLUSTERING, "rfm"])
def test_applied_to_its_own_customers_a_version_gives_its_stored_memberships(
        fitted: tuple[Workspace, dict[str, int]], method: str) -> None:
    ws, versions = fitted
    v = versions[method]
    with open_engine(ws) as engine:
        applied = engine.execute(apply_version(engine.table("customer_features"),
                                               get_run(engine, v)))
    applied = applied.sort_values("customer_key", ignore_index=True)
    stored = members(ws, v)
    assert len(stored) == 450
    # exactly: the same ids and the same probabilities, bit for bit
    pd.testing.assert_frame_equal(applied[["customer_key", "segment_id", "probability"]],
                                  stored, check_exact=True, check_dtype=False)


def _numpy_segments(run: dict, new: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Segment ids (and probabilities) of ``new`` from the version's stored numbers,
    computed here with NumPy/SciPy, not with the project's expressions."""
    model = run["model"]
    to_segment = {int(a): int(b) for a, b in model["labels_to_segments"].items()}
    if run["method"] == "rfm":
        names = model["labels"]
        labels = [names.index(v) if v in names[:-1] else len(names) - 1
                  for v in new["rfm_label"]]
        return np.array([to_segment[lab] for lab in labels]), np.ones(len(new))
    tr = run["transform"]
    z = (new[FEATS].to_numpy(float) - np.array(tr["center"])) / np.array(tr["scale"])
    if run["method"] == "gmm":
        weights = np.array(model["weights"])
        logs = []
        for mean, chol, w in zip(model["means"], model["precisions_cholesky"], weights,
                                 strict=True):
            prec = np.array(chol) @ np.array(chol).T
            logs.append(multivariate_normal(mean, np.linalg.inv(prec)).logpdf(z) + np.log(w))
        ll = np.stack(logs, axis=1)
        resp = np.exp(ll - ll.max(axis=1, keepdims=True))
        resp /= resp.sum(axis=1, keepdims=True)
        labels = ll.argmax(axis=1)
        return np.array([to_segment[lab] for lab in labels]), resp.max(axis=1)
    centroids = np.array(model["centroids"])
    d2 = ((z[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    nearest = d2.argmin(axis=1)
    if run["method"] in ("dbscan", "hdbscan"):
        within = d2[np.arange(len(z)), nearest] <= np.array(model["radius2"])[nearest]
        nearest = np.where(within, nearest, -1)
    return np.array([to_segment.get(lab, lab) for lab in nearest]), np.ones(len(new))


@pytest.mark.parametrize("method", [*CLUSTERING, "rfm"])
def test_a_new_customer_gets_the_segment_the_stored_numbers_give(
        fitted: tuple[Workspace, dict[str, int]], method: str) -> None:
    ws, versions = fitted
    new = customers(60, seed=11, prefix="new")
    # and a few far from every cluster (noise for the density methods)
    far = pd.DataFrame({"customer_key": ["far0", "far1"], "f1": [40.0, -30.0],
                        "f2": [-300.0, 500.0], "f3": [4000.0, -2500.0],
                        "rfm_label": ["Loyal", None], "r_score": 1.0,
                        "f_score": 1.0, "m_score": 1.0})
    new = pd.concat([new, far], ignore_index=True)
    with open_engine(ws) as engine:
        run = get_run(engine, versions[method])
        got = engine.execute(apply_version(ibis.memtable(new), run))
    got = got.set_index("customer_key").loc[new["customer_key"]]
    want, proba = _numpy_segments(run, new)
    assert got["segment_id"].tolist() == want.tolist()
    np.testing.assert_allclose(got["probability"].to_numpy(float), proba, rtol=1e-9)
    if method in ("dbscan", "hdbscan"):
        assert got.loc[["far0", "far1"], "segment_id"].tolist() == [-1, -1]


def test_a_refresh_counts_new_moved_and_left_and_keeps_the_version(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    before = customers(300, seed=2)
    put_features(ws, before)
    with open_engine(ws) as engine:
        v = run_segmentation(context(ws, engine), method="kmeans", k=3, cfg=CFG).version
        run_before = get_run(engine, v)
    old = members(ws, v).set_index("customer_key")["segment_id"]
    # 5 customers leave, 7 arrive, 3 change so much that they belong to another cluster
    now = before.iloc[5:].copy()
    movers = now["customer_key"].iloc[:3].tolist()
    by_key = before.set_index("customer_key")
    for key in movers:  # each takes the values of a customer of another segment
        other = old[old != old[key]].index[0]
        now.loc[now.customer_key == key, FEATS] = by_key.loc[other, FEATS].to_numpy()
    now = pd.concat([now, customers(7, seed=9, prefix="new")], ignore_index=True)
    put_features(ws, now)
    with open_engine(ws) as engine:
        r = refresh_memberships(engine)
        run_after = get_run(engine, v)
        applied = engine.execute(apply_version(engine.table("customer_features"),
                                               run_after))
    assert (r.version, r.customers, r.new, r.moved, r.left) == (v, len(now), 7, 3, 5)
    assert r.describe() == f"refreshed version {v}: 7 new, 3 moved, 5 left"
    got = members(ws, v)
    assert set(got.customer_key) == set(now.customer_key)
    pd.testing.assert_frame_equal(
        got, applied.sort_values("customer_key", ignore_index=True)[got.columns],
        check_dtype=False)
    moved = got.set_index("customer_key").loc[movers, "segment_id"]
    assert (moved.to_numpy() != old[movers].to_numpy()).all()
    # the version itself is as it was fitted: model, metrics, the sizes at the fit
    for part in ("model", "transform", "metrics", "segments", "snapshot"):
        assert run_after[part] == run_before[part], part
    assert sum(r.sizes.values()) == len(now)
    # logged once, audited once; a second refresh on the same features changes nothing
    with open_engine(ws) as engine:
        again = refresh_memberships(engine)
        log = refresh_history(engine, v)
    assert (again.new, again.moved, again.left) == (0, 0, 0)
    assert [(e["new"], e["moved"], e["left"]) for e in log] == [(7, 3, 5), (0, 0, 0)]
    audited = [e for e in read_audit(ws.path) if e["action"] == "segment.refresh"]
    assert len(audited) == 2 and audited[0]["detail"]["new"] == 7


def test_an_rfm_label_no_customer_had_at_the_fit_gets_a_new_segment(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    base = customers(40, seed=3)
    base["rfm_label"] = np.where(np.arange(40) % 2 == 0, "Loyal", None)
    put_features(ws, base)
    with open_engine(ws) as engine:
        v = run_segmentation(context(ws, engine), method="rfm", cfg=CFG).version
        first_free = next_segment_id(engine)
    champion = customers(1, seed=4, prefix="champ").assign(rfm_label="Champions")
    put_features(ws, pd.concat([base, champion], ignore_index=True))
    with open_engine(ws) as engine:
        # the version has no segment for the rule yet: no id, rather than a wrong one
        unseen = engine.execute(apply_version(ibis.memtable(champion), get_run(engine, v)))
        assert unseen["segment_id"].isna().all()
        r = refresh_memberships(engine)
        run = get_run(engine, v)
    assert r.added_segments == {first_free: "Champions"} and r.new == 1
    got = members(ws, v).set_index("customer_key")["segment_id"]
    assert got["champ0000"] == first_free
    assert {s["segment_id"]: s["size"] for s in run["segments"]}[first_free] == 0
    assert "first members of segment" in r.describe()
    label = run["model"]["labels"].index("Champions")
    assert run["model"]["labels_to_segments"][str(label)] == first_free
    with open_engine(ws) as engine:
        assert next_segment_id(engine) == first_free + 1
