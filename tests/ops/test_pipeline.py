"""tribes run: the whole pipeline, idempotent; a re-segmentation (when asked, or as
[ops] resegment says) compared with the active version and activated or held by [ops]
activate. The refresh of memberships that runs instead: tests/ops/test_refresh.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

import tribes
from tests.conftest import CliResult, Receiver
from tribes.http import verify_signature
from tribes.store.db import init_workspace
from tribes.synth import SynthConfig, generate


def configure(ws: Path, activate: str, min_ari: float = 0.7, resegment: str | None = None
              ) -> None:
    cfg = ws / "tribes.toml"
    text = cfg.read_text(encoding="utf-8")
    old = 'activate = "if-stable"'
    assert old in text
    text = text.replace(old, f'activate = "{activate}"', 1).replace(
        "min_ari = 0.7", f"min_ari = {min_ari}", 1)
    if resegment is not None:
        assert 'resegment = "on-drift"' in text
        text = text.replace('resegment = "on-drift"', f"resegment = {resegment}", 1)
    cfg.write_text(text, encoding="utf-8")


def test_a_second_run_on_the_same_events_changes_nothing(
        shop: tuple[Path, Path], cli: Callable[..., CliResult]) -> None:
    ws, _ = shop
    r = cli("-w", ws, "run", "--json")
    assert r.code == 0, r.err
    out = r.json()
    assert out["steps"]["prep"].startswith("skipped")
    assert out["steps"]["features"].startswith("skipped")
    assert out["steps"]["segment"] == "skipped: version 1 was built from these features"
    assert out["steps"]["refresh"] == ("skipped: version 1's memberships come from these "
                                       "features")
    assert out["steps"]["monitor"] == "done" and out["segment"] is None
    assert out["monitor"]["new_alerts"] == []  # the version's own data: no drift
    versions = cli("-w", ws, "versions", "list", "--json").json()["versions"]
    assert [v["version"] for v in versions] == [1]
    forced = cli("-w", ws, "run", "--force", "--no-resegment", "--json").json()
    assert forced["steps"]["prep"] == forced["steps"]["features"] == "done"
    assert forced["steps"]["segment"] == "skipped: asked not to re-segment this run"
    # recomputed features, the same customers: the refresh moves nobody
    assert (forced["refresh"]["new"], forced["refresh"]["moved"],
            forced["refresh"]["left"]) == (0, 0, 0)
    # the former spelling still works, and says it is deprecated
    old = cli("-w", ws, "run", "--no-segment")
    assert old.code == 0 and "--no-segment is deprecated" in old.out


@pytest.mark.parametrize(("policy", "min_ari", "decision", "asked"), [
    ("review", 0.7, "held", "--resegment"),
    ("auto", 0.7, "activated", '"always"'),
    ("if-stable", -1.0, "activated", "true"),  # the boolean of earlier releases
    ("if-stable", 1.0, "held", "ws.run(resegment=True)")])
def test_a_resegmentation_builds_a_version_compared_with_the_active_one(
        shop: tuple[Path, Path], cli: Callable[..., CliResult], policy: str, min_ari: float,
        decision: str, asked: str) -> None:
    ws, data = shop
    flag = asked.startswith(("--", "ws."))
    configure(ws, policy, min_ari, resegment=None if flag else asked)
    assert cli("-w", ws, "ingest", data / "app", "--source", "app").code == 0
    if asked.startswith("ws."):  # the Python API
        out = json.loads(json.dumps(tribes.open(ws).run(resegment=True).summary,
                                    default=str))
    else:
        r = cli("-w", ws, "run", *([asked] if flag else []), "--json")
        assert r.code == 0, r.err
        out = r.json()
    assert out["steps"]["prep"] == out["steps"]["features"] == "done"
    # the active version's memberships first follow the customers (the app's new ones)
    assert out["steps"]["refresh"] == "done" and out["refresh"]["version"] == 1
    assert out["resegment"] == ("re-segmentation was asked for" if flag else
                                "[ops] resegment = always and the features changed")
    seg = out["segment"]
    assert seg["version"] == 2 and seg["method"] == "kmeans" and seg["k"] == 3
    comp = out["comparison"]
    assert comp["a"] == 1 and comp["b"] == 2 and -1 <= comp["ari"] <= 1
    # the migration matrix holds every customer of both versions once
    assert sum(sum(row.values()) for row in comp["matrix"].values()) == \
        comp["customers_in_both"] > 0
    assert {d["segment_id"] for d in comp["kpi_deltas"]} >= {0, 1, 2}
    for d in comp["kpi_deltas"]:
        c = d["conversion_rate"]
        if c["old"] is not None and c["new"] is not None:
            assert c["delta"] == pytest.approx(c["new"] - c["old"])
    if policy == "if-stable" and min_ari == 1.0 and comp["ari"] == 1.0:
        pytest.skip("the two versions agree exactly: nothing to hold")
    assert out["decision"] == decision, out["reason"]
    versions = {v["version"]: v for v in cli("-w", ws, "versions", "list", "--json")
                .json()["versions"]}
    if decision == "held":
        assert versions[1]["active"] and versions[2]["status"] == "held"
        assert cli("-w", ws, "versions", "activate", "2").code == 0
    else:
        assert versions[2]["active"] and out["personas"] == 3
    # and now it is current: the next run builds nothing, even when asked
    again = cli("-w", ws, "run", "--resegment", "--json").json()
    assert again["segment"] is None and again["steps"]["features"].startswith("skipped")
    assert again["steps"]["segment"] == "skipped: version 2 was built from these features"
    hist = cli("-w", ws, "run-history", "--json").json()["runs"]
    assert [h["decision"] for h in hist][:2] == [None, decision]
    assert hist[1]["version"] == 2 and hist[1]["ari"] == pytest.approx(comp["ari"])


def test_run_without_a_version_says_how_to_start(tmp_path: Path,
                                                 cli: Callable[..., CliResult]) -> None:
    ws = tmp_path / "fresh"
    init_workspace(ws)
    data = tmp_path / "data"
    generate(SynthConfig(out=data, customers=40, days=20, seed=2))
    assert cli("-w", ws, "ingest", data / "web", "--source", "web").code == 0
    out = cli("-w", ws, "run", "--json").json()
    assert out["steps"]["segment"].startswith("skipped: no segment version yet")
    assert "monitor" not in out["steps"]


def test_the_alerts_of_a_run_reach_the_webhooks(shop: tuple[Path, Path],
                                                cli: Callable[..., CliResult],
                                                webhook_receiver: Receiver) -> None:
    ws, _ = shop
    added = cli("-w", ws, "webhooks", "add", "--url", f"{webhook_receiver.url}/psi",
                "--events", "alert.drift.psi", "--json")
    assert added.code == 0, added.err
    # features as of a far day: every customer's recency drifts
    out = cli("-w", ws, "run", "--no-resegment", "--as-of", "2099-01-01", "--json").json()
    psi = [a for a in out["monitor"]["new_alerts"] if a["kind"] == "drift.psi"]
    assert psi and out["webhooks"] == {"sent": len(psi), "failed": 0}
    got = webhook_receiver.got
    assert [json.loads(r.body)["id"] for r in got] == [f"alert-{a['alert_id']}" for a in psi]
    assert all(verify_signature(added.json()["secret"], r.headers["X-Tribes-Signature"],
                                r.body) for r in got)
