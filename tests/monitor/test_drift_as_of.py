"""Drift compares like with like when the as-of moves: a week of the same synthetic shop
raises no drift on the features that count days to the as-of, and real shifts still do."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.conftest import CliResult
from tests.stages import context
from tribes.cli import main
from tribes.monitor.drift_check import run_monitor
from tribes.store.db import init_workspace, open_engine
from tribes.synth import SynthConfig, generate
from tribes.workspace import Workspace, open_workspace

# a 180-day synthetic shop between its planted changes (lapsing buyers stop before 55% of
# the period, new explorers start after 82%): features as of the end of two days a week
# apart, as a routine weekly run builds them
THEN, NOW = "2026-04-26", "2026-05-03"
WEEK = 7.0


def features(ws: Workspace) -> pd.DataFrame:
    with open_engine(ws, read_only=True) as engine:
        return engine.execute(engine.table("customer_features"))


def replace_features(ws: Workspace, df: pd.DataFrame) -> None:
    with open_engine(ws) as engine:
        engine.replace_table("customer_features", ibis.memtable(df))


def drift_alerts(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(a["kind"], a["subject"]) for a in report["new_alerts"]
            if a["kind"].startswith("drift.")}


@pytest.fixture(scope="module")
def weekly(tmp_path_factory: pytest.TempPathFactory
           ) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    """The shop segmented on its features as of THEN, and its features as of NOW built
    from the same events."""
    root = tmp_path_factory.mktemp("weekly")
    data = root / "data"
    generate(SynthConfig(out=data, customers=300, days=180, seed=11))
    path = root / "shop"
    init_workspace(path)
    w = ["-q", "--workspace", str(path)]
    for args in (["ingest", str(data / "web"), "--source", "web"],
                 ["ingest", str(data / "purchases.parquet"), "--source", "pos",
                  "--event-type", "purchase", "--map", "ts=sold_at,customer_id=member_no"],
                 ["features", "--as-of", THEN], ["segment", "--k", "3"]):
        assert main([*w, *args]) == 0, args
    ws = open_workspace(path)
    then = features(ws)
    assert main([*w, "features", "--as-of", NOW]) == 0
    return path, then, features(ws)


@pytest.fixture
def week_apart(weekly: tuple[Path, pd.DataFrame, pd.DataFrame], tmp_path: Path
               ) -> tuple[Workspace, pd.DataFrame, pd.DataFrame]:
    path, then, now = weekly
    shutil.copytree(path, tmp_path / "shop")
    return open_workspace(tmp_path / "shop"), then, now


def test_a_week_later_the_same_shop_raises_no_drift(
        week_apart: tuple[Workspace, pd.DataFrame, pd.DataFrame],
        cli: Callable[..., CliResult]) -> None:
    ws, then, now = week_apart
    both = then[["customer_key", "tenure_days", "recency_days"]].merge(
        now[["customer_key", "tenure_days", "recency_days"]], on="customer_key",
        suffixes=("_then", "_now"))
    # what the comparison rests on: a customer's tenure grows by exactly the week, while
    # recency grows by it only for those who stayed away (the others came back)
    assert len(both) == len(then) > 100
    grown = both["tenure_days_now"] - both["tenure_days_then"]
    assert grown.to_numpy() == pytest.approx(np.full(len(both), WEEK), abs=1e-6)
    back = both["recency_days_now"] < WEEK
    assert 0 < back.sum() < len(both)
    away = both[~back]
    assert (away["recency_days_now"] - away["recency_days_then"]).to_numpy() == \
        pytest.approx(np.full(len(away), WEEK), abs=1e-6)
    # compared as they are, the week alone looks like drift of tenure: the test can tell
    raw = stats.ks_2samp(then["tenure_days"], now["tenure_days"])
    assert raw.statistic >= 0.1 and raw.pvalue < 0.01

    r = cli("--workspace", ws.path, "monitor", "--dry-run", "--json")
    assert r.code == 0, r.err
    report = r.json()
    assert report["as_of_moved_days"] == pytest.approx(WEEK)
    treated = {a["feature"]: a for a in report["time_adjusted"]}
    assert treated["tenure_days"]["treatment"] == "aged"
    assert treated["tenure_days"]["days"] == pytest.approx(WEEK)
    assert treated["recency_days"]["treatment"] == "left out"
    assert treated["recency_days"]["reason"]
    compared = {f["feature"]: f for f in report["features"]}
    assert "recency_days" not in compared
    tenure = compared["tenure_days"]
    assert tenure["mean_ref"] == pytest.approx(then["tenure_days"].mean() + WEEK, rel=1e-9)
    # aged, the reference differs from today only by the customers new since: at most
    # their share apart (plus the half percent of the reference's 201-quantile grid)
    new = (~now["customer_key"].isin(then["customer_key"])).mean()
    assert tenure["ks"] <= new + 0.006
    assert drift_alerts(report) == set()

    shown = cli("--workspace", ws.path, "monitor", "--dry-run")
    assert "tenure_days (aged)" in shown.out
    assert "recency_days left out" in shown.out


def test_real_shifts_still_raise_drift_a_week_later(
        week_apart: tuple[Workspace, pd.DataFrame, pd.DataFrame]) -> None:
    ws, _, now = week_apart
    # everyone buys half as often
    replace_features(ws, now.assign(frequency=now["frequency"] * 0.5))
    with open_engine(ws) as engine:
        halved = run_monitor(context(ws, engine), record=False)
    assert {"frequency"} <= {a["subject"] for a in halved.new_alerts
                             if a["kind"].startswith("drift.")}
    assert not {"tenure_days", "recency_days"} & {a["subject"] for a in halved.new_alerts}
    # a third of the customers seen two months earlier than they were (a backfill): aging
    # the reference by the week does not hide it
    older = now.copy()
    third = older.index % 3 == 0
    older.loc[third, "tenure_days"] += 60.0
    replace_features(ws, older)
    with open_engine(ws) as engine:
        backfilled = run_monitor(context(ws, engine), record=False)
    tenure = [a for a in backfilled.new_alerts if a["subject"] == "tenure_days"]
    assert {a["kind"] for a in tenure} >= {"drift.psi"}
    assert json.loads(tenure[0]["detail"])["aged_days"] == pytest.approx(WEEK)


def test_the_same_as_of_compares_every_feature_as_it_is(
        shop: tuple[Path, Path], cli: Callable[..., CliResult]) -> None:
    path, _ = shop
    r = cli("--workspace", path, "monitor", "--dry-run", "--json")
    assert r.code == 0, r.err
    report = r.json()
    assert report["as_of_moved_days"] == pytest.approx(0.0)
    assert report["time_adjusted"] == []
    assert {"recency_days", "tenure_days"} <= {f["feature"] for f in report["features"]}
