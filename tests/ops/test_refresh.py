"""tribes run refreshes the active version's memberships instead of fitting a new version:
new customers get their segment from the active version's own model, erased ones leave,
and a new version is fitted only when asked, scheduled, or on critical drift."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tests.conftest import CliResult
from tribes.models import stored_personas
from tribes.privacy import pseudonym
from tribes.store import get_run, open_engine, refresh_history
from tribes.workspace import open_workspace

COLUMNS = ["timestamp", "event_name", "user_id", "order_id", "revenue", "category"]


def write_events(path: Path, rows: list[tuple[Any, ...]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        w.writerows(rows)
    return path


def few_new_customers(n: int) -> list[tuple[Any, ...]]:
    """Customers like the shop's: a few views and one modest order, inside the data's
    days (so as_of, and with it everyone's recency, stays as it was)."""
    rows = []
    for i in range(n):
        day = f"2026-02-{10 + i:02d}"
        rows += [(f"{day}T10:00:00Z", "page_view", f"NEW{i}", "", "", ""),
                 (f"{day}T10:03:00Z", "product_view", f"NEW{i}", "", "", "home_kitchen"),
                 (f"{day}T10:09:00Z", "purchase", f"NEW{i}", f"NEW{i}-o1", "64.50",
                  "home_kitchen")]
    return rows


def planted_spenders(n: int) -> list[tuple[Any, ...]]:
    """A large population unlike any before: a dozen big jewelry orders each."""
    rng = np.random.default_rng(4)
    rows = []
    for i in range(n):
        start = pd.Timestamp("2026-01-20T00:00:00Z") + pd.Timedelta(hours=i)
        for j in range(12):
            ts = start + pd.Timedelta(days=2 * j, minutes=int(rng.integers(0, 50)))
            rows.append((ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "purchase", f"BIG{i:04d}",
                         f"BIG{i}-o{j}", f"{rng.uniform(800, 2000):.2f}", "jewelry"))
    return rows


def memberships(ws: Path, version: int) -> pd.Series:
    with open_engine(open_workspace(ws), read_only=True) as engine:
        t = engine.table("segment_assignments")
        df = engine.execute(t.filter(t.version == version))
    return df.set_index("customer_key")["segment_id"].sort_index()


def versions(cli: Callable[..., CliResult], ws: Path) -> list[int]:
    return [v["version"] for v in cli("-w", ws, "versions", "list", "--json")
            .json()["versions"]]


def set_policy(ws: Path, policy: str) -> None:
    cfg = ws / "tribes.toml"
    text = cfg.read_text(encoding="utf-8")
    lines = [f'resegment = "{policy}"' if line.startswith("resegment =") else line
             for line in text.splitlines()]
    cfg.write_text("\n".join(lines) + "\n", encoding="utf-8")


def numpy_segment(ws: Path, version: int, keys: list[str]) -> dict[str, int]:
    """The segment the version's stored centroids give these customers, computed here
    from their features with NumPy (not with the project's transform or expressions)."""
    with open_engine(open_workspace(ws), read_only=True) as engine:
        run = get_run(engine, version)
        f = engine.table("customer_features")
        df = engine.execute(f.filter(f.customer_key.isin(keys)))
    tr, model = run["transform"], run["model"]
    x = df[list(tr["features"])].to_numpy(dtype=float, na_value=np.nan)
    x = np.where(np.isnan(x), np.array(tr["fill"]), x)
    logs = np.array(tr["log1p"], dtype=bool)
    x[:, logs] = np.log1p(np.maximum(x[:, logs], 0.0))
    z = (x - np.array(tr["center"])) / np.array(tr["scale"])
    centroids = np.array(model["centroids"])
    nearest = ((z[:, None, :] - centroids[None]) ** 2).sum(axis=2).argmin(axis=1)
    ids = {int(a): int(b) for a, b in model["labels_to_segments"].items()}
    return {k: ids[int(lab)] for k, lab in zip(df["customer_key"], nearest, strict=True)}


def test_new_customers_join_the_active_version_and_erased_ones_leave(
        shop: tuple[Path, Path], cli: Callable[..., CliResult], tmp_path: Path) -> None:
    ws, data = shop
    secret = open_workspace(ws).secret()
    assert cli("-w", ws, "personas").code == 0
    before = memberships(ws, 1)
    known = pd.read_csv(data / "ground_truth.csv")["customer_id"].iloc[0]
    rows = [*few_new_customers(4),
            ("2026-02-20T12:00:00Z", "page_view", known, "", "", "")]  # one event more
    assert cli("-w", ws, "ingest", write_events(tmp_path / "new.csv", rows),
               "--source", "web").code == 0
    r = cli("-w", ws, "run", "--json")
    assert r.code == 0, r.err
    out = r.json()
    # a refresh, not a new segmentation
    assert out["steps"]["refresh"] == "done" and out["segment"] is None
    assert out["steps"]["segment"] == ("skipped: no critical drift on version 1's features "
                                       "([ops] resegment = on-drift)")
    assert versions(cli, ws) == [1]
    ref = out["refresh"]
    assert (ref["version"], ref["new"], ref["left"]) == (1, 4, 0)
    assert out["outcome"] == ref["summary"] == (
        f"refreshed version 1: 4 new, {ref['moved']} moved, 0 left")
    after = memberships(ws, 1)
    new = [pseudonym(f"NEW{i}", secret) for i in range(4)]
    assert set(after.index) == set(before.index) | set(new)
    # each has the segment of its nearest stored centroid, as NumPy computes it
    assert after[new].to_dict() == numpy_segment(ws, 1, new)
    moved = after[before.index] != before
    assert int(moved.sum()) == ref["moved"] <= 1  # only the one customer's values changed
    # the personas describe the members now
    assert out["steps"]["personas"] == "done"
    with open_engine(open_workspace(ws), read_only=True) as engine:
        personas = stored_personas(engine, 1)
    assert {p["segment_id"]: p["size"] for p in personas} == after.value_counts().to_dict()
    printed = cli("-w", ws, "run", "--force", "--no-resegment")
    assert printed.code == 0 and "Segments: refreshed version 1: 0 new, 0 moved, 0 left" \
        in printed.out
    # every reader of the version's members sees them: the export, for one
    path = tmp_path / "segments.csv"
    assert cli("-w", ws, "export", "segments", "--out", path).code == 0
    assert set(new) <= set(pd.read_csv(path)["customer_key"])

    # the same events again: nothing changes
    logged = len(refresh_history_of(ws))
    again = cli("-w", ws, "run", "--json").json()
    assert again["steps"]["refresh"].startswith("skipped: version 1's memberships come")
    assert again["refresh"] is None and again["segment"] is None
    assert again["outcome"] == "segments unchanged"
    assert memberships(ws, 1).equals(after) and len(refresh_history_of(ws)) == logged
    assert versions(cli, ws) == [1]

    # an erased customer leaves the memberships, and a run does not bring them back
    assert cli("-w", ws, "forget", "NEW0").code == 0
    assert new[0] not in memberships(ws, 1).index
    r = cli("-w", ws, "run", "--json")
    assert r.code == 0, r.err
    gone = memberships(ws, 1)
    assert new[0] not in gone.index and set(new[1:]) <= set(gone.index)


def refresh_history_of(ws: Path) -> list[dict[str, Any]]:
    with open_engine(open_workspace(ws), read_only=True) as engine:
        return refresh_history(engine)


def test_critical_drift_fits_a_new_version_unless_the_policy_says_never(
        shop: tuple[Path, Path], cli: Callable[..., CliResult], tmp_path: Path) -> None:
    ws, _ = shop
    before = memberships(ws, 1)
    assert cli("-w", ws, "ingest", write_events(tmp_path / "big.csv", planted_spenders(150)),
               "--source", "web").code == 0
    set_policy(ws, "never")
    out = cli("-w", ws, "run", "--json").json()
    psi = [a for a in out["monitor"]["new_alerts"]
           if a["kind"] == "drift.psi" and a["severity"] == "critical"]
    assert psi, "the planted population must drift"
    assert out["segment"] is None and versions(cli, ws) == [1]
    assert out["steps"]["segment"].startswith("skipped: [ops] resegment = never")
    # the newcomers are members of version 1 at once; nobody else moved or left
    assert (out["refresh"]["new"], out["refresh"]["moved"], out["refresh"]["left"]) == (
        150, 0, 0)
    refreshed = memberships(ws, 1)
    assert refreshed[before.index].equals(before)

    set_policy(ws, "on-drift")
    out = cli("-w", ws, "run", "--json").json()
    assert out["steps"]["refresh"].startswith("skipped")  # current since the last run
    assert out["segment"]["version"] == 2 and versions(cli, ws) == [1, 2]
    assert out["resegment"].startswith("drift: PSI ≥ 0.25 (critical) on version 1's "
                                       "features ")
    assert out["outcome"].startswith(f"new version 2 ({out['decision']}) because drift")
    # the comparison's migration matrix is that of the two versions' memberships
    v2 = memberships(ws, 2)
    both = pd.DataFrame({"a": refreshed, "b": v2}).dropna()
    assert len(both) == len(refreshed) == len(v2)
    table = pd.crosstab(both["a"], both["b"])
    matrix = {str(a): {str(b): int(n) for b, n in row.items() if n}
              for a, row in table.iterrows()}
    got = {a: {b: n for b, n in row.items() if n} for a, row in out["comparison"]["matrix"]
           .items()}
    assert got == matrix


def test_a_rollback_brings_the_older_version_up_to_date_at_once(
        shop: tuple[Path, Path], cli: Callable[..., CliResult], tmp_path: Path) -> None:
    ws, _ = shop
    assert cli("-w", ws, "segment", "--k", "4").code == 0  # version 2, active
    assert cli("-w", ws, "ingest", write_events(tmp_path / "new.csv", few_new_customers(3)),
               "--source", "web").code == 0
    out = cli("-w", ws, "run", "--json").json()
    assert out["refresh"]["version"] == 2 and out["refresh"]["new"] == 3
    new = [pseudonym(f"NEW{i}", open_workspace(ws).secret()) for i in range(3)]
    assert not set(new) & set(memberships(ws, 1).index)  # version 1: as it was
    back = cli("-w", ws, "versions", "rollback", "--json")
    assert back.code == 0, back.err
    res = back.json()
    assert (res["active"], res["previous"]) == (1, 2)
    assert res["refresh"]["trigger"] == "rollback" and res["refresh"]["new"] == 3
    v1 = memberships(ws, 1)
    assert v1[new].to_dict() == numpy_segment(ws, 1, new)
    # already current: the next run neither refreshes nor fits
    again = cli("-w", ws, "run", "--json").json()
    assert again["steps"]["refresh"].startswith("skipped") and again["segment"] is None
    with open_engine(open_workspace(ws), read_only=True) as engine:
        assert [r["trigger"] for r in refresh_history(engine, 1)] == ["rollback"]


def test_a_workspace_from_before_refreshes_keeps_working(
        shop: tuple[Path, Path], cli: Callable[..., CliResult]) -> None:
    ws, _ = shop
    with open_engine(open_workspace(ws)) as engine:
        engine.con.drop_table("segment_refreshes")  # as a workspace of earlier releases
    shown = cli("-w", ws, "versions", "show", "1", "--json")  # read-only: nothing created
    assert shown.code == 0, shown.err
    assert shown.json()["refreshes"] == []
    out = cli("-w", ws, "run", "--json").json()  # a writer creates the table on open
    # the version's memberships come from the features it was fitted on: nothing to do
    assert out["steps"]["refresh"].startswith("skipped: version 1's memberships come")
    with open_engine(open_workspace(ws), read_only=True) as engine:
        assert engine.has_table("segment_refreshes")
