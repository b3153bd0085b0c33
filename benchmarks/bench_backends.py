"""The same pipeline, ingest → prep → features, on DuckDB and on PySpark local[2].

Generates synthetic data of about ``--events`` events (all sources; cached between
runs), then for each engine, in a fresh workspace and fresh processes: ingests every
source, runs ``tribes run`` (stitching, sessions, features). Prints the seconds of each
step, the total, the peak RSS of the process tree (the Spark JVM included), and the
ratio Spark / DuckDB.

    python benchmarks/bench_backends.py                    # 10M events
    python benchmarks/bench_backends.py --events 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _measure import measure_tree

EVENTS_PER_CUSTOMER = 54.0  # all sources, measured on the synthetic data
SPARK_TOML = """[engine]
backend = "pyspark"
spark_master = "local[2]"
[engine.spark]
"spark.driver.memory" = "4g"
"spark.sql.shuffle.partitions" = 16
"""


def generate(data: Path, events: int) -> Path:
    from tribes.synth import SynthConfig
    from tribes.synth import generate as synth

    target = data / f"backends-{events}"
    if not (target / "manifest.json").exists():
        shutil.rmtree(target, ignore_errors=True)
        customers = max(200, int(events / EVENTS_PER_CUSTOMER))
        print(f"generating ~{events:,} events ({customers:,} customers) ...", flush=True)
        synth(SynthConfig(out=target, customers=customers, days=180, seed=13,
                          chunk_customers=20000))
    return target


def steps(data: Path) -> list[tuple[str, list[str]]]:
    return [
        ("ingest web", ["ingest", str(data / "web"), "--source", "web"]),
        ("ingest app", ["ingest", str(data / "app"), "--source", "app"]),
        ("ingest pos", ["ingest", str(data / "purchases.parquet"), "--source", "pos",
                        "--event-type", "purchase", "--map", "ts=sold_at,customer_id=member_no"]),
        ("ingest customers", ["ingest", str(data / "customers.csv"), "--kind", "customers"]),
        ("ingest consents", ["ingest", str(data / "consents.csv"), "--kind", "consents"]),
        ("prep + features", ["run"]),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--data", type=Path, default=Path("bench-data"))
    args = ap.parse_args()
    tribes = str(Path(sys.executable).parent / "tribes")
    data = generate(args.data, args.events)
    results: dict[str, list[tuple[str, float, float]]] = {}
    loaded: dict[str, int] = {}
    for backend in ("duckdb", "pyspark"):
        ws = args.data / f"backends-ws-{backend}"
        shutil.rmtree(ws, ignore_errors=True)
        ws.mkdir(parents=True)
        if backend == "pyspark":
            (ws / "tribes.toml").write_text(SPARK_TOML, encoding="utf-8")
        measure_tree([tribes, "-q", "init", str(ws)])
        rows, n = [], 0
        for name, cmd in steps(data):
            run = measure_tree([tribes, "-q", "--workspace", str(ws), *cmd, "--json"],
                               env=dict(os.environ))
            doc = json.loads(run.stdout.strip().splitlines()[-1])
            n += int(doc.get("loaded", 0) or 0) if name.startswith("ingest") else 0
            rows.append((name, run.seconds, run.peak_rss_mib))
            print(f"  {backend:8} {name:18} {run.seconds:8.1f} s {run.peak_rss_mib:8,.0f} MiB",
                  flush=True)
        results[backend], loaded[backend] = rows, n
        shutil.rmtree(ws, ignore_errors=True)
    assert loaded["duckdb"] == loaded["pyspark"], loaded
    print(f"\nrows loaded: {loaded['duckdb']:,} on both engines\n")
    print(f"{'step':18} {'duckdb s':>9} {'spark s':>9} {'ratio':>6} {'duckdb MiB':>11} "
          f"{'spark MiB':>10}")
    for (name, ds, dm), (_, ss, sm) in zip(results["duckdb"], results["pyspark"], strict=True):
        print(f"{name:18} {ds:>9.1f} {ss:>9.1f} {ss / ds:>6.2f} {dm:>11,.0f} {sm:>10,.0f}")
    td = sum(r[1] for r in results["duckdb"])
    ts = sum(r[1] for r in results["pyspark"])
    pd_ = max(r[2] for r in results["duckdb"])
    ps = max(r[2] for r in results["pyspark"])
    print(f"{'total':18} {td:>9.1f} {ts:>9.1f} {ts / td:>6.2f} {pd_:>11,.0f} {ps:>10,.0f}")


if __name__ == "__main__":
    main()
