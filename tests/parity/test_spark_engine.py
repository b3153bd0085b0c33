"""The PySpark engine's own mechanics: batches stay atomic without transactions, the
quirk table compiles to Spark's functions, and nothing is collected to the driver."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import NOW
from tests.stages import ingest
from tribes.engine.pyspark.quirks import strftime_to_java
from tribes.engine.pyspark.session import fit_broadcasts, size_bytes
from tribes.ingest import IngestOptions
from tribes.ingest.loader import FAULT_ENV
from tribes.store.db import init_workspace, open_engine
from tribes.workspace import Workspace, open_workspace

from .conftest import SPARK_TOML, require_spark

TEXT = "ts,user_id,event,amount\n" + "".join(
    f"2026-01-0{1 + i % 9}T00:00:0{i % 10}Z,u{i},page_view,\n" for i in range(50)
) + "bad,u1,page_view,\n"
GOOD = "ts,user_id,event\n2026-02-01T00:00:00Z,v1,login\n"


@pytest.fixture
def sws(tmp_path: Path) -> Workspace:
    require_spark()
    path = tmp_path / "ws"
    path.mkdir()
    (path / "tribes.toml").write_text(SPARK_TOML, encoding="utf-8")
    return init_workspace(path)


def _counts(ws: Workspace) -> dict[str, int]:
    ws = open_workspace(ws.path)
    with open_engine(ws) as engine:
        return {n: int(engine.scalar(engine.table(n).count()))
                for n in ("events", "quarantine", "batches")}


def _files(ws: Workspace) -> set[str]:
    return {str(p.relative_to(ws.path)) for p in (ws.path / "warehouse").rglob("*")
            if p.is_file()}


def test_strftime_formats_become_java_patterns() -> None:
    assert strftime_to_java("%d/%m/%Y %H:%M") == "dd/MM/yyyy HH:mm"
    assert strftime_to_java("%Y-%m-%dT%H:%M:%S.%f%z") == "yyyy-MM-dd'T'HH:mm:ss.SSSSSSxx"
    assert strftime_to_java("%b %d, %Y at %I:%M %p") == "MMM dd, yyyy' at 'hh:mm a"
    assert strftime_to_java("%%Y") == "%'Y'"  # a literal %Y


def test_broadcasts_stay_under_the_driver_result_limit() -> None:
    assert size_bytes("1m") == 1 << 20 and size_bytes("512K") == 512 << 10
    assert size_bytes("2048") == 2048 and size_bytes("lots") is None
    limit = "spark.driver.maxResultSize"
    key = "spark.sql.autoBroadcastJoinThreshold"
    assert fit_broadcasts({limit: "1m"})[key] == str((1 << 20) // 8)
    assert fit_broadcasts({limit: "1m", key: "-1"})[key] == "-1"  # the user's choice wins
    assert key not in fit_broadcasts({limit: "0"})  # 0: no limit
    assert key not in fit_broadcasts({})


@pytest.mark.slow
def test_stored_as_parquet_directories(sws: Workspace, tmp_path: Path) -> None:
    (tmp_path / "good.csv").write_text(GOOD, encoding="utf-8")
    s = ingest(sws, [str(tmp_path / "good.csv")], IngestOptions(source="web", now=NOW))
    assert s.loaded == 1
    assert not (sws.path / "tribes.duckdb").exists()
    assert any(p.suffix == ".parquet" for p in (sws.path / "warehouse" / "events").iterdir())
    assert _counts(sws)["events"] == 1


# after every table of the batch was written: the journal must take all of it back
@pytest.mark.slow
@pytest.mark.parametrize("step", ["recorded"])
def test_error_mid_batch_leaves_warehouse_unchanged(sws: Workspace, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    step: str) -> None:
    (tmp_path / "good.csv").write_text(GOOD, encoding="utf-8")
    (tmp_path / "e.csv").write_text(TEXT, encoding="utf-8")
    ingest(sws, [str(tmp_path / "good.csv")], IngestOptions(source="web", now=NOW))
    before, files = _counts(sws), _files(sws)
    monkeypatch.setenv(FAULT_ENV, f"{step}:raise")
    with pytest.raises(RuntimeError, match="fault injected"):
        ingest(sws, [str(tmp_path / "e.csv")], IngestOptions(source="web", now=NOW))
    monkeypatch.delenv(FAULT_ENV)
    assert _files(sws) == files
    assert _counts(sws) == before
    s = ingest(sws, [str(tmp_path / "e.csv")], IngestOptions(source="web", now=NOW))
    assert s.loaded == 50 and s.quarantined == {"E_TS_PARSE": 1}


@pytest.mark.slow
def test_killed_batch_is_rolled_back_at_next_open(sws: Workspace, tmp_path: Path) -> None:
    (tmp_path / "good.csv").write_text(GOOD, encoding="utf-8")
    (tmp_path / "e.csv").write_text(TEXT, encoding="utf-8")
    ingest(sws, [str(tmp_path / "good.csv")], IngestOptions(source="web", now=NOW))
    before, files = _counts(sws), _files(sws)
    env = {**os.environ, FAULT_ENV: "recorded:kill"}
    proc = subprocess.run(
        [sys.executable, "-m", "tribes", "--workspace", str(sws.path), "ingest",
         str(tmp_path / "e.csv")], env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 137, proc.stderr[-2000:]
    assert (sws.path / "warehouse" / "_journal.json").exists()
    assert _files(sws) != files  # the dead batch wrote its rows ...
    assert _counts(sws) == before  # ... and opening the workspace took them back
    assert _files(sws) == files
    s = ingest(sws, [str(tmp_path / "e.csv")], IngestOptions(source="web", now=NOW))
    assert s.loaded == 50


@pytest.mark.slow
def test_json_keys_of_any_characters_read_as_on_duckdb(sws: Workspace, tmp_path: Path) -> None:
    """Keys Spark's JSONPath cannot name (a quote, '?', empty, NUL) and keys that differ
    only in case keep their values, the same as on DuckDB."""
    import json

    rec = {"user_id": "u1", "event": "page_view", "timestamp": "2026-01-01T00:00:00Z",
           "l'adresse": "1 rue de l'Église", "why?": "a\\b", "": "e", "a\x00b": "nul",
           "Size": "L", "size": "M", "$.x['y']": "p", "a/b~c": "s", "`q`": "t",
           "nested": {"k": [1, 2]}}
    path = tmp_path / "k.jsonl"
    path.write_text(json.dumps(rec) + "\n" + json.dumps({**rec, "user_id": "u2"}) + "\n",
                    encoding="utf-8")
    stored = {}
    duck = init_workspace(tmp_path / "duck")
    for ws in (sws, duck):
        s = ingest(ws, [str(path)], IngestOptions(source="web", now=NOW))
        assert (s.loaded, s.n_quarantined) == (2, 0)
        with open_engine(open_workspace(ws.path)) as engine:
            props = engine.execute(engine.table("events").select("properties"))
        stored[ws.path.name] = json.loads(props.properties[0])
    assert stored["ws"] == stored["duck"]
    assert stored["duck"]["l'adresse"] == "1 rue de l'Église"
    assert stored["duck"]["why?"] == "a\\b" and stored["duck"]["a/b~c"] == "s"
    assert json.loads(stored["duck"]["nested"]) == {"k": [1, 2]}
    assert sorted(stored["duck"].values(), key=str) == sorted(
        [v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
         for k, v in rec.items()
         if k not in ("user_id", "event", "timestamp")], key=str)
