"""No stage brings an event table to the Spark driver.

The whole pipeline (ingest, run, segment, CLV, personas, journeys, report) runs in a
fresh JVM whose driver accepts at most 1 MiB of results per action
(``spark.driver.maxResultSize``, its smallest allowed value), on events that take many
times that in memory. A control in the same session shows the limit bites: collecting
the events table fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from .conftest import require_spark

pytestmark = pytest.mark.slow

LIMIT_BYTES = 1 << 20
LIMIT_TOML = """
[engine]
backend = "pyspark"
spark_master = "local[2]"
[engine.spark]
"spark.driver.maxResultSize" = "1m"
"spark.driver.memory" = "1g"
"spark.sql.shuffle.partitions" = 2
"spark.default.parallelism" = 2
"""

# runs in its own process: the driver limit is fixed when the JVM starts
SCRIPT = r"""
import contextlib, io, json, sys
from pathlib import Path
from tribes.cli import main
from tribes.workspace import open_workspace
from tribes.store.db import init_workspace
from tribes.store.db import open_engine

ws, data, out = (Path(a) for a in sys.argv[1:4])
init_workspace(ws)
steps = [
    ["ingest", data / "web", "--source", "web"],
    ["ingest", data / "app", "--source", "app"],
    ["ingest", data / "purchases.parquet", "--source", "pos", "--event-type", "purchase",
     "--map", "ts=sold_at,customer_id=member_no"],
    ["ingest", data / "customers.csv", "--kind", "customers"],
    ["run"],
    ["segment"],
    ["clv", "fit"],
    ["personas"],
    ["journeys", "paths"],
    ["report", "--out", out / "report.html"],
]
done = []
for args in steps:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["-q", "--workspace", str(ws), *map(str, args)])
    if code != 0:
        print(json.dumps({"failed": args[0], "output": buf.getvalue()[-3000:]}))
        sys.exit(1)
    done.append(" ".join(map(str, args[:2])))
# the control: an action that does collect every event must hit the limit
control = "collected"
with open_engine(open_workspace(ws)) as engine:
    try:
        engine.to_pyarrow(engine.table("events"))
    except Exception as exc:
        hits = [ln for ln in str(exc).splitlines() if "maxResultSize" in ln]
        control = hits[0] if hits else str(exc)[:2000]
print(json.dumps({"done": done, "control": control}))
"""


def test_pipeline_runs_with_a_driver_limit_far_below_the_event_data(tmp_path: Path) -> None:
    require_spark()
    from tribes.synth import SynthConfig, generate

    data, ws, out = tmp_path / "data", tmp_path / "ws", tmp_path / "out"
    generate(SynthConfig(out=data, customers=1500, days=120, seed=3))
    ws.mkdir()
    out.mkdir()
    # the workspace is opened in the child only: a Spark session started here would keep
    # the 1 MiB limit for every later Spark test of this process
    (ws / "tribes.toml").write_text(LIMIT_TOML, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(ws), str(data), str(out)],
                          capture_output=True, text=True, timeout=1500)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert proc.returncode == 0 and lines, (proc.stdout[-3000:], proc.stderr[-3000:])
    result = json.loads(lines[-1])
    assert len(result["done"]) == 10
    assert (out / "report.html").stat().st_size > 10_000
    # the events as the driver would hold them: read straight from the warehouse files
    events = pq.read_table(ws / "warehouse" / "events")
    assert events.num_rows > 40_000
    assert events.nbytes > 10 * LIMIT_BYTES, events.nbytes
    assert "maxResultSize" in result["control"], result["control"]
