"""segment compare for the business: KPI separation per candidate, and a past campaign
measured with each candidate's segments (a planted effect in one group is found by the
segmentation that isolates it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import ibis
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from tests.conftest import CliResult
from tribes.analysis.ab import Design
from tribes.errors import InputError
from tribes.ops.compare import Campaign, compare_methods, eta_squared
from tribes.store.db import init_workspace, open_engine

FEATS = ["f1", "f2", "f3"]


def test_eta_squared_by_hand() -> None:
    v = np.array([1.0, 2.0, 3.0, 10.0, 11.0, 12.0])
    g = np.array([0, 0, 0, 1, 1, 1])
    # between: 3 * (2 - 6.5)^2 * 2 = 121.5; total: 121.5 + 4 = 125.5
    assert eta_squared(v, g) == pytest.approx(121.5 / 125.5)


def test_the_segmentation_that_isolates_the_responders_shows_them(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    x, y = make_blobs(n_samples=4000, centers=4, n_features=3, cluster_std=0.7,
                      random_state=2)
    rng = np.random.default_rng(0)
    keys = [f"c{i:05d}" for i in range(len(x))]
    df = pd.DataFrame(x, columns=FEATS).assign(
        customer_key=keys, monetary=np.where(y == 0, 500.0, 50.0) + rng.normal(0, 10, len(y)),
        frequency=rng.poisson(2, len(y)).astype(float), recency_days=rng.uniform(0, 90, len(y)))
    with open_engine(ws) as engine:
        engine.replace_table("customer_features", ibis.memtable(df))
    variant = np.where(rng.random(len(y)) < 0.5, "control", "treatment")
    base = 0.10 + 0.2 * (variant == "treatment") * (y == 0)  # only group 0 responds
    outcome = pd.DataFrame({"customer_key": keys, "variant": variant,
                            "y": (rng.random(len(y)) < base).astype(float),
                            "x": np.zeros(len(y))})
    camp = Campaign(outcomes=outcome, features=df[["customer_key", *FEATS]],
                    design=Design(metric="conversion", control="control",
                                  treatment="treatment", cuped=False))
    with open_engine(ws, read_only=True) as engine:
        four = compare_methods(ws, engine, ["kmeans"], k=4, features=FEATS,
                               campaign=camp)[0]
        two = compare_methods(ws, engine, ["kmeans"], k=2, features=FEATS,
                              campaign=camp)[0]
    assert four["kpi_separation"]["kpis"]["monetary"]["eta2"] > 0.9
    assert four["campaign"]["responding"] == 1
    assert four["campaign"]["heterogeneity_p"] < 1e-6
    assert four["campaign"]["best_uplift"] == pytest.approx(0.2, abs=0.05)
    # two segments mix the responders with others: a diluted best uplift
    assert two["campaign"]["best_uplift"] < four["campaign"]["best_uplift"]


def test_compare_cli_with_a_campaign(shop, cli: Callable[..., CliResult],
                                     tmp_path: Path) -> None:
    ws, data = shop
    ids = pd.read_csv(data / "ground_truth.csv").customer_id
    exp = pd.DataFrame({"customer_id": ids, "variant": ["control", "treatment"] * (
        len(ids) // 2) + ["control"] * (len(ids) % 2), "exposed_at": "2026-02-01T00:00:00Z"})
    path = tmp_path / "exp.csv"
    exp.to_csv(path, index=False)
    r = cli("-w", ws, "segment", "compare", "kmeans", "gmm", "--k", "3", "--assignments",
            path, "--window", "30d", "--json")
    assert r.code == 0, r.err
    rows = r.json()["methods"]
    assert [x["method"] for x in rows] == ["kmeans", "gmm"]
    for x in rows:
        assert x["kpi_separation"]["mean_eta2"] is not None
        assert x["campaign"]["segments_tested"] >= 2


def test_methods_fitted_in_processes_give_the_same_rows(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    x, _ = make_blobs(n_samples=600, centers=3, n_features=3, random_state=4)
    df = pd.DataFrame(x, columns=FEATS).assign(
        customer_key=[f"c{i:04d}" for i in range(len(x))], monetary=np.abs(x[:, 0]) * 10,
        frequency=np.round(np.abs(x[:, 1])), recency_days=np.abs(x[:, 2]) * 20)
    with open_engine(ws) as engine:
        engine.replace_table("customer_features", ibis.memtable(df))
    methods = ["kmeans", "agglomerative"]
    with open_engine(ws, read_only=True) as engine:
        one = compare_methods(ws, engine, methods, k=3, features=FEATS, jobs=1)
        two = compare_methods(ws, engine, methods, k=3, features=FEATS, jobs=2)
    for r in (*one, *two):
        r.pop("seconds")
    assert two == one
    with open_engine(ws, read_only=True) as engine, pytest.raises(InputError):
        compare_methods(ws, engine, methods, jobs=0)
