"""Customer outliers: planted extreme customers are found."""

from __future__ import annotations

from pathlib import Path

import ibis
import numpy as np
import pandas as pd
import pytest

from tribes.analysis.outliers import find_outliers
from tribes.engine import md5_hex
from tribes.errors import TribesError
from tribes.store.db import init_workspace, open_engine

FEATS = ["a", "b", "c", "d"]


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    ws = init_workspace(tmp_path_factory.mktemp("outliers") / "ws")
    rng = np.random.default_rng(8)
    x = rng.normal(0, 1, (2000, 4))
    odd = rng.choice(2000, 40, replace=False)
    for i in odd:  # each planted outlier is extreme on one or two features
        cols = rng.choice(4, rng.integers(1, 3), replace=False)
        x[i, cols] += rng.choice([-1, 1], len(cols)) * rng.uniform(6, 9, len(cols))
    df = pd.DataFrame(x, columns=FEATS).assign(customer_key=[f"c{i:04d}" for i in range(2000)])
    with open_engine(ws) as engine:
        engine.replace_table("customer_features", ibis.memtable(df))
    return ws, {f"c{i:04d}" for i in odd}, x


@pytest.mark.parametrize("method", ["isolation_forest", "lof", "dbscan"])
def test_planted_outliers_are_found(planted, method: str) -> None:
    ws, odd, x = planted
    with open_engine(ws) as engine:
        res = find_outliers(engine, FEATS, method=method, contamination=0.02)
    found = {o["customer_key"] for o in res["outliers"]}
    assert len(found & odd) / len(odd) >= 0.9
    # the reasons point at the planted features
    first = next(o for o in res["outliers"] if o["customer_key"] in odd)
    i = int(first["customer_key"][1:])
    assert abs(first["reasons"][0]["z"]) > 3
    assert np.argmax(np.abs(x[i] - x.mean(axis=0))) == FEATS.index(
        first["reasons"][0]["feature"])


@pytest.mark.parametrize("method", ["isolation_forest", "lof"])
def test_flags_are_the_models_own_predictions(planted, method: str) -> None:
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor

    from tribes.stats import fit_transform

    ws, _, x = planted
    with open_engine(ws) as engine:
        res = find_outliers(engine, FEATS, method=method, contamination=0.02)
    df = pd.DataFrame(x, columns=FEATS).assign(customer_key=[f"c{i:04d}" for i in range(2000)])
    z = fit_transform(df, FEATS, scaler="robust").apply(df)
    model = (IsolationForest(contamination=0.02, random_state=0, n_estimators=300,
                             max_samples=2000) if method == "isolation_forest" else
             LocalOutlierFactor(n_neighbors=20, contamination=0.02, novelty=True))
    # fitted on the rows in the order find_outliers reads them (by the md5 of the key)
    with open_engine(ws) as engine:
        t = engine.table("customer_features")
        keys = engine.execute(t.order_by(md5_hex(t.customer_key)).select("customer_key"))
    row = pd.Series(range(len(df)), index=df.customer_key)
    model.fit(z[row[keys.customer_key].to_numpy()])
    flagged = set(df.customer_key[model.predict(z) == -1])
    assert {o["customer_key"] for o in res["outliers"]} == flagged


def test_bad_inputs(planted) -> None:
    ws, _, _ = planted
    with open_engine(ws) as engine:
        for kwargs, code in (({"method": "magic"}, "E_METHOD"),
                             ({"contamination": 0.9}, "E_CONTAMINATION")):
            with pytest.raises(TribesError) as err:
                find_outliers(engine, FEATS, **kwargs)  # type: ignore[arg-type]
            assert err.value.code == code


def test_cli(cli, planted, tmp_path: Path) -> None:
    ws, _, _ = planted
    r = cli("-w", ws.path, "anomalies", "customers", "--features", ",".join(FEATS), "--json")
    assert r.code == 0, r.err
    assert r.json()["flagged"] >= 36


def test_embed_2d_keeps_planted_groups_apart() -> None:
    from sklearn.neighbors import KNeighborsClassifier

    from tribes.analysis.outliers import embed_2d

    rng = np.random.default_rng(0)
    centers = rng.normal(0, 6, size=(4, 8))
    labels = np.repeat(np.arange(4), 150)
    x = centers[labels] + rng.normal(0, 1, size=(600, 8))
    xy, how = embed_2d(x)
    assert how == "t-SNE" and xy.shape == (600, 2)
    # neighbours in the map belong to the same planted group
    knn = KNeighborsClassifier(5).fit(xy[::2], labels[::2])
    assert knn.score(xy[1::2], labels[1::2]) > 0.95
    small, how = embed_2d(x[:40])
    assert how == "PCA" and small.shape == (40, 2)
    # PCA: the first axis carries the most variance
    assert small[:, 0].var() >= small[:, 1].var()
