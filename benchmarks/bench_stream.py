"""Events per second through ``tribes stream`` and event-to-trigger latency, on loopback.

Builds a segmented synthetic workspace with personas and a CLV fit (cached), starts a
``redis-server`` on a free loopback port and ``tribes stream`` in its own process, with
every rule on (session offers for every segment, so most new sessions fire one) and
online assignment.

* Throughput: ``--events`` messages are written to the stream first, then the consumer
  drains them; events/s = messages / (last acknowledgement - first read), measured on
  the consumer group. Run twice: without landing the events in the events table
  (``--no-sink``: the hot path alone) and with it (every event also ingested in
  micro-batches, as in production).
* Latency: a producer writes at ``--rate`` events/s for ``--seconds`` while the consumer
  runs; latency of a trigger = the time of its entry on the output stream minus that of
  the message that caused it (both Redis stream ids, so one clock, millisecond
  resolution). Prints p50/p90/p99/max and the consumer's peak RSS.

Targets: at least 20,000 events/s; p99 under 100 ms.

    python benchmarks/bench_stream.py                       # 200k events; 20k/s for 10 s
    python benchmarks/bench_stream.py --events 50000 --rate 10000 --seconds 5
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import redis

sys.path.insert(0, str(Path(__file__).parent))
from bench_service import _free_port
from bench_service import build as build_segmented

from tribes.store.db import open_engine

TRIBES = str(Path(sys.executable).parent / "tribes")


def build(data_root: Path, customers: int) -> Path:
    """The service benchmark's workspace plus personas, a CLV fit and session offers."""
    ws = data_root / f"stream-ws-{customers}"
    if (ws / ".built").exists():
        return ws
    base = build_segmented(data_root, customers)
    shutil.rmtree(ws, ignore_errors=True)
    shutil.copytree(base, ws)
    run = [TRIBES, "-q", "--workspace", str(ws)]
    for step in (["personas"], ["clv", "fit"], ["clv", "score"]):
        print("  $ tribes " + " ".join(step), flush=True)
        subprocess.run([*run, *step], check=True)
    from tribes.store.segments import active_version, get_run
    from tribes.workspace import open_workspace

    with open_engine(open_workspace(ws), read_only=True) as engine:
        segments = get_run(engine, active_version(engine) or 0)["segments"]
    offers = ", ".join(f'"{s["segment_id"]}" = "OFFER-{s["segment_id"]}"' for s in segments)
    cfg = ws / "tribes.toml"
    text = cfg.read_text(encoding="utf-8")
    text = text.replace("[realtime.rules.session_offer]       # an offer at the start of a "
                        "session, per segment",
                        f"[realtime.rules.session_offer]\noffers = {{{offers}}}", 1)
    cfg.write_text(text, encoding="utf-8")
    (ws / ".built").touch()
    return ws


def workload(ids: list[str], n: int, start: float, seed: int = 5) -> list[str]:
    """``n`` events as JSON: known and new customers, sessions of views, carts, purchases."""
    rng = random.Random(seed)
    people = ids + [f"NEW{i}" for i in range(len(ids) // 4)]
    kinds = ["page_view", "product_view", "add_to_cart", "purchase", "begin_checkout"]
    weights = [50, 30, 10, 4, 6]
    out = []
    for i in range(n):
        e: dict[str, Any] = {"event_id": f"b{seed}-{i}", "user_id": rng.choice(people),
                             "event": rng.choices(kinds, weights)[0],
                             "ts": round(start + i * 0.01, 3),
                             "product_id": f"P{rng.randrange(500)}",
                             "price": rng.choice([9.0, 25.0, 60.0, 150.0, 480.0])}
        if e["event"] == "purchase":
            e["amount"] = e["price"]
            e["order_id"] = f"O{seed}-{i}"
        out.append(json.dumps(e, separators=(",", ":")))
    return out


def start_redis() -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = redis.Redis(port=port)
    for _ in range(100):
        try:
            r.ping()
            return proc, port
        except redis.ConnectionError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


def push(r: redis.Redis, lines: list[str], stream: str = "events") -> float:
    started = time.perf_counter()
    for i in range(0, len(lines), 1000):
        pipe = r.pipeline(transaction=False)
        for line in lines[i:i + 1000]:
            pipe.xadd(stream, {"data": line})
        pipe.execute()
    return time.perf_counter() - started


def group_info(r: redis.Redis) -> dict[str, Any]:
    for g in r.xinfo_groups("events"):
        name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
        if name == "tribes":
            return g
    return {}


def consumer(ws: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([TRIBES, "-q", "-w", str(ws), "stream", "--redis",
                             f"redis://127.0.0.1:{port}/0", "--consumer", "bench", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()


def throughput(ws: Path, ids: list[str], n: int, sink: bool) -> dict[str, float]:
    rproc, port = start_redis()
    r = redis.Redis(port=port)
    try:
        lines = workload(ids, n, time.time() - n * 0.01 - 60)
        xadd_s = push(r, lines)
        proc = consumer(ws, port, *([] if sink else ["--no-sink"]))
        ps = psutil.Process(proc.pid)
        peak, first, last = 0, None, None
        while proc.poll() is None:
            g = group_info(r)
            read = int(g.get("entries-read") or 0)
            if read and first is None:
                first = time.perf_counter()
            if read >= n and int(g.get("pending", 1)) == 0:
                last = time.perf_counter()
                break
            peak = max(peak, ps.memory_info().rss)
            time.sleep(0.005)
        if first is None or last is None:
            raise SystemExit(proc.stderr.read().decode()[-3000:] if proc.stderr else "failed")
        landing = time.perf_counter()
        stop(proc)  # with the sink, this waits until the last micro-batch is ingested
        landed = time.perf_counter() - landing
        triggers = r.xlen("triggers")
        return {"events": n, "seconds": last - first, "events_per_s": n / (last - first),
                "xadd_per_s": n / xadd_s, "triggers": triggers,
                "peak_rss_mib": peak / 2**20, "final_landing_s": landed}
    finally:
        rproc.terminate()
        rproc.wait()


def latency(ws: Path, ids: list[str], rate: float, seconds: float) -> dict[str, float]:
    rproc, port = start_redis()
    r = redis.Redis(port=port)
    try:
        proc = consumer(ws, port)
        ps = psutil.Process(proc.pid)
        r.xadd("events", {"data": workload(ids, 1, time.time() - 1, seed=99)[0]})
        deadline = time.time() + 120
        while not r.xlen("triggers") and time.time() < deadline:  # warmed up
            time.sleep(0.05)
        n = int(rate * seconds)
        lines = workload(ids, n, time.time() - 5, seed=7)
        first_id = f"{int(time.time() * 1000)}-0"
        chunk = max(1, int(rate / 100))  # every 10 ms
        started = time.perf_counter()
        peak = 0
        for i in range(0, n, chunk):
            due = started + i / rate
            time.sleep(max(0.0, due - time.perf_counter()))
            pipe = r.pipeline(transaction=False)
            for line in lines[i:i + chunk]:
                pipe.xadd("events", {"data": line})
            pipe.execute()
            if i % (chunk * 50) == 0:
                peak = max(peak, ps.memory_info().rss)
        sent_s = time.perf_counter() - started
        while int(group_info(r).get("lag") or 0) > 0 or int(group_info(r).get("pending") or 0):
            time.sleep(0.05)
        drained_s = time.perf_counter() - started
        stop(proc)
        lat = []
        for tid, f in r.xrange("triggers", min=first_id):  # not the warm-up's
            src = f.get(b"source_msg", b"")
            if src:
                lat.append(_id_ms(tid) - _id_ms(src))
        lat.sort()

        def q(p: float) -> float:
            return float(lat[min(len(lat) - 1, int(p * len(lat)))]) if lat else float("nan")

        return {"rate": rate, "events": n, "sent_s": sent_s, "drained_s": drained_s,
                "achieved_per_s": n / drained_s, "triggers": len(lat), "p50_ms": q(0.50),
                "p90_ms": q(0.90), "p99_ms": q(0.99), "max_ms": lat[-1] if lat else 0,
                "peak_rss_mib": peak / 2**20}
    finally:
        rproc.terminate()
        rproc.wait()


def _id_ms(stream_id: bytes) -> int:
    return int(stream_id.split(b"-")[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--customers", type=int, default=5000)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--rates", default="5000,10000,20000",
                    help="producer rates (events/s) of the latency runs")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--data", type=Path, default=Path("bench-data"))
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="throughput runs of each kind "
                    "(the median is compared with the target: shared machines are noisy)")
    a = ap.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    os.environ.setdefault("TRIBES_LOG", "warning")
    print(f"workspace of {a.customers:,} customers ...", flush=True)
    ws = build(a.data, a.customers)
    from bench_service import segmented_ids

    ids = segmented_ids(ws)
    print(f"\nthroughput, {a.events:,} events queued first, then drained:")
    rates = {False: float("nan"), True: float("nan")}
    for sink in () if a.skip_throughput else (False, True):
        label = "with landing in the events table" if sink else "hot path (--no-sink)"
        runs = []
        for _ in range(a.repeat):
            shutil.rmtree(ws / ".tmp" / "stream", ignore_errors=True)
            t = throughput(ws, ids, a.events, sink)
            runs.append(t["events_per_s"])
            print(f"  {label:34s} {t['events_per_s']:>9,.0f} events/s  ({t['seconds']:.2f} s, "
                  f"{t['triggers']:,} triggers, peak RSS {t['peak_rss_mib']:.0f} MiB"
                  + (f", last landing {t['final_landing_s']:.1f} s" if sink else "")
                  + f"; producer XADD {t['xadd_per_s']:,.0f} msg/s)", flush=True)
        rates[sink] = sorted(runs)[len(runs) // 2]
        print(f"  {label:34s} median {rates[sink]:,.0f} events/s of {len(runs)} runs "
              f"(range {min(runs):,.0f} to {max(runs):,.0f})")
    print(f"\nevent-to-trigger latency, {a.seconds:g} s at each rate (with landing):")
    lats = {}
    for rate in (float(x) for x in a.rates.split(",")):
        lt = latency(ws, ids, rate, a.seconds)
        lats[rate] = lt
        print(f"  {rate:>7,.0f}/s offered, {lt['achieved_per_s']:>7,.0f}/s done: "
              f"{lt['triggers']:,} triggers, p50 {lt['p50_ms']:.0f} ms, p90 "
              f"{lt['p90_ms']:.0f} ms, p99 {lt['p99_ms']:.0f} ms, max {lt['max_ms']:.0f} ms "
              f"(RSS {lt['peak_rss_mib']:.0f} MiB)", flush=True)
    ok = [f"{r:,.0f}/s: {'met' if v['p99_ms'] < 100 else 'NOT met'}"
          for r, v in sorted(lats.items())]
    print(f"\ntargets: >= 20,000 events/s (median): "
          f"{'met' if rates[True] >= 20_000 else 'NOT met'} with landing, "
          f"{'met' if rates[False] >= 20_000 else 'NOT met'} without; p99 < 100 ms at "
          + ", ".join(ok))


if __name__ == "__main__":
    main()
