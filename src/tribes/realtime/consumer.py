"""``tribes stream``: the Redis Streams consumer.

One loop per consumer: read a batch (first this consumer's own unacknowledged messages,
then messages other consumers left pending longer than ``claim_idle``, then new ones),
check each message (events.py), skip event ids already applied, run the rules (rules.py)
on the customers' state, spool the messages for the events table (sink.py) and commit
state, timers, triggers and the acknowledgement atomically (redis_state.py). A consumer killed
at any point loses nothing (unacknowledged messages are read again) and repeats nothing
(applied event ids are skipped, trigger ids are deterministic).
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tribes.errors import InputError, TribesError
from tribes.privacy import last_derived_change
from tribes.realtime import reference
from tribes.realtime.events import Checked, EventChecker, Rejected, StreamEvent
from tribes.realtime.redis_state import RedisState, connect_redis
from tribes.realtime.redis_state import redis_url as store_redis_url
from tribes.realtime.rules import (
    CLOCK_SKEW,
    STATE_ITEMS,
    TRIGGER_ITEMS,
    Processor,
    Trigger,
    decode,
    encode_flat,
)
from tribes.realtime.sink import Sink
from tribes.realtime.webhooks import Delivery, registry
from tribes.settings import RunSettings
from tribes.store import holds_shared_engine
from tribes.workspace import Workspace

log = logging.getLogger(__name__)
RELOAD_CHECK_S = 2.0
MAX_RETRIES = 20


@dataclass
class StreamStats:
    messages: int = 0
    events: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    triggers: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    conflicts: int = 0
    reapplied: int = 0  # events applied again: another consumer changed their customer
    claimed: int = 0
    started: float = field(default_factory=time.monotonic)

    def to_dict(self) -> dict[str, Any]:
        secs = max(time.monotonic() - self.started, 1e-9)
        return {"messages": self.messages, "events": self.events,
                "duplicates": self.duplicates, "rejected": dict(self.rejected),
                "triggers": dict(self.triggers), "batches": self.batches,
                "conflicts": self.conflicts, "reapplied": self.reapplied,
                "claimed": self.claimed,
                "seconds": round(secs, 3), "messages_per_s": round(self.messages / secs, 1)}


def redis_errors() -> tuple[type[BaseException], ...]:
    import redis

    return (redis.ConnectionError, redis.TimeoutError)


def parse_message(fields: list[str] | dict[str, str]) -> tuple[Any, str]:
    """A stream entry (its field/value list) as an event: its ``data`` field (JSON), else
    the entry's fields; and the message as one line of text, as it is spooled."""
    if isinstance(fields, dict):
        fields = [x for kv in fields.items() for x in kv]
    if len(fields) == 2 and fields[0] == "data":
        try:
            return json.loads(fields[1]), fields[1]
        except ValueError:
            return fields[1], fields[1]
    message = dict(zip(fields[0::2], fields[1::2], strict=False))
    return message, json.dumps(message, separators=(",", ":"))


@dataclass
class _Batch:
    msgs: list[tuple[str, list[str]]]
    checked: list[Checked]
    wall: float
    raw: list[str] = field(default_factory=list)
    spooled: bool = False
    counted: bool = False
    keys: list[str | None] = field(default_factory=list)  # per message (None: rejected)
    todo: list[int] | None = None  # messages to apply again (None: the first attempt)
    # the attempt in flight: its key section, the messages it applies, its triggers
    section: list[str] = field(default_factory=list)
    fresh: list[int] = field(default_factory=list)
    skipped: int = 0  # events found applied already
    idx: list[int] | range = field(default_factory=list)  # the messages of the attempt
    max_ts: float = 0.0
    answer: tuple[Any, ...] | None = None  # of its read, when read before its turn
    triggers: list[Trigger] = field(default_factory=list)


class Consumer:
    """A consumer in the group; ``run`` until ``stop`` is set (or a test limit)."""

    def __init__(self, ws: Workspace, settings: RunSettings, *, redis_url: str | None = None,
                 input_stream: str | None = None, output_stream: str | None = None,
                 group: str | None = None, consumer: str | None = None,
                 start: str = "earliest", sink: bool = True, webhooks: bool = True,
                 land_only: bool = False, client: Any = None) -> None:
        cfg = ws.config.realtime
        self.ws, self.cfg, self.settings = ws, cfg, settings
        self.input = input_stream or cfg.input_stream
        self.output = output_stream or cfg.output_stream
        # landing only: a group of its own, so it receives every event (the consumers
        # that run the rules, with --no-sink, may be on other machines)
        self.land_only = land_only
        if land_only and not sink:
            raise InputError("a landing-only consumer lands events: it cannot do without "
                             "the sink", code="E_OPTION")
        self.group = group or (f"{cfg.group}-land" if land_only else cfg.group)
        # the same name after a restart: the consumer resumes its own pending messages
        # first (run several on one host with --consumer names of their own)
        self.name = consumer or socket.gethostname()
        self.r = client if client is not None else connect_redis(store_redis_url(cfg, redis_url))
        self.store = RedisState(self.r, cfg.prefix,
                                seen_ttl_s=cfg.seen_ttl.total_seconds())
        self.secret = ws.secret()
        self.claim_idle_ms = int(cfg.claim_idle.total_seconds() * 1000)
        self.state_ttl_ms = int(cfg.state_ttl.total_seconds() * 1000)
        self.stats = StreamStats()
        self._ensure_group("0" if start == "earliest" else "$")
        self.ref = reference.load(ws, settings)
        self._build()
        self._reload_thread: threading.Thread | None = None
        self._next_ref: reference.Reference | None = None
        self._checked = time.monotonic()
        self._own_done = False
        self._claimed_at = 0.0
        self._claim_cursor = "0-0"
        self._inflight: _Batch | None = None  # commit sent, not answered
        self._started: _Batch | None = None  # read sent, not answered
        self._prefetched: list[tuple[str, list[str]]] = []
        self._stopping = False  # no more reads ahead: the loop ends after this batch
        self._seeded: str | None = None
        self.sink = Sink(ws, settings, source=cfg.source, consumer=self.name,
                         in_process=holds_shared_engine(ws)) if sink else None
        self.delivery: Any = None
        if webhooks and not land_only and registry(ws).hooks():
            self.delivery = Delivery(ws, self.r, stream=self.output, consumer=self.name)
            self.delivery.start()

    def _ensure_group(self, start_id: str) -> None:
        import redis

        try:
            self.r.xgroup_create(self.input, self.group, id=start_id, mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _build(self) -> None:
        # the reference is large and lives long: keep it out of the collector's full
        # passes, which otherwise stall the loop for a tenth of a second or more
        gc.collect()
        gc.freeze()
        cfg = self.ws.config
        self.checker = EventChecker(cfg, self.secret, erased=self.ref.erased)
        self.processor = Processor(
            cfg.realtime, self.ref,
            session_timeout=self.settings.timeout_s,
            churn_threshold=cfg.clv.churn_threshold, clv_period=cfg.clv.period)

    def _seed_churn(self, first_ts: float) -> None:
        """Churn timers for every customer of the CLV fit, once per fit: the customers
        who stop buying are the ones the stream does not hear from. Crossings after the
        stream's clock (or, on a new stream, its first event) are scheduled."""
        p = self.processor
        fit = (self.ref.clv or {}).get("fit_id")
        if not fit or p.churn_model is None:
            return
        tag = f"{fit}:{p.churn_threshold}"
        meta = self.store.keys.meta
        if self._seeded == tag or self.r.hget(meta, "churn_seeded") == tag:
            self._seeded = tag
            return
        started = time.perf_counter()
        clock_ts, _ = self.store.clock()
        timers = p.churn_schedule(after=clock_ts or first_ts)
        items = list(timers.items())
        for i in range(0, len(items), 10_000):
            pipe = self.r.pipeline(transaction=False)
            pipe.zadd(self.store.keys.timers, dict(items[i:i + 10_000]), nx=True)
            pipe.execute()
        self.r.hset(meta, "churn_seeded", tag)
        self._seeded = tag
        log.info("stream: churn timers for %d customers of CLV fit %s (%.1fs)", len(items),
                 fit, time.perf_counter() - started)

    # ------------------------------------------------------------------ reload
    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked < RELOAD_CHECK_S:
            return
        self._checked = now
        if self._reload_thread is not None and self._reload_thread.is_alive():
            return
        if last_derived_change(self.ws.path) == self.ref.change:
            return

        def work() -> None:
            try:
                ref = reference.load(self.ws, self.settings)
            except Exception:
                log.exception("cannot reload the workspace reference; keeping the old one")
                return
            self._next_ref = ref

        self._next_ref = None
        self._reload_thread = threading.Thread(target=work, name="tribes-reload", daemon=True)
        self._reload_thread.start()

    def _swap_reference(self) -> None:
        ref = self._next_ref
        if ref is not None:
            self.ref, self._next_ref = ref, None
            self._build()
            self._seeded = None  # a new CLV fit gets its timers
            log.info("stream: workspace changed; now segment version %s", ref.version)

    # ------------------------------------------------------------------ reading
    def _read(self, block_ms: int | None) -> list[tuple[str, list[str]]]:
        """The next messages (waiting up to ``block_ms``; None: not at all)."""
        if self._prefetched:
            msgs, self._prefetched = self._prefetched, []
            return msgs
        n = self.cfg.batch
        if not self._own_done:
            # messages this consumer read before it stopped, not yet acknowledged
            msgs = self.store.read_group(self.group, self.name, self.input, "0", n, None)
            if msgs:
                return msgs
            self._own_done = True
        if self._claim_due():
            self._claimed_at = time.monotonic()
            self._finish()  # what is in flight is not pending any more
            res = self.r.xautoclaim(self.input, self.group, self.name, self.claim_idle_ms,
                                    self._claim_cursor, count=n)
            # a long backlog of a stopped consumer: go on from here on the next read
            self._claim_cursor = str(res[0])
            claimed = [(i, [x for kv in f.items() for x in kv]) for i, f in res[1] if f]
            if claimed:
                self.stats.claimed += len(claimed)
                log.info("stream: took over %d messages of a stopped consumer", len(claimed))
                return claimed
        return self.store.read_group(self.group, self.name, self.input, ">", n, block_ms)

    def _claim_due(self) -> bool:
        return (self._claim_cursor != "0-0"
                or time.monotonic() - self._claimed_at > self.claim_idle_ms / 2000)

    def _read_ahead(self) -> bool:
        """Ask for the next batch now, to be read after the rules ran (True), or read it
        at once (False: messages to claim from a stopped consumer come first)."""
        if self._claim_due():
            self._prefetched = self._read(None)
            return False
        self.store.send_read_group(self.group, self.name, self.input, ">", self.cfg.batch,
                                   None)
        return True

    # ------------------------------------------------------------------ one batch
    def process(self, msgs: list[tuple[str, list[str]]]) -> None:
        """Apply one batch of messages and wait until it is committed."""
        self._apply(self._check(msgs))
        self._finish()

    def _check(self, msgs: list[tuple[str, list[str]]]) -> _Batch:
        wall = time.time()
        checked, raw = [], []
        for msg_id, fields in msgs:
            message, text = parse_message(fields)
            checked.append(self.checker.check(message, now=wall, msg_id=msg_id))
            raw.append(text)
        return _Batch(msgs, checked, wall, raw=raw)

    def _apply(self, b: _Batch) -> None:
        """Read what the batch needs, run the rules, spool the events, and send the
        commit (its answer is read by ``_finish``, so that the next batch can be read
        and checked while Redis applies this one). Applied again (``b.todo``), only the
        messages of the customers the last commit left out."""
        self._start(b)
        self._rules(b)

    def _start(self, b: _Batch) -> None:
        """Send the read of what the batch needs (its answer is read by ``_rules``): sent
        after the commit in flight, it sees what that commit wrote."""
        checked, wall = b.checked, b.wall
        if b.todo is None and not b.keys:
            b.keys = [self.ref.customer_key(c.result.ids)
                      if isinstance(c.result, StreamEvent) else None for c in checked]
        keys_of = b.keys
        b.idx = range(len(checked)) if b.todo is None else b.todo
        valid = [e for i in b.idx if isinstance(e := checked[i].result, StreamEvent)]
        event_keys = list(dict.fromkeys(ck for i in b.idx if (ck := keys_of[i]) is not None))
        # an event stamped in the future moves the rules' clock to now + skew at most
        b.max_ts = max((min(e.ts, wall + CLOCK_SKEW) for e in valid), default=0.0)
        if valid and self._seeded is None:
            self._seed_churn(min(e.ts for e in valid))
        self.store.send_read([checked[i].result.event_id for i in b.idx], event_keys,
                             max_ts=b.max_ts, wall=wall, limit=10 * self.cfg.batch,
                             only=b.todo is not None)
        self._started = b

    def _rules(self, b: _Batch) -> None:
        """The rules over the batch (its read answered), the spool, and the commit sent."""
        checked, wall, keys_of, idx, max_ts = b.checked, b.wall, b.keys, b.idx, b.max_ts
        first = b.todo is None
        answer, b.answer = (b.answer[0] if b.answer else self.store.answer()), None
        done, watermark, due, raw, erased = answer
        self._started = None
        fresh: list[int] = []
        ids: set[str] = set()
        for i in idx:
            eid = checked[i].result.event_id
            if eid in done or eid in ids:
                continue
            ids.add(eid)
            fresh.append(i)
        if self.sink is not None and not b.spooled:
            # as received (the landing maps them); synced to disk while the rules run
            self.sink.write([b.raw[i] for i in fresh])
            b.spooled = True
        events = [e for i in fresh if isinstance(e := checked[i].result, StreamEvent)]
        keys = list(raw)
        index = {key: n for n, key in enumerate(keys, 1)}
        states = {key: decode(v) for key, v in raw.items() if v["s"]}
        self.processor.blocked = erased
        reading = False
        if first and not self._prefetched and self._own_done and b.msgs \
                and not self._stopping:
            # the next batch, asked for now: read after the rules, checked while Redis
            # applies this one
            reading = self._read_ahead()
        try:
            out = self.processor.process(events, states, due, watermark)
        finally:
            if reading:
                self._prefetched = self.store.read_group_reply()
        k = self.store.keys
        prefix = k.state("")
        section: list[Any] = []
        for key in keys:
            section += (prefix + key, raw[key]["v"] or "0")
        fired: list[Any] = []
        for m in out.fired:
            fired += (m, index[m.split("|", 1)[1]])
        stored: list[Any] = []
        for key, st in out.states.items():
            st["v"] = float(raw[key]["v"] or 0) + 1 if key in raw else 1.0
            # the state lives at least as long as its churn timer (else the timer fires
            # on nothing)
            ttl = self.state_ttl_ms
            if st["churn"]:
                ttl = max(ttl, int((st["churn"] - wall + 86_400) * 1000))
            stored += (index[key], ttl, *encode_flat(st))
        cancel: list[Any] = []
        for m in sorted(out.cancel):
            cancel += (m, index.get(m.split("|", 1)[1], 0))
        schedule: list[Any] = []
        for m, due_at in out.schedule.items():
            # scores as text: Lua would print a number with 14 digits only
            schedule += (m, repr(due_at), index.get(m.split("|", 1)[1], 0))
        seen = [checked[i].result.event_id for i in fresh]
        seen_of = [index[ck] if (ck := keys_of[i]) is not None else 0 for i in fresh]
        triggers: list[Any] = []
        for t in out.triggers:
            data = t.data_json()
            brief = {"id": t.trigger_id, "type": t.kind, "at": t.at, "segment_id": t.segment_id}
            recent = json.dumps(brief, separators=(",", ":"))[:-1] + f',"data":{data}}}'
            triggers += (index[t.customer_key], k.recent(t.customer_key), recent)
            for f, v in t.to_message(data).items():
                triggers += (f, v)
        applied = set(fresh)
        acks = [b.msgs[i][0] for i in idx]
        acks_of = [index[ck] if i in applied and (ck := keys_of[i]) is not None else 0
                   for i in idx]
        header = {
            "n": [len(keys), len(out.fired), len(out.states), len(out.cancel),
                  len(out.schedule), len(seen), len(out.triggers), len(acks)],
            "sf": STATE_ITEMS, "of": TRIGGER_ITEMS,
            "seen_key": k.seen(int(wall // 86400)),
            "seen_expire": int((wall // 86400 + 1) * 86400 + self.store.seen_ttl_s),
            "timers": k.timers, "clock": k.clock, "output": self.output,
            "input": self.input, "group": self.group, "state_ttl": self.state_ttl_ms,
            "maxlen": self.cfg.output_maxlen, "recent": self.cfg.recent_triggers,
            "clock_ts": max_ts, "clock_ts_s": repr(max_ts), "wall": repr(wall),
        }
        b.section, b.fresh, b.triggers = keys, fresh, out.triggers
        b.skipped = len(idx) - len(fresh)
        if self.sink is not None:
            self.sink.wait_synced()  # on disk before the messages are acknowledged
        self.store.send_commit(header, [*section, *fired, *stored, *cancel, *schedule,
                                        *seen, *seen_of, *triggers, *acks, *acks_of])
        self._inflight = b

    def _finish(self) -> None:
        """Wait for the batch in flight. The customers its commit left out (another
        consumer changed their state meanwhile) are applied again from fresh reads."""
        b = self._inflight
        if b is None:
            return
        self._inflight = None
        for _ in range(MAX_RETRIES):
            left_out = {b.section[i - 1] for i in self.store.commit_result()}
            self._count(b, left_out)
            # customers left out for a timer alone: it is read again with the next batch
            b.todo = [i for i in b.fresh if b.keys[i] in left_out]
            if not b.todo:
                return
            self.stats.conflicts += 1
            self.stats.reapplied += len(b.todo)
            nxt = self._started
            if nxt is not None and nxt.answer is None:
                # the read of the next batch, sent after this commit, is answered first;
                # kept: where it read a customer applied again now, its commit leaves
                # that customer out and applies them again after these events
                nxt.answer = (self.store.answer(),)
            self._apply(b)
            self._inflight = None
        raise TribesError("another consumer keeps changing the same customers; batch not "
                          "applied (it stays pending and is read again)", code="E_STREAM")

    def _count(self, b: _Batch, left_out: set[str]) -> None:
        s = self.stats
        if not b.counted:
            b.counted = True
            s.batches += 1
            s.messages += len(b.msgs)
        s.duplicates += b.skipped
        for i in b.fresh:
            c = b.checked[i].result
            key = b.keys[i]
            if isinstance(c, Rejected):
                s.rejected[c.reason] += 1
            elif key not in left_out:
                s.events += 1
        for t in b.triggers:
            if t.customer_key not in left_out:
                s.triggers[t.kind] += 1

    # ------------------------------------------------------------------ the loop
    def run(self, stop: threading.Event | None = None, *, max_messages: int | None = None,
            idle_exit: float | None = None) -> StreamStats:
        """Consume until ``stop`` is set, ``max_messages`` were read, or (``idle_exit``)
        nothing arrived for that many seconds."""
        stop = stop or threading.Event()
        last_msg = time.monotonic()
        last_log = time.monotonic()
        if self.land_only:
            return self._run_landing(stop, max_messages=max_messages, idle_exit=idle_exit)
        try:
            # a pipeline: while Redis applies the commit of one batch and the read of the
            # next, the one after is checked; while the rules run, the next is read
            nxt: _Batch | None = None
            while not stop.is_set() or self._prefetched or nxt is not None:
                self._stopping = stop.is_set()
                self._swap_reference()
                b: _Batch | None = nxt
                nxt = None
                if b is None:
                    msgs = self._read(None if stop.is_set() else self.cfg.block_ms)
                    if msgs or self._timers_pending():
                        b = self._check(msgs)
                if b is None:
                    self._finish()
                else:
                    self._start(b)
                    if self._own_done and not self._stopping:
                        ahead = self._read(None)
                        if ahead:
                            nxt = self._check(ahead)
                    self._finish()
                    if max_messages is not None and self.stats.messages >= max_messages:
                        stop.set()
                    self._stopping = stop.is_set()  # then it reads no further ahead
                    self._rules(b)
                msgs = b.msgs if b is not None else []
                if msgs:
                    last_msg = time.monotonic()
                if self.sink is not None:
                    self.sink.tick()
                self._maybe_reload()
                if time.monotonic() - last_log > 10:
                    last_log = time.monotonic()
                    log.info("stream: %s", self.stats.to_dict())
                if max_messages is not None and self.stats.messages >= max_messages:
                    stop.set()
                if idle_exit is not None and time.monotonic() - last_msg > idle_exit:
                    stop.set()
        except redis_errors() as exc:
            raise TribesError(f"lost the connection to Redis ({exc}); start tribes stream "
                              "again when it is back: unacknowledged messages are read "
                              "again, nothing is lost", code="E_REDIS") from None
        finally:
            with contextlib.suppress(Exception):
                self.close()
        if self.sink is not None:
            self.sink.check()  # the spool did not land: that is an error, not a success
        return self.stats

    def _run_landing(self, stop: threading.Event, *, max_messages: int | None,
                     idle_exit: float | None) -> StreamStats:
        """Landing only: every message spooled (synced), then acknowledged; the spools
        land in the events table like those of a consumer that runs the rules."""
        assert self.sink is not None
        last_msg = time.monotonic()
        try:
            while not stop.is_set():
                msgs = self._read(self.cfg.block_ms)
                if msgs:
                    last_msg = time.monotonic()
                    self.sink.write([parse_message(f)[1] for _, f in msgs])
                    self.sink.wait_synced()  # on disk before the messages are acknowledged
                    ids = [i for i, _ in msgs]
                    for i in range(0, len(ids), 1000):
                        self.r.xack(self.input, self.group, *ids[i:i + 1000])
                    self.stats.batches += 1
                    self.stats.messages += len(msgs)
                self.sink.tick()
                if max_messages is not None and self.stats.messages >= max_messages:
                    stop.set()
                if idle_exit is not None and time.monotonic() - last_msg > idle_exit:
                    stop.set()
        except redis_errors() as exc:
            raise TribesError(f"lost the connection to Redis ({exc}); start tribes stream "
                              "again when it is back: unacknowledged messages are read "
                              "again, nothing is lost", code="E_REDIS") from None
        finally:
            with contextlib.suppress(Exception):
                self.close()
        if self.sink is not None:
            self.sink.check()  # the spool did not land: that is an error, not a success
        return self.stats

    def _timers_pending(self) -> bool:
        """Whether a timer is due by the idle watermark (checked at most every 0.5 s)."""
        now = time.monotonic()
        if now - getattr(self, "_timer_check", 0.0) < 0.5:
            return False
        self._timer_check = now
        ts, wall = self.store.clock()
        if not ts:
            return False
        return bool(self.store.due(ts + max(time.time() - wall, 0.0), 1))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._finish()
        self.store.close()
        if self.sink is not None:
            self.sink.close()
        if self.delivery is not None:
            self.delivery.stop()
        with contextlib.suppress(Exception):
            self.r.close()
