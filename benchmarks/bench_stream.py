"""``tribes stream`` on loopback: capacity of one and two consumers, latency at half the
capacity, and a consumer killed mid-run. One run prints every figure and the targets.

Builds a segmented synthetic workspace with personas and a CLV fit (cached), and for each
measurement a fresh copy of it and a ``redis-server`` on a free loopback port. Consumers
are ``tribes stream`` processes (every rule on, session offers for every segment, online
assignment, landing in the events table), all in the consumer group ``tribes``; the
producer, Redis and the consumers share the machine.

* Capacity: ``--events`` messages are written while the group's position is held past
  them, then released at once to the consumers, which drain them; events/s = messages /
  (last acknowledgement - release). The consumers have read one warm-up message first, so
  their start (imports, the workspace reference, churn timers) is not counted. Runs with
  1 and with 2 consumer processes, alternated ``--repeat`` times; medians and the ratio 2/1.
  Peak RSS of each consumer process (sampled; its landing child not included). Each run
  waits (``--quiet-wait``) for the rest of the machine to be quiet, and prints the cores
  other work used while it ran: on a shared machine, that is the noise.
* Latency at half the capacity: one consumer, a producer writing at half the measured
  1-consumer capacity for ``--seconds``; latency of a trigger = the time of its entry on
  the output stream minus that of the message that caused it (Redis stream ids: one
  clock, millisecond resolution). p50/p90/p99/max.
* Kill: 2 consumers drain a backlog; one is killed (SIGKILL) after a third, holding
  unacknowledged messages; the survivor claims them once they have been pending
  ``--claim-idle``. Prints events applied (in Redis' seen sets) and landed (events table)
  vs sent, triggers delivered twice (by trigger id), and the time from the kill until
  every message the killed one held was acknowledged.
* ``--baseline REV``: the 1-consumer capacity of the code at git revision REV too
  (``git archive``, run from a temporary directory), alternated with this tree's, and
  whether both fired the same triggers.

Targets: one consumer >= 10,000 events/s; p99 < 100 ms at half of it; 2 consumers more
than 1; the kill loses nothing and repeats nothing.

    python benchmarks/bench_stream.py                       # about three minutes
    python benchmarks/bench_stream.py --events 50000 --repeat 1 --seconds 5
    python benchmarks/bench_stream.py --baseline b5398f3    # before/after, side by side
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis

sys.path.insert(0, str(Path(__file__).parent))
from bench_service import _free_port
from bench_service import build as build_segmented

from tribes.store.db import open_engine

TRIBES = str(Path(sys.executable).parent / "tribes")
FAR = "9999999999999-0"  # a group position past anything written: nothing is delivered


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


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores, /proc/stat)."""
    with open("/proc/stat", encoding="ascii") as fh:
        f = [int(x) for x in fh.readline().split()[1:8]]
    return (f[0] + f[1] + f[2] + f[5] + f[6]) / os.sysconf("SC_CLK_TCK")


def wait_quiet(most: float, quiet: float = 0.3) -> float:
    """Wait (up to ``most`` seconds) for a second in which the machine uses less than
    ``quiet`` of a core; the cores it used in the last second."""
    deadline = time.monotonic() + most
    while True:
        busy = machine_busy()
        time.sleep(1.0)
        used = machine_busy() - busy
        if used < quiet or time.monotonic() > deadline:
            return used


def group_info(r: redis.Redis) -> dict[str, Any]:
    for g in r.xinfo_groups("events"):
        name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
        if name == "tribes":
            return dict(g)
    return {}


def consumer_info(r: redis.Redis) -> dict[str, dict[str, Any]]:
    out = {}
    for c in r.xinfo_consumers("events", "tribes"):
        name = c["name"].decode() if isinstance(c["name"], bytes) else c["name"]
        out[name] = dict(c)
    return out


# ---------------------------------------------------------------------- one setting
@dataclass
class Setup:
    """A fresh copy of the workspace and a fresh Redis, consumers of one group."""

    ws: Path
    port: int
    r: redis.Redis
    env: dict[str, str]
    sink: bool
    redis_pid: int = 0
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)
    sampled: float = 0.0
    mark: tuple[float, float, float] = (0.0, 0.0, 0.0)
    cpu_seen: dict[int, float] = field(default_factory=dict)

    def own_cpu(self) -> float:
        """CPU seconds used so far by this benchmark, Redis and the consumers (with their
        landing processes)."""
        me = resource.getrusage(resource.RUSAGE_SELF)
        pids = [self.redis_pid, *(p.pid for p in self.procs.values() if p.poll() is None)]
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                top = psutil.Process(pid)
                for q in (top, *top.children(recursive=True)):
                    t = q.cpu_times()
                    self.cpu_seen[q.pid] = t.user + t.system
        # a process that is gone (killed) counts with what it had used when last seen
        return me.ru_utime + me.ru_stime + sum(self.cpu_seen.values())

    def start_clock(self) -> None:
        """From now on, count the CPU the rest of the machine uses (other work)."""
        self.mark = (time.perf_counter(), machine_busy(), self.own_cpu())

    def others(self) -> float:
        """Cores used by other work on the machine since :meth:`start_clock`."""
        t0, busy0, own0 = self.mark
        return max(machine_busy() - busy0 - (self.own_cpu() - own0), 0.0) / max(
            time.perf_counter() - t0, 1e-9)

    def start(self, name: str, *extra: str) -> None:
        cmd = [sys.executable, "-m", "tribes", "-q", "-w", str(self.ws), "stream", "--redis",
               f"redis://127.0.0.1:{self.port}/0", "--consumer", name, "--json", *extra]
        if not self.sink:
            cmd.append("--no-sink")
        self.procs[name] = subprocess.Popen(cmd, env=self.env, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE)
        self.peak[name] = 0

    def sample(self) -> None:
        """Peak RSS of each consumer, sampled every 0.1 s at most."""
        if time.perf_counter() - self.sampled < 0.1:
            return
        self.sampled = time.perf_counter()
        self.own_cpu()
        for name, p in self.procs.items():
            with contextlib.suppress(psutil.Error):
                if p.poll() is None:
                    self.peak[name] = max(self.peak[name],
                                          psutil.Process(p.pid).memory_info().rss)

    def check_alive(self, *names: str) -> None:
        for name in names or tuple(self.procs):
            p = self.procs[name]
            if p.poll() is not None and p.returncode != -signal.SIGKILL:
                err = p.stderr.read().decode()[-3000:] if p.stderr else ""
                raise SystemExit(f"consumer {name} stopped ({p.returncode}): {err}")

    def warm_up(self, ids: list[str], ts: float) -> str:
        """One message (event time ``ts``: before the workload's) through the group (the
        consumers are ready, churn timers are set), then the group's position is held
        past anything written. Returns its id."""
        first = self.r.xadd("events", {"data": workload(ids, 1, ts, 99)[0]})
        warm = first.decode() if isinstance(first, bytes) else str(first)
        deadline = time.monotonic() + 300
        while True:
            g = group_info(self.r)
            if (len(consumer_info(self.r)) >= len(self.procs)
                    and int(g.get("entries-read") or 0) >= 1 and int(g.get("pending", 1)) == 0):
                break
            self.check_alive()
            if time.monotonic() > deadline:
                raise SystemExit("the consumers did not start")
            time.sleep(0.02)
        self.r.xgroup_setid("events", "tribes", FAR)
        self.settle()
        return warm

    def settle(self, quiet: float = 0.2, most: float = 20.0) -> None:
        """Wait until the consumers and their children (the landing process starts in
        the background) use less than ``quiet`` of a core (or ``most`` seconds)."""
        deadline = time.monotonic() + most

        def cpu() -> float:
            total = 0.0
            for p in self.procs.values():
                with contextlib.suppress(psutil.Error):
                    tree = psutil.Process(p.pid)
                    for q in (tree, *tree.children(recursive=True)):
                        t = q.cpu_times()
                        total += t.user + t.system
            return total

        before = cpu()
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = cpu()
            if now - before < quiet * 0.5:
                return
            before = now

    def release(self, warm: str) -> float:
        """Deliver everything written after the warm-up message."""
        self.r.xgroup_setid("events", "tribes", warm, entries_read=1)
        return time.perf_counter()

    def stop(self) -> tuple[dict[str, dict[str, Any]], float]:
        """SIGINT to every consumer still running: each finishes its batch and lands what
        it spooled. Their --json results, and the seconds until the last one exited."""
        started = time.perf_counter()
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        results = {}
        for name, p in self.procs.items():
            try:
                out, err = p.communicate(timeout=300)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
            if p.returncode == 0 and out.strip():
                results[name] = json.loads(out.decode().strip().splitlines()[-1])
            elif p.returncode not in (0, -signal.SIGKILL):
                raise SystemExit(f"consumer {name} failed ({p.returncode}): "
                                 f"{err.decode()[-3000:]}")
        return results, time.perf_counter() - started


@contextlib.contextmanager
def setup(base: Path, *, sink: bool, pythonpath: str | None = None,
          config: dict[str, str] | None = None) -> Iterator[Setup]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-stream-", dir=base.parent))
    ws = tmp / "ws"
    shutil.copytree(base, ws, ignore=shutil.ignore_patterns(".tmp"))
    cfg = ws / "tribes.toml"
    text = cfg.read_text(encoding="utf-8")
    for old, new in (config or {}).items():
        assert old in text, old
        text = text.replace(old, new, 1)
    cfg.write_text(text, encoding="utf-8")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    rproc, port = start_redis()
    r = redis.Redis(port=port)
    r.xgroup_create("events", "tribes", id="0", mkstream=True)
    s = Setup(ws, port, r, env, sink, rproc.pid)
    try:
        yield s
    finally:
        for p in s.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        rproc.terminate()
        rproc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def drain(s: Setup, n: int, released: float, *, until: float = 600) -> float:
    """Wait until the n messages after the warm-up are acknowledged; their seconds."""
    while True:
        g = group_info(s.r)
        if int(g.get("entries-read") or 0) >= n + 1 and int(g.get("pending", 1)) == 0 \
                and int(g.get("lag") or 0) == 0:
            return time.perf_counter() - released
        s.check_alive()
        s.sample()
        if time.perf_counter() - released > until:
            raise SystemExit("the backlog was not drained")
        time.sleep(0.01)


def trigger_ids(r: redis.Redis) -> list[str]:
    out = []
    last = "-"
    while True:
        chunk = r.xrange("triggers", min=last, count=10_000)
        out += [f[b"id"].decode() for _, f in chunk]
        if len(chunk) < 10_000:
            return out
        last = "(" + chunk[-1][0].decode()


# ---------------------------------------------------------------------- measurements
def capacity(base: Path, lines: list[str], k: int, *, sink: bool,
             pythonpath: str | None = None, ids: list[str],
             quiet_wait: float = 0.0) -> dict[str, Any]:
    with setup(base, sink=sink, pythonpath=pythonpath) as s:
        for i in range(k):
            s.start(f"c{i + 1}")
        warm = s.warm_up(ids, json.loads(lines[0])["ts"] - 3600)
        push(s.r, lines)
        wait_quiet(quiet_wait)
        s.start_clock()
        released = s.release(warm)
        seconds = drain(s, len(lines), released)
        others = s.others()
        results, landing = s.stop()
        trig = trigger_ids(s.r)
    n = len(lines)
    return {"consumers": k, "events": n, "seconds": seconds, "events_per_s": n / seconds,
            "triggers": trig, "peak_rss_mib": [s.peak[x] / 2**20 for x in sorted(s.peak)],
            "reapplied": sum(x.get("reapplied", 0) for x in results.values()),
            "last_landing_s": landing, "others_cores": others}


def latency(base: Path, ids: list[str], rate: float, seconds: float, *,
            sink: bool) -> dict[str, Any]:
    with setup(base, sink=sink) as s:
        s.start("c1")
        n = int(rate * seconds)
        lines = workload(ids, n, time.time() - 5, seed=7)
        warm = s.warm_up(ids, time.time() - 3600)
        s.release(warm)
        first_id = f"{int(time.time() * 1000)}-0"
        chunk = max(1, int(rate / 200))  # every 5 ms
        s.start_clock()
        started = time.perf_counter()
        for i in range(0, n, chunk):
            due = started + i / rate
            time.sleep(max(0.0, due - time.perf_counter()))
            pipe = s.r.pipeline(transaction=False)
            for line in lines[i:i + chunk]:
                pipe.xadd("events", {"data": line})
            pipe.execute()
            if i % (chunk * 20) == 0:
                s.sample()
        sent_s = time.perf_counter() - started
        drained_s = drain(s, n, started)
        others = s.others()
        s.stop()
        lat = []
        for tid, f in s.r.xrange("triggers", min=first_id):  # not the warm-up's
            src = f.get(b"source_msg", b"")
            if src:
                lat.append(_id_ms(tid) - _id_ms(src))
    lat.sort()

    def q(p: float) -> float:
        return float(lat[min(len(lat) - 1, int(p * len(lat)))]) if lat else float("nan")

    return {"rate": rate, "events": n, "sent_s": sent_s, "achieved_per_s": n / drained_s,
            "triggers": len(lat), "p50_ms": q(0.50), "p90_ms": q(0.90), "p99_ms": q(0.99),
            "max_ms": lat[-1] if lat else 0, "peak_rss_mib": s.peak["c1"] / 2**20,
            "others_cores": others}


def kill_test(base: Path, lines: list[str], ids: list[str], *, claim_idle: str,
              sink: bool) -> dict[str, Any]:
    n = len(lines)
    with setup(base, sink=sink, config={'claim_idle = "60s"':
                                        f'claim_idle = "{claim_idle}"'}) as s:
        s.start("victim")
        s.start("survivor")
        warm = s.warm_up(ids, json.loads(lines[0])["ts"] - 3600)
        push(s.r, lines)
        s.start_clock()
        released = s.release(warm)
        while True:  # a third read, and the victim holds messages
            s.check_alive()
            s.sample()
            read = int(group_info(s.r).get("entries-read") or 0)
            held = int(consumer_info(s.r).get("victim", {}).get("pending") or 0)
            if read >= n // 3 and held:
                break
            if read >= n:
                raise SystemExit("the backlog was drained before the victim was killed")
            time.sleep(0.002)
        s.procs["victim"].send_signal(signal.SIGKILL)
        killed = time.perf_counter()
        s.procs["victim"].wait()
        held_ids = {x["message_id"] for x in s.r.xpending_range(
            "events", "tribes", "-", "+", count=n + 10, consumername="victim")}
        recovered = 0.0 if not held_ids else None
        while recovered is None:
            s.check_alive()
            s.sample()
            still = s.r.xpending_range("events", "tribes", "-", "+", count=n + 10)
            if not held_ids.intersection(x["message_id"] for x in still):
                recovered = time.perf_counter() - killed
            time.sleep(0.01)
        drained = drain(s, n, released)
        others = s.others()
        results, _ = s.stop()  # the survivor lands its events and the victim's spool
        stats = results["survivor"]
        eids = [json.loads(x)["event_id"] for x in lines]
        applied = [False] * n
        for key in s.r.keys("tribes:seen:*"):
            hit = s.r.smismember(key, eids)
            applied = [a or bool(h) for a, h in zip(applied, hit, strict=True)]
        trig = trigger_ids(s.r)
        landed = landed_once = None
        if sink:
            from tribes.workspace import open_workspace

            with open_engine(open_workspace(s.ws), read_only=True) as engine:
                t = engine.table("events")
                mine = t.filter(t.source == "stream", t.event_id.startswith("b11-"))
                landed = int(engine.scalar(mine.count()))
                landed_once = int(engine.scalar(mine.event_id.nunique()))
    return {"events": n, "applied": sum(applied), "triggers": len(trig),
            "duplicate_triggers": len(trig) - len(set(trig)), "held": len(held_ids),
            "claimed": stats.get("claimed", 0), "recover_s": recovered,
            "drained_s": drained, "landed": landed, "landed_distinct": landed_once,
            "peak_rss_mib": {k: v / 2**20 for k, v in s.peak.items()},
            "others_cores": others}


def _id_ms(stream_id: bytes) -> int:
    return int(stream_id.split(b"-")[0])


def baseline_tree(rev: str, root: Path) -> str:
    """The package at git revision ``rev``, extracted to a temporary directory: its src."""
    dest = Path(tempfile.mkdtemp(prefix="bench-stream-base-", dir=root))
    repo = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "-C", str(repo), "archive", rev, "src"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return str(dest / "src")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--customers", type=int, default=5000)
    ap.add_argument("--events", type=int, default=100_000, help="backlog of each capacity run")
    ap.add_argument("--repeat", type=int, default=2, help="capacity runs of 1 and of 2 "
                    "consumers, alternated (medians: shared machines are noisy)")
    ap.add_argument("--seconds", type=float, default=10, help="length of the latency run")
    ap.add_argument("--kill-events", type=int, default=60_000)
    ap.add_argument("--claim-idle", default="2s", help="claim_idle of the kill run")
    ap.add_argument("--no-sink", action="store_true", help="consumers do not land events "
                    "in the events table (the hot path alone)")
    ap.add_argument("--baseline", metavar="REV", help="also the 1-consumer capacity of the "
                    "code at this git revision, alternated with this tree's")
    ap.add_argument("--quiet-wait", type=float, default=30, help="before each capacity "
                    "run, wait up to this many seconds for the rest of the machine to be "
                    "quiet (each run prints the cores other work used meanwhile)")
    ap.add_argument("--data", type=Path, default=Path("bench-data"))
    a = ap.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    os.environ.setdefault("TRIBES_LOG", "warning")
    sink = not a.no_sink
    print(f"workspace of {a.customers:,} customers ...", flush=True)
    ws = build(a.data, a.customers)
    from bench_service import segmented_ids

    ids = segmented_ids(ws)
    print(f"{os.cpu_count()} cores (shared by producer, Redis and consumers); "
          f"{'landing in the events table' if sink else 'hot path only (--no-sink)'}\n")
    lines = workload(ids, a.events, time.time() - a.events * 0.01 - 120)
    base_src = baseline_tree(a.baseline, a.data.resolve()) if a.baseline else None
    print(f"capacity: {a.events:,} events queued, released to the consumers at once, "
          "drained:")
    runs: dict[str, list[dict[str, Any]]] = {"1": [], "2": [], "base": []}
    try:
        for _ in range(a.repeat):
            plan = [("1", 1, None), ("2", 2, None)]
            if base_src:
                plan.append(("base", 1, base_src))
            for label, k, path in plan:
                c = capacity(ws.resolve(), lines, k, sink=sink, pythonpath=path, ids=ids,
                             quiet_wait=a.quiet_wait)
                runs[label].append(c)
                name = {"1": "1 consumer", "2": "2 consumers",
                        "base": f"1 consumer at {a.baseline}"}[label]
                rss = ", ".join(f"{x:.0f}" for x in c["peak_rss_mib"])
                print(f"  {name:24s} {c['events_per_s']:>9,.0f} events/s  "
                      f"({c['seconds']:.2f} s, {len(c['triggers']):,} triggers, "
                      f"{c['reapplied']:,} re-applied, peak RSS {rss} MiB, last landing "
                      f"{c['last_landing_s']:.1f} s; other work used "
                      f"{c['others_cores']:.1f} cores)", flush=True)
    finally:
        if base_src:
            shutil.rmtree(Path(base_src).parent, ignore_errors=True)
    med = {k: statistics.median(x["events_per_s"] for x in v) for k, v in runs.items() if v}
    ratio = med["2"] / med["1"]
    print(f"  median: 1 consumer {med['1']:,.0f} events/s, 2 consumers {med['2']:,.0f} "
          f"events/s: ratio 2/1 = {ratio:.2f}")
    same = None
    if base_src:
        same = all(sorted(x["triggers"]) == sorted(runs["1"][0]["triggers"])
                   for x in runs["1"] + runs["base"])
        print(f"  {a.baseline} (before): median {med['base']:,.0f} events/s; this tree "
              f"{med['1'] / med['base']:.2f}x; same triggers: {'yes' if same else 'NO'}")

    rate = round(med["1"] / 2, -2)
    print(f"\nevent-to-trigger latency, one consumer, {rate:,.0f} events/s (half the "
          f"capacity) for {a.seconds:g} s:")
    lt = latency(ws.resolve(), ids, rate, a.seconds, sink=sink)
    print(f"  {lt['achieved_per_s']:,.0f}/s done: {lt['triggers']:,} triggers, p50 "
          f"{lt['p50_ms']:.0f} ms, p90 {lt['p90_ms']:.0f} ms, p99 {lt['p99_ms']:.0f} ms, "
          f"max {lt['max_ms']:.0f} ms (peak RSS {lt['peak_rss_mib']:.0f} MiB; other work "
          f"used {lt['others_cores']:.1f} cores)", flush=True)

    print(f"\nkill: 2 consumers drain {a.kill_events:,} events; one gets SIGKILL after a "
          f"third (claim_idle {a.claim_idle}):")
    kt = kill_test(ws.resolve(), workload(ids, a.kill_events, time.time() - 900, seed=11),
                   ids, claim_idle=a.claim_idle, sink=sink)
    lost = kt["events"] - kt["applied"]
    print(f"  applied {kt['applied']:,} of {kt['events']:,} sent (lost {lost}); "
          + (f"landed {kt['landed']:,} ({kt['landed_distinct']:,} distinct); " if sink else "")
          + f"triggers {kt['triggers']:,}, delivered twice {kt['duplicate_triggers']}; the "
          f"killed consumer held {kt['held']:,} messages, the survivor claimed "
          f"{kt['claimed']:,}, all acknowledged {kt['recover_s']:.1f} s after the kill "
          f"(backlog drained in {kt['drained_s']:.1f} s); peak RSS "
          + ", ".join(f"{k} {v:.0f} MiB" for k, v in sorted(kt["peak_rss_mib"].items()))
          + f"; other work used {kt['others_cores']:.1f} cores", flush=True)

    landed_ok = not sink or (kt["landed"] == kt["landed_distinct"] == kt["events"])
    kill_ok = lost == 0 and kt["duplicate_triggers"] == 0 and landed_ok
    print("\ntargets:")
    print(f"  1 consumer >= 10,000 events/s: {'met' if med['1'] >= 10_000 else 'NOT met'} "
          f"({med['1']:,.0f})")
    print(f"  p99 < 100 ms at half the capacity: "
          f"{'met' if lt['p99_ms'] < 100 else 'NOT met'} ({lt['p99_ms']:.0f} ms)")
    print(f"  2 consumers more than 1: {'met' if ratio > 1 else 'NOT met'} (ratio {ratio:.2f})")
    print(f"  kill: nothing lost, nothing twice: {'met' if kill_ok else 'NOT met'}")
    if same is not None:
        print(f"  same triggers as {a.baseline}: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
