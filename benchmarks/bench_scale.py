"""The demo pipeline at scale: 50M events on one machine, the time of each step.

Generates the synthetic data of ``make demo`` for as many customers as give about
``--events`` events (cached under ``bench-data/``), then runs the demo's steps on a new
workspace, each in a fresh process: every source ingested, ``run`` (prep, features,
cohorts, monitoring), ``segment``, ``personas``, ``clv fit`` / ``score`` / ``churn`` and
``report``. Prints each step's seconds, CPU seconds and peak RSS (the process and its
children), the events and customers it ended with, and the load average before and
after (the machine may be shared: CPU seconds depend far less on that than seconds).

    python benchmarks/bench_scale.py                        # about 50M events
    python benchmarks/bench_scale.py --events 2000000       # a quick look
    python benchmarks/bench_scale.py --keep                 # keep the workspace after
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _measure import Run, measure_tree

EVENTS_PER_CUSTOMER = 54.0  # all sources, measured on the synthetic data


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min; {os.cpu_count()} cores)"


def data_for(data: Path, customers: int) -> tuple[Path, float]:
    """The synthetic files for ``customers`` (generated once), and the seconds it took
    (0 when cached)."""
    src = data / f"scale-data-{customers}"
    if (src / "manifest.json").exists():
        return src, 0.0
    shutil.rmtree(src, ignore_errors=True)
    print(f"generating {customers:,} customers ...", flush=True)
    started = time.perf_counter()
    subprocess.run([*tribes(), "synth", "--customers", str(customers), "--days", "180",
                    "--seed", "7", "--out", str(src)], check=True, stdout=subprocess.DEVNULL)
    return src, time.perf_counter() - started


def tribes() -> list[str]:
    return [sys.executable, "-m", "tribes", "-q"]


def steps(src: Path, ws: Path, report: Path) -> list[tuple[str, list[str]]]:
    w = [*tribes(), "-w", str(ws)]
    return [
        ("init", [*tribes(), "init", str(ws)]),
        ("ingest web (CSV)", [*w, "ingest", str(src / "web"), "--source", "web"]),
        ("ingest app (JSON lines)", [*w, "ingest", str(src / "app"), "--source", "app"]),
        ("ingest purchases (Parquet)", [*w, "ingest", str(src / "purchases.parquet"),
                                        "--source", "pos", "--event-type", "purchase",
                                        "--map", "ts=sold_at,customer_id=member_no"]),
        ("ingest support (CSV)", [*w, "ingest", str(src / "support.csv"), "--source",
                                  "support", "--event-type", "support_contact", "--map",
                                  "event_id=ticket_id,ts=created", "--ts-format",
                                  "%d/%m/%Y %H:%M"]),
        ("ingest customers", [*w, "ingest", str(src / "customers.csv"), "--kind",
                              "customers"]),
        ("ingest consents", [*w, "ingest", str(src / "consents.csv"), "--kind", "consents"]),
        ("run (prep, features, monitoring)", [*w, "run"]),
        ("segment (kmeans, k auto)", [*w, "segment"]),
        ("clv fit", [*w, "clv", "fit"]),
        ("clv score", [*w, "clv", "score", "--horizon", "52w"]),
        ("clv churn", [*w, "clv", "churn", "--days", "30"]),
        ("personas", [*w, "personas"]),
        ("report", [*w, "report", "--out", str(report)]),
    ]


def counts(ws: Path) -> tuple[int, int]:
    out = subprocess.run([*tribes(), "-w", str(ws), "status", "--json"], check=True,
                         capture_output=True, text=True).stdout
    tables = json.loads(out).get("tables", {})

    def rows(name: str) -> int:
        t = tables.get(name)
        return int(t.get("rows", 0) if isinstance(t, dict) else t or 0)

    return rows("events"), rows("customer_features")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=50_000_000)
    ap.add_argument("--data", type=Path, default=Path("bench-data"))
    ap.add_argument("--keep", action="store_true", help="keep the workspace afterwards")
    args = ap.parse_args()
    customers = max(100, round(args.events / EVENTS_PER_CUSTOMER))
    args.data.mkdir(parents=True, exist_ok=True)
    src, generated = data_for(args.data, customers)
    ws = args.data / f"scale-ws-{customers}"
    shutil.rmtree(ws, ignore_errors=True)
    report = args.data / f"scale-report-{customers}.html"
    print(f"load before : {load()}", flush=True)
    results: list[tuple[str, Run]] = []
    total = time.perf_counter()
    for name, cmd in steps(src, ws, report):
        r = measure_tree(cmd)
        print(f"  {name}: {r.seconds:.1f} s, {r.cpu_seconds:.1f} CPU s, "
              f"{r.peak_rss_mib:,.0f} MiB", flush=True)
        results.append((name, r))
    total = time.perf_counter() - total
    print(f"load after  : {load()}", flush=True)
    events, known = counts(ws)
    size = sum(f.stat().st_size for f in ws.rglob("*") if f.is_file())
    print(f"\n{events:,} events, {known:,} customers with features "
          f"({customers:,} generated{'' if not generated else f' in {generated:.0f} s'}); "
          f"workspace {size / 2**30:.2f} GiB; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{'step':36s} {'seconds':>9s} {'CPU s':>8s} {'peak RSS':>10s}")
    for name, r in results:
        print(f"{name:36s} {r.seconds:9.1f} {r.cpu_seconds:8.1f} "
              f"{r.peak_rss_mib:7,.0f} MiB")
    peak = max(r.peak_rss_mib for _, r in results)
    print(f"{'the whole pipeline':36s} {total:9.1f} "
          f"{sum(r.cpu_seconds for _, r in results):8.1f} {peak:7,.0f} MiB (highest step)")
    print(f"report: {report}")
    if not args.keep:
        shutil.rmtree(ws, ignore_errors=True)


if __name__ == "__main__":
    main()
