"""tribes monitor on a segmented workspace: quiet on the data the version was built on,
alerts on planted drift (once, until acknowledged), the CLI and alert webhooks."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import ibis
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from tests.conftest import CliResult
from tests.stages import context
from tribes.config import SegmentConfig
from tribes.models.segmentation import run_segmentation
from tribes.monitor.alerts import ack, list_alerts
from tribes.monitor.drift_check import history, run_monitor
from tribes.store.db import init_workspace, open_engine
from tribes.workspace import Workspace, open_workspace

FEATS = ["f1", "f2", "f3"]
CFG = SegmentConfig(features=FEATS, log1p=[], resamples=2, k_range="2-6")


def blobs(n: int = 1600, seed: int = 3) -> pd.DataFrame:
    x, y = make_blobs(n_samples=n, centers=4, n_features=3, cluster_std=0.6,
                      random_state=seed)
    return pd.DataFrame(x, columns=FEATS).assign(
        customer_key=[f"c{i:05d}" for i in range(n)], truth=y)


def put_features(ws: Workspace, df: pd.DataFrame) -> None:
    with open_engine(ws) as engine:
        engine.replace_table("customer_features",
                             ibis.memtable(df.drop(columns="truth", errors="ignore")))


@pytest.fixture
def segmented(tmp_path: Path) -> tuple[Workspace, pd.DataFrame]:
    ws = init_workspace(tmp_path / "ws")
    df = blobs()
    put_features(ws, df)
    with open_engine(ws) as engine:
        run_segmentation(context(ws, engine), method="kmeans", k=4, cfg=CFG)
    return ws, df


def test_quiet_on_the_data_the_version_was_built_on(segmented) -> None:
    ws, _ = segmented
    with open_engine(ws) as engine:
        r = run_monitor(context(ws, engine))
    assert [f.feature for f in r.features] == FEATS
    for f in r.features:
        assert f.psi == pytest.approx(0.0, abs=1e-9) and f.ks < 0.006
    assert r.shares is not None and r.shares.chi2 == pytest.approx(0.0, abs=1e-9)
    assert not r.new_alerts and not r.breached


def test_planted_drift_raises_alerts_once_until_acknowledged(segmented) -> None:
    ws, df = segmented
    shifted = df.copy()
    # one feature moves by two standard deviations for half of the customers; a group
    # of the others moves into another segment's region (the shares shift)
    half = shifted.index < len(df) // 2
    shifted.loc[half, "f2"] += 2 * df["f2"].std()
    put_features(ws, shifted)
    with open_engine(ws) as engine:
        r = run_monitor(context(ws, engine))
    kinds = {(a["kind"], a["subject"]): a for a in r.new_alerts}
    assert ("drift.psi", "f2") in kinds and kinds[("drift.psi", "f2")]["severity"] == \
        "critical"
    assert ("drift.ks", "f2") in kinds
    assert not any(subject in ("f1", "f3") for _, subject in kinds)  # untouched
    psi_f2 = next(f for f in r.features if f.feature == "f2")
    assert psi_f2.psi >= 0.25 and psi_f2.mean_now > psi_f2.mean_ref
    # still open: the next check raises nothing new, and says so
    with open_engine(ws) as engine:
        again = run_monitor(context(ws, engine))
        assert not again.new_alerts
        assert {a["alert_id"] for a in again.open_alerts} == \
            {a["alert_id"] for a in r.new_alerts}
        open_ = list_alerts(engine)
        assert len(open_) == len(r.new_alerts)
        ack(engine, [a["alert_id"] for a in open_], actor="cli:test", note="expected")
        assert list_alerts(engine) == []
        acked = list_alerts(engine, status="acked")
        assert {a["acked_by"] for a in acked} == {"cli:test"}
        with pytest.raises(Exception, match="acknowledged already"):
            ack(engine, [acked[0]["alert_id"]], actor="cli:test")
        # acknowledged, and the drift persists: raised anew, with new numbers
        third = run_monitor(context(ws, engine))
        assert {a["kind"] for a in third.new_alerts} >= {"drift.psi"}
        assert min(a["alert_id"] for a in third.new_alerts) > \
            max(a["alert_id"] for a in r.new_alerts)
        runs = history(engine)
    assert len(runs) == 3 and runs[0]["psi"]["f2"] >= 0.25


def test_segment_share_shift_is_an_alert(segmented) -> None:
    ws, df = segmented
    # every customer of the first blob now looks like one of the second
    moved = df.copy()
    first, second = moved.truth == 0, moved.truth == 1
    centre = moved.loc[second, FEATS].mean().to_numpy()
    rng = np.random.default_rng(0)
    moved.loc[first, FEATS] = centre + rng.normal(0, 0.3, (int(first.sum()), 3))
    put_features(ws, moved)
    with open_engine(ws) as engine:
        r = run_monitor(context(ws, engine))
    assert r.shares is not None and r.shares.p_value < 1e-6
    shifts = [a for a in r.new_alerts if a["kind"] == "segment.share"]
    assert len(shifts) == 2  # one segment empties, another doubles
    assert sorted(round(a["value"], 2) for a in shifts) == pytest.approx(
        [-0.25, 0.25], abs=0.02)


class _Receiver(BaseHTTPRequestHandler):
    got: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).got.append((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    _Receiver.got = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", _Receiver.got
    server.shutdown()


def test_cli_monitor_alerts_and_webhook(segmented, cli: Callable[..., CliResult],
                                        receiver) -> None:
    from tribes.http import verify_signature

    ws, df = segmented
    url, got = receiver
    w = ("--workspace", ws.path)
    added = cli(*w, "webhooks", "add", "--url", url, "--events", "alert.*", "--json")
    assert added.code == 0, added.err
    secret = added.json()["secret"]
    quiet = cli(*w, "monitor", "--fail-on", "warning")
    assert quiet.code == 0, quiet.err
    assert "No threshold breached" in quiet.out
    shifted = df.assign(f1=df["f1"] * 3 + 5)
    put_features(open_workspace(ws.path), shifted)
    dry = cli(*w, "monitor", "--dry-run", "--json")
    assert dry.code == 0 and dry.json()["new_alerts"] and not got
    r = cli(*w, "monitor", "--json", "--fail-on", "critical")
    assert r.code == 3  # a critical alert is open
    report = r.json()
    assert report["webhooks"]["sent"] == len(report["new_alerts"]) == len(got)
    headers, body = got[0]
    assert verify_signature(secret, headers["X-Tribes-Signature"], body)
    sent = json.loads(body)
    assert sent["type"].startswith("alert.drift") and sent["data"]["subject"] == "f1"
    listed = cli(*w, "alerts", "list", "--json").json()["alerts"]
    assert {a["subject"] for a in listed} == {"f1"} | {
        a["subject"] for a in report["new_alerts"]}
    ids = [str(a["alert_id"]) for a in listed]
    assert cli(*w, "alerts", "ack", *ids, "--note", "a planted change").code == 0
    assert cli(*w, "alerts", "list", "--json").json()["alerts"] == []
    bad = cli(*w, "alerts", "ack", "999")
    assert bad.code != 0 and "no alert 999" in (bad.err + bad.out)
    assert cli(*w, "monitor", "--help").code == 0


def test_alerts_list_prints_colours_not_markup(segmented, cli: Callable[..., CliResult],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    ws, df = segmented
    put_features(ws, df.assign(f1=df["f1"] * 3 + 5))  # a critical PSI and a KS warning
    with open_engine(ws) as engine:
        raised = run_monitor(context(ws, engine)).new_alerts
    assert {a["severity"] for a in raised} == {"warning", "critical"}
    w = ("--workspace", ws.path)
    markup = ("[yellow]", "[red]", "[/]", "[/yellow]", "[/red]")
    for columns in ("80", "250"):  # a row per block, and a table
        monkeypatch.setenv("COLUMNS", columns)
        plain = cli(*w, "alerts", "list")
        assert plain.code == 0, plain.err
        assert "warning" in plain.out and "critical" in plain.out
        assert not any(m in plain.out for m in markup), plain.out
        assert "\x1b[" not in plain.out  # not a terminal: no colour codes either
        shown = cli(*w, "monitor", "--dry-run")
        assert shown.code == 0 and not any(m in shown.out for m in markup), shown.out
    # on a terminal the severities are coloured: yellow (33) and red (31)
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    coloured = cli(*w, "alerts", "list")
    assert "\x1b[33mwarning" in coloured.out and "\x1b[31mcritical" in coloured.out
    assert not any(m in coloured.out for m in markup)
    as_json = cli(*w, "alerts", "list", "--json")
    assert {a["severity"] for a in as_json.json()["alerts"]} == {"warning", "critical"}
    assert "\x1b[" not in as_json.out and "[/]" not in as_json.out


def test_monitor_without_a_version_says_what_to_do(tmp_path: Path,
                                                   cli: Callable[..., CliResult]) -> None:
    ws = init_workspace(tmp_path / "empty")
    r = cli("--workspace", ws.path, "monitor")
    assert r.code != 0 and "tribes segment" in (r.err + r.out)
