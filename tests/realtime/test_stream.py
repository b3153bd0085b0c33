"""tribes stream on a real redis-server: triggers fire once, a killed consumer loses and
repeats nothing, streamed events land in the events table."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.realtime.conftest import RedisServer, tribes
from tests.stages import settings_of
from tribes.errors import InputError
from tribes.realtime.consumer import Consumer
from tribes.realtime.rules import Trigger
from tribes.realtime.simulation import simulate
from tribes.store.db import open_engine
from tribes.workspace import open_workspace

NOW = time.time()
T = NOW - 12 * 3600  # events of the last hours



def _consumer(path: Path, **kw: Any) -> Consumer:
    ws = open_workspace(path)
    return Consumer(ws, settings_of(ws), **kw)


def _simulate(path: Path, messages: Any, **kw: Any) -> Any:
    ws = open_workspace(path)
    return simulate(ws, settings_of(ws), messages, **kw)

def configure(path: Path, old: str, new: str) -> None:
    cfg = path / "tribes.toml"
    text = cfg.read_text(encoding="utf-8")
    assert old in text, old
    cfg.write_text(text.replace(old, new, 1), encoding="utf-8")


def push(r: Any, events: list[Any], stream: str = "events") -> None:
    pipe = r.pipeline(transaction=False)
    for e in events:
        pipe.xadd(stream, {"data": json.dumps(e) if not isinstance(e, str) else e})
    pipe.execute()


def triggers(r: Any, stream: str = "triggers") -> list[Trigger]:
    return [Trigger.from_message(f) for _, f in r.xrange(stream)]


def ev(user: str, kind: str, minutes: float, **kw: Any) -> dict[str, Any]:
    return {"user_id": user, "event": kind, "ts": T + minutes * 60,
            "event_id": f"{user}-{kind}-{minutes}", **kw}


def consume(path: Path, url: str, **kw: Any) -> Consumer:
    idle = kw.pop("idle", 0.5)
    c = _consumer(path, redis_url=url, consumer=kw.pop("consumer", "c1"), **kw)
    c.run(idle_exit=idle)
    return c


def stream_events(path: Path) -> int:
    ws = open_workspace(path)
    with open_engine(ws, read_only=True) as engine:
        t = engine.table("events")
        return int(engine.scalar(t.filter(t.source == "stream").count()))


def test_abandoned_cart_fires_once_after_the_timeout(rt_ws: Path, redis_url: str,
                                                     redis_server: RedisServer) -> None:
    configure(rt_ws, 'after = "30m"', 'after = "10m"')
    r = redis_server.client()
    push(r, [ev("A", "add_to_cart", 0, product_id="p1", price=30),
             ev("B", "add_to_cart", 0), ev("B", "purchase", 5, amount=30, order_id="o1"),
             ev("Z", "page_view", 9)])
    consume(rt_ws, redis_url)
    assert [t for t in triggers(r) if t.kind.startswith("trigger.")] == []  # 9 < 10 minutes
    push(r, [ev("Z", "page_view", 11)])
    consume(rt_ws, redis_url)
    carts = [t for t in triggers(r) if t.kind == "trigger.abandoned_cart"]
    assert len(carts) == 1 and carts[0].data["products"] == ["p1"]
    assert carts[0].at == pytest.approx(T + 600, abs=0.01)
    # later events, a restart, the same messages again: it does not fire again
    push(r, [ev("Z", "page_view", 60), ev("A", "page_view", 61)])
    push(r, [ev("A", "add_to_cart", 0, product_id="p1", price=30)])  # a resend
    consume(rt_ws, redis_url, consumer="c2")
    assert len([t for t in triggers(r) if t.kind == "trigger.abandoned_cart"]) == 1
    assert stream_events(rt_ws) == 7  # every event once, the resend not
    # each trigger is kept per customer for the API
    c = _consumer(rt_ws, redis_url=redis_url, consumer="c3", sink=False)
    recent = c.store.recent_triggers(carts[0].customer_key)
    assert any(x["type"] == "trigger.abandoned_cart" for x in recent)
    c.close()


def test_bad_messages_are_quarantined_and_never_fire(rt_ws: Path, redis_url: str,
                                                     redis_server: RedisServer) -> None:
    r = redis_server.client()
    push(r, ["not json {", {"user_id": "A", "event": "add_to_cart", "ts": "soon"},
             {"event": "add_to_cart", "ts": T}, ev("Z", "page_view", 100)])
    c = consume(rt_ws, redis_url)
    assert dict(c.stats.rejected) == {"E_MALFORMED": 1, "E_TS_PARSE": 1, "E_NO_ID": 1}
    assert [t.kind for t in triggers(r) if t.kind.startswith("trigger.")] == []
    ws = open_workspace(rt_ws)
    with open_engine(ws, read_only=True) as engine:
        q = engine.table("quarantine")
        reasons = engine.execute(q.filter(q.source == "stream").select("reason"))
    assert sorted(reasons["reason"]) == ["E_MALFORMED", "E_NO_ID", "E_TS_PARSE"]


def test_pending_messages_of_a_dead_consumer_are_claimed(rt_ws: Path, redis_url: str,
                                                         redis_server: RedisServer) -> None:
    configure(rt_ws, 'claim_idle = "60s"', 'claim_idle = "1s"')
    r = redis_server.client()
    push(r, [ev("A", "add_to_cart", 0), ev("Z", "page_view", 45)])
    _consumer(rt_ws, redis_url=redis_url, consumer="x", sink=False).close()
    r.xreadgroup("tribes", "dead", {"events": ">"}, count=10)  # read, never acknowledged
    assert r.xpending("events", "tribes")["pending"] == 2
    time.sleep(1.2)
    c = consume(rt_ws, redis_url, consumer="alive", idle=2.0)
    assert c.stats.claimed == 2
    assert r.xpending("events", "tribes")["pending"] == 0
    assert [t.kind for t in triggers(r)].count("trigger.abandoned_cart") == 1


def test_a_stopped_consumer_stops_with_a_backlog(rt_ws: Path, redis_url: str,
                                                 redis_server: RedisServer) -> None:
    """Asked to stop, the consumer finishes the batch it has read ahead and no more (it
    once read ahead batch after batch and drained the whole backlog first)."""
    configure(rt_ws, "batch = 1000", "batch = 100")
    r = redis_server.client()
    push(r, [ev(f"U{i % 50}", "page_view", i / 10) for i in range(2000)])
    c = _consumer(rt_ws, redis_url=redis_url, consumer="s", sink=False)
    stats = c.run(max_messages=100)
    assert 100 <= stats.messages <= 300  # a batch, the one read with it, one read ahead
    assert r.xpending("events", "tribes")["pending"] == 0  # what was read is applied
    info = {g["name"]: g for g in r.xinfo_groups("events")}
    assert int(info["tribes"]["entries-read"]) == stats.messages


def _workload(n_customers: int = 300, per_customer: int = 40) -> list[dict[str, Any]]:
    """Sessions with views, carts and purchases over 10 hours, in time order, and a last
    event an hour later (so every cart timer is settled), all in the past."""
    import random

    rng = random.Random(3)
    out = []
    for i in range(n_customers * per_customer):
        u = f"U{rng.randrange(n_customers)}"
        minute = i * 0.05
        kind = rng.choices(["page_view", "product_view", "add_to_cart", "purchase"],
                           [5, 4, 2, 1])[0]
        e: dict[str, Any] = {"user_id": u, "event": kind, "ts": T + minute * 60,
                             "event_id": f"w{i}", "product_id": f"p{rng.randrange(50)}",
                             "price": rng.choice([10, 40, 150, 400])}
        if kind == "purchase":
            e["amount"] = rng.choice([20.0, 80.0])
            e["order_id"] = f"o{i}"
        out.append(e)
    # after every cart has settled (the events span 10 hours), before now
    out.append({"user_id": "END", "event": "page_view", "ts": T + 11 * 3600,
                "event_id": "end"})
    return out


def test_killing_the_consumer_loses_and_repeats_nothing(rt_ws: Path, redis_url: str,
                                                        redis_server: RedisServer) -> None:
    configure(rt_ws, 'batch = 1000', 'batch = 200')
    configure(rt_ws, 'flush_every = "30s"', 'flush_every = "1s"')
    r = redis_server.client()
    events = _workload()
    push(r, events)
    cmd = [sys.executable, "-m", "tribes", "-q", "-w", str(rt_ws), "stream", "--redis",
           redis_url, "--consumer", "c1", "--idle-exit", "2"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    kills = 0
    for _ in range(3):  # killed twice mid-stream, then left to finish
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        if kills < 2:
            target = len(events) * (kills + 1) // 3
            deadline = time.monotonic() + 120
            read = 0
            while time.monotonic() < deadline and proc.poll() is None:
                info = {g["name"]: g for g in r.xinfo_groups("events")}
                read = info.get("tribes", {}).get("entries-read") or 0
                if read >= target:
                    break
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            assert 0 < read < len(events), "not killed mid-stream"
            kills += 1
        else:
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err.decode()[-3000:]
    got = triggers(r)
    ids = [t.trigger_id for t in got]
    assert len(ids) == len(set(ids)), "a trigger was delivered twice"
    expected = _simulate(rt_ws, events)
    want = sorted(t.trigger_id for t in expected.triggers if t.kind.startswith("trigger."))
    have = sorted(t.trigger_id for t in got if t.kind.startswith("trigger."))
    if have != want:  # say which
        by_id = {t.trigger_id: t for t in [*expected.triggers, *got]}
        only = [by_id[i] for i in sorted(set(want) ^ set(have))]
        print("DIFF", [(t.trigger_id in set(want), t.kind, t.customer_key[:8], t.at, t.data)
                       for t in only])
    assert have == want
    assert len(want) > 50
    assert r.xpending("events", "tribes")["pending"] == 0
    assert stream_events(rt_ws) == len(events)  # every event landed once


@pytest.mark.parametrize("fmt", ["data", "fields"])
def test_message_formats(rt_ws: Path, redis_url: str, redis_server: RedisServer,
                         fmt: str) -> None:
    r = redis_server.client()
    e = ev("A", "add_to_cart", 0)
    if fmt == "data":
        r.xadd("events", {"data": json.dumps(e)})
    else:
        r.xadd("events", {k: str(v) for k, v in e.items()})
    r.xadd("events", {"data": json.dumps(ev("Z", "page_view", 40))})
    c = consume(rt_ws, redis_url)
    assert c.stats.events == 2
    assert [t.kind for t in triggers(r)].count("trigger.abandoned_cart") == 1


def test_stream_cli(rt_ws: Path, redis_url: str, redis_server: RedisServer) -> None:
    r = redis_server.client()
    push(r, [ev("A", "add_to_cart", 0), ev("Z", "page_view", 45)])
    out = tribes("-w", rt_ws, "stream", "--redis", redis_url, "--idle-exit", "0.5", "--json")
    res = json.loads(out)
    assert res["messages"] == 2 and res["triggers"]["trigger.abandoned_cart"] == 1
    assert res["landed"]["loaded"] == 2
    recent = json.loads(tribes("-w", rt_ws, "triggers", "recent", "--redis", redis_url,
                               "--json"))
    assert "trigger.abandoned_cart" in [t["type"] for t in recent["triggers"]]


def test_forget_erases_the_real_time_state(rt_ws: Path, redis_url: str,
                                           redis_server: RedisServer,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from tribes.privacy.pseudonyms import pseudonym

    r = redis_server.client()
    push(r, [ev("GONE", "page_view", 0), ev("GONE", "add_to_cart", 1),
             ev("KEEP", "add_to_cart", 1)])
    consume(rt_ws, redis_url)
    ws = open_workspace(rt_ws)
    key = pseudonym("GONE", ws.secret())
    store = Consumer(ws, settings_of(ws), redis_url=redis_url, consumer="probe", sink=False).store
    assert store.state(key) is not None
    assert any(f["customer_key"] == key for _, f in r.xrange("triggers"))
    monkeypatch.setenv("TRIBES_REDIS_URL", redis_url)
    out = json.loads(tribes("-w", rt_ws, "forget", "GONE", "--reason", "test", "--json"))
    assert out["realtime"]["status"] == "erased" and out["realtime"]["keys"] >= 1
    assert out["realtime"]["timers"] == 1
    assert store.state(key) is None and not r.zscore("tribes:timers", f"cart|{key}")
    assert not any(f["customer_key"] == key for _, f in r.xrange("triggers"))
    assert not r.exists(f"tribes:rt:{key}")
    other = pseudonym("KEEP", ws.secret())
    assert store.state(other) is not None  # nobody else
    # what the stream sends of them afterwards is refused and leaves nothing
    push(r, [ev("GONE", "add_to_cart", 5), ev("Z", "page_view", 120)])
    c = consume(rt_ws, redis_url, consumer="c2")
    assert c.stats.rejected["E_ERASED"] == 1
    assert store.state(key) is None
    assert not [f for _, f in r.xrange("triggers") if f["customer_key"] == key]
    assert stream_events(rt_ws) == 2  # GONE's are gone; KEEP's and Z's remain


def test_churn_risk_of_customers_the_stream_never_hears_from(
        rt_ws: Path, redis_url: str, redis_server: RedisServer) -> None:
    from tribes.realtime import reference
    from tribes.realtime.rules import Processor

    ws = open_workspace(rt_ws)
    ref = reference.load(ws, settings_of(ws))
    proc = Processor(ws.config.realtime, ref, session_timeout=1800, churn_threshold=0.5)
    schedule = proc.churn_schedule(after=0)
    assert len(schedule) >= 3  # repeat buyers of the CLV fit still above 0.5
    dues = sorted(schedule.values())
    start, end = dues[len(dues) // 2] - 60, dues[len(dues) // 2] + 3 * 86400
    want = {m.split("|", 1)[1] for m, d in schedule.items() if start < d <= end}
    assert want
    r = redis_server.client()
    events = [{"user_id": "Z", "event": "page_view", "ts": start, "event_id": "z1"},
              {"user_id": "Z", "event": "page_view", "ts": end, "event_id": "z2"}]
    push(r, events)
    consume(rt_ws, redis_url)
    fired = [t for t in triggers(r) if t.kind == "trigger.churn_risk"]
    assert {t.customer_key for t in fired} == want  # the ones crossing in the window
    assert len(fired) == len(want)
    for t in fired:
        assert t.data["p_alive"] == pytest.approx(0.5, abs=2e-3)
    sim = _simulate(rt_ws, events)
    assert sorted(t.trigger_id for t in sim.triggers if t.kind == "trigger.churn_risk") == \
        sorted(t.trigger_id for t in fired)


def test_an_event_from_the_future_fires_nobody_early(rt_ws: Path, redis_url: str,
                                                     redis_server: RedisServer) -> None:
    r = redis_server.client()
    now = time.time()
    # a device whose clock is 20 hours ahead (ingest admits up to a day)
    push(r, [{"user_id": "B", "event": "page_view", "ts": now + 20 * 3600,
              "event_id": "ahead"}])
    consume(rt_ws, redis_url)
    push(r, [{"user_id": "A", "event": "add_to_cart", "ts": now, "event_id": "a1"}])
    consume(rt_ws, redis_url)
    push(r, [{"user_id": "A", "event": "purchase", "ts": now + 5, "amount": 9,
              "event_id": "a2"}])
    consume(rt_ws, redis_url)
    assert [t.kind for t in triggers(r)].count("trigger.abandoned_cart") == 0


def test_overdue_timers_beyond_the_read_limit_still_fire(rt_ws: Path, redis_url: str,
                                                         redis_server: RedisServer) -> None:
    configure(rt_ws, 'batch = 1000', 'batch = 2')
    r = redis_server.client()
    carts = [ev(f"U{i}", "add_to_cart", i * 0.01) for i in range(40)]
    push(r, carts)
    consume(rt_ws, redis_url)
    # 40 carts overdue at once (more than 10 x batch): each one fires, also for a
    # customer whose next event comes first
    push(r, [ev("U39", "page_view", 120), ev("Z", "page_view", 121)])
    consume(rt_ws, redis_url, idle=2.0)
    fired = {t.customer_key for t in triggers(r) if t.kind == "trigger.abandoned_cart"}
    assert len(fired) == 40


def _consumers(r: Any) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in r.xinfo_consumers("events", "tribes")}


def test_two_consumers_one_killed_the_other_claims_its_messages(
        rt_ws: Path, redis_url: str, redis_server: RedisServer) -> None:
    """Two consumers share the group; one is killed (SIGKILL) with messages pending. The
    other claims them (claim_idle): every event applied and landed exactly once, no
    trigger twice, nothing left pending."""
    from tribes.privacy.pseudonyms import pseudonym

    configure(rt_ws, "batch = 1000", "batch = 200")
    configure(rt_ws, 'claim_idle = "60s"', 'claim_idle = "1s"')
    configure(rt_ws, 'flush_every = "30s"', 'flush_every = "1s"')
    r = redis_server.client()
    r.xgroup_create("events", "tribes", id="0", mkstream=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def start(name: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "tribes", "-q", "-w", str(rt_ws), "stream", "--redis",
             redis_url, "--consumer", name, "--idle-exit", "4", "--json"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    victim, survivor = start("victim"), start("survivor")
    try:
        deadline = time.monotonic() + 60
        while len(_consumers(r)) < 2:  # both reading: the backlog is shared from the start
            assert time.monotonic() < deadline, "the consumers did not start"
            assert victim.poll() is None and survivor.poll() is None
            time.sleep(0.02)
        events = _workload()
        push(r, events)
        while True:
            info = {g["name"]: g for g in r.xinfo_groups("events")}["tribes"]
            pending = _consumers(r)["victim"]["pending"]
            if int(info["entries-read"] or 0) >= len(events) // 3 and pending:
                break
            assert time.monotonic() < deadline, "the victim never held messages"
            assert int(info["entries-read"] or 0) < len(events), "killed too late"
            time.sleep(0.005)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        left = _consumers(r)["victim"]["pending"]
        assert left > 0  # messages read, not acknowledged: the survivor must claim them
        out, err = survivor.communicate(timeout=120)
        assert survivor.returncode == 0, err.decode()[-3000:]
    finally:
        for p in (victim, survivor):
            if p.poll() is None:
                p.kill()
                p.wait()
    stats = json.loads(out)
    assert stats["claimed"] >= left
    assert r.xpending("events", "tribes")["pending"] == 0
    # every event applied exactly once: in the seen set, and counted once in its
    # customer's state (the workload's customers are new: every event counts)
    day = r.keys("tribes:seen:*")
    ids = [e["event_id"] for e in events]
    assert sum(r.smismember(day[0], ids)) == len(ids) and len(day) == 1
    ws = open_workspace(rt_ws)
    c = Consumer(ws, settings_of(ws), redis_url=redis_url, consumer="probe", sink=False)
    per_customer: dict[str, int] = {}
    for e in events:
        per_customer[e["user_id"]] = per_customer.get(e["user_id"], 0) + 1
    counted = {u: int(c.store.state(pseudonym(u, ws.secret()))["ne"])  # type: ignore[index]
               for u in per_customer}
    c.close()
    assert counted == per_customer
    got = triggers(r)
    ids_out = [t.trigger_id for t in got]
    assert len(ids_out) == len(set(ids_out)), "a trigger was delivered twice"
    assert len([t for t in got if t.kind == "trigger.abandoned_cart"]) > 20
    assert stream_events(rt_ws) == len(events)  # the victim's spool landed too, once


def test_rules_elsewhere_landing_where_the_database_is(rt_ws: Path, redis_url: str,
                                                       redis_server: RedisServer) -> None:
    """Consumers that run the rules with --no-sink (as on other machines) and one
    landing-only consumer in a group of its own: triggers fire once, every event lands
    once."""
    configure(rt_ws, "batch = 1000", "batch = 10")
    r = redis_server.client()
    events = [ev(f"U{i % 7}", "add_to_cart" if i % 5 == 0 else "page_view", i)
              for i in range(60)]
    push(r, events)
    a = _consumer(rt_ws, redis_url=redis_url, consumer="a", sink=False)
    a.run(max_messages=30)
    b = consume(rt_ws, redis_url, consumer="b", sink=False)
    assert a.stats.events and b.stats.events  # both had a share
    assert a.stats.events + b.stats.events == len(events)
    lander = consume(rt_ws, redis_url, consumer="db-host", land_only=True)
    assert lander.group == "tribes-land" and lander.stats.messages == len(events)
    assert stream_events(rt_ws) == len(events)
    assert r.xpending("events", "tribes-land")["pending"] == 0
    ids = [t.trigger_id for t in triggers(r)]
    assert ids and len(ids) == len(set(ids))
    with pytest.raises(InputError):
        _consumer(rt_ws, redis_url=redis_url, land_only=True, sink=False)


def test_a_key_with_an_apostrophe_lands(rt_ws: Path, redis_url: str,
                                        redis_server: RedisServer) -> None:
    r = redis_server.client()
    push(r, [ev("Q", "page_view", 1, **{"l'adresse": "1 rue de l'Église"}),
             ev("Q", "page_view", 2)])
    c = consume(rt_ws, redis_url)
    assert c.sink is not None and c.sink.loaded == 2 and c.sink.errors == []
    assert stream_events(rt_ws) == 2


def test_a_landing_that_keeps_failing_stops_the_consumer_and_lands_later(
        rt_ws: Path, redis_url: str, redis_server: RedisServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tribes.errors import TribesError
    from tribes.ingest.loader import FAULT_ENV
    from tribes.realtime import sink

    monkeypatch.setattr(sink, "LAND_ATTEMPTS", 2)
    configure(rt_ws, 'flush_every = "30s"', 'flush_every = "1s"')
    r = redis_server.client()
    push(r, [ev("F", "page_view", i) for i in range(5)])
    monkeypatch.setenv(FAULT_ENV, "staged:raise")  # every landing fails
    with pytest.raises(TribesError) as err:
        consume(rt_ws, redis_url, idle=4)
    assert err.value.code == "E_STREAM_LAND" and "fault injected" in err.value.message
    assert stream_events(rt_ws) == 0
    assert list((rt_ws / ".tmp" / "stream").glob("closed-*.jsonl"))  # kept
    monkeypatch.delenv(FAULT_ENV)  # the cause is fixed: the next start lands them
    c = consume(rt_ws, redis_url, consumer="c2")
    assert c.sink is not None and c.sink.adopted >= 1
    assert stream_events(rt_ws) == 5
    assert not list((rt_ws / ".tmp" / "stream").glob("*.jsonl"))


def test_an_encrypted_workspace_spools_sealed_messages(tmp_path: Path, redis_url: str,
                                                       redis_server: RedisServer,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from tribes.errors import TribesError
    from tribes.ingest.loader import FAULT_ENV
    from tribes.realtime import sink
    from tribes.store.db import init_workspace

    ws = init_workspace(tmp_path / "enc", encrypt=True)
    monkeypatch.setattr(sink, "LAND_ATTEMPTS", 1)
    configure(ws.path, 'flush_every = "30s"', 'flush_every = "1s"')
    r = redis_server.client()
    marker = "sealed-marker-4711@example.org"
    push(r, [ev(f"user-marker-{i}", "page_view", i, email=marker) for i in range(20)])
    monkeypatch.setenv(FAULT_ENV, "staged:raise")
    with pytest.raises(TribesError):
        consume(ws.path, redis_url, land_only=True, idle=3)
    spooled = list((ws.path / ".tmp" / "stream").glob("closed-*.jsonl"))
    assert spooled and all(marker.encode() not in f.read_bytes() and b"user-marker" not in
                           f.read_bytes() for f in spooled)
    monkeypatch.delenv(FAULT_ENV)
    consume(ws.path, redis_url, land_only=True, consumer="c2")
    assert stream_events(ws.path) == 20
    assert not any(marker.encode() in f.read_bytes()
                   for f in ws.path.rglob("*") if f.is_file())
