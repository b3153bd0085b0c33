"""prep, features, features describe, export, customer and run through the CLI."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.features.conftest import make_events


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tribes.cli import main

    root = tmp_path_factory.mktemp("cli-features")
    ws = root / "shop"
    raw = make_events(seed=9)
    path = root / "events.csv"
    raw.drop(columns=["t"]).to_csv(path, index=False)
    assert main(["-q", "init", str(ws)]) == 0
    assert main(["-q", "-w", str(ws), "ingest", str(path)]) == 0
    return ws


def test_features_before_prep_runs_prep(cli, shop: Path) -> None:
    r = cli("-w", shop, "features", "--json")
    assert r.code == 0, r.err
    out = r.json()
    assert out["prep_rerun"] is True and out["customers"] > 40
    assert "recency_days" in out["columns"] and 0 < out["composite"][
        "explained_variance_ratio"] <= 1


def test_prep_reports_stitching(cli, shop: Path) -> None:
    r = cli("-w", shop, "prep", "--json")
    assert r.code == 0, r.err
    out = r.json()
    s = out["stitching"]
    assert s["known_ids"] == make_events(seed=9).customer_id.nunique()
    assert s["customers"] > s["known_ids"] and s["passes"] >= 1
    assert out["sessions"] > 0
    human = cli("-w", shop, "prep", "--session-timeout", "45m")
    assert human.code == 0 and "Identity stitching" in human.out and "45m" in human.out


def test_features_describe(cli, shop: Path) -> None:
    assert cli("-w", shop, "features", "--as-of", "2026-05-15").code == 0
    r = cli("-w", shop, "features", "describe", "--json")
    assert r.code == 0, r.err
    rows = {f["feature"]: f for f in r.json()["features"]}
    aov = rows["aov"]
    assert aov["null_meaning"] == "never purchased" and 0 < aov["null_share"] < 1
    assert aov["min"] <= aov["median"] <= aov["max"] and sum(aov["histogram"]) > 0
    assert rows["rfm_label"]["top_values"]
    human = cli("-w", shop, "features", "describe")
    assert "engagement_score" in human.out and "Definitions" in human.out


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_export_features_and_sessions(cli, shop: Path, tmp_path: Path, fmt: str) -> None:
    assert cli("-w", shop, "features").code == 0
    out = tmp_path / f"features.{fmt}"
    r = cli("-w", shop, "export", "features", "--format", fmt, "--out", out, "--json")
    assert r.code == 0, r.err
    df = pd.read_parquet(out) if fmt == "parquet" else pd.read_csv(out)
    assert len(df) == r.json()["rows"] > 0 and "composite_index" in df.columns
    s = tmp_path / f"sessions.{fmt}"
    r = cli("-w", shop, "export", "sessions", "--out", s, "--json")
    assert r.code == 0 and r.json()["format"] == fmt and r.json()["rows"] > 0


def test_export_unknown_table_is_a_clear_error(cli, shop: Path, tmp_path: Path) -> None:
    r = cli("-w", shop, "export", "personas", "--out", tmp_path / "x.parquet")
    assert r.code != 0 and "E_EXPORT" in r.err and "features" in r.err


def test_customer_by_raw_id(cli, shop: Path) -> None:
    assert cli("-w", shop, "features").code == 0
    r = cli("-w", shop, "customer", "C001", "--json", "--limit", "5")
    assert r.code == 0, r.err
    v = r.json()
    assert v["features"]["n_events"] == v["n_events"] > 0
    assert {i["id_type"] for i in v["ids"]} >= {"customer_id", "anonymous_id"}
    assert len(v["timeline"]) == 5 and v["analyzed"] is True
    # the same customer by an anonymous id it used
    cookie = cli("-w", shop, "customer", "ck1-0", "--json").json()
    assert cookie["customer_key"] == v["customer_key"]
    human = cli("-w", shop, "customer", "C001")
    assert "Latest sessions" in human.out and "Features" in human.out


def test_customer_not_found(cli, shop: Path) -> None:
    r = cli("-w", shop, "customer", "nobody-at-all")
    assert r.code != 0 and "E_NOT_FOUND" in r.err


def test_bad_as_of_and_timeout(cli, shop: Path) -> None:
    r = cli("-w", shop, "features", "--as-of", "last tuesday")
    assert r.code != 0 and "E_AS_OF" in r.err
    r = cli("-w", shop, "features", "--session-timeout", "soon")
    assert r.code != 0 and "E_DURATION" in r.err
    r = cli("-w", shop, "features", "--as-of", "1999-01-01")
    assert r.code != 0 and "E_NO_EVENTS" in r.err


def test_run_does_prep_and_features(cli, shop: Path) -> None:
    # the module's workspace has prep and features already: --force does them again
    r = cli("-w", shop, "run", "--force", "--json")
    assert r.code == 0, r.err
    out = r.json()
    assert out["prep"]["sessions"] > 0 and out["features"]["customers"] > 0
    again = cli("-w", shop, "run", "--json").json()
    assert again["prep"] is None and again["features"] is None
    assert again["steps"]["prep"].startswith("skipped")


def test_features_on_an_empty_workspace(cli, tmp_path: Path) -> None:
    ws = tmp_path / "empty"
    assert cli("init", ws).code == 0
    r = cli("-w", ws, "features")
    assert r.code != 0 and "E_NO_EVENTS" in r.err and "ingest" in r.err
    r = cli("-w", ws, "features", "describe")
    assert r.code != 0 and "E_NO_FEATURES" in r.err


def test_status_shows_stages(cli, shop: Path) -> None:
    assert cli("-w", shop, "run").code == 0
    st = cli("-w", shop, "status", "--json").json()
    assert st["stages"]["prep"]["current"] and st["stages"]["features"]["current"]
    assert st["tables"]["customer_features"] == st["stages"]["features"]["report"]["customers"]
    assert st["tables"]["identities"] > 0 and st["tables"]["sessions"] > 0
    assert "Stages" in cli("-w", shop, "status").out


def test_export_segments_before_any_version(cli, shop: Path, tmp_path: Path) -> None:
    r = cli("-w", shop, "export", "segments", "--out", tmp_path / "s.parquet")
    assert r.code != 0 and "E_EMPTY" in r.err and "tribes segment" in r.err
