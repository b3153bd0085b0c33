"""Persona naming rules, KPI tests, and the personas/validate commands."""

from __future__ import annotations

from pathlib import Path

import ibis
import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency, kruskal

from tests.stages import context
from tribes.config import SegmentConfig
from tribes.models.naming import MIN_SCORE, name_segments
from tribes.models.segmentation import run_segmentation
from tribes.models.validate import continuous_test, rate_test, validate_segments
from tribes.store.db import init_workspace, open_engine


def test_names_follow_the_lifts_and_are_unique() -> None:
    lifts = {
        7: {"monetary": 2.0, "frequency": 1.5, "recency_days": -1.0, "aov": 1.0},
        3: {"recency_days": 1.8, "purchase_recency_days": 1.2, "tenure_days": 0.2},
        9: {"support_contacts": 2.5},
        1: {"cart_abandonment_rate": 1.4, "frequency": -1.2, "monetary": -0.6},
    }
    names = name_segments(lifts)
    assert names[7].name == "High-value loyalists" and names[7].campaign == "loyalty rewards"
    assert names[3].name == "Lapsing former buyers"
    assert names[9].name == "Support-heavy customers"
    assert names[1].name == "Window shoppers"
    assert len({n.name for n in names.values()}) == 4


def _fig(**medians: tuple[float | None, float | None]) -> dict[str, dict[str, float | None]]:
    """Per feature (segment median, population median)."""
    return {f: {"median": m, "population_median": p} for f, (m, p) in medians.items()}


# per archetype: lifts that point at it, figures that make its name true, and figures
# that make it false (written from what the name says of the median member)
RULES = {
    "High-value loyalists": (
        {"monetary": 2.0, "frequency": 1.5, "recency_days": -1.0, "aov": 1.0},
        _fig(frequency=(3, 1), monetary=(250.0, 60.0)),
        _fig(frequency=(1, 1), monetary=(250.0, 60.0))),  # one order is not loyalty
    "Bargain hunters": (
        {"aov": -2.0, "frequency": 1.0, "distinct_categories": 1.0},
        _fig(frequency=(2, 1), aov=(15.0, 40.0)),
        _fig(frequency=(0, 1), aov=(None, 40.0))),  # never bought: no bargains either
    "Window shoppers": (
        {"cart_abandonment_rate": 1.4, "frequency": -1.2, "monetary": -0.6},
        _fig(frequency=(0, 1), cart_abandonment_rate=(1.0, 0.5)),
        _fig(frequency=(2, 1), cart_abandonment_rate=(1.0, 0.5))),  # they do buy
    "New explorers": (
        {"tenure_days": -2.0, "distinct_categories": 1.0, "sessions_per_week": 1.0},
        _fig(tenure_days=(12.0, 90.0)),
        _fig(tenure_days=(120.0, 90.0))),
    "Lapsing former buyers": (
        {"recency_days": 1.8, "purchase_recency_days": 1.2, "tenure_days": 0.2},
        _fig(frequency=(2, 1), recency_days=(120.0, 30.0)),
        _fig(frequency=(0, 1), recency_days=(120.0, 30.0))),  # never buyers at all
    "Support-heavy customers": (
        {"support_contacts": 2.5},
        _fig(support_contacts=(2, 0)),
        _fig(support_contacts=(0, 0))),
    "Engaged browsers": (
        {"sessions_per_week": 2.0, "events_per_session": 1.0, "frequency": -0.5},
        _fig(sessions_per_week=(3.0, 0.7)),
        _fig(sessions_per_week=(0.5, 0.7))),
    "Occasional buyers": (
        {"frequency": -1.5, "n_sessions": -1.5, "monetary": -0.8},
        _fig(frequency=(1, 2)),
        _fig(frequency=(0, 2))),  # no order at all: not buyers
}


@pytest.mark.parametrize("archetype", sorted(RULES))
def test_a_name_is_only_given_when_its_rule_holds(archetype: str) -> None:
    lifts, true, false = RULES[archetype]
    named = name_segments({1: lifts}, {1: true})[1]
    assert named.name == archetype and named.rule
    refused = name_segments({1: lifts}, {1: false})[1]
    assert refused.name != archetype and refused.archetype != archetype
    assert name_segments({1: lifts})[1].name == archetype  # the lifts alone point at it


def test_two_similar_segments_do_not_share_a_name() -> None:
    same = {"monetary": 2.0, "frequency": 1.5, "recency_days": -1.0}
    names = name_segments({1: same, 2: dict(same)})
    assert names[1].name != names[2].name


def test_weak_lifts_get_a_descriptive_name() -> None:
    names = name_segments({4: {"support_contacts": 0.1, "tenure_days": 0.2,
                               "events_per_session": -0.25}})
    assert names[4].archetype is None and names[4].score < MIN_SCORE
    assert names[4].name == "Short sessions, long-standing"


def test_rate_and_continuous_tests_match_scipy() -> None:
    success, total = np.array([30, 60, 90]), np.array([100, 100, 100])
    t = rate_test(success, total)
    chi2, p, _, _ = chi2_contingency(np.stack([success, total - success], 1),
                                     correction=False)
    assert t["statistic"] == pytest.approx(chi2) and t["p_value"] == pytest.approx(p)
    assert t["effect"] == pytest.approx(np.sqrt(chi2 / 300))
    rng = np.random.default_rng(0)
    groups = [rng.normal(m, 1, 50) for m in (0, 0.5, 2)]
    c = continuous_test(groups)
    h, p = kruskal(*groups)
    assert c["statistic"] == pytest.approx(h) and c["effect"] == pytest.approx(h / 149)
    assert rate_test(np.array([5]), np.array([10]))["p_value"] is None


def test_segments_unrelated_to_kpis_get_a_warning(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    rng = np.random.default_rng(4)
    n = 900
    x = np.concatenate([rng.normal(c, 0.3, (n // 3, 2)) for c in (0, 3, 6)])
    df = pd.DataFrame({"customer_key": [f"c{i}" for i in range(n)], "x1": x[:, 0],
                       "x2": x[:, 1], "frequency": rng.integers(0, 4, n),
                       "monetary": rng.exponential(50, n), "aov": rng.exponential(20, n),
                       "recency_days": rng.uniform(0, 120, n),
                       "tenure_days": rng.uniform(120, 200, n),
                       "engagement_score": rng.uniform(0, 100, n)})
    with open_engine(ws) as engine:
        engine.replace_table("customer_features", ibis.memtable(df))
        run_segmentation(context(ws, engine), k=3, cfg=SegmentConfig(features=["x1", "x2"],
                                                             log1p=[], resamples=0))
        res = validate_segments(engine)
    assert res["kpis_differing"] == 0 and "do not differ" in res["warning"]
    assert res["tests"]["conversion_rate"]["p_value"] is None  # no sessions at all


def test_personas_commands(cli, tmp_path: Path) -> None:
    from sklearn.datasets import make_blobs

    ws = init_workspace(tmp_path / "shop")
    x, _ = make_blobs(n_samples=600, centers=[[3, 0, 0], [0, 3, 0], [0, 0, 3]],
                      cluster_std=0.4, random_state=1)
    df = pd.DataFrame({"customer_key": [f"c{i}" for i in range(600)],
                       "monetary": np.exp(x[:, 0]), "support_contacts": np.exp(x[:, 1]),
                       "recency_days": 20 * np.exp(x[:, 2]), "frequency": 1 + x[:, 0] ** 2,
                       "tenure_days": 100.0, "aov": 50.0, "engagement_score": 10.0})
    with open_engine(ws) as engine:
        engine.replace_table("customer_features", ibis.memtable(df))
    seg = cli("-w", ws.path, "segment", "--k", "3", "--features",
              "monetary,support_contacts,recency_days", "--json")
    assert seg.code == 0, seg.err
    r = cli("-w", ws.path, "personas", "--json")
    assert r.code == 0, r.err
    ps = {p["name"]: p for p in r.json()["personas"]}
    assert {"High-value loyalists", "Support-heavy customers",
            "Lapsing former buyers"} <= set(ps)
    loyal = ps["High-value loyalists"]
    assert loyal["features"]["monetary"]["lift"] > 1 and "customers" in loyal["description"]
    sid = loyal["segment_id"]
    card = cli("-w", ws.path, "personas", "show", str(sid))
    assert card.code == 0 and "Recommended action" in card.out
    out_dir = tmp_path / "docs"
    e = cli("-w", ws.path, "personas", "export", "--out", out_dir, "--json")
    assert e.code == 0 and len(list(out_dir.glob("*.md"))) == 3
    assert "# High-value loyalists" in (out_dir / f"segment-{sid}-high-value-loyalists.md"
                                        ).read_text()
    edits = tmp_path / "personas.toml"
    edits.write_text(f'[segment.{sid}]\nname = "VIPs"\naction = "Call them"\n')
    ed = cli("-w", ws.path, "personas", "edit", "--file", edits, "--json")
    assert ed.code == 0, ed.err
    # overrides stay when a new version keeps the segment id
    assert cli("-w", ws.path, "segment", "--k", "3", "--features",
               "monetary,support_contacts,recency_days").code == 0
    again = {p["segment_id"]: p for p in cli("-w", ws.path, "personas", "--json")
             .json()["personas"]}
    assert again[sid]["name"] == "VIPs" and again[sid]["action"] == "Call them"
    assert again[sid]["overridden"] == ["name", "action"]
    seg_csv = tmp_path / "s.csv"
    assert cli("-w", ws.path, "export", "segments", "--out", seg_csv).code == 0
    assert "VIPs" in set(pd.read_csv(seg_csv).segment_name)
    other = next(s for s in again if s != sid)
    clash = tmp_path / "clash.toml"
    clash.write_text(f'[segment.{other}]\nname = "vips"\n')
    c = cli("-w", ws.path, "personas", "edit", "--file", clash)
    assert c.code != 0 and "E_PERSONA_NAME" in c.err
    bad = tmp_path / "bad.toml"
    bad.write_text('[segment.x]\nname = "?"\n')
    b = cli("-w", ws.path, "personas", "edit", "--file", bad)
    assert b.code != 0 and "E_INPUT" in b.err
    assert "E_SEGMENT" in cli("-w", ws.path, "personas", "show", "42").err
