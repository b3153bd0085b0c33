"""Segment lookups per second through ``tribes serve`` on loopback: latency and throughput.

Builds a segmented synthetic workspace (cached), starts ``tribes serve`` in its own
process, and sends ``GET /v1/customers/{id}/segment`` for random customers at a fixed
rate (open loop: each request is due at its own time, and its latency counts from
then, so a stalled server cannot hide queued requests). Prints p50/p90/p99/max
latency, the achieved rate, errors and the server's peak RSS.

Target: p99 under 20 ms at 500 requests/s.

    python benchmarks/bench_service.py                  # 500 req/s for 20 s
    python benchmarks/bench_service.py --rate 1000 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from tribes.store.db import open_engine

TRIBES = str(Path(sys.executable).parent / "tribes")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build(data_root: Path, customers: int) -> Path:
    """A segmented workspace of ``customers`` synthetic customers (cached)."""
    from tribes.synth import SynthConfig, generate

    ws = data_root / f"service-ws-{customers}"
    if (ws / ".built").exists():
        return ws
    shutil.rmtree(ws, ignore_errors=True)
    data = data_root / f"service-data-{customers}"
    if not (data / "manifest.json").exists():
        generate(SynthConfig(out=data, customers=customers, days=90, seed=21))
    run = [TRIBES, "-q", "--workspace", str(ws)]
    steps = [["init", str(ws)],
             [*run, "ingest", str(data / "web"), "--source", "web"],
             [*run, "ingest", str(data / "purchases.parquet"), "--source", "pos",
              "--event-type", "purchase", "--map", "ts=sold_at,customer_id=member_no"],
             [*run, "run"], [*run, "segment", "--k", "5"]]
    for step in steps:
        print("  $ tribes " + " ".join(step[1:] if step[0] == TRIBES else step), flush=True)
        subprocess.run([TRIBES, *step] if step[0] == "init" else step, check=True)
    shutil.copy(data / "ground_truth.csv", ws / "bench_ids.csv")
    (ws / ".built").touch()
    return ws


def segmented_ids(ws: Path) -> list[str]:
    """Raw customer ids (from the generator's ground truth) that have a segment."""
    from tribes.privacy.pseudonyms import pseudonym
    from tribes.store.segments import active_segments
    from tribes.workspace import open_workspace

    w = open_workspace(ws)
    with open_engine(w, read_only=True) as engine:
        keys = set(engine.execute(active_segments(engine).select("customer_key"))
                   ["customer_key"])
    secret = w.secret()
    with open(ws / "bench_ids.csv", encoding="utf-8") as fh:
        raw = [r["customer_id"] for r in csv.DictReader(fh)]
    return [r for r in raw if pseudonym(r, secret) in keys]


class Connection:
    """A minimal HTTP/1.1 keep-alive client: the load generator shares the machine with the
    server, so it must cost as little CPU per request as possible."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 host: str, key: str) -> None:
        self.reader, self.writer = reader, writer
        self.head = f"Host: {host}\r\nAuthorization: Bearer {key}\r\n\r\n"

    async def get(self, path: str) -> int:
        self.writer.write(f"GET {path} HTTP/1.1\r\n{self.head}".encode())
        header = await self.reader.readuntil(b"\r\n\r\n")
        status = int(header[9:12])
        length = 0
        for line in header.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return status


async def drive(port: int, key: str, ids: list[str], rate: float, seconds: float,
                connections: int) -> tuple[list[float], int, float]:
    n = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    conns = []
    for _ in range(connections):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        conns.append(Connection(r, w, f"127.0.0.1:{port}", key))
    for c in conns:  # warm the connections and the server's index
        await c.get(f"/v1/customers/{ids[0]}/segment")
    start = time.perf_counter()
    due_times = iter(range(n))

    async def worker(conn: Connection) -> None:
        # one worker per connection takes the next due request; a request that waits for
        # a free connection counts that wait in its latency (no coordinated omission)
        nonlocal errors
        for i in due_times:
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            try:
                ok = await conn.get(f"/v1/customers/{random.choice(ids)}/segment") == 200
            except (OSError, asyncio.IncompleteReadError, ValueError):
                ok = False
            latencies.append(time.perf_counter() - due)
            errors += not ok

    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - start
    for c in conns:
        c.writer.close()
    return latencies, errors, elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--rate", type=float, default=500.0, help="requests per second")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--data", type=Path, default=Path("bench-data"))
    args = ap.parse_args()
    ws = build(args.data, args.customers)
    from tribes.privacy.keys import create_key

    toml = ws / "tribes.toml"
    text = toml.read_text(encoding="utf-8")
    # the benchmark measures lookups, not the per-key rate limit
    text = text.replace("rate_limit = 100.0", "rate_limit = 1000000.0").replace(
        "rate_burst = 200", "rate_burst = 1000000")
    toml.write_text(text, encoding="utf-8")
    key, _ = create_key(ws, name=f"bench-{os.getpid()}", role="analyst")
    ids = segmented_ids(ws)
    port = _free_port()
    server = subprocess.Popen([TRIBES, "-q", "--workspace", str(ws), "serve", "--port",
                               str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/v1/health", timeout=1).status_code == 200:
                    break
            if time.time() > deadline or server.poll() is not None:
                raise SystemExit("the service did not start")
            time.sleep(0.2)
        proc = psutil.Process(server.pid)
        latencies, errors, elapsed = asyncio.run(
            drive(port, key, ids, args.rate, args.seconds, args.connections))
        rss = proc.memory_info().rss / 2**20
    finally:
        server.terminate()
        server.wait(timeout=30)
    lat = sorted(latencies)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000

    print()
    print(f"segment lookups, {len(ids):,} customers, {args.connections} connections, "
          f"target {args.rate:,.0f} req/s for {args.seconds:.0f} s")
    print(f"  requests {len(lat):,}  errors {errors}  achieved {len(lat) / elapsed:,.0f} req/s")
    print(f"  latency ms: p50 {pct(0.50):.2f}  p90 {pct(0.90):.2f}  p99 {pct(0.99):.2f}  "
          f"max {lat[-1] * 1000:.2f}")
    print(f"  server RSS {rss:,.0f} MiB")
    verdict = "met" if pct(0.99) < 20 and len(lat) / elapsed >= 0.98 * args.rate else "not met"
    print(f"  p99 under 20 ms at {args.rate:,.0f} req/s (target: at 500): {verdict}")


if __name__ == "__main__":
    main()
