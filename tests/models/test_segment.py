"""Segmentation: blobs recovered, k chosen, ids stable, versions, transforms in the engine."""

from __future__ import annotations

from pathlib import Path

import ibis
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from tests.stages import context
from tribes.config import SegmentConfig
from tribes.engine import connect
from tribes.models.segmentation import run_segmentation
from tribes.models.selection import gap_choice, kneedle
from tribes.stats.scaling import fit_transform
from tribes.store.db import init_workspace, open_engine
from tribes.workspace import Workspace

FEATS = ["f1", "f2", "f3"]
CFG = SegmentConfig(features=FEATS, log1p=[], resamples=5, k_range="2-8")


@pytest.fixture(scope="module")
def blobs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, pd.DataFrame]:
    ws = init_workspace(tmp_path_factory.mktemp("seg") / "ws")
    x, y = make_blobs(n_samples=1200, centers=4, n_features=3, cluster_std=0.6,
                      random_state=3)
    df = pd.DataFrame(x, columns=FEATS).assign(
        customer_key=[f"c{i:05d}" for i in range(len(x))], truth=y)
    with open_engine(ws) as engine:
        engine.replace_table("customer_features", ibis.memtable(df.drop(columns="truth")))
    return ws, df


def assignments(ws: Workspace, version: int) -> pd.DataFrame:
    with open_engine(ws) as engine:
        t = engine.table("segment_assignments")
        return engine.execute(t.filter(t.version == version)).sort_values("customer_key")


@pytest.mark.parametrize("method", ["kmeans", "gmm", "agglomerative"])
def test_methods_recover_blobs_and_choose_k(blobs, method: str) -> None:
    ws, df = blobs
    with open_engine(ws) as engine:
        r = run_segmentation(context(ws, engine), method=method, cfg=CFG)
    assert r.method == method
    assert r.k == 4 and r.metrics["k_selection"]["chosen"] == 4
    a = assignments(ws, r.version).merge(df, on="customer_key")
    assert adjusted_rand_score(a.truth, a.segment_id) >= 0.95
    assert r.metrics["stability"]["ari_mean"] >= 0.95
    assert sum(s["size"] for s in r.segments) == len(df)
    # the same four groups every time: ids carry over from the earlier versions
    assert {s["segment_id"] for s in r.segments} == {0, 1, 2, 3}
    # per-segment stability is keyed by segment id (not by the model's own labels)
    jaccard = r.metrics["stability"]["jaccard"]
    assert set(jaccard) == {"0", "1", "2", "3"} and min(jaccard.values()) >= 0.9


def test_estimators_are_scikit_learn_compatible() -> None:
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError

    from tribes.models.methods import (
        AgglomerativeSegmenter,
        GaussianMixtureSegmenter,
        HDBSCANSegmenter,
        KMeansSegmenter,
    )

    x, y = make_blobs(n_samples=600, centers=3, n_features=2, cluster_std=0.5,
                      random_state=1)
    for est in (KMeansSegmenter(3, random_state=4), GaussianMixtureSegmenter(3, "diag", 4),
                AgglomerativeSegmenter(3, random_state=4, max_fit=300),
                HDBSCANSegmenter(random_state=4),
                KMeansSegmenter(3, random_state=4, minibatch_above=100)):
        twin = clone(est)
        assert twin.get_params() == est.get_params() and "random_state" in twin.get_params()
        assert twin.fit(x) is twin and len(twin.labels_) == len(x)
        assert (twin.predict(x) == twin.labels_).all()
        good = twin.labels_ != -1
        assert adjusted_rand_score(y[good], twin.labels_[good]) >= 0.95 and good.mean() > 0.8
    with pytest.raises(NotFittedError):
        KMeansSegmenter(3).predict(x)


def test_rerun_keeps_segment_ids(blobs) -> None:
    ws, _ = blobs
    with open_engine(ws) as engine:
        first = run_segmentation(context(ws, engine), cfg=CFG, k=4)
        second = run_segmentation(context(ws, engine), cfg=CFG, k=4)
    assert second.parent_version == first.version
    a, b = assignments(ws, first.version), assignments(ws, second.version)
    assert (a.segment_id.to_numpy() == b.segment_id.to_numpy()).all()


def test_a_new_group_gets_a_new_id(blobs) -> None:
    ws, _ = blobs
    with open_engine(ws) as engine:
        base = run_segmentation(context(ws, engine), cfg=CFG, k=4)
        split = run_segmentation(context(ws, engine), cfg=CFG, k=5)
    old_ids = {s["segment_id"] for s in base.segments}
    new_ids = {s["segment_id"] for s in split.segments}
    assert len(new_ids - old_ids) >= 1 and len(new_ids & old_ids) >= 3


def test_versions_cli(cli, blobs, tmp_path: Path) -> None:
    ws, _ = blobs
    r = cli("-w", ws.path, "segment", "--k", "3", "--features", "f1,f2,f3", "--json")
    assert r.code == 0, r.err
    out = r.json()
    assert out["k"] == 3 and out["method"] == "kmeans" and len(out["segments"]) == 3
    assert {"silhouette", "stability"} <= set(out["metrics"])
    v = out["version"]
    listed = cli("-w", ws.path, "versions", "list", "--json").json()["versions"]
    assert [x["version"] for x in listed if x["active"]] == [v]
    d = cli("-w", ws.path, "versions", "diff", str(v - 1), str(v), "--json").json()
    assert d["customers_in_both"] == 1200 and -1 <= d["ari"] <= 1
    back = cli("-w", ws.path, "versions", "rollback", "--json").json()
    assert (back["active"], back["previous"]) == (v - 1, v)
    # its memberships brought up to date at once (the same customers here: no change)
    assert back["refresh"]["customers"] == 1200 and back["refresh"]["new"] == 0
    # a second rollback goes one step further back, not back to v
    again = cli("-w", ws.path, "versions", "rollback", "--json").json()
    assert again["previous"] == v - 1 and again["active"] < v - 1
    hist = cli("-w", ws.path, "versions", "history", "--json").json()["activations"]
    assert [h["action"] for h in hist[-2:]] == ["rollback", "rollback"]
    assert cli("-w", ws.path, "versions", "activate", str(v)).code == 0
    shown = cli("-w", ws.path, "versions", "show", str(v), "--json").json()
    assert shown["active"] and shown["status"] == "active" and shown["features"] == FEATS
    path = tmp_path / "segments.csv"
    e = cli("-w", ws.path, "export", "segments", "--out", path, "--json")
    assert e.code == 0, e.err
    seg = pd.read_csv(path)
    assert list(seg.columns) == ["customer_key", "segment_id", "segment_name", "probability",
                                 "version"]
    assert (seg.version == v).all() and len(seg) == 1200 and (seg.probability == 1.0).all()
    bad = cli("-w", ws.path, "versions", "show", "99")
    assert bad.code != 0 and "E_VERSION" in bad.err
    bad = cli("-w", ws.path, "segment", "--features", "nope")
    assert bad.code != 0 and "E_FEATURE" in bad.err


def test_transform_in_engine_equals_numpy() -> None:
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"a": rng.exponential(100, 300), "b": rng.normal(5, 2, 300),
                       "c": rng.integers(0, 9, 300).astype(float)})
    df.loc[::7, "b"] = np.nan
    engine = connect(None)
    t = ibis.memtable(df)
    for scaler in ("standard", "minmax", "robust"):
        for pca in (None, 2, 0.9):
            tr = fit_transform(df, ["a", "b", "c"], log1p=["a"], scaler=scaler, pca=pca)
            want = tr.apply(df)
            got = engine.execute(t.select(*[e.name(f"z{i}") for i, e in
                                            enumerate(tr.exprs(t))])).to_numpy()
            assert np.allclose(got, want, atol=1e-9)
    assert fit_transform(df, ["a", "b"], scaler="robust").fill[1] == pytest.approx(
        df.b.median())


def test_kneedle_and_gap_rule() -> None:
    ks = [1, 2, 3, 4, 5, 6]
    assert kneedle(ks, [100, 40, 12, 10, 9, 8]) == 3
    assert gap_choice([2, 3, 4], [0.5, 0.9, 0.85], [0.05, 0.05, 0.1]) == 3


def test_gmm_probabilities_are_responsibilities(tmp_path: Path) -> None:
    from scipy.stats import multivariate_normal

    from tribes.stats.scaling import Transform
    from tribes.store.segments import get_run

    ws = init_workspace(tmp_path / "gmm")
    x, _ = make_blobs(n_samples=600, centers=3, n_features=3, cluster_std=2.5,
                      random_state=5)
    df = pd.DataFrame(x, columns=FEATS).assign(customer_key=[f"c{i:04d}" for i in range(600)])
    with open_engine(ws) as engine:
        engine.replace_table("customer_features", ibis.memtable(df))
        r = run_segmentation(context(ws, engine), method="gmm", cfg=CFG, k=3)
        run = get_run(engine, r.version)
    a = assignments(ws, r.version).merge(df, on="customer_key")
    # independent: densities from the stored parameters with scipy
    z = Transform.from_dict(run["transform"]).apply(a)
    m = run["model"]
    dens = np.column_stack([
        w * multivariate_normal(mu, np.linalg.inv(np.array(u) @ np.array(u).T)).pdf(z)
        for mu, u, w in zip(m["means"], m["precisions_cholesky"], m["weights"], strict=True)])
    resp = dens / dens.sum(axis=1, keepdims=True)
    assert np.allclose(a.probability, resp.max(axis=1), atol=1e-9)
    to_id = {int(k): v for k, v in m["labels_to_segments"].items()}
    assert (a.segment_id == [to_id[i] for i in resp.argmax(axis=1)]).all()
    assert (a.probability < 0.9).any()


def test_rfm_rule_segments(cli, tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "rfm")
    df = pd.DataFrame({"customer_key": ["a", "b", "c", "d"],
                       "rfm_label": ["Champions", "At Risk", None, "Champions"],
                       "r_score": [5, 1, None, 5], "f_score": [5, 3, None, 4],
                       "m_score": [5, 2, None, 4]})
    with open_engine(ws) as engine:
        engine.replace_table("customer_features", ibis.memtable(df))
    r = cli("-w", ws.path, "segment", "--method", "rfm", "--json")
    assert r.code == 0, r.err
    out = r.json()
    names = {s["name"]: s["size"] for s in out["segments"]}
    assert names == {"Champions": 2, "At Risk": 1, "No Purchase Yet": 1}
    assert out["k"] == 3


@pytest.mark.parametrize("method", ["dbscan", "hdbscan"])
def test_density_methods_find_the_blobs_and_noise(blobs, method: str) -> None:
    ws, df = blobs
    with open_engine(ws) as engine:
        r = run_segmentation(context(ws, engine), method=method, cfg=CFG)
    assert r.k == 4
    a = assignments(ws, r.version).merge(df, on="customer_key")
    clean = a[a.segment_id != -1]
    assert len(clean) >= 0.9 * len(a)
    assert adjusted_rand_score(clean.truth, clean.segment_id) >= 0.95
    if (a.segment_id == -1).any():
        assert [s["name"] for s in r.segments if s["segment_id"] == -1] == ["Unusual"]


def test_select_k_and_compare_store_nothing(cli, blobs) -> None:
    ws, _ = blobs
    before = cli("-w", ws.path, "versions", "list", "--json").json()["versions"]
    r = cli("-w", ws.path, "segment", "select-k", "--k-range", "2-6", "--features",
            "f1,f2,f3", "--json")
    assert r.code == 0, r.err
    sel = r.json()
    assert sel["chosen"] == 4 and [s["k"] for s in sel["scores"]] == [2, 3, 4, 5, 6]
    assert set(sel["votes"]) == {"silhouette", "elbow", "calinski_harabasz",
                                 "davies_bouldin", "gap"}
    r = cli("-w", ws.path, "segment", "compare", "kmeans", "hdbscan", "--features",
            "f1,f2,f3", "--json")
    assert r.code == 0, r.err
    rows = {m["method"]: m for m in r.json()["methods"]}
    assert rows["kmeans"]["k"] == 4 and rows["hdbscan"]["k"] == 4
    assert rows["kmeans"]["silhouette"] > 0.5
    after = cli("-w", ws.path, "versions", "list", "--json").json()["versions"]
    assert after == before
    bad = cli("-w", ws.path, "segment", "select-k", "--method", "hdbscan")
    assert bad.code != 0 and "E_METHOD" in bad.err


def test_tiny_segments_are_reported() -> None:
    from tribes.models.segmentation import size_warnings

    segs = [{"segment_id": 0, "size": 3}, {"segment_id": -1, "size": 2},
            {"segment_id": 1, "size": 50}]
    (w,) = size_warnings(segs, 55)
    assert "0 (3)" in w and "-1" not in w
    assert size_warnings([{"segment_id": 0, "size": 40}], 40) == []


def test_the_same_data_gives_the_same_segments_whatever_the_secret(shop, tmp_path) -> None:
    """Two workspaces hold the same files under different secrets (so every customer key
    differs): the segments, their ids, sizes and metrics, and the personas are the
    same, customer by customer."""
    from tribes.cli import main
    from tribes.privacy.pseudonyms import pseudonym
    from tribes.store.segments import get_run
    from tribes.workspace import open_workspace

    _, data = shop
    ids = sorted(pd.read_csv(data / "ground_truth.csv").customer_id.astype(str))
    out = {}
    for name in ("one", "two"):
        ws = tmp_path / name
        w = ["-q", "--workspace", str(ws)]
        assert main(["-q", "init", str(ws)]) == 0
        for args in (["ingest", str(data / "web"), "--source", "web"],
                     ["ingest", str(data / "purchases.parquet"), "--source", "pos",
                      "--event-type", "purchase", "--map", "ts=sold_at,customer_id=member_no"],
                     ["run", "--no-segment"], ["segment"], ["personas"]):
            assert main([*w, *args]) == 0, args
        wsv = open_workspace(ws)
        secret = wsv.secret()
        with open_engine(wsv, read_only=True) as engine:
            a = engine.execute(engine.table("segment_assignments"))
            run = get_run(engine, 1)
            personas = engine.execute(engine.table("personas").drop("version"))
        seg_of = dict(zip(a.customer_key, a.segment_id, strict=True))
        out[name] = {
            "by_id": [seg_of.get(pseudonym(i, secret)) for i in ids],
            "segments": [(s["segment_id"], s["size"]) for s in run["segments"]],
            "k": run["k"], "silhouette": run["metrics"].get("silhouette"),
            "personas": personas.sort_values("segment_id").drop(
                columns=[c for c in personas.columns if c.endswith("_at")]
            ).to_dict("records")}
    one, two = out["one"], out["two"]
    assert (ws_secret := open_workspace(tmp_path / "one").secret()) != \
        open_workspace(tmp_path / "two").secret() and ws_secret
    assert sum(x is not None for x in one["by_id"]) > 100
    assert one["by_id"] == two["by_id"]
    assert (one["k"], one["segments"], one["silhouette"]) == (
        two["k"], two["segments"], two["silhouette"])
    from tests.parity.test_parity import same  # numbers to 1e-9: sums may differ in the
    assert not same(one["personas"], two["personas"], "personas")  # last bit
    assert [p["name"] for p in one["personas"]] == [p["name"] for p in two["personas"]]


def test_a_version_with_unstable_segments_is_flagged(blobs, cli, tmp_path) -> None:
    """One round Gaussian ball has no groups: cut in three, the pieces turn with every
    bootstrap resample, and segment, versions show and the report say so. Four planted
    blobs cut in four are not flagged."""
    ws, _ = blobs
    cfg = SegmentConfig(features=FEATS, log1p=[], resamples=8)
    with open_engine(ws) as engine:
        good = run_segmentation(context(ws, engine), method="kmeans", k=4, cfg=cfg)
    assert not any("not stable" in w for w in good.warnings)
    ball = init_workspace(tmp_path / "ball")
    x = np.random.default_rng(1).normal(size=(800, 3))
    df = pd.DataFrame(x, columns=FEATS).assign(customer_key=[f"b{i:04d}" for i in range(800)])
    with open_engine(ball) as engine:
        engine.replace_table("customer_features", ibis.memtable(df))
        cut = run_segmentation(context(ball, engine), method="kmeans", k=3, cfg=cfg)
    jaccard = cut.metrics["stability"]["jaccard"]
    weak = {sid for sid, j in jaccard.items() if j < 0.75}
    assert weak, jaccard
    flagged = next(w for w in cut.warnings if "not stable" in w)
    assert all(f"{sid} (Jaccard" in flagged for sid in weak)
    shown = cli("-w", ball.path, "versions", "show", str(cut.version))
    assert shown.code == 0 and "not stable" in " ".join(shown.out.split())  # (wrapped)
    assert "not stable" not in " ".join(
        cli("-w", ws.path, "versions", "show", str(good.version)).out.split())
    report = tmp_path / "r.html"
    assert cli("-w", ball.path, "report", "--out", report).code == 0
    assert "Unstable segments" in report.read_text(encoding="utf-8")


def test_the_k_table_says_when_the_stored_version_was_fitted_again(blobs) -> None:
    """k is scored on a subsample when the fitting sample is larger: the stored version
    is then a fit on every sampled customer, and the table says so with both figures."""
    from sklearn.metrics import silhouette_score

    from tribes.models.segmentation import refit_note

    ws, df = blobs
    small = SegmentConfig(features=FEATS, log1p=[], resamples=0, k_range="2-6",
                          selection_sample=300)
    with open_engine(ws) as engine:
        r = run_segmentation(context(ws, engine), method="kmeans", cfg=small)
    sel = r.metrics["k_selection"]
    fit = sel["stored_fit"]
    assert (fit["scored_on"], fit["customers"], fit["refit"]) == (300, len(df), True)
    # the stored figure is the stored partition's, computed here from its assignments
    a = assignments(ws, r.version).merge(df, on="customer_key")
    x = (a[FEATS] - a[FEATS].mean()) / a[FEATS].std(ddof=0)
    assert fit["silhouette"] == pytest.approx(silhouette_score(x, a.segment_id), abs=0.01)
    note = refit_note(sel)
    assert note and "300 customers" in note and "1,200" in note
    whole = SegmentConfig(features=FEATS, log1p=[], resamples=0, k_range="2-6")
    with open_engine(ws) as engine:
        r2 = run_segmentation(context(ws, engine), method="kmeans", cfg=whole)
    fit2 = r2.metrics["k_selection"]["stored_fit"]
    assert fit2["scored_on"] == fit2["customers"] == len(df)
    assert fit2["refit"] is False and refit_note(r2.metrics["k_selection"]) is None
